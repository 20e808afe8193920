"""Root (pelvis) residuals: what the external loads fail to explain of the accelerations.

The wrench the root joint (ground -> pelvis) must transmit to make the model follow the
kinematics is ``W = sum_b (m_b a_b - m_b g - f_ext,b)`` (and the matching moments): with
perfect data and a perfect model it is zero (``F_ext + m g = m a_com``). It is reported as
a force in ground [N] and a moment about the root joint centre [N m], in percent of body
weight, as the generalized forces of the root coordinates (what OpenSim's residual
actuators carry), and judged against the usual thresholds: peak residual force below 5 % of
the peak external force, peak residual moment below 1 % of (centre-of-mass height x peak
external force).

Every field is differentiable with respect to the kinematics, loads and body parameters,
so a later refinement layer can minimise them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from diffbio._errors import ModelError
from diffbio.dynamics._inertial import BodyInertial
from diffbio.dynamics._rnea import BodyWrenches, _newton_euler, _resolve_inertial
from diffbio.kinematics import forward_kinematics, kinematic_tree
from diffbio.model import Model

FORCE_THRESHOLD = 0.05  # of the peak external force
MOMENT_THRESHOLD = 0.01  # of centre-of-mass height x peak external force


@dataclass(frozen=True)
class Residuals:
    """Root residuals over a trial with leading dimensions ``...`` and ``T`` frames.

    ``force: (..., T, 3) [N]`` in ground; ``moment: (..., T, 3) [N m]`` about the root
    joint centre, in ground; ``generalized: (..., T, C)`` the root joint's coordinates'
    generalized forces [N m or N] (``coordinates`` names them); ``force_pct_bw`` and
    ``moment_pct_bw_height``: ``force`` in % of body weight and ``moment`` in % of body
    weight x centre-of-mass height; ``peak_external_force: (...,) [N]`` (peak magnitude of
    the summed external force over the trial); ``com_height: (...,) [m]`` (mean height of
    the whole-body centre of mass along -gravity); ``force_ok``/``moment_ok``: ``(...,)``
    bool, the thresholds met by the peak residual force magnitude / moment magnitude."""

    force: Tensor
    moment: Tensor
    generalized: Tensor
    coordinates: tuple[str, ...]
    force_pct_bw: Tensor
    moment_pct_bw_height: Tensor
    peak_external_force: Tensor
    com_height: Tensor
    force_ok: Tensor
    moment_ok: Tensor

    @property
    def max_force(self) -> Tensor:
        """Peak residual force magnitude over the trial ``(...,) [N]``."""
        return self.force.norm(dim=-1).amax(-1)

    @property
    def max_moment(self) -> Tensor:
        """Peak residual moment magnitude over the trial ``(...,) [N m]``."""
        return self.moment.norm(dim=-1).amax(-1)


def center_of_mass(
    model: Model,
    q: Tensor,
    *,
    scales: Tensor | None = None,
    inertial: BodyInertial | None = None,
) -> Tensor:
    """Whole-body centre of mass in ground ``(..., 3) [m]``."""
    poses = forward_kinematics(model, q, scales)
    ip = _resolve_inertial(model, inertial, scales, q.dtype, q.device)
    c = poses.translation + (poses.rotation @ ip.com.unsqueeze(-1)).squeeze(-1)
    m = ip.mass.unsqueeze(-1)
    return (m * c).sum(-2) / m.sum(-2)


def root_residuals(
    model: Model,
    q: Tensor,
    qd: Tensor,
    qdd: Tensor,
    loads: BodyWrenches | None,
    *,
    scales: Tensor | None = None,
    inertial: BodyInertial | None = None,
) -> Residuals:
    """Residual forces and moments of the root joint over a trial.

    Args:
        model: a model whose first joint connects ground to the root body (the pelvis).
        q, qd, qdd: ``(..., T, Q)`` kinematics [rad, m and their time derivatives].
        loads: :class:`BodyWrenches` ``(..., T, NB, 3)`` (e.g. from
            :func:`wrenches_from_external_loads`), or None.
        scales, inertial: as in :func:`inverse_dynamics`.
    Returns:
        :class:`Residuals`.
    """
    tree = kinematic_tree(model, q.dtype, q.device)
    if int(tree.parent[0]) >= 0:
        raise ModelError(f"model {model.name!r}: its first joint does not hang from ground")
    tau, W, _ = _newton_euler(model, q, qd, qdd, loads, scales, inertial, True)
    ip = _resolve_inertial(model, inertial, scales, q.dtype, q.device)
    poses = forward_kinematics(model, q, scales)
    c = poses.joint_centers[..., 0, :]
    n_O, F = W[..., 0, :3], W[..., 0, 3:]
    moment = n_O - torch.linalg.cross(c, F)
    g = torch.tensor(model.gravity, dtype=q.dtype, device=q.device)
    gn = g.norm()
    weight = ip.mass.sum(-1) * gn  # (...,)
    up = -g / gn
    com = center_of_mass(model, q, scales=scales, inertial=inertial)
    com_h = (com @ up).mean(-1)
    if loads is None:
        peak = torch.zeros_like(com_h)
    else:
        peak = loads.force.sum(-2).norm(dim=-1).amax(-1)
    # the weight carries the leading dims of the scales, which broadcast against the
    # frames' (..., T): one more axis for the 3 components
    w = weight.unsqueeze(-1) if weight.dim() else weight
    coords = sorted({int(k) for k in tree.coord[0].tolist() if k >= 0})
    res = Residuals(
        force=F,
        moment=moment,
        generalized=tau[..., coords],
        coordinates=tuple(model.coordinate_names[k] for k in coords),
        force_pct_bw=100.0 * F / w,
        moment_pct_bw_height=100.0 * moment / (w * com_h.unsqueeze(-1).unsqueeze(-1)),
        peak_external_force=peak,
        com_height=com_h,
        force_ok=torch.zeros_like(peak, dtype=torch.bool),
        moment_ok=torch.zeros_like(peak, dtype=torch.bool),
    )
    force_ok = res.max_force < FORCE_THRESHOLD * peak
    moment_ok = res.max_moment < MOMENT_THRESHOLD * com_h * peak
    return Residuals(**{**res.__dict__, "force_ok": force_ok, "moment_ok": moment_ok})
