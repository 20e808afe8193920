"""Batched recursive Newton-Euler inverse dynamics, mass matrix and bias forces (torch).

Formulation. Every joint is a CustomJoint (see :mod:`diffbio.model._model`): three
translations along axes of the parent-side frame F, then three body-fixed rotations. We
treat it as a chain of six elementary screws with values ``v_k = f_k(q_c(k))``, so that

    dv_k/dt = f'_k qd,   d2v_k/dt2 = f''_k qd^2 + f'_k qdd,

and a coordinate's generalized force is ``tau_i = sum_k f'_k(q_i) s_k . W_j`` over the axes
``k`` it drives: exactly the projection of the joint's transmitted wrench ``W_j`` on
``dX_FM/dq_i``, which is how Simbody (OpenSim) defines the generalized forces of a
function-based (Custom) joint, spline-driven translations included.

All spatial vectors are expressed in ground and taken about the ground origin
(``(angular, linear)``), so that the tree recursions are sums over ancestors (motion) and
descendants (forces): with ``s_k`` the screw of axis ``k`` and ``V_k-`` the velocity of
the sub-frame before it,

    V_c = V_p + sum_k s_k dv_k,     A_c = A_p + sum_k (s_k d2v_k + V_k- x s_k dv_k),

with the ground "accelerating" at ``-g`` to account for gravity. Each body's
Newton-Euler wrench ``f_b = I_b A_b + V_b x* I_b V_b - f_ext,b``; the wrench through joint
``j`` is the sum of ``f_b`` over the subtree of its child. Constraints are ignored, as in
OpenSim's ``InverseDynamicsSolver`` (``calcResidualForceIgnoringConstraints``): the
dependent coordinate of a CoordinateCouplerConstraint gets its own generalized force from
whatever kinematics it is given.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from diffbio._errors import ModelError, ShapeError
from diffbio.dynamics._inertial import (
    BodyInertial,
    body_inertial,
    check_inertial,
    scale_body_inertial,
)
from diffbio.kinematics import axis_angle_matrix, forward_kinematics, kinematic_tree
from diffbio.kinematics._fk import _check_q, _check_scales
from diffbio.model import Model


# ---------------------------------------------------------------------------- loads
@dataclass(frozen=True)
class BodyWrenches:
    """External wrenches on every body, in ground.

    ``force: (..., NB, 3) [N]`` acting along a line through ``point: (..., NB, 3) [m]``,
    plus a free ``torque: (..., NB, 3) [N m]``; all expressed in ground. The moment about
    the ground origin is ``point x force + torque``. Bodies without loads carry zeros."""

    force: Tensor
    torque: Tensor
    point: Tensor

    @staticmethod
    def zeros(model: Model, lead=(), dtype=torch.float64, device=None) -> BodyWrenches:
        z = torch.zeros(*lead, model.num_bodies, 3, dtype=dtype, device=device)
        return BodyWrenches(z, z.clone(), z.clone())

    def moment_about_origin(self) -> Tensor:
        """``(..., NB, 3) [N m]``: total moment about the ground origin."""
        return torch.linalg.cross(self.point, self.force) + self.torque

    def __add__(self, other: BodyWrenches) -> BodyWrenches:
        """Sum of two load sets (referred to ``self.point``)."""
        torque = (
            self.torque + other.torque + torch.linalg.cross(other.point - self.point, other.force)
        )
        return BodyWrenches(self.force + other.force, torque, self.point.expand_as(torque))


# ---------------------------------------------------------------------------- topology
@dataclass(frozen=True)
class _Topology:
    anc: Tensor  # (NB, J) 1 where joint j lies on the path ground -> body b
    body_joint: Tensor  # (NB,) inboard joint of each body
    coord_joint: Tensor  # (Q,) joint of each coordinate (-1: drives no axis)
    related: Tensor  # (Q, Q) bool: joints on one root path
    deeper: Tensor  # (Q, Q) index of the deeper of the two joints


def _topology(model: Model, dtype, device) -> _Topology:
    key = ("dyn_topology", dtype, device)
    topo = model._cache.get(key)
    if topo is not None:
        return topo
    tree = kinematic_tree(model, dtype, device)
    parent = tree.parent.tolist()
    child = tree.child.tolist()
    nb, nj, nq = model.num_bodies, len(parent), model.num_coordinates
    if any(c < 0 for c in child):
        raise ModelError(f"model {model.name!r}: a joint has ground as its child body")
    body_joint = [-1] * nb
    for j, c in enumerate(child):
        if body_joint[c] >= 0:
            raise ModelError(f"model {model.name!r}: body {model.bodies[c].name!r} has two joints")
        body_joint[c] = j
    missing = [model.bodies[b].name for b in range(nb) if body_joint[b] < 0]
    if missing:
        raise ModelError(f"model {model.name!r}: bodies without a joint: {missing}")
    anc = torch.zeros(nb, nj, dtype=dtype)
    for b in range(nb):
        j = body_joint[b]
        while j >= 0:
            anc[b, j] = 1.0
            p = parent[j]
            j = body_joint[p] if p >= 0 else -1
    coord_joint = [-1] * nq
    for j, row in enumerate(tree.coord.tolist()):
        for c in row:
            if c >= 0:
                coord_joint[c] = j
    janc = [[False] * nj for _ in range(nj)]  # janc[a][d]: a is ancestor-or-self of d
    for d in range(nj):
        for a in range(nj):
            janc[a][d] = bool(anc[child[d], a])
    related = torch.zeros(nq, nq, dtype=torch.bool)
    deeper = torch.zeros(nq, nq, dtype=torch.long)
    for i in range(nq):
        for k in range(nq):
            a, b = coord_joint[i], coord_joint[k]
            if a < 0 or b < 0:
                continue
            if janc[a][b]:
                related[i, k], deeper[i, k] = True, b
            elif janc[b][a]:
                related[i, k], deeper[i, k] = True, a
    topo = _Topology(
        anc=anc.to(device),
        body_joint=torch.tensor(body_joint, device=device),
        coord_joint=torch.tensor(coord_joint, device=device),
        related=related.to(device),
        deeper=deeper.to(device),
    )
    model._cache[key] = topo
    return topo


# ---------------------------------------------------------------------------- helpers
def _cross(a: Tensor, b: Tensor) -> Tensor:
    return torch.linalg.cross(a, b)


def _mv(R: Tensor, v: Tensor) -> Tensor:
    return (R @ v.unsqueeze(-1)).squeeze(-1)


def _motion_cross(v: Tensor, m: Tensor) -> Tensor:
    """Spatial motion cross product ``v x m`` for ``(..., 6)`` vectors (angular first)."""
    w, u = v[..., :3], v[..., 3:]
    mw, mu = m[..., :3], m[..., 3:]
    return torch.cat([_cross(w, mw), _cross(w, mu) + _cross(u, mw)], -1)


@dataclass(frozen=True)
class _JointScrews:
    """Per-joint screws in ground and their coordinate derivatives."""

    s: Tensor  # (..., J, 6, 6): screw of axis k (rows), spatial (angular, linear)
    d1: Tensor  # (..., J, 6): dv_k/dq (translations include the scale factor)
    d2: Tensor  # (..., J, 6): d2v_k/dq2
    R: Tensor  # (..., NB, 3, 3) body rotations
    p: Tensor  # (..., NB, 3) body origins


def _screws(model: Model, q: Tensor, scales: Tensor | None) -> _JointScrews:
    tree = kinematic_tree(model, q.dtype, q.device)
    from diffbio.kinematics import axis_values

    poses = forward_kinematics(model, q, scales)
    lead = poses.translation.shape[:-2]
    v0 = axis_values(tree, q, 0)
    d1 = axis_values(tree, q, 1)
    d2 = axis_values(tree, q, 2)
    if scales is not None:
        ones = torch.ones_like(scales[..., :1, :])
        s_parent = torch.cat([scales, ones], -2)[..., tree.parent, :]
        factor = (tree.axes[:, 3:] * s_parent.unsqueeze(-2)).sum(-1)
        factor = torch.where(tree.scaled_translation, factor, torch.ones_like(factor))
        one3 = torch.ones_like(factor)
        f6 = torch.cat([one3, factor], -1)
        d1 = d1 * f6
        d2 = d2 * f6
    eye = torch.eye(3, dtype=q.dtype, device=q.device).expand(*lead, 1, 3, 3)
    R_ext = torch.cat([poses.rotation, eye], -3)
    R_GF = R_ext[..., tree.parent, :, :] @ tree.R_pF  # (..., J, 3, 3)
    Ra = axis_angle_matrix(tree.axes[:, 0], v0[..., 0])
    Rb = axis_angle_matrix(tree.axes[:, 1], v0[..., 1])
    R1 = R_GF @ Ra
    R2 = R1 @ Rb
    ax = tree.axes
    u = torch.stack(
        [
            _mv(R_GF, ax[:, 0].expand_as(v0[..., :3])),
            _mv(R1, ax[:, 1].expand_as(v0[..., :3])),
            _mv(R2, ax[:, 2].expand_as(v0[..., :3])),
        ],
        -2,
    )  # (..., J, 3, 3) rotation axes in ground
    ut = (R_GF.unsqueeze(-3) @ ax[:, 3:].unsqueeze(-1)).squeeze(-1)  # (..., J, 3, 3)
    c = poses.joint_centers.unsqueeze(-2).expand_as(u)
    s_rot = torch.cat([u, _cross(c, u)], -1)
    s_tr = torch.cat([torch.zeros_like(ut), ut], -1)
    s = torch.cat([s_rot, s_tr], -2)
    return _JointScrews(s, d1, d2, poses.rotation, poses.translation)


def _resolve_inertial(
    model: Model, inertial: BodyInertial | None, scales: Tensor | None, dtype, device
) -> BodyInertial:
    if inertial is None:
        inertial = body_inertial(model, dtype, device)
    else:
        check_inertial(model, inertial)
    if scales is not None:
        inertial = scale_body_inertial(inertial, scales, scale_mass=True)
    return inertial


def _spatial_inertia_terms(inertial: BodyInertial, R: Tensor, p: Tensor):
    """Mass centres ``c (..., NB, 3)`` and inertias about them ``I_G (..., NB, 3, 3)`` in
    ground."""
    c = p + _mv(R, inertial.com)
    I_G = R @ inertial.inertia_matrix() @ R.transpose(-1, -2)
    return c, I_G


def _check_same(model: Model, name: str, x: Tensor) -> None:
    if x.shape[-1:] != (model.num_coordinates,):
        raise ShapeError(
            f"{name} must have shape (..., Q) with Q = {model.num_coordinates}; got "
            f"{tuple(x.shape)}"
        )


def _check_loads(model: Model, loads: BodyWrenches) -> None:
    for name in ("force", "torque", "point"):
        t = getattr(loads, name)
        if t.shape[-2:] != (model.num_bodies, 3):
            raise ShapeError(
                f"loads.{name} must have shape (..., NB, 3) with NB = {model.num_bodies}; "
                f"got {tuple(t.shape)}"
            )


# ---------------------------------------------------------------------------- public
def inverse_dynamics(
    model: Model,
    q: Tensor,
    qd: Tensor,
    qdd: Tensor,
    loads: BodyWrenches | None = None,
    *,
    scales: Tensor | None = None,
    inertial: BodyInertial | None = None,
    gravity: bool = True,
) -> Tensor:
    """Generalized forces that produce ``qdd`` under gravity and external ``loads``.

    ``tau = M(q) qdd + C(q, qd) + G(q) - J(q)^T f_ext``, as OpenSim's InverseDynamicsSolver
    reports it with muscles excluded (constraints ignored; see the module docstring).

    Args:
        model: the model.
        q, qd, qdd: ``(..., Q)`` coordinates [rad or m], their first [rad/s or m/s] and
            second [rad/s^2 or m/s^2] time derivatives, in ``model.coordinate_names`` order.
        loads: external :class:`BodyWrenches` ``(..., NB, 3)`` in ground, or ``None``.
        scales: ``(..., NB, 3)`` segment scale factors: geometry, mass centres, masses and
            inertias scale as OpenSim's ``Body::scale(factors, scale_mass=True)``.
        inertial: :class:`BodyInertial` overriding the model's (unscaled) inertial
            parameters; ``None`` uses the model's.
        gravity: include the model's gravity.
    Returns:
        ``tau: (..., Q)`` [N m for rotational, N for translational coordinates].
    """
    return _newton_euler(model, q, qd, qdd, loads, scales, inertial, gravity)[0]


def _newton_euler(model, q, qd, qdd, loads, scales, inertial, gravity):
    """``tau (..., Q)``, joint wrenches ``W (..., J, 6)`` (about the ground origin, in
    ground) and the joint screws."""
    _check_q(model, q)
    _check_same(model, "qd", qd)
    _check_same(model, "qdd", qdd)
    if scales is not None:
        _check_scales(model, scales)
    if loads is not None:
        _check_loads(model, loads)
    topo = _topology(model, q.dtype, q.device)
    tree = kinematic_tree(model, q.dtype, q.device)
    js = _screws(model, q, scales)
    inertial = _resolve_inertial(model, inertial, scales, q.dtype, q.device)

    cidx = tree.coord.clamp_min(0)
    has = tree.coord >= 0
    qd_ax = torch.where(has, qd[..., cidx], torch.zeros_like(qd[..., cidx]))
    qdd_ax = torch.where(has, qdd[..., cidx], torch.zeros_like(qdd[..., cidx]))
    vd = js.d1 * qd_ax  # (..., J, 6) axis rates
    vdd = js.d2 * qd_ax * qd_ax + js.d1 * qdd_ax
    sv = js.s * vd.unsqueeze(-1)  # (..., J, 6, 6) per-axis velocity contributions
    dV = sv.sum(-2)
    V = torch.einsum("bj,...jx->...bx", topo.anc, dV)  # (..., NB, 6)
    zero6 = torch.zeros_like(V[..., :1, :])
    Vp = torch.cat([V, zero6], -2)[..., tree.parent, :]  # (..., J, 6)
    # Sub-frame velocity before each axis: translations (3..5) see V_p; rotation k sees
    # V_p + translations + earlier rotations.
    tr = sv[..., 3:, :].sum(-2)
    before = torch.stack(
        [Vp + tr, Vp + tr + sv[..., 0, :], Vp + tr + sv[..., 0, :] + sv[..., 1, :]], -2
    )
    before = torch.cat([before, Vp.unsqueeze(-2).expand_as(before)], -2)
    dA = (js.s * vdd.unsqueeze(-1)).sum(-2) + _motion_cross(before, sv).sum(-2)
    A = torch.einsum("bj,...jx->...bx", topo.anc, dA)
    if gravity:
        g = torch.tensor(model.gravity, dtype=q.dtype, device=q.device)
        A = A + torch.cat([torch.zeros_like(g), -g])

    c, I_G = _spatial_inertia_terms(inertial, js.R, js.p)
    w, vO = V[..., :3], V[..., 3:]
    alpha, aO = A[..., :3], A[..., 3:]
    vc = vO + _cross(w, c)
    ac = aO + _cross(alpha, c) + _cross(w, vc)
    m = inertial.mass.unsqueeze(-1)
    F = m * ac
    N = _mv(I_G, alpha) + _cross(w, _mv(I_G, w)) + _cross(c, F)
    if loads is not None:
        F = F - loads.force
        N = N - loads.moment_about_origin()
    f = torch.cat([N, F], -1)  # (..., NB, 6)
    W = torch.einsum("bj,...bx->...jx", topo.anc, f)  # (..., J, 6)
    tau_ax = (js.s * W.unsqueeze(-2)).sum(-1) * js.d1  # (..., J, 6)
    return _scatter_axes(model, tree, tau_ax), W, js


def _scatter_axes(model: Model, tree, tau_ax: Tensor) -> Tensor:
    lead = tau_ax.shape[:-2]
    flat_c = tree.coord.reshape(-1)
    keep = torch.nonzero(flat_c >= 0).squeeze(-1)
    vals = tau_ax.reshape(*lead, -1)[..., keep]
    out = torch.zeros(*lead, model.num_coordinates, dtype=tau_ax.dtype, device=tau_ax.device)
    return out.index_add(-1, flat_c[keep], vals)


def coordinate_screws(model: Model, q: Tensor, scales: Tensor | None = None) -> Tensor:
    """The motion subspace of every coordinate, ``dV/dqd``: ``(..., Q, 6)`` spatial
    vectors in ground about the ground origin, ``(angular [1/s per unit qd], linear)``."""
    _check_q(model, q)
    tree = kinematic_tree(model, q.dtype, q.device)
    js = _screws(model, q, scales)
    cols = js.s * js.d1.unsqueeze(-1)  # (..., J, 6, 6)
    lead = cols.shape[:-3]
    flat_c = tree.coord.reshape(-1)
    keep = torch.nonzero(flat_c >= 0).squeeze(-1)
    vals = cols.reshape(*lead, -1, 6)[..., keep, :]
    out = torch.zeros(*lead, model.num_coordinates, 6, dtype=q.dtype, device=q.device)
    return out.index_add(-2, flat_c[keep], vals)


def mass_matrix(
    model: Model,
    q: Tensor,
    *,
    scales: Tensor | None = None,
    inertial: BodyInertial | None = None,
) -> Tensor:
    """Joint-space mass matrix ``M(q): (..., Q, Q)`` [kg m^2, kg m or kg] (composite rigid
    bodies in ground coordinates). Coordinates that drive no axis give zero rows."""
    _check_q(model, q)
    if scales is not None:
        _check_scales(model, scales)
    topo = _topology(model, q.dtype, q.device)
    js = _screws(model, q, scales)
    inertial = _resolve_inertial(model, inertial, scales, q.dtype, q.device)
    S = coordinate_screws(model, q, scales)  # (..., Q, 6)
    c, I_G = _spatial_inertia_terms(inertial, js.R, js.p)
    m = inertial.mass.expand(c.shape[:-1])
    cx = _skew(c)
    mcx = m[..., None, None] * cx
    top = torch.cat([I_G - mcx @ cx, mcx], -1)
    eye = torch.eye(3, dtype=q.dtype, device=q.device)
    bot = torch.cat([-mcx, m[..., None, None] * eye], -1)
    I6 = torch.cat([top, bot], -2)  # (..., NB, 6, 6)
    Ic = torch.einsum("bj,...bxy->...jxy", topo.anc, I6)  # composite per joint
    Icq = Ic[..., topo.deeper, :, :]  # (..., Q, Q, 6, 6)
    M = torch.einsum("...ix,...ikxy,...ky->...ik", S, Icq, S)
    return torch.where(topo.related, M, torch.zeros_like(M))


def _skew(v: Tensor) -> Tensor:
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack(
        [torch.stack([o, -z, y], -1), torch.stack([z, o, -x], -1), torch.stack([-y, x, o], -1)],
        -2,
    )


def bias_forces(
    model: Model,
    q: Tensor,
    qd: Tensor,
    loads: BodyWrenches | None = None,
    *,
    scales: Tensor | None = None,
    inertial: BodyInertial | None = None,
    gravity: bool = True,
) -> Tensor:
    """Bias forces ``h(q, qd) = C(q, qd) + G(q) - J^T f_ext: (..., Q)`` so that
    ``inverse_dynamics(q, qd, qdd) = mass_matrix(q) @ qdd + h``."""
    return inverse_dynamics(
        model,
        q,
        qd,
        torch.zeros_like(qd),
        loads,
        scales=scales,
        inertial=inertial,
        gravity=gravity,
    )
