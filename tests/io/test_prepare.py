"""prepare_coordinates: OpenSim InverseDynamicsTool's coordinate preparation, live."""

from __future__ import annotations

import math

import numpy as np
import pytest

from diffbio import FileFormatError
from diffbio.io import Storage, prepare_coordinates, read_storage
from tests.conftest import opensim_data_path

TRANSLATIONS = {"pelvis_tx", "pelvis_ty", "pelvis_tz"}


def _osim_id_pipeline(osim, path, cutoff, rotational, times):
    """What InverseDynamicsTool::run does: pad, lowpassIIR, degrees->radians, GCVSplineSet(5)."""
    s = osim.Storage(str(path))
    s.pad(s.getSize() // 2)
    s.lowpassIIR(cutoff)
    lab = s.getColumnLabels()
    labels = [lab.get(i) for i in range(1, lab.getSize())]
    for j, name in enumerate(labels):
        if name in rotational:
            s.multiplyColumn(j, math.pi / 180.0)
    gs = osim.GCVSplineSet(5, s)
    return [
        np.array([[gs.evaluate(j, o, t) for j in range(len(labels))] for t in times])
        for o in range(3)
    ]


@pytest.mark.parametrize(
    "parts", [("gait2392", "subject01_walk1_ik.mot"), ("gait10dof18musc", "subject01_walk_IK.mot")]
)
def test_matches_opensim_pipeline_at_6hz(parts):
    """Measured (gait10dof18musc, rad): per-column relative error 2.8e-15 (q), 2.8e-13 (qd),
    2.0e-12 (qdd)."""
    osim = pytest.importorskip("opensim")
    path = opensim_data_path(*parts)
    st = read_storage(path)
    rot = set(st.labels) - TRANSLATIONS
    t, q, qd, qdd = prepare_coordinates(st, lowpass_hz=6.0, rotational=rot)
    assert t.shape == (st.n_frames,) and q.shape == (st.n_frames, len(st.labels))
    ref = _osim_id_pipeline(osim, path, 6.0, rot, t)
    for mine, r in zip((q, qd, qdd), ref):
        assert np.abs(mine - r).max() <= 1e-11 * np.abs(r).max()


def test_frame_times_match_opensim_id_output():
    # OpenSim's own ID result for this trial was computed from the 6 Hz filtered,
    # resampled coordinates: its time column is the resampled grid.
    st = read_storage(opensim_data_path("gait10dof18musc", "subject01_walk_IK.mot"))
    ref = read_storage(opensim_data_path("gait10dof18musc", "subject01_walk_ID.sto"))
    t, *_ = prepare_coordinates(st, lowpass_hz=6.0, rotational=set(st.labels) - TRANSLATIONS)
    np.testing.assert_allclose(t, ref.time, rtol=0, atol=5e-9)  # file prints 8 decimals


def test_units_columns_and_range():
    st = read_storage(opensim_data_path("gait2392", "subject01_walk1_ik.mot"))
    cols = ["knee_angle_r", "pelvis_ty"]
    t, q, qd, qdd = prepare_coordinates(
        st, cols, rotational={"knee_angle_r"}, time_range=(1.0, 2.0)
    )
    sl = st.slice_time(1.0, 2.0)
    np.testing.assert_array_equal(t, sl.time)
    np.testing.assert_allclose(q[:, 0], np.deg2rad(sl.column("knee_angle_r")), rtol=1e-15)
    np.testing.assert_array_equal(q[:, 1], sl.column("pelvis_ty"))  # file units, unfiltered
    assert qd.shape == qdd.shape == (sl.n_frames, 2)


def test_errors():
    st = Storage.from_arrays(np.arange(10) * 0.01, ["a", "b"], np.ones((10, 2)), in_degrees=True)
    with pytest.raises(FileFormatError, match=r"column c: storage '' has no column\(s\) 'c'"):
        prepare_coordinates(st, ["a", "c"])
    with pytest.raises(FileFormatError, match="rotational column"):
        prepare_coordinates(st, rotational={"zz"})
    data = np.ones((10, 2))
    data[4, 1] = np.nan
    bad = Storage.from_arrays(np.arange(10) * 0.01, ["a", "b"], data)
    with pytest.raises(FileFormatError, match=r"column b: NaN coordinate value at time 0.04"):
        prepare_coordinates(bad)
