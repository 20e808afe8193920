"""Evaluation metrics: joint-angle MAE [deg], PA-MPJPE [mm] and MPJVE [mm/s].

Positions are the skeleton points of :func:`diffbio.data.keypoints` without markers (joint
centres and segment centres of mass), taken relative to the pelvis (the first joint centre).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from diffbio.model import Model

__all__ = ["mae_deg", "mpjve", "pa_mpjpe", "procrustes_align", "skeleton_points"]


def mae_deg(model: Model, q_pred: Tensor, q_true: Tensor) -> Tensor:
    """Mean absolute error of the rotational coordinates [deg], the difference wrapped to
    (-180, 180]; ``q: (..., Q) [rad or m]``."""
    rot = torch.tensor(model.rotational_mask, dtype=torch.bool, device=q_true.device)
    d = q_pred[..., rot] - q_true[..., rot]
    d = torch.atan2(torch.sin(d), torch.cos(d))
    return d.abs().mean() * (180.0 / math.pi)


def skeleton_points(model: Model, q: Tensor, scales: Tensor | None) -> Tensor:
    """Joint centres and segment centres of mass relative to the pelvis ``(..., J + NB, 3)
    [m]``; ``scales (..., NB, 3)`` broadcast against ``q``'s leading dimensions."""
    from diffbio.data._synthetic import keypoints

    n = len(model.joint_names) + model.num_bodies
    k = keypoints(model, q, scales)[..., :n, :]
    return k - k[..., :1, :]


def procrustes_align(pred: Tensor, true: Tensor) -> Tensor:
    """``pred (..., K, 3)`` moved onto ``true`` by the similarity transform (rotation,
    uniform scale, translation) that minimises the squared distance (Umeyama 1991)."""
    mp, mt = pred.mean(-2, keepdim=True), true.mean(-2, keepdim=True)
    X, Y = pred - mp, true - mt
    H = X.transpose(-1, -2) @ Y  # (..., 3, 3)
    U, S, Vh = torch.linalg.svd(H)
    d = torch.sign(torch.linalg.det(Vh.transpose(-1, -2) @ U.transpose(-1, -2)))
    D = torch.ones_like(S)
    D[..., -1] = d
    R = Vh.transpose(-1, -2) @ (D.unsqueeze(-1) * U.transpose(-1, -2))
    scale = (S * D).sum(-1) / X.pow(2).sum((-1, -2)).clamp_min(1e-12)
    return scale[..., None, None] * X @ R.transpose(-1, -2) + mt


def pa_mpjpe(pred: Tensor, true: Tensor) -> Tensor:
    """Procrustes-aligned mean per-point position error [mm] of ``(..., K, 3) [m]``, aligned
    per frame."""
    return (procrustes_align(pred, true) - true).norm(dim=-1).mean() * 1000.0


def mpjve(pred: Tensor, true: Tensor, frame_rate: float) -> Tensor:
    """Mean per-point velocity error [mm/s] of ``(..., T, K, 3) [m]`` (pelvis-relative
    points), velocities by forward differences over T at ``frame_rate`` [Hz]."""
    vp = (pred[..., 1:, :, :] - pred[..., :-1, :, :]) * frame_rate
    vt = (true[..., 1:, :, :] - true[..., :-1, :, :]) * frame_rate
    return (vp - vt).norm(dim=-1).mean() * 1000.0
