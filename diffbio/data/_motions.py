"""Parametric motions for the synthetic training data: walking, running, squats, sit-to-stand,
jumps and trunk movements, with random inter-trial variation; any ``.mot`` file as well.

Angles follow OpenSim's gait2392 signs as the default model does (hip flexion, adduction and
internal rotation positive, knee flexion negative, ankle dorsiflexion positive, lumbar
flexion negative). Every motion returns coordinates ``(T, Q)`` in model order; coordinates a
motion does not drive keep their default value, and every value is clipped to its range.
``pelvis_ty`` is left for :func:`diffbio.data.synthetic_dataset` to set by ground contact on
the scaled subject; ``vertical_offset`` (``(T,)`` [m], zero except for flight phases) is added
on top of it. The built-in default model has no arms (the torso carries them), so "arm
movements" of the reference design become trunk movements here.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from diffbio._errors import ModelError
from diffbio.model import Model

__all__ = ["MOTIONS", "Motion", "motion_from_storage", "parametric_motion"]

MOTIONS: tuple[str, ...] = ("walk", "run", "squat", "sit_to_stand", "jump", "trunk")
"""Names of the parametric motions."""

_D = math.pi / 180.0


@dataclass(frozen=True, eq=False)
class Motion:
    """A motion for one subject: ``q: (T, Q) [rad or m]`` (``pelvis_ty`` still to be set by
    ground contact), ``vertical_offset: (T,) [m]`` added after contact (flight), ``kind``."""

    q: np.ndarray
    vertical_offset: np.ndarray
    kind: str


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _bell(x: np.ndarray) -> np.ndarray:
    """0 -> 1 -> 0 over x in [0, 1], smooth (1 - cos)."""
    return 0.5 * (1.0 - np.cos(2.0 * math.pi * np.clip(x, 0.0, 1.0)))


def _run(t: np.ndarray, rng: np.random.Generator) -> tuple[dict, np.ndarray]:
    speed = rng.uniform(2.2, 3.2)
    f = rng.uniform(1.3, 1.6)  # strides per second
    ph = 2.0 * math.pi * f * t + rng.uniform(0, 2 * math.pi)
    a = 1.0 + 0.1 * rng.standard_normal(4)
    q: dict[str, np.ndarray] = {"pelvis_tx": speed * t}
    for side, shift in (("_r", 0.0), ("_l", math.pi)):
        p = ph + shift
        q["hip_flexion" + side] = (20 + 35 * a[0] * np.sin(p)) * _D
        q["knee_angle" + side] = (-60 - 45 * a[1] * np.sin(p + 1.2) - 15 * np.sin(2 * p)) * _D
        q["ankle_angle" + side] = (5 + 18 * a[2] * np.sin(p - 0.8)) * _D
        q["hip_adduction" + side] = (4 * np.sin(p + 0.5)) * _D
    q["lumbar_extension"] = (-8 + 3 * np.sin(2 * ph)) * _D
    q["pelvis_tilt"] = (-8 + 3 * np.sin(2 * ph)) * _D
    q["pelvis_rotation"] = 8 * a[3] * np.sin(ph) * _D
    q["lumbar_rotation"] = -8 * np.sin(ph) * _D
    return q, np.zeros_like(t)


def _squat_pose(depth: np.ndarray, rng: np.random.Generator) -> dict:
    hip, knee, ankle, trunk = (
        rng.uniform(80, 110),
        rng.uniform(90, 120),
        rng.uniform(15, 25),
        rng.uniform(10, 35),
    )
    abd = rng.uniform(-10, 0)
    q: dict[str, np.ndarray] = {}
    for side in ("_r", "_l"):
        q["hip_flexion" + side] = hip * depth * _D
        q["knee_angle" + side] = -knee * depth * _D
        q["ankle_angle" + side] = ankle * depth * _D
        q["hip_adduction" + side] = abd * depth * _D
    q["lumbar_extension"] = -trunk * depth * _D
    return q


def _squat(t: np.ndarray, rng: np.random.Generator) -> tuple[dict, np.ndarray]:
    period = rng.uniform(1.5, 3.0)
    depth = _bell(np.mod(t / period + rng.uniform(0, 1), 1.0))
    return _squat_pose(depth * rng.uniform(0.6, 1.0), rng), np.zeros_like(t)


def _sit_to_stand(t: np.ndarray, rng: np.random.Generator) -> tuple[dict, np.ndarray]:
    t0, dur = rng.uniform(0.1, 0.6), rng.uniform(0.8, 1.5)
    depth = 1.0 - _smoothstep((t - t0) / dur)
    q = _squat_pose(depth, rng)
    lean = rng.uniform(20, 40) * _bell((t - t0 + 0.2) / (dur * 0.8))
    q["lumbar_extension"] = q["lumbar_extension"] - lean * _D
    return q, np.zeros_like(t)


def _jump(t: np.ndarray, rng: np.random.Generator) -> tuple[dict, np.ndarray]:
    t0 = rng.uniform(0.1, 0.5)
    crouch = rng.uniform(0.4, 0.6)
    v0 = rng.uniform(1.5, 2.5)  # take-off speed [m/s]
    flight = 2.0 * v0 / 9.81
    dip = _bell((t - t0) / crouch) * rng.uniform(0.5, 0.8)
    land = t0 + crouch + flight
    dip = dip + _bell((t - land) / 0.5) * rng.uniform(0.3, 0.6)
    q = _squat_pose(dip, rng)
    tf = t - (t0 + crouch)
    in_air = (tf > 0) & (tf < flight)
    extend = np.where(in_air, np.sin(math.pi * np.clip(tf / flight, 0, 1)), 0.0)
    for side in ("_r", "_l"):
        q["ankle_angle" + side] = q["ankle_angle" + side] - 25 * _D * extend
    up = np.where(in_air, v0 * tf - 0.5 * 9.81 * tf**2, 0.0)
    return q, up


def _trunk(t: np.ndarray, rng: np.random.Generator) -> tuple[dict, np.ndarray]:
    q: dict[str, np.ndarray] = {}
    for name, amp in (("lumbar_bending", 25), ("lumbar_rotation", 30), ("lumbar_extension", 30)):
        f = rng.uniform(0.3, 0.8)
        q[name] = (
            rng.uniform(0.3, 1.0) * amp * np.sin(2 * math.pi * f * t + rng.uniform(0, 6.3)) * _D
        )
    q["lumbar_extension"] = q["lumbar_extension"] - 10 * _D
    for side in ("_r", "_l"):
        q["hip_flexion" + side] = 5 * _D * np.ones_like(t)
        q["knee_angle" + side] = -5 * _D * np.ones_like(t)
    return q, np.zeros_like(t)


@functools.lru_cache(maxsize=32)
def _walk_template(frame_rate: float, k: int) -> tuple[tuple[str, ...], np.ndarray]:
    """A 6 s walking trial at the k-th of :data:`_WALK_TEMPLATES` speeds (0.9-1.7 m/s),
    cached: :func:`synthetic_walk` takes most of a second per call."""
    from diffbio.data._walking import synthetic_walk

    speed = 0.9 + 0.8 * k / max(_WALK_TEMPLATES - 1, 1)
    trial = synthetic_walk(duration=6.0, frame_rate=frame_rate, speed=speed, seed=k)
    return trial.coordinate_names, trial.q


_WALK_TEMPLATES = 6


def _walk(model: Model, t: np.ndarray, rng: np.random.Generator) -> tuple[dict, np.ndarray]:
    fr = 1.0 / float(t[1] - t[0]) if t.size > 1 else 100.0
    names, data = _walk_template(round(fr, 6), int(rng.integers(_WALK_TEMPLATES)))
    n = t.size
    start = int(rng.integers(max(1, data.shape[0] - n + 1)))
    window = data[start : start + n]
    if window.shape[0] < n:
        window = np.concatenate([window, np.repeat(window[-1:], n - window.shape[0], 0)])
    gain = 1.0 + 0.05 * rng.standard_normal(len(names))
    q = {}
    for k, name in enumerate(names):
        if name not in model.coordinate_names or name == "pelvis_ty":
            continue
        col = window[:, k]
        q[name] = col if name.startswith("pelvis_t") else col.mean() + gain[k] * (col - col.mean())
    return q, np.zeros_like(t)


_GENERATORS = {
    "run": _run,
    "squat": _squat,
    "sit_to_stand": _sit_to_stand,
    "jump": _jump,
    "trunk": _trunk,
}


def parametric_motion(
    model: Model, kind: str, num_frames: int, frame_rate: float, rng: np.random.Generator | int
) -> Motion:
    """One random trial of motion ``kind`` (one of :data:`MOTIONS`) for ``model``.

    Returns a :class:`Motion` with ``num_frames`` frames at ``frame_rate`` [Hz]; deterministic
    given ``rng`` (a Generator or a seed). A small random heading (``pelvis_rotation`` offset,
    +- 10 deg) and start position are added to non-locomotion motions.
    """
    rng = np.random.default_rng(rng) if isinstance(rng, int) else rng
    if kind not in MOTIONS:
        raise ModelError(f"unknown motion {kind!r}; choose from {', '.join(MOTIONS)}")
    t = np.arange(num_frames) / frame_rate
    if kind == "walk":
        values, up = _walk(model, t, rng)
    else:
        values, up = _GENERATORS[kind](t, rng)
    if kind not in ("walk", "run"):
        values["pelvis_rotation"] = (
            values.get("pelvis_rotation", 0.0 * t) + rng.uniform(-10, 10) * _D
        )
        values["pelvis_tx"] = values.get("pelvis_tx", 0.0 * t) + rng.uniform(-0.3, 0.3)
    else:
        values["pelvis_tx"] = values["pelvis_tx"] - 0.5 * float(values["pelvis_tx"][-1])
    values["pelvis_tz"] = values.get("pelvis_tz", 0.0 * t) + rng.uniform(-0.2, 0.2)
    return Motion(q=_assemble(model, values, num_frames), vertical_offset=up, kind=kind)


def _assemble(model: Model, values: dict, n: int) -> np.ndarray:
    cols = []
    for c in model.coordinates:
        v = np.broadcast_to(np.asarray(values.get(c.name, c.default_value), float), (n,))
        cols.append(np.clip(v, c.range[0], c.range[1]))
    return np.stack(cols, -1)


def motion_from_storage(model: Model, path, frame_rate: float | None = None) -> Motion:
    """A :class:`Motion` from an OpenSim ``.mot``/``.sto`` file (its ``pelvis_ty`` is kept,
    resampled to ``frame_rate`` [Hz] by linear interpolation when given)."""
    from diffbio.io import read_storage
    from diffbio.kinematics import coordinates_from_storage

    time, q = coordinates_from_storage(model, read_storage(path), source=str(path))
    q = q.detach().cpu().numpy().astype(float)
    time = np.asarray(time, float)
    if frame_rate is not None and time.size > 1:
        tt = np.arange(time[0], time[-1] + 1e-9, 1.0 / frame_rate)
        q = np.stack([np.interp(tt, time, q[:, k]) for k in range(q.shape[1])], -1)
    return Motion(q=q, vertical_offset=np.zeros(q.shape[0]), kind="file")
