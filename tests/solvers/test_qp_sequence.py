"""Neighbour warm starts of ``solve_qp`` (``sequence_dim``): problems whose active-set
rounds do not settle retry from the nearest settled problem's active set along a batch
dimension. Same solutions, statuses and gradients as the cold interior-point path."""

from __future__ import annotations

import pytest
import torch

from diffbio import ShapeError
from diffbio.solvers import QPOptions, solve_qp
from diffbio.solvers._qp import _nearest_solved
from tests.solvers.qp_problems import so_batch


def _sequence(T: int, seed: int = 3):
    """(T, 2) slowly varying static-optimization problems (two independent sequences)."""
    P, q, A, b, lo, hi = so_batch(4, n_muscles=24, n_reserves=6, n_coords=6, seed=seed,
                                  reserve_bound=2.0)  # fmt: skip
    s = torch.linspace(0, 1, T, dtype=A.dtype).view(T, 1, 1, 1)
    A2 = A.view(2, 2, *A.shape[1:])
    b2 = b.view(2, 2, -1)
    At = (1 - s) * A2[:, 0] + s * A2[:, 1]  # (T, 2, m, n)
    bt = (1 - s[..., 0]) * b2[:, 0] + s[..., 0] * b2[:, 1]
    return P, q, At, bt, lo, hi


def test_nearest_solved_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    lines = torch.randperm(40, generator=g).view(5, 8)
    lines[1, 3] = -1  # a hole
    solved = torch.rand(40, generator=g) < 0.3
    donor = _nearest_solved(lines, solved)
    for i in range(5):
        for j in range(8):
            k = int(lines[i, j])
            if k < 0:
                continue
            cand = [(abs(j - jj), jj) for jj in range(8) if lines[i, jj] >= 0
                    and bool(solved[lines[i, jj]])]  # fmt: skip
            want = -1 if not cand else int(lines[i, min(cand)[1]])
            assert int(donor[k]) == want


def test_sequence_warm_start_equals_cold():
    P, q, A, b, lo, hi = _sequence(24)
    cold = solve_qp(P, q, A, b, lo, hi)
    assert bool(cold.solved.all())
    none = torch.zeros(q.shape[-1], dtype=torch.bool)
    for opts in (QPOptions(), QPOptions(chunk_size=17)):
        for dim in (0, -2):
            warm = solve_qp(P, q, A, b, lo, hi, options=opts, warm_start=(none, none),
                            sequence_dim=dim)  # fmt: skip
            assert torch.equal(warm.status, cold.status)
            torch.testing.assert_close(warm.x, cold.x, atol=1e-10, rtol=0)
            torch.testing.assert_close(warm.y_eq, cold.y_eq, atol=1e-8, rtol=1e-8)
            torch.testing.assert_close(warm.z_lower, cold.z_lower, atol=1e-8, rtol=1e-8)
            torch.testing.assert_close(warm.z_upper, cold.z_upper, atol=1e-8, rtol=1e-8)
    # the guess is far (empty) for problems with many active bounds: some go the neighbour way
    assert int((cold.z_lower > 0).sum(-1).max()) > 3
    with pytest.raises(ShapeError):
        solve_qp(P, q, A, b, lo, hi, warm_start=(none, none), sequence_dim=2)


def test_sequence_warm_start_gradients_equal_cold_and_gradcheck():
    P, q, A, b, lo, hi = _sequence(6, seed=4)
    none = torch.zeros(q.shape[-1], dtype=torch.bool)
    probe = torch.randn(A.shape[:-2] + A.shape[-1:], dtype=A.dtype,
                        generator=torch.Generator().manual_seed(1))  # fmt: skip

    def grads(**kw):
        args = [t.clone().requires_grad_() for t in (A, b)]
        x = solve_qp(P, q, args[0], args[1], lo, hi, **kw).x
        return torch.autograd.grad((x * probe).sum(), args)

    kw = dict(warm_start=(none, none), sequence_dim=0)
    for gc, gw in zip(grads(), grads(**kw)):
        torch.testing.assert_close(gw, gc, atol=1e-9, rtol=1e-7)
    # finite differences of the warm path w.r.t. b
    bb = b.clone()
    db = torch.randn(bb.shape, dtype=bb.dtype, generator=torch.Generator().manual_seed(2))
    h = 1e-6
    fp = (solve_qp(P, q, A, bb + h * db, lo, hi, **kw).x * probe).sum()
    fm = (solve_qp(P, q, A, bb - h * db, lo, hi, **kw).x * probe).sum()
    g_b = grads(**kw)[1]
    torch.testing.assert_close((fp - fm) / (2 * h), (g_b * db).sum(), atol=1e-6, rtol=1e-5)
    args = tuple(t.clone().requires_grad_() for t in (A[:3], b[:3]))
    assert torch.autograd.gradcheck(
        lambda A_, b_: solve_qp(P, q, A_, b_, lo, hi, **kw).x,
        args,
        eps=1e-6,
        atol=1e-5,
        rtol=1e-4,
        fast_mode=True,
    )


def test_neighbour_passes_settle_what_the_rounds_leave(monkeypatch):
    """From a guess exact only on every 6th frame (one round settles just those), the
    neighbour passes (two rounds each) settle most of the rest (few reach the interior-point fallback): the cold solutions."""
    from diffbio.solvers import _qp
    from diffbio.solvers._qp_data import QPData
    from diffbio.solvers._qp_ipm import ipm_solve

    P, q, A, b, lo, hi = _sequence(24)
    cold = solve_qp(P, q, A, b, lo, hi)
    T, C, m, n = A.shape
    flat = [t.expand(T, C, *t.shape[-k:]).reshape(T * C, *t.shape[-k:]) for t, k in
            ((P, 1), (q, 1), (A, 2), (b, 1), (lo, 1), (hi, 1))]  # fmt: skip
    d = QPData.build(flat[0], flat[1], flat[2], flat[3], flat[4], flat[5],
                     A.new_zeros(T * C, 0, n), A.new_zeros(T * C, 0))  # fmt: skip
    lines = torch.arange(T * C).view(T, C).T  # (C, T): each component's frames
    key = (torch.arange(T) % 6 == 0).view(T, 1, 1)  # the exact active set every 6th frame
    gl = ((cold.z_lower > 0) & key).reshape(T * C, n)
    gu = ((cold.z_upper > 0) & key).reshape(T * C, n)
    opts = QPOptions().resolved(torch.float64)

    to_ipm = []

    def counted_ipm(ds, o):
        to_ipm.append(ds.q.shape[0])
        return ipm_solve(ds, o)

    sol0 = A.new_zeros(T * C, 3 * n + m)  # packed (x, y, zl, zu, zg), no inequalities
    first = _qp._rounds(d, sol0, torch.arange(T * C), torch.cat([gl, gu], -1), opts, 1)
    assert 0 < first.numel() < T * C  # one round leaves some unsettled
    monkeypatch.setattr(_qp, "ipm_solve", counted_ipm)
    res, *_ = _qp._warm_solve(d, opts, (gl, gu), lines, rounds=2)
    assert bool((res["status"] == 0).all())
    assert sum(to_ipm) < first.numel() // 2  # most settled from their neighbours
    torch.testing.assert_close(res["x"].view(T, C, n), cold.x, atol=1e-10, rtol=0)
