"""The ``diffbio residuals`` command: outputs, and its error cases (gait10dof18musc trial)."""

from __future__ import annotations

import numpy as np
import pytest

from diffbio.cli import main
from diffbio.io import read_external_loads, read_storage
from tests.conftest import opensim_data_path


def _g10(*parts):
    return opensim_data_path("gait10dof18musc", *parts)


def _args(xml, out, *extra):
    args = [
        "residuals",
        str(_g10("subject01.osim")),
        "--motion",
        str(_g10("subject01_walk_IK.mot")),
    ]
    return args + ["--loads", str(xml), "--lowpass", "6", "--out", str(out), *extra]


def test_refine_writes_zero_residuals_and_loads(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_args(_g10("subject01_walk_grf.xml"), out, "--time", "0.6", "0.9", "--refine")) == 0
    text = capsys.readouterr().out
    assert "after RMS" in text and "change of the ground forces" in text
    before = read_storage(out / "residuals_before.sto")
    after = read_storage(out / "residuals_after.sto")
    assert before.labels == after.labels == ("FX", "FY", "FZ", "MX", "MY", "MZ")
    assert np.abs(before.data[:, :3]).max() > 1.0  # measured data leave residuals
    assert np.abs(after.data).max() < 1e-6
    loads = read_external_loads(out / "refined_grf.xml")
    assert [f.applied_to_body for f in loads.forces] == ["calcn_r", "calcn_l"]
    np.testing.assert_allclose(loads.time, before.time)


def _edited(tmp_path, edit=None, nan=False):
    text = _g10("subject01_walk_grf.xml").read_text()
    if edit:
        text = text.replace(*edit)
    mot = _g10("subject01_walk_grf.mot")
    if nan:
        lines = mot.read_text().splitlines()
        hdr = next(i for i, line in enumerate(lines) if line.strip() == "endheader") + 2
        row = lines[hdr + 5].split("\t")
        row[2] = "NaN"  # ground_force_vy
        lines[hdr + 5] = "\t".join(row)
        mot = tmp_path / "grf.mot"
        mot.write_text("\n".join(lines) + "\n")
    xml = tmp_path / "grf.xml"
    xml.write_text(text.replace("<datafile>subject01_walk_grf.mot", f"<datafile>{mot}"))
    return xml


@pytest.mark.parametrize(
    "edit, nan, extra, message",
    [
        (("calcn_r", "foot_r"), False, [], "'foot_r'"),
        (("ground_force_v<", "ground_force_q<"), False, [], "ground_force_q"),
        (None, False, ["--time", "5", "6"], "does not overlap"),
        (None, True, [], "ground_force_vy"),
    ],
    ids=["unknown-body", "missing-columns", "time-range", "nan-force"],
)
def test_errors(tmp_path, capsys, edit, nan, extra, message):
    xml = _edited(tmp_path, edit, nan)
    assert main(_args(xml, tmp_path / "o", "--refine", *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
