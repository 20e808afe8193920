"""Differentiability of forward kinematics and the batching rule."""

from __future__ import annotations

import pytest
import torch

from diffbio import ShapeError
from diffbio.kinematics import forward_kinematics, marker_positions, point_jacobian
from diffbio.model import load_osim
from tests.conftest import opensim_data_path


@pytest.fixture(scope="module")
def gait2392():
    return load_osim(opensim_data_path("gait2392", "subject01_simbody.osim"))


def _q(model, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    lo = torch.tensor([c.range[0] for c in model.coordinates], dtype=torch.float64)
    hi = torch.tensor([c.range[1] for c in model.coordinates], dtype=torch.float64)
    return lo + (hi - lo) * torch.rand(n, model.num_coordinates, generator=g, dtype=torch.float64)


@pytest.mark.parametrize(
    "rel, fast",
    [("leg6dof9musc/leg6dof9musc.osim", False), ("gait2392/subject01_simbody.osim", True)],
)
def test_gradcheck_coordinates_and_scales(rel, fast):
    m = load_osim(opensim_data_path(*rel.split("/")))
    q = _q(m, 2).requires_grad_()
    s = (1 + 0.1 * torch.rand(2, m.num_bodies, 3, dtype=torch.float64)).requires_grad_()

    def f(q, s):
        poses = forward_kinematics(m, q, s)
        return poses.translation, poses.rotation, marker_positions(m, poses, s)

    n = 2 if fast else 1
    assert torch.autograd.gradcheck(f, (q[:n], s[:n]), fast_mode=fast)


def test_gradients_match_finite_differences(gait2392):
    m = gait2392
    q = _q(m, 1, seed=4)[0]
    s = 1 + 0.1 * torch.rand(m.num_bodies, 3, dtype=torch.float64)

    def loss(q, s):
        poses = forward_kinematics(m, q, s)
        return (marker_positions(m, poses, s) ** 2).sum() + poses.rotation.sin().sum()

    qg, sg = q.clone().requires_grad_(), s.clone().requires_grad_()
    loss(qg, sg).backward()
    eps = 1e-6
    for i in range(m.num_coordinates):
        e = torch.zeros_like(q)
        e[i] = eps
        fd = (loss(q + e, s) - loss(q - e, s)) / (2 * eps)
        assert abs(fd - qg.grad[i]) < 1e-6 * (1 + abs(fd))
    for b in range(m.num_bodies):
        e = torch.zeros_like(s)
        e[b, 1] = eps
        fd = (loss(q, s + e) - loss(q, s - e)) / (2 * eps)
        assert abs(fd - sg.grad[b, 1]) < 1e-6 * (1 + abs(fd))


def test_point_jacobian_equals_autograd(gait2392):
    m = gait2392
    q = _q(m, 1, seed=5)[0]
    body = torch.tensor([m.body_index(k.body) for k in m.markers])
    pts = torch.tensor([k.location for k in m.markers], dtype=torch.float64)
    _, J = point_jacobian(m, q, body, pts)
    Jref = torch.autograd.functional.jacobian(
        lambda qq: marker_positions(m, forward_kinematics(m, qq)), q, vectorize=True
    )  # (K, 3, Q)
    assert torch.allclose(J, Jref, atol=1e-12)


def test_batching_rule_leading_dims_and_broadcast_scales(gait2392):
    """Any leading dims; outputs keep them; per-model scales broadcast."""
    m = gait2392
    q = _q(m, 6).reshape(2, 3, -1)
    s = 1 + 0.1 * torch.rand(m.num_bodies, 3, dtype=torch.float64)
    batched = forward_kinematics(m, q, s)
    assert batched.translation.shape == (2, 3, m.num_bodies, 3)
    assert batched.rotation.shape == (2, 3, m.num_bodies, 3, 3)
    assert batched.joint_centers.shape == (2, 3, len(m.joints), 3)
    for b in range(2):
        for t in range(3):
            single = forward_kinematics(m, q[b, t], s)
            assert torch.allclose(single.translation, batched.translation[b, t], atol=1e-14)
    per_trial = forward_kinematics(m, q, s.expand(2, 1, -1, -1))
    assert torch.allclose(per_trial.translation, batched.translation, atol=1e-14)


def test_float32(gait2392):
    q = _q(gait2392, 4)
    p64 = forward_kinematics(gait2392, q).translation
    p32 = forward_kinematics(gait2392, q.float()).translation
    assert p32.dtype == torch.float32
    assert torch.allclose(p32.double(), p64, atol=1e-5)


def test_wrong_q_shape_is_a_clear_error(gait2392):
    with pytest.raises(ShapeError, match="Q = 23"):
        forward_kinematics(gait2392, torch.zeros(5, 22, dtype=torch.float64))
    with pytest.raises(ShapeError, match="NB = 12"):
        forward_kinematics(
            gait2392, torch.zeros(23, dtype=torch.float64), torch.ones(11, 3, dtype=torch.float64)
        )
