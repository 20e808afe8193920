""".trc marker files, checked against OpenSim 4.6's TRCFileAdapter and MarkerData live."""

from __future__ import annotations

import numpy as np
import pytest

from diffbio import FileFormatError
from diffbio.io import read_trc
from tests.conftest import opensim_data_path

WALK = ("gait2392", "subject01_walk1.trc")
STATIC = ("gait2392", "subject01_static.trc")


def _osim_markers(osim, path):
    table = osim.TimeSeriesTableVec3(str(path))
    T, K = table.getNumRows(), table.getNumColumns()
    flat = table.flatten()  # keep the flattened table alive while its matrix is read
    pos = flat.getMatrix().to_numpy().reshape(T, K, 3)
    return table, np.array(table.getIndependentColumn()), tuple(table.getColumnLabels()), pos


@pytest.mark.parametrize("parts", [WALK, STATIC, ("gait10dof18musc", "subject01_walk.trc")])
def test_read_matches_opensim(parts):
    osim = pytest.importorskip("opensim")
    path = opensim_data_path(*parts)
    m = read_trc(path)
    table, time, names, pos_mm = _osim_markers(osim, path)
    assert m.names == names and m.units == table.getTableMetaDataString("Units") == "mm"
    assert m.data_rate == float(table.getTableMetaDataString("DataRate"))
    np.testing.assert_array_equal(m.time, time)
    np.testing.assert_allclose(m.positions, pos_mm * 1e-3, rtol=1e-15, atol=0)
    md = osim.MarkerData(str(path))
    md.convertToUnits(osim.Units("m"))
    assert (md.getNumFrames(), md.getNumMarkers()) == m.positions.shape[:2]
    first = np.array([[md.getFrame(0).getMarker(k).get(c) for c in range(3)] for k in range(3)])
    np.testing.assert_allclose(m.positions[0, :3], first, rtol=1e-15, atol=0)


def test_shapes_and_units():
    m = read_trc(opensim_data_path(*WALK))
    assert m.positions.shape == (151, 41, 3) and m.time.shape == (151,)
    assert m.frame_numbers[0] == 1 and m.time[1] == pytest.approx(0.017)
    # R.ASIS at frame 1 is 617.24762 mm in the file
    assert m.marker("R.ASIS")[0, 0] == pytest.approx(0.61724762, abs=1e-12)
    with pytest.raises(KeyError):
        m.marker("nope")


def _synthetic(tmp_path, unit="mm", rows=None, n_markers=2, n_frames=3):
    rows = rows or [
        "1\t0.00\t1\t2\t3\t4\t5\t6",
        "2\t0.01\t\t\t\t4\t5\t6",  # marker A missing
        "3\t0.02\t1\t2\t3\t4\t\t6",  # one missing coordinate of B
    ]
    text = (
        "PathFileType\t4\t(X/Y/Z)\tx.trc\n"
        "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame\tOrigNumFrames\n"
        f"100\t100\t{n_frames}\t{n_markers}\t{unit}\t100\t1\t{n_frames}\n"
        "Frame#\tTime\tA\t\t\tB\t\t\n"
        "\t\tX1\tY1\tZ1\tX2\tY2\tZ2\n\n" + "\n".join(rows) + "\n"
    )
    p = tmp_path / "x.trc"
    p.write_text(text)
    return p


def test_missing_samples_are_nan_like_opensim(tmp_path):
    osim = pytest.importorskip("opensim")
    p = _synthetic(tmp_path)
    m = read_trc(p)
    # one empty cell makes the whole marker sample missing, as in OpenSim
    assert np.isnan(m.positions[1, 0]).all() and np.isnan(m.positions[2, 1]).all()
    assert np.isnan(m.positions).sum() == 6
    np.testing.assert_array_equal(m.positions[0], [[1e-3, 2e-3, 3e-3], [4e-3, 5e-3, 6e-3]])
    _, _, _, pos = _osim_markers(osim, p)
    np.testing.assert_array_equal(np.isnan(pos), np.isnan(m.positions))
    np.testing.assert_allclose(m.positions, pos * 1e-3, rtol=1e-15)


def test_short_rows_are_padded_with_nan(tmp_path):
    # More lenient than OpenSim 4.6 (which rejects the row): cells missing at the end of a
    # row are missing samples.
    rows = ["1\t0.00\t1\t2\t3\t4\t5\t6", "2\t0.01\t1\t2\t3", "3\t0.02\t1\t2\t3\t4\t5\t6"]
    m = read_trc(_synthetic(tmp_path, rows=rows))
    assert np.isnan(m.positions[1, 1]).all() and not np.isnan(m.positions[1, 0]).any()


@pytest.mark.parametrize(("unit", "scale"), [("mm", 1e-3), ("cm", 1e-2), ("m", 1.0)])
def test_unit_conversion(tmp_path, unit, scale):
    m = read_trc(_synthetic(tmp_path, unit=unit))
    assert m.units == unit
    np.testing.assert_allclose(m.positions[0, 1], np.array([4.0, 5.0, 6.0]) * scale, rtol=1e-15)


def test_error_unknown_unit(tmp_path):
    p = _synthetic(tmp_path, unit="inch")
    with pytest.raises(FileFormatError, match=r"line 3, column Units: unknown length unit 'inch'"):
        read_trc(p)


def test_error_counts_and_values(tmp_path):
    with pytest.raises(FileFormatError, match="NumMarkers=3 but line 4 names 2 markers"):
        read_trc(_synthetic(tmp_path, n_markers=3))
    with pytest.raises(FileFormatError, match="NumFrames=4 but the file has 3 rows"):
        read_trc(_synthetic(tmp_path, n_frames=4))
    bad = ["1\t0.00\t1\t2\t3\t4\tx\t6", "2\t0.01\t1\t2\t3\t4\t5\t6", "3\t0.02\t1\t2\t3\t4\t5\t6"]
    with pytest.raises(FileFormatError, match=r"line 7, column B.Y: non-numeric value 'x'"):
        read_trc(_synthetic(tmp_path, rows=bad))
    long = ["1\t0.00\t1\t2\t3\t4\t5\t6\t7", "2\t0.01\t1\t2\t3\t4\t5\t6", "3\t0.02\t1\t2\t3"]
    with pytest.raises(FileFormatError, match=r"line 7: row has 9 values"):
        read_trc(_synthetic(tmp_path, rows=long))
