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
"""

from __future__ import annotations

import enum
import hashlib
import math
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from diffbio._errors import DiffbioError
from diffbio.tissue._bc import BoundaryConditions, Cuff, CuffContact, rodrigues
from diffbio.tissue._energy import ElasticKernels
from diffbio.tissue._material import Material
from diffbio.tissue._mesh import TetMesh
from diffbio.tissue._reference import elastic_energy_torch, rest_geometry

__all__ = [
    "LinearSolver",
    "SolveStatus",
    "EquilibriumResult",
    "NoEquilibriumError",
    "solve_equilibrium",
    "lumped_masses",
    "cuff_potential",
]


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


def lumped_masses(rest: torch.Tensor, tets: torch.Tensor, density: torch.Tensor) -> torch.Tensor:
    """(N,) [kg] lumped nodal masses (a quarter of each element's mass on each node)."""
    _, vol = rest_geometry(rest, tets)
    m = torch.zeros(rest.shape[0], dtype=rest.dtype, device=rest.device)
    return m.index_add(0, tets.reshape(-1), (density * vol / 4.0).repeat_interleave(4))


def cuff_potential(
    xc: torch.Tensor, p: torch.Tensor, rest_c: torch.Tensor, cuff: Cuff, force=None, moment=None
) -> torch.Tensor:
    """Potential [J] of one cuff: skin nodes ``xc: (C, 3) [m]``, pose ``p: (6,)``."""
    force = cuff.force if force is None else force
    moment = cuff.moment if moment is None else moment
    R = rodrigues(p[3:])
    center = cuff.center.to(xc)
    y = (rest_c - center) @ R.T + center + p[:3]
    if cuff.contact is CuffContact.TIED:
        pen = 0.5 * cuff.stiffness * ((xc - y) ** 2).sum()
    else:
        n = cuff.normals.to(xc) @ R.T
        d = ((xc - y) * n).sum(-1)
        pen = _contact_energy(d, cuff.stiffness, cuff.smoothing).sum()
    work = (force.to(xc) * p[:3]).sum() + (moment.to(xc) * p[3:]).sum()
    out = pen - work
    if cuff.spring is not None:
        tgt = torch.zeros(6, dtype=xc.dtype) if cuff.target is None else cuff.target.to(xc)
        out = out + 0.5 * (cuff.spring.to(xc) * (p - tgt) ** 2).sum()
    return out


# Elastic kernels and sparsity patterns of recent (mesh, material, fixed dofs), keyed by a
# hash of the contents of the mesh and material tensors.
_CACHE: dict = {}


def _cache_key(mesh: TetMesh, material: Material) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    ts = (mesh.rest, mesh.tets, material.lam, material.mu)
    if material.density is not None:
        ts = (*ts, material.density)
    for t in ts:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
        h.update(str((t.dtype, tuple(t.shape))).encode())
    h.update(f"{material.model.value}/{material.convention.value}/{mesh.rest.device}".encode())
    h.update(material.volumetric.value.encode())
    return h.digest()


def _contact_energy(d: torch.Tensor, k: float, delta: float) -> torch.Tensor:
    """C2 penalty of a penetration ``d`` [m]: ``k d^3/(6 delta)`` for ``0 < d < delta``,
    ``k (d^2/2 - delta d/2 + delta^2/6)`` beyond, 0 when separated."""
    d = torch.clamp(d, min=0.0)
    inner = k * d**3 / (6.0 * delta)
    outer = k * (0.5 * d**2 - 0.5 * delta * d + delta**2 / 6.0)
    return torch.where(d < delta, inner, outer)


def _contact_curvature(d: torch.Tensor, k: float, delta: float) -> torch.Tensor:
    """Second derivative of :func:`_contact_energy`."""
    return torch.where(
        d <= 0, torch.zeros_like(d), torch.where(d < delta, k * d / delta, torch.full_like(d, k))
    )


class _Problem:
    """Index bookkeeping, potential, gradient and Hessian of one equilibrium problem."""

    def __init__(
        self, mesh: TetMesh, material: Material, bc: BoundaryConditions, quad=None, cache=None
    ) -> None:
        self.mesh, self.material, self.bc = mesh, material, bc
        self.dtype = mesh.rest.dtype
        N = mesh.num_nodes
        self.N = N
        fixed = torch.zeros(3 * N, dtype=torch.bool)
        fixed[bc.fixed_dofs] = True
        self.free = torch.nonzero(~fixed).squeeze(1)
        self.nf = int(self.free.numel())
        self.nc = len(bc.cuffs)
        self.nu = self.nf + 6 * self.nc
        self.dof2u = torch.full((3 * N,), -1, dtype=torch.int64)
        self.dof2u[self.free] = torch.arange(self.nf)
        key = None
        if cache is not None:
            key = (cache[0], bc.fixed_dofs.numpy().tobytes())
            hit = _CACHE.get(key)
        if key is not None and hit is not None:
            self.kern, self.keep, self.rows, self.cols, self.elem_dofs, self.mass = hit[0]
        else:
            self.kern = ElasticKernels(mesh, material)
            dofs = (mesh.tets[:, :, None] * 3 + torch.arange(3)).reshape(-1, 12)
            ud = self.dof2u[dofs]
            r = ud[:, :, None].expand(-1, 12, 12).reshape(-1)
            c = ud[:, None, :].expand(-1, 12, 12).reshape(-1)
            self.keep = ((r >= 0) & (c >= 0)).numpy()
            self.rows, self.cols = r.numpy()[self.keep], c.numpy()[self.keep]
            self.elem_dofs = dofs
            rest = mesh.rest.detach()
            self.mass = lumped_masses(rest, mesh.tets, material.rho(mesh.num_elements, rest))
            if key is not None:
                _CACHE[key] = (
                    (self.kern, self.keep, self.rows, self.cols, self.elem_dofs, self.mass),
                    cache[1],
                )
                while len(_CACHE) > 8:
                    _CACHE.pop(next(iter(_CACHE)))
        rest = mesh.rest.detach()
        ext = torch.zeros(N, 3, dtype=self.dtype)
        if bc.loads is not None:
            ext = ext + bc.loads.detach().to(self.dtype)
        if bc.gravity is not None:
            ext = ext + self.mass[:, None] * bc.gravity.detach().to(self.dtype)
        self.ext = ext.reshape(-1)
        self.x_base = rest.clone().reshape(-1)
        self.x_base[bc.fixed_dofs] = bc.fixed_values.detach().to(self.dtype)
        self.quad = quad  # (Q: scipy csr (3N,3N), b: (3N,) tensor) or None
        self.cuff_dofs = [(cf.nodes[:, None] * 3 + torch.arange(3)).reshape(-1) for cf in bc.cuffs]

    # ------------------------------------------------------------------ state maps
    def x_of(self, u: torch.Tensor) -> torch.Tensor:
        x = self.x_base.clone()
        x[self.free] = u[: self.nf]
        return x.reshape(self.N, 3)

    def poses(self, u: torch.Tensor) -> torch.Tensor:
        return u[self.nf :].reshape(self.nc, 6)

    def u_of(self, x: torch.Tensor, poses: torch.Tensor | None = None) -> torch.Tensor:
        p = (
            torch.zeros(6 * self.nc, dtype=self.dtype)
            if poses is None
            else poses.reshape(-1).to(self.dtype)
        )
        return torch.cat([x.reshape(-1)[self.free].to(self.dtype), p])

    # ------------------------------------------------------------------ evaluations
    def _cuff_terms(self, x, u, order: int):
        """Sum of cuff potentials; with order >= 1 its gradient over (3N + 6C), order 2 blocks.

        The Hessian of a cuff term is exact: its node-node block in closed form (``k I`` tied,
        ``k n n'`` on active contacts) and the pose rows by six double-backward passes.
        """
        total, grads, blocks = 0.0, torch.zeros(3 * self.N + 6 * self.nc, dtype=self.dtype), []
        rest = self.mesh.rest.detach()
        for k, cf in enumerate(self.bc.cuffs):
            C = cf.nodes.numel()
            idx = torch.cat([self.cuff_dofs[k], 3 * self.N + 6 * k + torch.arange(6)])
            xc = x[cf.nodes].detach()
            p = u[self.nf + 6 * k : self.nf + 6 * k + 6].detach()
            rc = rest[cf.nodes]
            if order == 0:
                total += float(cuff_potential(xc, p, rc, cf).detach())
                continue
            with torch.enable_grad():
                v = torch.cat([xc.reshape(-1), p]).requires_grad_(True)
                f = cuff_potential(v[: 3 * C].reshape(C, 3), v[3 * C :], rc, cf)
                (g,) = torch.autograd.grad(f, v, create_graph=order >= 2)
                total += float(f.detach())
                grads.index_add_(0, idx, g.detach())
                if order >= 2:
                    B = torch.zeros(3 * C + 6, 3 * C + 6, dtype=self.dtype)
                    for j in range(6):
                        (row,) = torch.autograd.grad(g[3 * C + j], v, retain_graph=True)
                        B[3 * C + j] = row
                        B[:, 3 * C + j] = row
                    if cf.contact is CuffContact.TIED:
                        B[: 3 * C, : 3 * C] = cf.stiffness * torch.eye(3 * C, dtype=self.dtype)
                    else:
                        R = rodrigues(p[3:])
                        n = cf.normals.to(xc) @ R.T
                        y = (rc - cf.center.to(xc)) @ R.T + cf.center.to(xc) + p[:3]
                        curv = _contact_curvature(
                            ((xc - y) * n).sum(-1), cf.stiffness, cf.smoothing
                        )
                        nn = curv[:, None, None] * n[:, :, None] * n[:, None, :]
                        B[: 3 * C, : 3 * C] = torch.block_diag(*nn)
                    blocks.append((idx, B))
        return total, grads, blocks

    def _full_to_u(self, g_full: torch.Tensor) -> torch.Tensor:
        return torch.cat([g_full[: 3 * self.N][self.free], g_full[3 * self.N :]])

    def energy(self, u: torch.Tensor) -> tuple[float, float]:
        """Total potential [J] and the smallest det F at ``u``."""
        x = self.x_of(u)
        e, det = self.kern.energy_det(x)
        xf = x.reshape(-1)
        total = float(e.sum()) - float(self.ext @ xf) + self._cuff_terms(x, u, 0)[0]
        if self.kern.nodal is not None:
            total += self.kern.nodal.energy(x)
        if self.quad is not None:
            Q, b = self.quad
            xn = xf.numpy()
            total += 0.5 * float(xn @ (Q @ xn)) - float(b @ xf)
        return total, float(det.min())

    def gradient(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Gradient over u, full gradient over the 3N node dofs, and a force scale [N]."""
        x = self.x_of(u)
        _, f = self.kern.energy_forces(x)
        if self.kern.nodal is not None:
            f = f - self.kern.nodal.gradient(x)
        g = torch.cat([-f.reshape(-1) - self.ext, torch.zeros(6 * self.nc, dtype=self.dtype)])
        scale = max(float(f.abs().max()), float(self.ext.abs().max()) if self.ext.numel() else 0.0)
        if self.nc:
            _, gc, _ = self._cuff_terms(x, u, 1)
            g = g + gc
            scale = max(scale, float(gc.abs().max()))
        if self.quad is not None:
            Q, b = self.quad
            gq = torch.from_numpy(Q @ x.reshape(-1).numpy()) - b
            g[: 3 * self.N] += gq
            scale = max(scale, float(gq.abs().max()))
        return self._full_to_u(g), g[: 3 * self.N].reshape(self.N, 3), scale

    def hessian(self, u: torch.Tensor) -> sp.csc_matrix:
        """Sparse Hessian (nu, nu) [N/m and mixed units] at ``u``."""
        x = self.x_of(u)
        data = self.kern.hessians(x).reshape(-1).cpu().numpy()[self.keep]
        rows, cols = [self.rows], [self.cols]
        datas = [data]
        if self.nc:
            _, _, blocks = self._cuff_terms(x, u, 2)
            full2u = torch.cat([self.dof2u, self.nf + torch.arange(6 * self.nc)])
            for idx, B in blocks:
                ui = full2u[idx]
                r = ui[:, None].expand_as(B).reshape(-1)
                c = ui[None, :].expand_as(B).reshape(-1)
                k = ((r >= 0) & (c >= 0)).numpy()
                rows.append(r.numpy()[k])
                cols.append(c.numpy()[k])
                datas.append(B.reshape(-1).numpy()[k])
        H = sp.coo_matrix(
            (np.concatenate(datas), (np.concatenate(rows), np.concatenate(cols))),
            shape=(self.nu, self.nu),
        )
        H = H.tocsc()
        if self.kern.nodal is not None:
            fr = self.free.numpy()
            Hn = self.kern.nodal.hessian(x)[fr][:, fr]
            if self.nc:
                Hn = sp.block_diag([Hn, sp.csr_matrix((6 * self.nc, 6 * self.nc))])
            H = (H + Hn).tocsc()
        if self.quad is not None:
            Q = self.quad[0]
            fr = self.free.numpy()
            blocks = [Q[fr][:, fr]] + (
                [sp.csr_matrix((6 * self.nc, 6 * self.nc))] if self.nc else []
            )
            H = (H + sp.block_diag(blocks, format="csc")).tocsc()
        return H

    def hessian_operator(self, u: torch.Tensor):
        """Matrix-free Hessian-vector product and its diagonal (for CG)."""
        if self.nc or self.quad is not None or self.kern.nodal is not None:
            H = self.hessian(u)
            return (lambda v: torch.from_numpy(H @ v.numpy())), torch.from_numpy(H.diagonal())
        x = self.x_of(u)
        Ke = self.kern.hessians(x)
        mask = self.dof2u[self.elem_dofs]
        valid = mask >= 0
        mi = mask.clamp(min=0)

        def matvec(v: torch.Tensor) -> torch.Tensor:
            ve = torch.where(valid, v[mi], torch.zeros((), dtype=v.dtype))
            ye = torch.einsum("eij,ej->ei", Ke, ve)
            ye = torch.where(valid, ye, torch.zeros((), dtype=v.dtype))
            return torch.zeros_like(v).index_add_(0, mi.reshape(-1), ye.reshape(-1))

        d = torch.where(valid, Ke.diagonal(dim1=1, dim2=2), torch.zeros((), dtype=Ke.dtype))
        diag = torch.zeros(self.nu, dtype=Ke.dtype).index_add_(0, mi.reshape(-1), d.reshape(-1))
        return matvec, diag


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


def _potential_torch(
    prob: _Problem, u, rest, lam, mu, loads, gravity, fixed_values, forces, moments
):
    """The total potential in plain torch, as a function of u and every parameter."""
    bc = prob.bc
    x = prob.x_base.to(u).clone()
    x = x.index_put((bc.fixed_dofs,), fixed_values.to(u))
    x = x.index_put((prob.free,), u[: prob.nf]).reshape(prob.N, 3)
    mat = prob.material.with_lame(lam, mu)
    total = elastic_energy_torch(x, rest, prob.mesh.tets, mat)
    if loads is not None:
        total = total - (loads * x).sum()
    if gravity is not None:
        m = lumped_masses(rest, prob.mesh.tets, prob.material.rho(prob.mesh.num_elements, rest))
        total = total - (m[:, None] * gravity * x).sum()
    for k, cf in enumerate(bc.cuffs):
        p = u[prob.nf + 6 * k : prob.nf + 6 * k + 6]
        total = total + cuff_potential(x[cf.nodes], p, rest[cf.nodes], cf, forces[k], moments[k])
    if prob.quad is not None:
        Q, b = prob.quad
        xf = x.reshape(-1)
        Qt = torch.sparse_csr_tensor(
            torch.from_numpy(Q.indptr).long(),
            torch.from_numpy(Q.indices).long(),
            torch.from_numpy(Q.data).to(u),
            size=Q.shape,
        )
        total = total + 0.5 * (xf * (Qt @ xf)).sum() - (b.to(u) * xf).sum()
    return total


class _Equilibrium(torch.autograd.Function):
    @staticmethod
    def forward(ctx, holder, rest, lam, mu, loads, gravity, fixed_values, *wrench):
        nc = len(holder["bc"].cuffs)
        prob, u = holder["prob"], holder["u"]
        ctx.holder = holder
        ctx.nc = nc
        ctx.save_for_backward(rest, lam, mu, loads, gravity, fixed_values, *wrench)
        return prob.x_of(u).clone(), prob.poses(u).clone()

    @staticmethod
    def backward(ctx, g_x, g_p):
        holder = ctx.holder
        prob, u = holder["prob"], holder["u"]
        rest, lam, mu, loads, gravity, fixed_values, *wrench = ctx.saved_tensors
        nc = ctx.nc
        g_x = torch.zeros(prob.N, 3, dtype=prob.dtype) if g_x is None else g_x.to(prob.dtype)
        g_p = torch.zeros(nc, 6, dtype=prob.dtype) if g_p is None else g_p.to(prob.dtype)
        g_u = torch.cat([g_x.reshape(-1)[prob.free], g_p.reshape(-1)])
        H = prob.hessian(u)
        lam_vec = torch.from_numpy(_symmetric_solve(H, g_u.numpy()))
        params = [rest, lam, mu, loads, gravity, fixed_values, *wrench]
        with torch.enable_grad():
            leaves = [None if t is None else t.detach().requires_grad_(True) for t in params]
            uu = u.detach().clone().requires_grad_(True)
            forces, moments = leaves[6 : 6 + nc], leaves[6 + nc :]
            Pi = _potential_torch(prob, uu, *leaves[:6], forces, moments)
            (r,) = torch.autograd.grad(Pi, uu, create_graph=True)
            S = -(lam_vec * r).sum() + (g_x.reshape(-1)[prob.bc.fixed_dofs] * leaves[5]).sum()
            want = [t for t in leaves if t is not None and (t.dtype.is_floating_point)]
            grads = torch.autograd.grad(S, want, allow_unused=True)
        it = iter(grads)
        out = []
        for t in leaves:
            if t is None:
                out.append(None)
            else:
                gr = next(it)
                out.append(torch.zeros_like(t) if gr is None else gr)
        return (None, *out)


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
