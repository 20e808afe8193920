"""Linear solves of the Newton steps and the adjoint: Jacobi-preconditioned CG (matrix-free)
and a symmetric-mode sparse LU."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch


def _pcg(matvec, diag, b: torch.Tensor, rtol: float, maxiter: int) -> tuple[torch.Tensor, bool]:
    """Jacobi-preconditioned conjugate gradient; returns (x, ok) (ok False on negative curvature)."""
    Minv = 1.0 / torch.where(diag.abs() > 0, diag.abs(), torch.ones_like(diag))
    x = torch.zeros_like(b)
    r = b.clone()
    z = Minv * r
    p = z.clone()
    rz = r @ z
    bnorm = float(b.norm())
    for _ in range(maxiter):
        Ap = matvec(p)
        pAp = p @ Ap
        if pAp <= 0:
            return x, False
        a = rz / pAp
        x = x + a * p
        r = r - a * Ap
        if float(r.norm()) <= rtol * bnorm:
            return x, True
        z = Minv * r
        rz_new = r @ z
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x, True


def _symmetric_solve(H: sp.csc_matrix, b: np.ndarray) -> np.ndarray:
    """``H^-1 b`` for a symmetric sparse H: SuperLU in symmetric mode (minimum-degree
    ordering of H + H', diagonal pivots), several times faster than the default column
    ordering on FEM Hessians; the general LU where a diagonal pivot is zero."""
    try:
        lu = spla.splu(
            H.tocsc(),
            permc_spec="MMD_AT_PLUS_A",
            diag_pivot_thresh=0.0,
            options={"SymmetricMode": True},
        )
        x = lu.solve(b)
        if np.isfinite(x).all():
            return x
    except RuntimeError:
        pass
    return spla.spsolve(H, b)
