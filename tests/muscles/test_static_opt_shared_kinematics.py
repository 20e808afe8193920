"""Static-optimization frames built on one shared kinematics pass equal the frames
assembled from the public functions, each running its own (loads, inverse dynamics,
muscle geometry, actuators); the shared pass sliced into chunks equals kinematics of the
chunk; gradcheck and finite differences through the shared pass."""

from __future__ import annotations

import pytest
import torch

from diffbio.dynamics import inverse_dynamics, load_trial, wrenches_from_external_loads
from diffbio.kinematics._fk import _forward
from diffbio.muscles import actuator_generalized_forces, read_actuators
from diffbio.muscles._static_opt_trial import (
    _chunk_kinematics,
    _model_inputs,
    muscle_states,
    static_optimization_frames,
    structural_zeros,
)
from tests.conftest import opensim_data_path

TRIAL = (
    ("gait10dof18musc", "subject01.osim"),
    ("gait10dof18musc", "subject01_walk_IK.mot"),
    ("gait10dof18musc", "subject01_walk_grf.xml"),
    ("gait10dof18musc", "gait10dof_Reserve_Actuators.xml"),
)


@pytest.fixture(scope="module")
def trial():
    paths = [opensim_data_path(*p) for p in TRIAL]
    model, params, lo, hi, own = _model_inputs(paths[0])
    tr = load_trial(model, paths[1], paths[2], time_range=(0.6, 0.7), lowpass_hz=6.0)
    acts = own + read_actuators(paths[3])
    return model, params, tr, acts


def test_frames_equal_separate_public_functions(trial):
    model, params, tr, acts = trial
    fr = static_optimization_frames(model, params, tr.time, tr.q, tr.qd, tr.qdd, tr.loads, acts)
    w = wrenches_from_external_loads(model, tr.loads, tr.q, tr.time)
    tau = inverse_dynamics(model, tr.q, tr.qd, tr.qdd, w)
    R, Fa, Fp = muscle_states(model, params, tr.q, tr.qd)
    S = actuator_generalized_forces(model, acts, tr.q)
    assert any(a.kind.name != "COORDINATE" for a in acts) or S.shape[-1] > 0
    torch.testing.assert_close(fr.tau, tau, rtol=0, atol=1e-12)
    torch.testing.assert_close(fr.moment_arms, structural_zeros(R), rtol=0, atol=1e-15)
    torch.testing.assert_close(fr.F_active_per_a, Fa, rtol=0, atol=1e-10)
    torch.testing.assert_close(fr.F_passive, Fp, rtol=0, atol=1e-10)
    torch.testing.assert_close(fr.actuator_moments, S, rtol=0, atol=1e-12)


def test_chunk_of_shared_kinematics_equals_kinematics_of_chunk(trial):
    model = trial[0]
    g = torch.Generator().manual_seed(0)
    q = model.default_q() + 0.2 * torch.randn(2, 7, model.num_coordinates, generator=g,
                                              dtype=torch.float64)  # fmt: skip
    fk = _forward(model, q, None, with_axes=True)
    for s, n in ((0, 3), (3, 3), (6, 1)):
        poses, axes = _chunk_kinematics(fk, s, n)
        ref_poses, ref_axes = _forward(model, q[:, s : s + n], None, with_axes=True)
        assert torch.equal(axes, ref_axes)
        for a, b in zip(poses.__dict__.values(), ref_poses.__dict__.values(), strict=True):
            assert torch.equal(a, b)


def test_frames_gradcheck_and_finite_differences(trial):
    model, params, tr, acts = trial
    sl = slice(0, 1)
    time, qd, qdd = tr.time[sl], tr.qd[sl], tr.qdd[sl]

    def fn(q):
        fr = static_optimization_frames(model, params, time, q, qd, qdd, tr.loads, acts)
        return fr.tau, fr.moment_arms, fr.actuator_moments

    q = tr.q[sl].clone().requires_grad_()
    assert torch.autograd.gradcheck(fn, (q,), atol=1e-6, rtol=1e-4)
    g = torch.Generator().manual_seed(1)
    ws = [torch.randn(x.shape, generator=g, dtype=torch.float64) for x in fn(tr.q[sl])]
    loss = lambda v: sum((x * w).sum() for x, w in zip(fn(v), ws, strict=True))  # noqa: E731
    (grad,) = torch.autograd.grad(loss(q), q)
    eps = 1e-6
    d = torch.randn(q.shape, generator=g, dtype=torch.float64)
    fd = (loss(q.detach() + eps * d) - loss(q.detach() - eps * d)) / (2 * eps)
    torch.testing.assert_close((grad * d).sum(), fd, rtol=1e-6, atol=1e-6)
