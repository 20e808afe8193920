"""One equilibrium problem: nodal masses, cuff potentials, and :class:`_Problem`, which maps
the unknowns (free node dofs, cuff poses) to positions and evaluates the total potential,
its gradient and its sparse Hessian (assembled, or as a matrix-free operator)."""

from __future__ import annotations

import hashlib

import numpy as np
import scipy.sparse as sp
import torch

from diffbio.tissue._bc import BoundaryConditions, Cuff, CuffContact, rodrigues
from diffbio.tissue._energy import ElasticKernels
from diffbio.tissue._material import Material
from diffbio.tissue._mesh import TetMesh
from diffbio.tissue._reference import rest_geometry


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
