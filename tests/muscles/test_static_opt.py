"""Static optimization core on synthetic frames: optimality against an independent solver
(SciPy SLSQP), gradients (gradcheck and finite differences), float32, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffbio import DiffbioError, ShapeError
from diffbio.muscles import static_optimization
from diffbio.solvers import QPStatus


def _frames(T=3, M=7, Q=3, NA=2, dtype=torch.float64, seed=1):
    g = torch.Generator().manual_seed(seed)
    R = 0.05 * torch.randn(T, M, Q, generator=g, dtype=dtype)
    Fa = 500.0 + 1000.0 * torch.rand(T, M, generator=g, dtype=dtype)
    Fp = 20.0 * torch.rand(T, M, generator=g, dtype=dtype)
    S = torch.zeros(T, Q, NA, dtype=dtype)
    S[:, 0, 0] = 10.0
    S[:, 1, 1] = 5.0
    a_true = 0.05 + 0.3 * torch.rand(T, M, generator=g, dtype=dtype)
    tau = (R.transpose(-1, -2) @ (a_true * Fa).unsqueeze(-1)).squeeze(-1)
    return tau, R, Fa, Fp, S


def _reference(tau, R, Fa, Fp, S, w, v, a_min, a_max, cmin, cmax):
    """Independent solver: SciPy's SLSQP on the same problem, frame by frame."""
    from scipy.optimize import minimize

    out = []
    M = R.shape[1]
    c = np.concatenate([w, v])
    for t in range(tau.shape[0]):
        A = np.concatenate([R[t].T.numpy() * Fa[t].numpy()[None], S[t].numpy()], 1)
        b = tau[t].numpy() - R[t].T.numpy() @ Fp[t].numpy()
        n = A.shape[1]
        bounds = [(a_min, a_max)] * M + [(cmin, cmax)] * (n - M)
        r = minimize(
            lambda x: float(c @ x**2),
            np.full(n, 0.5 * (a_min + a_max)),
            jac=lambda x: 2 * c * x,
            method="SLSQP",
            bounds=bounds,
            constraints=[
                {"type": "eq", "fun": lambda x, A=A, b=b: A @ x - b, "jac": lambda x, A=A: A}
            ],
            options={"ftol": 1e-12, "maxiter": 1000},
        )
        assert np.abs(A @ r.x - b).max() < 1e-6  # SLSQP's point is feasible
        out.append(r.x)
    return np.stack(out)


def test_matches_independent_qp_solver_with_active_bounds():
    tau, R, Fa, Fp, S = _frames()
    w = np.array([1.0, 2.0, 1.0, 0.5, 1.0, 3.0, 1.0])
    res = static_optimization(
        tau,
        R,
        Fa,
        Fp,
        S,
        weights=torch.tensor(w),
        actuator_weights=1.0,
        a_min=0.1,
        a_max=0.3,
        control_min=-2.0,
        control_max=2.0,
    )
    assert bool((res.status == int(QPStatus.SOLVED)).all())
    ref = _reference(tau, R, Fa, Fp, S, w, np.ones(2), 0.1, 0.3, -2.0, 2.0)
    x = torch.cat([res.activations, res.controls], -1).numpy()
    c = np.concatenate([w, np.ones(2)])
    # feasible, and no worse than the independent solver (unique optimum: close to it)
    assert (x[:, :7] >= 0.1 - 1e-9).all() and (x[:, :7] <= 0.3 + 1e-9).all()
    assert ((x**2) @ c <= (ref**2) @ c + 1e-9).all()
    np.testing.assert_allclose(x, ref, atol=1e-4)
    # some bounds are active, so the comparison exercises the inequality handling
    a = res.activations
    assert bool(((a - 0.1).abs() < 1e-7).any() | ((a - 0.3).abs() < 1e-7).any())
    # the generalized forces are produced exactly
    prod = (R.transpose(-1, -2) @ (res.muscle_forces).unsqueeze(-1)).squeeze(-1) + (
        S @ res.controls.unsqueeze(-1)
    ).squeeze(-1)
    torch.testing.assert_close(prod, tau, atol=1e-7, rtol=0)
    torch.testing.assert_close(res.moment_residual, torch.zeros_like(tau), atol=1e-7, rtol=0)


def test_passive_force_reduces_the_needed_activation_moment():
    tau, R, Fa, Fp, S = _frames()
    with_p = static_optimization(tau, R, Fa, Fp, S)
    without = static_optimization(tau, R, Fa, None, S)
    # with passive force, muscles produce tau - R^T Fp by activation
    lhs = (R.transpose(-1, -2) @ (with_p.activations * Fa).unsqueeze(-1)).squeeze(-1)
    lhs = lhs + (S @ with_p.controls.unsqueeze(-1)).squeeze(-1)
    rhs = tau - (R.transpose(-1, -2) @ Fp.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(lhs, rhs, atol=1e-7, rtol=0)
    assert not torch.allclose(with_p.activations, without.activations)
    torch.testing.assert_close(with_p.muscle_forces, with_p.activations * Fa + Fp)


def _loss(tau, R, Fa, w):
    S = torch.zeros(3, 1, dtype=tau.dtype)
    S[2, 0] = 2.0
    res = static_optimization(tau, R, Fa, None, S, weights=w, a_min=0.0, a_max=1.0)
    return res.activations, res.controls


def test_gradcheck_float64():
    tau, R, Fa, _, _ = _frames(T=2, M=5, Q=3)
    w = torch.tensor([1.0, 2.0, 1.5, 1.0, 0.7], dtype=torch.float64)
    args = tuple(t.clone().requires_grad_() for t in (tau, R, Fa, w))
    a = _loss(*args)[0]
    assert bool(((a > 1e-3) & (a < 1.0 - 1e-3)).any())  # interior activations to probe
    assert torch.autograd.gradcheck(_loss, args, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


def test_gradient_matches_finite_differences():
    """Autograd vs central differences w.r.t. every entry of tau and F_active_per_a; the
    perturbed problems are solved as one batch."""
    tau, R, Fa, _, _ = _frames(T=2, M=5, Q=3, seed=4)
    w = torch.ones(5, dtype=torch.float64)
    probe = torch.randn(2, 5, dtype=torch.float64)
    tau_r, fa_r = tau.clone().requires_grad_(), Fa.clone().requires_grad_()
    a, _ = _loss(tau_r, R, fa_r, w)
    g_tau, g_fa = torch.autograd.grad((a * probe).sum(), (tau_r, fa_r))
    for x, g, h, which in ((tau, g_tau, 1e-5, 0), (Fa, g_fa, 1e-4, 1)):
        n = x.numel()
        d = (h * torch.eye(n, dtype=x.dtype)).view(n, *x.shape)
        xs = torch.cat([x + d, x - d])  # (2n, ...) one batch
        args = (xs, R, Fa) if which == 0 else (tau, R, xs)
        out = (_loss(*args, w)[0] * probe).sum((-1, -2))
        fd = ((out[:n] - out[n:]) / (2 * h)).view_as(x)
        torch.testing.assert_close(g, fd, atol=1e-7, rtol=1e-5)
        assert g.abs().max() > 1e-6  # a non-trivial gradient


def test_float32_agrees_with_float64():
    tau, R, Fa, Fp, S = _frames(T=4)
    r64 = static_optimization(tau, R, Fa, Fp, S)
    r32 = static_optimization(*(t.float() for t in (tau, R, Fa, Fp, S)))
    assert r32.activations.dtype == torch.float32
    torch.testing.assert_close(r32.activations.double(), r64.activations, atol=2e-4, rtol=0)


def test_leading_batch_dimensions_are_kept():
    tau, R, Fa, Fp, S = _frames(T=6)
    flat = static_optimization(tau, R, Fa, Fp, S)
    res = static_optimization(
        tau.view(2, 3, -1),
        R.view(2, 3, *R.shape[1:]),
        Fa.view(2, 3, -1),
        Fp.view(2, 3, -1),
        S.view(2, 3, *S.shape[1:]),
    )
    assert res.activations.shape == (2, 3, 7)
    torch.testing.assert_close(res.activations.reshape(6, 7), flat.activations)


def test_uncontrolled_coordinate_is_dropped_and_reported():
    tau, R, Fa, Fp, _ = _frames(Q=3)
    R[..., 2] = 0.0
    res = static_optimization(tau, R, Fa, None)
    assert bool((res.status == 0).all())
    torch.testing.assert_close(res.moment_residual[..., 2], tau[..., 2])


def test_errors():
    tau, R, Fa, Fp, S = _frames()
    with pytest.raises(ShapeError):
        static_optimization(tau, R[..., :2], Fa)
    with pytest.raises(ShapeError):
        static_optimization(tau, R, Fa[..., :3])
    for p in (1.0, 0.5, float("inf")):
        with pytest.raises(DiffbioError, match="exponent"):
            static_optimization(tau, R, Fa, exponent=p)
