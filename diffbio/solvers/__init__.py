"""diffbio.solvers: generic batched solvers (no biomechanics inside).

``solve_qp`` solves thousands of small convex QPs at once with a batched primal-dual
interior-point method and differentiates them by implicit differentiation of the KKT
conditions at the solution's active set.
"""

from diffbio.solvers._qp import solve_qp
from diffbio.solvers._qp_types import QPOptions, QPSolution, QPStatus

__all__ = ["QPOptions", "QPSolution", "QPStatus", "solve_qp"]
