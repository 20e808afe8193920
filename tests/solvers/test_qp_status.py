"""Per-problem statuses: infeasible and unbounded problems are flagged, never silent."""

from __future__ import annotations

import torch

from diffbio.solvers import QPStatus, solve_qp
from tests.solvers.qp_problems import clarabel_solve, so_batch

F64 = torch.float64
SOLVED, PINF, DINF = (
    int(QPStatus.SOLVED),
    int(QPStatus.PRIMAL_INFEASIBLE),
    int(QPStatus.DUAL_INFEASIBLE),
)


def test_infeasible_frames_flagged_without_touching_the_rest():
    P, q, A, b, lo, hi = so_batch(6, n_muscles=18, n_reserves=10, n_coords=10, seed=11)
    lo, hi = lo.expand(6, -1).clone(), hi.expand(6, -1).clone()
    good = solve_qp(P, q, A, b, lo, hi)
    b_bad = b.clone()
    b_bad[1] *= 1e4  # moments beyond what muscles and |reserve| <= 1e3 can make
    lo[3, 0] = 2.0  # l > u
    sol = solve_qp(P, q, A, b_bad, lo, hi)
    assert sol.status.tolist() == [SOLVED, PINF, SOLVED, PINF, SOLVED, SOLVED]
    for i in (1, 3):
        assert torch.isnan(sol.x[i]).all() and torch.isnan(sol.y_eq[i]).all()
        ref_status = clarabel_solve(
            P.numpy(), q.numpy(), A[i].numpy(), b_bad[i].numpy(), lo[i].numpy(), hi[i].numpy()
        )[1]
        assert ref_status == "PrimalInfeasible"
    keep = [0, 2, 4, 5]
    torch.testing.assert_close(sol.x[keep], good.x[keep], rtol=0, atol=1e-12)


def test_infeasible_inequalities_flagged():
    G = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=F64)  # x0 <= h0 and x0 >= -h1
    h = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [0.5, -1.0]], dtype=F64)
    q = torch.tensor([[0.0, -1.0], [3.0, -1.0], [0.0, 0.0]], dtype=F64)
    sol = solve_qp(torch.ones(2, dtype=F64), q, G=G, h=h)
    assert sol.status.tolist() == [PINF, SOLVED, PINF]
    torch.testing.assert_close(sol.x[1], torch.tensor([-1.0, 1.0], dtype=F64))


def test_unbounded_problems_flagged():
    # diagonal P with a zero entry: unbounded exactly where that variable may run off
    Pd = torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]], dtype=F64)
    q = torch.tensor([[0.0, -1.0], [0.0, -1.0], [0.0, 1.0], [0.0, -1.0], [0.0, 1.0]], dtype=F64)
    inf = torch.inf
    lo = torch.tensor([[0, 0], [0, 0], [0, 0], [0, -inf], [0, -inf]], dtype=F64)
    hi = torch.tensor([[1, inf], [1, inf], [1, inf], [1, 5], [1, 5]], dtype=F64)
    sol = solve_qp(Pd, q, l=lo, u=hi, diagonal=True)
    assert sol.status.tolist() == [DINF, SOLVED, SOLVED, SOLVED, DINF]
    torch.testing.assert_close(
        sol.x[[1, 2, 3]], torch.tensor([[0.0, 1.0], [0.0, 0.0], [0.0, 5.0]], dtype=F64)
    )
    assert torch.isnan(sol.x[[0, 4]]).all()


def test_unbounded_through_equality_and_dense_psd():
    # x0 = x1 >= 0, minimize -x0 with P = 0: a ray along (1, 1)
    sol = solve_qp(
        torch.zeros(2, dtype=F64),
        torch.tensor([-1.0, 0.0], dtype=F64),
        torch.tensor([[1.0, -1.0]], dtype=F64),
        torch.zeros(1, dtype=F64),
        l=torch.zeros(2, dtype=F64),
    )
    assert int(sol.status) == DINF
    P = torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=F64)  # PSD, null space (1, -1)
    sol = solve_qp(P, torch.tensor([[1.0, -1.0], [1.0, 1.0]], dtype=F64))
    assert sol.status.tolist() == [DINF, SOLVED]
    assert float((sol.x[1].sum() + 1.0).abs()) < 1e-8  # minimizers: x0 + x1 = -1


def test_gradient_of_a_batch_with_failed_frames_is_finite():
    P, q, A, b, lo, hi = so_batch(4, n_muscles=8, n_reserves=4, n_coords=4, seed=12)
    b = b.clone()
    b[2] *= 1e5
    b.requires_grad_(True)
    sol = solve_qp(P, q, A, b, lo, hi)
    assert sol.status.tolist() == [SOLVED, SOLVED, PINF, SOLVED]
    ok = sol.solved
    sol.x[ok].square().sum().backward()
    assert torch.isfinite(b.grad).all()
    assert torch.all(b.grad[2] == 0) and bool((b.grad[ok].abs().sum(-1) > 0).all())
