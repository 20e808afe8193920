"""Implicit (backward Euler) dynamics with Rayleigh damping.

Each step minimises the incremental potential

    Pi(x) + 1/(2h^2) |x - x_n - h v_n|_M^2 + 1/(2h) (x - x_n)' (alpha M + beta K_n) (x - x_n)

whose stationarity is ``M (v' - v)/h = -dPi/dx - (alpha M + beta K_n) v'`` with
``v' = (x - x_n)/h``: backward Euler with mass- and stiffness-proportional damping, the
stiffness ``K_n`` taken at the start of the step. The energy a step dissipates is
``h v'^T (alpha M + beta K_n) v'``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from diffbio._errors import ShapeError
from diffbio.tissue._bc import BoundaryConditions
from diffbio.tissue._energy import ElasticKernels
from diffbio.tissue._material import Material
from diffbio.tissue._mesh import TetMesh
from diffbio.tissue._solve import SolveStatus, lumped_masses, solve_equilibrium

__all__ = ["assemble_stiffness", "DynamicsResult", "simulate"]


def assemble_stiffness(mesh: TetMesh, material: Material, x: torch.Tensor) -> sp.csr_matrix:
    """Global tangent stiffness ``d^2 Psi/dx^2``: SciPy CSR (3N, 3N) [N/m] at ``x: (N, 3) [m]``."""
    if x.shape != (mesh.num_nodes, 3):
        raise ShapeError(f"x must be ({mesh.num_nodes}, 3), got {tuple(x.shape)}")
    dmesh = mesh.with_rest(mesh.rest.detach())
    kern = ElasticKernels(dmesh, material.with_lame(material.lam.detach(), material.mu.detach()))
    Ke = kern.hessians(x.detach())
    dofs = (mesh.tets[:, :, None] * 3 + torch.arange(3)).reshape(-1, 12).numpy()
    r = np.broadcast_to(dofs[:, :, None], (len(dofs), 12, 12)).reshape(-1)
    c = np.broadcast_to(dofs[:, None, :], (len(dofs), 12, 12)).reshape(-1)
    n = 3 * mesh.num_nodes
    K = sp.coo_matrix((Ke.reshape(-1).cpu().numpy(), (r, c)), shape=(n, n)).tocsr()
    if kern.nodal is not None:
        K = (K + kern.nodal.hessian(x.detach().cpu())).tocsr()
    return K


@dataclass(frozen=True)
class DynamicsResult:
    """Trajectory of :func:`simulate` (T steps).

    Attributes:
        x: (T+1, N, 3) [m] positions; v: (T+1, N, 3) [m/s] velocities.
        cuff_poses: (T+1, C, 6) cuff poses.
        reactions: (T+1, N, 3) [N] support forces on the tissue (step 0: zeros).
        dissipated: (T,) [J] energy dissipated by damping in each step.
        time: (T+1,) [s].
    """

    x: torch.Tensor
    v: torch.Tensor
    cuff_poses: torch.Tensor
    reactions: torch.Tensor
    dissipated: torch.Tensor
    time: torch.Tensor


def simulate(
    mesh: TetMesh,
    material: Material,
    bc_at: Callable[[float], BoundaryConditions],
    dt: float,
    steps: int,
    *,
    x0: torch.Tensor | None = None,
    v0: torch.Tensor | None = None,
    **newton,
) -> DynamicsResult:
    """Backward-Euler dynamics of the tissue for ``steps`` steps of ``dt`` [s].

    ``bc_at(t)`` gives the boundary conditions at time ``t`` [s] (prescribed motion, loads,
    cuffs). Damping uses ``material.alpha`` [1/s] and ``material.beta`` [s]; masses are
    lumped from ``material.density``. Extra keywords go to :func:`solve_equilibrium`.
    Raises :class:`NoEquilibriumError` when a step has no solution.
    """
    rest = mesh.rest.detach()
    mass = (
        lumped_masses(rest, mesh.tets, material.rho(mesh.num_elements, rest))
        .repeat_interleave(3)
        .numpy()
    )
    M = sp.diags(mass).tocsr()
    x = rest.clone() if x0 is None else x0.detach().clone()
    v = torch.zeros_like(x) if v0 is None else v0.detach().clone()
    xs, vs, poses, reacts, diss = [x], [v], [], [torch.zeros_like(x)], []
    p = None
    h = float(dt)
    for n in range(steps):
        t = (n + 1) * h
        bc = bc_at(t)
        D = material.alpha * M
        if material.beta:
            D = D + material.beta * assemble_stiffness(mesh, material, x)
        Q = (M / h**2 + D / h).tocsr()
        xn = x.reshape(-1).numpy()
        b = torch.from_numpy(M @ (xn + h * v.reshape(-1).numpy()) / h**2 + D @ xn / h)
        res = solve_equilibrium(mesh, material, bc, x0=x, cuff_poses0=p, _quad=(Q, b), **newton)
        if res.status is not SolveStatus.CONVERGED:  # pragma: no cover - raised inside by default
            break
        x_new = res.x.detach()
        v = (x_new - x) / h
        vf = v.reshape(-1).numpy()
        diss.append(h * float(vf @ (D @ vf)))
        x, p = x_new, res.cuff_poses.detach()
        xs.append(x)
        vs.append(v)
        poses.append(p)
        reacts.append(res.reactions)
    nc = len(bc_at(0.0).cuffs)
    pose_t = (
        torch.stack([torch.zeros(nc, 6, dtype=x.dtype)] + poses)
        if nc
        else torch.zeros(len(xs), 0, 6)
    )
    return DynamicsResult(
        torch.stack(xs),
        torch.stack(vs),
        pose_t,
        torch.stack(reacts),
        torch.tensor(diss, dtype=x.dtype),
        h * torch.arange(len(xs), dtype=x.dtype),
    )
