"""A differentiable sparse linear solve (scipy's SuperLU), for the refinement's KKT systems.

``sparse_solve(rows, cols, values, rhs, n)`` solves ``K z = rhs`` where ``K`` is the
``(n, n)`` matrix holding ``values`` at ``(rows, cols)`` (duplicates are summed). The
backward pass solves the transposed system once: ``dL/drhs = K^-T g`` and
``dL/dvalues[i] = -(K^-T g)[rows[i]] * z[cols[i]]``. Runs on the CPU in float64; the result
follows ``rhs``'s dtype and device.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
from torch import Tensor

from diffbio._errors import DiffbioError


class _SparseSolve(torch.autograd.Function):
    @staticmethod
    def forward(ctx, rows, cols, n, values, rhs):
        v = values.detach().cpu().double().numpy()
        K = sp.csc_matrix((v, (rows, cols)), shape=(n, n))
        try:
            lu = spla.splu(K)
        except RuntimeError as exc:  # exactly singular
            raise DiffbioError(f"refinement: singular KKT system ({exc})") from None
        z = lu.solve(rhs.detach().cpu().double().numpy())
        ctx.lu, ctx.rows, ctx.cols = lu, rows, cols
        zt = torch.as_tensor(z, dtype=rhs.dtype, device=rhs.device)
        ctx.save_for_backward(zt)
        return zt

    @staticmethod
    def backward(ctx, g):
        (z,) = ctx.saved_tensors
        u = ctx.lu.solve(g.detach().cpu().double().numpy(), trans="T")
        ut = torch.as_tensor(u, dtype=g.dtype, device=g.device)
        gv = None
        if ctx.needs_input_grad[3]:
            gv = -ut[torch.as_tensor(ctx.rows)] * z[torch.as_tensor(ctx.cols)]
        return None, None, None, gv, ut if ctx.needs_input_grad[4] else None


def sparse_solve(rows: np.ndarray, cols: np.ndarray, values: Tensor, rhs: Tensor, n: int) -> Tensor:
    """Solve ``K z = rhs`` for the sparse ``K`` given in coordinate form.

    Args:
        rows, cols: ``(nnz,)`` integer arrays (duplicates are summed).
        values: ``(nnz,)`` entries (differentiable).
        rhs: ``(n,)`` right-hand side (differentiable).
        n: size of ``K``.
    Returns:
        ``z: (n,)``.
    Raises:
        DiffbioError: ``K`` is singular.
    """
    return _SparseSolve.apply(np.asarray(rows), np.asarray(cols), int(n), values, rhs)
