"""Static optimization: muscle activations and actuator controls that produce the inverse-
dynamics generalized forces, frame by frame, as one batch of QPs.

Per frame (OpenSim's StaticOptimization; ``p`` is its ``activation_exponent``)::

    min  sum_i w_i |a_i|^p + sum_k v_k |c_k|^p
    s.t. sum_i r_ij (a_i F_i^act + F_i^pas) + sum_k S_jk c_k = tau_j   (kept coordinates j)
         a_min <= a <= a_max,  c_min <= c <= c_max

``F^act`` is the rigid-tendon active force per unit activation at the frame's fiber length
and velocity (force-length-velocity, pennation), ``F^pas`` the passive force (OpenSim's SO
leaves it out: ``passive=False``), ``r`` the moment arms and ``S`` the actuators' generalized
forces per unit control. ``p = 2`` is one batched QP (:func:`diffbio.solvers.solve_qp`).
Any other ``p > 1`` is solved by sequential quadratic programming: Newton's method on the
separable convex objective, each step one batched QP with the same constraints and the
diagonal Hessian ``p (p - 1) w |x|^(p-2)``, a backtracking line search on the exact
objective (every iterate stays feasible: the start is the ``p = 2`` solution), until the
step is below a tight tolerance. The result is the solution of one last QP at the converged
point, whose implicit (KKT) derivative is the exact derivative of the ``p``-problem there:
activations are differentiable w.r.t. every input (tau, moment arms, forces, weights,
bounds) for every ``p`` (exact except where a variable off its bounds sits at ``x = 0``,
where the curvature of ``|x|^p`` is 0 or infinite and is bounded for the solve).

Decomposition (``decompose=True``): a coordinate's equation involves only the muscles that
cross it and the actuators acting on it, so the kept coordinates and the unknowns split into
connected components of the constraint's nonzero pattern over all frames (exact zeros only;
e.g. the right leg, the left leg, the back, the pelvis residuals), and the objective is
separable: solving each component on its own is exact. The components are padded to a
common size with inert rows and variables and solved as one batch of ``C x frames`` QPs
(smaller KKT systems than one QP per frame); a frame is solved where all its components
are (its status is that of its first unsolved component). The components' QPs start with
primal-dual active-set rounds from the empty active set (``solve_qp``'s ``warm_start``: exact
KKT solves, which settle most small components in a few rounds; the others fall back to the
interior-point method): the same solutions, faster (float64 only). The implicit backward runs
through the same padded problems; where gradients w.r.t. the matrix are needed, the entries
between components (exactly zero) get the full problem's derivative too (:func:`_solve`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from diffbio._errors import DiffbioError, ShapeError
from diffbio._shapes import broadcast_shapes
from diffbio.solvers import QPOptions, QPStatus, solve_qp


@dataclass(frozen=True)
class StaticOptimizationResult:
    """Static-optimization solution; ``...`` are the frames' leading dimensions.

    Attributes:
        activations: (..., M) [-].
        controls: (..., NA) [-] actuator controls (force = control * optimal_force).
        muscle_forces: (..., M) [N] tendon forces ``a F^act (+ F^pas)``.
        actuator_forces: (..., NA) [N or N m] ``control * optimal_force``.
        moment_residual: (..., Q) [N m or N] ``tau`` minus the muscles' and actuators'
            generalized forces (about 0 on kept coordinates; the unmatched ``tau`` on
            dropped ones).
        status: (...) int64 :class:`~diffbio.solvers.QPStatus` codes.
    """

    activations: Tensor
    controls: Tensor
    muscle_forces: Tensor
    actuator_forces: Tensor
    moment_residual: Tensor
    status: Tensor


def _as(x, like: Tensor, shape) -> Tensor:
    t = torch.as_tensor(x, dtype=like.dtype, device=like.device)
    return t.expand(shape) if t.dim() == 0 else t


def kept_coordinates(moment_arms: Tensor, actuator_moments: Tensor | None = None) -> Tensor:
    """(Q,) bool: coordinates some muscle or actuator acts on at some frame (the rows of
    the equality constraint that static optimization keeps)."""
    act = (moment_arms.detach() != 0).flatten(0, -2).any(0) if moment_arms.dim() > 1 else None
    keep = act if act is not None else torch.zeros(moment_arms.shape[-1], dtype=torch.bool)
    if actuator_moments is not None and actuator_moments.shape[-1] > 0:
        s = (actuator_moments.detach() != 0).any(-1)
        keep = keep | s.reshape(-1, s.shape[-1]).any(0)
    return keep


def static_optimization(
    tau: Tensor,
    moment_arms: Tensor,
    F_active_per_a: Tensor,
    F_passive: Tensor | None = None,
    actuator_moments: Tensor | None = None,
    *,
    weights: Tensor | float = 1.0,
    actuator_weights: Tensor | float = 1.0,
    a_min: Tensor | float = 0.0,
    a_max: Tensor | float = 1.0,
    control_min: Tensor | float = -torch.inf,
    control_max: Tensor | float = torch.inf,
    actuator_optimal_force: Tensor | float = 1.0,
    keep: Tensor | None = None,
    exponent: float = 2.0,
    options: QPOptions | None = None,
    newton_tol: float | None = None,
    max_newton: int = 50,
    decompose: bool = True,
) -> StaticOptimizationResult:
    """Solve static optimization for a batch of frames (one QP per frame).

    Args:
        tau: (..., Q) [N m or N] generalized forces to produce (inverse dynamics).
        moment_arms: (..., M, Q) [m or -] ``r = -dl/dq``.
        F_active_per_a: (..., M) [N] active tendon force per unit activation.
        F_passive: (..., M) [N] passive tendon force, or None (left out, as OpenSim).
        actuator_moments: (..., Q, NA) generalized forces per unit control (see
            :func:`~diffbio.muscles.actuator_generalized_forces`), or None.
        weights: (M,) or scalar cost weights of the activations.
        actuator_weights: (NA,) or scalar cost weights of the controls.
        a_min, a_max: (M,) or scalar activation bounds.
        control_min, control_max: (NA,) or scalar control bounds (may be infinite).
        actuator_optimal_force: (NA,) or scalar [N or N m], for ``actuator_forces`` only
            (``actuator_moments`` already include it).
        keep: (Q,) bool, the coordinates whose equation is enforced; default
            :func:`kept_coordinates` (those some muscle or actuator acts on). Locked or
            coupled coordinates should be dropped by the caller, as OpenSim drops them.
        exponent: ``p > 1``, applied to activations and controls alike (OpenSim's
            ``activation_exponent``); 2 is one QP, others sequential QP (module docstring).
        options: :class:`~diffbio.solvers.QPOptions` (of every QP).
        newton_tol: ``p != 2``: stop when the Newton step's max-norm is below
            ``newton_tol * (1 + |x|_max)`` (default 1e-11 in float64, 1e-5 in float32).
        max_newton: ``p != 2``: most Newton steps; frames not converged by then get
            status ``MAX_ITER`` (and NaN).
        decompose: solve each connected component of the constraints (module docstring)
            as its own QP, all in one batch; False solves each frame as one QP.

    Returns:
        :class:`StaticOptimizationResult`; frames whose QP is not solved hold NaN.

    Dtype and device follow ``tau``.
    """
    exponent = float(exponent)
    if not exponent > 1.0 or exponent == float("inf"):
        raise DiffbioError(
            f"static optimization: activation exponent {exponent:g} unsupported (need 1 < p < inf)"
        )
    Q = tau.shape[-1]
    if moment_arms.shape[-1] != Q or moment_arms.dim() < 2:
        raise ShapeError(f"moment_arms must be (..., M, {Q}); got {tuple(moment_arms.shape)}")
    M = moment_arms.shape[-2]
    if F_active_per_a.shape[-1] != M:
        raise ShapeError(f"F_active_per_a must be (..., {M}); got {tuple(F_active_per_a.shape)}")
    dt, dev = tau.dtype, tau.device
    if actuator_moments is None:
        actuator_moments = torch.zeros(Q, 0, dtype=dt, device=dev)
    if actuator_moments.shape[-2] != Q:
        raise ShapeError(
            f"actuator_moments must be (..., {Q}, NA); got {tuple(actuator_moments.shape)}"
        )
    NA = actuator_moments.shape[-1]
    if keep is None:
        keep = kept_coordinates(moment_arms, actuator_moments)
    idx = torch.nonzero(keep.to(dev)).flatten()
    Rt = moment_arms.to(dt).transpose(-1, -2)  # (..., Q, M)
    A_mus = Rt * F_active_per_a.to(dt).unsqueeze(-2)
    b = tau
    if F_passive is not None:
        b = b - (Rt @ F_passive.to(dt).unsqueeze(-1)).squeeze(-1)
    S = actuator_moments.to(dt)
    lead = broadcast_shapes(A_mus.shape[:-2], S.shape[:-2], b.shape[:-1])
    A = torch.cat([A_mus.expand(*lead, Q, M), S.expand(*lead, Q, NA)], -1)
    A_k, b_k = A[..., idx, :], b.expand(*lead, Q)[..., idx]
    w = _as(weights, tau, (M,))
    v = _as(actuator_weights, tau, (NA,))
    wv = torch.cat([w.expand(M), v.expand(NA)])
    lo = torch.cat([_as(a_min, tau, (M,)).expand(M), _as(control_min, tau, (NA,)).expand(NA)])
    hi = torch.cat([_as(a_max, tau, (M,)).expand(M), _as(control_max, tau, (NA,)).expand(NA)])
    blk = _blocks(A_k) if decompose else None
    qp = (wv, A_k, b_k, lo, hi)
    if blk is not None:
        qp = (blk.pad_cols(wv, 0.5), blk.pad_matrix(A_k), blk.pad_rows(b_k),
              blk.pad_cols(lo, -torch.inf), blk.pad_cols(hi, torch.inf))  # fmt: skip
    wq, Aq, bq, loq, hiq = qp
    q0 = torch.zeros(*Aq.shape[:-2], Aq.shape[-1], dtype=dt, device=dev)
    start = None  # active-set start: float64 only (float32's acceptance tolerance is loose)
    if blk is not None and dt == torch.float64:
        start = (torch.zeros_like(q0, dtype=torch.bool),) * 2
    seq = -2 if start is not None and q0.dim() > 2 else None  # frames: neighbour warm starts
    sol = _solve(blk, 2.0 * wq, q0, Aq, bq, loq, hiq, A_k, options, start, seq)
    x, status = sol.x, sol.status
    if exponent != 2.0:
        warm = (sol.z_lower.detach() > 0, sol.z_upper.detach() > 0)
        x, status = _power_sqp(
            blk, A_k, *qp, x, status, warm, exponent, options, newton_tol, max_newton
        )
    if blk is not None:  # a frame is solved where all its blocks are
        x = blk.unpad_cols(x)
        bad = status != int(QPStatus.SOLVED)
        status = status.gather(-1, bad.to(torch.int8).argmax(-1, keepdim=True)).squeeze(-1)
        if options is None or options.nan_on_failure:
            x = x.masked_fill((status != int(QPStatus.SOLVED)).unsqueeze(-1), torch.nan)
    a, c = x[..., :M], x[..., M:]
    Fm = a * F_active_per_a.to(dt)
    if F_passive is not None:
        Fm = Fm + F_passive.to(dt)
    produced = (A @ x.unsqueeze(-1)).squeeze(-1)
    residual = b.expand(*lead, Q) - produced
    return StaticOptimizationResult(
        activations=a,
        controls=c,
        muscle_forces=Fm,
        actuator_forces=c * _as(actuator_optimal_force, tau, (NA,)),
        moment_residual=residual,
        status=status,
    )


def _power_terms(w: Tensor, x: Tensor, p: float) -> tuple[Tensor, Tensor, Tensor]:
    """Objective ``sum w |x|^p (...)``, gradient and Hessian diagonal ``(..., n)``; the
    Hessian is bounded away from 0 (p > 2) and infinity (p < 2) at ``x = 0``."""
    ax = x.abs()
    tiny = torch.finfo(x.dtype).eps ** 0.5
    f = (w * ax.pow(p)).sum(-1)
    g = p * w * ax.pow(p - 1.0) * torch.sign(x)
    h = p * (p - 1.0) * w * ax.clamp(min=tiny).pow(p - 2.0)
    return f, g, h


def _power_sqp(blk, A_full, wv, A, b, lo, hi, x0, status0, warm, p, options, tol, max_newton):
    """Sequential QP for ``min sum wv |x|^p`` over the static-optimization constraints,
    started at the (feasible) ``p = 2`` solution ``x0 (..., n)`` and its active bounds
    ``warm``; every QP is warm-started from the previous active set (a few exact KKT solves
    each). ``wv, lo, hi`` broadcast against ``x0``; ``blk``, ``A_full``: see :func:`_solve`.
    Returns ``x`` and status (the last QP's, MAX_ITER where Newton did not converge).

    For ``p < 2`` the curvature grows towards ``x = 0``, where Newton steps overshoot and
    oscillate; a variable whose step crossed zero is modelled from then on by the quadratic
    majorizer of ``|x|^p`` (curvature ``p w |x|^(p-2)``, ``1 / (p - 1)`` times Newton's):
    monotone, linear convergence for those variables."""
    lead = x0.shape[:-1]
    n, m = x0.shape[-1], A.shape[-2]
    A = A.expand(*lead, m, n)
    b = b.expand(*lead, m)
    if tol is None:
        tol = 1e-11 if x0.dtype == torch.float64 else 1e-5
    ok = status0 == int(QPStatus.SOLVED)
    with torch.no_grad():
        Af, bf = A.detach().reshape(-1, m, n), b.detach().reshape(-1, m)
        wd, lod, hid = (t.detach().expand(*lead, n).reshape(-1, n) for t in (wv, lo, hi))
        x = torch.where(ok.unsqueeze(-1), x0.detach(), torch.zeros_like(x0)).reshape(-1, n)
        todo = torch.nonzero(ok.reshape(-1)).flatten()
        conv = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        major = torch.zeros_like(x, dtype=torch.bool)
        wl, wu = (t.expand(*lead, n).reshape(-1, n).clone() for t in warm)
        alphas = 0.5 ** torch.arange(12, dtype=x.dtype, device=x.device)
        for _ in range(max_newton):
            if todo.numel() == 0:
                break
            xt = x[todo]
            wt = wd[todo]
            f, g, h = _power_terms(wt, xt, p)
            if p < 2.0:
                h = torch.where(major[todo], h / (p - 1.0), h)
            sol = solve_qp(h, g - h * xt, Af[todo], bf[todo], lod[todo], hid[todo],
                           diagonal=True, options=options, warm_start=(wl[todo], wu[todo]))  # fmt: skip
            good = sol.status == int(QPStatus.SOLVED)
            wl[todo], wu[todo] = sol.z_lower > 0, sol.z_upper > 0
            d = torch.where(good.unsqueeze(-1), sol.x - xt, torch.zeros_like(xt))
            slope = (g * d).sum(-1)  # < 0: a descent direction on the feasible set
            trial = xt + alphas[:, None, None] * d
            ft = _power_terms(wt, trial, p)[0]  # (J, B)
            fine = ft <= f + 1e-4 * alphas[:, None] * slope + 16 * torch.finfo(f.dtype).eps * f
            first = torch.where(fine.any(0), fine.to(torch.int8).argmax(0), alphas.numel() - 1)
            xn = xt + alphas[first].unsqueeze(-1) * d
            if p < 2.0:
                major[todo] |= (xt * (xt + d)) < 0
            x[todo] = xn
            small = d.abs().amax(-1) <= tol * (1.0 + xt.abs().amax(-1))
            conv[todo[small & good]] = True
            todo = todo[~small & good]
    conv = conv.reshape(lead)
    # the last QP at the converged point, differentiable (x_bar held fixed: the implicit
    # derivative of its KKT system is that of the p-problem when x_bar is the solution)
    xb = x.reshape(*lead, n)
    _, g, h = _power_terms(wv, xb, p)
    warm = (wl.reshape(*lead, n), wu.reshape(*lead, n))
    sol = _solve(blk, h, g - h * xb, A, b, lo, hi, A_full, options, warm)
    status = torch.where(conv, sol.status, torch.full_like(sol.status, int(QPStatus.MAX_ITER)))
    status = torch.where(ok, status, status0)
    xs = sol.x
    if options is None or options.nan_on_failure:
        xs = xs.masked_fill((status != int(QPStatus.SOLVED)).unsqueeze(-1), torch.nan)
    return xs, status


@dataclass(frozen=True)
class _Blocks:
    """Connected components of the equality constraints' coordinate-variable incidence,
    padded to a common size ``(mp, nv)`` and stacked on a batch axis of length C.

    A padded row ``i`` of a block reads ``x_d = 0`` for its own dummy variable ``d``; other
    padded variables are free. Every padded variable costs ``1/2 x^2`` (weight 1/2) with
    infinite bounds, so it solves to 0 with no active bound and a zero multiplier.
    """

    rows: Tensor  # (C, mp) long: kept-row index, m for a padded row
    cols: Tensor  # (C, nv) long: variable index, n for a padded variable
    eye: Tensor  # (C, mp, nv) 1 at (padded row, its dummy variable)
    row_pos: Tensor  # (m,) long: each row's place in the flattened (C * mp) rows
    col_pos: Tensor  # (n,) long: each variable's place in the flattened (C * nv)
    cross: Tensor  # (m, n) 1 where row and variable lie in different blocks (A = 0 there)

    def pad_cols(self, v: Tensor, fill: float = 0.0) -> Tensor:
        """(..., n) -> (..., C, nv), padded variables ``fill``."""
        return torch.cat([v, v.new_full((*v.shape[:-1], 1), fill)], -1)[..., self.cols]

    def pad_rows(self, v: Tensor) -> Tensor:
        """(..., m) -> (..., C, mp), padded rows 0."""
        return torch.nn.functional.pad(v, (0, 1))[..., self.rows]

    def pad_matrix(self, A: Tensor) -> Tensor:
        """(..., m, n) -> (..., C, mp, nv)."""
        Ae = torch.nn.functional.pad(A, (0, 1, 0, 1))
        return Ae[..., self.rows[:, :, None], self.cols[:, None, :]] + self.eye.to(A.dtype)

    def unpad_cols(self, v: Tensor) -> Tensor:
        return v.flatten(-2)[..., self.col_pos]

    def unpad_rows(self, v: Tensor) -> Tensor:
        return v.flatten(-2)[..., self.row_pos]

    def cross_terms(self, A: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Padded ``(A_c' y, -A_c x)`` with ``A_c`` the entries of ``A`` between blocks
        (exactly 0) and ``x, y`` a solution and its multipliers, held fixed: both are 0, and
        their derivative w.r.t. ``A_c`` is the full problem's, ``-(y dx' + dy x')``."""
        Ac = A * self.cross.to(A.dtype)
        xs = torch.nan_to_num(self.unpad_cols(x.detach())).unsqueeze(-1)
        ys = torch.nan_to_num(self.unpad_rows(y.detach())).unsqueeze(-1)
        dq = (Ac.transpose(-1, -2) @ ys).squeeze(-1)
        db = -(Ac @ xs).squeeze(-1)
        return self.pad_cols(dq), self.pad_rows(db)


def _blocks(A: Tensor) -> _Blocks | None:
    """The blocks of ``A (..., m, n)`` (nonzero pattern over all leading dimensions, exact
    zeros only), or None where there are fewer than two."""
    m, n = A.shape[-2:]
    if m == 0 or n == 0:
        return None
    pat = (A.detach() != 0).reshape(-1, m, n).any(0)
    pf = pat.to(torch.float32)
    reach = ((pf @ pf.T) > 0) | torch.eye(m, dtype=torch.bool, device=A.device)
    while True:  # transitive closure of "shares a variable" by repeated squaring
        r = reach.to(torch.float32)
        nxt = (r @ r) > 0
        if torch.equal(nxt, reach):
            break
        reach = nxt
    label = reach.to(torch.int8).argmax(-1).cpu()  # each row's first reachable row
    has = pat.any(0).cpu()
    col_label = label[pat.to(torch.int8).argmax(0).cpu()]
    reps = label.unique().tolist()
    if len(reps) < 2:
        return None
    rows = [torch.nonzero(label == r).flatten().tolist() for r in reps]
    cols = [torch.nonzero(has & (col_label == r)).flatten().tolist() for r in reps]
    for j in torch.nonzero(~has).flatten().tolist():  # free variables join the smallest
        min(cols, key=len).append(j)
    mp = max(len(r) for r in rows)
    nv = max(len(c) + mp - len(r) for r, c in zip(rows, cols))
    C = len(reps)
    ri = torch.full((C, mp), m, dtype=torch.long)
    ci = torch.full((C, nv), n, dtype=torch.long)
    eye = torch.zeros(C, mp, nv)
    row_pos = torch.empty(m, dtype=torch.long)
    col_pos = torch.empty(n, dtype=torch.long)
    blk = torch.empty(n, dtype=torch.long)
    for k, (r, c) in enumerate(zip(rows, cols)):
        ri[k, : len(r)] = torch.tensor(r, dtype=torch.long)
        row_pos[r] = k * mp + torch.arange(len(r))
        if c:
            ci[k, : len(c)] = torch.tensor(c, dtype=torch.long)
            col_pos[c] = k * nv + torch.arange(len(c))
            blk[c] = k
        for i in range(len(r), mp):
            eye[k, i, len(c) + i - len(r)] = 1.0
    row_blk = torch.repeat_interleave(torch.arange(C), torch.tensor([len(r) for r in rows]))
    row_blk = row_blk[torch.argsort(torch.tensor(sum(rows, [])))]
    dev = A.device
    return _Blocks(
        rows=ri.to(dev),
        cols=ci.to(dev),
        eye=eye.to(dev),
        row_pos=row_pos.to(dev),
        col_pos=col_pos.to(dev),
        cross=(row_blk[:, None] != blk[None, :]).to(dev),
    )


def _solve(blk, P, q, A, b, lo, hi, A_full, options, warm=None, seq=None):
    """One batched diagonal QP (in the padded block layout when ``blk`` is given; ``seq``:
    the batch dimension of the frames, for neighbour warm starts). Where gradients reach
    ``A_full``'s entries between blocks, the QP is first solved without gradients and then
    again, warm-started, with :meth:`_Blocks.cross_terms` added."""
    if blk is not None and A_full.requires_grad and torch.is_grad_enabled():
        with torch.no_grad():
            s0 = solve_qp(P, q, A, b, lo, hi, diagonal=True, options=options, warm_start=warm,
                          sequence_dim=seq)  # fmt: skip
        dq, db = blk.cross_terms(A_full, s0.x, s0.y_eq)
        q, b = q + dq, b + db
        warm = (s0.z_lower > 0, s0.z_upper > 0)
    return solve_qp(P, q, A, b, lo, hi, diagonal=True, options=options, warm_start=warm,
                    sequence_dim=seq)  # fmt: skip
