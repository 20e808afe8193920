"""Storage .sto/.mot reading and writing, checked against OpenSim 4.6 live."""

from __future__ import annotations

import numpy as np
import pytest

from diffbio import FileFormatError
from diffbio.io import Storage, read_storage, write_storage
from tests.conftest import opensim_data_path

IK = ("gait2392", "subject01_walk1_ik.mot")
GRF = ("gait2392", "subject01_walk1_grf.mot")
ID = ("gait10dof18musc", "subject01_walk_ID.sto")


def _osim_table(osim, path):
    """(time, labels, data) of ``opensim.Storage(path)``."""
    s = osim.Storage(str(path))
    t = osim.ArrayDouble()
    s.getTimeColumn(t)
    time = np.array([t.get(i) for i in range(t.getSize())])
    lab = s.getColumnLabels()
    labels = [lab.get(i) for i in range(1, lab.getSize())]
    data = np.zeros((time.size, len(labels)))
    for j in range(len(labels)):
        col = osim.ArrayDouble()
        s.getDataColumn(j, col)
        data[:, j] = [col.get(i) for i in range(col.getSize())]
    return s, time, labels, data


@pytest.mark.parametrize("parts", [IK, GRF, ID, ("gait10dof18musc", "subject01_walk_IK.mot")])
def test_read_matches_opensim(parts):
    osim = pytest.importorskip("opensim")
    path = opensim_data_path(*parts)
    st = read_storage(path)
    s, time, labels, data = _osim_table(osim, path)
    assert st.labels == tuple(labels)
    assert st.in_degrees == s.isInDegrees()
    assert st.name == s.getName()
    np.testing.assert_array_equal(st.time, time)
    np.testing.assert_array_equal(st.data, data)


def test_header_fields_and_access():
    st = read_storage(opensim_data_path(*IK))
    assert st.name == "Coordinates" and st.in_degrees
    assert st.n_frames == 211 and len(st.labels) == 23
    assert st.time[0] == 0.5 and st.time[-1] == 4.0
    assert "Angles are in degrees." in st.comments
    knee = st.column("knee_angle_r")
    assert knee.shape == (211,)
    two = st.columns(["knee_angle_r", "pelvis_tx"])
    np.testing.assert_array_equal(two[:, 0], knee)
    sl = st.slice_time(1.0, 2.0)
    assert sl.time[0] >= 1.0 and sl.time[-1] <= 2.0 and sl.data.shape == (sl.n_frames, 23)
    sub = st.with_columns(["pelvis_ty"])
    assert sub.labels == ("pelvis_ty",) and sub.data.shape == (211, 1)
    with pytest.raises(KeyError, match="no_such"):
        st.column("no_such")
    with pytest.raises(ValueError):
        st.data[0, 0] = 1.0  # frozen arrays


def test_round_trip_exact(tmp_path):
    rng = np.random.default_rng(0)
    t = np.cumsum(rng.uniform(0.001, 0.01, 50))
    data = rng.normal(size=(50, 4)) * 10.0 ** rng.integers(-8, 8, size=(1, 4))
    data[3, 2] = np.nan
    st = Storage.from_arrays(t, ["a", "b", "c d", "e"], data, in_degrees=True, name="test")
    st = Storage(st.name, st.time, st.labels, st.data, True, {"DataType": "double"}, ("hello",))
    out = write_storage(tmp_path / "x.sto", st)
    back = read_storage(out)
    assert back.name == "test" and back.labels == st.labels and back.in_degrees
    assert back.header == {"DataType": "double"} and back.comments == ("hello",)
    np.testing.assert_array_equal(back.time, t)
    np.testing.assert_array_equal(back.data, data)  # assert_array_equal treats NaN == NaN
    assert np.isnan(back.data[3, 2])


def test_written_file_read_by_opensim(tmp_path):
    osim = pytest.importorskip("opensim")
    st = read_storage(opensim_data_path(*IK))
    out = write_storage(tmp_path / "ik.mot", st)
    s, time, labels, data = _osim_table(osim, out)
    assert tuple(labels) == st.labels and s.isInDegrees() and s.getName() == "Coordinates"
    np.testing.assert_array_equal(time, st.time)
    np.testing.assert_array_equal(data, st.data)
    table = osim.TimeSeriesTable(str(out))
    assert table.getNumRows() == 211 and table.getNumColumns() == 23
    assert tuple(table.getColumnLabels()) == st.labels
    np.testing.assert_array_equal(np.array(table.getIndependentColumn()), st.time)
    np.testing.assert_array_equal(table.getMatrix().to_numpy(), st.data)
    assert table.getTableMetaDataString("inDegrees") == "yes"


def test_old_dialect_and_missing_indegrees(tmp_path):
    p = tmp_path / "old.mot"
    p.write_text(
        "walk\ndatacolumns 3\ndatarows 2\nrange 0 0.01\nendheader\n"
        "time  q1  q2\n0.0  1.0  2.0\n0.01 1.5 2.5\n"
    )
    st = read_storage(p)
    assert st.name == "walk" and st.labels == ("q1", "q2") and not st.in_degrees
    assert st.header == {"range": "0 0.01"}
    np.testing.assert_array_equal(st.data, [[1.0, 2.0], [1.5, 2.5]])
    p2 = tmp_path / "v1.sto"
    p2.write_text("name\nversion=1\nnRows=1\nnColumns=2\nendheader\ntime\tx\n0\t3\n")
    st2 = read_storage(p2)
    assert not st2.in_degrees and st2.data.shape == (1, 1)


def _write(tmp_path, body: str):
    p = tmp_path / "bad.sto"
    p.write_text(body)
    return p


HEAD = "bad\nversion=1\ninDegrees=no\nendheader\n"


def test_error_no_endheader(tmp_path):
    p = _write(tmp_path, "bad\nversion=1\ntime\tx\n0\t1\n")
    with pytest.raises(FileFormatError, match="endheader") as e:
        read_storage(p)
    assert str(p) in str(e.value)


def test_error_wrong_number_of_values(tmp_path):
    p = _write(tmp_path, HEAD + "time\tx\ty\n0\t1\t2\n0.1\t1\n")
    with pytest.raises(FileFormatError, match=r"line 7: row has 2 values, expected 3") as e:
        read_storage(p)
    assert e.value.line == 7 and str(p) in str(e.value)


def test_error_non_numeric(tmp_path):
    p = _write(tmp_path, HEAD + "time\tx\ty\n0\t1\t2\n0.1\t1\tabc\n")
    with pytest.raises(FileFormatError, match=r"line 7, column y: non-numeric value 'abc'"):
        read_storage(p)


def test_error_nan_when_not_allowed(tmp_path):
    p = _write(tmp_path, HEAD + "time\tx\ty\n0\t1\t2\n0.1\tnan\t2\n")
    assert np.isnan(read_storage(p).data[1, 0])  # allowed by default
    with pytest.raises(FileFormatError, match=r"line 7, column x: NaN value at time 0.1"):
        read_storage(p, allow_nan=False)


def test_error_duplicate_columns(tmp_path):
    p = _write(tmp_path, HEAD + "time\tx\tx\n0\t1\t2\n")
    with pytest.raises(FileFormatError, match=r"line 5, column x: duplicate column name 'x'"):
        read_storage(p)
    with pytest.raises(FileFormatError, match="duplicate"):
        Storage.from_arrays([0.0], ["a", "a"], [[1.0, 2.0]])


def test_error_non_monotonic_time(tmp_path):
    p = _write(tmp_path, HEAD + "time\tx\n0\t1\n0.2\t2\n0.1\t3\n")
    with pytest.raises(FileFormatError, match=r"line 8, column time: time is not strictly"):
        read_storage(p)


def test_error_header_counts(tmp_path):
    p = _write(tmp_path, "bad\nnRows=3\nnColumns=2\nendheader\ntime\tx\n0\t1\n0.1\t2\n")
    with pytest.raises(FileFormatError, match="nRows=3 but the table has 2 rows"):
        read_storage(p)
    p = _write(tmp_path, "bad\nnColumns=3\nendheader\ntime\tx\n0\t1\n")
    with pytest.raises(FileFormatError, match="nColumns=3"):
        read_storage(p)


def test_missing_file(tmp_path):
    with pytest.raises(FileFormatError, match="no such file"):
        read_storage(tmp_path / "nope.sto")
