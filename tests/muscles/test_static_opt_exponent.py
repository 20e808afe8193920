"""Static optimization with an activation exponent p != 2 (sequential QP): optimality
against an independent solver (SciPy SLSQP), first-order (KKT) conditions to a tight
tolerance, gradients (gradcheck and finite differences), batching and float32."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffbio.muscles import static_optimization
from diffbio.solvers import QPStatus
from tests.muscles.test_static_opt import _frames

BOUNDS = {"a_min": 0.0, "a_max": 0.3, "control_min": -2.0, "control_max": 2.0}
W = torch.tensor([1.0, 2.0, 1.0, 0.5, 1.0, 3.0, 1.0], dtype=torch.float64)


def _problem(tau, R, Fa, Fp, S, t):
    A = np.concatenate([R[t].T.numpy() * Fa[t].numpy()[None], S[t].numpy()], 1)
    b = tau[t].numpy() - R[t].T.numpy() @ Fp[t].numpy()
    return A, b


def _slsqp(A, b, c, p, M):
    """Independent reference: SciPy's SLSQP on min sum c |x|^p."""
    from scipy.optimize import minimize

    n = A.shape[1]
    bounds = [(BOUNDS["a_min"], BOUNDS["a_max"])] * M
    bounds += [(BOUNDS["control_min"], BOUNDS["control_max"])] * (n - M)
    r = minimize(
        lambda x: float(c @ np.abs(x) ** p),
        np.full(n, 0.1),
        jac=lambda x: p * c * np.abs(x) ** (p - 1) * np.sign(x),
        method="SLSQP",
        bounds=bounds,
        constraints=[{"type": "eq", "fun": lambda x: A @ x - b, "jac": lambda x: A}],
        options={"ftol": 1e-15, "maxiter": 2000},
    )
    assert np.abs(A @ r.x - b).max() < 1e-6
    return r.x


@pytest.mark.parametrize("p", [3.0, 2.5, 1.5])
def test_matches_independent_solver_and_kkt(p):
    tau, R, Fa, Fp, S = _frames(T=4)
    res = static_optimization(tau, R, Fa, Fp, S, weights=W, exponent=p, **BOUNDS)
    assert bool((res.status == int(QPStatus.SOLVED)).all())
    x = torch.cat([res.activations, res.controls], -1).numpy()
    c = np.concatenate([W.numpy(), np.ones(2)])
    lo = np.array([BOUNDS["a_min"]] * 7 + [BOUNDS["control_min"]] * 2)
    hi = np.array([BOUNDS["a_max"]] * 7 + [BOUNDS["control_max"]] * 2)
    n_at_bound = 0
    for t in range(tau.shape[0]):
        A, b = _problem(tau, R, Fa, Fp, S, t)
        ref = _slsqp(A, b, c, p, 7)
        # feasible, no worse than the independent solver, and close to it
        assert np.abs(A @ x[t] - b).max() < 1e-9
        assert (x[t] >= lo - 1e-12).all() and (x[t] <= hi + 1e-12).all()
        f = lambda z: c @ np.abs(z) ** p  # noqa: E731
        assert f(x[t]) <= f(ref) * (1 + 1e-10)
        np.testing.assert_allclose(x[t], ref, atol=1e-6)
        # KKT: on free variables grad + A'y = 0 (y by least squares); at a bound the sign
        # of the multiplier is right
        g = p * c * np.abs(x[t]) ** (p - 1) * np.sign(x[t])
        at_lo, at_hi = x[t] <= lo + 1e-12, x[t] >= hi - 1e-12
        free = ~(at_lo | at_hi)
        n_at_bound += int((~free).sum())
        y = np.linalg.lstsq(A[:, free].T, -g[free], rcond=None)[0]
        r = g + A.T @ y
        assert np.abs(r[free]).max() <= 1e-9 * (1 + np.abs(g).max())
        assert (r[at_lo] >= -1e-9).all() and (r[at_hi] <= 1e-9).all()
    assert n_at_bound > 0  # the bounds take part


def _loss(tau, R, Fa, w, p=3.0):
    S = torch.zeros(3, 1, dtype=tau.dtype)
    S[2, 0] = 2.0
    res = static_optimization(tau, R, Fa, None, S, weights=w, a_min=0.0, a_max=1.0, exponent=p)
    return res.activations, res.controls


def test_gradcheck_float64():
    tau, R, Fa, _, _ = _frames(T=2, M=5, Q=3)
    w = torch.tensor([1.0, 2.0, 1.5, 1.0, 0.7], dtype=torch.float64)
    args = tuple(t.clone().requires_grad_() for t in (tau, R, Fa, w))
    a = _loss(*args)[0]
    assert bool(((a > 1e-3) & (a < 1.0 - 1e-3)).any())
    assert torch.autograd.gradcheck(_loss, args, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


@pytest.mark.parametrize("p", [3.0, 1.5])
def test_gradient_matches_finite_differences(p):
    """Autograd vs central differences w.r.t. every entry of tau, F_active_per_a and the
    weights; the perturbed problems are solved as one batch."""
    tau, R, Fa, _, _ = _frames(T=2, M=5, Q=3, seed=4)
    w = torch.tensor([1.0, 2.0, 1.5, 1.0, 0.7], dtype=torch.float64)
    probe = torch.randn(2, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    tau_r, fa_r, w_r = tau.clone().requires_grad_(), Fa.clone().requires_grad_(), w.clone()
    w_r.requires_grad_()
    a, _ = _loss(tau_r, R, fa_r, w_r, p)
    g_tau, g_fa, g_w = torch.autograd.grad((a * probe).sum(), (tau_r, fa_r, w_r))
    for x, g, h, which in ((tau, g_tau, 1e-5, 0), (Fa, g_fa, 1e-4, 1)):
        n = x.numel()
        d = (h * torch.eye(n, dtype=x.dtype)).view(n, *x.shape)
        xs = torch.cat([x + d, x - d])
        args = (xs, R, Fa) if which == 0 else (tau, R, xs)
        out = (_loss(*args, w, p)[0] * probe).sum((-1, -2))
        fd = ((out[:n] - out[n:]) / (2 * h)).view_as(x)
        torch.testing.assert_close(g, fd, atol=1e-7, rtol=1e-5)
        assert g.abs().max() > 1e-6
    fd_w = []
    for i in range(w.numel()):
        e = torch.zeros_like(w)
        e[i] = 1e-6
        up = (_loss(tau, R, Fa, w + e, p)[0] * probe).sum()
        dn = (_loss(tau, R, Fa, w - e, p)[0] * probe).sum()
        fd_w.append((up - dn) / 2e-6)
    torch.testing.assert_close(g_w, torch.stack(fd_w), atol=1e-7, rtol=1e-5)


def test_exponent_two_is_the_qp_and_batches_and_float32():
    tau, R, Fa, Fp, S = _frames(T=6)
    qp = static_optimization(tau, R, Fa, Fp, S, **BOUNDS)
    sqp = static_optimization(tau, R, Fa, Fp, S, exponent=2.0000001, **BOUNDS)
    torch.testing.assert_close(sqp.activations, qp.activations, atol=1e-6, rtol=0)
    flat = static_optimization(tau, R, Fa, Fp, S, exponent=3.0, **BOUNDS)
    res = static_optimization(
        tau.view(2, 3, -1),
        R.view(2, 3, *R.shape[1:]),
        Fa.view(2, 3, -1),
        Fp.view(2, 3, -1),
        S.view(2, 3, *S.shape[1:]),
        exponent=3.0,
        **BOUNDS,
    )
    assert res.activations.shape == (2, 3, 7)
    torch.testing.assert_close(res.activations.reshape(6, 7), flat.activations)
    r32 = static_optimization(*(t.float() for t in (tau, R, Fa, Fp, S)), exponent=3.0, **BOUNDS)
    assert r32.activations.dtype == torch.float32 and bool((r32.status == 0).all())
    torch.testing.assert_close(r32.activations.double(), flat.activations, atol=2e-4, rtol=0)


def test_not_converged_frames_are_reported():
    tau, R, Fa, Fp, S = _frames(T=3)
    res = static_optimization(tau, R, Fa, Fp, S, exponent=3.0, max_newton=1, **BOUNDS)
    assert bool((res.status == int(QPStatus.MAX_ITER)).all())
    assert bool(res.activations.isnan().all())
