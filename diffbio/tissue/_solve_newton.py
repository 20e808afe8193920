"""Newton's method with a backtracking (Armijo) line search on one equilibrium problem, and
load stepping."""

from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from diffbio.tissue._bc import BoundaryConditions, Cuff
from diffbio.tissue._solve_linalg import _pcg, _symmetric_solve
from diffbio.tissue._solve_problem import _Problem
from diffbio.tissue._solve_types import LinearSolver, SolveStatus

# below this relative residual the potential cannot resolve further progress (float64)
_FLOOR = 1e-8


def _newton(
    prob: _Problem, u: torch.Tensor, *, max_iter, rtol, atol, linear_solver, cg_rtol, cg_maxiter
):
    status, it = SolveStatus.MAX_ITERATIONS, 0
    E0, det0 = prob.energy(u)
    if det0 <= 0:
        return (
            u,
            SolveStatus.INVERTED,
            0,
            math.inf,
            f"initial state has an inverted element (det F = {det0:.3g})",
        )
    g, _, scale = prob.gradient(u)
    history: list[float] = []
    floor = _FLOOR if prob.dtype == torch.float64 else 1e-3
    for it in range(1, max_iter + 1):  # noqa: B007
        res = float(g.abs().max()) if g.numel() else 0.0
        if res <= atol + rtol * max(scale, 1e-300):
            return u, SolveStatus.CONVERGED, it - 1, res, "converged"
        history.append(res)
        if len(history) >= 4 and res <= floor * scale and res > 0.5 * history[-4]:
            # three iterations without progress below the round-off floor of the potential
            return u, SolveStatus.CONVERGED, it - 1, res, "converged (round-off floor)"
        d, ok = None, False
        shift = 0.0
        for _attempt in range(8):
            if linear_solver is LinearSolver.SPARSE_DIRECT:
                H = prob.hessian(u)
                if shift:
                    dg = np.abs(H.diagonal())
                    H = H + shift * sp.diags(np.maximum(dg, 1e-6 * dg.max())).tocsc()
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("error", spla.MatrixRankWarning)
                        d = torch.from_numpy(_symmetric_solve(H, -g.numpy()))
                    ok = bool(torch.isfinite(d).all())
                except (RuntimeError, spla.MatrixRankWarning):
                    ok = False
            else:
                mv, diag = prob.hessian_operator(u)
                dd = diag.abs().clamp(min=1e-6 * float(diag.abs().max()))
                d, ok = _pcg(
                    lambda v, mv=mv, dd=dd, s=shift: mv(v) + s * dd * v,
                    diag + shift * dd,
                    -g,
                    cg_rtol,
                    cg_maxiter,
                )
            if ok and float(g @ d) < 0:
                break
            ok = False
            shift = 1e-3 if shift == 0 else shift * 10.0
        if not ok:
            return (
                u,
                SolveStatus.NO_EQUILIBRIUM,
                it,
                res,
                "no descent direction (Hessian indefinite everywhere tried)",
            )
        slope = float(g @ d)
        alpha, accepted = 1.0, False
        for _ls in range(40):
            un = u + alpha * d
            En, detn = prob.energy(un)
            if detn > 0 and En <= E0 + 1e-4 * alpha * slope + 1e-14 * abs(E0):
                accepted = True
                break
            alpha *= 0.5
        if not accepted:
            if res <= floor * scale:
                return u, SolveStatus.CONVERGED, it - 1, res, "converged (round-off floor)"
            return (
                u,
                SolveStatus.NO_EQUILIBRIUM,
                it,
                res,
                (
                    "line search failed: no non-inverted state lowers the potential "
                    "(no equilibrium, e.g. compression past the material's limit point)"
                ),
            )
        u, E0 = un, En
        g, _, scale = prob.gradient(u)
    res = float(g.abs().max()) if g.numel() else 0.0
    if res <= atol + rtol * max(scale, 1e-300):
        return u, SolveStatus.CONVERGED, max_iter, res, "converged"
    return (
        u,
        status,
        max_iter,
        res,
        f"no convergence in {max_iter} Newton iterations (residual {res:.3e} N)",
    )


def _solve_forward(prob_factory, mesh, material, bc, x0, poses0, opts, load_steps):
    prob = prob_factory(bc)
    u = prob.u_of(mesh.rest.detach() if x0 is None else x0.detach(), poses0)
    total_it = 0
    for s in range(1, load_steps + 1):
        frac = s / load_steps
        if load_steps > 1:
            sbc = _scaled_bc(mesh, bc, frac)
            sprob = prob_factory(sbc)
        else:
            sprob = prob
        u, status, it, res, msg = _newton(sprob, u, **opts)
        total_it += it
        if status is not SolveStatus.CONVERGED:
            return prob, u, status, total_it, res, f"load step {s}/{load_steps}: {msg}"
    return prob, u, status, total_it, res, msg


def _scaled_bc(mesh, bc: BoundaryConditions, frac: float) -> BoundaryConditions:
    rest = mesh.rest.detach().reshape(-1)[bc.fixed_dofs]
    cuffs = tuple(
        Cuff(
            c.nodes,
            c.center,
            c.force * frac,
            c.moment * frac,
            c.stiffness,
            c.contact,
            c.normals,
            c.spring,
            None if c.target is None else c.target * frac,
            c.smoothing,
        )
        for c in bc.cuffs
    )
    return BoundaryConditions(
        bc.fixed_dofs,
        rest + frac * (bc.fixed_values.detach() - rest),
        None if bc.loads is None else bc.loads.detach() * frac,
        None if bc.gravity is None else bc.gravity.detach() * frac,
        cuffs,
    )
