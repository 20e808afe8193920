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
    (read on the active entries), rg: (B, p) (read on active rows). Returns x (B, n),
    y (B, m), z_l, z_u (B, n) and z_g (B, p), zero on inactive entries, and ok (B,) bool
    (False where the system was singular).
    """
    dt = r1.dtype
    fixed = act_l | act_u
    free = (~fixed).to(dt)
    xb = torch.where(act_l, -rl, torch.zeros_like(rl))
    xb = torch.where(act_u, ru, xb)
    ag = act_g.to(dt)
    rhs1 = free * (r1 - d.Pmv(xb))
    rhs2 = r2 - d.Amv(xb)
    rhs3 = ag * (rg - d.Gmv(xb))
    Af = d.A * free.unsqueeze(-2)
    m, p = d.m, d.p
    ok = torch.ones(r1.shape[0], dtype=torch.bool, device=r1.device)
    if d.diag and p == 0:
        hd = torch.where(fixed, torch.ones_like(d.P), d.P)
        ok &= (hd > 0).all(-1)
        hd = torch.where(hd > 0, hd, torch.ones_like(hd))
        t = rhs1 / hd
        if m > 0:
            S = Af @ (Af.transpose(-1, -2) / hd.unsqueeze(-1))
            L, info = torch.linalg.cholesky_ex(S)
            ok &= info == 0
            y = torch.cholesky_solve((((Af @ t.unsqueeze(-1)).squeeze(-1)) - rhs2).unsqueeze(-1), L)
            y = y.squeeze(-1)
            xf = t - (Af.transpose(-1, -2) @ y.unsqueeze(-1)).squeeze(-1) / hd
        else:
            y = rhs2
            xf = t
        zg = rhs3
    else:
        n = r1.shape[-1]
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
        ok &= info == 0
        xf, y, zg = sol[:, :n], sol[:, n : n + m], sol[:, n + m :]
    x = xf * free + xb
    g = d.Pmv(x) + d.Atv(y) + d.Gtv(zg) - r1
    zl = torch.where(act_l, g, torch.zeros_like(g))
    zu = torch.where(act_u, -g, torch.zeros_like(g))
    ok &= torch.isfinite(x).all(-1) & torch.isfinite(y).all(-1) & torch.isfinite(zg).all(-1)
    return x, y, zl, zu, zg, ok
