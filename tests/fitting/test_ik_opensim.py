"""Inverse kinematics against OpenSim 4.6's own InverseKinematicsTool on the same setup."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffbio.fitting import inverse_kinematics, read_ik_setup
from diffbio.io import read_storage, read_trc
from diffbio.kinematics import coordinates_from_storage
from diffbio.model import load_osim
from tests._support import opensim_ref as ref
from tests.conftest import opensim_data_path

WELL_DETERMINED = [
    "pelvis_tilt", "pelvis_list", "pelvis_rotation", "pelvis_tx", "pelvis_ty", "pelvis_tz",
    "hip_flexion_r", "hip_adduction_r", "hip_flexion_l", "hip_adduction_l",
    "knee_angle_r", "knee_angle_l", "ankle_angle_r", "ankle_angle_l",
    "lumbar_extension", "lumbar_bending", "lumbar_rotation",
]  # fmt: skip


@pytest.fixture(scope="module")
def ik_pair(tmp_path_factory):
    setup_path = opensim_data_path("gait2392", "subject01_Setup_IK.xml")
    setup = read_ik_setup(setup_path)
    model = load_osim(setup.model_file)
    data = read_trc(setup.marker_file)
    t0, t1 = setup.time_range
    sel = (data.time >= t0 - 1e-9) & (data.time <= t1 + 1e-9)
    names = [n for n in data.names if n in setup.marker_weights and n in model.marker_names]
    X = torch.tensor(data.positions[sel][:, [data.names.index(n) for n in names]])
    ours = inverse_kinematics(
        model,
        X,
        names,
        marker_weights=setup.marker_weights,
        coordinate_tasks=setup.coordinate_tasks,
    )
    out = tmp_path_factory.mktemp("osim_ik")
    tool = ref.osim.InverseKinematicsTool(str(setup_path))
    osim_model = ref.osim.Model(str(setup.model_file))  # the tool keeps a raw pointer
    tool.setModel(osim_model)
    tool.setMarkerDataFileName(str(setup.marker_file))
    tool.setResultsDir(str(out))
    tool.setOutputMotionFileName(str(out / "ik.mot"))
    tool.run()
    _, q_os = coordinates_from_storage(model, read_storage(out / "ik.mot"))
    theirs = inverse_kinematics(
        model, X, names, marker_weights=setup.marker_weights,
        coordinate_tasks=setup.coordinate_tasks, q0=q_os, max_iterations=0,
    )  # fmt: skip
    return model, ours, theirs


def test_weighted_marker_error_no_larger_than_opensims(ik_pair):
    _, ours, theirs = ik_pair
    assert bool(ours.converged.all())
    ratio = ours.weighted_squared_error / theirs.weighted_squared_error
    assert float(ratio.max()) <= 1.01, float(ratio.max())
    total = ours.objective / theirs.objective
    assert float(total.max()) <= 1.0 + 1e-6


def test_well_determined_coordinates_agree_within_one_degree(ik_pair):
    model, ours, theirs = ik_pair
    for name in WELL_DETERMINED:
        i = model.coordinate_index(name)
        rms = float(((ours.q[:, i] - theirs.q[:, i]) ** 2).mean().sqrt())
        limit = np.deg2rad(1.0) if model.rotational_mask[i] else 0.005
        assert rms < limit, (name, rms)


def test_missing_markers_get_zero_weight(ik_pair):
    """NaN marker samples are dropped from that frame's objective, not propagated."""
    model, ours, _ = ik_pair
    from diffbio.kinematics import forward_kinematics, marker_positions

    q = ours.q[:3]
    X = marker_positions(model, forward_kinematics(model, q))
    X[1, 4] = float("nan")
    res = inverse_kinematics(model, X, model.marker_names, q0=q + 0.01)
    assert torch.isfinite(res.q).all()
    assert torch.isnan(res.marker_errors[1, 4])
    assert float(res.marker_error_max.max()) < 1e-6
