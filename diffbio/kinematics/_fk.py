"""Batched, differentiable forward kinematics (torch reference implementation).

For joint ``j`` with parent body ``p`` and child body ``c``::

    X_G_c = X_G_p * X_pF * X_FM(q) * inv(X_cM)

with ``X_FM = (R(a1,f1) R(a2,f2) R(a3,f3), f4 a4 + f5 a5 + f6 a6)`` (see
:mod:`diffbio.model._model`). Segment scale factors ``scales: (..., NB, 3)`` act as OpenSim's
ScaleTool: the joint-frame offsets and markers on a body scale with that body, and the
coordinate-driven translation axes of a joint scale with its parent body (by ``axis .
scale``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from diffbio._errors import ShapeError
from diffbio._shapes import broadcast_shapes
from diffbio.kinematics._rotations import axis_angle_matrix, euler_xyz_from_matrix
from diffbio.kinematics._tree import KinematicTree, axis_values, kinematic_tree
from diffbio.model import Model


@dataclass(frozen=True)
class BodyPoses:
    """Poses of every body in ground.

    ``rotation: (..., NB, 3, 3)`` (columns are the body axes in ground),
    ``translation: (..., NB, 3) [m]`` (body origin in ground), ``joint_centers: (..., J, 3)
    [m]`` (origin of each joint's child-side frame M in ground, in ``model.joints`` order)."""

    rotation: Tensor
    translation: Tensor
    joint_centers: Tensor

    def euler_xyz(self) -> Tensor:
        """Body orientations as body-fixed X-Y-Z angles ``(..., NB, 3) [rad]``."""
        return euler_xyz_from_matrix(self.rotation)


def _check_q(model: Model, q: Tensor) -> None:
    if q.shape[-1:] != (model.num_coordinates,):
        raise ShapeError(
            f"q must have shape (..., Q) with Q = {model.num_coordinates} coordinates of model "
            f"{model.name!r}; got {tuple(q.shape)}"
        )


def _check_scales(model: Model, scales: Tensor) -> None:
    if scales.shape[-2:] != (model.num_bodies, 3):
        raise ShapeError(
            f"scales must have shape (..., NB, 3) with NB = {model.num_bodies}; got {tuple(scales.shape)}"
        )


def joint_transforms(tree: KinematicTree, q: Tensor) -> tuple[Tensor, Tensor]:
    """``R_FM (..., J, 3, 3)`` and unscaled per-axis translations ``(..., J, 3)``."""
    R, _, tvals = _joint_rotations(tree, q)
    return R, tvals


def _joint_rotations(tree: KinematicTree, q: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``R_FM``, the three rotation axes expressed in F as they act (body-fixed sequence:
    ``a1``, ``R1 a2``, ``R1 R2 a3``; ``(..., J, 3, 3)``, rows) and translation values."""
    v = axis_values(tree, q)
    R1 = axis_angle_matrix(tree.axes[:, 0], v[..., 0])
    R12 = R1 @ axis_angle_matrix(tree.axes[:, 1], v[..., 1])
    R = R12 @ axis_angle_matrix(tree.axes[:, 2], v[..., 2])
    a = tree.axes[:, :3]
    w = torch.stack(
        [
            a[:, 0].expand_as(R[..., 0]),
            (R1 @ a[:, 1].unsqueeze(-1)).squeeze(-1),
            (R12 @ a[:, 2].unsqueeze(-1)).squeeze(-1),
        ],
        -2,
    )
    return R, w, v[..., 3:]


def _scaled_inputs(
    tree: KinematicTree, trans_vals: Tensor, scales: Tensor | None, with_factor: bool = False
):
    """Scaled offsets and joint translations ``p_FM (..., J, 3)`` (and, with
    ``with_factor``, the scale factor of each translation axis ``(..., J, 3)``)."""
    axes_t = tree.axes[:, 3:]  # (J, 3, 3) rows are axes
    if scales is None:
        p_FM = (trans_vals.unsqueeze(-1) * axes_t).sum(-2)
        out = (tree.t_pF, tree.t_cM, p_FM)
        return (*out, torch.ones_like(tree.t_pF)) if with_factor else out
    ones = torch.ones_like(scales[..., :1, :])
    s_ext = torch.cat([scales, ones], -2)  # index -1 -> ground (unit scale)
    s_parent = s_ext[..., tree.parent, :]  # (..., J, 3)
    s_child = s_ext[..., tree.child, :]
    factor = (axes_t * s_parent.unsqueeze(-2)).sum(-1)  # (..., J, 3): axis . s_parent
    factor = torch.where(tree.scaled_translation, factor, torch.ones_like(factor))
    p_FM = ((trans_vals * factor).unsqueeze(-1) * axes_t).sum(-2)
    out = (tree.t_pF * s_parent, tree.t_cM * s_child, p_FM)
    return (*out, factor) if with_factor else out


def forward_kinematics(model: Model, q: Tensor, scales: Tensor | None = None) -> BodyPoses:
    """Body poses from coordinates.

    Args:
        model: the model.
        q: ``(..., Q) [rad or m]`` coordinates in ``model.coordinate_names`` order.
        scales: optional ``(..., NB, 3)`` segment scale factors (broadcast against ``q``'s
            leading dimensions); ``None`` means the model as loaded.
    Returns:
        :class:`BodyPoses` with leading dimensions ``...``.
    """
    return _forward(model, q, scales)[0]


def _forward(model: Model, q: Tensor, scales: Tensor | None, with_axes: bool = False):
    """Forward kinematics; with ``with_axes`` also every joint axis in ground
    ``(..., J, 6, 3)`` (rotation axes as they act, translation axes times their scale
    factor), the quantities of the geometric Jacobian."""
    _check_q(model, q)
    if scales is not None:
        _check_scales(model, scales)
    tree = kinematic_tree(model, q.dtype, q.device)
    R_FM, w_F, tvals = _joint_rotations(tree, q)
    t_pF, t_cM, p_FM, factor = _scaled_inputs(tree, tvals, scales, with_factor=True)
    lead = broadcast_shapes(q.shape[:-1], p_FM.shape[:-2])
    nb = model.num_bodies
    Rs: list[Tensor | None] = [None] * nb
    ps: list[Tensor | None] = [None] * nb
    centers = []
    axes_G: list[Tensor] = []
    eye = torch.eye(3, dtype=q.dtype, device=q.device).expand(*lead, 3, 3)
    zero = torch.zeros(*lead, 3, dtype=q.dtype, device=q.device)
    parent = tree.parent.tolist()
    child = tree.child.tolist()
    for j in range(len(parent)):
        pi = parent[j]
        R_Gp, p_Gp = (eye, zero) if pi < 0 else (Rs[pi], ps[pi])
        R_GF = R_Gp @ tree.R_pF[j]
        p_GF = p_Gp + (R_Gp @ t_pF[..., j, :].unsqueeze(-1)).squeeze(-1)
        if with_axes:
            t_ax = tree.axes[j, 3:] * factor[..., j, :, None]
            w_j, t_ax = torch.broadcast_tensors(w_F[..., j, :, :], t_ax)
            ax_F = torch.cat([w_j, t_ax], -2)
            axes_G.append((R_GF.unsqueeze(-3) @ ax_F.unsqueeze(-1)).squeeze(-1).expand(*lead, 6, 3))
        R_GM = R_GF @ R_FM[..., j, :, :]
        p_GM = p_GF + (R_GF @ p_FM[..., j, :].unsqueeze(-1)).squeeze(-1)
        R_Gc = R_GM @ tree.R_cM[j].transpose(-1, -2)
        p_Gc = p_GM - (R_Gc @ t_cM[..., j, :].unsqueeze(-1)).squeeze(-1)
        Rs[child[j]] = R_Gc.expand(*lead, 3, 3)
        ps[child[j]] = p_Gc.expand(*lead, 3)
        centers.append(p_GM.expand(*lead, 3))
    poses = BodyPoses(torch.stack(Rs, -3), torch.stack(ps, -2), torch.stack(centers, -2))
    return poses, (torch.stack(axes_G, -3) if with_axes else None)


def marker_positions(
    model: Model,
    poses: BodyPoses,
    scales: Tensor | None = None,
    markers: list[str] | tuple[str, ...] | None = None,
) -> Tensor:
    """Marker positions in ground ``(..., K, 3) [m]`` for ``markers`` (default: all, in
    ``model.marker_names`` order). Marker locations scale with their body."""
    names = model.marker_names if markers is None else tuple(markers)
    dtype, device = poses.translation.dtype, poses.translation.device
    cache_key = ("markers", names, dtype, device)
    cached = model._cache.get(cache_key)
    if cached is None:
        by_name = {m.name: m for m in model.markers}
        missing = [n for n in names if n not in by_name]
        if missing:
            from diffbio._errors import ModelError

            raise ModelError(f"model {model.name!r} has no markers {missing}")
        body = torch.tensor(
            [model.body_index(by_name[n].body) for n in names], dtype=torch.long, device=device
        )
        loc = torch.tensor([by_name[n].location for n in names], dtype=dtype, device=device)
        cached = (body, loc.reshape(-1, 3))
        model._cache[cache_key] = cached
    body, loc = cached
    if scales is not None:
        loc = loc * scales[..., body, :]
    R = poses.rotation[..., body, :, :]
    p = poses.translation[..., body, :]
    return p + (R @ loc.unsqueeze(-1)).squeeze(-1)


def body_points(poses: BodyPoses, body: Tensor, points: Tensor) -> Tensor:
    """Points fixed on bodies, in ground: ``body: (K,)`` indices, ``points: (..., K, 3) [m]``
    in each body's frame -> ``(..., K, 3) [m]``."""
    R = poses.rotation[..., body, :, :]
    p = poses.translation[..., body, :]
    return p + (R @ points.unsqueeze(-1)).squeeze(-1)


def apply_couplers(model: Model, q: Tensor) -> Tensor:
    """``q`` with every CoordinateCouplerConstraint's dependent coordinate recomputed from
    its independent coordinate, ``(..., Q) -> (..., Q)``."""
    if not model.couplers:
        return q
    cols = list(q.unbind(-1))
    for k in model.couplers:
        cols[model.coordinate_index(k.dependent)] = k.function(
            cols[model.coordinate_index(k.independent)]
        )
    return torch.stack(cols, -1)
