"""Materials: hyperelastic model, Lame parameters per element, density, Rayleigh damping."""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

import torch

from diffbio._errors import ShapeError

__all__ = [
    "MaterialModel",
    "LameConvention",
    "VolumetricTreatment",
    "Material",
    "young_to_lame",
    "lame_to_young",
]


class MaterialModel(enum.Enum):
    """Strain-energy density of the tissue.

    ``SVK``: St. Venant-Kirchhoff, ``Psi(E) = lam/2 (tr E)^2 + mu tr(E^2)`` with the
    Green-Lagrange strain ``E = (F^T F - I)/2``. It softens in compression and admits
    inverted states (a limit point at stretch 1/sqrt(3) in uniaxial compression).

    ``STABLE_NEO_HOOKEAN``: Smith, de Goes and Kim (2018) without the log term,
    ``Psi = mu/2 (I_C - 3) + l/2 (J - 1 - mu/l)^2 - mu^2/(2 l)`` with ``l = lam + mu``,
    so that its small-strain limit is linear elasticity with the given (lam, mu), it is
    stress free at rest and it resists inversion.
    """

    SVK = "svk"
    STABLE_NEO_HOOKEAN = "stable_neo_hookean"


class LameConvention(enum.Enum):
    """How the first Lame parameter enters the energy.

    ``STANDARD`` (and ``MUJOCO4``, MuJoCo 4.0 flex elasticity): ``lam`` as given.
    ``MUJOCO3``: MuJoCo 3.x flex elasticity, which effectively uses ``2 lam``.
    """

    STANDARD = "standard"
    MUJOCO3 = "mujoco3"
    MUJOCO4 = "mujoco4"


class VolumetricTreatment(enum.Enum):
    """Where the ``lam`` (volumetric) term of the energy is evaluated.

    Both models split exactly as ``Psi = Psi_mu(F) + lam/2 q(F)^2``: SVK with
    ``q = tr E = (|F|^2 - 3)/2``, stable neo-Hookean with ``q = J - 1`` (``Psi_mu`` is the
    model with ``lam = 0``).

    ``ELEMENT`` (default): per element, the energy exactly as stated by the model. Linear
    tetrahedra lock (are too stiff) as ``lam/mu`` grows.
    ``NODAL_AVERAGE``: ``Psi_mu`` per element; ``lam/2 q^2`` on nodal averages (the average
    nodal pressure tetrahedron of Bonet and Burton 1998): node a carries the volume
    ``V_a = sum_e V_e/4`` and ``q_a = sum_e (V_e/4) q_e / V_a`` over its elements, and the term
    is ``sum_a V_a lam_a q_a^2/2`` with ``lam_a`` the same volume-weighted average of lam.
    Identical to ``ELEMENT`` for homogeneous deformations (patch test) with a constant
    ``lam``; relieves the volumetric locking of linear tetrahedra. Couples the elements
    around each node (wider Hessian stencil).
    """

    ELEMENT = "element"
    NODAL_AVERAGE = "nodal_average"


def young_to_lame(
    E: torch.Tensor | float, nu: torch.Tensor | float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(lam, mu) [Pa] from Young's modulus ``E`` [Pa] and Poisson's ratio ``nu`` [-] (broadcast)."""
    E = torch.as_tensor(E, dtype=torch.get_default_dtype()) if not torch.is_tensor(E) else E
    nu = torch.as_tensor(nu, dtype=E.dtype) if not torch.is_tensor(nu) else nu
    lam = E * nu / ((1.0 + nu) * (1.0 - 2.0 * nu))
    mu = E / (2.0 * (1.0 + nu))
    return lam, mu


def lame_to_young(lam: torch.Tensor, mu: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(E [Pa], nu [-]) from Lame parameters (broadcast)."""
    return mu * (3.0 * lam + 2.0 * mu) / (lam + mu), lam / (2.0 * (lam + mu))


@dataclass(frozen=True)
class Material:
    """Per-element material of a tetrahedral mesh.

    Attributes:
        lam: (E,) [Pa] first Lame parameter (as the user states it, before the convention).
        mu: (E,) [Pa] shear modulus.
        model: strain-energy density.
        density: (E,) [kg/m^3] (mass, gravity, inertia).
        alpha: [1/s] mass-proportional Rayleigh damping, ``D = alpha M + beta K``.
        beta: [s] stiffness-proportional Rayleigh damping.
        convention: how ``lam`` enters the energy (see :class:`LameConvention`).
        volumetric: where the ``lam`` term is evaluated (see :class:`VolumetricTreatment`).
    """

    lam: torch.Tensor
    mu: torch.Tensor
    model: MaterialModel = MaterialModel.SVK
    density: torch.Tensor | None = None
    alpha: float = 0.0
    beta: float = 0.0
    convention: LameConvention = LameConvention.STANDARD
    volumetric: VolumetricTreatment = VolumetricTreatment.ELEMENT

    def __post_init__(self) -> None:
        if self.lam.ndim != 1 or self.mu.shape != self.lam.shape:
            raise ShapeError(
                f"lam and mu must both be (E,), got {tuple(self.lam.shape)} and {tuple(self.mu.shape)}"
            )

    @staticmethod
    def from_lame(
        lam: torch.Tensor | float,
        mu: torch.Tensor | float,
        num_elements: int,
        *,
        model: MaterialModel = MaterialModel.SVK,
        density: torch.Tensor | float = 1000.0,
        alpha: float = 0.0,
        beta: float = 0.0,
        convention: LameConvention = LameConvention.STANDARD,
        volumetric: VolumetricTreatment = VolumetricTreatment.ELEMENT,
        dtype: torch.dtype = torch.float64,
    ) -> Material:
        """Material from scalars or ``(E,)`` tensors of Lame parameters [Pa] (broadcast to (E,))."""
        shape = (num_elements,)
        lam_t = (
            torch.as_tensor(lam, dtype=dtype).expand(shape)
            if not torch.is_tensor(lam)
            else lam.expand(shape)
        )
        mu_t = (
            torch.as_tensor(mu, dtype=dtype).expand(shape)
            if not torch.is_tensor(mu)
            else mu.expand(shape)
        )
        rho = torch.as_tensor(density, dtype=lam_t.dtype).expand(shape)
        return Material(lam_t, mu_t, model, rho, alpha, beta, convention, volumetric)

    @staticmethod
    def from_young(
        E: torch.Tensor | float,
        nu: torch.Tensor | float,
        num_elements: int,
        **kwargs,
    ) -> Material:
        """Material from Young's modulus [Pa] and Poisson's ratio [-], scalars or (E,)."""
        dtype = kwargs.pop("dtype", torch.float64)
        E_t = E if torch.is_tensor(E) else torch.tensor(float(E), dtype=dtype)
        nu_t = nu if torch.is_tensor(nu) else torch.tensor(float(nu), dtype=E_t.dtype)
        lam, mu = young_to_lame(E_t, nu_t)
        return Material.from_lame(lam, mu, num_elements, dtype=E_t.dtype, **kwargs)

    def effective_lame(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(lam, mu) (E,) [Pa] as they enter the energy density, after the convention."""
        lam = 2.0 * self.lam if self.convention is LameConvention.MUJOCO3 else self.lam
        return lam, self.mu

    def element_lame(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(lam, mu) (E,) [Pa] of the per-element energy: ``effective_lame()``, with lam set to
        zero under ``VolumetricTreatment.NODAL_AVERAGE`` (its lam term is nodal)."""
        lam, mu = self.effective_lame()
        if self.volumetric is VolumetricTreatment.NODAL_AVERAGE:
            lam = torch.zeros_like(lam)
        return lam, mu

    def with_lame(self, lam: torch.Tensor, mu: torch.Tensor) -> Material:
        """The same material with new (E,) Lame parameters."""
        return replace(self, lam=lam, mu=mu)

    def rho(self, num_elements: int, like: torch.Tensor) -> torch.Tensor:
        """(E,) [kg/m^3] density (1000 where unset)."""
        if self.density is None:
            return torch.full((num_elements,), 1000.0, dtype=like.dtype, device=like.device)
        return self.density.to(like).expand(num_elements)
