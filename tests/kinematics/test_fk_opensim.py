"""Forward kinematics against OpenSim 4.6: every shared model, random states, the walks,
scaled models, and the default model. The mathematics is the same, so the tolerance is
a bug detector (1e-9 m / 1e-9 rad, well inside the 1e-6 the acceptance asks)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffbio.io import read_storage
from diffbio.kinematics import (
    apply_couplers,
    coordinates_from_storage,
    forward_kinematics,
    marker_positions,
)
from diffbio.model import default_model, default_model_xml, load_osim
from tests._support import opensim_ref as ref
from tests.conftest import opensim_data_path

MODELS = [
    "arm26/arm26.osim",
    "gait10dof18musc/subject01.osim",
    "gait2392/gait2392_generic.osim",
    "gait2392/subject01_simbody.osim",
    "leg6dof9musc/leg6dof9musc.osim",
    "rajagopal2016/Rajagopal2016.osim",
]
TOL = 1e-9


def _random_q(model, rng, n):
    q = np.array(
        [
            [rng.uniform(*c.range) if not c.locked else c.default_value for c in model.coordinates]
            for _ in range(n)
        ]
    )
    return apply_couplers(model, torch.tensor(q))


def _compare(path, model, q, scales=None):
    om, state = ref.load(path, scales, model.body_names)
    s = None if scales is None else torch.as_tensor(scales)
    poses = forward_kinematics(model, q, s)
    mk = marker_positions(model, poses, s)
    worst = {"pos": 0.0, "rot": 0.0, "marker": 0.0}
    for i in range(q.shape[0]):
        ref.set_q(om, state, q[i].numpy())
        R, p = ref.body_poses(om, state, model.body_names)
        worst["pos"] = max(worst["pos"], np.abs(p - poses.translation[i].numpy()).max())
        worst["rot"] = max(worst["rot"], np.abs(R - poses.rotation[i].numpy()).max())
        if model.markers:
            m = ref.marker_positions(om, state, model.marker_names)
            worst["marker"] = max(worst["marker"], np.abs(m - mk[i].numpy()).max())
    return worst


@pytest.mark.parametrize("rel", MODELS)
def test_random_states_match_opensim(rel):
    path = opensim_data_path(*rel.split("/"))
    model = load_osim(path)
    q = _random_q(model, np.random.default_rng(0), 20)
    worst = _compare(path, model, q)
    assert worst["pos"] < TOL and worst["rot"] < TOL and worst["marker"] < TOL, worst


@pytest.mark.parametrize("rel", MODELS)
def test_scaled_models_match_opensim_scaletool(rel):
    """Segment scales act as OpenSim's Model::scale (ScaleTool) acts on the model."""
    path = opensim_data_path(*rel.split("/"))
    model = load_osim(path)
    rng = np.random.default_rng(1)
    scales = rng.uniform(0.8, 1.25, size=(model.num_bodies, 3))
    q = _random_q(model, rng, 5)
    worst = _compare(path, model, q, scales)
    assert worst["pos"] < TOL and worst["rot"] < TOL and worst["marker"] < TOL, worst


@pytest.mark.parametrize(
    "model_rel, motion_rel",
    [
        ("gait2392/subject01_simbody.osim", "gait2392/subject01_walk1_ik.mot"),
        ("gait10dof18musc/subject01.osim", "gait10dof18musc/subject01_walk_IK.mot"),
    ],
)
def test_walking_trials_match_opensim(model_rel, motion_rel):
    path = opensim_data_path(*model_rel.split("/"))
    model = load_osim(path)
    _, q = coordinates_from_storage(model, read_storage(opensim_data_path(*motion_rel.split("/"))))
    worst = _compare(path, model, q[::4])
    assert worst["pos"] < TOL and worst["rot"] < TOL and worst["marker"] < TOL, worst


def test_default_model_matches_opensim(tmp_path):
    path = tmp_path / "default.osim"
    path.write_text(default_model_xml(height=1.8, mass=80.0))
    model = default_model(height=1.8, mass=80.0)
    q = _random_q(model, np.random.default_rng(2), 20)
    worst = _compare(path, model, q)
    assert worst["pos"] < TOL and worst["rot"] < TOL and worst["marker"] < TOL, worst


def test_euler_xyz_is_opensims_body_fixed_xyz():
    path = opensim_data_path("gait2392", "subject01_simbody.osim")
    model = load_osim(path)
    q = _random_q(model, np.random.default_rng(3), 3)
    poses = forward_kinematics(model, q)
    om, state = ref.load(path)
    for i in range(3):
        ref.set_q(om, state, q[i].numpy())
        for b, name in enumerate(model.body_names):
            R = om.getBodySet().get(name).getTransformInGround(state).R()
            angles = R.convertRotationToBodyFixedXYZ().to_numpy()
            assert np.allclose(angles, poses.euler_xyz()[i, b].numpy(), atol=1e-9)
