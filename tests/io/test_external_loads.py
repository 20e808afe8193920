"""ExternalLoads xml + force .mot, checked against OpenSim 4.6 live."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from diffbio import FileFormatError
from diffbio.io import ExternalLoads, read_external_loads, read_storage, write_external_loads
from tests.conftest import opensim_data_path

XML2392 = ("gait2392", "subject01_walk1_grf.xml")
XML10 = ("gait10dof18musc", "subject01_walk_grf.xml")
MODEL10 = ("gait10dof18musc", "subject01.osim")


@pytest.mark.parametrize("parts", [XML2392, XML10])
def test_read_shared(parts):
    loads = read_external_loads(opensim_data_path(*parts))
    assert loads.bodies() == ("calcn_r", "calcn_l")
    assert loads.time.shape == (1501,) and loads.data_path.name.endswith("_grf.mot")
    right, left = loads.forces
    assert right.columns == tuple(
        f"ground_{k}{c}" for k in ("force_v", "force_p", "torque_") for c in "xyz"
    )
    assert left.columns[0] == "1_ground_force_vx" and left.columns[-1] == "1_ground_torque_z"
    assert right.force_expressed_in_body == right.point_expressed_in_body == "ground"
    st = read_storage(loads.data_path)
    np.testing.assert_array_equal(
        right.force, st.columns(["ground_force_vx", "ground_force_vy", "ground_force_vz"])
    )
    np.testing.assert_array_equal(
        left.point, st.columns(["1_ground_force_px", "1_ground_force_py", "1_ground_force_pz"])
    )
    np.testing.assert_array_equal(
        left.torque, st.columns(["1_ground_torque_x", "1_ground_torque_y", "1_ground_torque_z"])
    )
    assert right.force.shape == right.point.shape == right.torque.shape == (1501, 3)


def _osim_loads_on_model(osim, xml):
    osim.Logger.setLevelString("error")
    model = osim.Model(str(opensim_data_path(*MODEL10)))
    ol = osim.ExternalLoads(str(xml), True)
    model.addModelComponent(ol)
    model.initSystem()
    return model, ol


def _osim_eval(ef, times):
    f = np.array([[ef.getForceAtTime(t).get(k) for k in range(3)] for t in times])
    p = np.array([[ef.getPointAtTime(t).get(k) for k in range(3)] for t in times])
    q = np.array([[ef.getTorqueAtTime(t).get(k) for k in range(3)] for t in times])
    return f, p, q


def test_interpolation_matches_opensim():
    osim = pytest.importorskip("opensim")
    xml = opensim_data_path(*XML10)
    loads = read_external_loads(xml)
    _, ol = _osim_loads_on_model(osim, xml)
    times = np.linspace(0.05, 2.45, 29) + 1e-4  # between samples
    mine = loads.at(times)
    for i, f in enumerate(mine):
        F, P, Q = _osim_eval(ol.get(i), times)
        np.testing.assert_allclose(f.force, F, rtol=0, atol=1e-12 * np.abs(F).max())
        np.testing.assert_allclose(f.point, P, rtol=0, atol=1e-13)
        np.testing.assert_allclose(f.torque, Q, rtol=0, atol=1e-12 * np.abs(Q).max())


def test_write_read_back_by_opensim(tmp_path):
    osim = pytest.importorskip("opensim")
    loads = read_external_loads(opensim_data_path(*XML2392))
    xml, mot = tmp_path / "out_grf.xml", tmp_path / "out_grf.mot"
    write_external_loads(xml, mot, loads)
    back = read_external_loads(xml)
    assert back.bodies() == loads.bodies()
    for a, b in zip(loads.forces, back.forces):
        assert (a.name, a.force_identifier, a.point_identifier) == (
            b.name,
            b.force_identifier,
            b.point_identifier,
        )
        for arr in ("force", "point", "torque"):
            np.testing.assert_array_equal(getattr(a, arr), getattr(b, arr))
    _, ol = _osim_loads_on_model(osim, xml)
    assert ol.getSize() == 2 and ol.getDataFileName() == "out_grf.mot"
    assert [ol.get(i).get_applied_to_body() for i in range(2)] == ["calcn_r", "calcn_l"]
    idx = np.arange(10, 1500, 97)
    for i, f in enumerate(loads.forces):
        F, P, Q = _osim_eval(ol.get(i), loads.time[idx])  # at the samples: the data itself
        np.testing.assert_allclose(F, f.force[idx], rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(P, f.point[idx], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(Q, f.torque[idx], rtol=1e-12, atol=1e-9)


def test_data_file_override_and_missing(tmp_path):
    src = opensim_data_path(*XML2392)
    xml = tmp_path / "grf.xml"
    shutil.copy(src, xml)  # a temporary copy whose <datafile> does not exist next to it
    with pytest.raises(
        FileFormatError, match="force data file 'subject01_walk1_grf.mot'|not found"
    ) as e:
        read_external_loads(xml)
    assert str(xml) in str(e.value)
    loads = read_external_loads(xml, data_file=src.parent / "subject01_walk1_grf.mot")
    assert isinstance(loads, ExternalLoads) and len(loads.forces) == 2


def _small(tmp_path, labels, rows, force_id="ground_force_v"):
    mot = tmp_path / "f.mot"
    mot.write_text(
        "f\nversion=1\nendheader\n"
        + "\t".join(["time", *labels])
        + "\n"
        + "\n".join("\t".join(str(v) for v in r) for r in rows)
        + "\n"
    )
    xml = tmp_path / "f.xml"
    xml.write_text(
        '<OpenSimDocument Version="40000"><ExternalLoads name="x"><objects>'
        f'<ExternalForce name="r"><applied_to_body>calcn_r</applied_to_body>'
        f"<force_expressed_in_body>ground</force_expressed_in_body>"
        f"<point_expressed_in_body>ground</point_expressed_in_body>"
        f"<force_identifier>{force_id}</force_identifier><point_identifier>ground_force_p</point_identifier>"
        "<torque_identifier></torque_identifier></ExternalForce></objects>"
        "<datafile>f.mot</datafile></ExternalLoads></OpenSimDocument>"
    )
    return xml


def test_errors_missing_columns_and_nan(tmp_path):
    good = [
        "ground_force_vx",
        "ground_force_vy",
        "ground_force_vz",
        "ground_force_px",
        "ground_force_py",
        "ground_force_pz",
    ]
    rows = [[0.0, 1, 2, 3, 0.1, 0, 0.2], [0.01, 1, 2, 3, 0.1, 0, 0.2]]
    loads = read_external_loads(_small(tmp_path, good, rows))
    assert loads.forces[0].torque is None and loads.forces[0].point.shape == (2, 3)
    xml = _small(tmp_path, good[:2] + good[3:], [r[:3] + r[4:] for r in rows])
    with pytest.raises(
        FileFormatError,
        match=r"column ground_force_v: .*force identifier 'ground_force_v' must match exactly 3 columns.*found ground_force_vx, ground_force_vy",
    ):
        read_external_loads(xml)
    rows[1][2] = float("nan")
    xml = _small(tmp_path, good, rows)
    with pytest.raises(
        FileFormatError, match=r"f.mot, column ground_force_vy: NaN force value at time 0.01"
    ):
        read_external_loads(xml)
    assert np.isnan(read_external_loads(xml, allow_nan=True).forces[0].force[1, 1])
