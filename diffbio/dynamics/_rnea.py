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

with the ground "accelerating" at ``-g`` to account for gravity. The sums are evaluated
in closed form per joint (its rotation axes all pass through the joint centre, so the
products of two rotation screws are screws through it) and over the tree as products with
the ancestor matrix, so that the whole batch goes through a fixed, small number of tensor
operations after one forward-kinematics pass. Each body's
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
from diffbio.kinematics import kinematic_tree
from diffbio.kinematics._fk import _check_q, _check_scales, _forward
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
    anc_t: Tensor  # (J, NB) transpose of anc, contiguous
    parent_slot: Tensor  # (J,) parent body of each joint (NB: ground)
    axis_coord: Tensor  # (J, 6) coordinate of each axis (0 where it has none)
    axis_to_coord: Tensor  # (J*6, Q) 1 where axis drives coordinate


def _topology(model: Model, dtype, device) -> _Topology:
    key = ("rnea_topology", dtype, device)
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
    axis_to_coord = torch.zeros(nj * 6, nq, dtype=dtype)
    for k, ci in enumerate(tree.coord.reshape(-1).tolist()):
        if ci >= 0:
            axis_to_coord[k, ci] = 1.0
    topo = _Topology(
        anc=anc.to(device),
        body_joint=torch.tensor(body_joint, device=device),
        coord_joint=torch.tensor(coord_joint, device=device),
        related=related.to(device),
        deeper=deeper.to(device),
        anc_t=anc.t().contiguous().to(device),
        parent_slot=torch.tensor([nb if p < 0 else p for p in parent], device=device),
        axis_coord=tree.coord.clamp_min(0),
        axis_to_coord=axis_to_coord.to(device),
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
    """Every joint's axes in ground, from one forward-kinematics pass.

    A rotation axis ``u`` through the joint centre ``c`` has the screw ``(u, c x u)``; a
    translation axis ``t`` (scale factor included) has ``(0, t)``."""

    U: Tensor  # (..., J, 3, 3) rotation axes in ground as they act (rows)
    T: Tensor  # (..., J, 3, 3) translation axes in ground, times their scale factor (rows)
    c: Tensor  # (..., J, 3) joint centres (origin of M) in ground
    d1: Tensor  # (..., J, 6) dv_k/dq (unscaled)
    d2: Tensor  # (..., J, 6) d2v_k/dq2
    R: Tensor  # (..., NB, 3, 3) body rotations
    p: Tensor  # (..., NB, 3) body origins


def _screws(model: Model, q: Tensor, scales: Tensor | None, fk=None) -> _JointScrews:
    """The joint screws at ``q``; ``fk``: the result of ``_forward(model, q, scales,
    with_axes=True)`` where the caller already has it (one kinematics pass shared)."""
    tree = kinematic_tree(model, q.dtype, q.device)
    poses, axes = _forward(model, q, scales, with_axes=True) if fk is None else fk
    d1, d2 = _axis_derivatives(model, tree, q)
    return _JointScrews(
        axes[..., :3, :],
        axes[..., 3:, :],
        poses.joint_centers,
        d1,
        d2,
        poses.rotation,
        poses.translation,
    )


def _axis_derivatives(model: Model, tree, q: Tensor) -> tuple[Tensor, Tensor]:
    """First and second derivatives ``(..., J, 6)`` of every joint axis function with
    respect to its coordinate, in one pass over the function bank (constant axes: 0)."""
    b = tree.bank
    lead = q.shape[:-1]
    parts, index = [], []
    if b.lin_idx.numel():
        slope = b.lin_slope.expand(*lead, -1)
        parts.append(torch.stack([slope, torch.zeros_like(slope)], -1))
        index.append(b.lin_idx)
    if b.spl_idx.numel():
        parts.append(_spline_derivatives(b, q[..., b.spl_coord]))
        index.append(b.spl_idx)
    for flat, ci, f in b.other:
        x = q[..., ci]
        parts.append(torch.stack([f(x, 1), f(x, 2)], -1).unsqueeze(-2))
        index.append(torch.tensor([flat], device=q.device))
    out = torch.zeros(*lead, b.n, 2, dtype=q.dtype, device=q.device)
    if parts:
        out = out.index_copy(-2, torch.cat(index), torch.cat(parts, -2))
    out = out.reshape(*lead, b.n // 6, 6, 2)
    return out[..., 0], out[..., 1]


def _spline_derivatives(b, x: Tensor) -> Tensor:
    """``(..., S, 2)``: first and second derivatives of the S padded cubics at ``x``
    (linear extrapolation outside the knots, as :func:`axis_values`)."""
    lead = x.shape[:-1]
    S = x.shape[-1]
    xs = x.reshape(-1, S).transpose(0, 1).contiguous()  # (S, N)
    i = torch.searchsorted(b.spl_knots, xs.detach(), right=True) - 1
    i = torch.minimum(i.clamp_min(0), (b.spl_last - 1).unsqueeze(-1))
    dx = xs - torch.gather(b.spl_knots, 1, i)
    c = torch.gather(b.spl_coef, 1, i.unsqueeze(-1).expand(-1, -1, 4))
    _, b0, c0, d0 = c.unbind(-1)
    inside1 = b0 + dx * (2.0 * c0 + 3.0 * dx * d0)
    inside2 = 2.0 * c0 + 6.0 * dx * d0
    first_x = b.spl_knots[:, :1]
    last_x = torch.gather(b.spl_knots, 1, b.spl_last.unsqueeze(-1))
    first_b = b.spl_coef[:, :1, 1]
    last_b = torch.gather(b.spl_coef[..., 1], 1, b.spl_last.unsqueeze(-1))
    below, above = xs < first_x, xs > last_x
    d1 = torch.where(below, first_b, torch.where(above, last_b, inside1))
    d2 = torch.where(below | above, torch.zeros_like(inside2), inside2)
    return torch.stack([d1, d2], -1).transpose(0, 1).reshape(*lead, S, 2)


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
    chunk_size: int | None = None,
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
        chunk_size: process the first leading dimension (e.g. the trials of a
            ``(B, T, Q)`` batch) in slices of at most this many entries and concatenate
            the results, bounding the memory of huge batches; ``None``: all at once.
            Arguments whose first leading dimension is 1 or absent are shared.
    Returns:
        ``tau: (..., Q)`` [N m for rotational, N for translational coordinates].
    """
    args = (q, qd, qdd, loads, scales, inertial)
    return _chunked(lambda *a: _newton_euler(model, *a, gravity)[0], args, chunk_size)


def _chunked(fn, args, chunk_size: int | None) -> Tensor:
    """``fn(*args)``, evaluated over slices of the first leading dimension of ``q``
    (``args[0]``) and concatenated. Per-sample tensors slice along their own first
    leading dimension where it is that of ``q``."""
    q = args[0]
    if chunk_size is None or q.dim() < 2 or q.shape[0] <= chunk_size:
        return fn(*args)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}")
    n, lead = q.shape[0], q.dim() - 1

    def cut(x, core: int, sl: slice):
        if x is None:
            return None
        if isinstance(x, (BodyWrenches, BodyInertial)):
            cores = {"force": 2, "torque": 2, "point": 2, "mass": 1, "com": 2, "inertia": 2}
            return type(x)(*(cut(getattr(x, k), cores[k], sl) for k in x.__dataclass_fields__))
        if x.dim() - core == lead and x.shape[0] == n:
            return x[sl]
        return x

    cores = (1, 1, 1, 2, 2, 1)
    outs = []
    for start in range(0, n, chunk_size):
        sl = slice(start, start + chunk_size)
        outs.append(fn(*(cut(a, c, sl) for a, c in zip(args, cores, strict=True))))
    return torch.cat(outs, 0)


def _check_inputs(model, q, qd, qdd, loads, scales) -> None:
    _check_q(model, q)
    _check_same(model, "qd", qd)
    _check_same(model, "qdd", qdd)
    if scales is not None:
        _check_scales(model, scales)
    if loads is not None:
        _check_loads(model, loads)


def _axis_rates(topo: _Topology, d1: Tensor, d2: Tensor, qd: Tensor, qdd: Tensor):
    """Axis rates ``dv/dt, d2v/dt2: (..., J, 6)`` from the axis derivatives ``d1, d2``
    (zero on constant axes, whose derivatives are zero)."""
    qd_ax = qd[..., topo.axis_coord]
    vd = d1 * qd_ax
    vdd = d2 * qd_ax * qd_ax + d1 * qdd[..., topo.axis_coord]
    return vd, vdd


def _newton_euler(model, q, qd, qdd, loads, scales, inertial, gravity, js=None):
    """``tau (..., Q)``, joint wrenches ``W (..., J, 6)`` (about the ground origin, in
    ground) and the joint screws (``js``: :func:`_screws` at ``q``, ``scales`` where the
    caller already has them)."""
    _check_inputs(model, q, qd, qdd, loads, scales)
    topo = _topology(model, q.dtype, q.device)
    js = _screws(model, q, scales) if js is None else js
    inertial = _resolve_inertial(model, inertial, scales, q.dtype, q.device)
    vd, vdd = _axis_rates(topo, js.d1, js.d2, qd, qdd)

    # forward recursion, as sums over ancestors: dV_j, dA_j are joint j's own terms
    m_rot = js.U * vd[..., :3, None]  # (..., J, 3, 3) angular velocity of each axis
    w_j = m_rot.sum(-2)
    a_j = _vm(vd[..., 3:], js.T)  # translation velocity
    dV = torch.cat([w_j, _cross(js.c, w_j) + a_j], -1)
    V = topo.anc @ dV  # (..., NB, 6)
    Vp = torch.cat([V, torch.zeros_like(V[..., :1, :])], -2)[..., topo.parent_slot, :]
    # V_k- x s_k dv_k summed: rotations through one centre commute into a screw through
    # it (w0 x w1 + (w0 + w1) x w2); translations before rotations give (0, a_j x w_j).
    m0, m1, m2 = m_rot.unbind(-2)
    al = _vm(vdd[..., :3], js.U) + _cross(m0, m1) + _cross(m0 + m1, m2)
    lin = _cross(js.c, al) + _vm(vdd[..., 3:], js.T) + _cross(a_j, w_j)
    dA = torch.cat([al, lin], -1) + _motion_cross(Vp, dV)
    A = topo.anc @ dA
    if gravity:
        g = torch.tensor(model.gravity, dtype=q.dtype, device=q.device)
        A = A + torch.cat([torch.zeros_like(g), -g])

    # Newton-Euler wrench of every body, then the backward sum over descendants
    c, I_G = _spatial_inertia_terms(inertial, js.R, js.p)
    w, vO = V[..., :3], V[..., 3:]
    alpha, aO = A[..., :3], A[..., 3:]
    vc = vO + _cross(w, c)
    ac = aO + _cross(alpha, c) + _cross(w, vc)
    F = inertial.mass.unsqueeze(-1) * ac
    N = _mv(I_G, alpha) + _cross(w, _mv(I_G, w)) + _cross(c, F)
    if loads is not None:
        F = F - loads.force
        N = N - loads.moment_about_origin()
    W = topo.anc_t @ torch.cat([N, F], -1)  # (..., J, 6)
    return _project(topo, js, W), W, js


def _project(topo: _Topology, js: _JointScrews, W: Tensor) -> Tensor:
    """Generalized forces ``(..., Q)`` of the joint wrenches ``W (..., J, 6)`` (about the
    ground origin, in ground): each axis's screw times ``W``, times ``dv/dq``."""
    c, f = torch.broadcast_tensors(js.c, W[..., 3:])
    n_c = W[..., :3] - _cross(c, f)  # moment about the joint centre
    tau_ax = torch.cat([_mv(js.U, n_c), _mv(js.T, W[..., 3:])], -1) * js.d1
    return tau_ax.flatten(-2) @ topo.axis_to_coord


def _load_generalized_forces(model: Model, js: _JointScrews, loads: BodyWrenches) -> Tensor:
    """``J(q)^T f``: the generalized forces ``(..., Q)`` of external ``loads (..., NB, 3)``
    alone at the pose of ``js`` (:func:`_screws`), i.e. ``-inverse_dynamics(q, 0, 0,
    loads, gravity=False)`` without the motion terms, which vanish there."""
    _check_loads(model, loads)
    topo = _topology(model, js.c.dtype, js.c.device)
    wrench = torch.cat([loads.moment_about_origin(), loads.force], -1)
    return _project(topo, js, topo.anc_t @ wrench)


def _vm(v: Tensor, M: Tensor) -> Tensor:
    """``v^T M`` for ``v (..., 3)``, ``M (..., 3, 3)``: the rows of ``M`` weighted."""
    return (v.unsqueeze(-2) @ M).squeeze(-2)


def coordinate_screws(model: Model, q: Tensor, scales: Tensor | None = None) -> Tensor:
    """The motion subspace of every coordinate, ``dV/dqd``: ``(..., Q, 6)`` spatial
    vectors in ground about the ground origin, ``(angular [1/s per unit qd], linear)``."""
    _check_q(model, q)
    return _coordinate_screws(_topology(model, q.dtype, q.device), _screws(model, q, scales))


def _coordinate_screws(topo: _Topology, js: _JointScrews) -> Tensor:
    u = js.U * js.d1[..., :3, None]
    s_rot = torch.cat([u, _cross(js.c.unsqueeze(-2).expand_as(u), u)], -1)
    t = js.T * js.d1[..., 3:, None]
    s_tr = torch.cat([torch.zeros_like(t), t], -1)
    cols = torch.cat([s_rot, s_tr], -2)  # (..., J, 6 axes, 6)
    return topo.axis_to_coord.transpose(0, 1) @ cols.flatten(-3, -2)


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
    S = _coordinate_screws(topo, js)  # (..., Q, 6)
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
