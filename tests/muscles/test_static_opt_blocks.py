"""Static optimization split into the constraints' connected components (``decompose``):
same solution, statuses and gradients as one QP per frame; gradients (gradcheck, finite
differences) including w.r.t. the exactly-zero moment arms between components."""

from __future__ import annotations

import pytest
import torch

from diffbio.muscles import static_optimization
from diffbio.muscles._static_opt import _blocks
from diffbio.muscles._static_opt_trial import structural_zeros
from diffbio.solvers import QPStatus

A_MIN = torch.tensor([0.0] * 6 + [-0.1], dtype=torch.float64)


def _frames(T=2, seed=3, dtype=torch.float64):
    """Three components: muscles 0-2 on coordinates 0-1 (with actuator 0 on coordinate 0),
    muscles 3-5 on coordinates 2-3, actuator 1 alone on coordinate 4; muscle 6 crosses no
    kept coordinate (a free variable, with a_min < 0 so that its optimum 0 is not on a
    bound, where the solution would not be differentiable)."""
    g = torch.Generator().manual_seed(seed)
    M, Q = 7, 5
    R = torch.zeros(T, M, Q, dtype=dtype)
    R[:, 0:3, 0:2] = 0.05 * torch.randn(T, 3, 2, generator=g, dtype=dtype)
    R[:, 3:6, 2:4] = 0.05 * torch.randn(T, 3, 2, generator=g, dtype=dtype)
    Fa = 500.0 + 1000.0 * torch.rand(T, M, generator=g, dtype=dtype)
    S = torch.zeros(T, Q, 2, dtype=dtype)
    S[:, 0, 0] = 10.0
    S[:, 4, 1] = 8.0
    a_true = 0.05 + 0.22 * torch.rand(T, M, generator=g, dtype=dtype)
    tau = (R.transpose(-1, -2) @ (a_true * Fa).unsqueeze(-1)).squeeze(-1)
    tau = tau + (S @ torch.tensor([0.5, -0.3], dtype=dtype)).squeeze(-1)
    return tau, R, Fa, S


def _solve(tau, R, Fa, S, w=1.0, decompose=True, exponent=2.0):
    return static_optimization(
        tau, R, Fa, None, S, weights=w, a_min=A_MIN.to(tau.dtype), a_max=0.3, control_min=-1.0,
        control_max=1.0, exponent=exponent, decompose=decompose,
        keep=torch.ones(R.shape[-1], dtype=torch.bool),
    )  # fmt: skip


def test_components_found():
    tau, R, Fa, S = _frames()
    A = torch.cat([R.transpose(-1, -2) * Fa.unsqueeze(-2), S], -1)
    blk = _blocks(A)
    assert blk is not None and blk.rows.shape[0] == 3
    # every row and variable appears exactly once
    assert sorted(blk.row_pos.tolist()) == sorted(set(blk.row_pos.tolist()))
    assert sorted(blk.col_pos.tolist()) == sorted(set(blk.col_pos.tolist()))
    # a coupling entry joins two components into one
    A2 = A.clone()
    A2[1, 4, 0] = 1e-3
    assert _blocks(A2).rows.shape[0] == 2
    A2[0, 2, 1] = 1e-3
    assert _blocks(A2) is None


@pytest.mark.parametrize("exponent", [2.0, 3.0, 1.5])
def test_same_solution_as_one_qp_per_frame(exponent):
    tau, R, Fa, S = _frames(T=4)
    w = torch.tensor([1.0, 2.0, 0.5, 1.0, 1.5, 1.0, 3.0], dtype=torch.float64)
    dec = _solve(tau, R, Fa, S, w, True, exponent)
    one = _solve(tau, R, Fa, S, w, False, exponent)
    assert bool((dec.status == int(QPStatus.SOLVED)).all())
    torch.testing.assert_close(dec.status, one.status)
    for f in ("activations", "controls", "muscle_forces", "moment_residual"):
        torch.testing.assert_close(getattr(dec, f), getattr(one, f), atol=1e-9, rtol=0)
    a = dec.activations[..., :6]
    assert bool((a < 1e-9).any())  # lower bounds active: exercised
    assert bool((dec.activations[..., 6].abs() < 1e-12).all())  # the free muscle stays off


def test_a_frame_is_solved_only_if_all_its_components_are():
    tau, R, Fa, S = _frames(T=3)
    tau[1, 2] = 1e5  # component 2 (coordinates 2-3) cannot produce this at frame 1
    dec = _solve(tau, R, Fa, S)
    one = _solve(tau, R, Fa, S, decompose=False)
    solved = dec.status == int(QPStatus.SOLVED)
    assert solved.tolist() == [True, False, True]
    assert (one.status == int(QPStatus.SOLVED)).tolist() == [True, False, True]
    assert bool(dec.activations[1].isnan().all() and dec.controls[1].isnan().all())
    torch.testing.assert_close(dec.activations[solved], one.activations[solved], atol=1e-9, rtol=0)


def _loss(tau, R, Fa, w):
    S = _frames()[3]
    r = _solve(tau, R, Fa, S, w)
    return r.activations, r.controls


def test_gradcheck_float64_including_zero_moment_arms():
    tau, R, Fa, _ = _frames(T=2, seed=5)
    w = torch.tensor([1.0, 2.0, 1.5, 1.0, 0.7, 1.2, 1.0], dtype=torch.float64)
    args = tuple(t.clone().requires_grad_() for t in (tau, R, Fa, w))
    a = _loss(*args)[0]
    assert bool(((a > 1e-3) & (a < 0.3 - 1e-3)).any())
    assert torch.autograd.gradcheck(_loss, args, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


def test_gradients_match_one_qp_per_frame_and_finite_differences():
    tau, R, Fa, S = _frames(T=2, seed=6)
    probe = torch.randn(2, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    grads = []
    for dec in (True, False):
        tr, Rr = tau.clone().requires_grad_(), R.clone().requires_grad_()
        a = _solve(tr, Rr, Fa, S, decompose=dec).activations
        grads.append(torch.autograd.grad((a * probe).sum(), (tr, Rr)))
    for gd, go in zip(*grads):
        torch.testing.assert_close(gd, go, atol=1e-9, rtol=1e-7)
    g_R = grads[0][1]
    # between components, where R is exactly 0, the derivative is not 0
    assert g_R[:, 0:3, 2:4].abs().max() > 1e-6 and g_R[:, 3:6, 0:2].abs().max() > 1e-6
    # central differences w.r.t. every moment arm of frame 0 (one batch of 2 * 35 problems)
    h = 1e-6
    n = 7 * 5
    d = (h * torch.eye(n, dtype=R.dtype)).view(n, 7, 5)
    Rs = torch.cat([R[0] + d, R[0] - d])
    out = (_solve(tau[0].expand(2 * n, 5), Rs, Fa[0], S[0]).activations * probe[0]).sum(-1)
    fd = ((out[:n] - out[n:]) / (2 * h)).view(7, 5)
    torch.testing.assert_close(g_R[0], fd, atol=1e-6, rtol=1e-5)


def test_structural_zeros_clears_rounding_noise_only():
    g = torch.Generator().manual_seed(2)
    R = 0.05 * torch.randn(4, 3, 2, generator=g, dtype=torch.float64)
    R[:, 0, 1] = 3e-16 * torch.randn(4, generator=g, dtype=torch.float64)  # noise
    R[:, 1, 1] = torch.tensor([0.02, 0.0, -0.01, 1e-17])  # crosses zero: genuine
    out = structural_zeros(R)
    assert bool((out[:, 0, 1] == 0).all())
    torch.testing.assert_close(out[:, 1:], R[:, 1:], atol=0, rtol=0)
    torch.testing.assert_close(out[:, 0, 0], R[:, 0, 0], atol=0, rtol=0)
