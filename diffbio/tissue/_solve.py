"""Quasi-static equilibrium by Newton's method, differentiable through its adjoint.

The unknowns are the free degrees of freedom of the nodes and the 6-DOF poses of the
cuffs; the total potential is

    Pi = Psi(x) - loads . x - sum_i m_i g . x_i + sum_cuffs Phi_c(x_c, p_c) [+ 1/2 x'Qx - b'x]

(the optional quadratic term carries inertia and damping of a backward-Euler step).
Newton steps solve ``H d = -grad`` with the assembled sparse Hessian (SciPy SuperLU) or a
matrix-free Jacobi-preconditioned conjugate gradient in torch; a backtracking (Armijo)
line search rejects steps that invert an element. The adjoint (implicit function theorem
with the final Hessian) makes ``x`` differentiable in the rest geometry, the Lame
parameters, loads, gravity, prescribed positions and cuff wrenches.

Implementation: result types in ``_solve_types``, the problem (potential, gradient,
Hessian) in ``_solve_problem``, linear solves in ``_solve_linalg``, Newton in
``_solve_newton``, the adjoint in ``_solve_adjoint``.
"""

from __future__ import annotations

import torch

from diffbio.tissue._bc import BoundaryConditions
from diffbio.tissue._material import Material
from diffbio.tissue._mesh import TetMesh
from diffbio.tissue._solve_adjoint import _Equilibrium
from diffbio.tissue._solve_linalg import _pcg as _pcg  # re-exported for benchmarks
from diffbio.tissue._solve_linalg import _symmetric_solve as _symmetric_solve  # idem
from diffbio.tissue._solve_newton import _solve_forward
from diffbio.tissue._solve_problem import _cache_key, _Problem, cuff_potential, lumped_masses
from diffbio.tissue._solve_types import (
    EquilibriumResult,
    LinearSolver,
    NoEquilibriumError,
    SolveStatus,
)

__all__ = [
    "LinearSolver",
    "SolveStatus",
    "EquilibriumResult",
    "NoEquilibriumError",
    "solve_equilibrium",
    "lumped_masses",
    "cuff_potential",
]


def solve_equilibrium(
    mesh: TetMesh,
    material: Material,
    bc: BoundaryConditions,
    *,
    x0: torch.Tensor | None = None,
    cuff_poses0: torch.Tensor | None = None,
    linear_solver: LinearSolver = LinearSolver.SPARSE_DIRECT,
    load_steps: int = 1,
    max_iter: int = 50,
    rtol: float = 1e-10,
    atol: float = 0.0,
    cg_rtol: float = 1e-12,
    cg_maxiter: int = 5000,
    raise_on_failure: bool = True,
    _quad=None,
) -> EquilibriumResult:
    """Static equilibrium of a tissue mesh under ``bc`` (Newton with line search).

    Args:
        mesh: rest geometry ``(N, 3) [m]`` and ``(E, 4)`` tetrahedra.
        material: per-element ``lam, mu: (E,) [Pa]``, model, density.
        bc: fixed dofs, loads, gravity, cuffs.
        x0: (N, 3) [m] initial guess (rest positions by default; fixed dofs are overridden).
        load_steps: apply loads and prescribed motion in this many equal increments.
        rtol, atol: convergence when ``max|grad| <= atol + rtol * force_scale`` [N], the
            scale being the largest internal, external or reaction force.
        raise_on_failure: raise :class:`NoEquilibriumError` instead of returning a result
            whose status is not CONVERGED (an inverted or unconverged mesh).

    Returns:
        EquilibriumResult whose ``x: (N, 3) [m]`` and ``cuff_poses: (C, 6)`` are
        differentiable (adjoint method, exact at convergence) with respect to
        ``mesh.rest``, ``material.lam``, ``material.mu``, ``bc.loads``, ``bc.gravity``,
        ``bc.fixed_values`` and the cuffs' ``force`` and ``moment``.
    """
    opts = dict(
        max_iter=max_iter,
        rtol=rtol,
        atol=atol,
        linear_solver=linear_solver,
        cg_rtol=cg_rtol,
        cg_maxiter=cg_maxiter,
    )
    dmesh = mesh.with_rest(mesh.rest.detach())
    dmat = material.with_lame(material.lam.detach(), material.mu.detach())

    key = (_cache_key(mesh, material), None)

    def factory(b):
        return _Problem(dmesh, dmat, b, _quad, key)

    prob, u, status, its, res, msg = _solve_forward(
        factory, dmesh, dmat, bc, x0, cuff_poses0, opts, load_steps
    )
    E, min_det = prob.energy(u)
    if status is SolveStatus.CONVERGED and min_det <= 0:
        status, msg = (
            SolveStatus.INVERTED,
            f"equilibrium has inverted elements (min det F = {min_det:.3g})",
        )
    _, g_full, _ = prob.gradient(u)
    react = torch.zeros(3 * prob.N, dtype=prob.dtype)
    react[bc.fixed_dofs] = g_full.reshape(-1)[bc.fixed_dofs]
    holder = {"prob": prob, "u": u, "bc": bc}
    wrench = [c.force for c in bc.cuffs] + [c.moment for c in bc.cuffs]
    x, poses = _Equilibrium.apply(
        holder, mesh.rest, material.lam, material.mu, bc.loads, bc.gravity, bc.fixed_values, *wrench
    )
    result = EquilibriumResult(
        x, poses, react.reshape(prob.N, 3), E, status, its, res, min_det, msg
    )
    if raise_on_failure and status is not SolveStatus.CONVERGED:
        raise NoEquilibriumError(result)
    return result
