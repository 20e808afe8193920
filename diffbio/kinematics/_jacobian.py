"""Exact geometric Jacobians of points fixed on bodies.

For a point ``x`` on body ``b``, each axis of every joint between ``b`` and ground
contributes ``w x (x - o)`` (rotation axis ``w`` in ground acting about the joint centre
``o``) or ``t`` (translation axis in ground, scale included), times the derivative of
the axis function w.r.t. its coordinate. Coupled (dependent) coordinates are folded into
their independent coordinate, as OpenSim's kinematics treats them, when ``couplers=True``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from diffbio.kinematics._fk import BodyPoses, _forward
from diffbio.kinematics._tree import axis_values, kinematic_tree
from diffbio.model import Model


def _ancestors(model: Model, device) -> Tensor:
    """``(NB, J)`` bool: joint ``j`` lies on the path from body ``b`` to ground."""
    key = ("ancestors", device)
    mask = model._cache.get(key)
    if mask is None:
        nb, nj = model.num_bodies, len(model.joints)
        joint_of_child = {model.body_index(j.child_body): ji for ji, j in enumerate(model.joints)}
        parent_of = {
            model.body_index(j.child_body): model.body_index(j.parent_body) for j in model.joints
        }
        mask = torch.zeros(nb, nj, dtype=torch.bool)
        for b in range(nb):
            c = b
            while c >= 0:
                mask[b, joint_of_child[c]] = True
                c = parent_of[c]
        mask = mask.to(device)
        model._cache[key] = mask
    return mask


def point_jacobian(
    model: Model,
    q: Tensor,
    body: Tensor,
    points: Tensor,
    scales: Tensor | None = None,
    *,
    couplers: bool = False,
) -> tuple[Tensor, Tensor]:
    """Positions and Jacobians of points fixed on bodies.

    Args:
        model: the model.
        q: ``(..., Q) [rad or m]``.
        body: ``(K,)`` body indices.
        points: ``(K, 3)`` or ``(..., K, 3) [m]`` in the bodies' frames (already scaled).
        scales: optional ``(..., NB, 3)`` segment scales.
        couplers: fold dependent coordinates of coupler constraints into their
            independent coordinates (their columns are then zero).
    Returns:
        ``x: (..., K, 3) [m]`` in ground and ``J: (..., K, 3, Q)`` with ``J = dx/dq``.
    """
    poses, axes_G = _forward(model, q, scales, with_axes=True)
    x = _points(poses, body, points)
    tree = kinematic_tree(model, q.dtype, q.device)
    dv = axis_values(tree, q, order=1)  # (..., J, 6)
    centers = poses.joint_centers  # (..., J, 3)
    rel = x.unsqueeze(-2) - centers.unsqueeze(-3)  # (..., K, J, 3)
    w = axes_G[..., :3, :].unsqueeze(-4)  # (..., 1, J, 3, 3)
    w, r = torch.broadcast_tensors(w, rel.unsqueeze(-2))
    rot = torch.linalg.cross(w, r)  # (..., K, J, 3, 3)
    trans = axes_G[..., 3:, :].unsqueeze(-4).expand_as(rot)
    cols = torch.cat([rot, trans], -2)  # (..., K, J, 6, 3): d x / d v_{j,r}
    mask = _ancestors(model, q.device)[body]  # (K, J)
    cols = cols * mask[..., None, None].to(cols.dtype)
    cols = cols * dv.unsqueeze(-3).unsqueeze(-1)
    # scatter axes onto their coordinates
    coord = tree.coord.reshape(-1)  # (J*6,)
    valid = coord >= 0
    flat = cols.flatten(-3, -2)[..., valid, :]  # (..., K, A, 3)
    sel = torch.zeros(int(valid.sum()), model.num_coordinates, dtype=q.dtype, device=q.device)
    sel[torch.arange(sel.shape[0], device=q.device), coord[valid]] = 1.0
    jac = torch.einsum("...kac,aq->...kcq", flat, sel)
    if couplers and model.couplers:
        jac = fold_couplers(model, q, jac)
    return x, jac


def fold_couplers(model: Model, q: Tensor, jac: Tensor) -> Tensor:
    """Fold the columns of dependent coordinates into their independent coordinates:
    ``J[:, i] += J[:, d] * f'(q_i)``; the dependent columns become zero. ``jac: (..., Q)``
    last axis over coordinates."""
    jac = jac.clone()
    for k in model.couplers:
        i, d = model.coordinate_index(k.independent), model.coordinate_index(k.dependent)
        slope = k.function(q[..., i], 1)
        slope = slope.reshape(slope.shape + (1,) * (jac.dim() - slope.dim() - 1))
        jac[..., i] = jac[..., i] + jac[..., d] * slope
        jac[..., d] = 0.0
    return jac


def _points(poses: BodyPoses, body: Tensor, points: Tensor) -> Tensor:
    R = poses.rotation[..., body, :, :]
    p = poses.translation[..., body, :]
    return p + (R @ points.unsqueeze(-1)).squeeze(-1)
