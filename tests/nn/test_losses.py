"""Losses: values on known cases, float64 gradcheck and finite differences, gradients that
reach the network through the forward kinematics."""

from __future__ import annotations

import math

import pytest
import torch

from diffbio.data import keypoints
from diffbio.model import default_model
from diffbio.nn import (
    KinematicsNet,
    LossWeights,
    NetConfig,
    angle_loss,
    bio_loss,
    physics_loss,
    position_loss,
    scale_loss,
    total_loss,
)

FREE = torch.tensor([0, 1, 2])


@pytest.fixture(scope="module")
def model():
    return default_model()


def _q(model, *lead):
    q0 = torch.tensor([c.default_value for c in model.coordinates], dtype=torch.float64)
    q = q0 + 0.2 * torch.randn(*lead, model.num_coordinates, dtype=torch.float64)
    q[..., model.coordinate_index("pelvis_ty")] += 0.95
    return q


def _fd_check(f, x, k=3, h=1e-6, rel=1e-5):
    """Directional finite differences against autograd along ``k`` random directions."""
    x = x.detach().requires_grad_()
    (g,) = torch.autograd.grad(f(x), x)
    for _ in range(k):
        d = torch.randn_like(x)
        with torch.no_grad():
            fd = (f(x + h * d) - f(x - h * d)) / (2 * h)
        assert float((g * d).sum()) == pytest.approx(float(fd), rel=rel, abs=1e-8)


def test_angle_loss_values():
    q = torch.tensor([[math.pi - 0.01, 0.0, 0.0, 0.5]], dtype=torch.float64)
    vec = torch.tensor(
        [[[math.cos(-math.pi + 0.01), math.sin(-math.pi + 0.01)], [3.0, 0.0], [2.0, 0.0]]],
        dtype=torch.float64,
    )
    pred = q.clone()
    pred[0, 3] = 0.7
    # free angles: pi - 0.01 and -pi + 0.01 are 0.02 apart on the circle, and the free
    # vector's length does not matter; the constrained coordinate is 0.2 off (L1).
    expect = (
        abs(math.cos(math.pi - 0.01) - math.cos(-math.pi + 0.01)) + 2 * math.sin(0.01) + 0.2
    ) / 4
    assert float(angle_loss(pred, vec, q, FREE)) == pytest.approx(expect, rel=1e-12)
    assert float(
        angle_loss(q, 5.0 * torch.stack([q[..., :3].cos(), q[..., :3].sin()], -1), q, FREE)
    ) == pytest.approx(0.0, abs=1e-12)


def test_angle_and_scale_loss_gradcheck():
    q = torch.randn(1, 2, 5, dtype=torch.float64)
    vec = torch.randn(1, 2, 3, 2, dtype=torch.float64, requires_grad=True)
    qp = torch.randn(1, 2, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: angle_loss(a, b, q, FREE), (qp, vec))
    _fd_check(lambda v: angle_loss(qp.detach(), v, q, FREE), vec)
    s = torch.rand(2, 4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: scale_loss(x, torch.ones_like(x)), (s,))
    _fd_check(lambda x: scale_loss(x, torch.ones_like(x)), s)


def test_bio_loss(model):
    q = torch.tensor([[c.default_value for c in model.coordinates]], dtype=torch.float64)
    assert float(bio_loss(model, q)) == 0.0
    k = model.coordinate_index("knee_angle_r")
    q[0, k] = model.coordinates[k].range[1] + 0.3
    assert float(bio_loss(model, q)) == pytest.approx(0.3 / model.num_coordinates)
    x = _q(model, 2) * 3.0
    x.requires_grad_()
    assert torch.autograd.gradcheck(lambda v: bio_loss(model, v), (x,))
    _fd_check(lambda v: bio_loss(model, v), x)


def test_position_loss_values_and_gradients(model):
    q = _q(model, 1, 2)
    s = 1.0 + 0.05 * torch.randn(1, model.num_bodies, 3, dtype=torch.float64)
    assert float(position_loss(model, q, s, q, s)) == pytest.approx(0.0, abs=1e-20)
    # a pure root translation leaves pelvis-relative keypoints unchanged
    moved = q.clone()
    moved[..., model.coordinate_index("pelvis_tx")] += 0.4
    assert float(position_loss(model, moved, s, q, s)) == pytest.approx(0.0, abs=1e-20)
    kp, kt = keypoints(model, q, s.unsqueeze(-3)), keypoints(model, 0.9 * q, s.unsqueeze(-3))
    expect = ((kp - kp[..., :1, :]) - (kt - kt[..., :1, :])).pow(2).sum(-1).mean()
    assert float(position_loss(model, q, s, 0.9 * q, s)) == pytest.approx(float(expect), rel=1e-12)
    # gradcheck along a few random directions of q and scales (keeps the test fast)
    qt = _q(model, 1, 2)
    dq = torch.randn(3, *q.shape, dtype=torch.float64)
    ds = torch.randn(2, *s.shape, dtype=torch.float64) * 0.05
    a = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(2, dtype=torch.float64, requires_grad=True)

    def f(a, b):
        return position_loss(
            model,
            q + torch.einsum("k,k...->...", a, dq),
            s + torch.einsum("k,k...->...", b, ds),
            qt,
            s,
        )

    assert torch.autograd.gradcheck(f, (a, b))
    _fd_check(lambda x: position_loss(model, x, s, qt, s), q, k=2)
    _fd_check(lambda x: position_loss(model, q, x, qt, s), s, k=2)


def test_physics_loss_gradients(model):
    pytest.importorskip("diffbio.dynamics")
    T = 5
    t = torch.arange(T, dtype=torch.float64) / 30.0
    base = _q(model, 1, 1) + 0.3 * torch.sin(2 * t)[None, :, None]
    qt = base + 0.05 * torch.randn(1, T, model.num_coordinates, dtype=torch.float64)
    s = torch.ones(1, model.num_bodies, 3, dtype=torch.float64)
    assert float(physics_loss(model, qt, s, qt, s, 30.0)) == pytest.approx(0.0, abs=1e-12)
    # gradcheck along three random directions of q (the full Jacobian is slow on 2 cores)
    dq = torch.randn(3, *base.shape, dtype=torch.float64)
    a = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a: physics_loss(model, base + torch.einsum("k,k...->...", a, dq), s, qt, s, 30.0),
        (a,),
        atol=1e-6,
    )
    _fd_check(lambda x: physics_loss(model, x, s, qt, s, 30.0), base, k=1)


def test_fk_loss_gradient_reaches_every_layer(model):
    net = KinematicsNet(
        NetConfig.small(12, model.num_coordinates, model.num_bodies, seq_len=8, dropout=0.0)
    )
    pred = net(torch.randn(2, 8, 12))
    q = _q(model, 2, 8).float()
    s = torch.ones(2, model.num_bodies, 3)
    loss, terms = total_loss(
        model,
        LossWeights(angle=0.0, scale=0.0, bio=0.0, pos=100.0),
        pred.q,
        pred.free_vec,
        pred.scales,
        q,
        s,
        net.free_idx,
        30.0,
    )
    assert set(terms) == {"angle", "circle", "scale", "pos"} and terms["pos"] > 0
    loss.backward()
    for name in (
        "encoder.0.weight",
        "level2.blocks.0.layer.linear1.weight",
        "q_head.1.weight",
        "scale_head.3.weight",
    ):
        g = dict(net.named_parameters())[name].grad
        assert g is not None and float(g.abs().sum()) > 0, name
