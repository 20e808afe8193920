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
forward kinematics (diffbio.kinematics) so that the lowest ContactSphere of either foot just
touches the floor (y = 0), then kept to its first 8 stride harmonics so that it is smooth
(the exact minimum has kinks where the lowest point switches): the lowest foot point stays
within a few millimetres of the floor (about 3 mm for the default model).

Known simplifications: the stance forefoot slides by up to about 7 cm, right initial contact
lands at about 12 % of the cycle rather than 0 %, and swing toe clearance is under 1 cm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.interpolate import CubicSpline

from diffbio._errors import ModelError
from diffbio.kinematics import body_points, forward_kinematics
from diffbio.model import Model, parse_osim_string

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


def _model_of(xml: str) -> Model:
    model = parse_osim_string(xml, source="<synthetic walk model>")
    if not model.contact_spheres:
        raise ModelError("synthetic walk: the model has no ContactSphere to stand on")
    return model


def _lowest_point(model: Model, q: dict[str, np.ndarray]) -> np.ndarray:
    """Height (T,) [m] of the lowest ContactSphere surface point, by the model's forward
    kinematics."""
    n = len(next(iter(q.values())))
    cols = [q.get(c.name, np.full(n, c.default_value)) for c in model.coordinates]
    qt = torch.tensor(np.stack(cols, -1), dtype=torch.float64)
    body = torch.tensor([model.body_index(s.body) for s in model.contact_spheres])
    centers = torch.tensor([s.location for s in model.contact_spheres], dtype=torch.float64)
    radius = torch.tensor([s.radius for s in model.contact_spheres], dtype=torch.float64)
    with torch.no_grad():
        pts = body_points(forward_kinematics(model, qt), body, centers)
    return (pts[..., 1] - radius).min(-1).values.numpy()


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
    model = _model_of(xml)
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
        c.name: (1.0 + 0.03 * rng.standard_normal(), 0.5 * rng.standard_normal())
        for c in model.coordinates
    }

    def coordinates(phase: np.ndarray) -> dict[str, np.ndarray]:
        q: dict[str, np.ndarray] = {}
        for c in model.coordinates:
            name, default, limits = c.name, c.default_value, c.range
            value = _pattern(name, phase)
            gain, offset = variation[name]
            if value is None:
                value = np.full(phase.shape, default)
            elif name not in _TRANSLATIONS:
                mean = float(np.mean(_pattern(name, grid)))
                value = mean + gain * (value - mean) + math.radians(offset)
            else:
                value = value * gain * height / 1.75
            q[name] = np.clip(value, limits[0], limits[1])
        return q

    q = coordinates(phase)
    if "pelvis_ty" not in q or "pelvis_tx" not in q:
        raise ModelError("synthetic walk: the model has no pelvis_tx or pelvis_ty coordinate")
    q["pelvis_tx"] = speed * time
    # pelvis_ty: minus the lowest foot point over one cycle, then smoothed by keeping the
    # first _HARMONICS harmonics (the raw minimum has kinks where the lowest point switches).
    on_grid = coordinates(grid)
    on_grid["pelvis_ty"] = np.zeros(_GRID)
    coeffs = np.fft.rfft(-_lowest_point(model, on_grid))[: _HARMONICS + 1] / _GRID
    k = np.arange(_HARMONICS + 1)
    waves = np.exp(2j * math.pi * np.outer(phase, k))
    q["pelvis_ty"] = (waves[:, 0] * coeffs[0]).real + 2.0 * (waves[:, 1:] @ coeffs[1:]).real

    names = model.coordinate_names
    data = np.stack([q[c] for c in names], axis=1)
    data.flags.writeable = False
    time.flags.writeable = False
    return WalkingTrial(
        time=time,
        coordinate_names=names,
        q=data,
        rotational=model.rotational_mask,
        cadence=float(cadence),
        speed=float(speed),
    )
