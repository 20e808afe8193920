"""Batched primal-dual interior-point method (Mehrotra predictor-corrector) for convex QPs.

Problem: ``min 1/2 x'Px + q'x  s.t.  Ax = b,  l <= x <= u,  Gx <= h``. Every inequality
gets a slack ``s > 0`` and a multiplier ``z > 0``; bounds are diagonal blocks, so the
Newton system reduces to ``H = P + diag(W_l + W_u) + G' W_g G`` (diagonal when P is and
there is no G) and the Schur complement ``S = A H^-1 A'`` of size m: one batched Cholesky
of the equality rows per factorization. Problems that converge (or are found infeasible)
are frozen and dropped from the working set; the rest keep iterating. Infeasibility is
detected per problem with Farkas certificates read off the iterates and Newton steps.
"""

from __future__ import annotations

import torch

from diffbio.solvers._qp_data import QPData, inf_norm
from diffbio.solvers._qp_types import QPOptions, QPStatus


class _Factor:
    """Factorization of the reduced Newton system [[H, A'], [A, 0]] for one sub-batch."""

    def __init__(self, d: QPData, w_box: torch.Tensor, w_g: torch.Tensor | None, reg: float):
        self.d = d
        self.dense = not d.diag or d.p > 0
        if self.dense:
            H = d.dense_P() + torch.diag_embed(w_box + reg)
            if d.p > 0:
                H = H + d.G.transpose(-1, -2) @ (w_g.unsqueeze(-1) * d.G)
            self.L, info = torch.linalg.cholesky_ex(H)
            self.ok = info == 0
            self.HinvAt = torch.cholesky_solve(d.A.transpose(-1, -2), self.L)
        else:
            self.h = d.P + w_box + reg
            self.ok = (self.h > 0).all(-1)
            self.HinvAt = d.A.transpose(-1, -2) / self.h.unsqueeze(-1)
        if d.m > 0:
            S = d.A @ self.HinvAt
            S = S + reg * torch.eye(d.m, dtype=S.dtype, device=S.device)
            self.Ls, info = torch.linalg.cholesky_ex(S)
            self.ok = self.ok & (info == 0)

    def hinv(self, r: torch.Tensor) -> torch.Tensor:
        if self.dense:
            return torch.cholesky_solve(r.unsqueeze(-1), self.L).squeeze(-1)
        return r / self.h

    def solve(self, r1: torch.Tensor, r2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Solve H dx + A'dy = r1, A dx = r2."""
        t = self.hinv(r1)
        if self.d.m == 0:
            return t, r2
        dy = torch.cholesky_solve((self.d.Amv(t) - r2).unsqueeze(-1), self.Ls).squeeze(-1)
        dx = t - (self.HinvAt @ dy.unsqueeze(-1)).squeeze(-1)
        return dx, dy


def _max_step(v: torch.Tensor, dv: torch.Tensor) -> torch.Tensor:
    """(B,) largest alpha with v + alpha dv >= 0 (inf if dv >= 0 everywhere)."""
    if v.shape[-1] == 0:
        return v.new_full(v.shape[:-1], float("inf"))
    ratio = torch.where(dv < 0, -v / dv.clamp(max=-torch.finfo(v.dtype).tiny), torch.inf)
    return ratio.amin(-1)


class _State:
    """Iterate (x, y, s_l, z_l, s_u, z_u, s_g, z_g); masked bound entries hold s=1, z=0."""

    names = ("x", "y", "sl", "zl", "su", "zu", "sg", "zg")

    def __init__(self, **kw: torch.Tensor):
        for k in self.names:
            setattr(self, k, kw[k])

    def select(self, idx: torch.Tensor) -> _State:
        return _State(**{k: getattr(self, k)[idx] for k in self.names})


def _initial_point(d: QPData, reg: float) -> _State:
    """Solve the problem with unit slack weights, then shift slacks into the interior."""
    w_box = d.fl + d.fu
    w_g = torch.ones_like(d.h)
    fac = _Factor(d, w_box, w_g, max(reg, 1e-8))
    r1 = -d.q - d.l0 * d.fl + d.u0 * d.fu + d.Gtv(d.h)
    x, _ = fac.solve(r1, d.b)
    x = torch.nan_to_num(x)
    sl, su, sg = (x - d.l0) * d.fl, (d.u0 - x) * d.fu, d.h - d.Gmv(x)
    big = torch.cat([-sl.masked_fill(d.fl == 0, -1.0), -su.masked_fill(d.fu == 0, -1.0), -sg], -1)
    shift = (big.amax(-1, keepdim=True) + 1.0).clamp(min=0.0) if big.shape[-1] else 0.0
    sl = torch.where(d.fl > 0, sl + shift, torch.ones_like(sl))
    su = torch.where(d.fu > 0, su + shift, torch.ones_like(su))
    sg = sg + shift
    return _State(
        x=x,
        y=torch.zeros_like(d.b),
        sl=sl,
        zl=d.fl.clone(),
        su=su,
        zu=d.fu.clone(),
        sg=sg,
        zg=torch.ones_like(d.h),
    )


def _residuals(d: QPData, st: _State):
    Px = d.Pmv(st.x)
    Aty = d.Atv(st.y)
    Gtz = d.Gtv(st.zg)
    rd = Px + d.q + Aty - st.zl * d.fl + st.zu * d.fu + Gtz
    Ax = d.Amv(st.x)
    rp = Ax - d.b
    rl = (-st.x + st.sl + d.l0) * d.fl
    ru = (st.x + st.su - d.u0) * d.fu
    Gx = d.Gmv(st.x)
    rg = Gx + st.sg - d.h
    pres = torch.stack([inf_norm(rp), inf_norm(rl), inf_norm(ru), inf_norm(rg)], -1).amax(-1)
    pscale = torch.stack(
        [inf_norm(d.b), inf_norm(Ax), inf_norm(d.h), inf_norm(Gx), inf_norm(st.x)], -1
    ).amax(-1)
    dres = inf_norm(rd)
    dscale = torch.stack(
        [
            inf_norm(Px),
            inf_norm(d.q),
            inf_norm(Aty),
            inf_norm(Gtz),
            inf_norm(st.zl),
            inf_norm(st.zu),
        ],
        -1,
    ).amax(-1)
    return rd, rp, rl, ru, rg, pres, pscale, dres, dscale, (Px, Ax, Aty, Gtz, Gx)


def _comp(d: QPData, st: _State, n_ineq: torch.Tensor) -> torch.Tensor:
    tot = (st.sl * st.zl * d.fl).sum(-1) + (st.su * st.zu * d.fu).sum(-1) + (st.sg * st.zg).sum(-1)
    return tot / n_ineq


def _primal_infeasible(d: QPData, y, zl, zu, zg, eps: float, Aty=None, Gtz=None) -> torch.Tensor:
    """Farkas: A'y - z_l + z_u + G'z_g = 0 and b'y - l'z_l + u'z_u + h'z_g < 0, z >= 0.
    ``Aty``, ``Gtz``: the products ``A'y`` and ``G' max(z_g, 0)`` where already known."""
    zl, zu = zl.clamp(min=0) * d.fl, zu.clamp(min=0) * d.fu
    zg = zg.clamp(min=0)
    nz = torch.stack([inf_norm(y), inf_norm(zl), inf_norm(zu), inf_norm(zg)], -1).amax(-1)
    nz = nz.clamp(min=torch.finfo(y.dtype).tiny)
    Aty = d.Atv(y) if Aty is None else Aty
    Gtz = d.Gtv(zg) if Gtz is None else Gtz
    res = inf_norm(Aty - zl + zu + Gtz)
    val = (d.b * y).sum(-1) - (d.l0 * zl).sum(-1) + (d.u0 * zu).sum(-1) + (d.h * zg).sum(-1)
    return (res <= eps * nz) & (val < -eps * nz)


def _dual_infeasible(d: QPData, v: torch.Tensor, eps: float, Pv=None, Av=None) -> torch.Tensor:
    """Improving ray: Pv = 0, Av = 0, q'v < 0, v >= 0 where l finite, v <= 0 where u finite.
    ``Pv``, ``Av``: the products with the unnormalized ``v`` where already known."""
    nv = inf_norm(v).clamp(min=torch.finfo(v.dtype).tiny).unsqueeze(-1)
    Pv = d.Pmv(v) if Pv is None else Pv
    Av = d.Amv(v) if Av is None else Av
    v = v / nv
    ok = inf_norm(Pv / nv) <= eps
    ok &= inf_norm(Av / nv) <= eps
    ok &= (d.q * v).sum(-1) < -eps
    ok &= ((-v * d.fl).amax(-1) <= eps) & ((v * d.fu).amax(-1) <= eps)
    if d.p > 0:
        ok &= d.Gmv(v).amax(-1) <= eps
    return ok


def _newton(d: QPData, st: _State, fac: _Factor, res, rcl, rcu, rcg):
    """Newton step for complementarity targets ``s * z = -rc`` given residuals ``res``."""
    rd, rp, rl, ru, rg = res
    fl, fu = d.fl, d.fu
    vl = (-rcl + st.zl * rl) / st.sl * fl
    vu = (-rcu + st.zu * ru) / st.su * fu
    vg = (-rcg + st.zg * rg) / st.sg
    r1 = -rd + vl - vu - d.Gtv(vg)
    dx, dy = fac.solve(r1, -rp)
    dsl = (-rl + dx) * fl
    dsu = (-ru - dx) * fu
    dsg = -rg - d.Gmv(dx)
    dzl = (-rcl - st.zl * dsl) / st.sl * fl
    dzu = (-rcu - st.zu * dsu) / st.su * fu
    dzg = (-rcg - st.zg * dsg) / st.sg
    return dx, dy, dsl, dzl, dsu, dzu, dsg, dzg


def _step_len(st: _State, dsl, dzl, dsu, dzu, dsg, dzg) -> torch.Tensor:
    """(B,) largest step keeping every slack and multiplier nonnegative."""
    pairs = ((st.sl, dsl), (st.zl, dzl), (st.su, dsu), (st.zu, dzu), (st.sg, dsg), (st.zg, dzg))
    return torch.stack([_max_step(v, dv) for v, dv in pairs], -1).amin(-1)


def ipm_solve(d: QPData, opts: QPOptions) -> dict[str, torch.Tensor]:
    """Run the interior-point method on every problem of ``d`` (options already resolved).

    Returns a dict of (B, ...) tensors: x, y, zl, zu, zg, sl, su, sg, status, iterations,
    pres, dres. Multipliers of infinite bounds are 0.
    """
    B = d.q.shape[0]
    dev = d.q.device
    reg = opts.regularization
    eps_abs, eps_rel, eps_inf = opts.eps_abs, opts.eps_rel, opts.eps_infeasible
    tau = opts.step_fraction
    n_ineq_all = (d.fl.sum(-1) + d.fu.sum(-1) + d.p).clamp(min=1.0)

    st = _initial_point(d, reg)
    out = {k: getattr(st, k).clone() for k in _State.names}
    status = torch.full((B,), int(QPStatus.MAX_ITER), dtype=torch.int64, device=dev)
    iters = torch.full((B,), opts.max_iter, dtype=torch.int64, device=dev)
    pres_out = torch.full((B,), torch.inf, dtype=d.q.dtype, device=dev)
    dres_out = pres_out.clone()

    # l > u is infeasible before any iteration.
    crossed = ((d.l0 > d.u0) & (d.fl > 0) & (d.fu > 0)).any(-1)
    status[crossed] = int(QPStatus.PRIMAL_INFEASIBLE)
    iters[crossed] = 0
    idx = torch.nonzero(~crossed).squeeze(-1)
    dw, st, n_ineq = d.select(idx), st.select(idx), n_ineq_all[idx]

    def finish(mask: torch.Tensor, code, it: int, pres, dres):
        nonlocal idx, dw, st, n_ineq
        if not bool(mask.any()):
            return
        gi = idx[mask]
        for k in _State.names:
            out[k][gi] = getattr(st, k)[mask]
        if isinstance(code, torch.Tensor):
            status[gi] = code[mask]
        else:
            status[gi] = int(code)
        iters[gi] = it
        pres_out[gi] = pres[mask]
        dres_out[gi] = dres[mask]
        keep = ~mask
        idx, dw, st, n_ineq = idx[keep], dw.select(keep), st.select(keep), n_ineq[keep]

    for it in range(opts.max_iter + 1):
        if idx.numel() == 0:
            break
        rd, rp, rl, ru, rg, pres, pscale, dres, dscale, prods = _residuals(dw, st)
        Px, Ax, Aty, _, _ = prods
        mu = _comp(dw, st, n_ineq)
        obj = 0.5 * (st.x * Px).sum(-1) + (dw.q * st.x).sum(-1)
        converged = (pres <= eps_abs + eps_rel * pscale) & (dres <= eps_abs + eps_rel * dscale)
        converged &= mu * n_ineq <= eps_abs + eps_rel * (1.0 + obj.abs())
        pinf = _primal_infeasible(dw, st.y, st.zl, st.zu, st.zg, eps_inf, Aty=Aty)
        pinf &= ~converged
        dinf = _dual_infeasible(dw, st.x, eps_inf, Pv=Px, Av=Ax) & ~converged & ~pinf
        nonfinite = ~torch.isfinite(pres + dres + mu + obj)
        done = converged | pinf | dinf | nonfinite
        if bool(done.any()):
            code = torch.full_like(idx, int(QPStatus.NUMERICAL_ERROR))
            code[converged] = int(QPStatus.SOLVED)
            code[pinf] = int(QPStatus.PRIMAL_INFEASIBLE)
            code[dinf] = int(QPStatus.DUAL_INFEASIBLE)
            finish(done, code, it, pres, dres)
            if idx.numel() == 0:
                break
            rd, rp, rl, ru, rg, pres, pscale, dres, dscale, _ = _residuals(dw, st)
            mu = _comp(dw, st, n_ineq)
        if it == opts.max_iter:
            finish(torch.ones_like(idx, dtype=torch.bool), QPStatus.MAX_ITER, it, pres, dres)
            break

        fl, fu = dw.fl, dw.fu
        wl = st.zl / st.sl * fl
        wu = st.zu / st.su * fu
        wg = st.zg / st.sg
        fac = _Factor(dw, wl + wu, wg, reg)

        slzl, suzu, sgzg = st.sl * st.zl * fl, st.su * st.zu * fu, st.sg * st.zg
        res = (rd, rp, rl, ru, rg)
        aff = _newton(dw, st, fac, res, slzl, suzu, sgzg)
        a_aff = _step_len(st, *aff[2:]).clamp(max=1.0).unsqueeze(-1)
        _, _, dsl, dzl, dsu, dzu, dsg, dzg = aff
        mu_aff = (
            ((st.sl + a_aff * dsl) * (st.zl + a_aff * dzl) * fl).sum(-1)
            + ((st.su + a_aff * dsu) * (st.zu + a_aff * dzu) * fu).sum(-1)
            + ((st.sg + a_aff * dsg) * (st.zg + a_aff * dzg)).sum(-1)
        ) / n_ineq
        sigma = (mu_aff / mu.clamp(min=torch.finfo(mu.dtype).tiny)).clamp(0.0, 1.0) ** 3
        smu = (sigma * mu).unsqueeze(-1)
        step = _newton(
            dw,
            st,
            fac,
            res,
            slzl + dsl * dzl - smu * fl,
            suzu + dsu * dzu - smu * fu,
            sgzg + dsg * dzg - smu,
        )
        dx, dy, dsl, dzl, dsu, dzu, dsg, dzg = step
        alpha = (tau * _step_len(st, dsl, dzl, dsu, dzu, dsg, dzg)).clamp(max=1.0)
        bad = ~fac.ok
        alpha = torch.where(bad, torch.zeros_like(alpha), alpha).unsqueeze(-1)

        st = _State(
            x=st.x + alpha * dx,
            y=st.y + alpha * dy,
            sl=torch.where(fl > 0, st.sl + alpha * dsl, st.sl),
            zl=st.zl + alpha * dzl,
            su=torch.where(fu > 0, st.su + alpha * dsu, st.su),
            zu=st.zu + alpha * dzu,
            sg=st.sg + alpha * dsg,
            zg=st.zg + alpha * dzg,
        )
        # A blocked step that is almost a pure ray certifies infeasibility.
        blocked = (alpha.squeeze(-1) < 1e-3) & ~bad
        stop = bad.clone()
        code = torch.full_like(idx, int(QPStatus.NUMERICAL_ERROR))
        if bool(blocked.any()):
            pinf_dir = _primal_infeasible(dw, dy, dzl, dzu, dzg, eps_inf) & blocked
            dinf_dir = _dual_infeasible(dw, dx, eps_inf) & blocked & ~pinf_dir
            code[pinf_dir] = int(QPStatus.PRIMAL_INFEASIBLE)
            code[dinf_dir] = int(QPStatus.DUAL_INFEASIBLE)
            stop |= pinf_dir | dinf_dir
        if bool(stop.any()):
            finish(stop, code, it + 1, pres, dres)

    out.update(status=status, iterations=iters, pres=pres_out, dres=dres_out)
    return out
