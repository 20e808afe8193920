"""The nonlinear refinement (kinematics adjusted too; theseus Levenberg-Marquardt, Newton
polish, exact implicit backward): residuals removed, the structured Jacobian and the full
Hessian against autograd, gradients against central differences and gradcheck."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffbio.dynamics import load_trial, plate_loads, required_root_wrench
from diffbio.dynamics._refine_kinematic import (
    _Problem,
    _solve_augmented,
    difference_operators,
    refine_with_kinematics,
)
from diffbio.model import load_osim
from tests.conftest import opensim_data_path

pytest.importorskip("theseus")


@pytest.fixture(scope="module")
def data():
    """Three frames (60 Hz) of subject01's walk, one foot on a plate, the other landing."""
    d = opensim_data_path("gait2392")
    model = load_osim(d / "subject01_simbody.osim")
    trial = load_trial(
        model, d / "subject01_walk1_ik.mot", d / "subject01_walk1_grf.xml",
        time_range=(0.6, 0.64), lowpass_hz=6.0,
    )  # fmt: skip
    q, qd, qdd = (a[None] for a in (trial.q, trial.qd, trial.qdd))
    F, P, Tq = (a[None] for a in plate_loads(model, trial.loads, trial.time))
    dt = float(np.diff(trial.time).mean())
    c = F[..., 1] > 20.0
    kw = {"time_step": dt, "contact": c, "max_iterations": 20}
    return model, (q, qd, qdd, F, P, Tq), c, kw


@pytest.fixture(scope="module")
def solved(data):
    model, (q, qd, qdd, F, P, Tq), c, kw = data
    qi, Fi = q.clone().requires_grad_(True), F.clone().requires_grad_(True)
    out = refine_with_kinematics(model, qi, qd, qdd, Fi, P, Tq, **kw)
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(out.force.shape, generator=gen, dtype=torch.float64)
    gq, gF = torch.autograd.grad((out.force * w).sum(), (qi, Fi))
    return out, w, gq, gF


def _problem(data):
    model, theta, c, kw = data
    B, T, Q = theta[0].shape
    D1, D2 = difference_operators(T, kw["time_step"])
    mask = c.double().unsqueeze(-1)
    return _Problem(model, T, Q, theta[3].shape[2], D1, D2, mask, 0.01, 0.01, 5.0, 1.0)


def test_residuals_removed(data, solved):
    model, (q, qd, qdd, F, P, Tq), c, kw = data
    out = solved[0]
    f_req, n_req = required_root_wrench(model, q, qd, qdd)
    m = c.unsqueeze(-1).double()
    before = torch.cat(
        [f_req - (m * F).sum(2), n_req - (torch.linalg.cross(P, m * F) + m * Tq).sum(2)], -1
    )
    assert before.abs().max() > 10.0  # N or N m: the measured loads leave residuals
    assert out.residual.abs().max() < 1e-3 * before.abs().max()
    assert bool(out.converged.all())


def test_jacobian_and_hessian_exact(data):
    """theseus' Jacobian (structured, per frame) and the backward's full Hessian equal
    autograd's, block by block (the Hessian spans ~16 decades)."""
    problem, theta = _problem(data), data[1]
    gen = torch.Generator().manual_seed(1)
    x = 1e-2 * torch.randn(1, problem.n, generator=gen, dtype=torch.float64)
    J, e = problem.jacobian(x, theta)
    J_ref = torch.autograd.functional.jacobian(
        lambda y: problem.errors(y[None], theta)[0], x[0], vectorize=True
    )
    torch.testing.assert_close(J[0], J_ref, rtol=1e-12, atol=1e-9 * J_ref.abs().max())
    H, g, _ = problem.hessian(x, theta)
    H_ref = torch.autograd.functional.hessian(
        lambda y: 0.5 * problem.errors(y[None], theta).square().sum(), x[0], vectorize=True
    )
    k = problem.T * problem.Q
    for rows, cols in ((slice(0, k), slice(0, k)), (slice(0, k), slice(k, None)),
                       (slice(k, None), slice(k, None))):  # fmt: skip
        ref = H_ref[rows, cols]
        torch.testing.assert_close(H[0][rows, cols], ref, rtol=1e-10, atol=1e-12 * ref.abs().max())
    torch.testing.assert_close(g[0], J_ref.T @ e[0], rtol=1e-10, atol=1e-6)


def test_augmented_solve_matches_normal_equations():
    """``[[-I, J], [J^T, S]] [w; v] = [a; b]`` gives ``(J^T J + S) v = b + J^T a``."""
    gen = torch.Generator().manual_seed(4)
    J = torch.randn(2, 9, 5, generator=gen, dtype=torch.float64)
    J[:, :3] *= 10.0  # heavier residual-like rows
    S0 = torch.randn(2, 5, 5, generator=gen, dtype=torch.float64)
    S = 0.1 * (S0 + S0.transpose(1, 2))
    a = torch.randn(2, 9, generator=gen, dtype=torch.float64)
    b = torch.randn(2, 5, generator=gen, dtype=torch.float64)
    v = _solve_augmented(J, S, a, b)
    H = J.transpose(1, 2) @ J + S
    ref = torch.linalg.solve(H, (b + (J.transpose(1, 2) @ a.unsqueeze(-1)).squeeze(-1)))
    torch.testing.assert_close(v, ref, rtol=1e-10, atol=1e-13)


def _fd(data, w, direction, h):
    model, theta, c, kw = data

    def loss(sign):
        th_ = [a + sign * h * u if u is not None else a for a, u in zip(theta, direction)]
        with torch.no_grad():
            return (refine_with_kinematics(model, *th_, **kw).force * w).sum()

    return float((loss(1.0) - loss(-1.0)) / (2 * h))


def test_force_gradient_matches_finite_differences(data, solved):
    out, w, gq, gF = solved
    u = torch.randn(gF.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    fd = _fd(data, w, (None, None, None, u, None, None), 1e-4)
    an = float((gF * u).sum())
    # exact implicit gradient: ~1e-8 relative measured (1.4e-2 with theseus' implicit
    # Gauss-Newton backward)
    assert abs(fd - an) <= 1e-5 * abs(an)


def test_q_gradient_matches_finite_differences(data, solved):
    out, w, gq, gF = solved
    u = torch.randn(gq.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    # q reaches qdd through D2 (1/dt^2): central differences need a small step (h^2 error)
    fd = _fd(data, w, (u, None, None, None, None, None), 1e-6)
    an = float((gq * u).sum())
    # ~5e-8 relative measured (7.7e-2 with theseus' implicit Gauss-Newton backward)
    assert abs(fd - an) <= 1e-5 * abs(an)


def test_gradcheck_all_measured_inputs(data):
    """float64 gradcheck w.r.t. q, qd, qdd, force, point and torque at once (packed into one
    input, fast mode: one random direction, two converged solves)."""
    model, theta, c, kw = data
    shapes = [a.shape for a in theta]
    sizes = [a.numel() for a in theta]
    packed = torch.cat([a.reshape(-1) for a in theta]).requires_grad_(True)

    def fn(p):
        args = [a.reshape(s) for a, s in zip(p.split(sizes), shapes)]
        out = refine_with_kinematics(model, *args, **kw)
        assert bool(out.converged.all())
        return torch.cat([a.flatten() for a in (out.q, out.qdd, out.force, out.moment)])

    # (no undefined-gradient pass: it would cost one more solve)
    assert torch.autograd.gradcheck(
        fn, (packed,), eps=1e-6, atol=1e-6, rtol=1e-5, fast_mode=True, check_undefined_grad=False
    )
