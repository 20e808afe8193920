"""The built-in synthetic walking trial for the default model.

The gait pattern is authored in this module: for each joint angle of the right leg a few key
points over the gait cycle (percent of the cycle from right heel strike, degrees), read off
the normal adult walking curves of D. A. Winter, "Biomechanics and Motor Control of Human
Movement", 4th ed., Wiley, 2009 (ch. 4 and appendix A) and J. Perry and J. M. Burnfield,
"Gait Analysis: Normal and Pathological Function", 2nd ed., SLACK, 2010, joined by periodic
cubic splines (C2 and periodic); the left leg follows half a cycle later. Pelvis and trunk
rotations are single sinusoids at stride (obliquity, axial rotation, lateral sway, lumbar
bending and rotation) or step frequency (tilt, lumbar extension) with amplitudes from the
same sources. Signs follow OpenSim's gait2392 (knee flexion negative, ankle dorsiflexion,
hip flexion, adduction and internal rotation positive).

Stride length follows the dimensionless relation of R. McN. Alexander, "Walking and
running", American Scientist 72, 348-354, 1984 (stride / leg length = 2.3 Froude^0.3, leg
length = hip height); the cadence is then ``2 speed / stride``. The pelvis moves forward
(+X) at exactly ``speed``. ``pelvis_ty`` is computed over one cycle with the model's own
joint geometry (read from its XML) so that the lowest ContactSphere of either foot just
touches the floor (y = 0), then kept to its first 8 stride harmonics so that it is smooth
(the exact minimum has kinks where the lowest point switches): the lowest foot point stays
within a few millimetres of the floor (about 3 mm for the default model).

Known simplifications: the stance forefoot slides by up to about 7 cm, right initial contact
lands at about 12 % of the cycle rather than 0 %, and swing toe clearance is under 1 cm.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import CubicSpline

from diffbio._errors import ModelError

__all__ = ["WalkingTrial", "synthetic_walk"]

# Right-leg key points: (percent of the gait cycle from right heel strike, degrees).
_KEYS: dict[str, tuple[tuple[float, float], ...]] = {
    "hip_flexion": (
        (0, 25),
        (10, 22),
        (20, 13),
        (30, 4),
        (40, -5),
        (52, -16),
        (58, -12),
        (65, 0),
        (75, 18),
        (87, 28),
        (95, 27),
    ),
    "hip_adduction": ((0, 2), (15, 7), (35, 4), (55, -2), (70, -6), (85, -3)),
    "hip_rotation": ((0, 2), (20, 5), (50, -1), (65, -5), (85, 0)),
    "knee_angle": (
        (0, -2),
        (15, -18),
        (28, -12),
        (40, -6),
        (50, -20),
        (60, -40),
        (72, -62),
        (80, -58),
        (88, -40),
        (95, -12),
    ),
    "ankle_angle": (
        (0, 3),
        (7, -5),
        (15, 0),
        (30, 5),
        (45, 10),
        (52, 4),
        (62, -17),
        (70, -7),
        (80, 4),
        (90, 5),
    ),
    "subtalar_angle": ((0, 3), (12, -4), (40, -2), (56, 4), (72, 2), (90, 2)),
}
# Pelvis and lumbar: (mean [deg or m], amplitude, harmonic, phase of the peak in the cycle).
_SINES: dict[str, tuple[float, float, int, float]] = {
    "pelvis_tilt": (-2.0, 1.5, 2, 0.10),
    "pelvis_list": (0.0, -4.0, 1, 0.15),
    "pelvis_rotation": (0.0, 5.0, 1, 0.0),
    "pelvis_tz": (0.0, 0.015, 1, 0.30),
    "lumbar_extension": (0.0, 1.5, 2, 0.35),
    "lumbar_bending": (0.0, 3.0, 1, 0.15),
    "lumbar_rotation": (0.0, -4.0, 1, 0.0),
}
_TRANSLATIONS = ("pelvis_tx", "pelvis_ty", "pelvis_tz")
_GRID = 512  # samples per cycle for pelvis_ty
_HARMONICS = 8  # harmonics of the stride frequency kept in pelvis_ty


@dataclass(frozen=True, eq=False)
class WalkingTrial:
    """A synthetic walking trial.

    time: (T,) [s]; coordinate_names: the model's coordinates, in model order (Q);
    q: (T, Q) [rad or m]; rotational: (Q,) whether each coordinate is an angle;
    cadence [steps/min]; speed [m/s] (pelvis forward speed along ground X).
    """

    time: np.ndarray
    coordinate_names: tuple[str, ...]
    q: np.ndarray
    rotational: tuple[bool, ...]
    cadence: float
    speed: float

    @property
    def stride_time(self) -> float:
        """Duration of one gait cycle (two steps) [s]."""
        return 120.0 / self.cadence

    def to_storage_arrays(self) -> tuple[np.ndarray, tuple[str, ...], np.ndarray]:
        """(time (T,) [s], column labels (Q,), data (T, Q) [deg or m]) for an OpenSim ``.mot``
        written with ``inDegrees=yes``; the labels exclude the leading ``time`` column."""
        scale = np.where(np.asarray(self.rotational), 180.0 / math.pi, 1.0)
        return self.time.copy(), self.coordinate_names, self.q * scale


def _periodic_spline(keys: tuple[tuple[float, float], ...]) -> CubicSpline:
    x = np.array([k[0] for k in keys] + [keys[0][0] + 100.0]) / 100.0
    y = np.array([k[1] for k in keys] + [keys[0][1]]) * (math.pi / 180.0)
    return CubicSpline(x, y, bc_type="periodic")


_SPLINES = {name: _periodic_spline(keys) for name, keys in _KEYS.items()}


def _pattern(name: str, phase: np.ndarray) -> np.ndarray | None:
    """Nominal value of coordinate ``name`` at gait phase ``phase`` (cycles from right heel
    strike; periodic with period 1) [rad or m], or None for coordinates it does not drive."""
    for side, shift in (("_r", 0.0), ("_l", 0.5)):
        if name.endswith(side) and name[:-2] in _SPLINES:
            return _SPLINES[name[:-2]](np.mod(phase - shift, 1.0))
    if name in _SINES:
        mean, amp, k, peak = _SINES[name]
        scale = 1.0 if name in _TRANSLATIONS else math.pi / 180.0
        return scale * (mean + amp * np.cos(2.0 * math.pi * k * (phase - peak)))
    return None


# --- the model's geometry, read from its XML ---------------------------------------------


def _vec(text: str | None) -> np.ndarray:
    return np.array([float(v) for v in (text or "").split()], dtype=float)


def _rot(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) about unit ``axis`` by ``angle`` (...,) [rad]."""
    a = axis / np.linalg.norm(axis)
    K = np.array([[0.0, -a[2], a[1]], [a[2], 0.0, -a[0]], [-a[1], a[0], 0.0]])
    s, c = np.sin(angle)[..., None, None], np.cos(angle)[..., None, None]
    return np.eye(3) + s * K + (1.0 - c) * (K @ K)


def _body_fixed_xyz(angles: np.ndarray) -> np.ndarray:
    x, y, z = np.eye(3)
    return _rot(x, angles[0]) @ _rot(y, angles[1]) @ _rot(z, angles[2])


class _Chain:
    """Enough of an OpenSim model to place its ContactSpheres: CustomJoints whose functions
    are LinearFunction or Constant, PhysicalOffsetFrames, ContactSphere geometry."""

    def __init__(self, xml: str) -> None:
        try:
            root = ET.fromstring(xml)
        except ET.ParseError as exc:
            raise ModelError(f"synthetic walk: model XML does not parse: {exc}") from None
        model = root.find("Model")
        if model is None:
            raise ModelError("synthetic walk: model XML has no <Model> element")
        self.coordinates: list[tuple[str, float, np.ndarray, bool]] = []
        self.joints: dict[str, dict] = {}  # by child body
        for joint in model.iter():
            st = joint.find("SpatialTransform")
            if st is None or joint.tag == "SpatialTransform":
                continue
            if joint.tag != "CustomJoint":
                raise ModelError(
                    f"synthetic walk: joint {joint.get('name')!r} is a {joint.tag}; only CustomJoint is supported"
                )
            frames = {f.get("name"): f for f in joint.iter("PhysicalOffsetFrame")}

            def frame(
                socket: str, joint=joint, frames=frames
            ) -> tuple[str, np.ndarray, np.ndarray]:
                f = frames.get((joint.findtext(socket) or "").strip())
                if f is None:
                    raise ModelError(
                        f"synthetic walk: joint {joint.get('name')!r}: {socket} is not one of its PhysicalOffsetFrames"
                    )
                body = (f.findtext("socket_parent") or "").strip().split("/")[-1]
                return (
                    body,
                    _vec(f.findtext("translation")),
                    _body_fixed_xyz(_vec(f.findtext("orientation"))),
                )

            axes = []
            for ta in st.findall("TransformAxis"):
                coords = (ta.findtext("coordinates") or "").split()
                if (fn := ta.find("LinearFunction")) is not None:
                    a, b = _vec(fn.findtext("coefficients"))
                elif (fn := ta.find("Constant")) is not None:
                    a, b = 0.0, float(fn.findtext("value") or 0.0)
                else:
                    raise ModelError(
                        f"synthetic walk: joint {joint.get('name')!r}, {ta.get('name')}: only LinearFunction and Constant are supported"
                    )
                axes.append(
                    (
                        ta.get("name", ""),
                        coords[0] if coords else None,
                        _vec(ta.findtext("axis")),
                        a,
                        b,
                    )
                )
            parent = frame("socket_parent_frame")
            child = frame("socket_child_frame")
            self.joints[child[0]] = {"parent": parent, "child": child, "axes": axes}
            for c in joint.iter("Coordinate"):
                rotational = any(
                    ax[1] == c.get("name") and ax[0].startswith("rotation") for ax in axes
                )
                self.coordinates.append(
                    (
                        c.get("name"),
                        float(c.findtext("default_value") or 0.0),
                        _vec(c.findtext("range")),
                        rotational,
                    )
                )
        self.spheres = [
            (
                (s.findtext("socket_frame") or "").strip().split("/")[-1],
                _vec(s.findtext("location")),
                float(s.findtext("radius") or 0.0),
            )
            for s in model.iter("ContactSphere")
        ]
        if not self.spheres:
            raise ModelError("synthetic walk: the model has no ContactSphere to stand on")

    def _pose(
        self, body: str, q: dict[str, np.ndarray], memo: dict
    ) -> tuple[np.ndarray, np.ndarray]:
        """(R_GB (T, 3, 3), p_GB (T, 3)) of ``body``."""
        if body == "ground":
            return np.eye(3), np.zeros(3)
        if body not in memo:
            if body not in self.joints:
                raise ModelError(f"synthetic walk: no joint leads to body {body!r}")
            j = self.joints[body]
            (pb, pt, pR), (_, ct, cR) = j["parent"], j["child"]
            R_GP, p_GP = self._pose(pb, q, memo)
            R_FM, p_FM = np.eye(3), np.zeros(3)
            for name, coord, axis, a, b in j["axes"]:
                value = a * q[coord] + b if coord is not None else np.asarray(b)
                if name.startswith("rotation"):
                    R_FM = R_FM @ _rot(axis, value)
                else:
                    p_FM = p_FM + value[..., None] * (axis / np.linalg.norm(axis))
            R_GF = R_GP @ pR
            p_GF = p_GP + np.einsum("...ij,j->...i", R_GP, pt)
            R_GM = R_GF @ R_FM
            p_GM = p_GF + np.einsum("...ij,...j->...i", R_GF, p_FM)
            R_GB = R_GM @ cR.T
            memo[body] = (R_GB, p_GM - np.einsum("...ij,j->...i", R_GB, ct))
        return memo[body]

    def lowest_point(self, q: dict[str, np.ndarray]) -> np.ndarray:
        """Height of the lowest ContactSphere surface point (T,) [m]."""
        memo: dict = {}
        lows = []
        for body, loc, radius in self.spheres:
            R, p = self._pose(body, q, memo)
            lows.append(p[..., 1] + np.einsum("...j,j->...", R[..., 1, :], loc) - radius)
        return np.min(np.stack(lows), axis=0)


def synthetic_walk(
    model_xml_or_none: str | None = None,
    *,
    duration: float = 2.0,
    frame_rate: float = 100.0,
    speed: float = 1.3,
    height: float = 1.75,
    seed: int = 0,
) -> WalkingTrial:
    """A synthetic level walking trial for the default model.

    model_xml_or_none: an ``.osim`` document (default: ``default_model_xml(height)``); its
    coordinates make the columns, those the pattern does not drive keep their default value.
    duration [s], frame_rate [Hz], speed [m/s] (pelvis forward speed), height [m] (sets the
    stride length and the pelvis sway). ``seed`` draws small inter-trial variations
    (amplitudes within a few percent, offsets within about a degree, cadence within 2 %);
    the result is deterministic given it. Starts at right heel strike with ``pelvis_tx = 0``.
    """
    from diffbio.model._default import default_model_xml

    if not (duration > 0 and frame_rate > 0 and 0.2 <= speed <= 2.5 and 0.5 <= height <= 2.5):
        raise ModelError(
            f"synthetic walk: need duration > 0, frame_rate > 0, speed in [0.2, 2.5] m/s and "
            f"height in [0.5, 2.5] m; got {duration}, {frame_rate}, {speed}, {height}"
        )
    xml = default_model_xml(height) if model_xml_or_none is None else model_xml_or_none
    chain = _Chain(xml)
    rng = np.random.default_rng(seed)
    leg = 0.53 * height  # hip height, Winter (2009) Fig. 4.1
    stride = 2.3 * leg * (speed**2 / (9.80665 * leg)) ** 0.3
    stride *= 1.0 + 0.02 * float(np.clip(rng.standard_normal(), -2.0, 2.0))
    cadence = 120.0 * speed / stride
    n = int(math.floor(duration * frame_rate + 1e-9)) + 1
    time = np.arange(n) / frame_rate
    phase = time * speed / stride

    grid = np.arange(_GRID) / _GRID  # one cycle
    variation = {
        c[0]: (1.0 + 0.03 * rng.standard_normal(), 0.5 * rng.standard_normal())
        for c in chain.coordinates
    }

    def coordinates(phase: np.ndarray) -> dict[str, np.ndarray]:
        q: dict[str, np.ndarray] = {}
        for name, default, limits, _ in chain.coordinates:
            value = _pattern(name, phase)
            gain, offset = variation[name]
            if value is None:
                value = np.full(phase.shape, default)
            elif name not in _TRANSLATIONS:
                mean = float(np.mean(_pattern(name, grid)))
                value = mean + gain * (value - mean) + math.radians(offset)
            else:
                value = value * gain * height / 1.75
            lo, hi = (limits[0], limits[1]) if limits.size == 2 else (-np.inf, np.inf)
            q[name] = np.clip(value, lo, hi)
        return q

    q = coordinates(phase)
    if "pelvis_ty" not in q or "pelvis_tx" not in q:
        raise ModelError("synthetic walk: the model has no pelvis_tx or pelvis_ty coordinate")
    q["pelvis_tx"] = speed * time
    # pelvis_ty: minus the lowest foot point over one cycle, then smoothed by keeping the
    # first _HARMONICS harmonics (the raw minimum has kinks where the lowest point switches).
    on_grid = coordinates(grid)
    on_grid["pelvis_ty"] = np.zeros(_GRID)
    coeffs = np.fft.rfft(-chain.lowest_point(on_grid))[: _HARMONICS + 1] / _GRID
    k = np.arange(_HARMONICS + 1)
    waves = np.exp(2j * math.pi * np.outer(phase, k))
    q["pelvis_ty"] = (waves[:, 0] * coeffs[0]).real + 2.0 * (waves[:, 1:] @ coeffs[1:]).real

    names = tuple(c[0] for c in chain.coordinates)
    data = np.stack([q[c] for c in names], axis=1)
    data.flags.writeable = False
    time.flags.writeable = False
    return WalkingTrial(
        time=time,
        coordinate_names=names,
        q=data,
        rotational=tuple(c[3] for c in chain.coordinates),
        cadence=float(cadence),
        speed=float(speed),
    )
