"""External loads to body wrenches, the ``diffbio id`` command and its error cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffbio import DiffbioError, FileFormatError, ModelError
from diffbio.cli import main
from diffbio.dynamics import PointLoad, body_wrenches, wrenches_from_external_loads
from diffbio.io import read_external_loads, read_storage
from diffbio.kinematics import forward_kinematics
from diffbio.model import load_osim
from tests.conftest import opensim_data_path


def _g10(*parts):
    return opensim_data_path("gait10dof18musc", *parts)


def test_cli_reproduces_opensim_result(tmp_path):
    out = tmp_path / "id.sto"
    args = ["id", str(_g10("subject01.osim")), "--motion", str(_g10("subject01_walk_IK.mot"))]
    args += ["--loads", str(_g10("subject01_walk_grf.xml")), "--lowpass", "6", "--out", str(out)]
    assert main(args) == 0
    ours, ref = read_storage(out), read_storage(_g10("subject01_walk_ID.sto"))
    assert set(ref.labels) <= set(ours.labels)
    peak = np.abs(ref.data).max(0)
    rel = np.abs(ours.columns(ref.labels) - ref.data).max(0) / peak
    assert rel.max() < 0.01  # acceptance: within 1% of each coordinate's peak (measured 2e-6)


def test_point_expressed_in_body_and_torque():
    model = load_osim(_g10("subject01.osim"))
    q = torch.zeros(model.num_coordinates, dtype=torch.float64)
    q[model.coordinate_index("hip_flexion_r")] = 0.4
    poses = forward_kinematics(model, q)
    b = model.body_index("calcn_r")
    R, p = poses.rotation[b], poses.translation[b]
    f_local = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    pt_local = torch.tensor([0.1, 0.0, 0.02], dtype=torch.float64)
    w = body_wrenches(
        model, poses, [PointLoad("calcn_r", f_local, pt_local, f_local, "calcn_r", "calcn_r")]
    )
    torch.testing.assert_close(w.force[b], R @ f_local)
    torch.testing.assert_close(
        w.moment_about_origin()[b], torch.linalg.cross(p + R @ pt_local, R @ f_local) + R @ f_local
    )


def test_unknown_body_is_named():
    model = load_osim(_g10("subject01.osim"))
    poses = forward_kinematics(model, torch.zeros(model.num_coordinates, dtype=torch.float64))
    with pytest.raises(ModelError, match="'foot_r'"):
        body_wrenches(
            model, poses, [PointLoad("foot_r", torch.zeros(3, dtype=torch.float64), None, None)]
        )


def test_time_outside_loads_and_nan(tmp_path):
    model = load_osim(_g10("subject01.osim"))
    loads = read_external_loads(_g10("subject01_walk_grf.xml"))
    q = torch.zeros(2, model.num_coordinates, dtype=torch.float64)
    with pytest.raises(DiffbioError, match="time range must lie within the loads"):
        wrenches_from_external_loads(model, loads, q, np.array([2.0, 3.0]))
    xml = tmp_path / "grf.xml"
    text = _g10("subject01_walk_grf.xml").read_text()
    mot = _g10("subject01_walk_grf.mot").read_text().splitlines()
    hdr = next(i for i, line in enumerate(mot) if line.strip() == "endheader") + 2
    row = mot[hdr + 3].split("\t")
    row[1] = "NaN"
    mot[hdr + 3] = "\t".join(row)
    (tmp_path / "subject01_walk_grf.mot").write_text("\n".join(mot) + "\n")
    xml.write_text(text)
    try:
        bad = read_external_loads(xml)
    except FileFormatError as exc:  # the reader may refuse NaN forces itself
        assert "ground_force_vx" in str(exc)
        return
    with pytest.raises(FileFormatError, match="NaN"):
        wrenches_from_external_loads(model, bad, q, np.array([0.0, 0.01]))


@pytest.mark.parametrize(
    "edit, extra, message",
    [
        (("calcn_r", "talus_x"), [], "talus_x"),
        (("ground_force_v<", "ground_force_q<"), [], "ground_force_q"),
        (None, ["--time", "5", "6"], "does not overlap"),
    ],
)
def test_cli_errors(tmp_path, capsys, edit, extra, message):
    text = _g10("subject01_walk_grf.xml").read_text()
    if edit:
        text = text.replace(*edit)
    xml = tmp_path / "grf.xml"
    xml.write_text(
        text.replace(
            "<datafile>subject01_walk_grf.mot", f"<datafile>{_g10('subject01_walk_grf.mot')}"
        )
    )
    args = ["id", str(_g10("subject01.osim")), "--motion", str(_g10("subject01_walk_IK.mot"))]
    args += ["--loads", str(xml), "--out", str(tmp_path / "o.sto"), *extra]
    assert main(args) == 2
    assert message in capsys.readouterr().err
