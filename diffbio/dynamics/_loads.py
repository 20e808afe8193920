"""External loads (OpenSim ExternalLoads) as :class:`BodyWrenches` in ground.

OpenSim's ``ExternalForce::computeForce``: the force and the free torque are re-expressed
from ``force_expressed_in_body`` to ground; the point from ``point_expressed_in_body`` (a
point fixed in that frame at this instant); without a point the force acts at the origin
of ``applied_to_body``. Data are interpolated at the requested times as OpenSim does
(natural cubic ``GCVSpline(3)``; see :meth:`diffbio.io.ExternalLoads.at`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from diffbio._errors import DiffbioError, FileFormatError, ModelError
from diffbio.dynamics._rnea import BodyWrenches
from diffbio.kinematics import BodyPoses, forward_kinematics
from diffbio.model import GROUND, Model


@dataclass(frozen=True)
class PointLoad:
    """One applied load as tensors, the differentiable input of :func:`body_wrenches`.

    ``body``/``force_frame``/``point_frame``: body names (``"ground"`` allowed for the
    frames); ``force: (..., 3) [N]`` and ``torque: (..., 3) [N m]`` in ``force_frame``
    (either may be ``None``); ``point: (..., 3) [m]`` in ``point_frame`` or ``None`` (the
    origin of ``body``)."""

    body: str
    force: Tensor | None
    point: Tensor | None
    torque: Tensor | None
    force_frame: str = GROUND
    point_frame: str = GROUND


def _frame(poses: BodyPoses, idx: int) -> tuple[Tensor | None, Tensor | None]:
    if idx < 0:
        return None, None
    return poses.rotation[..., idx, :, :], poses.translation[..., idx, :]


def _rot(R: Tensor | None, v: Tensor) -> Tensor:
    return v if R is None else (R @ v.unsqueeze(-1)).squeeze(-1)


def body_wrenches(model: Model, poses: BodyPoses, loads: list[PointLoad] | tuple) -> BodyWrenches:
    """Sum point loads into per-body wrenches in ground.

    Args:
        model: the model (body names are resolved against it).
        poses: :func:`~diffbio.kinematics.forward_kinematics` result with leading ``...``.
        loads: :class:`PointLoad` items whose tensors broadcast against ``...``.
    Returns:
        :class:`BodyWrenches` ``(..., NB, 3)``; a body's wrench is referred to its origin.
    Raises:
        ModelError: a body or frame the model does not have (names the load).
    """
    dtype, device = poses.translation.dtype, poses.translation.device
    lead = poses.translation.shape[:-2]
    nb = model.num_bodies
    force = [torch.zeros(*lead, 3, dtype=dtype, device=device) for _ in range(nb)]
    torque = [torch.zeros(*lead, 3, dtype=dtype, device=device) for _ in range(nb)]
    for ld in loads:
        b = _body(model, ld.body, "applied_to_body")
        if b < 0:
            raise ModelError(f"an external load cannot be applied to {GROUND!r}")
        R_f, _ = _frame(poses, _body(model, ld.force_frame, "force_expressed_in_body"))
        _R_b, p_b = poses.rotation[..., b, :, :], poses.translation[..., b, :]
        if ld.force is not None:
            f = _rot(R_f, ld.force)
            if ld.point is None:
                p = p_b
            else:
                R_p, p_p = _frame(poses, _body(model, ld.point_frame, "point_expressed_in_body"))
                p = ld.point if R_p is None else p_p + _rot(R_p, ld.point)
            force[b] = force[b] + f
            torque[b] = torque[b] + torch.linalg.cross(p - p_b, f)
        if ld.torque is not None:
            torque[b] = torque[b] + _rot(R_f, ld.torque)
    return BodyWrenches(torch.stack(force, -2), torch.stack(torque, -2), poses.translation)


def _body(model: Model, name: str, what: str) -> int:
    try:
        return model.body_index(name)
    except ModelError:
        raise ModelError(
            f"external load {what} {name!r} is not a body of model {model.name!r}; bodies: "
            f"{', '.join((GROUND,) + model.body_names)}"
        ) from None


def wrenches_from_external_loads(
    model: Model,
    loads,
    q: Tensor,
    time: np.ndarray | Tensor,
    *,
    scales: Tensor | None = None,
    poses: BodyPoses | None = None,
) -> BodyWrenches:
    """External loads at the kinematic frames, as body wrenches in ground.

    Args:
        model: the model.
        loads: a :class:`diffbio.io.ExternalLoads` (read with
            :func:`diffbio.io.read_external_loads`).
        q: ``(..., T, Q) [rad or m]`` coordinates at ``time`` (used for frames other than
            ground).
        time: ``(T,) [s]`` frame times; must lie within the loads' time span.
        scales: optional ``(..., NB, 3)`` segment scale factors for the kinematics.
        poses: precomputed ``forward_kinematics(model, q, scales)`` (optional).
    Returns:
        :class:`BodyWrenches` ``(..., T, NB, 3)``.
    Raises:
        ModelError: a load names a body the model does not have.
        DiffbioError: ``time`` outside the loads' span, or NaN in the interpolated data.
    """
    t = np.asarray(time.detach().cpu() if isinstance(time, Tensor) else time, dtype=np.float64)
    if t.ndim != 1 or q.shape[-2] != t.shape[0]:
        raise DiffbioError(
            f"time must be (T,) matching q's frame axis (..., T, Q); got time {t.shape} and "
            f"q {tuple(q.shape)}"
        )
    lt = np.asarray(loads.time)
    tol = 1e-6  # [s]: resampled (filtered) kinematics may start a hair before the data
    if t.size and (t.min() < lt[0] - tol or t.max() > lt[-1] + tol):
        src = f" ({loads.data_path})" if getattr(loads, "data_path", None) else ""
        raise DiffbioError(
            f"external loads{src} cover {lt[0]:g}..{lt[-1]:g} s but frames run "
            f"{t.min():g}..{t.max():g} s: the time range must lie within the loads"
        )
    for f in loads.forces:
        if f.enabled:
            _body(model, f.applied_to_body, "applied_to_body")
            _body(model, f.force_expressed_in_body or GROUND, "force_expressed_in_body")
            if f.point is not None:
                _body(model, f.point_expressed_in_body or GROUND, "point_expressed_in_body")
    if poses is None:
        poses = forward_kinematics(model, q, scales)
    kw = {"dtype": q.dtype, "device": q.device}
    items = []
    for f in loads.at(t):
        if not f.enabled:
            continue
        arrays = {}
        for what, cols in (("force", 0), ("point", 3), ("torque", 6)):
            a = getattr(f, what)
            if a is not None and np.isnan(a).any():
                r, k = (int(v) for v in np.argwhere(np.isnan(a))[0])
                col = f.columns[cols + k] if len(f.columns) > cols + k else what
                raise FileFormatError(
                    getattr(loads, "data_path", None),
                    f"NaN in external force {f.name!r} {what} at time {t[r]:g} s",
                    column=col,
                )
            arrays[what] = None if a is None else torch.as_tensor(a, **kw)
        items.append(
            PointLoad(
                f.applied_to_body,
                arrays["force"],
                arrays["point"],
                arrays["torque"],
                f.force_expressed_in_body or GROUND,
                f.point_expressed_in_body or GROUND,
            )
        )
    return body_wrenches(model, poses, items)
