"""Forward of solve_qp against Clarabel, shapes, broadcasting, chunking, float32, CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffbio import ShapeError
from diffbio.solvers import QPOptions, QPStatus, solve_qp
from tests.solvers.qp_problems import clarabel_solve, dense_batch, so_batch


def _kkt_violation(P, q, A, b, lo, hi, sol):
    """Max violation of the KKT conditions of a batch of diagonal-P problems."""
    x, y, zl, zu = sol.x, sol.y_eq, sol.z_lower, sol.z_upper
    stat = P * x + q + (y.unsqueeze(-2) @ A).squeeze(-2) - zl + zu
    feas = (A @ x.unsqueeze(-1)).squeeze(-1) - b
    fin_l, fin_u = torch.isfinite(lo), torch.isfinite(hi)
    comp_l = torch.where(fin_l, zl * (x - lo), torch.zeros_like(x))
    comp_u = torch.where(fin_u, zu * (hi - x), torch.zeros_like(x))
    viol = torch.stack(
        [
            stat.abs().amax(-1),
            feas.abs().amax(-1),
            (lo - x).clamp(min=0).amax(-1),
            (x - hi).clamp(min=0).amax(-1),
            (-zl).clamp(min=0).amax(-1),
            (-zu).clamp(min=0).amax(-1),
            comp_l.abs().amax(-1),
            comp_u.abs().amax(-1),
        ],
        -1,
    )
    return viol.amax(-1)


@pytest.mark.parametrize("weighted", [False, True])
def test_static_optimization_shape_matches_clarabel(weighted):
    P, q, A, b, lo, hi = so_batch(16, seed=1, weighted=weighted)
    sol = solve_qp(P, q, A, b, lo, hi)
    assert sol.x.shape == (16, 115) and sol.y_eq.shape == (16, 23)
    assert bool(sol.solved.all()), sol.status
    assert float(_kkt_violation(P, q, A, b, lo, hi, sol).max()) < 1e-8
    for i in range(16):
        Pi = P[i] if P.dim() == 2 else P
        ref, status = clarabel_solve(
            Pi.numpy(), q.numpy(), A[i].numpy(), b[i].numpy(), lo.numpy(), hi.numpy()
        )
        assert status == "Solved"
        np.testing.assert_allclose(sol.x[i].numpy(), ref, atol=1e-6, rtol=0)


def test_small_so_shape_with_infinite_reserve_bounds():
    P, q, A, b, lo, hi = so_batch(
        12, n_muscles=18, n_reserves=10, n_coords=10, seed=2, reserve_bound=torch.inf
    )
    sol = solve_qp(P, q, A, b, lo, hi)
    assert bool(sol.solved.all())
    assert torch.all(sol.z_lower[:, 18:] == 0) and torch.all(sol.z_upper[:, 18:] == 0)
    for i in range(12):
        ref, status = clarabel_solve(
            P.numpy(), q.numpy(), A[i].numpy(), b[i].numpy(), lo.numpy(), hi.numpy()
        )
        assert status == "Solved"
        np.testing.assert_allclose(sol.x[i].numpy(), ref, atol=1e-6, rtol=0)


def test_dense_P_with_inequalities_matches_clarabel():
    P, q, A, b, lo, hi, G, h = dense_batch(10, n=30, m=5, p=8, seed=3)
    hi[:, :5] = torch.inf  # mix finite and infinite upper bounds
    sol = solve_qp(P, q, A, b, lo, hi, G, h)
    assert bool(sol.solved.all()), sol.status
    for i in range(10):
        ref, status = clarabel_solve(
            P[i].numpy(),
            q[i].numpy(),
            A[i].numpy(),
            b[i].numpy(),
            lo[i].numpy(),
            hi[i].numpy(),
            G[i].numpy(),
            h[i].numpy(),
        )
        assert status == "Solved"
        np.testing.assert_allclose(sol.x[i].numpy(), ref, atol=1e-6, rtol=0)
    # the multipliers satisfy stationarity with the documented signs
    r = (P @ sol.x.unsqueeze(-1)).squeeze(-1) + q + (sol.y_eq.unsqueeze(-2) @ A).squeeze(-2)
    r = r - sol.z_lower + sol.z_upper + (sol.z_ineq.unsqueeze(-2) @ G).squeeze(-2)
    assert float(r.abs().max()) < 1e-8
    assert float(sol.z_ineq.min()) >= 0.0


def test_unconstrained_and_equality_only_closed_form():
    g = torch.Generator().manual_seed(4)
    M = torch.randn(3, 5, 5, generator=g, dtype=torch.float64)
    P = M @ M.transpose(-1, -2) + torch.eye(5, dtype=torch.float64)
    q = torch.randn(3, 5, generator=g, dtype=torch.float64)
    sol = solve_qp(P, q)
    np.testing.assert_allclose(sol.x.numpy(), torch.linalg.solve(P, -q).numpy(), atol=1e-10)
    A = torch.randn(3, 2, 5, generator=g, dtype=torch.float64)
    b = torch.randn(3, 2, generator=g, dtype=torch.float64)
    K = torch.zeros(3, 7, 7, dtype=torch.float64)
    K[:, :5, :5], K[:, :5, 5:], K[:, 5:, :5] = P, A.transpose(-1, -2), A
    ref = torch.linalg.solve(K, torch.cat([-q, b], -1))
    sol = solve_qp(P, q, A, b)
    np.testing.assert_allclose(sol.x.numpy(), ref[:, :5].numpy(), atol=1e-10)
    np.testing.assert_allclose(sol.y_eq.numpy(), ref[:, 5:].numpy(), atol=1e-9)


def test_chunking_equals_unchunked_and_leading_dims():
    P, q, A, b, lo, hi = so_batch(6, n_muscles=18, n_reserves=10, n_coords=10, seed=5)
    full = solve_qp(P, q, A, b, lo, hi)
    chunked = solve_qp(P, q, A, b, lo, hi, options=QPOptions(chunk_size=4))
    torch.testing.assert_close(chunked.x, full.x, rtol=0, atol=1e-12)
    torch.testing.assert_close(chunked.status, full.status)
    # (2, 3) leading dims: same answers, reshaped
    nd = solve_qp(P, q, A.reshape(2, 3, 10, 28), b.reshape(2, 3, 10), lo, hi)
    assert nd.x.shape == (2, 3, 28) and nd.status.shape == (2, 3)
    torch.testing.assert_close(nd.x.reshape(6, 28), full.x, rtol=0, atol=1e-12)
    # unbatched
    one = solve_qp(P, q, A[0], b[0], lo, hi)
    assert one.x.shape == (28,) and one.status.shape == ()
    torch.testing.assert_close(one.x, full.x[0], rtol=0, atol=1e-12)


def test_diagonal_flag_disambiguates_square_batch():
    # a (B, n) diagonal with B == n would read as a dense P without the flag
    d = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
    q = torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    sol = solve_qp(d, q, diagonal=True)
    torch.testing.assert_close(sol.x, -q / d)


def test_float32_sanity():
    P, q, A, b, lo, hi = so_batch(8, n_muscles=18, n_reserves=10, n_coords=10, seed=6)
    ref = solve_qp(P, q, A, b, lo, hi)
    sol = solve_qp(*(t.float() for t in (P, q, A, b, lo, hi)))
    assert sol.x.dtype == torch.float32
    assert bool(sol.solved.all()), sol.status
    assert float((sol.x.double() - ref.x).abs().max()) < 1e-3


def test_shape_errors():
    P, q, A, b, lo, hi = so_batch(2, n_muscles=4, n_reserves=2, n_coords=2)
    with pytest.raises(ShapeError, match="A has shape"):
        solve_qp(P, q, A[..., :3], b, lo, hi)
    with pytest.raises(ShapeError, match="b has shape"):
        solve_qp(P, q, A, b[..., :1], lo, hi)
    with pytest.raises(ShapeError, match="give A with b"):
        solve_qp(P, q, A, None)
    with pytest.raises(ShapeError, match="broadcast"):
        solve_qp(P, q, A, b[:1].expand(3, 2), lo, hi)


def test_status_enum_codes_documented():
    assert [s.value for s in QPStatus] == [0, 1, 2, 3, 4]
    P, q, A, b, lo, hi = so_batch(2, n_muscles=6, n_reserves=3, n_coords=3)
    sol = solve_qp(P, q, A, b, lo, hi, options=QPOptions(max_iter=2))
    assert torch.all(sol.status == int(QPStatus.MAX_ITER))
    assert torch.isnan(sol.x).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    P, q, A, b, lo, hi = so_batch(64, seed=7)
    cpu = solve_qp(P, q, A, b, lo, hi)
    gpu = solve_qp(*(t.cuda() for t in (P, q, A, b, lo, hi)))
    assert gpu.x.device.type == "cuda"
    torch.testing.assert_close(gpu.x.cpu(), cpu.x, rtol=0, atol=1e-8)
