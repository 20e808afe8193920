"""Gradients of lengths and moment arms (float64 gradcheck, finite differences)."""

from __future__ import annotations

import torch

from diffbio.model import load_osim
from diffbio.muscles._path_length import moment_arms, muscle_tendon_lengths
from tests.conftest import opensim_data_path


def _model():
    return load_osim(opensim_data_path("leg6dof9musc", "leg6dof9musc.osim"))


def _q(model, n=2):
    q = model.default_q().expand(n, -1).clone()
    q[:, 3] = torch.tensor([0.3, -0.2])[:n]  # hip
    q[:, 4] = torch.tensor([-0.6, -1.1])[:n]  # knee
    q[:, 5] = q[:, 4]  # patella coupler (identity)
    q[:, 6] = torch.tensor([0.1, -0.2])[:n]
    return q


def test_gradcheck_lengths_and_moment_arms_wrt_q_and_scales():
    model = _model()
    q = _q(model, 1).requires_grad_(True)
    base = 1.0 + 0.1 * torch.rand(model.num_bodies, 3, dtype=torch.float64)
    p = base[1:3].clone().requires_grad_(True)  # femur and tibia factors

    def scales(p):
        return torch.cat([base[:1], p, base[3:]])

    assert torch.autograd.gradcheck(lambda q, p: muscle_tendon_lengths(model, q, scales(p)), (q, p))
    assert torch.autograd.gradcheck(lambda q, p: moment_arms(model, q, scales(p))[..., 3:5], (q, p))


def test_moment_arms_are_minus_length_derivatives():
    model = _model()
    q = _q(model)
    r = moment_arms(model, q)
    h = 1e-6
    for j in (3, 6):
        e = torch.zeros_like(q)
        e[:, j] = h
        fd = -(muscle_tendon_lengths(model, q + e) - muscle_tendon_lengths(model, q - e)) / (2 * h)
        assert torch.allclose(r[..., j], fd, atol=1e-8)
    # coupled knee: the patella follows, so the total derivative is along (1, f'=1)
    e = torch.zeros_like(q)
    e[:, 4] = e[:, 5] = h
    fd = -(muscle_tendon_lengths(model, q + e) - muscle_tendon_lengths(model, q - e)) / (2 * h)
    assert torch.allclose(r[..., 4], fd, atol=1e-8)


def test_scaled_lengths_match_finite_differences_and_identity():
    model = _model()
    q = _q(model)
    ones = torch.ones(model.num_bodies, 3, dtype=torch.float64)
    assert torch.allclose(muscle_tendon_lengths(model, q, ones), muscle_tendon_lengths(model, q))
    s = ones.clone().requires_grad_(True)
    g = torch.autograd.grad(muscle_tendon_lengths(model, q, s)[..., 5].sum(), s)[0]
    h = 1e-6
    e = torch.zeros_like(ones)
    e[2, 1] = h  # tibia Y
    fd = (muscle_tendon_lengths(model, q, ones + e) - muscle_tendon_lengths(model, q, ones - e))[
        ..., 5
    ].sum() / (2 * h)
    assert abs(g[2, 1] - fd) < 1e-7
    assert g[2, 1] != 0
