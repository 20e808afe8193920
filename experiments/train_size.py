"""Training-set size: the network with all loss terms (angle + scale + bio + pos at 100)
trained on small, medium and large training sets (nested sets of subjects), evaluated on
the same validation and test subjects. By default every row takes the same number of
optimisation steps (the smaller sets train for proportionally more epochs), so that the rows
differ in the number of distinct subjects only; ``--schedule epochs`` keeps the epochs equal
instead.

Writes results/train_size.md, .json and .png.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from _common import (
    cells,
    dataset,
    load,
    mean_sd,
    parser,
    replace,
    run_one,
    setup,
    write_lines,
    write_table,
)

from diffbio.data import KinematicsDataset

# Training subjects per row and held-out subjects (validation, test) per size.
SIZES = {"cpu": ((8, 24, 72), 8), "full": ((40, 120, 360), 40)}


def splits(
    ds: KinematicsDataset, sizes: tuple[int, ...], held_out: int, seed: int
) -> tuple[list[KinematicsDataset], KinematicsDataset, KinematicsDataset]:
    """Nested training sets of ``sizes`` subjects and the validation and test sets of
    ``held_out`` subjects each, disjoint by subject, deterministic given ``seed``."""
    subjects = np.random.default_rng(seed).permutation(np.unique(ds.subject.numpy()))
    if len(subjects) < max(sizes) + 2 * held_out:
        raise SystemExit(f"{len(subjects)} subjects: too few for {sizes} plus 2 x {held_out}")
    sub = ds.subject.numpy()

    def take(group) -> KinematicsDataset:
        return ds.subset(np.nonzero(np.isin(sub, group))[0].tolist())

    val, test = take(subjects[:held_out]), take(subjects[held_out : 2 * held_out])
    pool = subjects[2 * held_out :]
    return [take(pool[:n]) for n in sizes], val, test


METRICS = [
    "mae_deg",
    "mae_joints_deg",
    "root_geodesic_deg",
    "root_flip_pct",
    "pa_mpjpe_mm",
    "mpjve_mm_s",
    "scale_l1",
    "train_s",
]


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--schedule", choices=["steps", "epochs"], default="steps")
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="repeats with seeds seed, seed + 1, ...: each draws its own subject split, "
        "initial weights and batch order",
    )
    p.add_argument(
        "--select",
        choices=["last", "val"],
        default="last",
        help="keep the last epoch's weights, or those of the best validation MAE",
    )
    args = p.parse_args()
    cfg, epochs = setup(args)
    sizes, held_out = SIZES[args.size]
    cfg = replace(cfg, num_subjects=max(sizes) + 2 * held_out)
    t0, load0 = time.perf_counter(), load()
    ds = dataset(cfg, args.seed)
    runs: dict[int, list[dict]] = {n: [] for n in sizes}
    for i in range(args.repeats):
        seed = args.seed + i
        trains, va, te = splits(ds, sizes, held_out, seed)
        for n, tr in zip(sizes, trains):
            ep = epochs if args.schedule == "epochs" else round(epochs * max(sizes) / n)
            r = run_one(
                tr,
                va,
                te,
                size=args.size,
                epochs=ep,
                seed=seed,
                device=args.device,
                select=args.select == "val",
            )
            runs[n].append({"seed": seed, "epochs": ep, "sequences": len(tr), **r})
            print(n, runs[n][-1], flush=True)
    rows = [
        {
            "subjects": n,
            "sequences": runs[n][0]["sequences"],
            "epochs": runs[n][0]["epochs"],
            **mean_sd(runs[n], METRICS),
        }
        for n in sizes
    ]
    schedule = (
        f"{epochs} epochs each"
        if args.schedule == "epochs"
        else f"the same number of optimisation steps for every row ({epochs} epochs of the "
        "largest set)"
    )
    selection = (
        "the weights of the last epoch (the one-cycle schedule ends at a learning rate near "
        "zero; no checkpoint selection, so the rows do not differ in how many epochs there are "
        "to pick from)"
        if args.select == "last"
        else "the weights of the epoch with the best validation MAE"
    )
    note = (
        f"Synthetic data: {cfg.num_subjects} subjects x {cfg.sequences_per_subject} sequences of "
        f"{cfg.seq_len} frames; per repeat, validation and test sets of {held_out} subjects each "
        f"({len(va)}/{len(te)} sequences), the same for every row, and nested training sets of "
        f"{', '.join(map(str, sizes))} subjects, all split by subject; {schedule}; size "
        f"{args.size}; losses angle+scale+bio+pos (w=100); {selection}. Mean ± sample sd over "
        f"{args.repeats} repeats (seeds {args.seed}..{args.seed + args.repeats - 1}: subject "
        f"split, initial weights, batch order; data set of seed {args.seed}). Total wall time "
        f"{time.perf_counter() - t0:.0f} s; load average (1, 5, 15 min) {load0} at the start, "
        f"{load()} at the end (shared machine).\n\n"
        "`mae_deg` is the library's metric over all rotational coordinates, branch-aware for "
        "the pelvis Euler triple (scored against the nearer of its two equivalent triples); "
        "`mae_joints_deg` leaves out the pelvis orientation, `root_geodesic_deg` is the angle "
        "between the predicted and true pelvis orientations and `root_flip_pct` the share of "
        "test frames whose pelvis triple is predicted on the other, equivalent branch."
    )
    cols = ["subjects", "sequences", "epochs", *METRICS]
    write_table(
        "train_size",
        [cells(r, METRICS) for r in rows],
        cols,
        "python experiments/train_size.py " + " ".join(sys.argv[1:]),
        note,
        raw={"rows": rows, "runs": runs},
    )
    write_lines(
        "train_size",
        rows,
        "subjects",
        "training subjects",
        metrics=("mae_joints_deg", "root_geodesic_deg", "pa_mpjpe_mm", "mpjve_mm_s", "scale_l1"),
    )


if __name__ == "__main__":
    main()
