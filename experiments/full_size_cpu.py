"""The full-size network ([48, 96, 384] channels, [2, 4, 6] blocks, [1, 2, 4] heads,
sequence length 64) trained on the CPU with a data and epoch budget that fits in about
half an hour, beside the CPU-size network trained on the same data (its usual budget:
12 epochs, batch 8).

Data: 88 synthetic subjects (seed 0) x ``--sequences`` sequences of ``--seq-len`` frames,
split by subject as in ``train_size.py`` (seed 0: the same subject indices for the 72
training, 8 validation and 8 test subjects; the subjects themselves are drawn afresh,
because the generator's random stream depends on the sequence length and count). Losses
angle + scale + bio + pos (w = 100), as in ``train_size.py``. The weights of the epoch with
the best validation ``mae_deg`` are kept (the validation curve is the figure).

``--probe`` trains one epoch of each network and prints the time per epoch (to choose
``--sequences`` and ``--epochs``); otherwise writes results/full_size_cpu.md, .json, .png.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time

import torch
from _common import (
    CPU_DATA,
    RESULTS,
    dataset,
    load,
    orientation_metrics,
    parser,
    predict,
    replace,
    residual_metrics,
    write_table,
)
from train_size import splits

from diffbio.model import default_model
from diffbio.nn import KinematicsNet, LossWeights, NetConfig, TrainConfig, evaluate, train

METRICS = [
    "mae_deg",
    "mae_joints_deg",
    "root_geodesic_deg",
    "root_flip_pct",
    "pa_mpjpe_mm",
    "mpjve_mm_s",
    "scale_l1",
    "res_force_err_pct_bw",
    "res_moment_err_Nm",
    "com_acc_force_pct_bw",
]


def run(size: str, tr, va, te, *, epochs: int, batch: int, seed: int, device: str) -> dict:
    """Train one network of ``size`` ("full" or "cpu") and return its configuration,
    parameter count, training history and test metrics."""
    skeleton = default_model()
    F, T = tr.features.shape[-1], tr.features.shape[1]
    make = NetConfig.full if size == "full" else NetConfig.small
    config = make(F, skeleton.num_coordinates, skeleton.num_bodies, seq_len=T)
    torch.manual_seed(seed)
    net = KinematicsNet(config)
    cfg = TrainConfig(
        epochs=epochs, batch_size=batch, seed=seed, weights=LossWeights(), device=device
    )
    load0 = load()
    result = train(skeleton, net, tr, va, cfg, progress=True)
    metrics = evaluate(skeleton, net, te, device=device)
    q, s = predict(net, te, device)
    metrics.update(orientation_metrics(skeleton, q, te.q.double()))
    metrics.update(residual_metrics(skeleton, q, s, te))
    return {
        "network": size,
        "channels": list(config.channels),
        "blocks": list(config.depths),
        "heads": list(config.heads),
        "params_M": sum(p.numel() for p in net.parameters()) / 1e6,
        "epochs": epochs,
        "batch": batch,
        "steps": epochs * -(-len(tr) // batch),
        "best_epoch": result.best_epoch,
        "train_s": result.seconds,
        "s_per_epoch": result.seconds / epochs,
        "load_start": load0,
        "load_end": load(),
        **metrics,
        "history": list(result.history),
    }


def figure(runs: list[dict]) -> None:
    """Training curves: validation mae_deg and PA-MPJPE and the training angle and
    keypoint terms per epoch, both networks, results/full_size_cpu.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("val_mae_deg", "validation mae_deg [deg]", False),
        ("val_pa_mpjpe_mm", "validation PA-MPJPE [mm]", False),
        ("train_angle", "training angle term", True),
        ("train_pos", "training keypoint term (unweighted)", True),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4))
    for r, colour in zip(runs, ("tab:red", "tab:blue")):
        ep = [h["epoch"] + 1 for h in r["history"]]
        for ax, (key, title, log) in zip(axes, panels):
            label = f"{r['network']} ({r['params_M']:.2f} M, {r['train_s'] / 60:.1f} min)"
            ax.plot(ep, [h[key] for h in r["history"]], "-", color=colour, label=label)
            ax.set_title(title)
            ax.set_xlabel("epoch")
            if log:
                ax.set_yscale("log")
    for ax, key in zip(axes[:2], ("mae_deg", "pa_mpjpe_mm")):
        ax.set_ylim(0, 1.1 * max(max(h[f"val_{key}"] for h in r["history"][1:]) for r in runs))
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "full_size_cpu.png", dpi=100)
    plt.close(fig)


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--sequences", type=int, default=16, help="sequences per subject")
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--cpu-epochs", type=int, default=12, help="epochs of the CPU-size row")
    p.add_argument("--no-baseline", action="store_true", help="skip the CPU-size row")
    p.add_argument("--probe", action="store_true", help="time one epoch of each and stop")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    epochs = args.epochs or 60
    cfg = replace(
        CPU_DATA, num_subjects=88, sequences_per_subject=args.sequences, seq_len=args.seq_len
    )
    t0, load0 = time.perf_counter(), load()
    ds = dataset(cfg, args.seed)
    (tr,), va, te = splits(ds, (72,), 8, args.seed)
    data_s = time.perf_counter() - t0
    plan = [("cpu", args.cpu_epochs, 8)] if not args.no_baseline else []
    plan.append(("full", epochs, 32))
    if args.probe:
        for size, _, batch in plan:
            r = run(size, tr, va, te, epochs=1, batch=batch, seed=args.seed, device=args.device)
            print(f"{size}: {r['train_s']:.1f} s per epoch of {len(tr)} sequences, load {load()}")
        return
    runs = []
    for size, ep, batch in plan:
        runs.append(
            run(size, tr, va, te, epochs=ep, batch=batch, seed=args.seed, device=args.device)
        )
        print({k: v for k, v in runs[-1].items() if k != "history"}, flush=True)
        (RESULTS / "full_size_cpu.json").write_text(json.dumps({"runs": runs}, indent=1))
    total = time.perf_counter() - t0
    cpu = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
        cpu += f", {os.cpu_count()} cores"
    except (OSError, StopIteration):
        pass
    full = runs[-1]
    note = (
        f"CPU: {cpu} (shared with other jobs), torch {torch.__version__}, "
        f"{args.threads} torch thread(s), no GPU.\n\n"
        f"Synthetic data: 88 subjects x {cfg.sequences_per_subject} sequences of {cfg.seq_len} "
        f"frames at {cfg.frame_rate:.0f} Hz (seed {args.seed}, default feature noise), split by "
        f"subject as train_size.py (seed {args.seed}): 72 training ({len(tr)} sequences), 8 "
        f"validation ({len(va)}) and 8 test subjects ({len(te)} sequences); data set "
        f"{data_s:.0f} s (cached after the first run). Losses angle+scale+bio+pos (w=100), AdamW "
        "lr 1e-3 one-cycle, keypoint weight ramped over the first 30 % of steps; weights of "
        f"the epoch with the best validation mae_deg (`best_epoch`, 0-based). Full size: "
        f"{full['params_M']:.2f} M parameters, {full['epochs']} epochs at batch 32 "
        f"({full['steps']} steps), training wall time {full['train_s']:.0f} s "
        f"({full['train_s'] / 60:.1f} min, {full['s_per_epoch']:.1f} s per epoch, "
        "validation included). Reference budget (GPU): 400 subjects x 16 sequences, 200 "
        f"epochs, i.e. {400 * 16 * 200 / (len(tr) * full['epochs']):.0f}x the sequence passes "
        f"of this run. Total wall time {total:.0f} s; load average (1, 5, 15 min) {load0} at "
        f"the start, {load()} at the end.\n\n"
        "`mae_deg` is branch-aware for the pelvis Euler triple; `mae_joints_deg` leaves out "
        "the pelvis orientation; `root_geodesic_deg` is the angle between predicted and true "
        "pelvis orientation, `root_flip_pct` the share of test frames on the other branch; "
        "`res_force_err_pct_bw` and `res_moment_err_Nm` compare the root residuals (no "
        "external loads) of the predicted and true motion, `com_acc_force_pct_bw` is the "
        "predicted m |a_com| (labels: "
        f"{full['label_com_acc_force_pct_bw']:.1f} % body weight). Acceptance (issue 7): "
        "mae_deg < 4.5 deg and PA-MPJPE < 27 mm at full size."
    )
    cols = ["network", "params_M", "epochs", "batch", "best_epoch", "train_s", *METRICS]
    write_table(
        "full_size_cpu",
        runs,
        cols,
        "python experiments/full_size_cpu.py " + " ".join(sys.argv[1:]),
        note,
        raw={"runs": runs, "total_s": total, "threads": args.threads},
    )
    figure(runs)


if __name__ == "__main__":
    main()
