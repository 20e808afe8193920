"""The built-in synthetic walking trial, checked with OpenSim 4.6's own kinematics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from diffbio import FileFormatError, ModelError
from diffbio.data import WalkingTrial, synthetic_walk
from diffbio.data._walking import _pattern
from diffbio.model._default import DEFAULT_COORDINATES, default_model_xml

osim = pytest.importorskip("opensim")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("walk") / "default.osim"
    path.write_text(default_model_xml())
    m = osim.Model(str(path))
    return m, m.initSystem()


@pytest.fixture(scope="module")
def trial():
    return synthetic_walk()


def _frames(model, trial, frames):
    """Yield (frame, state) with the trial's coordinates set in OpenSim and positions realized."""
    m, state = model
    coords = m.getCoordinateSet()
    for k in frames:
        for j, name in enumerate(trial.coordinate_names):
            coords.get(name).setValue(state, float(trial.q[k, j]), False)
        m.realizePosition(state)
        yield k, state


def _spheres(m):
    out = []
    geoms = m.getContactGeometrySet()
    for i in range(geoms.getSize()):
        s = osim.ContactSphere.safeDownCast(geoms.get(i))
        if s is not None:
            out.append((s.getName(), s.getFrame(), s.get_location(), s.getRadius()))
    return out


def test_layout(trial):
    assert isinstance(trial, WalkingTrial)
    assert trial.coordinate_names == DEFAULT_COORDINATES
    assert trial.time.shape == (201,) and trial.q.shape == (201, 21)
    np.testing.assert_allclose(np.diff(trial.time), 0.01, atol=1e-15)
    assert trial.time[0] == 0.0 and trial.speed == 1.3
    # Normal adult cadence at 1.3 m/s: roughly 100-130 steps/min (Perry & Burnfield 2010).
    assert 100.0 < trial.cadence < 130.0
    assert trial.stride_time == pytest.approx(120.0 / trial.cadence)
    assert not trial.q.flags.writeable
    with pytest.raises(AttributeError):
        trial.speed = 2.0


def test_deterministic_given_seed():
    a, b, c = synthetic_walk(seed=3), synthetic_walk(seed=3), synthetic_walk(seed=4)
    np.testing.assert_array_equal(a.q, b.q)
    assert a.cadence == b.cadence
    assert np.abs(a.q - c.q).max() > 1e-3  # a different trial ...
    assert abs(a.cadence / c.cadence - 1.0) < 0.1  # ... of the same walk:
    for j, r in enumerate(a.rotational):
        if r:  # similar mean and range of motion
            assert abs(a.q[:, j].mean() - c.q[:, j].mean()) < math.radians(3.0)
            assert abs(np.ptp(a.q[:, j]) - np.ptp(c.q[:, j])) < 0.15 * np.ptp(a.q[:, j]) + 1e-3


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_inside_model_ranges(model, seed):
    m, _ = model
    tr = synthetic_walk(seed=seed)
    coords = m.getCoordinateSet()
    for j, name in enumerate(tr.coordinate_names):
        c = coords.get(name)
        assert c.getRangeMin() <= tr.q[:, j].min() and tr.q[:, j].max() <= c.getRangeMax(), name


def test_pattern_periodic_and_left_half_a_cycle_later():
    phase = np.linspace(0.0, 1.0, 301)
    for name in DEFAULT_COORDINATES:
        value = _pattern(name, phase)
        if name in ("pelvis_tx", "pelvis_ty"):
            assert value is None
            continue
        np.testing.assert_allclose(_pattern(name, phase + 1.0), value, atol=1e-12)
        # C1 across the cycle boundary: one-sided slopes agree.
        h = 1e-6
        left = (_pattern(name, np.array([1.0])) - _pattern(name, np.array([1.0 - h]))) / h
        right = (_pattern(name, np.array([h])) - _pattern(name, np.array([0.0]))) / h
        np.testing.assert_allclose(left, right, atol=1e-3 * max(1.0, abs(float(left[0]))))
        if name.endswith("_l"):
            np.testing.assert_allclose(value, _pattern(name[:-2] + "_r", phase - 0.5), atol=1e-12)


def test_trial_repeats_every_stride():
    tr = synthetic_walk(duration=2.5, frame_rate=1000.0, seed=5)
    shifted = tr.time[tr.time + tr.stride_time <= tr.time[-1]]
    for j, name in enumerate(tr.coordinate_names):
        later = np.interp(shifted + tr.stride_time, tr.time, tr.q[:, j])
        now = tr.q[: len(shifted), j]
        if name == "pelvis_tx":
            now = now + tr.speed * tr.stride_time
        # Linear interpolation at 1 kHz: error below h^2/8 max|q''| ~ 1e-5.
        np.testing.assert_allclose(later, now, atol=1e-4, err_msg=name)


def test_feet_on_the_floor_and_pelvis_speed(model, trial):
    m, _ = model
    spheres = _spheres(m)
    pelvis = m.getBodySet().get("pelvis")
    lowest, right, left, pelvis_x = [], [], [], []
    frames = range(0, len(trial.time), 2)
    for _, state in _frames(model, trial, frames):
        bottoms = {
            n: f.findStationLocationInGround(state, loc).get(1) - r for n, f, loc, r in spheres
        }
        lowest.append(min(bottoms.values()))
        right.append(min(v for n, v in bottoms.items() if n.endswith("_r")))
        left.append(min(v for n, v in bottoms.items() if n.endswith("_l")))
        pelvis_x.append(pelvis.getPositionInGround(state).get(0))
    # The lowest foot point touches the floor in every frame (pelvis_ty keeps 8 harmonics of
    # the exact contact height: a few millimetres off at most).
    assert np.abs(lowest).max() < 0.01
    # Each foot is on the floor (within 2 cm) in its mid and late stance.
    t = trial.time[list(frames)]
    phase = np.mod(t / trial.stride_time, 1.0)
    r_stance = (phase > 0.15) & (phase < 0.6)
    l_stance = (np.mod(phase - 0.5, 1.0) > 0.15) & (np.mod(phase - 0.5, 1.0) < 0.6)
    assert r_stance.sum() > 10 and l_stance.sum() > 10
    assert np.max(np.array(right)[r_stance]) < 0.02 and np.max(np.array(left)[l_stance]) < 0.02
    # Pelvis vertical excursion of normal walking: a few centimetres.
    ty = trial.q[:, DEFAULT_COORDINATES.index("pelvis_ty")]
    assert 0.01 < ty.max() - ty.min() < 0.08
    # The pelvis advances at the requested speed.
    slope = np.polyfit(t, pelvis_x, 1)[0]
    assert slope == pytest.approx(1.3, abs=1e-9)


def test_speed_and_height_change_the_walk():
    slow, fast = synthetic_walk(speed=0.9), synthetic_walk(speed=1.6)
    assert slow.cadence < fast.cadence
    tall = synthetic_walk(height=1.95)
    ty = DEFAULT_COORDINATES.index("pelvis_ty")
    assert tall.q[:, ty].mean() > synthetic_walk().q[:, ty].mean()
    tx = DEFAULT_COORDINATES.index("pelvis_tx")
    np.testing.assert_allclose(fast.q[:, tx], 1.6 * fast.time, atol=1e-15)


def test_storage_arrays(trial):
    time, labels, data = trial.to_storage_arrays()
    assert labels == DEFAULT_COORDINATES
    np.testing.assert_array_equal(time, trial.time)
    for j, name in enumerate(labels):
        scale = 1.0 if name in ("pelvis_tx", "pelvis_ty", "pelvis_tz") else 180.0 / math.pi
        np.testing.assert_allclose(data[:, j], trial.q[:, j] * scale, rtol=1e-15)
    knee = data[:, labels.index("knee_angle_r")]
    assert -75.0 < knee.min() < -50.0 and knee.max() < 5.0  # swing flexion about 60 deg


def test_bad_inputs():
    with pytest.raises(ModelError, match="speed"):
        synthetic_walk(speed=10.0)
    xml = default_model_xml()
    start = xml.index("<ContactGeometrySet")
    end = xml.index("</ContactGeometrySet>") + len("</ContactGeometrySet>")
    with pytest.raises(ModelError, match="ContactSphere"):
        synthetic_walk(xml[:start] + xml[end:])
    with pytest.raises(FileFormatError, match="not a valid .osim"):
        synthetic_walk("<OpenSimDocument")
