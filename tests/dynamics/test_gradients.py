"""Differentiability of inverse dynamics: gradcheck (float64) and finite differences, with
respect to kinematics, external loads, body inertial parameters and segment scales."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffbio.dynamics import (
    BodyInertial,
    BodyWrenches,
    body_inertial,
    inverse_dynamics,
    mass_matrix,
    root_residuals,
    scale_body_inertial,
)
from diffbio.model import load_osim
from tests.conftest import opensim_data_path


@pytest.fixture(scope="module")
def leg():
    return load_osim(opensim_data_path("leg6dof9musc", "leg6dof9musc.osim"))


def _inputs(model, batch=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    Q, NB = model.num_coordinates, model.num_bodies
    lo = torch.tensor([c.range[0] for c in model.coordinates], dtype=torch.float64)
    hi = torch.tensor([c.range[1] for c in model.coordinates], dtype=torch.float64)
    q = lo + (hi - lo) * torch.rand(batch, Q, generator=g, dtype=torch.float64)
    qd = torch.randn(batch, Q, generator=g, dtype=torch.float64)
    qdd = torch.randn(batch, Q, generator=g, dtype=torch.float64)
    f = 50 * torch.randn(batch, NB, 3, generator=g, dtype=torch.float64)
    t = 5 * torch.randn(batch, NB, 3, generator=g, dtype=torch.float64)
    p = 0.3 * torch.randn(batch, NB, 3, generator=g, dtype=torch.float64)
    scales = 1 + 0.1 * torch.randn(NB, 3, generator=g, dtype=torch.float64)
    return q, qd, qdd, f, t, p, scales


def test_gradcheck_all_inputs(leg):
    q, qd, qdd, f, t, p, scales = _inputs(leg)
    ip = body_inertial(leg)
    # distinct principal moments, so that the cylinder rule's axis choice (unequal scale
    # factors) is not at a tie, nor a moment at the clamp at 0, where it is not differentiable
    jitter = torch.tensor([1e-3, 2e-3, 3e-3, 0.0, 0.0, 0.0], dtype=torch.float64)
    args = [q, qd, qdd, f, t, p, ip.mass, ip.com, ip.inertia + jitter, scales]
    args = [a.clone().requires_grad_(True) for a in args]

    def fn(q, qd, qdd, f, t, p, mass, com, inertia, scales):
        return inverse_dynamics(
            leg,
            q,
            qd,
            qdd,
            BodyWrenches(f, t, p),
            scales=scales,
            inertial=BodyInertial(mass, com, inertia),
        )

    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-6, rtol=1e-6, fast_mode=True)


def test_gradcheck_mass_matrix_and_residuals(leg):
    q, qd, qdd, f, t, p, scales = _inputs(leg, batch=1, seed=1)
    q.requires_grad_(True)
    scales.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda q, s: mass_matrix(leg, q, scales=s),
        (q, scales),
        eps=1e-6,
        atol=1e-6,
        fast_mode=True,
    )
    T = 3
    qs, qds, qdds = (
        x.expand(T, -1).clone() + 0.01 * torch.arange(T)[:, None] for x in (q, qd, qdd)
    )
    qs = qs.detach().requires_grad_(True)
    F = f.expand(T, -1, -1).clone().requires_grad_(True)

    def res(qs, F):
        r = root_residuals(leg, qs, qds, qdds, BodyWrenches(F, 0 * F, 0 * F))
        return r.force, r.moment

    assert torch.autograd.gradcheck(res, (qs, F), eps=1e-6, atol=1e-6, fast_mode=True)


def test_jacobians_match_finite_differences(leg):
    q, qd, qdd, f, t, p, scales = _inputs(leg, seed=2)
    q, qd, qdd, scales = q[0], qd[0], qdd[0], scales
    loads = BodyWrenches(f[0], t[0], p[0])
    ip = body_inertial(leg)

    def tau_of(**kw):
        base = dict(q=q, qd=qd, qdd=qdd, scales=scales, mass=ip.mass)
        base.update(kw)
        return inverse_dynamics(
            leg,
            base["q"],
            base["qd"],
            base["qdd"],
            loads,
            scales=base["scales"],
            inertial=BodyInertial(base["mass"], ip.com, ip.inertia),
        )

    h = 1e-6
    for name, x in (("q", q), ("qd", qd), ("scales", scales), ("mass", ip.mass)):
        J = torch.autograd.functional.jacobian(lambda v, n=name: tau_of(**{n: v}), x)
        flat = x.reshape(-1)
        fd = []
        for k in range(flat.numel()):
            e = torch.zeros_like(flat)
            e[k] = h
            fd.append(
                (
                    tau_of(**{name: (flat + e).reshape(x.shape)})
                    - tau_of(**{name: (flat - e).reshape(x.shape)})
                )
                / (2 * h)
            )
        fd = torch.stack(fd, -1).reshape(J.shape)
        scale = max(1.0, float(J.abs().max()))
        assert float((J - fd).abs().max()) < 1e-6 * scale, name


def test_scale_body_inertial_matches_opensim():
    osim = pytest.importorskip("opensim")
    path = opensim_data_path("gait2392", "subject01_simbody.osim")
    model = load_osim(path)
    rng = np.random.default_rng(0)
    factors = 1 + 0.2 * rng.random((model.num_bodies, 3))
    factors[1] = 1.1  # equal factors: the exact s^2 rule
    for scale_mass in (True, False):
        om = osim.Model(str(path))
        om.initSystem()
        for b in range(model.num_bodies):
            om.getBodySet().get(b).scaleInertialProperties(osim.Vec3(*factors[b]), scale_mass)
        ours = scale_body_inertial(
            body_inertial(model), torch.tensor(factors), scale_mass=scale_mass
        )
        for b in range(model.num_bodies):
            body = om.getBodySet().get(b)
            assert abs(body.getMass() - float(ours.mass[b])) < 1e-12
            I = body.getInertia()
            mom, prod = I.getMoments(), I.getProducts()
            ref = [mom.get(0), mom.get(1), mom.get(2), prod.get(0), prod.get(1), prod.get(2)]
            np.testing.assert_allclose(ours.inertia[b].numpy(), ref, rtol=1e-12, atol=1e-14)


def test_chunked_equals_unchunked(leg):
    """``chunk_size`` slices the first leading dimension (per-sample loads and scales with
    it, shared ones as they are): same values and gradients as one call."""
    q, qd, qdd, f, t, p, _ = _inputs(leg, batch=6, seed=3)
    q, qd, qdd = (x.reshape(3, 2, -1) for x in (q, qd, qdd))
    loads = BodyWrenches(*(x.reshape(3, 2, -1, 3) for x in (f, t, p)))
    g = torch.Generator().manual_seed(4)
    scales = 1 + 0.1 * torch.randn(3, 1, leg.num_bodies, 3, generator=g, dtype=torch.float64)
    outs = []
    for chunk in (None, 2):
        x = q.clone().requires_grad_(True)
        tau = inverse_dynamics(leg, x, qd, qdd, loads, scales=scales, chunk_size=chunk)
        (gq,) = torch.autograd.grad(tau.square().sum(), x)
        outs.append((tau, gq))
    assert outs[0][0].shape == (3, 2, leg.num_coordinates)
    torch.testing.assert_close(outs[1][0], outs[0][0], rtol=0, atol=1e-9)
    torch.testing.assert_close(outs[1][1], outs[0][1], rtol=0, atol=1e-9)
