"""Types of the batched QP solver: status codes, options and the solution record."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import torch


class QPStatus(enum.IntEnum):
    """Per-problem outcome of :func:`diffbio.solvers.solve_qp` (stored as int64 codes)."""

    SOLVED = 0
    PRIMAL_INFEASIBLE = 1  # a Farkas certificate (y, z) was found: no feasible x
    DUAL_INFEASIBLE = 2  # an improving ray was found: the objective is unbounded below
    MAX_ITER = 3  # not converged within ``QPOptions.max_iter``
    NUMERICAL_ERROR = 4  # factorization failed or the iterates became non-finite


@dataclass(frozen=True)
class QPOptions:
    """Settings of the batched primal-dual interior-point QP solver.

    Tolerances left as ``None`` follow the dtype: 1e-9 (float64) or 1e-5 (float32).
    ``chunk_size`` bounds how many problems are factorized at once (memory); ``None``
    solves the whole batch in one go. ``polish`` re-solves the KKT system of the detected
    active set after convergence (machine-precision solution, same system as the backward).
    ``nan_on_failure`` fills ``x`` and the multipliers of every problem that is not SOLVED
    with NaN, so that a bad frame can never be mistaken for a solution.
    """

    max_iter: int = 100
    eps_abs: float | None = None
    eps_rel: float | None = None
    eps_infeasible: float | None = None
    regularization: float | None = None
    step_fraction: float = 0.99
    polish: bool = True
    chunk_size: int | None = None
    nan_on_failure: bool = True

    def resolved(self, dtype: torch.dtype) -> QPOptions:
        """A copy with every ``None`` tolerance replaced by the default for ``dtype``."""
        f64 = dtype == torch.float64
        return QPOptions(
            max_iter=self.max_iter,
            eps_abs=self.eps_abs if self.eps_abs is not None else (1e-9 if f64 else 1e-5),
            eps_rel=self.eps_rel if self.eps_rel is not None else (1e-9 if f64 else 1e-5),
            eps_infeasible=(
                self.eps_infeasible if self.eps_infeasible is not None else (1e-7 if f64 else 1e-4)
            ),
            regularization=(
                self.regularization if self.regularization is not None else (1e-10 if f64 else 1e-6)
            ),
            step_fraction=self.step_fraction,
            polish=self.polish,
            chunk_size=self.chunk_size,
            nan_on_failure=self.nan_on_failure,
        )


@dataclass(frozen=True)
class QPSolution:
    """Solution of a batch of QPs ``min 1/2 x'Px + q'x  s.t. Ax = b, l <= x <= u, Gx <= h``.

    ``...`` are the broadcast leading batch dimensions of the inputs. Stationarity reads
    ``Px + q + A'y_eq - z_lower + z_upper + G'z_ineq = 0`` with ``z_* >= 0``.

    Attributes:
        x: (..., n) primal solution.
        y_eq: (..., m) multipliers of ``Ax = b``.
        z_lower: (..., n) multipliers of ``x >= l`` (0 where ``l = -inf``).
        z_upper: (..., n) multipliers of ``x <= u`` (0 where ``u = +inf``).
        z_ineq: (..., p) multipliers of ``Gx <= h``.
        status: (...) int64 :class:`QPStatus` codes.
        iterations: (...) int64 interior-point iterations used.
        primal_residual: (...) max-norm of the equality and inequality violation.
        dual_residual: (...) max-norm of the stationarity residual.
    """

    x: torch.Tensor
    y_eq: torch.Tensor
    z_lower: torch.Tensor
    z_upper: torch.Tensor
    z_ineq: torch.Tensor
    status: torch.Tensor
    iterations: torch.Tensor
    primal_residual: torch.Tensor
    dual_residual: torch.Tensor

    @property
    def solved(self) -> torch.Tensor:
        """(...) bool: problems whose status is SOLVED."""
        return self.status == int(QPStatus.SOLVED)
