"""Shared set-up of the studies: data sets (cached under experiments/results/.cache), the
CPU-size network, one training run, and the table and figure writers."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor

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


def dataset(config: SyntheticConfig, seed: int) -> KinematicsDataset:
    """The whole synthetic data set of ``config`` (cached on disk)."""
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
    return ds


def data(
    config: SyntheticConfig, seed: int
) -> tuple[KinematicsDataset, KinematicsDataset, KinematicsDataset]:
    """Train, validation and test sets split by subject (cached on disk)."""
    return dataset(config, seed).split_by_subject((0.7, 0.15, 0.15), seed=seed)


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
    residuals: bool = False,
    select: bool = True,
) -> dict:
    """Train one network and return its test metrics and training time (and, with
    ``residuals``, the root-residual metrics of :func:`residual_metrics` on the test set).
    With ``select`` the weights of the epoch with the best validation MAE are kept, else
    those of the last epoch (the validation set is then not used)."""
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
    result = train(skeleton, net, train_set, val_set if select else None, cfg, progress=True)
    metrics = evaluate(skeleton, net, test_set, device=device)
    q, s = predict(net, test_set, device)
    metrics.update(orientation_metrics(skeleton, q, test_set.q.double()))
    if residuals:
        metrics.update(residual_metrics(skeleton, q, s, test_set))
    best = result.best_epoch if select else epochs - 1
    return {**metrics, "train_s": result.seconds, "best_epoch": best}


@torch.no_grad()
def predict(net: KinematicsNet, ds: KinematicsDataset, device: str) -> tuple[Tensor, Tensor]:
    """The network's ``q: (N, T, Q)`` and ``scales: (N, NB, 3)`` on ``ds`` (float64, CPU)."""
    net.eval()
    qs, ss = [], []
    for i in range(0, len(ds), 32):
        pred = net(ds.features[i : i + 32].to(device))
        qs.append(pred.q.cpu())
        ss.append(pred.scales.cpu())
    return torch.cat(qs).double(), torch.cat(ss).double()


@torch.no_grad()
def orientation_metrics(skeleton, q: Tensor, q_true: Tensor) -> dict[str, float]:
    """``mae_joints_deg``: the MAE [deg] of the rotational coordinates other than the root
    joint's (the pelvis orientation), and ``root_geodesic_deg``: the mean angle [deg] of the
    rotation from the predicted root-body orientation to the true one, ``q: (..., Q)``.

    These separate the body's joint angles from the root orientation; the library's
    ``mae_deg`` (branch-aware for the root's two equivalent Euler triples) and
    ``root_geodesic_deg`` of :func:`diffbio.nn.evaluate` cover both."""
    from diffbio.kinematics import forward_kinematics

    root = skeleton.joints[0]
    root_coords = {skeleton.coordinate_index(a.coordinate) for a in root.axes if a.coordinate}
    rot = [
        k
        for k, r in enumerate(skeleton.rotational_mask)
        if r and k not in root_coords  # body joints only
    ]
    d = q[..., rot] - q_true[..., rot]
    d = torch.atan2(torch.sin(d), torch.cos(d)).abs().mean()
    b = skeleton.body_index(root.child_body)
    Rp = forward_kinematics(skeleton, q).rotation[..., b, :, :]
    Rt = forward_kinematics(skeleton, q_true).rotation[..., b, :, :]
    cos = ((Rp.transpose(-1, -2) @ Rt).diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0
    return {
        "mae_joints_deg": float(d) * 180.0 / math.pi,
        "root_geodesic_deg": float(torch.arccos(cos.clamp(-1.0, 1.0)).mean()) * 180.0 / math.pi,
    }


def _root_residuals(skeleton, q: Tensor, s: Tensor, frame_rate: float):
    """Root residuals (no external loads) of ``q: (N, T, Q)`` on the interior frames, the
    velocities and accelerations by central differences (as in the physics loss)."""
    from diffbio.dynamics import root_residuals

    dt = 1.0 / frame_rate
    qd = (q[:, 2:] - q[:, :-2]) / (2 * dt)
    qdd = (q[:, 2:] - 2 * q[:, 1:-1] + q[:, :-2]) / dt**2
    return root_residuals(skeleton, q[:, 1:-1], qd, qdd, None, scales=s.unsqueeze(-3))


@torch.no_grad()
def residual_metrics(skeleton, q: Tensor, s: Tensor, ds: KinematicsDataset) -> dict[str, float]:
    """Physics metrics of predicted kinematics ``q: (N, T, Q)``, ``s: (N, NB, 3)`` against the
    labels of ``ds``, from the root residuals with no external loads (the force the
    environment must supply, ``F = m a_com - m g``), means over sequences and interior frames:

    * ``res_force_err_N`` [N] and ``res_force_err_pct_bw`` [% body weight]: ``|F_pred - F_true|``;
    * ``res_moment_err_Nm`` [N m]: ``|M_pred - M_true|`` (about the root joint centre);
    * ``com_acc_force_pct_bw`` [% body weight]: ``|F_pred + m g| = m |a_com|`` of the
      prediction (its label counterpart is ``label_com_acc_force_pct_bw``).
    """
    from diffbio.dynamics import body_inertial, scale_body_inertial

    qt, st = ds.q.double(), ds.scales.double()
    rp = _root_residuals(skeleton, q, s, ds.frame_rate)
    rt = _root_residuals(skeleton, qt, st, ds.frame_rate)
    g = torch.tensor(skeleton.gravity, dtype=torch.float64)
    base = body_inertial(skeleton, torch.float64, torch.device("cpu"))

    def weight(scales: Tensor) -> Tensor:  # body weight [N] of the scaled model, (N, 1)
        m = scale_body_inertial(base, scales, scale_mass=True).mass.sum(-1)
        return (m * g.norm()).unsqueeze(-1)

    wp, wt = weight(s), weight(st)
    acc_p = (rp.force + (wp / g.norm()).unsqueeze(-1) * g).norm(dim=-1) / wp
    acc_t = (rt.force + (wt / g.norm()).unsqueeze(-1) * g).norm(dim=-1) / wt
    df = (rp.force - rt.force).norm(dim=-1)
    return {
        "res_force_err_N": float(df.mean()),
        "res_force_err_pct_bw": float((100.0 * df / wt).mean()),
        "res_moment_err_Nm": float((rp.moment - rt.moment).norm(dim=-1).mean()),
        "com_acc_force_pct_bw": float(100.0 * acc_p.mean()),
        "label_com_acc_force_pct_bw": float(100.0 * acc_t.mean()),
    }


def hardware() -> str:
    return f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)"


def write_table(
    name: str,
    rows: list[dict],
    columns: list[str],
    command: str,
    note: str = "",
    raw: object = None,
) -> Path:
    """Write ``results/<name>.md`` (a Markdown table with the regenerating command) and
    ``results/<name>.json`` (``raw`` when given, else ``rows``)."""
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
    (RESULTS / f"{name}.json").write_text(json.dumps(rows if raw is None else raw, indent=1))
    return path


def write_figure(
    name: str, rows: list[dict], label: str, metrics=("mae_deg", "pa_mpjpe_mm", "mpjve_mm_s")
) -> Path:
    """Bar charts of ``metrics`` per row (error bars of ``<metric>_sd`` where every row has
    them), ``results/<name>.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.2))
    names = [str(r[label]) for r in rows]
    for ax, m in zip(axes, metrics):
        sd = [r[f"{m}_sd"] for r in rows] if all(f"{m}_sd" in r for r in rows) else None
        ax.bar(names, [r[m] for r in rows], yerr=sd, capsize=3, color="tab:blue")
        ax.set_title(m)
        ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    path = RESULTS / f"{name}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_lines(
    name: str,
    rows: list[dict],
    x: str,
    xlabel: str,
    metrics=("mae_deg", "pa_mpjpe_mm", "mpjve_mm_s", "scale_l1"),
) -> Path:
    """Line plots of ``metrics`` against the numeric column ``x`` (log axis), with error bars
    of ``<metric>_sd`` where the rows have them, ``results/<name>.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.2))
    xs = [r[x] for r in rows]
    for ax, m in zip(axes, metrics):
        sd = [r.get(f"{m}_sd", 0.0) for r in rows]
        ax.errorbar(xs, [r[m] for r in rows], yerr=sd, fmt="o-", color="tab:blue", capsize=3)
        ax.set_xscale("log")
        ax.set_xticks(xs, [str(v) for v in xs])
        ax.minorticks_off()
        ax.set_xlabel(xlabel)
        ax.set_title(m)
    fig.tight_layout()
    path = RESULTS / f"{name}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def mean_sd(runs: list[dict], keys: list[str]) -> dict:
    """Mean and sample standard deviation over repeated runs: ``{k: mean, k_sd: sd}``."""
    out: dict = {}
    for k in keys:
        v = torch.tensor([float(r[k]) for r in runs], dtype=torch.float64)
        out[k] = float(v.mean())
        out[f"{k}_sd"] = float(v.std()) if len(v) > 1 else 0.0
    return out


def cells(row: dict, keys: list[str]) -> dict:
    """``row`` with each of ``keys`` written as ``"mean ± sd"`` (for :func:`write_table`)."""
    return {**row, **{k: f"{row[k]:.2f} ± {row[k + '_sd']:.2f}" for k in keys}}


def load() -> str:
    """The 1, 5 and 15 minute load averages, as text."""
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def setup(args) -> tuple[SyntheticConfig, int]:
    torch.set_num_threads(args.threads)
    cfg = CPU_DATA if args.size == "cpu" else GPU_DATA
    epochs = args.epochs or (12 if args.size == "cpu" else 200)
    return cfg, epochs


__all__ = [
    "cells",
    "data",
    "dataset",
    "load",
    "mean_sd",
    "orientation_metrics",
    "parser",
    "predict",
    "replace",
    "residual_metrics",
    "run_one",
    "setup",
    "time",
    "write_figure",
    "write_lines",
    "write_table",
]
