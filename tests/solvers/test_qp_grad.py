"""Backward of solve_qp: gradcheck, finite differences, Clarabel oracle, real SO frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from diffbio.solvers import solve_qp
from tests.conftest import opensim_data_path
from tests.solvers.qp_problems import clarabel_solve, dense_batch, osqp_polished_solve, so_batch

F64 = torch.float64


def _all_outputs(*args, **kw):
    s = solve_qp(*args, **kw)
    return s.x, s.y_eq, s.z_lower, s.z_upper, s.z_ineq


def test_gradcheck_dense_every_input_and_output():
    P, q, A, b, lo, hi, G, h = dense_batch(2, n=5, m=2, p=2, seed=21)
    sol = solve_qp(P, q, A, b, lo, hi, G, h)
    assert bool(sol.solved.all())
    # the case exercises active lower, upper and inequality constraints
    assert bool(
        (sol.z_lower > 1e-3).any() and (sol.z_upper > 1e-3).any() and (sol.z_ineq > 1e-3).any()
    )
    ins = [t.clone().requires_grad_(True) for t in (P, q, A, b, lo, hi, G, h)]
    assert gradcheck(_all_outputs, ins, eps=1e-6, atol=1e-6, rtol=1e-5, fast_mode=True)


def test_gradcheck_diagonal_fast_path_and_shared_inputs():
    P, q, A, b, lo, hi = so_batch(3, n_muscles=5, n_reserves=2, n_coords=2, seed=22, weighted=True)
    q = torch.linspace(-0.5, 0.5, 7, dtype=F64)  # shared (no batch dimension)
    lo = lo.clone()
    lo[:5] = 0.02  # shared bounds, some active
    hi = hi.clone()
    hi[:5] = 0.3
    hi[5:] = torch.inf
    sol = solve_qp(P, q, A, b, lo, hi)
    assert bool(sol.solved.all())
    assert bool((sol.z_lower > 1e-3).any() and (sol.z_upper > 1e-3).any())
    ins = [t.clone().requires_grad_(True) for t in (P, q, A, b, lo, hi)]
    assert gradcheck(
        lambda *a: _all_outputs(*a)[:4], ins, eps=1e-6, atol=1e-6, rtol=1e-5, fast_mode=True
    )


def test_shared_parameter_gradient_is_summed_over_batch():
    P, q, A, b, lo, hi = so_batch(4, n_muscles=10, n_reserves=3, n_coords=3, seed=23)
    A0 = A[0].clone().requires_grad_(True)
    Pw = P.clone().requires_grad_(True)
    w = torch.linspace(0.5, 1.5, 13, dtype=F64)
    loss = (solve_qp(Pw, q, A0, b, lo, hi).x * w).sum()
    loss.backward()
    gA, gP = torch.zeros_like(A0), torch.zeros_like(P)
    for i in range(4):
        Ai, Pi = A[0].clone().requires_grad_(True), P.clone().requires_grad_(True)
        (solve_qp(Pi, q, Ai, b[i], lo, hi).x * w).sum().backward()
        gA += Ai.grad
        gP += Pi.grad
    torch.testing.assert_close(A0.grad, gA, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(Pw.grad, gP, rtol=1e-10, atol=1e-12)


def test_gradients_match_independent_solver_finite_differences_on_a_batch():
    """Directional derivatives of a loss against central differences of an independent
    solver (OSQP to 1e-10 with its active-set polish, cross-checked with Clarabel)."""
    B = 3
    P, q, A, b, lo, hi = so_batch(B, n_muscles=18, n_reserves=6, n_coords=6, seed=24, weighted=True)
    g = torch.Generator().manual_seed(25)
    w = torch.randn(24, generator=g, dtype=F64)
    params = {"P": P, "A": A, "b": b, "l": lo.expand(B, -1).clone(), "u": hi.expand(B, -1).clone()}
    ins = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    sol = solve_qp(ins["P"], q, ins["A"], ins["b"], ins["l"], ins["u"])
    assert bool(sol.solved.all())
    # strictly complementary: finite-difference steps below keep the active set
    slack = torch.minimum(sol.x - lo, hi - sol.x)
    margin = torch.where(slack < 1e-9, sol.z_lower + sol.z_upper, slack)
    assert float(margin.detach().min()) > 1e-4
    (sol.x @ w).sum().backward()
    step = 1e-5
    for name in params:
        v = torch.randn(params[name].shape, generator=g, dtype=F64)
        if name in ("l", "u"):
            v[:, 18:] = 0.0  # keep reserve bounds wide
        analytic = (ins[name].grad * v).flatten(1).sum(-1)
        for i in range(B):
            vals = []
            for sgn in (1.0, -1.0):
                pp = {k: t[i].clone() for k, t in params.items()}
                pp[name] = pp[name] + sgn * step * v[i]
                args = (
                    pp["P"].numpy(),
                    q.numpy(),
                    pp["A"].numpy(),
                    pp["b"].numpy(),
                    pp["l"].numpy(),
                    pp["u"].numpy(),
                )
                x, status, polished = osqp_polished_solve(*args)
                assert status == "solved" and polished
                xc, cstatus = clarabel_solve(*args)
                assert cstatus == "Solved"
                np.testing.assert_allclose(x, xc, atol=1e-6, rtol=0)
                vals.append(float(x @ w.numpy()))
            fd = (vals[0] - vals[1]) / (2 * step)
            assert abs(fd - float(analytic[i])) <= 1e-6 * (1.0 + abs(fd)), (
                name,
                i,
                fd,
                float(analytic[i]),
            )


def _gait10dof_frames(times):
    """Static-optimization QPs of the 10-coordinate, 18-muscle gait model at ``times``.

    x = (18 activations in [0, 1], 10 unbounded reserves); A = (moment arm x max isometric
    force from OpenSim, reserve optimal forces on their own coordinates); b = OpenSim's
    inverse-dynamics generalized forces of the trial.
    """
    osim = pytest.importorskip("opensim")
    folder = opensim_data_path("gait10dof18musc")
    osim.Logger.setLevelString("error")
    model = osim.Model(str(folder / "subject01.osim"))
    state = model.initSystem()
    coords = model.getCoordinateSet()
    muscles = model.getMuscles()
    ik = osim.TimeSeriesTable(str(folder / "subject01_walk_IK.mot"))
    ik_time = np.asarray(ik.getIndependentColumn())
    ids = osim.TimeSeriesTable(str(folder / "subject01_walk_ID.sto"))
    id_time = np.asarray(ids.getIndependentColumn())
    names = [coords.get(j).getName() for j in range(coords.getSize())]
    reserve_force = {"pelvis_tx": 1.0, "pelvis_ty": 2.0}
    mats, rhs = [], []
    for t in times:
        row = int(np.argmin(np.abs(ik_time - t)))
        for j, name in enumerate(names):
            c = coords.get(j)
            val = ik.getDependentColumn(name)[row]
            rotational = c.getMotionType() == osim.Coordinate.Rotational
            c.setValue(state, np.deg2rad(val) if rotational else val, False)
        model.assemble(state)
        model.realizePosition(state)
        Am = np.zeros((len(names), muscles.getSize() + len(names)))
        for k in range(muscles.getSize()):
            mus = muscles.get(k)
            for j in range(len(names)):
                Am[j, k] = mus.computeMomentArm(state, coords.get(j)) * mus.getMaxIsometricForce()
        for j, name in enumerate(names):
            Am[j, muscles.getSize() + j] = reserve_force.get(name, 1.0)
        id_row = int(np.argmin(np.abs(id_time - t)))
        bm = []
        for name in names:
            label = name + ("_force" if name in ("pelvis_tx", "pelvis_ty") else "_moment")
            bm.append(ids.getDependentColumn(label)[id_row])
        mats.append(Am)
        rhs.append(bm)
    n_mus = muscles.getSize()
    A = torch.tensor(np.array(mats), dtype=F64)
    b = torch.tensor(np.array(rhs), dtype=F64)
    lo = torch.cat(
        [torch.zeros(n_mus, dtype=F64), torch.full((len(names),), -torch.inf, dtype=F64)]
    )
    hi = torch.cat([torch.ones(n_mus, dtype=F64), torch.full((len(names),), torch.inf, dtype=F64)])
    return A, b, lo, hi, n_mus


def test_real_static_optimization_frames_gradients_match_finite_differences():
    A, b, lo, hi, n_mus = _gait10dof_frames([0.2, 0.5, 0.8])
    n = A.shape[-1]
    P = torch.full((n,), 2.0, dtype=F64)
    q = torch.zeros(n, dtype=F64)
    sol = solve_qp(P, q, A, b, lo, hi)
    assert bool(sol.solved.all()), sol.status
    for i in range(3):  # the forward agrees with Clarabel on the real frames
        ref, status = clarabel_solve(
            P.numpy(), q.numpy(), A[i].numpy(), b[i].numpy(), lo.numpy(), hi.numpy()
        )
        assert status == "Solved"
        np.testing.assert_allclose(sol.x[i].numpy(), ref, atol=1e-6, rtol=0)
    w = torch.linspace(1.0, 2.0, n, dtype=F64)

    def loss(A_, b_, P_):
        return (solve_qp(P_, q, A_, b_, lo, hi).x * w).sum(-1)

    ins = [
        A.clone().requires_grad_(True),
        b.clone().requires_grad_(True),
        P.clone().requires_grad_(True),
    ]
    loss(*ins).sum().backward()
    g = torch.Generator().manual_seed(26)
    for k, (base, scale) in enumerate(((A, 1.0), (b, 1.0), (P, 0.1))):
        v = torch.randn(base.shape, generator=g, dtype=F64) * scale
        step = 1e-5
        plus = [t.clone() for t in (A, b, P)]
        minus = [t.clone() for t in (A, b, P)]
        plus[k] += step * v
        minus[k] -= step * v
        fd = (loss(*plus) - loss(*minus)) / (2 * step)
        analytic = (ins[k].grad * v).sum() if k == 2 else (ins[k].grad * v).flatten(1).sum(-1)
        torch.testing.assert_close(
            analytic.sum() if k == 2 else analytic, fd.sum() if k == 2 else fd, rtol=1e-6, atol=1e-8
        )
