"""Body inertial parameters as tensors, and their scaling as OpenSim's ScaleTool does it.

:class:`BodyInertial` holds what inverse dynamics needs of every body (mass, mass centre,
inertia about the mass centre) as tensors, so that gradients flow to them;
:func:`scale_body_inertial` reproduces OpenSim's ``Body::scale`` (mass centre scaled by
the segment factors) and ``Body::scaleInertialProperties`` (mass by the product of the
factors when ``scale_mass``; inertia by the square of the factor when the three factors are
equal, otherwise through OpenSim's equivalent-cylinder rule).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from diffbio._errors import ShapeError
from diffbio.model import Model

_EPS = torch.finfo(torch.float64).eps  # SimTK::Eps


@dataclass(frozen=True)
class BodyInertial:
    """Inertial parameters of the ``NB`` bodies (ground excluded), in ``model.bodies`` order.

    ``mass: (..., NB) [kg]``; ``com: (..., NB, 3) [m]`` mass centre in the body frame;
    ``inertia: (..., NB, 6) [kg m^2]`` about the mass centre in the body frame, ordered
    ``(Ixx, Iyy, Izz, Ixy, Ixz, Iyz)`` as in ``.osim`` files. Leading dimensions broadcast
    against the per-sample data."""

    mass: Tensor
    com: Tensor
    inertia: Tensor

    def to(self, dtype=None, device=None) -> BodyInertial:
        return BodyInertial(
            self.mass.to(dtype=dtype, device=device),
            self.com.to(dtype=dtype, device=device),
            self.inertia.to(dtype=dtype, device=device),
        )

    def inertia_matrix(self) -> Tensor:
        """The symmetric inertia tensors ``(..., NB, 3, 3) [kg m^2]`` (body frame, about the
        mass centre)."""
        xx, yy, zz, xy, xz, yz = self.inertia.unbind(-1)
        rows = [
            torch.stack([xx, xy, xz], -1),
            torch.stack([xy, yy, yz], -1),
            torch.stack([xz, yz, zz], -1),
        ]
        return torch.stack(rows, -2)


def body_inertial(model: Model, dtype=torch.float64, device=None) -> BodyInertial:
    """The model's inertial parameters as tensors (see :class:`BodyInertial`).

    As OpenSim does, a massless body (``|m| <= eps``) gets zero inertia."""
    mass = torch.tensor([b.mass for b in model.bodies], dtype=dtype, device=device)
    com = torch.tensor([b.mass_center for b in model.bodies], dtype=dtype, device=device)
    inertia = torch.tensor([b.inertia for b in model.bodies], dtype=dtype, device=device)
    inertia = torch.where((mass.abs() <= _EPS).unsqueeze(-1), torch.zeros_like(inertia), inertia)
    return BodyInertial(mass, com.reshape(-1, 3), inertia.reshape(-1, 6))


def check_inertial(model: Model, inertial: BodyInertial) -> None:
    nb = model.num_bodies
    if (
        inertial.mass.shape[-1:] != (nb,)
        or inertial.com.shape[-2:] != (nb, 3)
        or inertial.inertia.shape[-2:] != (nb, 6)
    ):
        raise ShapeError(
            f"inertial parameters must have shapes mass (..., {nb}), com (..., {nb}, 3), "
            f"inertia (..., {nb}, 6) for the NB = {nb} bodies of model {model.name!r}; got "
            f"{tuple(inertial.mass.shape)}, {tuple(inertial.com.shape)}, "
            f"{tuple(inertial.inertia.shape)}"
        )


def _numerically_equal(a: Tensor, b: Tensor) -> Tensor:
    """SimTK::isNumericallyEqual for doubles: ``|a-b| <= max(|a|,|b|) * 8 eps`` (or both
    tiny)."""
    tol = 8.0 * _EPS
    scale = torch.maximum(a.abs(), b.abs())
    return torch.where(scale <= 1.0, (a - b).abs() <= tol, (a - b).abs() <= scale * tol)


def scale_body_inertial(
    inertial: BodyInertial, scales: Tensor, *, scale_mass: bool = True
) -> BodyInertial:
    """Scale inertial parameters as OpenSim's ``Body::scale(factors, scale_mass)``.

    Args:
        inertial: unscaled parameters (:class:`BodyInertial`).
        scales: ``(..., NB, 3)`` segment scale factors.
        scale_mass: multiply the masses by ``|sx sy sz|`` (OpenSim's ScaleTool does so with
            ``preserve_mass_distribution``).
    Returns:
        The scaled :class:`BodyInertial`: ``com * scales``; inertia ``* s^2`` (and
        ``* |sx sy sz|`` with ``scale_mass``) where the three factors are equal, otherwise
        OpenSim's cylinder rule (axis = smallest principal moment, radius and length
        recovered from the unscaled moments and rescaled; products scaled by two factors).
        Differentiable almost everywhere (the branch choices are piecewise constant).
    """
    m0 = inertial.mass
    msf = (scales[..., 0] * scales[..., 1] * scales[..., 2]).abs()
    mass = m0 * msf if scale_mass else m0 * torch.ones_like(msf)
    com = inertial.com * scales
    inertia0 = inertial.inertia.expand(*mass.shape, 6)
    xx, yy, zz, xy, xz, yz = inertia0.unbind(-1)
    sx, sy, sz = scales.unbind(-1)

    # equal factors
    f_eq = sx * sx * (msf if scale_mass else 1.0)
    eq = inertia0 * f_eq.unsqueeze(-1)

    # cylinder rule
    diag = torch.stack([xx, yy, zz], -1)
    axis = torch.where(
        xx <= yy,
        torch.where(xx <= zz, torch.zeros_like(xx), torch.full_like(xx, 2.0)),
        torch.where(yy <= zz, torch.ones_like(xx), torch.full_like(xx, 2.0)),
    ).long()
    safe_m0 = torch.where(m0.abs() > 0, m0, torch.ones_like(m0)).expand_as(xx)
    i_ax = torch.gather(diag, -1, axis.unsqueeze(-1)).squeeze(-1)
    term = 2.0 * i_ax / safe_m0
    r2 = torch.where(term < 0, torch.zeros_like(term), term)  # radius^2
    oa = torch.where(axis == 0, torch.ones_like(axis), torch.zeros_like(axis))
    i_oa = torch.gather(diag, -1, oa.unsqueeze(-1)).squeeze(-1)
    term = 12.0 * (i_oa - 0.25 * safe_m0 * r2) / safe_m0
    len2 = torch.where(term < 0, torch.zeros_like(term), term)
    s_all = scales.expand(*axis.shape, 3)
    s_ax = torch.gather(s_all, -1, axis.unsqueeze(-1)).squeeze(-1)
    len2 = len2 * s_ax * s_ax
    # product of the two factors across the axis
    s_cross = (s_all[..., 0] * s_all[..., 1] * s_all[..., 2]) / torch.where(
        s_ax == 0, torch.ones_like(s_ax), s_ax
    )
    rad2 = r2 * s_cross
    along = 0.5 * mass * rad2
    across = mass * (len2 / 12.0 + 0.25 * rad2)
    onehot = torch.nn.functional.one_hot(axis, 3).to(mass.dtype)
    new_diag = onehot * along.unsqueeze(-1) + (1 - onehot) * across.unsqueeze(-1)
    pf = msf if scale_mass else torch.ones_like(msf)
    prods = torch.stack([xy * sx * sy, xz * sx * sz, yz * sy * sz], -1) * pf.unsqueeze(-1)
    cyl = torch.cat([new_diag, prods], -1)

    equal = _numerically_equal(sx, sy) & _numerically_equal(sy, sz)
    inertia = torch.where(equal.unsqueeze(-1), eq, cyl)
    inertia = torch.where((mass <= _EPS).unsqueeze(-1), torch.zeros_like(inertia), inertia)
    return BodyInertial(mass, com, inertia)
