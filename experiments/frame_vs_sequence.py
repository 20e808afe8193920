"""Frame-based (no temporal refinement) against sequence-based (temporal transformer U-Net),
both with all loss terms. Writes results/frame_vs_sequence.md, .json and .png.
"""

from __future__ import annotations

import sys
import time

from _common import data, parser, run_one, setup, write_figure, write_table


def main() -> None:
    args = parser(__doc__).parse_args()
    cfg, epochs = setup(args)
    t0 = time.perf_counter()
    tr, va, te = data(cfg, args.seed)
    rows = []
    for name, sequence in (("frame-based", False), ("sequence-based", True)):
        r = run_one(
            tr,
            va,
            te,
            size=args.size,
            epochs=epochs,
            seed=args.seed,
            device=args.device,
            sequence=sequence,
        )
        rows.append({"model": name, **r})
        print(rows[-1], flush=True)
    note = (
        f"Synthetic data: {cfg.num_subjects} subjects x {cfg.sequences_per_subject} sequences of {cfg.seq_len} "
        f"frames (train/val/test {len(tr)}/{len(va)}/{len(te)} sequences, split by subject); {epochs} epochs; "
        f"size {args.size}; losses angle+scale+bio+pos (w=100); total wall time {time.perf_counter() - t0:.0f} s."
    )
    cols = [
        "model",
        "mae_deg",
        "root_geodesic_deg",
        "root_flip_pct",
        "pa_mpjpe_mm",
        "mpjve_mm_s",
        "scale_l1",
        "train_s",
    ]
    write_table(
        "frame_vs_sequence",
        rows,
        cols,
        "python experiments/frame_vs_sequence.py " + " ".join(sys.argv[1:]),
        note,
    )
    write_figure("frame_vs_sequence", rows, "model")


if __name__ == "__main__":
    main()
