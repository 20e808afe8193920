"""Shared set-up of the studies: data sets (cached under experiments/results/.cache), the
CPU-size network, one training run, and the table and figure writers."""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import torch

from diffbio.data import KinematicsDataset, SyntheticConfig, synthetic_dataset
from diffbio.model import default_model
from diffbio.nn import KinematicsNet, LossWeights, NetConfig, TrainConfig, evaluate, train

RESULTS = Path(__file__).resolve().parent / "results"

# CPU size: short sequences, few subjects, the small network.
CPU_DATA = SyntheticConfig(num_subjects=24, sequences_per_subject=4, seq_len=32)
GPU_DATA = SyntheticConfig(num_subjects=400, sequences_per_subject=16, seq_len=64)


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--size", choices=["cpu", "full"], default="cpu")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    return p


def data(
    config: SyntheticConfig, seed: int
) -> tuple[KinematicsDataset, KinematicsDataset, KinematicsDataset]:
    """Train, validation and test sets split by subject (cached on disk)."""
    key = f"n{config.num_subjects}x{config.sequences_per_subject}_T{config.seq_len}_s{seed}"
    cache = RESULTS / ".cache" / f"{key}.pt"
    if cache.exists():
        blob = torch.load(cache, weights_only=False)
        ds = KinematicsDataset(**blob)
    else:
        ds = synthetic_dataset(default_model(), config, seed=seed)
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                k: getattr(ds, k)
                for k in ("features", "q", "scales", "subject", "kinds", "frame_rate")
            },
            cache,
        )
    return ds.split_by_subject((0.7, 0.15, 0.15), seed=seed)


def run_one(
    train_set,
    val_set,
    test_set,
    *,
    size: str,
    epochs: int,
    seed: int,
    device: str,
    weights: LossWeights | None = None,
    sequence: bool = True,
) -> dict:
    """Train one network and return its test metrics and training time."""
    skeleton = default_model()
    F, T = train_set.features.shape[-1], train_set.features.shape[1]
    make = NetConfig.small if size == "cpu" else NetConfig.full
    torch.manual_seed(seed)  # the initial weights depend on the seed only
    net = KinematicsNet(
        make(F, skeleton.num_coordinates, skeleton.num_bodies, seq_len=T, sequence=sequence)
    )
    cfg = TrainConfig(
        epochs=epochs,
        batch_size=8 if size == "cpu" else 32,
        seed=seed,
        weights=weights or LossWeights(),
        device=device,
    )
    torch.manual_seed(seed)
    result = train(skeleton, net, train_set, val_set, cfg, progress=True)
    metrics = evaluate(skeleton, net, test_set, device=device)
    return {**metrics, "train_s": result.seconds, "best_epoch": result.best_epoch}


def hardware() -> str:
    return f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)"


def write_table(
    name: str, rows: list[dict], columns: list[str], command: str, note: str = ""
) -> Path:
    """Write ``results/<name>.md`` (a Markdown table with the regenerating command) and
    ``results/<name>.json``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    lines = [f"# {name}", "", f"Command: `{command}`", "", f"Hardware: {hardware()}", ""]
    if note:
        lines += [note, ""]
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "---|" * len(columns))
    for r in rows:
        cells = [f"{r[c]:.2f}" if isinstance(r[c], float) else str(r[c]) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    path = RESULTS / f"{name}.md"
    path.write_text("\n".join(lines) + "\n")
    (RESULTS / f"{name}.json").write_text(json.dumps(rows, indent=1))
    return path


def write_figure(
    name: str, rows: list[dict], label: str, metrics=("mae_deg", "pa_mpjpe_mm", "mpjve_mm_s")
) -> Path:
    """Bar charts of ``metrics`` per row, ``results/<name>.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.2))
    names = [str(r[label]) for r in rows]
    for ax, m in zip(axes, metrics):
        ax.bar(names, [r[m] for r in rows], color="tab:blue")
        ax.set_title(m)
        ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    path = RESULTS / f"{name}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def setup(args) -> tuple[SyntheticConfig, int]:
    torch.set_num_threads(args.threads)
    cfg = CPU_DATA if args.size == "cpu" else GPU_DATA
    epochs = args.epochs or (12 if args.size == "cpu" else 200)
    return cfg, epochs


__all__ = ["data", "parser", "replace", "run_one", "setup", "time", "write_figure", "write_table"]
