"""Reserve and residual actuators (OpenSim ``CoordinateActuator``, ``PointActuator``,
``TorqueActuator``) for static optimization.

An actuator's force is ``control * optimal_force``; :func:`actuator_generalized_forces`
maps one unit of control to generalized forces ``(..., Q, NA)`` at the frame's pose, so
that the actuators add ``S @ controls`` to the muscles' generalized forces.
"""

from __future__ import annotations

import enum
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from diffbio._errors import FileFormatError, ModelError
from diffbio.model import GROUND, Model


class ActuatorKind(enum.Enum):
    """OpenSim actuator class."""

    COORDINATE = "CoordinateActuator"
    POINT = "PointActuator"
    TORQUE = "TorqueActuator"


@dataclass(frozen=True)
class Actuator:
    """One non-muscle actuator (OpenSim's property names and meaning).

    ``coordinate`` (COORDINATE); ``body``, ``point [m]`` (in ``body`` unless
    ``point_is_global``), ``direction`` (in ground if ``force_is_global``, else in ``body``)
    (POINT); ``body`` (bodyA), ``body_b`` (bodyB, receives the opposite torque), ``axis`` (in
    ground if ``torque_is_global``, else in bodyA) (TORQUE). ``optimal_force`` [N or N m] per
    unit control; controls bounded by ``[min_control, max_control]`` (may be infinite).
    """

    name: str
    kind: ActuatorKind
    optimal_force: float
    min_control: float = -math.inf
    max_control: float = math.inf
    coordinate: str = ""
    body: str = ""
    body_b: str = GROUND
    point: tuple[float, float, float] = (0.0, 0.0, 0.0)
    point_is_global: bool = False
    direction: tuple[float, float, float] = (1.0, 0.0, 0.0)
    force_is_global: bool = False
    axis: tuple[float, float, float] = (1.0, 0.0, 0.0)
    torque_is_global: bool = True


def _text(elem: ET.Element, tag: str) -> str | None:
    c = elem.find(tag)
    if c is None or c.text is None or not c.text.strip():
        return None
    return c.text.strip()


def _float(elem: ET.Element, tag: str, default: float, path) -> float:
    s = _text(elem, tag)
    if s is None:
        return default
    low = s.lower()
    if low in ("inf", "+inf", "infinity", "+infinity"):
        return math.inf
    if low in ("-inf", "-infinity"):
        return -math.inf
    try:
        return float(s)
    except ValueError:
        raise FileFormatError(
            path, f"actuator {elem.get('name')!r}: <{tag}> is not a number: {s!r}"
        ) from None


def _vec(elem: ET.Element, tag: str, default, path) -> tuple[float, float, float]:
    s = _text(elem, tag)
    if s is None:
        return default
    try:
        v = tuple(float(x) for x in s.split())
    except ValueError:
        v = ()
    if len(v) != 3:
        raise FileFormatError(path, f"actuator {elem.get('name')!r}: <{tag}> needs 3 numbers")
    return v  # type: ignore[return-value]


def _bool(elem: ET.Element, tag: str, default: bool) -> bool:
    s = _text(elem, tag)
    return default if s is None else s.lower() == "true"


def _parse(elem: ET.Element, path) -> Actuator | None:
    try:
        kind = ActuatorKind(elem.tag)
    except ValueError:
        return None
    if _bool(elem, "isDisabled", False) or not _bool(elem, "appliesForce", True):
        return None
    name = elem.get("name", "")
    common = {
        "name": name,
        "kind": kind,
        "optimal_force": _float(elem, "optimal_force", 1.0, path),
        "min_control": _float(elem, "min_control", -math.inf, path),
        "max_control": _float(elem, "max_control", math.inf, path),
    }
    if kind is ActuatorKind.COORDINATE:
        coord = _text(elem, "coordinate")
        if coord is None:
            raise FileFormatError(path, f"CoordinateActuator {name!r} names no <coordinate>")
        return Actuator(coordinate=coord, **common)
    if kind is ActuatorKind.POINT:
        body = _text(elem, "body")
        if body is None:
            raise FileFormatError(path, f"PointActuator {name!r} names no <body>")
        return Actuator(
            body=body,
            point=_vec(elem, "point", (0.0, 0.0, 0.0), path),
            point_is_global=_bool(elem, "point_is_global", False),
            direction=_vec(elem, "direction", (1.0, 0.0, 0.0), path),
            force_is_global=_bool(elem, "force_is_global", False),
            **common,
        )
    body_a = _text(elem, "bodyA")
    if body_a is None:
        raise FileFormatError(path, f"TorqueActuator {name!r} names no <bodyA>")
    return Actuator(
        body=body_a,
        body_b=_text(elem, "bodyB") or GROUND,
        axis=_vec(elem, "axis", (1.0, 0.0, 0.0), path),
        torque_is_global=_bool(elem, "torque_is_global", True),
        **common,
    )


def read_actuators(path: str | Path) -> tuple[Actuator, ...]:
    """Enabled Coordinate/Point/Torque actuators of an OpenSim actuator ``.xml`` (a
    ``<ForceSet>`` file) or of an ``.osim`` model's ``<ForceSet>`` (muscles are skipped).

    Raises:
        FileFormatError: unreadable XML or malformed actuator properties.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as err:
        raise FileFormatError(path, f"cannot read the actuators: {err}") from None
    out = []
    for fs in root.iter("ForceSet"):
        objects = fs.find("objects")
        for elem in objects if objects is not None else ():
            a = _parse(elem, path)
            if a is not None:
                out.append(a)
    return tuple(out)


def muscle_control_bounds(path: str | Path, names: tuple[str, ...] | list[str]):
    """Activation bounds of the named muscles of an ``.osim``: two ``(M,)`` float64 tensors.

    The upper bound is ``max_control`` (default 1); the lower bound ``min_control``
    (default 0), raised for Thelen2003 and Millard2012 muscles to their
    ``minimum_activation`` (default 0.01), as OpenSim 4.6 bounds them in static
    optimization.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as err:
        raise FileFormatError(path, f"cannot read the model: {err}") from None
    found: dict[str, tuple[float, float]] = {}
    for fs in root.iter("ForceSet"):
        objects = fs.find("objects")
        for elem in objects if objects is not None else ():
            if "Muscle" in elem.tag:
                lo = _float(elem, "min_control", 0.0, path)
                if elem.tag in _MIN_ACTIVATION_CLASSES:
                    lo = max(lo, _float(elem, "minimum_activation", 0.01, path))
                found[elem.get("name", "")] = (lo, _float(elem, "max_control", 1.0, path))
    missing = [n for n in names if n not in found]
    if missing:
        raise FileFormatError(path, f"no muscle named {missing[0]!r} in the <ForceSet>")
    lo = torch.tensor([found[n][0] for n in names], dtype=torch.float64)
    hi = torch.tensor([found[n][1] for n in names], dtype=torch.float64)
    return lo, hi


_MIN_ACTIVATION_CLASSES = (
    "Thelen2003Muscle",
    "Millard2012EquilibriumMuscle",
    "Millard2012AccelerationMuscle",
)


def reserve_actuators(
    model: Model, coordinates: list[str] | tuple[str, ...] | None = None, optimal_force=1.0
) -> tuple[Actuator, ...]:
    """One unbounded ``CoordinateActuator`` ``<coordinate>_reserve`` per coordinate
    (default: every unlocked coordinate of ``model``), each with ``optimal_force``."""
    if coordinates is None:
        coordinates = [c.name for c in model.coordinates if not c.locked]
    for c in coordinates:
        model.coordinate_index(c)
    return tuple(
        Actuator(f"{c}_reserve", ActuatorKind.COORDINATE, float(optimal_force), coordinate=c)
        for c in coordinates
    )


def check_actuators(model: Model, actuators) -> None:
    """Raise :class:`~diffbio.ModelError` where an actuator names a coordinate or body the
    model does not have."""
    coords, bodies = set(model.coordinate_names), set(model.body_names) | {GROUND}
    for a in actuators:
        if a.kind is ActuatorKind.COORDINATE and a.coordinate not in coords:
            raise ModelError(f"actuator {a.name!r}: model has no coordinate {a.coordinate!r}")
        if a.kind is not ActuatorKind.COORDINATE:
            for b in (a.body, a.body_b):
                if b not in bodies:
                    raise ModelError(f"actuator {a.name!r}: model has no body {b!r}")
        if not a.optimal_force > 0:
            raise ModelError(f"actuator {a.name!r}: optimal_force must be positive")


def actuator_generalized_forces(model: Model, actuators, q: Tensor) -> Tensor:
    """Generalized forces of one unit of each actuator's control at pose ``q``.

    Args:
        model: the model.
        actuators: NA :class:`Actuator` items.
        q: ``(..., Q) [rad or m]``.

    Returns:
        ``S: (..., Q, NA)`` [N m or N per unit control], ``optimal_force`` included:
        a coordinate actuator's column is ``optimal_force`` on its coordinate; point and
        torque actuators give ``J^T`` of their unit wrench (from the model's Jacobians),
        differentiable w.r.t. ``q``.
    """
    return _actuator_generalized_forces(model, actuators, q)


def _actuator_generalized_forces(model: Model, actuators, q: Tensor, js=None) -> Tensor:
    """:func:`actuator_generalized_forces`; ``js``: the joint screws at ``q``
    (``diffbio.dynamics._rnea._screws``) where the caller already has them."""
    from diffbio.dynamics import BodyWrenches, PointLoad, body_wrenches
    from diffbio.dynamics._rnea import _load_generalized_forces, _screws
    from diffbio.kinematics import BodyPoses

    check_actuators(model, actuators)
    Q = model.num_coordinates
    lead = q.shape[:-1]
    cols = []
    spatial = [a for a in actuators if a.kind is not ActuatorKind.COORDINATE]
    gen = {}
    if spatial:
        kw = {"dtype": q.dtype, "device": q.device}
        if js is None:
            js = _screws(model, q, None)
        poses = BodyPoses(js.R, js.p, js.c)
        wrenches = []
        for a in spatial:
            loads = []
            if a.kind is ActuatorKind.POINT:
                d = torch.tensor(a.direction, **kw)
                d = d / d.norm()
                loads.append(
                    PointLoad(
                        a.body,
                        d.expand(*lead, 3),
                        torch.tensor(a.point, **kw).expand(*lead, 3),
                        None,
                        GROUND if a.force_is_global else a.body,
                        GROUND if a.point_is_global else a.body,
                    )
                )
            else:
                ax = torch.tensor(a.axis, **kw)
                ax = ax / ax.norm()
                frame = GROUND if a.torque_is_global else a.body
                ax = ax.expand(*lead, 3)
                loads.append(PointLoad(a.body, None, None, ax, frame, frame))
                if a.body_b != GROUND:
                    loads.append(PointLoad(a.body_b, None, None, -ax, frame, frame))
            wrenches.append(body_wrenches(model, poses, loads))
        # J^T of every unit wrench in one pass: the wrenches stacked along a new leading
        # dimension, the pose and the joint screws shared (no motion terms: qd = qdd = 0).
        w = BodyWrenches(
            torch.stack([x.force for x in wrenches]),
            torch.stack([x.torque for x in wrenches]),
            torch.stack([x.point for x in wrenches]),
        )
        tau = _load_generalized_forces(model, js, w)
        gen = {a.name: tau[k] for k, a in enumerate(spatial)}
    for a in actuators:
        if a.kind is ActuatorKind.COORDINATE:
            c = torch.zeros(*lead, Q, dtype=q.dtype, device=q.device)
            c[..., model.coordinate_index(a.coordinate)] = 1.0
        else:
            c = gen[a.name]
        cols.append(c * a.optimal_force)
    if not cols:
        return torch.zeros(*lead, Q, 0, dtype=q.dtype, device=q.device)
    return torch.stack(cols, -1)
