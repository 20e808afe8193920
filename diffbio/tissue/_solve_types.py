"""Modes, status, result and error types of :func:`diffbio.tissue.solve_equilibrium`."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import torch

from diffbio._errors import DiffbioError


class LinearSolver(enum.Enum):
    """Linear solve of a Newton step: assembled sparse LU, or matrix-free CG."""

    SPARSE_DIRECT = "sparse_direct"
    MATRIX_FREE_CG = "matrix_free_cg"


class SolveStatus(enum.Enum):
    CONVERGED = "converged"
    NO_EQUILIBRIUM = "no_equilibrium"
    INVERTED = "inverted"
    MAX_ITERATIONS = "max_iterations"


class NoEquilibriumError(DiffbioError):
    """Newton found no non-inverted equilibrium (e.g. SVK compressed past its limit point)."""

    def __init__(self, result: EquilibriumResult) -> None:
        self.result = result
        super().__init__(result.message)


@dataclass(frozen=True)
class EquilibriumResult:
    """Outcome of :func:`solve_equilibrium`.

    Attributes:
        x: (N, 3) [m] equilibrium positions (differentiable, see solve_equilibrium).
        cuff_poses: (C, 6) cuff poses ``(t [m], omega [rad])``.
        reactions: (N, 3) [N] forces the fixed supports exert on the tissue (zero on free dofs).
        energy: [J] total potential at x.
        status, converged, iterations, residual [N] (max-norm of the free gradient), message.
        min_det: smallest ``det F`` over the elements.
    """

    x: torch.Tensor
    cuff_poses: torch.Tensor
    reactions: torch.Tensor
    energy: float
    status: SolveStatus
    iterations: int
    residual: float
    min_det: float
    message: str

    @property
    def converged(self) -> bool:
        return self.status is SolveStatus.CONVERGED
