"""Plain-torch reference of the elastic energy (autograd gives forces and Hessians).

Used by the tests and the benchmark against the Warp kernels, and by the adjoint for the
mixed derivatives of the equilibrium residual with respect to parameters.
"""

from __future__ import annotations

import torch

from diffbio.tissue._material import Material, MaterialModel, VolumetricTreatment

__all__ = ["rest_geometry", "deformation_gradient", "energy_density", "elastic_energy_torch"]


def det3(A: torch.Tensor) -> torch.Tensor:
    """Determinant of ``(..., 3, 3)`` matrices (closed form; batched LAPACK is slow for 3x3)."""
    c0, c1, c2 = A[..., :, 0], A[..., :, 1], A[..., :, 2]
    return (c0 * torch.linalg.cross(c1, c2, dim=-1)).sum(-1)


def inv3(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse and determinant of ``(..., 3, 3)`` matrices by cofactors."""
    c0, c1, c2 = A[..., :, 0], A[..., :, 1], A[..., :, 2]
    r0 = torch.linalg.cross(c1, c2, dim=-1)
    r1 = torch.linalg.cross(c2, c0, dim=-1)
    r2 = torch.linalg.cross(c0, c1, dim=-1)
    det = (c0 * r0).sum(-1)
    return torch.stack([r0, r1, r2], dim=-2) / det[..., None, None], det


def rest_geometry(rest: torch.Tensor, tets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``Dm^{-1}: (E, 3, 3) [1/m]`` and rest volume ``(E,) [m^3]`` (differentiable in rest)."""
    p = rest[tets]
    Dm = (p[:, 1:] - p[:, :1]).transpose(-1, -2)
    inv, det = inv3(Dm)
    return inv, det / 6.0


def deformation_gradient(x: torch.Tensor, tets: torch.Tensor, Dm_inv: torch.Tensor) -> torch.Tensor:
    """``F: (..., E, 3, 3)`` from positions ``x: (..., N, 3) [m]``."""
    p = x[..., tets, :]
    Ds = (p[..., 1:, :] - p[..., :1, :]).transpose(-1, -2)
    return Ds @ Dm_inv


def energy_density(
    F: torch.Tensor, lam: torch.Tensor, mu: torch.Tensor, model: MaterialModel
) -> torch.Tensor:
    """Strain-energy density ``(..., E) [J/m^3]`` for ``F: (..., E, 3, 3)``, ``lam, mu: (E,) [Pa]``."""
    if model is MaterialModel.SVK:
        I = torch.eye(3, dtype=F.dtype, device=F.device)
        G = 0.5 * (F.transpose(-1, -2) @ F - I)
        tr = G.diagonal(dim1=-2, dim2=-1).sum(-1)
        return 0.5 * lam * tr**2 + mu * (G * G).sum((-2, -1))
    l = lam + mu
    J = det3(F)
    Ic = (F * F).sum((-2, -1))
    return 0.5 * mu * (Ic - 3.0) + 0.5 * l * (J - 1.0 - mu / l) ** 2 - 0.5 * mu**2 / l


def elastic_energy_torch(
    x: torch.Tensor, rest: torch.Tensor, tets: torch.Tensor, material: Material
) -> torch.Tensor:
    """Total elastic energy ``(...) [J]`` of positions ``x: (..., N, 3) [m]`` (plain torch),
    including the nodal lam term under ``VolumetricTreatment.NODAL_AVERAGE``."""
    Dm_inv, vol = rest_geometry(rest, tets)
    lam, mu = material.element_lame()
    psi = energy_density(deformation_gradient(x, tets, Dm_inv), lam, mu, material.model)
    total = (vol * psi).sum(-1)
    if material.volumetric is VolumetricTreatment.NODAL_AVERAGE:
        from diffbio.tissue._volumetric import nodal_volumetric_energy

        lam_eff = material.effective_lame()[0].to(x.dtype)
        total = total + nodal_volumetric_energy(x, rest, tets, lam_eff, material.model)
    return total
