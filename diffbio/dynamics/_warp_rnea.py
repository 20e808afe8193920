"""Inverse dynamics with the recursions in one NVIDIA Warp kernel.

The joint-axis functions (splines, linear and constant axes, with their first and second
derivatives) and the scaling of offsets and inertias are evaluated in torch with the
reference path's own helpers; one Warp kernel then runs, one thread per sample of the
flattened batch:

1. the forward pass over joints in parent-before-child order: body poses, joint centres,
   spatial velocities and accelerations (in ground, about the ground origin; the ground
   "accelerates" at ``-g``), exactly the recursion of :mod:`diffbio.dynamics._rnea`;
2. each body's Newton-Euler wrench minus its external load, added into its inboard joint;
3. the backward pass over joints in reverse order: each joint's wrench is added into its
   parent joint and projected on its axes (times ``dv/dq``).

Bodies and joints are stored with one extra leading body slot (0 = ground) so that the
kernel needs no branch for ground-parented joints. Per-model inputs (offsets, axes,
inertias, loads) are either shared (leading size 1) or per sample. The kernel is generic
over the scalar type (float32 / float64 overloads) and runs on the device of ``q``. Its
gradient is Warp's adjoint of the same kernel launched with ``adjoint=True`` on freshly
allocated gradient buffers (torch's incoming gradient is copied in, never aliased).
"""

from __future__ import annotations

from typing import Any

import torch
import warp as wp
from torch import Tensor

from diffbio._errors import DiffbioError
from diffbio._shapes import broadcast_shapes
from diffbio.dynamics._inertial import BodyInertial
from diffbio.dynamics._rnea import (
    BodyWrenches,
    _axis_derivatives,
    _axis_rates,
    _check_inputs,
    _chunked,
    _resolve_inertial,
    _topology,
)
from diffbio.kinematics._fk import _joint_rotations, _scaled_inputs
from diffbio.kinematics._tree import kinematic_tree
from diffbio.model import Model

__all__ = ["inverse_dynamics_warp"]


@wp.func
def _row(a: wp.array2d(dtype=Any), n: int, j: int):
    """``a[n, j]``, or ``a[0, j]`` for an input shared by all samples."""
    return a[wp.min(n, a.shape[0] - 1), j]


@wp.kernel
def _rnea(
    parent: wp.array(dtype=int),
    child: wp.array(dtype=int),
    parent_joint: wp.array(dtype=int),
    body_joint: wp.array(dtype=int),
    R_pF: wp.array(dtype=Any),
    R_cM: wp.array(dtype=Any),
    R_FM: wp.array2d(dtype=Any),
    p_FM: wp.array2d(dtype=Any),
    t_pF: wp.array2d(dtype=Any),
    t_cM: wp.array2d(dtype=Any),
    rot_axes: wp.array2d(dtype=Any),
    tr_axes: wp.array2d(dtype=Any),
    vd_r: wp.array2d(dtype=Any),
    vd_t: wp.array2d(dtype=Any),
    vdd_r: wp.array2d(dtype=Any),
    vdd_t: wp.array2d(dtype=Any),
    d1_r: wp.array2d(dtype=Any),
    d1_t: wp.array2d(dtype=Any),
    mass: wp.array2d(dtype=Any),
    com: wp.array2d(dtype=Any),
    inertia: wp.array2d(dtype=Any),
    ext_moment: wp.array2d(dtype=Any),
    ext_force: wp.array2d(dtype=Any),
    R_body: wp.array2d(dtype=Any),
    p_body: wp.array2d(dtype=Any),
    V_ang: wp.array2d(dtype=Any),
    V_lin: wp.array2d(dtype=Any),
    A_ang: wp.array2d(dtype=Any),
    A_lin: wp.array2d(dtype=Any),
    R_GF: wp.array2d(dtype=Any),
    centers: wp.array2d(dtype=Any),
    W_ang: wp.array2d(dtype=Any),
    W_lin: wp.array2d(dtype=Any),
    tau_r: wp.array2d(dtype=Any),
    tau_t: wp.array2d(dtype=Any),
):
    """One thread per sample ``n``. Body slots are body index + 1; slot 0 of ``R_body,
    p_body, V_*, A_*`` is ground, preset by the caller (identity, zero, and ``(0, -g)``
    for the acceleration). Joint quantities in F: ``rot_axes``/``tr_axes`` rows are the
    axes (rotation axes as they act, translation axes times their scale factor)."""
    n = wp.tid()
    nj = parent.shape[0]
    for j in range(nj):
        pi = parent[j]
        ci = child[j]
        R_Gp = R_body[n, pi]
        Rf = R_Gp @ R_pF[j]
        c = p_body[n, pi] + R_Gp @ _row(t_pF, n, j) + Rf @ p_FM[n, j]
        R_Gc = Rf @ R_FM[n, j] @ wp.transpose(R_cM[j])
        R_body[n, ci] = R_Gc
        p_body[n, ci] = c - R_Gc @ _row(t_cM, n, j)
        R_GF[n, j] = Rf
        centers[n, j] = c
        # joint terms in F, then rotated to ground (cross products commute with R)
        ax = rot_axes[n, j]
        tx = _row(tr_axes, n, j)
        vr = vd_r[n, j]
        m0 = ax[0] * vr[0]
        m1 = ax[1] * vr[1]
        m2 = ax[2] * vr[2]
        w_f = m0 + m1 + m2
        a_f = wp.transpose(tx) @ vd_t[n, j]
        al_f = wp.transpose(ax) @ vdd_r[n, j] + wp.cross(m0, m1) + wp.cross(m0 + m1, m2)
        lin_f = wp.transpose(tx) @ vdd_t[n, j] + wp.cross(a_f, w_f)
        dw = Rf @ w_f
        dv = wp.cross(c, dw) + Rf @ a_f
        al = Rf @ al_f
        Vpw = V_ang[n, pi]
        Vpv = V_lin[n, pi]
        V_ang[n, ci] = Vpw + dw
        V_lin[n, ci] = Vpv + dv
        A_ang[n, ci] = A_ang[n, pi] + al + wp.cross(Vpw, dw)
        A_lin[n, ci] = (
            A_lin[n, pi] + wp.cross(c, al) + Rf @ lin_f + wp.cross(Vpw, dv) + wp.cross(Vpv, dw)
        )
    for b in range(body_joint.shape[0]):
        s = b + 1
        R = R_body[n, s]
        cb = p_body[n, s] + R @ _row(com, n, b)
        I_G = R @ _row(inertia, n, b) @ wp.transpose(R)
        w = V_ang[n, s]
        alpha = A_ang[n, s]
        vc = V_lin[n, s] + wp.cross(w, cb)
        ac = A_lin[n, s] + wp.cross(alpha, cb) + wp.cross(w, vc)
        F = _row(mass, n, b) * ac
        N = I_G @ alpha + wp.cross(w, I_G @ w) + wp.cross(cb, F)
        j = body_joint[b]
        wp.atomic_add(W_ang, n, j, N - _row(ext_moment, n, b))
        wp.atomic_add(W_lin, n, j, F - _row(ext_force, n, b))
    for i in range(nj):
        j = nj - 1 - i
        Wn = W_ang[n, j]
        Wf = W_lin[n, j]
        pj = parent_joint[j]
        if pj >= 0:
            wp.atomic_add(W_ang, n, pj, Wn)
            wp.atomic_add(W_lin, n, pj, Wf)
        Rt = wp.transpose(R_GF[n, j])
        n_c = Rt @ (Wn - wp.cross(centers[n, j], Wf))
        tau_r[n, j] = wp.cw_mul(rot_axes[n, j] @ n_c, d1_r[n, j])
        tau_t[n, j] = wp.cw_mul(_row(tr_axes, n, j) @ (Rt @ Wf), d1_t[n, j])


_INT_ARGS = ("parent", "child", "parent_joint", "body_joint")
_CONST_ARGS = ("R_pF", "R_cM")
_IN_ARGS = (
    "R_FM",
    "p_FM",
    "t_pF",
    "t_cM",
    "rot_axes",
    "tr_axes",
    "vd_r",
    "vd_t",
    "vdd_r",
    "vdd_t",
    "d1_r",
    "d1_t",
    "mass",
    "com",
    "inertia",
    "ext_moment",
    "ext_force",
)
_OUT_ARGS = (
    "R_body",
    "p_body",
    "V_ang",
    "V_lin",
    "A_ang",
    "A_lin",
    "R_GF",
    "centers",
    "W_ang",
    "W_lin",
    "tau_r",
    "tau_t",
)
_ARG_NAMES = _INT_ARGS + _CONST_ARGS + _IN_ARGS + _OUT_ARGS
_MATS = {"R_pF", "R_cM", "R_FM", "rot_axes", "tr_axes", "inertia", "R_body", "R_GF"}


def _kind(name: str, mat, vec, scalar):
    if name in _INT_ARGS:
        return wp.int32
    if name in _MATS:
        return mat
    return scalar if name == "mass" else vec


def _overload(mat, vec, scalar) -> wp.Kernel:
    types = []
    for name in _ARG_NAMES:
        kind = _kind(name, mat, vec, scalar)
        one_d = name in _INT_ARGS or name in _CONST_ARGS
        types.append(wp.array(dtype=kind) if one_d else wp.array2d(dtype=kind))
    return wp.overload(_rnea, types)


# torch dtype -> (matrix, vector, scalar type, concrete kernel); both compiled together
_WP_TYPES = {
    torch.float32: (wp.mat33f, wp.vec3f, wp.float32, _overload(wp.mat33f, wp.vec3f, wp.float32)),
    torch.float64: (wp.mat33d, wp.vec3d, wp.float64, _overload(wp.mat33d, wp.vec3d, wp.float64)),
}


def _types(dtype: torch.dtype):
    try:
        return _WP_TYPES[dtype]
    except KeyError:
        raise DiffbioError(
            f"inverse_dynamics_warp supports float32 and float64, not {dtype}"
        ) from None


def _launch(t: dict[str, Tensor], grads: dict[str, Tensor] | None, n: int) -> None:
    wp.init()
    ref = t["R_FM"]
    mat, vec, scalar, kernel = _types(ref.dtype)
    kinds = {k: _kind(k, mat, vec, scalar) for k in _ARG_NAMES}

    def desc(x, k):
        return wp.from_torch(x, dtype=kinds[k], requires_grad=False, return_ctype=True)

    arrays = [desc(t[k], k) for k in _ARG_NAMES]
    adj = None
    if grads is not None:
        adj = [desc(grads[k], k) if k in grads else None for k in _ARG_NAMES]
    n_in = len(_INT_ARGS) + len(_CONST_ARGS) + len(_IN_ARGS)
    device = wp.device_from_torch(ref.device)
    wp.launch(
        kernel,
        dim=n,
        inputs=arrays[:n_in],
        outputs=arrays[n_in:],
        adj_inputs=adj[:n_in] if adj else [],
        adj_outputs=adj[n_in:] if adj else [],
        adjoint=grads is not None,
        device=device,
        stream=wp.stream_from_torch(ref.device) if device.is_cuda else None,
        record_tape=False,
    )


class _RneaKernel(torch.autograd.Function):
    """Inputs (``_IN_ARGS`` order) -> per-axis generalized forces ``tau_r, tau_t:
    (N, J, 3)``."""

    @staticmethod
    def forward(ctx, topo_args, gravity, nb, *inputs):  # noqa: D102
        t = dict(zip(_INT_ARGS + _CONST_ARGS, topo_args, strict=True))
        t.update(zip(_IN_ARGS, inputs, strict=True))
        ref = t["R_FM"]
        N, J = ref.shape[:2]
        kw = {"dtype": ref.dtype, "device": ref.device}
        R_body = torch.zeros(N, nb + 1, 3, 3, **kw)
        R_body[:, 0] = torch.eye(3, **kw)
        A_lin = torch.zeros(N, nb + 1, 3, **kw)
        A_lin[:, 0] = -gravity
        t.update(R_body=R_body, A_lin=A_lin, R_GF=torch.zeros(N, J, 3, 3, **kw))
        for k in ("p_body", "V_ang", "V_lin", "A_ang"):
            t[k] = torch.zeros(N, nb + 1, 3, **kw)
        for k in ("centers", "W_ang", "W_lin", "tau_r", "tau_t"):
            t[k] = torch.zeros(N, J, 3, **kw)
        if N > 0:
            _launch(t, None, N)
        ctx.nb = nb
        ctx.save_for_backward(*(t[k] for k in _ARG_NAMES))
        return t["tau_r"], t["tau_t"]

    @staticmethod
    def backward(ctx, g_r, g_t):  # noqa: D102
        t = dict(zip(_ARG_NAMES, ctx.saved_tensors, strict=True))
        grads = {k: torch.zeros_like(t[k]) for k in _IN_ARGS + _OUT_ARGS}
        grads["tau_r"] = g_r.clone(memory_format=torch.contiguous_format)
        grads["tau_t"] = g_t.clone(memory_format=torch.contiguous_format)
        N = t["R_FM"].shape[0]
        if N > 0:
            _launch(t, grads, N)
        return (None, None, None, *(grads[k] for k in _IN_ARGS))


def _warp_topology(model: Model, tree, topo) -> tuple[Tensor, ...]:
    key = ("warp_rnea_topology", tree.parent.device, tree.R_pF.dtype)
    cached = model._cache.get(key)
    if cached is None:
        parent = tree.parent.tolist()
        body_joint = topo.body_joint.tolist()
        parent_joint = [body_joint[p] if p >= 0 else -1 for p in parent]
        dev = tree.parent.device
        i32 = {"dtype": torch.int32, "device": dev}
        cached = (
            (tree.parent + 1).to(torch.int32).contiguous(),
            (tree.child + 1).to(torch.int32).contiguous(),
            torch.tensor(parent_joint, **i32),
            topo.body_joint.to(torch.int32).contiguous(),
            tree.R_pF.contiguous(),
            tree.R_cM.contiguous(),
        )
        model._cache[key] = cached
    return cached


def _flat(x: Tensor, core: int, lead: torch.Size) -> Tensor:
    """``x (..., *core_shape)`` as ``(1 or N, *core_shape)``: shared when it has no leading
    dimensions, else expanded to ``lead`` and flattened."""
    tail = x.shape[x.dim() - core :]
    if x.dim() == core:
        return x.unsqueeze(0).contiguous()
    return x.expand(*lead, *tail).reshape(-1, *tail).contiguous()


def inverse_dynamics_warp(
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
    """Generalized forces, the recursions in one Warp kernel (one thread per sample).

    Same contract and result as :func:`~diffbio.dynamics.inverse_dynamics` (float32 or
    float64, on the CPU or a CUDA device: the kernel runs where ``q`` is), differentiable
    with respect to every tensor argument through Warp's adjoint.

    Args:
        model: the model.
        q, qd, qdd: ``(..., Q)`` coordinates [rad or m] and their first and second time
            derivatives, in ``model.coordinate_names`` order.
        loads: external :class:`BodyWrenches` ``(..., NB, 3)`` in ground, or ``None``.
        scales: ``(..., NB, 3)`` segment scale factors (as in ``inverse_dynamics``).
        inertial: :class:`BodyInertial` overriding the model's inertial parameters.
        gravity: include the model's gravity.
        chunk_size: slices of the first leading dimension processed at a time.
    Returns:
        ``tau: (..., Q)`` [N m for rotational, N for translational coordinates].
    """
    args = (q, qd, qdd, loads, scales, inertial)
    return _chunked(lambda *a: _warp_id(model, *a, gravity), args, chunk_size)


def _warp_id(model, q, qd, qdd, loads, scales, inertial, gravity) -> Tensor:
    _check_inputs(model, q, qd, qdd, loads, scales)
    _types(q.dtype)
    if scales is not None:
        scales = scales.to(q.dtype)
    tree = kinematic_tree(model, q.dtype, q.device)
    topo = _topology(model, q.dtype, q.device)
    R_FM, rot_F, tvals = _joint_rotations(tree, q)
    t_pF, t_cM, p_FM, factor = _scaled_inputs(tree, tvals, scales, with_factor=True)
    tr_axes = tree.axes[:, 3:] * factor.unsqueeze(-1)  # (..., J, 3, 3) rows
    d1, d2 = _axis_derivatives(model, tree, q)
    vd, vdd = _axis_rates(topo, d1, d2, qd, qdd)
    ip = _resolve_inertial(model, inertial, scales, q.dtype, q.device)
    if loads is None:
        zero = torch.zeros(model.num_bodies, 3, dtype=q.dtype, device=q.device)
        ext_m, ext_f = zero, zero
    else:
        ext_m, ext_f = loads.moment_about_origin(), loads.force
    lead = broadcast_shapes(
        q.shape[:-1], qd.shape[:-1], qdd.shape[:-1], p_FM.shape[:-2], ext_m.shape[:-2]
    )
    lead = broadcast_shapes(lead, ip.mass.shape[:-1], ip.com.shape[:-2])
    J, nb, Q = tree.parent.shape[0], model.num_bodies, model.num_coordinates
    full = {
        "R_FM": (R_FM, 3),
        "p_FM": (p_FM, 2),
        "rot_axes": (rot_F, 3),
        "vd_r": (vd[..., :3], 2),
        "vd_t": (vd[..., 3:], 2),
        "vdd_r": (vdd[..., :3], 2),
        "vdd_t": (vdd[..., 3:], 2),
        "d1_r": (d1[..., :3], 2),
        "d1_t": (d1[..., 3:], 2),
    }
    shared = {
        "t_pF": (t_pF, 2),
        "t_cM": (t_cM, 2),
        "tr_axes": (tr_axes, 3),
        "mass": (ip.mass, 1),
        "com": (ip.com, 2),
        "inertia": (ip.inertia_matrix(), 3),
        "ext_moment": (ext_m, 2),
        "ext_force": (ext_f, 2),
    }
    inputs = []
    for k in _IN_ARGS:
        if k in full:
            x, core = full[k]
            x = x.expand(*lead, *x.shape[x.dim() - core :]).reshape(-1, *x.shape[x.dim() - core :])
            inputs.append(x.contiguous())
        else:
            x, core = shared[k]
            inputs.append(_flat(x, core, lead))
    g = torch.tensor(model.gravity if gravity else (0.0, 0.0, 0.0), dtype=q.dtype)
    tau_r, tau_t = _RneaKernel.apply(_warp_topology(model, tree, topo), g.to(q.device), nb, *inputs)
    tau_ax = torch.cat([tau_r, tau_t], -1).reshape(-1, J * 6)
    return (tau_ax @ topo.axis_to_coord).reshape(*lead, Q)
