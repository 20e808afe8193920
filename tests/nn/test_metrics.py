"""The root orientation's Euler branch: the equivalence checked through the forward
kinematics, the branch-aware MAE, the geodesic error, and an untrained network that starts on
the labels' branch."""

from __future__ import annotations

import math

import pytest
import torch

from diffbio.data import keypoints
from diffbio.kinematics import forward_kinematics
from diffbio.model import default_model
from diffbio.nn import (
    KinematicsNet,
    NetConfig,
    mae_deg,
    root_branch,
    root_equivalent,
    root_flip_fraction,
    root_geodesic_deg,
)


@pytest.fixture(scope="module")
def model():
    return default_model()


def _q(model, n, sd=0.4, seed=0):
    g = torch.Generator().manual_seed(seed)
    q0 = torch.tensor([c.default_value for c in model.coordinates], dtype=torch.float64)
    return q0 + sd * torch.randn(n, model.num_coordinates, generator=g, dtype=torch.float64)


def test_equivalent_triple_is_the_same_pose(model):
    # pelvis tilt, list, rotation about Z, X, Y: (a, b, c) ~ (a + pi, pi - b, c + pi)
    idx, sign, offset = root_branch(model)
    assert idx == tuple(
        model.coordinate_index(n) for n in ("pelvis_tilt", "pelvis_list", "pelvis_rotation")
    )
    q = _q(model, 6)
    alt = root_equivalent(model, q)
    d = torch.atan2(torch.sin(alt[:, :3] - q[:, :3]), torch.cos(alt[:, :3] - q[:, :3]))
    assert torch.all(d.abs() > 1.0)  # really a different triple ...
    assert torch.allclose(
        forward_kinematics(model, alt).rotation, forward_kinematics(model, q).rotation, atol=1e-12
    )
    assert torch.allclose(keypoints(model, alt), keypoints(model, q), atol=1e-12)  # ... same pose
    assert torch.equal(alt[:, 3:], q[:, 3:])
    # the proper-Euler candidate is not an equivalence for this order
    wrong = q.clone()
    wrong[:, 0], wrong[:, 1], wrong[:, 2] = q[:, 0] + math.pi, -q[:, 1], q[:, 2] + math.pi
    assert not torch.allclose(
        forward_kinematics(model, wrong).rotation, forward_kinematics(model, q).rotation, atol=1e-3
    )


def test_mae_deg_scores_an_equivalent_branch_prediction_as_zero(model):
    qt = _q(model, 8, seed=1)
    alt = root_equivalent(model, qt)
    assert float(mae_deg(model, alt, qt)) == pytest.approx(0.0, abs=1e-9)
    assert float(root_flip_fraction(model, alt, qt)) == 1.0
    assert float(root_geodesic_deg(model, alt, qt)) == pytest.approx(0.0, abs=1e-4)
    # small errors count the same on either branch: 1 deg on every rotational coordinate
    e = torch.tensor(model.rotational_mask, dtype=torch.float64) * math.radians(1.0)
    assert float(mae_deg(model, qt + e, qt)) == pytest.approx(1.0, rel=1e-9)
    assert float(mae_deg(model, alt + e, qt)) == pytest.approx(1.0, rel=1e-9)
    # half the frames flipped: still zero; a flip of one angle alone is a real error
    mixed = torch.where(torch.arange(8)[:, None] % 2 == 0, alt, qt)
    assert float(mae_deg(model, mixed, qt)) == pytest.approx(0.0, abs=1e-9)
    assert float(root_flip_fraction(model, mixed, qt)) == 0.5
    one = qt.clone()
    one[:, 0] += math.pi
    assert float(mae_deg(model, one, qt)) == pytest.approx(180.0 / 18.0, rel=1e-9)
    assert float(root_flip_fraction(model, one, qt)) == 0.0
    assert float(root_geodesic_deg(model, one, qt)) > 90.0


def test_branch_metrics_gradcheck_and_finite_differences(model):
    qt = _q(model, 3, seed=2)
    qp = (root_equivalent(model, qt) + 0.05 * _q(model, 3, sd=1.0, seed=3)).requires_grad_()
    for f in (lambda x: mae_deg(model, x, qt), lambda x: root_geodesic_deg(model, x, qt)):
        assert torch.autograd.gradcheck(f, (qp,))
        (g,) = torch.autograd.grad(f(qp), qp)
        d = torch.randn_like(qp)
        with torch.no_grad():
            fd = (f(qp + 1e-6 * d) - f(qp - 1e-6 * d)) / 2e-6
        assert float((g * d).sum()) == pytest.approx(float(fd), rel=1e-5)


@pytest.mark.parametrize("seed", range(6))
def test_untrained_network_starts_on_the_labels_branch(model, seed):
    torch.manual_seed(seed)
    net = KinematicsNet(NetConfig.small(12, 21, 10, seq_len=8, dropout=0.0)).eval()
    q = _q(model, 32, sd=0.1, seed=seed).float().reshape(4, 8, 21)
    q[..., 2] += 0.5  # a mean heading of about 29 deg
    net.set_normalization(torch.randn(4, 8, 12), q)
    mean = torch.stack([q[..., :3].cos().mean((0, 1)), q[..., :3].sin().mean((0, 1))], -1)
    assert torch.allclose(net.free_mean, mean / mean.norm(dim=-1, keepdim=True), atol=1e-6)
    with torch.no_grad():
        p = net(torch.randn(4, 8, 12))
    # near the labels' mean, on their branch (|pelvis_list| < 90 deg)
    d = torch.atan2(torch.sin(p.q[..., :3] - q[..., :3]), torch.cos(p.q[..., :3] - q[..., :3]))
    assert float(d.abs().max()) < math.radians(30.0)
    assert float(root_flip_fraction(model, p.q.double(), q.double())) == 0.0
