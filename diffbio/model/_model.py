"""The musculoskeletal model: bodies, joints, coordinates, constraints and markers.

A :class:`Model` is an immutable description read from an OpenSim ``.osim`` file (or built
in code). Every joint is stored in OpenSim's CustomJoint form, a :class:`TransformAxis` list
of three rotations followed by three translations, so that one kinematics code path
serves every joint type:

* rotations compose body-fixed: ``R_FM = R(a1, f1) R(a2, f2) R(a3, f3)``,
* translations are along axes of the parent-side joint frame ``F``:
  ``p_FM = f4 a4 + f5 a5 + f6 a6``.

Units: metres, kilograms, radians. Frames follow OpenSim (ground Y up).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from diffbio._errors import ModelError
from diffbio.model._functions import ScalarFunction

GROUND = "ground"


class JointType(enum.Enum):
    """OpenSim joint classes that the importer understands."""

    CUSTOM = "CustomJoint"
    PIN = "PinJoint"
    SLIDER = "SliderJoint"
    WELD = "WeldJoint"
    UNIVERSAL = "UniversalJoint"
    BALL = "BallJoint"
    GIMBAL = "GimbalJoint"
    FREE = "FreeJoint"
    PLANAR = "PlanarJoint"


class CoordinateType(enum.Enum):
    """OpenSim ``Coordinate::MotionType``."""

    ROTATIONAL = "rotational"
    TRANSLATIONAL = "translational"
    COUPLED = "coupled"


@dataclass(frozen=True)
class Body:
    """A rigid body. ``inertia`` about the centre of mass in the body frame,
    ``(Ixx, Iyy, Izz, Ixy, Ixz, Iyz)`` [kg m^2]; ``mass_center`` [m] in the body frame."""

    name: str
    mass: float
    mass_center: tuple[float, float, float]
    inertia: tuple[float, float, float, float, float, float]


@dataclass(frozen=True)
class Offset:
    """A fixed frame on a body: ``translation`` [m] in the body frame and ``rotation``
    (3x3 row-major, columns are the frame's axes in the body frame)."""

    translation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rotation: tuple[tuple[float, float, float], ...] = ((1, 0, 0), (0, 1, 0), (0, 0, 1))


@dataclass(frozen=True)
class TransformAxis:
    """One of the six axes of a joint: ``value = function(q[coordinate])`` (or a constant)."""

    name: str
    axis: tuple[float, float, float]
    coordinate: str | None
    function: ScalarFunction

    @property
    def is_rotation(self) -> bool:
        return self.name.startswith("rotation")


@dataclass(frozen=True)
class Joint:
    """A joint between ``parent_body`` and ``child_body`` through the offset frames
    ``parent_offset`` (F on the parent) and ``child_offset`` (M on the child)."""

    name: str
    type: JointType
    parent_body: str
    child_body: str
    parent_offset: Offset
    child_offset: Offset
    coordinates: tuple[str, ...]
    axes: tuple[TransformAxis, ...]  # exactly 6: rotation1..3, translation1..3


@dataclass(frozen=True)
class Coordinate:
    """A generalized coordinate. ``range`` and ``default_value`` in rad or m."""

    name: str
    joint: str
    motion_type: CoordinateType
    default_value: float
    range: tuple[float, float]
    clamped: bool = False
    locked: bool = False


@dataclass(frozen=True)
class CoordinateCoupler:
    """OpenSim ``CoordinateCouplerConstraint``: ``q[dependent] = f(q[independent])``."""

    name: str
    dependent: str
    independent: str
    function: ScalarFunction


@dataclass(frozen=True)
class Marker:
    """A marker fixed at ``location`` [m] in ``body``'s frame."""

    name: str
    body: str
    location: tuple[float, float, float]
    fixed: bool = False


@dataclass(frozen=True)
class ContactSphere:
    """OpenSim ``ContactSphere``: a sphere of ``radius`` [m] centred at ``location`` [m] in
    ``body``'s frame (used for foot-floor contact)."""

    name: str
    body: str
    location: tuple[float, float, float]
    radius: float


@dataclass(frozen=True)
class Model:
    """An immutable musculoskeletal model (see the module docstring for conventions).

    ``bodies`` are in OpenSim's BodySet order (ground excluded), ``coordinates`` in
    OpenSim's CoordinateSet order (joint order, then each joint's coordinates): this is the
    order of the ``Q`` axis of every ``q`` tensor.
    """

    name: str
    bodies: tuple[Body, ...]
    joints: tuple[Joint, ...]
    coordinates: tuple[Coordinate, ...]
    couplers: tuple[CoordinateCoupler, ...] = ()
    markers: tuple[Marker, ...] = ()
    contact_spheres: tuple[ContactSphere, ...] = ()
    gravity: tuple[float, float, float] = (0.0, -9.80665, 0.0)
    source: Path | None = None
    force_set_xml: str | None = field(default=None, repr=False, compare=False)
    _cache: dict = field(default_factory=dict, repr=False, compare=False, hash=False)

    # ---- name look-ups ---------------------------------------------------------------
    @property
    def body_names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.bodies)

    @property
    def coordinate_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.coordinates)

    @property
    def marker_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.markers)

    @property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(j.name for j in self.joints)

    @property
    def num_coordinates(self) -> int:
        return len(self.coordinates)

    @property
    def num_bodies(self) -> int:
        return len(self.bodies)

    @property
    def total_mass(self) -> float:
        return float(sum(b.mass for b in self.bodies))

    def body_index(self, name: str) -> int:
        """Index of a body in :attr:`bodies`; ``-1`` for ground."""
        if name == GROUND:
            return -1
        try:
            return self.body_names.index(name)
        except ValueError:
            raise ModelError(
                f"model {self.name!r} has no body {name!r}; bodies: {', '.join(self.body_names)}"
            ) from None

    def coordinate_index(self, name: str) -> int:
        try:
            return self.coordinate_names.index(name)
        except ValueError:
            raise ModelError(f"model {self.name!r} has no coordinate {name!r}") from None

    def coordinate(self, name: str) -> Coordinate:
        return self.coordinates[self.coordinate_index(name)]

    def joint(self, name: str) -> Joint:
        for j in self.joints:
            if j.name == name:
                return j
        raise ModelError(f"model {self.name!r} has no joint {name!r}")

    @property
    def rotational_mask(self) -> tuple[bool, ...]:
        """Per coordinate: True where OpenSim converts file degrees to radians.

        As OpenSim does, only ``ROTATIONAL`` coordinates are converted; ``COUPLED`` ones
        (e.g. a coordinate driving a spline) are read as they stand in the file."""
        return tuple(c.motion_type is CoordinateType.ROTATIONAL for c in self.coordinates)

    def default_q(self):
        """Default coordinate values ``(Q,)`` as a float64 tensor [rad or m]."""
        import torch

        return torch.tensor([c.default_value for c in self.coordinates], dtype=torch.float64)

    def summary(self) -> dict:
        """A JSON-friendly description (bodies, coordinates, muscles, mass)."""
        from diffbio.model._osim import muscle_names_from_force_set

        return {
            "name": self.name,
            "source": str(self.source) if self.source else None,
            "mass_kg": self.total_mass,
            "bodies": [{"name": b.name, "mass_kg": b.mass} for b in self.bodies],
            "joints": [
                {
                    "name": j.name,
                    "type": j.type.value,
                    "parent": j.parent_body,
                    "child": j.child_body,
                }
                for j in self.joints
            ],
            "coordinates": [
                {
                    "name": c.name,
                    "type": c.motion_type.value,
                    "range": list(c.range),
                    "default": c.default_value,
                    "locked": c.locked,
                    "clamped": c.clamped,
                }
                for c in self.coordinates
            ],
            "constraints": [
                {"name": k.name, "dependent": k.dependent, "independent": k.independent}
                for k in self.couplers
            ],
            "markers": list(self.marker_names),
            "muscles": muscle_names_from_force_set(self.force_set_xml),
        }
