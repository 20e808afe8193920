"""Physics loss off and on: all other loss terms on (angle + scale + bio + pos at 100), the
root-residual consistency term (``LossWeights(physics=w)``, inverse dynamics of the
predicted and the labelled motion) at weight 0 and at each ``--weights`` value. Reports the
test metrics and the root residual of the predicted kinematics against the labels'.

Writes results/physics_loss.md, .json and .png.
"""

from __future__ import annotations

import sys
import time

from _common import cells, data, load, mean_sd, parser, run_one, setup, write_figure, write_table

from diffbio.nn import LossWeights

METRICS = [
    "mae_deg",
    "mae_joints_deg",
    "root_geodesic_deg",
    "root_flip_pct",
    "pa_mpjpe_mm",
    "mpjve_mm_s",
    "scale_l1",
    "res_force_err_N",
    "res_force_err_pct_bw",
    "res_moment_err_Nm",
    "com_acc_force_pct_bw",
    "train_s",
]


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--weights", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="repeats with training seeds seed, seed + 1, ... (initial weights, batch order)",
    )
    p.add_argument(
        "--select",
        choices=["last", "val"],
        default="last",
        help="keep the last epoch's weights, or those of the best validation MAE",
    )
    args = p.parse_args()
    cfg, epochs = setup(args)
    t0, load0 = time.perf_counter(), load()
    tr, va, te = data(cfg, args.seed)
    runs: dict[str, list[dict]] = {}
    for w in [0.0, *args.weights]:
        name = "off" if w == 0 else f"w={w:g}"
        runs[name] = []
        for i in range(args.repeats):
            r = run_one(
                tr,
                va,
                te,
                size=args.size,
                epochs=epochs,
                seed=args.seed + i,
                device=args.device,
                weights=LossWeights(physics=w),
                residuals=True,
                select=args.select == "val",
            )
            runs[name].append({"seed": args.seed + i, **r})
            print(name, runs[name][-1], flush=True)
    rows = [{"physics": k, **mean_sd(v, METRICS)} for k, v in runs.items()]
    label_acc = runs["off"][0]["label_com_acc_force_pct_bw"]
    note = (
        f"Synthetic data: {cfg.num_subjects} subjects x {cfg.sequences_per_subject} sequences of "
        f"{cfg.seq_len} frames (train/val/test {len(tr)}/{len(va)}/{len(te)} sequences, split by "
        f"subject with seed {args.seed}: the data of ablation_losses.py); {epochs} epochs; size "
        f"{args.size}; losses angle+scale+bio+pos (w=100) plus the physics term at each row's "
        "weight (ramped up with the keypoint term); "
        + (
            "the weights of the last epoch"
            if args.select == "last"
            else "the weights of the epoch with the best validation MAE"
        )
        + ". Mean ± sample sd over "
        f"{args.repeats} training seeds ({args.seed}..{args.seed + args.repeats - 1}). Total "
        f"wall time {time.perf_counter() - t0:.0f} s; load average (1, 5, 15 min) {load0} at "
        f"the start, {load()} at the end (shared machine).\n\n"
        "Physics metrics (test set; no external loads; velocities and accelerations by central "
        "differences at the data's frame rate, as in the loss): `res_force_err` is the mean "
        "magnitude of the predicted root residual force minus the labels' [N, % body weight], "
        "`res_moment_err_Nm` the same for the moment about the root joint centre [N m], "
        "`com_acc_force_pct_bw` the mean `m |a_com|` implied by the predicted motion [% body "
        f"weight]; the labels' own value is {label_acc:.1f} % (their pelvis height is set per "
        "frame by foot contact and then low-pass filtered at 2 Hz). `mae_deg` is the library's "
        "branch-aware MAE (the pelvis Euler triple scored against the nearer of its two "
        "equivalent triples), `mae_joints_deg` leaves the pelvis orientation out, "
        "`root_geodesic_deg` is the angle between the predicted and true pelvis orientations "
        "and `root_flip_pct` the share of frames predicted on the other Euler branch."
    )
    cols = ["physics", *METRICS]
    write_table(
        "physics_loss",
        [cells(r, METRICS) for r in rows],
        cols,
        "python experiments/physics_loss.py " + " ".join(sys.argv[1:]),
        note,
        raw={"rows": rows, "runs": runs},
    )
    write_figure(
        "physics_loss",
        rows,
        "physics",
        metrics=(
            "mae_joints_deg",
            "pa_mpjpe_mm",
            "mpjve_mm_s",
            "scale_l1",
            "res_force_err_pct_bw",
            "com_acc_force_pct_bw",
        ),
    )


if __name__ == "__main__":
    main()
