"""QP generators and an independent reference solver (Clarabel) for the solver tests."""

from __future__ import annotations

import clarabel
import numpy as np
import osqp
import scipy.sparse as sp
import torch


def so_batch(
    B: int,
    n_muscles: int = 92,
    n_reserves: int = 23,
    n_coords: int = 23,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    reserve_bound: float = 1e3,
    weighted: bool = False,
):
    """Random feasible problems of static-optimization shape.

    x = (activations (M,), reserves (R,)); P diagonal 2 (or random positive weights);
    q = 0; A = (moment arm x max force (Q, M) with 30 % nonzeros in [-50, 50] N m,
    identity of the reserves on their own coordinates); b = A x_true for random x_true
    inside the bounds (every muscle has a nonzero moment arm); 0 <= activations <= 1, |reserves| <= reserve_bound (may be inf).
    Returns P (n,) or (B, n), q (n,), A (B, Q, n), b (B, Q), l (n,), u (n,).
    """
    g = torch.Generator().manual_seed(seed)
    M, R, Q = n_muscles, n_reserves, n_coords
    arm = (torch.randn(B, Q, M, generator=g, dtype=dtype) * 15).clamp(-50, 50)
    mask = torch.rand(B, Q, M, generator=g, dtype=dtype) < 0.3
    # every muscle spans at least one coordinate (as in a real model)
    own = torch.randint(0, Q, (B, 1, M), generator=g)
    mask = mask | (torch.arange(Q).view(1, Q, 1) == own)
    arm = arm * mask
    res = torch.eye(Q, R, dtype=dtype).expand(B, Q, R)
    A = torch.cat([arm, res], -1)
    act = torch.rand(B, M, generator=g, dtype=dtype) * 0.6
    rsv = torch.randn(B, R, generator=g, dtype=dtype) * 5
    b = (A @ torch.cat([act, rsv], -1).unsqueeze(-1)).squeeze(-1)
    n = M + R
    if weighted:
        P = 2.0 * (0.5 + torch.rand(B, n, generator=g, dtype=dtype))
    else:
        P = torch.full((n,), 2.0, dtype=dtype)
    q = torch.zeros(n, dtype=dtype)
    lo = torch.cat([torch.zeros(M, dtype=dtype), torch.full((R,), -reserve_bound, dtype=dtype)])
    hi = torch.cat([torch.ones(M, dtype=dtype), torch.full((R,), reserve_bound, dtype=dtype)])
    return P, q, A, b, lo, hi


def dense_batch(B: int, n: int, m: int, p: int, seed: int = 0, dtype=torch.float64):
    """Random feasible problems with dense PD P, equality rows, box and inequality rows."""
    g = torch.Generator().manual_seed(seed)
    Mx = torch.randn(B, n, n, generator=g, dtype=dtype)
    P = Mx @ Mx.transpose(-1, -2) / n + 0.3 * torch.eye(n, dtype=dtype)
    q = torch.randn(B, n, generator=g, dtype=dtype) * 2
    A = torch.randn(B, m, n, generator=g, dtype=dtype)
    x0 = torch.rand(B, n, generator=g, dtype=dtype) * 0.8 + 0.1
    b = (A @ x0.unsqueeze(-1)).squeeze(-1)
    lo = torch.zeros(B, n, dtype=dtype)
    hi = torch.ones(B, n, dtype=dtype)
    G = torch.randn(B, p, n, generator=g, dtype=dtype)
    h = (G @ x0.unsqueeze(-1)).squeeze(-1) + 0.05
    return P, q, A, b, lo, hi, G, h


def clarabel_solve(P, q, A=None, b=None, lo=None, hi=None, G=None, h=None, tol=1e-13):
    """Solve one QP with Clarabel (numpy float64 inputs, P dense (n, n) or diagonal (n,)).

    Tries ``tol``, then 10x and 100x looser where Clarabel stops short. Returns
    (x, status string).
    """
    P = np.diag(P) if np.ndim(P) == 1 else np.asarray(P)
    n = P.shape[0]
    rows, rhs, cones = [], [], []
    if A is not None and len(b):
        rows.append(np.asarray(A))
        rhs.append(np.asarray(b))
        cones.append(clarabel.ZeroConeT(len(b)))
    ineq_rows, ineq_rhs = [], []
    eye = np.eye(n)
    if lo is not None:
        fin = np.isfinite(lo)
        ineq_rows.append(-eye[fin])
        ineq_rhs.append(-np.asarray(lo)[fin])
    if hi is not None:
        fin = np.isfinite(hi)
        ineq_rows.append(eye[fin])
        ineq_rhs.append(np.asarray(hi)[fin])
    if G is not None:
        ineq_rows.append(np.asarray(G))
        ineq_rhs.append(np.asarray(h))
    if ineq_rows:
        Gm = np.vstack(ineq_rows)
        if Gm.shape[0]:
            rows.append(Gm)
            rhs.append(np.concatenate(ineq_rhs))
            cones.append(clarabel.NonnegativeConeT(Gm.shape[0]))
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_ktratio = 1e-8
    Amat = sp.csc_matrix(np.vstack(rows)) if rows else sp.csc_matrix((0, n))
    bvec = np.concatenate(rhs) if rhs else np.zeros(0)
    Pu = sp.triu(sp.csc_matrix(P)).tocsc()
    for t in (tol, 10 * tol, 100 * tol):  # tightest tolerance that Clarabel reaches
        settings.tol_gap_abs = settings.tol_gap_rel = settings.tol_feas = t
        sol = clarabel.DefaultSolver(Pu, np.asarray(q), Amat, bvec, cones, settings).solve()
        if str(sol.status) == "Solved":
            break
    return np.asarray(sol.x), str(sol.status)


def osqp_polished_solve(P, q, A, b, lo, hi, eps: float = 1e-10):
    """Solve one QP with OSQP to ``eps`` and its active-set polish (machine precision when
    ``polished`` is True). P: (n,) diagonal or (n, n). Returns (x, status, polished)."""
    P = np.diag(P) if np.ndim(P) == 1 else np.asarray(P)
    n = P.shape[0]
    C = sp.vstack([sp.csc_matrix(np.asarray(A)), sp.eye(n)]).tocsc()
    lower = np.concatenate([np.asarray(b), np.asarray(lo)])
    upper = np.concatenate([np.asarray(b), np.asarray(hi)])
    solver = osqp.OSQP()
    solver.setup(
        P=sp.triu(sp.csc_matrix(P)).tocsc(),
        q=np.asarray(q),
        A=C,
        l=lower,
        u=upper,
        eps_abs=eps,
        eps_rel=eps,
        max_iter=200000,
        polishing=True,
        verbose=False,
    )
    res = solver.solve(raise_error=False)
    return np.asarray(res.x), str(res.info.status), res.info.status_polish == 1
