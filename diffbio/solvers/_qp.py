"""``solve_qp``: batched, differentiable convex QP (interior point forward, active-set backward)."""

from __future__ import annotations

import torch

from diffbio._errors import ShapeError
from diffbio._shapes import broadcast_shapes
from diffbio.solvers._qp_data import QPData, inf_norm
from diffbio.solvers._qp_ipm import ipm_solve
from diffbio.solvers._qp_kkt import kkt_solve
from diffbio.solvers._qp_types import QPOptions, QPSolution, QPStatus

_OUT_NAMES = ("x", "y_eq", "z_lower", "z_upper", "z_ineq")


def _rounds(d: QPData, sol, todo, act, opts, rounds: int, cautious: bool = False):
    """Primal-dual active-set rounds on the problems ``todo`` (in place on ``sol`` and
    ``act``): solve the KKT system of the guessed active set; where that solution is primal
    and dual feasible it is the exact solution (written to ``sol``); elsewhere constraints
    with negative multipliers are released and violated ones added. Where adding all the
    violated bounds makes the KKT system singular (e.g. more equality rows than free
    variables), with ``cautious`` the round is redone from the previous set adding only the
    most violated bound (and so on for that problem). Returns the problems still
    unresolved (including singular ones).

    ``sol``: (B, 3n + m + p) the packed solution (x, y, z_l, z_u, z_g); ``act``:
    (B, 2n + p) bool, the packed active masks (lower, upper, inequality rows).
    """
    n, m = d.q.shape[-1], d.m
    failed = []
    cau = None  # cautious alternative of each problem's current set
    has_cau = careful = None  # (k,) bool, None: all False
    bh = torch.maximum(inf_norm(d.b), inf_norm(d.h)) if todo.numel() else None
    for _ in range(rounds):
        if todo.numel() == 0:
            break
        ds = d.select(todo)
        a = act[todo]
        al, au, ag = a[:, :n], a[:, n : 2 * n], a[:, 2 * n :]
        x, y, zl, zu, zg, ok = kkt_solve(ds, al, au, ag, -ds.q, ds.b, -ds.l0, ds.u0, ds.h)
        w = torch.cat([x, y, zl, zu, zg], -1)
        scale = 1.0 + torch.maximum(inf_norm(x), bh[todo])
        tol = (10.0 * (opts.eps_abs + opts.eps_rel * scale)).unsqueeze(-1)
        gap = torch.cat([ds.l0 - x, x - ds.u0, ds.Gmv(x) - ds.h], -1)
        fin = (
            ds.vec[:, 3 * n : 5 * n] if ds.vec is not None else torch.cat([ds.fl, ds.fu], -1)
        ) > 0
        viol = gap > tol
        viol[:, : 2 * n] &= fin
        neg = w[:, n + m :] < -tol
        if cautious and careful is not None and bool(careful.any()):
            ok = ok & (~careful | (inf_norm(ds.Amv(x) - ds.b) <= tol.squeeze(-1)))
        good = ok & ~(viol | neg).any(-1)
        sol[todo[good]] = w[good]
        fail = ~ok if has_cau is None else ~ok & ~has_cau
        failed.append(todo[fail])
        retry = ok & ~good
        redo = None if has_cau is None else ~ok & has_cau
        # next set: release the negative multipliers, add every violated constraint (or,
        # for careful problems, only the most violated bound: the cautious alternative)
        keep_ = a & ~neg
        full = keep_ | viol
        vg = torch.where(viol[:, : 2 * n], gap[:, : 2 * n], 0.0)
        vmag = torch.maximum(vg[:, :n], vg[:, n:])
        top = torch.zeros_like(viol).scatter_(-1, vmag.argmax(-1, keepdim=True), True)
        top[:, n : 2 * n] = top[:, :n]
        top[:, 2 * n :] = True
        cand = keep_ | (top & viol)
        nxt = full if careful is None else torch.where(careful.unsqueeze(-1), cand, full)
        if redo is not None and bool(redo.any()):
            nxt = torch.where(redo.unsqueeze(-1), cau, nxt)
            sel = retry | redo
            cau = torch.where(redo.unsqueeze(-1), False, cand)[sel]
            new_has = (~careful & cautious) if cautious else torch.zeros_like(redo)
            has_cau = torch.where(redo, False, new_has)[sel]
            careful = (careful | redo)[sel]
        else:
            sel = retry
            cau = cand[sel]
            c0 = careful[sel] if careful is not None else None
            if cautious:
                has_cau = ~c0 if c0 is not None else torch.ones_like(retry[sel])
            else:
                has_cau = torch.zeros_like(retry[sel])
            careful = c0 if c0 is not None else torch.zeros_like(retry[sel])
        todo = todo[sel]
        act[todo] = nxt[sel]
    failed.append(todo)
    return torch.cat(failed) if len(failed) > 1 else failed[0]


_SOL_KEYS = ("x", "y", "zl", "zu", "zg")


def _split_sol(sol: torch.Tensor, d: QPData) -> list[torch.Tensor]:
    """Views (x, y, zl, zu, zg) of a packed (B, 3n + m + p) solution."""
    n, m = d.q.shape[-1], d.m
    return list(torch.split(sol, [n, m, n, n, d.p], -1))


def _polish(d: QPData, res: dict, act_l, act_u, act_g, opts: QPOptions, rounds: int = 4):
    """Replace solved iterates by the exact solution of their active-set KKT system where
    that solution is primal and dual feasible (in place on ``res``).

    The active set is first guessed as ``z > s``; where the KKT solution is not optimal,
    constraints with negative multipliers are released and violated ones added (a few
    primal-dual active-set rounds). Returns the final active masks.
    """
    n = act_l.shape[-1]
    act = torch.cat([act_l, act_u, act_g], -1)
    sol = torch.cat([res[k] for k in _SOL_KEYS], -1)
    todo = torch.nonzero(res["status"] == int(QPStatus.SOLVED)).squeeze(-1)
    todo = _rounds(d, sol, todo, act, opts, rounds)
    res.update(zip(_SOL_KEYS, _split_sol(sol, d)))
    act_l, act_u, act_g = act[:, :n], act[:, n : 2 * n], act[:, 2 * n :]
    if todo.numel():  # not polished: keep the interior-point iterate and its z > s guess
        ds = d.select(todo)
        act_l[todo] = (ds.fl > 0) & (res["zl"][todo] > res["sl"][todo])
        act_u[todo] = (ds.fu > 0) & (res["zu"][todo] > res["su"][todo])
        act_g[todo] = res["zg"][todo] > res["sg"][todo]
    return act_l, act_u, act_g


def _residual_norms(d: QPData, x, y, zl, zu, zg):
    """(B,) primal and dual residual max-norms of a candidate solution."""
    zero = torch.zeros_like(x)
    pres = torch.stack(
        [
            inf_norm(d.Amv(x) - d.b),
            inf_norm(torch.where(d.fl > 0, (d.l0 - x).clamp(min=0), zero)),
            inf_norm(torch.where(d.fu > 0, (x - d.u0).clamp(min=0), zero)),
            inf_norm((d.Gmv(x) - d.h).clamp(min=0)),
        ],
        -1,
    ).amax(-1)
    dres = inf_norm(d.Pmv(x) + d.q + d.Atv(y) - zl * d.fl + zu * d.fu + d.Gtv(zg))
    return pres, dres


def _nearest_solved(lines: torch.Tensor, solved: torch.Tensor) -> torch.Tensor:
    """(B,) long: for each problem the nearest solved problem on its line (-1: none).

    ``lines``: (NL, L) long, the problems' indices along each sequence (-1: no problem),
    ``solved``: (B,) bool."""
    L = lines.shape[-1]
    valid = lines >= 0
    ok = valid & solved[lines.clamp(min=0)]
    pos = torch.arange(L, device=lines.device).expand_as(lines)
    prev = torch.where(ok, pos, -1).cummax(-1).values
    big = 2 * L + 1
    nxt = torch.where(ok, pos, big).flip(-1).cummin(-1).values.flip(-1)
    use_prev = (prev >= 0) & ((pos - prev) <= (nxt - pos))
    pick = torch.where(use_prev, prev, nxt)
    found = valid & (pick < L)
    src = lines.gather(-1, pick.clamp(max=L - 1))
    donor = torch.full_like(solved, -1, dtype=torch.long)
    donor[lines[found]] = src[found]
    return donor


_NEIGHBOUR_PASSES = 3


def _warm_solve(d: QPData, opts: QPOptions, warm, lines=None, rounds: int = 8):
    """Active-set rounds from the guess ``warm = (act_l, act_u[, act_g])``; with ``lines``
    (see :func:`_nearest_solved`), problems left unresolved retry from the final active set
    of the nearest resolved problem on their line (up to ``_NEIGHBOUR_PASSES`` times, while
    that settles some); problems still unresolved go to the interior-point method (and its
    polish). Same result layout as :func:`ipm_solve` plus the active masks."""
    B, n = d.q.shape
    fl, fu = d.fl > 0, d.fu > 0
    act_l = warm[0].expand(B, n) & fl
    act_u = warm[1].expand(B, n) & fu & ~act_l
    act_g = warm[2].expand(B, d.p) if len(warm) > 2 else d.h.new_zeros(B, d.p).bool()
    act = torch.cat([act_l, act_u, act_g], -1)
    act_l, act_u, act_g = act[:, :n], act[:, n : 2 * n], act[:, 2 * n :]
    sol = d.q.new_zeros(B, 3 * n + d.m + d.p)
    res = dict(zip(_SOL_KEYS, _split_sol(sol, d)))
    crossed = ((d.l0 > d.u0) & fl & fu).any(-1)
    todo = torch.nonzero(~crossed).squeeze(-1)
    rest = _rounds(d, sol, todo, act, opts, rounds, True)
    if lines is not None:
        for _ in range(_NEIGHBOUR_PASSES):
            solved = ~crossed
            solved[rest] = False
            donor = _nearest_solved(lines, solved)[rest]
            has = donor >= 0
            if not bool(has.any()):
                break
            ri, di = rest[has], donor[has]
            act[ri] = act[di]
            again = _rounds(d, sol, ri, act, opts, rounds, True)
            rest = torch.cat([rest[~has], again])
            if again.numel() == 0 or again.numel() == ri.numel():
                break
    rest = torch.cat([rest, torch.nonzero(crossed).squeeze(-1)])
    status = torch.full((B,), int(QPStatus.SOLVED), dtype=torch.int64, device=d.q.device)
    iters = torch.zeros(B, dtype=torch.int64, device=d.q.device)
    pres, dres = _residual_norms(d, res["x"], res["y"], res["zl"], res["zu"], res["zg"])
    if rest.numel():
        ds = d.select(rest)
        sub = ipm_solve(ds, opts)
        ok = sub["status"] == int(QPStatus.SOLVED)
        al = (ds.fl > 0) & (sub["zl"] > sub["sl"]) & ok.unsqueeze(-1)
        au = (ds.fu > 0) & (sub["zu"] > sub["su"]) & ok.unsqueeze(-1)
        ag = (sub["zg"] > sub["sg"]) & ok.unsqueeze(-1)
        if opts.polish:
            al, au, ag = _polish(ds, sub, al, au, ag, opts)
        sol[rest] = torch.cat([sub[k] for k in _SOL_KEYS], -1)
        act[rest] = torch.cat([al, au, ag], -1)
        status[rest], iters[rest] = sub["status"], sub["iterations"]
        pres[rest], dres[rest] = sub["pres"], sub["dres"]
    res.update(status=status, iterations=iters, pres=pres, dres=dres)
    return res, act_l, act_u, act_g


class _QPFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, opts, warm, lines, P, q, A, b, l, u, G, h):
        if P.dim() == 3:
            P = 0.5 * (P + P.transpose(-1, -2))
        d = QPData.build(P, q, A, b, l, u, G, h)
        if warm is not None:
            res, act_l, act_u, act_g = _warm_solve(d, opts, warm, lines)
            solved = res["status"] == int(QPStatus.SOLVED)
        else:
            res = ipm_solve(d, opts)
            solved = res["status"] == int(QPStatus.SOLVED)
            act_l = (d.fl > 0) & (res["zl"] > res["sl"]) & solved.unsqueeze(-1)
            act_u = (d.fu > 0) & (res["zu"] > res["su"]) & solved.unsqueeze(-1)
            act_g = (res["zg"] > res["sg"]) & solved.unsqueeze(-1)
            if opts.polish:
                act_l, act_u, act_g = _polish(d, res, act_l, act_u, act_g, opts)
        res["zl"] = res["zl"] * d.fl
        res["zu"] = res["zu"] * d.fu
        outs = [res[k] for k in _SOL_KEYS]
        if opts.nan_on_failure:
            bad = ~solved.unsqueeze(-1)
            outs = [o.masked_fill(bad, torch.nan) for o in outs]
        else:  # no views of the packed solution among the outputs
            outs = [o if o._base is None else o.clone() for o in outs]
        ctx.save_for_backward(P, A, G, *outs, act_l, act_u, act_g, solved)
        ctx.mark_non_differentiable(res["status"], res["iterations"], res["pres"], res["dres"])
        return (*outs, res["status"], res["iterations"], res["pres"], res["dres"])

    @staticmethod
    def backward(ctx, gx, gy, gzl, gzu, gzg, *_):
        P, A, G, x, y, zl, zu, zg, act_l, act_u, act_g, solved = ctx.saved_tensors
        s = solved.unsqueeze(-1)

        def clean(g, ref):
            g = torch.zeros_like(ref) if g is None else g
            return torch.where(s, torch.nan_to_num(g), torch.zeros_like(g))

        x, y, zl, zu, zg = (clean(v, v) for v in (x, y, zl, zu, zg))
        gx, gy, gzl, gzu, gzg = (
            clean(g, r) for g, r in ((gx, x), (gy, y), (gzl, zl), (gzu, zu), (gzg, zg))
        )
        q0 = torch.zeros_like(x)
        d = QPData(P, q0, A, torch.zeros_like(y), q0, q0, q0, q0, G, torch.zeros_like(zg))
        dx, dy, dzl, dzu, dzg, ok = kkt_solve(d, act_l, act_u, act_g, gx, gy, gzl, gzu, gzg)
        ok = (ok & solved).unsqueeze(-1)
        dx, dy, dzl, dzu, dzg = (
            torch.where(ok, v, torch.zeros_like(v)) for v in (dx, dy, dzl, dzu, dzg)
        )
        need = ctx.needs_input_grad[1:]  # inputs (opts, warm, lines, P, ...): P at 2
        gP = gq = gA = gb = gl = gu = gG = gh = None
        if need[2]:
            if P.dim() == 2:
                gP = -dx * x
            else:
                outer = dx.unsqueeze(-1) * x.unsqueeze(-2)
                gP = -0.5 * (outer + outer.transpose(-1, -2))
        if need[3]:
            gq = -dx
        if need[4]:
            gA = -(y.unsqueeze(-1) * dx.unsqueeze(-2) + dy.unsqueeze(-1) * x.unsqueeze(-2))
        if need[5]:
            gb = dy
        if need[6]:
            gl = torch.where(act_l, -dzl, torch.zeros_like(dzl))
        if need[7]:
            gu = torch.where(act_u, dzu, torch.zeros_like(dzu))
        if need[8]:
            gG = -(zg.unsqueeze(-1) * dx.unsqueeze(-2) + dzg.unsqueeze(-1) * x.unsqueeze(-2))
        if need[9]:
            gh = dzg
        return None, None, None, gP, gq, gA, gb, gl, gu, gG, gh


def _check(name: str, t: torch.Tensor, core: tuple[int, ...]) -> None:
    k = len(core)
    if t.dim() < k or tuple(t.shape[t.dim() - k :]) != core:
        want = ", ".join(["..."] + [str(c) for c in core])
        raise ShapeError(f"solve_qp: {name} has shape {tuple(t.shape)}, expected ({want})")


def solve_qp(
    P: torch.Tensor,
    q: torch.Tensor,
    A: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    l: torch.Tensor | None = None,
    u: torch.Tensor | None = None,
    G: torch.Tensor | None = None,
    h: torch.Tensor | None = None,
    *,
    diagonal: bool | None = None,
    options: QPOptions | None = None,
    warm_start: tuple[torch.Tensor, ...] | None = None,
    sequence_dim: int | None = None,
) -> QPSolution:
    """Solve ``min 1/2 x'Px + q'x  s.t.  Ax = b,  l <= x <= u,  Gx <= h`` for a batch.

    Every argument may carry leading batch dimensions ``...``; they broadcast against each
    other (a batch-shared input has none), and the gradient of a shared input is summed
    over the batch. Differentiable (implicit differentiation of the KKT conditions at the
    solution's active set) w.r.t. every tensor input and through every multiplier output.

    Args:
        P: (..., n, n) symmetric positive semidefinite (its symmetric part is used), or
            (..., n) / (n,) the diagonal of P (fast path).
        q: (..., n) linear cost.
        A: (..., m, n) equality matrix, with b: (..., m). Omit both for no equalities.
        l, u: (..., n) bounds, may hold -inf / +inf; None means unbounded.
            Where both are finite, l <= u (l > u is reported PRIMAL_INFEASIBLE).
        G: (..., p, n) inequality matrix, with h: (..., p). Omit both for none.
        diagonal: whether P holds diagonals; None infers it (``P.dim() == 1`` or
            ``P.shape[-2:] != (n, n)``). Pass True when a (B, n) diagonal has B == n.
        options: :class:`QPOptions`.
        warm_start: a guess of the active set, ``(at_lower, at_upper)`` bool ``(..., n)``
            (optionally with ``ineq_active (..., p)``), e.g. from a neighbouring problem's
            solution (``z_lower > 0``, ``z_upper > 0``): primal-dual active-set rounds from
            the guess (each one exact KKT solve) replace the interior-point method wherever
            they find the optimal active set within a few rounds; the others fall back to
            it. Same solutions and gradients, much faster when the guess is close.
        sequence_dim: with ``warm_start``, a batch dimension along which neighbouring
            problems are alike (e.g. time frames): problems whose rounds from the guess do
            not settle retry from the final active set of the nearest settled problem along
            it before falling back to the interior-point method. Same solutions.

    Returns:
        :class:`QPSolution`; problems that are not SOLVED carry their status and, by
        default, NaN in ``x`` and the multipliers (their gradient contribution is 0).

    Dtype and device follow ``q`` (float32 or float64; CPU or CUDA, same code path).
    """
    dt = q.dtype if q.is_floating_point() else torch.get_default_dtype()
    opts = (options or QPOptions()).resolved(dt)
    dev = q.device
    if q.dim() < 1:
        raise ShapeError(f"solve_qp: q has shape {tuple(q.shape)}, expected (..., n)")
    n = q.shape[-1]
    if diagonal is None:
        diagonal = P.dim() == 1 or tuple(P.shape[-2:]) != (n, n)
    if (A is None) != (b is None) or (G is None) != (h is None):
        raise ShapeError("solve_qp: give A with b and G with h (or neither)")

    def cast(t):
        return t.to(dtype=dt, device=dev)

    P = cast(P)
    _check("P", P, (n,) if diagonal else (n, n))
    if A is None:
        A = torch.zeros(0, n, dtype=dt, device=dev)
        b = torch.zeros(0, dtype=dt, device=dev)
    A, b = cast(A), cast(b)
    m = A.shape[-2] if A.dim() >= 2 else -1
    _check("A", A, (m, n))
    _check("b", b, (m,))
    l = cast(l) if l is not None else torch.full((n,), -torch.inf, dtype=dt, device=dev)
    u = cast(u) if u is not None else torch.full((n,), torch.inf, dtype=dt, device=dev)
    _check("l", l, (n,))
    _check("u", u, (n,))
    if G is None:
        G, h = A.new_zeros(0, n), A.new_zeros(0)
    G, h = cast(G), cast(h)
    p = G.shape[-2] if G.dim() >= 2 else -1
    _check("G", G, (p, n))
    _check("h", h, (p,))

    items = [(P, 1 if diagonal else 2), (q, 1), (A, 2), (b, 1), (l, 1), (u, 1), (G, 2), (h, 1)]
    try:
        batch = broadcast_shapes(*(t.shape[: t.dim() - k] for t, k in items))
    except ShapeError as exc:
        raise ShapeError(f"solve_qp: batch dimensions do not broadcast: {exc}") from exc
    B = 1
    for s in batch:
        B *= s
    flat = [
        t.expand(*batch, *t.shape[t.dim() - k :]).reshape(B, *t.shape[t.dim() - k :])
        for t, k in items
    ]

    warm = None
    if warm_start is not None:
        if len(warm_start) not in (2, 3):
            raise ShapeError("solve_qp: warm_start is (at_lower, at_upper[, ineq_active])")
        warm = []
        for t, k in zip(warm_start, (n, n, p)):
            _check("warm_start", t, (k,))
            warm.append(t.to(device=dev, dtype=torch.bool).expand(*batch, k).reshape(B, k))
    lines = None
    if warm is not None and sequence_dim is not None and B > 0:
        if not -len(batch) <= sequence_dim < len(batch):
            raise ShapeError(
                f"solve_qp: sequence_dim {sequence_dim} is not a batch dimension of {tuple(batch)}"
            )
        order = torch.arange(B, device=dev).reshape(batch).movedim(sequence_dim, -1)
        lines = order.reshape(-1, batch[sequence_dim])
    chunk = opts.chunk_size or max(B, 1)
    parts = []
    for c0 in range(0, B, chunk):
        w_c = None if warm is None else tuple(t[c0 : c0 + chunk] for t in warm)
        l_c = lines
        if lines is not None and chunk < B:
            inside = (lines >= c0) & (lines < c0 + chunk)
            l_c = torch.where(inside, lines - c0, -1)
        parts.append(_QPFunction.apply(opts, w_c, l_c, *(t[c0 : c0 + chunk] for t in flat)))
    if not parts:
        parts.append(_QPFunction.apply(opts, warm, None, *flat))
    cols = [torch.cat(col, 0) if len(parts) > 1 else col[0] for col in zip(*parts)]
    cols = [c.reshape(tuple(batch) + tuple(c.shape[1:])) for c in cols]
    x, y, zl, zu, zg, status, iters, pres, dres = cols
    return QPSolution(
        x=x,
        y_eq=y,
        z_lower=zl,
        z_upper=zu,
        z_ineq=zg,
        status=status,
        iterations=iters,
        primal_residual=pres,
        dual_residual=dres,
    )
