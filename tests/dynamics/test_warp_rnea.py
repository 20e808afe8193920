"""The Warp kernel path of inverse dynamics against the torch reference path.

Real models (gait2392 subject01, Rajagopal 2016 with its spline-driven knee axes, arm26)
at random states with external loads, segment scales and per-sample inertial parameters:
generalized forces and gradients must equal the torch path's (itself checked against
OpenSim in test_inverse_dynamics.py)."""

from __future__ import annotations

import pytest
import torch

from diffbio import DiffbioError
from diffbio.dynamics import (
    BodyInertial,
    BodyWrenches,
    body_inertial,
    inverse_dynamics,
    inverse_dynamics_warp,
)
from diffbio.model import load_osim
from tests.conftest import opensim_data_path

MODELS = {
    "gait2392": ("gait2392", "subject01_simbody.osim"),
    "rajagopal2016": ("rajagopal2016", "Rajagopal2016.osim"),
    "arm26": ("arm26", "arm26.osim"),
}
_LOADED: dict = {}


def _model(name: str):
    if name not in _LOADED:
        _LOADED[name] = load_osim(opensim_data_path(*MODELS[name]))
    return _LOADED[name]


def _inputs(model, lead, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    Q, NB = model.num_coordinates, model.num_bodies

    def r(*shape, s=1.0):
        return s * torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)

    q, qd, qdd = r(*lead, Q), r(*lead, Q), r(*lead, Q, s=3.0)
    loads = BodyWrenches(r(*lead, NB, 3, s=50.0), r(*lead, NB, 3, s=5.0), r(*lead, NB, 3))
    scales = 1 + r(NB, 3, s=0.1)
    return q, qd, qdd, loads, scales


@pytest.mark.parametrize("name", sorted(MODELS))
def test_matches_torch_float64(name):
    model = _model(name)
    q, qd, qdd, loads, scales = _inputs(model, (2, 3))
    for kw in ({}, {"scales": scales}):
        ref = inverse_dynamics(model, q, qd, qdd, loads, **kw)
        out = inverse_dynamics_warp(model, q, qd, qdd, loads, **kw)
        assert out.shape == ref.shape == (2, 3, model.num_coordinates)
        tol = 1e-10 * max(1.0, float(ref.abs().max()))
        assert float((out - ref).abs().max()) < tol, kw
    # no loads, no gravity
    ref = inverse_dynamics(model, q, qd, qdd, gravity=False)
    out = inverse_dynamics_warp(model, q, qd, qdd, gravity=False)
    assert float((out - ref).abs().max()) < 1e-10 * max(1.0, float(ref.abs().max()))


def test_per_sample_parameters_and_broadcasting():
    """Per-sample scales and inertias ``(B, 1, NB, ...)`` broadcast over ``(B, T, Q)``;
    loads shared by all samples ``(NB, 3)``."""
    model = _model("gait2392")
    q, qd, qdd, loads, _ = _inputs(model, (2, 3), seed=1)
    NB = model.num_bodies
    g = torch.Generator().manual_seed(5)
    scales = 1 + 0.1 * torch.randn(2, 1, NB, 3, generator=g, dtype=torch.float64)
    ip = body_inertial(model)
    mass = ip.mass * (1 + 0.1 * torch.rand(2, 1, NB, generator=g, dtype=torch.float64))
    inertial = BodyInertial(mass, ip.com, ip.inertia)
    shared = BodyWrenches(loads.force[0, 0], loads.torque[0, 0], loads.point[0, 0])
    kw = {"scales": scales, "inertial": inertial}
    ref = inverse_dynamics(model, q, qd, qdd, shared, **kw)
    out = inverse_dynamics_warp(model, q, qd, qdd, shared, **kw)
    assert float((out - ref).abs().max()) < 1e-10 * max(1.0, float(ref.abs().max()))


def test_float32_close_to_float64():
    model = _model("gait2392")
    q, qd, qdd, loads, _ = _inputs(model, (4,), seed=2)
    ref = inverse_dynamics(model, q, qd, qdd, loads)
    f32 = BodyWrenches(*(x.float() for x in (loads.force, loads.torque, loads.point)))
    out = inverse_dynamics_warp(model, q.float(), qd.float(), qdd.float(), f32)
    assert out.dtype == torch.float32
    # float32 rounding of ~1e3 N m terms: relative 1e-5 of the largest force
    assert float((out.double() - ref).abs().max()) < 1e-5 * float(ref.abs().max())


def test_gradients_match_torch():
    """Vector-Jacobian products with respect to every input equal the torch path's."""
    model = _model("rajagopal2016")
    q, qd, qdd, loads, scales = _inputs(model, (3,), seed=3)
    ip = body_inertial(model)
    args = [q, qd, qdd, loads.force, loads.torque, loads.point, scales, ip.mass, ip.com]
    args = [a.clone().requires_grad_(True) for a in args]
    w = torch.randn(3, model.num_coordinates, dtype=torch.float64)

    def run(fn):
        q, qd, qdd, f, t, p, s, m, c = args
        inertial = BodyInertial(m, c, ip.inertia)
        tau = fn(model, q, qd, qdd, BodyWrenches(f, t, p), scales=s, inertial=inertial)
        return torch.autograd.grad((tau * w).sum(), args)

    for a, b in zip(run(inverse_dynamics), run(inverse_dynamics_warp), strict=True):
        assert float((a - b).abs().max()) < 1e-9 * max(1.0, float(b.abs().max()))


def test_gradcheck_and_finite_differences():
    model = _model("arm26")
    q, qd, qdd, loads, scales = _inputs(model, (2,), seed=4)
    ip = body_inertial(model)
    # distinct principal moments keep the cylinder rule of unequal scales differentiable
    jitter = torch.tensor([1e-3, 2e-3, 3e-3, 0.0, 0.0, 0.0], dtype=torch.float64)
    args = [q, qd, qdd, loads.force, loads.torque, loads.point, scales, ip.mass, ip.com]
    args = [a.clone().requires_grad_(True) for a in args] + [
        (ip.inertia + jitter).requires_grad_(True)
    ]

    def fn(q, qd, qdd, f, t, p, s, m, c, inertia):
        return inverse_dynamics_warp(
            model, q, qd, qdd, BodyWrenches(f, t, p), scales=s, inertial=BodyInertial(m, c, inertia)
        )

    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-6, rtol=1e-6, fast_mode=True)
    # central differences of a scalar along a random direction in q, against autograd
    d = torch.randn_like(q)
    h = 1e-6
    out = fn(*args).sum()
    (gq,) = torch.autograd.grad(out, args[0])
    with torch.no_grad():
        plus = fn(args[0] + h * d, *args[1:]).sum()
        minus = fn(args[0] - h * d, *args[1:]).sum()
    fd = (plus - minus) / (2 * h)
    assert abs(float(fd - (gq * d).sum())) < 1e-6 * max(1.0, abs(float(fd)))


def test_chunked_equals_unchunked():
    model = _model("arm26")
    q, qd, qdd, loads, _ = _inputs(model, (5, 2), seed=6)
    full = inverse_dynamics_warp(model, q, qd, qdd, loads)
    chunked = inverse_dynamics_warp(model, q, qd, qdd, loads, chunk_size=2)
    assert torch.equal(full, chunked)


def test_unsupported_dtype_raises():
    model = _model("arm26")
    q = torch.zeros(1, model.num_coordinates, dtype=torch.float16)
    with pytest.raises(DiffbioError, match="float32 and float64"):
        inverse_dynamics_warp(model, q, q, q)


@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)"
)
def test_cuda_equals_cpu():
    model = _model("gait2392")
    q, qd, qdd, loads, scales = _inputs(model, (3,), seed=7)
    args = [q, qd, qdd, loads.force, loads.torque, loads.point, scales]

    def run(xs):
        xs = [x.clone().requires_grad_(True) for x in xs]
        q, qd, qdd, f, t, p, s = xs
        tau = inverse_dynamics_warp(model, q, qd, qdd, BodyWrenches(f, t, p), scales=s)
        return tau, torch.autograd.grad(tau.square().sum(), xs)

    tau_c, g_c = run(args)
    tau_g, g_g = run([x.cuda() for x in args])
    assert tau_g.device.type == "cuda"
    torch.testing.assert_close(tau_g.cpu(), tau_c, rtol=0, atol=1e-9)
    for a, b in zip(g_g, g_c, strict=True):
        torch.testing.assert_close(a.cpu(), b, rtol=0, atol=1e-8 * max(1.0, float(b.abs().max())))
