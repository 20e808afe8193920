"""Evaluation metrics: joint-angle MAE [deg], PA-MPJPE [mm] and MPJVE [mm/s], and the root
orientation's Euler branch and geodesic error.

Positions are the skeleton points of :func:`diffbio.data.keypoints` without markers (joint
centres and segment centres of mass), taken relative to the pelvis (the first joint centre).
"""

from __future__ import annotations

import math
import weakref

import torch
from torch import Tensor

from diffbio.model import Model

__all__ = [
    "mae_deg",
    "mpjve",
    "pa_mpjpe",
    "procrustes_align",
    "root_branch",
    "root_equivalent",
    "root_flip_fraction",
    "root_geodesic_deg",
    "skeleton_points",
]

# Candidate maps (sign, offset) from an Euler triple (a, b, c) to the other triple of the same
# rotation: (a + pi, pi - b, c + pi) for three distinct axes (Tait-Bryan, e.g. the default
# model's pelvis Z-X-Y), (a + pi, -b, c + pi) for a repeated first and last axis (proper
# Euler). Which one holds is checked through the forward kinematics, never assumed.
_CANDIDATES = (
    ((1.0, -1.0, 1.0), (math.pi, math.pi, math.pi)),
    ((1.0, -1.0, 1.0), (math.pi, 0.0, math.pi)),
)
_BRANCH_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _wrap(d: Tensor) -> Tensor:
    return torch.atan2(torch.sin(d), torch.cos(d))


def root_branch(
    model: Model,
) -> tuple[tuple[int, int, int], tuple[float, ...], tuple[float, ...]] | None:
    """The root joint's rotational coordinates ``(i, j, k)`` in rotation order and the map
    ``q_alt = sign * q + offset`` to the other Euler triple of the same root orientation, or
    None where the root has no three rotational coordinates (then there is no second branch).

    The map is the one of two candidates, (a + pi, pi - b, c + pi) or (a + pi, -b, c + pi),
    under which the root body's rotation from :func:`diffbio.kinematics.forward_kinematics`
    agrees to 1e-9 at random triples (cached per model)."""
    try:
        return _BRANCH_CACHE[model]
    except (KeyError, TypeError):
        pass
    from diffbio.kinematics import forward_kinematics

    root = model.joints[0]
    idx = tuple(
        model.coordinate_index(a.coordinate)
        for a in root.axes
        if a.coordinate and model.rotational_mask[model.coordinate_index(a.coordinate)]
    )
    out = None
    if len(idx) == 3:
        gen = torch.Generator().manual_seed(0)
        q0 = torch.tensor([c.default_value for c in model.coordinates], dtype=torch.float64)
        q = q0.repeat(8, 1)
        q[:, list(idx)] = (torch.rand(8, 3, generator=gen, dtype=torch.float64) - 0.5) * 2.4
        b = model.body_index(root.child_body)
        R = forward_kinematics(model, q).rotation[:, b]
        for sign, offset in _CANDIDATES:
            q2 = q.clone()
            q2[:, list(idx)] = q[:, list(idx)] * torch.tensor(sign, dtype=q.dtype) + torch.tensor(
                offset, dtype=q.dtype
            )
            if (forward_kinematics(model, q2).rotation[:, b] - R).abs().max() < 1e-9:
                out = (idx, sign, offset)
                break
    try:
        _BRANCH_CACHE[model] = out
    except TypeError:
        pass
    return out


def root_equivalent(model: Model, q: Tensor) -> Tensor:
    """``q: (..., Q) [rad or m]`` with the root's Euler triple moved to its other branch
    (the same poses and positions; see :func:`root_branch`); ``q`` itself where there is
    none."""
    br = root_branch(model)
    if br is None:
        return q
    idx, sign, offset = br
    i = torch.tensor(idx, dtype=torch.long, device=q.device)
    alt = q[..., i] * q.new_tensor(sign) + q.new_tensor(offset)
    return q.index_copy(-1, i, _wrap(alt))


def _root_on_other_branch(model: Model, q_pred: Tensor, q_true: Tensor) -> Tensor | None:
    """``(...,)`` True where the predicted root triple is nearer (sum of wrapped absolute
    differences) the true triple's other branch than the true triple itself."""
    br = root_branch(model)
    if br is None:
        return None
    i = torch.tensor(br[0], dtype=torch.long, device=q_true.device)
    d_same = _wrap(q_pred[..., i] - q_true[..., i]).abs().sum(-1)
    d_alt = _wrap(q_pred[..., i] - root_equivalent(model, q_true)[..., i]).abs().sum(-1)
    return d_alt < d_same


def mae_deg(model: Model, q_pred: Tensor, q_true: Tensor) -> Tensor:
    """Mean absolute error of the rotational coordinates [deg], each difference wrapped to
    (-180, 180]; ``q: (..., Q) [rad or m]``.

    Branch-aware for the root joint: its three Euler angles have two triples per orientation
    (:func:`root_branch`; for the default model's pelvis, tilt-list-rotation about Z-X-Y,
    (a, b, c) and (a + 180, 180 - b, c + 180) deg, checked through the forward kinematics).
    Per frame, the root triple's errors are taken against whichever of the true triple and
    its equivalent triple is nearer (smaller sum of absolute errors), so a prediction of the
    same orientation on the other branch scores 0 for the root; every other rotational
    coordinate counts as it is. The mean is over frames and rotational coordinates.
    """
    rot = torch.tensor(model.rotational_mask, dtype=torch.bool, device=q_true.device)
    other = _root_on_other_branch(model, q_pred, q_true)
    if other is not None:
        q_true = torch.where(other.unsqueeze(-1), root_equivalent(model, q_true), q_true)
    d = _wrap(q_pred[..., rot] - q_true[..., rot])
    return d.abs().mean() * (180.0 / math.pi)


def root_flip_fraction(model: Model, q_pred: Tensor, q_true: Tensor) -> Tensor:
    """The fraction of frames whose predicted root triple lies nearer the other branch of the
    true orientation than the true triple (0 where the root has no second branch);
    ``q: (..., Q)``."""
    other = _root_on_other_branch(model, q_pred, q_true)
    if other is None:
        return q_true.new_zeros(())
    return other.to(q_true.dtype).mean()


def root_geodesic_deg(model: Model, q_pred: Tensor, q_true: Tensor) -> Tensor:
    """Mean angle [deg] of the rotation from the predicted to the true root-body orientation
    (through the forward kinematics; branch-invariant), ``q: (..., Q)``."""
    from diffbio.kinematics import forward_kinematics

    b = model.body_index(model.joints[0].child_body)
    Rp = forward_kinematics(model, q_pred).rotation[..., b, :, :]
    Rt = forward_kinematics(model, q_true).rotation[..., b, :, :]
    cos = ((Rp.transpose(-1, -2) @ Rt).diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0
    return torch.arccos(cos.clamp(-1.0, 1.0)).mean() * (180.0 / math.pi)


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
