"""Training losses of the video-to-kinematics network.

* ``angle_loss``: free rotational coordinates compared on the unit circle (the predicted
  (cos, sin) pair, normalised, against the true one, L1), all other coordinates in L1
  [rad or m].
* ``scale_loss``: L1 between segment scales.
* ``bio_loss``: mean distance [rad or m] by which coordinates leave their ranges.
* ``position_loss``: mean squared keypoint distance [m^2] relative to the pelvis through the
  differentiable forward kinematics (keypoints of :func:`diffbio.data.keypoints`); squared so
  that the reference weight of 100 keeps it of the order of the angle term.
* ``physics_loss``: root-residual consistency through inverse dynamics: the residual root
  force and moment (no external loads, so the force the environment must supply) of the
  predicted motion against those of the labels, in body weights and body weight x metre.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from diffbio.model import Model

__all__ = [
    "LossWeights",
    "angle_loss",
    "bio_loss",
    "position_loss",
    "physics_loss",
    "scale_loss",
    "total_loss",
]


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms (the reference design uses ``pos = 100``)."""

    angle: float = 1.0
    scale: float = 1.0
    bio: float = 1.0
    pos: float = 100.0
    physics: float = 0.0


def angle_loss(q_pred: Tensor, free_vec: Tensor, q_true: Tensor, free: Tensor) -> Tensor:
    """Coordinate loss.

    q_pred, q_true: ``(..., Q) [rad or m]``; free_vec: ``(..., nfree, 2)`` unnormalised
    (cos, sin) predictions for the coordinates at indices ``free: (nfree,)``. Returns a
    scalar: the L1 of the unit-circle points of the free coordinates plus the L1 of the
    others, averaged over coordinates and batch.
    """
    Q = q_true.shape[-1]
    mask = torch.ones(Q, dtype=torch.bool, device=q_true.device)
    mask[free] = False
    l_other = (q_pred[..., mask] - q_true[..., mask]).abs().sum(-1)
    unit = free_vec / free_vec.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    t = q_true[..., free]
    target = torch.stack([torch.cos(t), torch.sin(t)], -1)
    l_free = (unit - target).abs().sum((-1, -2))
    return ((l_other + l_free) / Q).mean()


def scale_loss(s_pred: Tensor, s_true: Tensor) -> Tensor:
    """Mean L1 between scales ``(..., NB, 3)``."""
    return (s_pred - s_true).abs().mean()


def _limits(model: Model, dtype, device) -> tuple[Tensor, Tensor]:
    lo = torch.tensor([c.range[0] for c in model.coordinates], dtype=dtype, device=device)
    hi = torch.tensor([c.range[1] for c in model.coordinates], dtype=dtype, device=device)
    return lo, hi


def bio_loss(model: Model, q: Tensor) -> Tensor:
    """Mean range violation of ``q: (..., Q) [rad or m]`` against the model's coordinate
    ranges (zero inside)."""
    lo, hi = _limits(model, q.dtype, q.device)
    return (torch.relu(lo - q) + torch.relu(q - hi)).mean()


def position_loss(
    model: Model, q_pred: Tensor, s_pred: Tensor, q_true: Tensor, s_true: Tensor
) -> Tensor:
    """Mean squared pelvis-relative keypoint distance [m^2].

    q_pred, q_true: ``(B, T, Q)``; s_pred, s_true: ``(B, NB, 3)``.
    """
    from diffbio.data._synthetic import keypoints

    kp = keypoints(model, q_pred, s_pred.unsqueeze(-3))
    kt = keypoints(model, q_true, s_true.unsqueeze(-3))
    kp = kp - kp[..., :1, :]
    kt = kt - kt[..., :1, :]
    return (kp - kt).pow(2).sum(-1).mean()


def _derivatives(q: Tensor, dt: float) -> tuple[Tensor, Tensor, Tensor]:
    """Central differences over time (dim -2): ``q, qd, qdd`` on the interior frames."""
    qd = (q[..., 2:, :] - q[..., :-2, :]) / (2 * dt)
    qdd = (q[..., 2:, :] - 2 * q[..., 1:-1, :] + q[..., :-2, :]) / dt**2
    return q[..., 1:-1, :], qd, qdd


def physics_loss(
    model: Model, q_pred: Tensor, s_pred: Tensor, q_true: Tensor, s_true: Tensor, frame_rate: float
) -> Tensor:
    """Root-residual consistency: mean |F_pred - F_true| / (m g) + |M_pred - M_true| / (m g
    1 m), the root residuals of :func:`diffbio.dynamics.root_residuals` with no external
    loads, from central differences of ``q: (B, T, Q)``, scales ``(B, NB, 3)``."""
    from diffbio.dynamics import root_residuals

    dt = 1.0 / frame_rate
    out = []
    for q, s in ((q_pred, s_pred), (q_true, s_true)):
        qq, qd, qdd = _derivatives(q, dt)
        r = root_residuals(model, qq, qd, qdd, None, scales=s.unsqueeze(-3))
        out.append((r.force, r.moment))
    weight = model.total_mass * 9.80665
    df = (out[0][0] - out[1][0]).norm(dim=-1) / weight
    dm = (out[0][1] - out[1][1]).norm(dim=-1) / weight
    return (df + dm).mean()


def total_loss(
    model: Model,
    weights: LossWeights,
    q_pred: Tensor,
    free_vec: Tensor,
    s_pred: Tensor,
    q_true: Tensor,
    s_true: Tensor,
    free: Tensor,
    frame_rate: float,
) -> tuple[Tensor, dict[str, float]]:
    """The weighted sum of the terms with non-zero weight, and each term's value."""
    # "circle" keeps the raw (cos, sin) pairs near unit length, so that the gradient of
    # atan2 (which grows as 1 / length) stays bounded under the weight-100 keypoint loss.
    terms: dict[str, Tensor] = {
        "angle": angle_loss(q_pred, free_vec, q_true, free),
        "circle": (free_vec.norm(dim=-1) - 1.0).pow(2).mean(),
        "scale": scale_loss(s_pred, s_true),
    }
    if weights.bio:
        terms["bio"] = bio_loss(model, q_pred)
    if weights.pos:
        terms["pos"] = position_loss(model, q_pred, s_pred, q_true, s_true)
    if weights.physics:
        terms["physics"] = physics_loss(model, q_pred, s_pred, q_true, s_true, frame_rate)
    total = sum(getattr(weights, k if k != "circle" else "angle") * v for k, v in terms.items())
    return total, {k: float(v.detach()) for k, v in terms.items()}
