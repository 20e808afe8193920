"""Loss-term ablation: L_angle + L_scale, + L_bio, + L_bio + L_pos (weights 100, 10, 1).

Writes results/ablation_losses.md, .json and .png.
"""

from __future__ import annotations

import sys
import time

from _common import data, parser, run_one, setup, write_figure, write_table

from diffbio.nn import LossWeights


def main() -> None:
    args = parser(__doc__).parse_args()
    cfg, epochs = setup(args)
    t0 = time.perf_counter()
    tr, va, te = data(cfg, args.seed)
    variants = [
        ("angle+scale", LossWeights(bio=0.0, pos=0.0)),
        ("+bio", LossWeights(pos=0.0)),
        ("+bio+pos (w=100)", LossWeights()),
        ("+bio+pos (w=10)", LossWeights(pos=10.0)),
        ("+bio+pos (w=1)", LossWeights(pos=1.0)),
    ]
    rows = []
    for name, w in variants:
        r = run_one(
            tr, va, te, size=args.size, epochs=epochs, seed=args.seed, device=args.device, weights=w
        )
        rows.append({"losses": name, **r})
        print(rows[-1], flush=True)
    note = (
        f"Synthetic data: {cfg.num_subjects} subjects x {cfg.sequences_per_subject} sequences of {cfg.seq_len} "
        f"frames (train/val/test {len(tr)}/{len(va)}/{len(te)} sequences, split by subject); {epochs} epochs; "
        f"size {args.size}; total wall time {time.perf_counter() - t0:.0f} s."
    )
    cols = [
        "losses",
        "mae_deg",
        "root_geodesic_deg",
        "root_flip_pct",
        "pa_mpjpe_mm",
        "mpjve_mm_s",
        "scale_l1",
        "train_s",
    ]
    write_table(
        "ablation_losses",
        rows,
        cols,
        "python experiments/ablation_losses.py " + " ".join(sys.argv[1:]),
        note,
    )
    write_figure("ablation_losses", rows, "losses")


if __name__ == "__main__":
    main()
