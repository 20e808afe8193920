"""The nodal-average volumetric term (``VolumetricTreatment.NODAL_AVERAGE``).

Both energies split exactly as ``Psi(F) = Psi_mu(F) + lam/2 q(F)^2`` (SVK: ``q = tr E``;
stable neo-Hookean: ``q = J - 1``, since ``l/2 (J-1-mu/l)^2 - mu^2/(2l)`` with ``l = lam+mu``
equals ``mu/2 (J-1)^2 - mu (J-1) + lam/2 (J-1)^2``). Under NODAL_AVERAGE the elements carry
``Psi_mu`` (the kernels with ``lam = 0``) and the lam term lives on the nodes:

    U = sum_a Lam_a s_a^2 / (2 V_a^2),   s_a = sum_{e ni a} V_e/4 q_e,
    V_a = sum_{e ni a} V_e/4,            Lam_a = sum_{e ni a} V_e/4 lam_e,

that is ``sum_a V_a lam_a q_a^2 / 2`` with volume-weighted nodal averages ``q_a``, ``lam_a``.
Gradient: ``dU/dx = sum_e V_e pbar_e dq_e/dx`` with the nodal "pressures"
``p_a = Lam_a s_a / V_a^2`` and ``pbar_e`` their mean over the element's nodes. Hessian:
``sum_e V_e pbar_e d2q_e/dx2 + B' diag(Lam_a / V_a^2) B`` with ``B[a] = ds_a/dx`` (sparse).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from diffbio.tissue._material import MaterialModel
from diffbio.tissue._reference import deformation_gradient, det3, rest_geometry

__all__ = ["volumetric_measure", "nodal_volumetric_energy", "NodalVolumetric"]

# Levi-Civita symbol eps[i, j, k]
_EPS = torch.zeros(3, 3, 3, dtype=torch.float64)
for _i, _j, _k in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
    _EPS[_i, _j, _k], _EPS[_i, _k, _j] = 1.0, -1.0


def volumetric_measure(H: torch.Tensor, model: MaterialModel) -> torch.Tensor:
    """``q: (..., E)`` of the displacement gradient ``H = F - I: (..., E, 3, 3)``: ``tr E``
    (SVK) or ``J - 1`` (neo-Hookean), written in H (no cancellation against 1 at small
    strain): ``tr H + |H|^2/2`` and ``tr H + ((tr H)^2 - tr(H H))/2 + det H``."""
    tr = H.diagonal(dim1=-2, dim2=-1).sum(-1)
    if model is MaterialModel.SVK:
        return tr + 0.5 * (H * H).sum((-2, -1))
    return tr + 0.5 * (tr * tr - (H * H.transpose(-1, -2)).sum((-2, -1))) + det3(H)


def _scatter(values: torch.Tensor, tets: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Sum ``values: (..., E)`` onto the 4 nodes of each element: ``(..., N)``."""
    v = values[..., :, None].expand(*values.shape, 4).reshape(*values.shape[:-1], -1)
    out = torch.zeros(*values.shape[:-1], num_nodes, dtype=values.dtype, device=values.device)
    return out.index_add(-1, tets.reshape(-1), v)


def nodal_volumetric_energy(
    x: torch.Tensor,
    rest: torch.Tensor,
    tets: torch.Tensor,
    lam: torch.Tensor,
    model: MaterialModel,
) -> torch.Tensor:
    """The nodal-average lam term ``(...) [J]`` at ``x: (..., N, 3) [m]`` (plain torch,
    differentiable in x, rest ``(N, 3) [m]`` and ``lam: (E,) [Pa]``, after the convention)."""
    Dm_inv, vol = rest_geometry(rest, tets)
    q = volumetric_measure(deformation_gradient(x - rest, tets, Dm_inv), model)
    N = rest.shape[0]
    w = vol / 4.0
    V = _scatter(w, tets, N)
    Lam = _scatter(w * lam, tets, N)
    s = _scatter(w * q, tets, N)
    return (Lam * s * s / (2.0 * V * V)).sum(-1)


class NodalVolumetric:
    """Energy, gradient and sparse Hessian of the nodal-average term on one mesh and lam
    (no autograd; for the Newton solver and the stiffness assembly). Positions
    ``x: (N, 3) [m]``; gradients over the ``3N`` node dofs (node * 3 + axis)."""

    def __init__(
        self, rest: torch.Tensor, tets: torch.Tensor, lam: torch.Tensor, model: MaterialModel
    ) -> None:
        rest, tets = rest.detach().cpu(), tets.cpu()
        self.model, self.tets, self.N, self.rest = model, tets, rest.shape[0], rest
        self.Dm_inv, vol = rest_geometry(rest, tets)
        self.w = vol / 4.0
        self.V = _scatter(self.w, tets, self.N)
        self.coef = _scatter(self.w * lam.detach().to(rest), tets, self.N) / self.V**2
        G = torch.cat([-self.Dm_inv.sum(-2, keepdim=True), self.Dm_inv], dim=-2)
        self.G = G  # (E, 4, 3): row a is the gradient of shape function a [1/m]
        dofs = (tets[:, :, None] * 3 + torch.arange(3)).reshape(-1, 12)
        self.dofs = dofs.numpy()
        E = tets.shape[0]
        self.B_rows = np.broadcast_to(tets.numpy()[:, :, None], (E, 4, 12)).reshape(-1)
        self.B_cols = np.broadcast_to(self.dofs[:, None, :], (E, 4, 12)).reshape(-1)
        self.H_rows = np.broadcast_to(self.dofs[:, :, None], (E, 12, 12)).reshape(-1)
        self.H_cols = np.broadcast_to(self.dofs[:, None, :], (E, 12, 12)).reshape(-1)

    def _q_dq(self, x: torch.Tensor):
        x = x.detach().cpu()
        H = deformation_gradient(x - self.rest.to(x.dtype), self.tets, self.Dm_inv)
        q = volumetric_measure(H, self.model)
        F = H + torch.eye(3, dtype=H.dtype)
        if self.model is MaterialModel.SVK:
            dqdF = F
        else:
            # cofactor dJ/dF: column i is (column i+1 of F) x (column i+2 of F)
            cols = (
                [F[..., :, (i + 1) % 3] for i in range(3)],
                [F[..., :, (i + 2) % 3] for i in range(3)],
            )
            dqdF = torch.stack([torch.linalg.cross(u, v, dim=-1) for u, v in zip(*cols)], dim=-1)
        dq = torch.einsum("eij,eaj->eai", dqdF, self.G)  # (E, 4, 3) dq/dx_a
        return F, q, dq

    def energy(self, x: torch.Tensor) -> float:
        """The term [J] at ``x``."""
        _, q, _ = self._q_dq(x)
        s = _scatter(self.w * q, self.tets, self.N)
        return float(0.5 * (self.coef * s * s).sum())

    def _pbar(self, q: torch.Tensor) -> torch.Tensor:
        p = self.coef * _scatter(self.w * q, self.tets, self.N)
        return p[self.tets].mean(-1)

    def gradient(self, x: torch.Tensor) -> torch.Tensor:
        """``dU/dx: (N, 3) [N]``."""
        _, q, dq = self._q_dq(x)
        fe = (4.0 * self.w * self._pbar(q))[:, None, None] * dq
        out = torch.zeros(self.N, 3, dtype=fe.dtype)
        return out.index_add_(0, self.tets.reshape(-1), fe.reshape(-1, 3))

    def hessian(self, x: torch.Tensor) -> sp.csr_matrix:
        """``d2U/dx2``: SciPy CSR (3N, 3N) [N/m]."""
        F, q, dq = self._q_dq(x)
        G = self.G
        if self.model is MaterialModel.SVK:
            gg = torch.einsum("eaj,ebj->eab", G, G)
            I = torch.eye(3, dtype=F.dtype)
            Hq = torch.einsum("eab,ij->eaibj", gg, I)
        else:
            eps = _EPS.to(F)
            # d2J/dF_ij dF_kl = eps_ikm eps_jln F_mn
            T = torch.einsum("ikm,jln,emn->eijkl", eps, eps, F)
            Hq = torch.einsum("eijkl,eaj,ebl->eaibk", T, G, G)
        c = 4.0 * self.w * self._pbar(q)
        He = (c[:, None, None, None, None] * Hq).reshape(-1)
        n = 3 * self.N
        H1 = sp.coo_matrix((He.numpy(), (self.H_rows, self.H_cols)), shape=(n, n))
        Bd = (self.w[:, None, None] * dq.reshape(-1, 1, 12)).expand(-1, 4, 12).reshape(-1)
        B = sp.coo_matrix((Bd.numpy(), (self.B_rows, self.B_cols)), shape=(self.N, n)).tocsr()
        return (H1.tocsr() + B.T @ sp.diags(self.coef.numpy()) @ B).tocsr()
