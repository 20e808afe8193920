"""Boundary conditions: fixed degrees of freedom, loads, gravity and rigid cuffs."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

import torch

from diffbio._errors import ShapeError

__all__ = [
    "CuffContact",
    "Cuff",
    "BoundaryConditions",
    "rodrigues",
    "rigid_transform",
    "axis_rotation",
]


class CuffContact(enum.Enum):
    """How a rigid cuff holds the skin nodes under it.

    ``TIED``: each node is held at its rest place on the cuff by a spring of ``stiffness``
    [N/m] (a penalty tie, transmits normal and shear load).
    ``CONTACT``: frictionless penalty contact, ``k/2 max(0, d)^2`` with ``d`` the outward
    penetration of the node through the cuff's inner surface along the node's rest outward
    normal carried with the cuff (transmits pressure only); the kink at d = 0 is smoothed
    over ``Cuff.smoothing`` [m] (C2 cubic) so that Newton converges quadratically.
    """

    TIED = "tied"
    CONTACT = "contact"


def rodrigues(omega: torch.Tensor) -> torch.Tensor:
    """Rotation matrix ``(..., 3, 3)`` of a rotation vector ``omega: (..., 3) [rad]`` (smooth at 0)."""
    th2 = (omega * omega).sum(-1, keepdim=True)[..., None]
    small = th2 < 1e-8
    th2s = torch.where(small, torch.ones_like(th2), th2)
    th = th2s.sqrt()
    A = torch.where(small, 1.0 - th2 / 6.0, torch.sin(th) / th)
    B = torch.where(small, 0.5 - th2 / 24.0, (1.0 - torch.cos(th)) / th2s)
    z = torch.zeros_like(omega[..., 0])
    wx, wy, wz = omega[..., 0], omega[..., 1], omega[..., 2]
    K = torch.stack([z, -wz, wy, wz, z, -wx, -wy, wx, z], -1).reshape(*omega.shape[:-1], 3, 3)
    I = torch.eye(3, dtype=omega.dtype, device=omega.device)
    return I + A * K + B * (K @ K)


def axis_rotation(
    axis: torch.Tensor | tuple[float, float, float], angle: float | torch.Tensor
) -> torch.Tensor:
    """(3, 3) rotation by ``angle`` [rad] about the unit ``axis`` (right-handed)."""
    axis = torch.as_tensor(axis, dtype=torch.float64)
    angle = torch.as_tensor(angle, dtype=axis.dtype)
    return rodrigues(axis / axis.norm() * angle)


def rigid_transform(
    points: torch.Tensor, R: torch.Tensor, t: torch.Tensor, center: torch.Tensor
) -> torch.Tensor:
    """``R (points - center) + center + t``: points ``(K, 3) [m]``, R ``(3, 3)``, t, center ``(3,) [m]``."""
    return (points - center) @ R.transpose(-1, -2) + center + t


@dataclass(frozen=True)
class Cuff:
    """A rigid cuff strapped on the skin, free to move as a rigid body (6 DOF).

    Its pose is ``p = (t, omega)``: translation ``t [m]`` and rotation vector ``omega [rad]``
    about ``center``; a skin node at rest ``X`` is held at ``R(omega)(X - center) + center + t``.

    Attributes:
        nodes: (C,) int64 skin nodes under the cuff.
        center: (3,) [m] reference point of the pose and of the applied wrench.
        force: (3,) [N] applied force (potential ``-force . t``).
        moment: (3,) [N m] applied moment (potential ``-moment . omega``: exact for a fixed
            rotation axis parallel to the moment, a small-rotation approximation otherwise).
        stiffness: [N/m] penalty stiffness per node.
        contact: tied or frictionless contact.
        normals: (C, 3) outward unit rest normals of the nodes (needed for CONTACT).
        spring: (6,) optional stiffness [N/m, N m/rad] pulling the pose towards ``target``
            (e.g. the exoskeleton link the cuff is mounted on); zeros if None.
        target: (6,) pose the spring pulls towards (zeros if None).
        smoothing: [m] width of the C2 smoothing of the contact penalty at zero penetration.
    """

    nodes: torch.Tensor
    center: torch.Tensor
    force: torch.Tensor
    moment: torch.Tensor
    stiffness: float = 1.0e6
    contact: CuffContact = CuffContact.TIED
    normals: torch.Tensor | None = None
    spring: torch.Tensor | None = None
    target: torch.Tensor | None = None
    smoothing: float = 1.0e-5

    def __post_init__(self) -> None:
        if self.contact is CuffContact.CONTACT and self.normals is None:
            raise ShapeError("a CONTACT cuff needs the rest normals of its nodes")


@dataclass(frozen=True)
class BoundaryConditions:
    """Boundary conditions of a tissue mesh with N nodes.

    Attributes:
        fixed_dofs: (D,) int64 indices into ``x.reshape(-1)`` (node * 3 + axis) held fixed.
        fixed_values: (D,) [m] their prescribed positions.
        loads: (N, 3) [N] nodal forces, or None.
        gravity: (3,) [m/s^2] acceleration of gravity (OpenSim: (0, -9.80665, 0)), or None.
        cuffs: rigid cuffs on the skin.
    """

    fixed_dofs: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.int64))
    fixed_values: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.float64))
    loads: torch.Tensor | None = None
    gravity: torch.Tensor | None = None
    cuffs: tuple[Cuff, ...] = ()

    def __post_init__(self) -> None:
        if self.fixed_dofs.shape != self.fixed_values.shape or self.fixed_dofs.ndim != 1:
            raise ShapeError(
                f"fixed_dofs and fixed_values must both be (D,), got {tuple(self.fixed_dofs.shape)} "
                f"and {tuple(self.fixed_values.shape)}"
            )
        if torch.unique(self.fixed_dofs).numel() != self.fixed_dofs.numel():
            raise ShapeError("fixed_dofs lists a degree of freedom twice")

    @staticmethod
    def fix(
        nodes: torch.Tensor, positions: torch.Tensor, axes: tuple[int, ...] = (0, 1, 2)
    ) -> BoundaryConditions:
        """Hold ``axes`` of ``nodes: (K,)`` at ``positions: (K, 3) [m]``."""
        ax = torch.tensor(axes, dtype=torch.int64)
        dofs = (nodes[:, None] * 3 + ax[None, :]).reshape(-1)
        return BoundaryConditions(dofs, positions[:, ax].reshape(-1))

    def and_fix(
        self, nodes: torch.Tensor, positions: torch.Tensor, axes: tuple[int, ...] = (0, 1, 2)
    ) -> BoundaryConditions:
        """These conditions plus ``fix(nodes, positions, axes)`` (a dof listed twice keeps the first)."""
        other = BoundaryConditions.fix(nodes, positions, axes)
        new = ~torch.isin(other.fixed_dofs, self.fixed_dofs)
        return replace(
            self,
            fixed_dofs=torch.cat([self.fixed_dofs, other.fixed_dofs[new]]),
            fixed_values=torch.cat([self.fixed_values.to(positions), other.fixed_values[new]]),
        )

    def with_(self, **changes) -> BoundaryConditions:
        """A copy with some fields replaced (loads=..., gravity=..., cuffs=...)."""
        return replace(self, **changes)
