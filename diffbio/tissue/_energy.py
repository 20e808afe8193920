"""Elastic energy, internal forces and element Hessians: Warp kernels behind torch autograd."""

from __future__ import annotations

import enum

import torch
import warp as wp

from diffbio._errors import ShapeError
from diffbio.tissue._kernels import kernels
from diffbio.tissue._material import Material, MaterialModel, VolumetricTreatment
from diffbio.tissue._mesh import TetMesh
from diffbio.tissue._reference import elastic_energy_torch, rest_geometry
from diffbio.tissue._volumetric import NodalVolumetric, nodal_volumetric_energy

__all__ = [
    "Backend",
    "elastic_energy",
    "svk_energy",
    "internal_forces",
    "element_hessians",
    "ElasticKernels",
]

_MODEL_CODE = {MaterialModel.SVK: 0, MaterialModel.STABLE_NEO_HOOKEAN: 1}


class Backend(enum.Enum):
    """Where the energy is evaluated: Warp kernels or the plain-torch reference."""

    WARP = "warp"
    TORCH = "torch"


def _wp_scalar(dtype: torch.dtype):
    if dtype == torch.float64:
        return wp.float64
    if dtype == torch.float32:
        return wp.float32
    raise ShapeError(f"tissue kernels support float32 and float64, got {dtype}")


def _wp_device(t: torch.Tensor) -> str:
    return "cpu" if t.device.type == "cpu" else f"cuda:{t.device.index or 0}"


def _arr(t: torch.Tensor, dtype, requires_grad: bool = False):
    t = t.detach().contiguous()
    if requires_grad:
        t = t.clone()
    return wp.from_torch(t, dtype=dtype, requires_grad=requires_grad)


class ElasticKernels:
    """Warp arrays of one mesh and material, for repeated evaluations (no autograd).

    ``x``, ``lam``, ``mu`` follow the mesh dtype; ``model`` from the material. Per-element
    terms only: under ``VolumetricTreatment.NODAL_AVERAGE`` the kernels run with lam = 0 and
    ``nodal`` (a :class:`NodalVolumetric`, else None) holds the nodal lam term.
    """

    def __init__(self, mesh: TetMesh, material: Material) -> None:
        rest = mesh.rest.detach()
        self.dtype = rest.dtype
        self.k = kernels(_wp_scalar(rest.dtype))
        self.device = _wp_device(rest)
        Dm_inv, vol = rest_geometry(rest, mesh.tets)
        lam, mu = material.element_lame()
        self.E = mesh.num_elements
        self.N = mesh.num_nodes
        self.model = _MODEL_CODE[material.model]
        self.tets = wp.from_torch(mesh.tets.to(torch.int32).contiguous(), dtype=wp.int32)
        self.Dm_inv = _arr(Dm_inv, self.k.mat33)
        self.vol = _arr(vol, self.k.dtype)
        self.lam = _arr(lam.detach().to(rest), self.k.dtype)
        self.mu = _arr(mu.detach().to(rest), self.k.dtype)
        self._torch_tets = mesh.tets
        self.nodal = None
        if material.volumetric is VolumetricTreatment.NODAL_AVERAGE:
            lam_eff = material.effective_lame()[0].detach().to(rest)
            self.nodal = NodalVolumetric(rest, mesh.tets, lam_eff, material.model)

    def _common(self, x: torch.Tensor):
        return [
            _arr(x.to(self.dtype), self.k.vec3),
            self.tets,
            self.Dm_inv,
            self.vol,
            self.lam,
            self.mu,
            self.model,
        ]

    def energy_forces(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Element energies (E,) [J] and nodal forces (N, 3) [N] at ``x: (N, 3)``."""
        energy = wp.zeros(self.E, dtype=self.k.dtype, device=self.device)
        forces = wp.zeros(self.N, dtype=self.k.vec3, device=self.device)
        wp.launch(
            self.k.energy_forces,
            dim=self.E,
            inputs=self._common(x),
            outputs=[energy, forces],
            device=self.device,
        )
        return wp.to_torch(energy), wp.to_torch(forces)

    def energy_det(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Element energies (E,) [J] and ``det F`` (E,) at ``x: (N, 3)``."""
        energy = wp.zeros(self.E, dtype=self.k.dtype, device=self.device)
        det = wp.zeros(self.E, dtype=self.k.dtype, device=self.device)
        wp.launch(
            self.k.element_energy,
            dim=self.E,
            inputs=self._common(x),
            outputs=[energy, det],
            device=self.device,
        )
        return wp.to_torch(energy), wp.to_torch(det)

    def hessians(self, x: torch.Tensor) -> torch.Tensor:
        """Element Hessians (E, 12, 12) [N/m], rows/columns ordered (node a, axis i) -> 3a+i."""
        hess = wp.zeros((self.E, 12, 12), dtype=self.k.dtype, device=self.device)
        wp.launch(
            self.k.element_hessian,
            dim=self.E,
            inputs=self._common(x),
            outputs=[hess],
            device=self.device,
        )
        return wp.to_torch(hess)


class _EnergyForces(torch.autograd.Function):
    """(x, Dm_inv, vol, lam, mu) -> (element energies (E,), forces (N, 3)) via Warp; the
    backward replays the kernel on a fresh ``wp.Tape`` (Warp's adjoint of the kernel)."""

    @staticmethod
    def forward(ctx, x, Dm_inv, vol, lam, mu, tets32, model):
        k = kernels(_wp_scalar(x.dtype))
        dev = _wp_device(x)
        energy = wp.zeros(vol.shape[0], dtype=k.dtype, device=dev)
        forces = wp.zeros(x.shape[0], dtype=k.vec3, device=dev)
        args = [_arr(x, k.vec3), wp.from_torch(tets32, dtype=wp.int32), _arr(Dm_inv, k.mat33)]
        args += [_arr(vol, k.dtype), _arr(lam, k.dtype), _arr(mu, k.dtype), model]
        wp.launch(
            k.energy_forces, dim=vol.shape[0], inputs=args, outputs=[energy, forces], device=dev
        )
        ctx.save_for_backward(x, Dm_inv, vol, lam, mu, tets32)
        ctx.model = model
        return wp.to_torch(energy).clone(), wp.to_torch(forces).clone()

    @staticmethod
    def backward(ctx, g_energy, g_forces):
        x, Dm_inv, vol, lam, mu, tets32 = ctx.saved_tensors
        k = kernels(_wp_scalar(x.dtype))
        dev = _wp_device(x)
        ins = [_arr(x, k.vec3, True), _arr(Dm_inv, k.mat33, True), _arr(vol, k.dtype, True)]
        ins += [_arr(lam, k.dtype, True), _arr(mu, k.dtype, True)]
        energy = wp.zeros(vol.shape[0], dtype=k.dtype, device=dev, requires_grad=True)
        forces = wp.zeros(x.shape[0], dtype=k.vec3, device=dev, requires_grad=True)
        tape = wp.Tape()
        with tape:
            wp.launch(
                k.energy_forces,
                dim=vol.shape[0],
                inputs=[ins[0], wp.from_torch(tets32, dtype=wp.int32), *ins[1:], ctx.model],
                outputs=[energy, forces],
                device=dev,
            )
        ge = torch.zeros_like(vol) if g_energy is None else g_energy.contiguous().clone()
        gf = torch.zeros_like(x) if g_forces is None else g_forces.contiguous().clone()
        tape.backward(
            grads={
                energy: wp.from_torch(ge, dtype=k.dtype),
                forces: wp.from_torch(gf, dtype=k.vec3),
            }
        )
        out = [wp.to_torch(a.grad).clone() for a in ins]
        tape.zero()
        return (*out, None, None)


def _prepare(x: torch.Tensor, mesh: TetMesh, material: Material):
    if x.shape[-2:] != (mesh.num_nodes, 3):
        raise ShapeError(f"x must be (..., {mesh.num_nodes}, 3), got {tuple(x.shape)}")
    Dm_inv, vol = rest_geometry(mesh.rest.to(x.dtype), mesh.tets)
    lam, mu = material.element_lame()
    return Dm_inv, vol, lam.to(x.dtype), mu.to(x.dtype), mesh.tets.to(torch.int32).contiguous()


def _warp_eval(x, mesh, material):
    Dm_inv, vol, lam, mu, t32 = _prepare(x, mesh, material)
    lead = x.shape[:-2]
    xs = x.reshape(-1, mesh.num_nodes, 3)
    outs = [
        _EnergyForces.apply(xs[b], Dm_inv, vol, lam, mu, t32, _MODEL_CODE[material.model])
        for b in range(xs.shape[0])
    ]
    energy = torch.stack([o[0].sum() for o in outs]).reshape(lead)
    forces = torch.stack([o[1] for o in outs]).reshape(*lead, mesh.num_nodes, 3)
    if material.volumetric is VolumetricTreatment.NODAL_AVERAGE:
        # the nodal lam term in plain torch (autograd gives its forces and their derivatives)
        lam_eff = material.effective_lame()[0].to(x.dtype)
        rest = mesh.rest.to(x.dtype)
        graph = torch.is_grad_enabled() and any(t.requires_grad for t in (x, rest, lam_eff))
        with torch.enable_grad():
            xg = x if x.requires_grad else x.detach().requires_grad_(True)
            U = nodal_volumetric_energy(xg, rest, mesh.tets, lam_eff, material.model)
            (g,) = torch.autograd.grad(U.sum(), xg, create_graph=graph)
        if not graph:
            U = U.detach()
        energy, forces = energy + U, forces - g
    return energy, forces


def elastic_energy(
    x: torch.Tensor, mesh: TetMesh, material: Material, backend: Backend = Backend.WARP
) -> torch.Tensor:
    """Total elastic energy ``(...) [J]`` of positions ``x: (..., N, 3) [m]``.

    Differentiable with respect to ``x``, ``mesh.rest``, ``material.lam`` and ``material.mu``.
    """
    if backend is Backend.TORCH:
        _prepare(x, mesh, material)
        return elastic_energy_torch(x, mesh.rest.to(x.dtype), mesh.tets, material)
    return _warp_eval(x, mesh, material)[0]


def svk_energy(
    x: torch.Tensor, mesh: TetMesh, material: Material, backend: Backend = Backend.WARP
) -> torch.Tensor:
    """St. Venant-Kirchhoff energy ``(...) [J]`` of ``x: (..., N, 3) [m]`` whatever ``material.model``."""
    svk = Material(
        material.lam,
        material.mu,
        MaterialModel.SVK,
        material.density,
        material.alpha,
        material.beta,
        material.convention,
        material.volumetric,
    )
    return elastic_energy(x, mesh, svk, backend)


def internal_forces(
    x: torch.Tensor, mesh: TetMesh, material: Material, backend: Backend = Backend.WARP
) -> torch.Tensor:
    """Elastic nodal forces ``-dPi/dx: (..., N, 3) [N]`` at ``x: (..., N, 3) [m]`` (differentiable)."""
    if backend is Backend.TORCH:
        params = (x, mesh.rest, material.lam, material.mu)
        graph = torch.is_grad_enabled() and any(t.requires_grad for t in params)
        with torch.enable_grad():
            xg = x if x.requires_grad else x.detach().requires_grad_(True)
            e = elastic_energy(xg, mesh, material, Backend.TORCH)
            (g,) = torch.autograd.grad(e.sum(), xg, create_graph=graph)
        return -g
    return _warp_eval(x, mesh, material)[1]


def element_hessians(x: torch.Tensor, mesh: TetMesh, material: Material) -> torch.Tensor:
    """Element Hessians ``d^2 Pi_e / dx_e^2: (E, 12, 12) [N/m]`` at ``x: (N, 3) [m]`` (Warp, no grad).

    Row/column ``3a + i`` is axis i of the element's a-th node (``mesh.tets[e, a]``).
    Under ``VolumetricTreatment.NODAL_AVERAGE`` these are the per-element (lam = 0) parts
    only; the nodal lam term couples elements (``assemble_stiffness`` includes it).
    """
    if x.shape != (mesh.num_nodes, 3):
        raise ShapeError(f"x must be ({mesh.num_nodes}, 3), got {tuple(x.shape)}")
    return ElasticKernels(mesh.to(dtype=x.dtype), material).hessians(x.detach())
