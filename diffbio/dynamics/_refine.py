"""Ground-reaction refinement: the smallest change of the measured (or predicted) ground
reactions that makes the root (pelvis) Newton-Euler equations hold.

Formulation (kinematics fixed, the linear case). The root residual is zero when the summed
external wrench equals the wrench the root joint must transmit with no loads,
``W_req(q, qd, qdd)`` (force, moment about the ground origin; :func:`required_root_wrench`).
Per frame ``t`` and plate ``k`` in contact the unknowns are the force ``F`` and the moment
``M`` about the measured centre of pressure ``p0`` (so the wrench is linear in them:
``sum_k F_k = F_req``, ``sum_k (p0_k x F_k + M_k) = n_req``, 6 equations per frame). The
cost is, with ``n`` the floor normal (``-gravity``):

    sum |F - F_meas|^2 / s_F^2 + |M_perp|^2 / (s_cop F_n,meas)^2 + (M.n - tau_meas.n)^2 / s_tau^2
      + sum |d2F/dt2|^2 / s_ddF^2 + |d2M/dt2|^2 / s_ddM^2    (second differences over frames)
      [+ sum |da|^2 / s_a^2  with root accelerations adjusted by da, AddBiomechanics-style]

(``M_perp / F_n`` is the centre-of-pressure shift, so ``s_cop`` is in metres). A plate is
in contact where its measured normal force exceeds ``contact_threshold``; out of contact its
force and moment are zero. In contact ``F.n >= 0`` and the friction pyramid
``|F.t_i| <= mu F.n`` hold. The smoothness terms couple all frames: the problem is one
sparse equality- and inequality-constrained least squares per trial, solved by a
primal-dual active-set loop over sparse KKT systems. The final KKT solve (at the converged
active set) is differentiable, which gives the exact implicit gradient of the solution
w.r.t. the measured forces, points and torques, the kinematics and the model parameters.
The refined ``M`` is returned as a centre of pressure in the floor plane through ``p0``
plus a free torque along ``n``: ``d = (n x M) / F.n``, ``tau = (M.n - (d x F).n) n``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from diffbio._errors import DiffbioError, ShapeError
from diffbio._shapes import broadcast_shapes
from diffbio.dynamics._inertial import BodyInertial
from diffbio.dynamics._refine_sparse import sparse_solve
from diffbio.dynamics._residuals import root_residuals
from diffbio.kinematics import forward_kinematics
from diffbio.model import Model


@dataclass(frozen=True)
class RefineOptions:
    """Settings of :func:`refine_ground_reactions` (scales are the size of a change that
    costs as much as 1 N of force change at ``force_scale = 1``).

    ``contact_threshold [N]``: measured normal force above which a plate is in contact;
    ``friction``: pyramid friction coefficient; ``force_scale [N]``, ``cop_scale [m]``,
    ``torque_scale [N m]``: changes of force, centre of pressure and free torque;
    ``force_smooth_scale [N/s^2]``, ``moment_smooth_scale [N m/s^2]``: second time
    derivatives of the refined force and moment; ``adjust_root``: also change the root
    coordinates' accelerations, ``root_accel_scale [rad/s^2 or m/s^2]``;
    ``max_iterations``: active-set iterations; ``regularization``: added (negated) to the
    constraint block of the KKT systems."""

    contact_threshold: float = 20.0
    friction: float = 0.8
    force_scale: float = 5.0
    cop_scale: float = 0.01
    torque_scale: float = 1.0
    force_smooth_scale: float = 5.0e4
    moment_smooth_scale: float = 5.0e3
    adjust_root: bool = False
    root_accel_scale: float = 1.0
    max_iterations: int = 50
    regularization: float = 1e-12


@dataclass(frozen=True)
class RefinedLoads:
    """Result of :func:`refine_ground_reactions`, leading dimensions ``...``, ``T`` frames,
    ``P`` plates, all in ground.

    ``force: (..., T, P, 3) [N]``; ``point: (..., T, P, 3) [m]`` centre of pressure (the
    measured point where a plate is out of contact); ``torque: (..., T, P, 3) [N m]`` free
    torque (along the floor normal); ``moment: (..., T, P, 3) [N m]`` the refined moment
    about the measured point; ``contact: (..., T, P)`` bool; ``active: (..., T, P, 5)`` bool
    (unilateral, +t1, -t1, +t2, -t2 friction limits active); ``root_qdd_change: (..., T,
    C)`` [rad/s^2 or m/s^2] change of the root coordinates' accelerations (zeros unless
    ``adjust_root``); ``root_coordinates``: their names; ``iterations``: active-set
    iterations (max over the batch)."""

    force: Tensor
    point: Tensor
    torque: Tensor
    moment: Tensor
    contact: Tensor
    active: Tensor
    root_qdd_change: Tensor
    root_coordinates: tuple[str, ...]
    root_index: tuple[int, ...]
    iterations: int

    def adjusted_qdd(self, qdd: Tensor) -> Tensor:
        """``qdd (..., T, Q)`` with the root accelerations changed by ``root_qdd_change``."""
        idx = torch.as_tensor(self.root_index, device=qdd.device)
        return qdd.index_add(-1, idx, self.root_qdd_change.to(qdd.dtype))


def required_root_wrench(
    model: Model,
    q: Tensor,
    qd: Tensor,
    qdd: Tensor,
    *,
    scales: Tensor | None = None,
    inertial: BodyInertial | None = None,
) -> tuple[Tensor, Tensor]:
    """The external wrench that makes the root residual zero.

    Returns ``(force (..., T, 3) [N], moment (..., T, 3) [N m])`` in ground, the moment
    about the ground origin. Differentiable w.r.t. the kinematics and model parameters."""
    r = root_residuals(model, q, qd, qdd, None, scales=scales, inertial=inertial)
    c = forward_kinematics(model, q, scales).joint_centers[..., 0, :]
    return r.force, r.moment + torch.linalg.cross(c, r.force)


def _floor_frame(model: Model, dtype, device) -> Tensor:
    """Rows ``n, t1, t2``: the floor normal (-gravity) and two tangents, ``(3, 3)``."""
    g = torch.tensor(model.gravity, dtype=torch.float64)
    n = -g / g.norm()
    a = torch.zeros(3, dtype=torch.float64)
    a[int(torch.argmin(n.abs()))] = 1.0
    t1 = torch.linalg.cross(a, n)
    t1 = t1 / t1.norm()
    t2 = torch.linalg.cross(t1, n)
    return torch.stack([n, t1, t2]).to(dtype=dtype, device=device)


def _skew(p: Tensor) -> Tensor:
    z = torch.zeros_like(p[..., 0])
    x, y, w = p[..., 0], p[..., 1], p[..., 2]
    return torch.stack(
        [torch.stack([z, -w, y], -1), torch.stack([w, z, -x], -1), torch.stack([-y, x, z], -1)],
        -2,
    )


def refine_ground_reactions(
    model: Model,
    q: Tensor,
    qd: Tensor,
    qdd: Tensor,
    force: Tensor,
    point: Tensor,
    torque: Tensor | None = None,
    *,
    time_step: float,
    contact: Tensor | None = None,
    options: RefineOptions | None = None,
    scales: Tensor | None = None,
    inertial: BodyInertial | None = None,
) -> RefinedLoads:
    """Smallest weighted change of ground reactions that zeroes the root residuals.

    Args:
        model: the model (its first joint connects ground to the root body).
        q, qd, qdd: ``(..., T, Q)`` kinematics [rad, m and time derivatives].
        force: ``(..., T, P, 3) [N]`` measured (or predicted) force of each plate, ground.
        point: ``(..., T, P, 3) [m]`` its centre of pressure in ground (on the floor).
        torque: ``(..., T, P, 3) [N m]`` free torque in ground, or None (zero).
        time_step: frame spacing [s] (for the smoothness terms).
        contact: ``(..., T, P)`` bool, or None: measured normal force > threshold.
        options: :class:`RefineOptions`.
        scales, inertial: model parameters, as in :func:`inverse_dynamics`.
    Returns:
        :class:`RefinedLoads`; differentiable w.r.t. every tensor input.
    Raises:
        ShapeError: inconsistent shapes. DiffbioError: non-finite input, or no solution.
    """
    opts = options or RefineOptions()
    if force.dim() < 3 or force.shape[-1] != 3 or point.shape[-3:] != force.shape[-3:]:
        raise ShapeError(
            f"force and point must be (..., T, P, 3); got {tuple(force.shape)} and "
            f"{tuple(point.shape)}"
        )
    if torque is None:
        torque = torch.zeros_like(force)
    if torque.shape[-3:] != force.shape[-3:]:
        raise ShapeError(f"torque must be (..., T, P, 3) like force; got {tuple(torque.shape)}")
    T, P = force.shape[-3], force.shape[-2]
    if q.shape[-2] != T:
        raise ShapeError(f"q has {q.shape[-2]} frames but force has {T}")
    for name, v in (("force", force), ("point", point), ("torque", torque)):
        if not bool(torch.isfinite(v).all()):
            raise DiffbioError(f"refine_ground_reactions: {name} holds NaN or infinite values")
    dtype, device = q.dtype, q.device
    frame = _floor_frame(model, dtype, device)
    n = frame[0]

    f_req, n_req = required_root_wrench(model, q, qd, qdd, scales=scales, inertial=inertial)
    r0 = root_residuals(model, q[..., :1, :], qd[..., :1, :], qdd[..., :1, :], None)
    root_names = r0.coordinates
    root_idx = tuple(model.coordinate_index(c) for c in root_names)
    C = len(root_idx)
    J = None
    if opts.adjust_root:
        E = torch.zeros(C, model.num_coordinates, dtype=dtype, device=device)
        E[torch.arange(C), torch.as_tensor(root_idx)] = 1.0
        shape = (C,) + tuple(1 for _ in qdd.shape[:-1]) + (model.num_coordinates,)
        qdd_e = qdd.unsqueeze(0) + E.reshape(shape)
        fe, ne = required_root_wrench(
            model,
            q.unsqueeze(0).expand_as(qdd_e),
            qd.unsqueeze(0).expand_as(qdd_e),
            qdd_e,
            scales=scales,
            inertial=inertial,
        )
        J = torch.cat([fe - f_req, ne - n_req], -1).movedim(0, -1)  # (..., T, 6, C)

    if contact is None:
        contact = (force.detach() @ n) > opts.contact_threshold
    lead = broadcast_shapes(force.shape[:-3], point.shape[:-3], torque.shape[:-3])
    lead = broadcast_shapes(lead, f_req.shape[:-2], contact.shape[:-2])
    B = int(np.prod(lead)) if len(lead) else 1

    def flat(t, core):
        return t.expand(*lead, *t.shape[t.dim() - core :]).reshape(B, *t.shape[t.dim() - core :])

    Fm, Pm, Tm = flat(force, 3), flat(point, 3), flat(torque, 3)
    Fr, Nr, Cm = flat(f_req, 2), flat(n_req, 2), flat(contact.bool(), 2)
    Jf = flat(J, 3) if J is not None else None
    outs = []
    for b in range(B):
        outs.append(
            _refine_one(
                Fm[b], Pm[b], Tm[b], Fr[b], Nr[b], None if Jf is None else Jf[b],
                Cm[b].cpu().numpy(), frame, float(time_step), opts, C,
            )
        )  # fmt: skip
    F, Pt, Tq, M, act, da, its = zip(*outs)

    def stack(ts, core):
        s = torch.stack(ts, 0)
        return s.reshape(*lead, *s.shape[1:]) if core else s

    return RefinedLoads(
        force=stack(F, 1),
        point=stack(Pt, 1),
        torque=stack(Tq, 1),
        moment=stack(M, 1),
        contact=Cm.reshape(*lead, T, P),
        active=stack(act, 1),
        root_qdd_change=stack(da, 1),
        root_coordinates=root_names,
        root_index=root_idx,
        iterations=max(its),
    )


def _refine_one(Fm, Pm, Tm, Fr, Nr, J, contact, frame, dt, opts: RefineOptions, nroot: int):
    """One trial: ``Fm, Pm, Tm (T, P, 3)``, ``Fr, Nr (T, 3)``, ``J (T, 6, C)`` or None."""
    dtype, device = Fm.dtype, Fm.device
    T, P = contact.shape
    n = frame[0]
    cs = np.argwhere(contact)
    NC = len(cs)
    vid = -np.ones((T, P), dtype=np.int64)
    vid[cs[:, 0], cs[:, 1]] = np.arange(NC)
    C = 0 if J is None else J.shape[-1]
    nx = 6 * NC + C * T
    ti, ki = torch.as_tensor(cs[:, 0]), torch.as_tensor(cs[:, 1])
    rows, cols, vals = [], [], []

    def add(r, c, v):
        rows.append(np.asarray(r, dtype=np.int64).ravel())
        cols.append(np.asarray(c, dtype=np.int64).ravel())
        v = torch.as_tensor(v, dtype=dtype, device=device).reshape(-1)
        vals.append(v.expand(rows[-1].shape[0]) if v.numel() == 1 else v)

    base = 6 * np.arange(NC)
    qlin = torch.zeros(nx, dtype=dtype, device=device)
    # data terms
    Fc, Pc, Tc = Fm[ti, ki], Pm[ti, ki], Tm[ti, ki]
    wF = 1.0 / opts.force_scale**2
    for j in range(3):
        add(base + j, base + j, wF)
    Fn = Fc @ n
    wp = 1.0 / (opts.cop_scale * Fn) ** 2  # (NC,)
    wn = 1.0 / opts.torque_scale**2
    nn = torch.outer(n, n)
    WM = wn * nn + wp[:, None, None] * (torch.eye(3, dtype=dtype, device=device) - nn)
    ii, jj = np.meshgrid(np.arange(3), np.arange(3), indexing="ij")
    add(base[:, None, None] + 3 + ii, base[:, None, None] + 3 + jj, WM)
    gF = -wF * Fc
    gM = -(WM @ Tc.unsqueeze(-1)).squeeze(-1)
    qlin = qlin.index_put((torch.as_tensor(base[:, None] + np.arange(6)),), torch.cat([gF, gM], -1))
    # smoothness: second differences of F and M of each plate
    if T >= 3:
        wdd = np.array([1.0 / (opts.force_smooth_scale * dt * dt) ** 2] * 3
                       + [1.0 / (opts.moment_smooth_scale * dt * dt) ** 2] * 3)  # fmt: skip
        coef = np.array([1.0, -2.0, 1.0])
        tc = np.arange(1, T - 1)
        for a in range(3):
            for c2 in range(3):
                va = vid[tc - 1 + a]  # (T-2, P)
                vb = vid[tc - 1 + c2]
                ok = (va >= 0) & (vb >= 0)
                ra, rb = 6 * va[ok], 6 * vb[ok]
                for j in range(6):
                    add(ra + j, rb + j, np.full(ra.shape, coef[a] * coef[c2] * wdd[j]))
    if C:
        add(6 * NC + np.arange(C * T), 6 * NC + np.arange(C * T), 1.0 / opts.root_accel_scale**2)
    # equalities: 6 rows per frame that has unknowns
    has = contact.any(1) if C == 0 else np.ones(T, dtype=bool)
    frames = np.nonzero(has)[0]
    row_of = -np.ones(T, dtype=np.int64)
    row_of[frames] = 6 * np.arange(len(frames))
    m_eq = 6 * len(frames)
    eq_r, eq_c, eq_v = [], [], []
    r = row_of[cs[:, 0]]
    for j in range(3):
        eq_r.append(r + j), eq_c.append(base + j)
        eq_v.append(torch.ones(NC, dtype=dtype, device=device))
        eq_r.append(r + 3 + j), eq_c.append(base + 3 + j)
        eq_v.append(torch.ones(NC, dtype=dtype, device=device))
    S = _skew(Pc)  # (NC, 3, 3)
    for i in range(3):
        for j in range(3):
            eq_r.append(r + 3 + i), eq_c.append(base + j), eq_v.append(S[:, i, j])
    if C:
        Jt = J[torch.as_tensor(frames)]  # (F, 6, C)
        rr = row_of[frames][:, None, None] + np.arange(6)[None, :, None]
        cc = 6 * NC + C * frames[:, None, None] + np.arange(C)[None, None, :]
        rr, cc = np.broadcast_arrays(rr, cc)
        eq_r.append(rr.ravel()), eq_c.append(cc.ravel()), eq_v.append(-Jt.reshape(-1))
    eq_r, eq_c = np.concatenate(eq_r), np.concatenate(eq_c)
    eq_v = torch.cat(eq_v)
    fidx = torch.as_tensor(frames)
    beq = torch.cat([Fr[fidx], Nr[fidx]], -1).reshape(-1)
    # inequalities on F of each contact: rows (NC, 5, 3) @ F <= 0
    mu = opts.friction
    t1, t2 = frame[1], frame[2]
    G = torch.stack([-n, t1 - mu * n, -t1 - mu * n, t2 - mu * n, -t2 - mu * n])  # (5, 3)
    Hr, Hc, Hv = np.concatenate(rows), np.concatenate(cols), torch.cat(vals)

    def solve(active: np.ndarray, grad: bool):
        ac = np.argwhere(active)  # (NA, 2): contact, which
        NA = len(ac)
        N = nx + m_eq + NA
        g_r = nx + m_eq + np.repeat(np.arange(NA), 3)
        g_c = (base[ac[:, 0]][:, None] + np.arange(3)).ravel()
        g_v = G[torch.as_tensor(ac[:, 1])].reshape(-1) if NA else G.new_zeros(0)
        kr = np.concatenate([Hr, nx + eq_r, eq_c, g_r, g_c, np.arange(nx, N)])
        kc = np.concatenate([Hc, eq_c, nx + eq_r, g_c, g_r, np.arange(nx, N)])
        reg = torch.full((N - nx,), -opts.regularization, dtype=dtype, device=device)
        kv = torch.cat([Hv, eq_v, eq_v, g_v, g_v, reg])
        rhs = torch.cat([-qlin, beq, torch.zeros(NA, dtype=dtype, device=device)])
        if not grad:
            kv, rhs = kv.detach(), rhs.detach()
        z = sparse_solve(kr, kc, kv, rhs, N)
        lam = np.zeros((NC, 5))
        lam[ac[:, 0], ac[:, 1]] = z[nx + m_eq :].detach().cpu().numpy()
        return z[:nx], lam

    active = np.zeros((NC, 5), dtype=bool)
    scale = 1.0 + float(Fm.detach().abs().max())
    iterations = 0
    for _ in range(opts.max_iterations):
        iterations += 1
        with torch.no_grad():
            x, lam = solve(active, False)
        g = (G @ x[: 6 * NC].reshape(NC, 6)[:, :3].T).T.cpu().numpy()  # (NC, 5)
        viol = (g > 1e-9 * scale) & ~active
        neg = active & (lam < -1e-12 * (1.0 + np.abs(lam).max()))
        if not viol.any() and not neg.any():
            break
        active = (active & ~neg) | viol
    else:
        raise DiffbioError(
            f"ground-reaction refinement: the active set did not settle in {opts.max_iterations}"
            " iterations (infeasible contact or friction constraints? try adjust_root)"
        )
    x, _ = solve(active, True)
    with torch.no_grad():
        xd = x.detach()
        res = torch.zeros(m_eq, dtype=dtype, device=device).index_add(
            0, torch.as_tensor(eq_r, device=device), eq_v.detach() * xd[torch.as_tensor(eq_c)]
        )
        bad_eq = float((res - beq.detach()).abs().max()) if m_eq else 0.0
        g = (G @ xd[: 6 * NC].reshape(NC, 6)[:, :3].T).T
        bad_g = float(g.max()) if NC else 0.0
    tol = 1e-6 * (scale + (float(beq.detach().abs().max()) if m_eq else 0.0))
    if bad_eq > tol or bad_g > tol:
        raise DiffbioError(
            "ground-reaction refinement is infeasible: no loads within the contact and "
            f"friction limits (mu = {opts.friction:g}) satisfy the root equations (violation "
            f"{max(bad_eq, bad_g):.3g}); raise the friction coefficient or use adjust_root"
        )
    X = x[: 6 * NC].reshape(NC, 6)
    F = torch.zeros(T, P, 3, dtype=dtype, device=device).index_put((ti, ki), X[:, :3])
    M = torch.zeros(T, P, 3, dtype=dtype, device=device).index_put((ti, ki), X[:, 3:])
    cm = torch.as_tensor(contact, device=device).unsqueeze(-1)
    Fn_r = F @ n
    den = torch.where(cm.squeeze(-1), Fn_r, torch.ones_like(Fn_r)).unsqueeze(-1)
    d = torch.where(cm, torch.linalg.cross(n.expand_as(M), M) / den, torch.zeros_like(M))
    point = Pm + d
    tau_n = ((M - torch.linalg.cross(d, F)) @ n).unsqueeze(-1)
    torque = torch.where(cm, tau_n * n, torch.zeros_like(M))
    act = torch.zeros(T, P, 5, dtype=torch.bool, device=device)
    act[ti, ki] = torch.as_tensor(active, device=device)
    if C:
        da = x[6 * NC :].reshape(T, C)
    else:
        da = torch.zeros(T, nroot, dtype=dtype, device=device)
    return F, point, torque, M, act, da, iterations
