"""Figures of the demo (matplotlib, written as PNG)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_coordinates(path: Path, model, time_s, q_true: torch.Tensor, q_est: torch.Tensor) -> Path:
    """One panel per coordinate: the truth and the estimate over time (degrees or mm)."""
    plt = _plt()
    n = model.num_coordinates
    cols = 4
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.1 * rows), sharex=True)
    rot = model.rotational_mask
    for i, ax in enumerate(np.ravel(axes)):
        if i >= n:
            ax.axis("off")
            continue
        f = np.rad2deg if rot[i] else (lambda v: 1000 * v)
        ax.plot(time_s, f(q_true[:, i].numpy()), "k-", lw=1.5, label="truth")
        ax.plot(time_s, f(q_est[:, i].detach().numpy()), "C1--", lw=1.2, label="IK")
        ax.set_title(model.coordinate_names[i], fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_ylabel("deg" if rot[i] else "mm", fontsize=7)
    np.ravel(axes)[0].legend(fontsize=7)
    fig.suptitle("Inverse kinematics from noisy markers vs the synthetic truth", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_stick_figure(path: Path, model, poses, time_s, n_frames: int = 12) -> Path:
    """Sagittal (X-Y) stick figure: each joint centre joined to its parent's joint centre."""
    plt = _plt()
    centers = poses.joint_centers.detach().numpy()  # (T, J, 3)
    parent_joint = {}
    by_child = {j.child_body: k for k, j in enumerate(model.joints)}
    for k, j in enumerate(model.joints):
        parent_joint[k] = by_child.get(j.parent_body)
    frames = np.linspace(0, len(time_s) - 1, n_frames).astype(int)
    fig, ax = plt.subplots(figsize=(10, 3.6))
    cmap = plt.get_cmap("viridis")
    for n, t in enumerate(frames):
        c = cmap(n / max(1, n_frames - 1))
        for k, pk in parent_joint.items():
            if pk is None:
                continue
            a, b = centers[t, pk], centers[t, k]
            ax.plot([a[0], b[0]], [a[1], b[1]], "-", color=c, lw=1.5)
        ax.plot(centers[t, :, 0], centers[t, :, 1], "o", color=c, ms=2)
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.set_aspect("equal")
    ax.set_xlabel("x [m] (forward)")
    ax.set_ylabel("y [m] (up)")
    ax.set_title("Joint centres of the walk (sagittal view), colour = time")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_moment_arms(path: Path, time_s, names, arms: torch.Tensor, coordinate: str) -> Path:
    """Moment arms ``arms: (T, M) [m]`` about one coordinate, for the muscles that cross it
    on the right side."""
    plt = _plt()
    arms = arms.detach().numpy() * 100
    keep = [i for i, n in enumerate(names) if n.endswith("_r") and np.abs(arms[:, i]).max() > 0.2]
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for i in keep:
        ax.plot(time_s, arms[:, i], lw=1.2, label=names[i])
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.set_xlabel("time [s]")
    ax.set_ylabel(f"moment arm about {coordinate} [cm]")
    ax.set_title(f"Muscle moment arms about {coordinate} over the walk (right leg)")
    ax.legend(fontsize=6, ncol=3, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
