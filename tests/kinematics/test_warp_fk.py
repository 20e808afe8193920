"""The Warp kernel path of forward kinematics against the torch reference path.

Real models (gait2392 subject01, Rajagopal 2016) at random in-range states with random
segment scales: poses, joint centres and gradients must equal the torch path's."""

from __future__ import annotations

import pytest
import torch

from diffbio import DiffbioError, ShapeError
from diffbio.kinematics import apply_couplers, forward_kinematics, forward_kinematics_warp
from diffbio.model import load_osim
from tests.conftest import opensim_data_path

MODELS = {
    "gait2392": ("gait2392", "subject01_simbody.osim"),
    "rajagopal2016": ("rajagopal2016", "Rajagopal2016.osim"),
}
_LOADED: dict = {}


def _model(name: str):
    if name not in _LOADED:
        _LOADED[name] = load_osim(opensim_data_path(*MODELS[name]))
    return _LOADED[name]


def _random_state(model, lead, dtype=torch.float64):
    """Uniform in each coordinate's range (wide ranges such as Rajagopal's +-99999.9 for
    coupled coordinates cut to +-pi), then coupled coordinates set from their drivers."""
    lo = torch.tensor([max(c.range[0], -torch.pi) for c in model.coordinates], dtype=dtype)
    hi = torch.tensor([min(c.range[1], torch.pi) for c in model.coordinates], dtype=dtype)
    return apply_couplers(
        model, lo + (hi - lo) * torch.rand(*lead, model.num_coordinates, dtype=dtype)
    )


def _random_scales(model, lead, dtype=torch.float64):
    return 0.8 + 0.4 * torch.rand(*lead, model.num_bodies, 3, dtype=dtype)


def _fields(poses):
    return poses.rotation, poses.translation, poses.joint_centers


def _loss(poses, weights):
    return sum((x * w).sum() for x, w in zip(_fields(poses), weights, strict=True))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_float64_equals_torch_path(name):
    model = _model(name)
    q = _random_state(model, (4, 3))
    scales = _random_scales(model, (3,))  # broadcast over the leading batch dimension
    for s in (scales, None):
        ref = forward_kinematics(model, q, s)
        out = forward_kinematics_warp(model, q, s)
        for a, b in zip(_fields(out), _fields(ref), strict=True):
            assert a.shape == b.shape and a.dtype == torch.float64
            torch.testing.assert_close(a, b, rtol=0.0, atol=1e-10)
    # sanity: the poses are not trivial (rotations orthonormal, bodies spread out)
    R = out.rotation
    eye = torch.eye(3, dtype=R.dtype).expand_as(R)
    torch.testing.assert_close(R @ R.transpose(-1, -2), eye, rtol=0.0, atol=1e-12)
    assert out.translation.std(-2).min() > 0.05


@pytest.mark.parametrize("name", sorted(MODELS))
def test_float32_equals_torch_path(name):
    model = _model(name)
    q = _random_state(model, (6,))
    scales = _random_scales(model, (6,))
    ref64 = forward_kinematics(model, q, scales)
    ref32 = forward_kinematics(model, q.float(), scales.float())
    out = forward_kinematics_warp(model, q.float(), scales.float())
    for a, b, c in zip(_fields(out), _fields(ref32), _fields(ref64), strict=True):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=0.0, atol=1e-5)
        torch.testing.assert_close(a.double(), c, rtol=0.0, atol=1e-5)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_gradients_equal_torch_path(name):
    model = _model(name)
    q = _random_state(model, (2, 3)).requires_grad_()
    scales = _random_scales(model, (2, 3)).requires_grad_()
    ref = forward_kinematics(model, q, scales)
    weights = [torch.randn_like(x) for x in _fields(ref)]
    g_ref = torch.autograd.grad(_loss(ref, weights), (q, scales))
    g_out = torch.autograd.grad(
        _loss(forward_kinematics_warp(model, q, scales), weights), (q, scales)
    )
    for a, b in zip(g_out, g_ref, strict=True):
        assert b.abs().max() > 1e-3
        torch.testing.assert_close(a, b, rtol=0.0, atol=1e-10)


def test_incoming_gradient_is_not_modified():
    model = _model("gait2392")
    q = _random_state(model, (3,)).requires_grad_()
    out = forward_kinematics_warp(model, q)
    grads = [torch.randn_like(x) for x in _fields(out)]
    copies = [g.clone() for g in grads]
    torch.autograd.backward(_fields(out), grads)
    for g, c in zip(grads, copies, strict=True):
        assert torch.equal(g, c)
    # the same backward twice (retain_graph) gives the same gradient
    q = q.detach().requires_grad_()
    loss = _loss(forward_kinematics_warp(model, q), grads)
    g1 = torch.autograd.grad(loss, q, retain_graph=True)[0]
    g2 = torch.autograd.grad(loss, q)[0]
    assert torch.equal(g1, g2)


def test_gradcheck_q_and_scales():
    model = _model("gait2392")
    q = _random_state(model, (2,)).requires_grad_()
    scales = _random_scales(model, ()).requires_grad_()

    def f(q, s):
        return _fields(forward_kinematics_warp(model, q, s))

    assert torch.autograd.gradcheck(f, (q, scales), eps=1e-6, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_finite_differences(name):
    """Directional derivatives of a random scalar of the poses: central differences
    (float64, step 1e-6) against the Warp adjoint."""
    model = _model(name)
    q = _random_state(model, (3,))
    scales = _random_scales(model, (3,))
    weights = [torch.randn_like(x) for x in _fields(forward_kinematics(model, q, scales))]
    dq, ds = torch.randn_like(q), torch.randn_like(scales)

    def loss(q, s):
        return _loss(forward_kinematics_warp(model, q, s), weights)

    qv, sv = q.clone().requires_grad_(), scales.clone().requires_grad_()
    gq, gs = torch.autograd.grad(loss(qv, sv), (qv, sv))
    h = 1e-6
    fd_q = (loss(q + h * dq, scales) - loss(q - h * dq, scales)) / (2 * h)
    fd_s = (loss(q, scales + h * ds) - loss(q, scales - h * ds)) / (2 * h)
    torch.testing.assert_close((gq * dq).sum(), fd_q, rtol=1e-7, atol=1e-7)
    torch.testing.assert_close((gs * ds).sum(), fd_s, rtol=1e-7, atol=1e-7)


def test_batching_rule_and_errors():
    model = _model("gait2392")
    q = _random_state(model, (2, 5))
    ref = forward_kinematics(model, q)
    for lead in [(), (7,), (2, 5)]:
        qi = q.reshape(-1, model.num_coordinates)[0] if lead == () else _random_state(model, lead)
        out = forward_kinematics_warp(model, qi)
        assert out.rotation.shape == (*lead, model.num_bodies, 3, 3)
        assert out.translation.shape == (*lead, model.num_bodies, 3)
        assert out.joint_centers.shape == (*lead, len(model.joints), 3)
    # one sample alone equals the same sample inside a batch
    single = forward_kinematics_warp(model, q[1, 3])
    torch.testing.assert_close(single.translation, ref.translation[1, 3], rtol=0.0, atol=1e-12)
    # scales with more leading dimensions than q broadcast q
    scales = _random_scales(model, (4, 1))
    out = forward_kinematics_warp(model, q[0, 0], scales)
    ref = forward_kinematics(model, q[0, 0], scales)
    assert out.translation.shape == (4, 1, model.num_bodies, 3)
    torch.testing.assert_close(out.translation, ref.translation, rtol=0.0, atol=1e-10)
    with pytest.raises(ShapeError, match="Q = 23"):
        forward_kinematics_warp(model, q[..., :5])
    with pytest.raises(ShapeError, match="NB = 12"):
        forward_kinematics_warp(model, q, torch.ones(2, 3, dtype=torch.float64))
    with pytest.raises(DiffbioError, match="float16"):
        forward_kinematics_warp(model, q.half())


@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)"
)
def test_cuda_equals_cpu():
    model = _model("rajagopal2016")
    q = _random_state(model, (64,)).requires_grad_()
    scales = _random_scales(model, (64,)).requires_grad_()
    ref = forward_kinematics(model, q, scales)
    weights = [torch.randn_like(x) for x in _fields(ref)]
    g_ref = torch.autograd.grad(_loss(ref, weights), (q, scales))
    qc = q.detach().cuda().requires_grad_()
    sc = scales.detach().cuda().requires_grad_()
    out = forward_kinematics_warp(model, qc, sc)
    for a, b in zip(_fields(out), _fields(ref), strict=True):
        assert a.device.type == "cuda"
        torch.testing.assert_close(a.cpu(), b, rtol=0.0, atol=1e-10)
    g = torch.autograd.grad(_loss(out, [w.cuda() for w in weights]), (qc, sc))
    for a, b in zip(g, g_ref, strict=True):
        torch.testing.assert_close(a.cpu(), b, rtol=0.0, atol=1e-10)
    out32 = forward_kinematics_warp(model, qc.detach().float(), sc.detach().float())
    torch.testing.assert_close(
        out32.translation.double().cpu(), ref.translation, rtol=0.0, atol=1e-5
    )
