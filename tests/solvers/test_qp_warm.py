"""Warm-started active-set path of ``solve_qp``: the same solutions, multipliers, statuses
and gradients as the cold interior-point path, from good, empty and wrong guesses."""

from __future__ import annotations

import pytest
import torch

from diffbio import ShapeError
from diffbio.solvers import QPOptions, QPStatus, solve_qp
from tests.solvers.qp_problems import clarabel_solve, dense_batch, so_batch

F64 = torch.float64


def _guesses(cold, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    B = cold.x.shape[0]
    none = torch.zeros(B, n, dtype=torch.bool)
    flip = torch.rand(B, n, generator=g) < 0.1  # the right set with 10 % of entries flipped
    return {
        "exact": (cold.z_lower > 0, cold.z_upper > 0),
        "empty": (none, none),
        "perturbed": ((cold.z_lower > 0) ^ flip, (cold.z_upper > 0) & ~flip),
    }


@pytest.mark.parametrize("weighted", [False, True])
def test_warm_start_equals_cold_solution_and_clarabel(weighted):
    P, q, A, b, lo, hi = so_batch(8, n_muscles=30, n_reserves=8, n_coords=8, seed=5,
                                  weighted=weighted)  # fmt: skip
    cold = solve_qp(P, q, A, b, lo, hi)
    assert bool(cold.solved.all())
    for name, guess in _guesses(cold, q.shape[-1]).items():
        warm = solve_qp(P, q, A, b, lo, hi, warm_start=guess)
        assert bool(warm.solved.all()), name
        torch.testing.assert_close(warm.x, cold.x, atol=1e-10, rtol=0)
        torch.testing.assert_close(warm.y_eq, cold.y_eq, atol=1e-8, rtol=1e-8)
        torch.testing.assert_close(warm.z_lower, cold.z_lower, atol=1e-8, rtol=1e-8)
        torch.testing.assert_close(warm.z_upper, cold.z_upper, atol=1e-8, rtol=1e-8)
        assert float(warm.primal_residual.max()) < 1e-9
        assert float(warm.dual_residual.max()) < 1e-8
    # the exact guess needs no interior-point iteration at all; chunks give the same
    guess = _guesses(cold, q.shape[-1])["exact"]
    exact = solve_qp(P, q, A, b, lo, hi, warm_start=guess)
    assert int(exact.iterations.max()) == 0
    chunked = solve_qp(P, q, A, b, lo, hi, warm_start=guess, options=QPOptions(chunk_size=3))
    torch.testing.assert_close(chunked.x, exact.x, atol=0, rtol=0)
    Pn = P.expand(8, -1) if P.dim() == 1 else P
    for i in range(3):
        ref, st = clarabel_solve(Pn[i].numpy(), q.numpy(), A[i].numpy(), b[i].numpy(),
                                 lo.numpy(), hi.numpy())  # fmt: skip
        assert st == "Solved"
        torch.testing.assert_close(exact.x[i], torch.as_tensor(ref), atol=1e-6, rtol=0)


def test_warm_start_dense_with_inequalities():
    P, q, A, b, lo, hi, G, h = dense_batch(5, n=8, m=2, p=3, seed=2)
    cold = solve_qp(P, q, A, b, lo, hi, G, h)
    guess = (cold.z_lower > 0, cold.z_upper > 0, cold.z_ineq > 0)
    warm = solve_qp(P, q, A, b, lo, hi, G, h, warm_start=guess)
    torch.testing.assert_close(warm.x, cold.x, atol=1e-10, rtol=0)
    assert int(warm.iterations.max()) == 0
    empty = solve_qp(P, q, A, b, lo, hi, G, h, warm_start=guess[:2])
    torch.testing.assert_close(empty.x, cold.x, atol=1e-10, rtol=0)


def test_warm_start_gradients_equal_cold_and_gradcheck():
    P, q, A, b, lo, hi = so_batch(3, n_muscles=8, n_reserves=3, n_coords=3, seed=1,
                                  weighted=True)  # fmt: skip
    cold = solve_qp(P, q, A, b, lo, hi)
    guess = _guesses(cold, q.shape[-1])["perturbed"]
    probe = torch.randn(cold.x.shape, generator=torch.Generator().manual_seed(3), dtype=F64)

    def grads(ws):
        args = [t.clone().requires_grad_() for t in (P, A, b)]
        x = solve_qp(args[0], q, args[1], args[2], lo, hi, warm_start=ws).x
        return torch.autograd.grad((x * probe).sum(), args)

    for gc, gw in zip(grads(None), grads(guess)):
        torch.testing.assert_close(gw, gc, atol=1e-9, rtol=1e-7)
    args = tuple(t.clone().requires_grad_() for t in (P, A, b))
    assert torch.autograd.gradcheck(
        lambda P, A, b: solve_qp(P, q, A, b, lo, hi, warm_start=guess).x,
        args,
        eps=1e-6,
        atol=1e-5,
        rtol=1e-4,
        fast_mode=True,
    )


def test_warm_start_keeps_infeasible_statuses():
    P, q, A, b, lo, hi = so_batch(4, n_muscles=18, n_reserves=10, n_coords=10, seed=11)
    lo, hi = lo.expand(4, -1).clone(), hi.expand(4, -1).clone()
    b = b.clone()
    b[1] *= 1e4
    lo[3, 0] = 2.0
    none = torch.zeros(q.shape[-1], dtype=torch.bool)
    sol = solve_qp(P, q, A, b, lo, hi, warm_start=(none, none))
    pinf = int(QPStatus.PRIMAL_INFEASIBLE)
    assert sol.status.tolist() == [0, pinf, 0, pinf]
    assert bool(torch.isnan(sol.x[1]).all())
    with pytest.raises(ShapeError):
        solve_qp(P, q, A, b, lo, hi, warm_start=(none,))
