"""Active-set KKT system of a QP: used to polish the forward solution and for the backward.

With the active lower bounds L, upper bounds U and inequality rows I fixed, the KKT
conditions are the equations ``F(w) = 0`` in ``w = (x, y, z_L, z_U, z_I)``::

    Px + q + A'y - E_L'z_L + E_U'z_U + G_I'z_I = 0
    Ax - b = 0,   -x_L + l_L = 0,   x_U - u_U = 0,   G_I x - h_I = 0

whose Jacobian K is symmetric. :func:`kkt_solve` solves ``K w = r`` for any right-hand
side: the fixed variables are eliminated, the rest is one batched solve of size
``n + m + p`` (or, for diagonal P without G, an m x m Cholesky of the Schur complement).
"""

from __future__ import annotations

import torch

from diffbio.solvers._qp_data import QPData


def kkt_solve(
    d: QPData,
    act_l: torch.Tensor,
    act_u: torch.Tensor,
    act_g: torch.Tensor,
    r1: torch.Tensor,
    r2: torch.Tensor,
    rl: torch.Tensor,
    ru: torch.Tensor,
    rg: torch.Tensor,
):
    """Solve ``K (x, y, z_l, z_u, z_g) = (r1, r2, rl, ru, rg)`` for the active set.

    act_l, act_u: (B, n) bool, act_g: (B, p) bool. r1: (B, n), r2: (B, m), rl, ru: (B, n)
    (read on the active entries; finite), rg: (B, p) (read on active rows). Returns x (B, n),
    y (B, m), z_l, z_u (B, n) and z_g (B, p), zero on inactive entries, and ok (B,) bool
    (False where the system was singular).
    """
    dt = r1.dtype
    m, p = d.m, d.p
    fixed = act_l | act_u
    free = (~fixed).to(dt)
    # float masks: arithmetic on them is much cheaper than where() on bool masks
    uf = act_u.to(dt)
    lf = (act_l & ~act_u).to(dt)
    xb = ru * uf - rl * lf
    rhs1 = free * (r1 - d.Pmv(xb))
    rhs2 = r2 - d.Amv(xb) if m > 0 else r2
    Af = d.A * free.unsqueeze(-2)
    if d.diag and p == 0:
        hd = d.P * free + (1.0 - free)  # where(fixed, 1, P) wherever P is finite
        ok = hd.amin(-1) > 0  # NaN (from a non-finite P) propagates: not ok
        if not bool(ok.all()):
            hd = torch.where(fixed, 1.0, d.P)
            pos = hd > 0
            ok = pos.all(-1)
            hd = torch.where(pos, hd, 1.0)
        t = rhs1 / hd
        if m > 0:
            AfT = Af.transpose(-1, -2)
            S = Af @ (AfT / hd.unsqueeze(-1))
            L, info = torch.linalg.cholesky_ex(S)
            ok &= info == 0
            y = torch.cholesky_solve((((Af @ t.unsqueeze(-1)).squeeze(-1)) - rhs2).unsqueeze(-1), L)
            y = y.squeeze(-1)
            xf = t - (AfT @ y.unsqueeze(-1)).squeeze(-1) / hd
        else:
            y = rhs2
            xf = t
        zg = r1.new_zeros(r1.shape[0], 0)
    else:
        n = r1.shape[-1]
        ag = act_g.to(dt)
        rhs3 = ag * (rg - d.Gmv(xb))
        Pd = d.dense_P()
        Pf = Pd * free.unsqueeze(-1) * free.unsqueeze(-2) + torch.diag_embed(1.0 - free)
        Gf = d.G * free.unsqueeze(-2) * ag.unsqueeze(-1)
        Bsz = r1.shape[0]
        N = n + m + p
        K = r1.new_zeros(Bsz, N, N)
        K[:, :n, :n] = Pf
        K[:, :n, n : n + m] = Af.transpose(-1, -2)
        K[:, n : n + m, :n] = Af
        K[:, :n, n + m :] = Gf.transpose(-1, -2)
        K[:, n + m :, :n] = Gf
        K[:, n + m :, n + m :] = torch.diag_embed(ag - 1.0)
        rhs = torch.cat([rhs1 + xb * (1.0 - free), rhs2, rhs3], -1)
        sol, info = torch.linalg.solve_ex(K, rhs)
        ok = info == 0
        xf, y, zg = sol[:, :n], sol[:, n : n + m], sol[:, n + m :]
    x = xf * free + xb
    g = d.Pmv(x)
    if m > 0:
        g = g + d.Atv(y)
    if p > 0:
        g = g + d.Gtv(zg)
    g = g - r1
    ok &= _finite_rows(x) & _finite_rows(y) & _finite_rows(zg)
    if g.numel() == 0 or bool(torch.isfinite(g.abs().amax())):
        zl = g * act_l.to(dt)
        zu = -g * uf
    else:  # 0 * inf would be NaN
        zl = torch.where(act_l, g, 0.0)
        zu = torch.where(act_u, -g, 0.0)
    return x, y, zl, zu, zg, ok


def _finite_rows(v: torch.Tensor) -> torch.Tensor:
    """(B,) bool: every entry of the row finite (the max-abs propagates inf and NaN)."""
    if v.shape[-1] == 0:
        return torch.ones(v.shape[:-1], dtype=torch.bool, device=v.device)
    return torch.isfinite(v.abs().amax(-1))
