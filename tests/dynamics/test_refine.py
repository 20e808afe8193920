"""Ground-reaction refinement: optimality against an independent solver (cvxpy),
constraints, zero residuals on the gait2392 walk, gradients (gradcheck and finite
differences), the written ExternalLoads round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffbio.dynamics import (
    PointLoad,
    RefineOptions,
    body_wrenches,
    load_trial,
    plate_loads,
    refine_ground_reactions,
    refined_external_loads,
    required_root_wrench,
    root_residuals,
    wrenches_from_external_loads,
)
from diffbio.dynamics._refine_sparse import sparse_solve
from diffbio.io import read_external_loads, write_external_loads
from diffbio.kinematics import forward_kinematics
from diffbio.model import load_osim
from tests.conftest import opensim_data_path


@pytest.fixture(scope="module")
def walk():
    d = opensim_data_path("gait2392")
    model = load_osim(d / "subject01_simbody.osim")
    trial = load_trial(
        model, d / "subject01_walk1_ik.mot", d / "subject01_walk1_grf.xml",
        time_range=(0.5, 2.5), lowpass_hz=6.0,
    )  # fmt: skip
    loads, t, q, qd, qdd = trial.loads, trial.time, trial.q, trial.qd, trial.qdd
    F, P, Tq = plate_loads(model, loads, t)
    return model, loads, t, q, qd, qdd, F, P, Tq


def _window(walk, t0=0.55, t1=0.66):
    model, loads, t, q, qd, qdd, F, P, Tq = walk
    k = (t >= t0) & (t <= t1)
    kt = torch.as_tensor(k)
    return model, t[k], q[kt], qd[kt], qdd[kt], F[kt], P[kt], Tq[kt]


def _residual(model, q, qd, qdd, bodies, F, P, Tq):
    items = [PointLoad(b, F[..., k, :], P[..., k, :], Tq[..., k, :]) for k, b in enumerate(bodies)]
    return root_residuals(
        model, q, qd, qdd, body_wrenches(model, forward_kinematics(model, q), items)
    )


BODIES = ("calcn_r", "calcn_l")


@pytest.mark.parametrize("adjust", [False, True])
def test_walk_residuals_removed_and_constraints_hold(walk, adjust):
    model, loads, t, q, qd, qdd, F, P, Tq = walk
    weight = 72.6 * 9.80665  # subject01_simbody mass [kg] from the data README
    before = _residual(model, q, qd, qdd, BODIES, F, P, Tq)
    rms_before = before.force.norm(dim=-1).pow(2).mean().sqrt()
    assert rms_before > 0.02 * weight  # measured 39.6 N (5.6 % BW)
    opts = RefineOptions(adjust_root=adjust)
    ref = refine_ground_reactions(
        model, q, qd, qdd, F, P, Tq, time_step=float(np.diff(t).mean()), options=opts
    )
    after = _residual(model, q, qd, ref.adjusted_qdd(qdd), BODIES, ref.force, ref.point, ref.torque)
    assert after.force.norm(dim=-1).pow(2).mean().sqrt() < 0.005 * weight  # acceptance
    assert after.force.abs().max() < 1e-6 and after.moment.abs().max() < 1e-6  # exact
    c = ref.contact
    assert torch.equal(c, F[..., 1] > 20.0)
    fy, fx, fz = ref.force[..., 1], ref.force[..., 0], ref.force[..., 2]
    assert (fy[c] >= -1e-8).all()
    assert (fx[c].abs() <= 0.8 * fy[c] + 1e-8).all() and (fz[c].abs() <= 0.8 * fy[c] + 1e-8).all()
    assert (ref.force[~c] == 0).all() and (ref.torque[~c] == 0).all()
    # centre of pressure stays on the plate plane, the free torque is vertical
    torch.testing.assert_close(ref.point[..., 1], P[..., 1])
    assert (ref.torque[..., [0, 2]] == 0).all()
    if adjust:
        assert ref.root_qdd_change.abs().max() > 0.0
    else:
        assert (ref.root_qdd_change == 0).all()


def test_written_loads_round_trip(walk, tmp_path):
    model, loads, t, q, qd, qdd, F, P, Tq = walk
    ref = refine_ground_reactions(model, q, qd, qdd, F, P, Tq, time_step=float(np.diff(t).mean()))
    write_external_loads(
        tmp_path / "r.xml", tmp_path / "r.mot", refined_external_loads(loads, t, ref)
    )
    back = read_external_loads(tmp_path / "r.xml")
    w = wrenches_from_external_loads(model, back, q, t)
    r = root_residuals(model, q, qd, qdd, w)
    assert r.force.abs().max() < 1e-5 and r.moment.abs().max() < 1e-5


def _cvxpy_reference(model, q, qd, qdd, F, P, Tq, dt, opts, contact):
    """The documented problem written out independently and solved by cvxpy/Clarabel."""
    cp = pytest.importorskip("cvxpy")
    f_req, n_req = (a.numpy() for a in required_root_wrench(model, q, qd, qdd))
    T = q.shape[0]
    da = cp.Variable((T, 6)) if opts.adjust_root else None
    if da is not None:  # the root wrench is affine in the root accelerations
        root = [model.coordinate_index(n) for n in model.joints[0].coordinates]
        cols = []
        for i in root:
            e = qdd.clone()
            e[:, i] += 1.0
            fe, ne = required_root_wrench(model, q, qd, e)
            cols.append(np.concatenate([fe.numpy() - f_req, ne.numpy() - n_req], 1))
        J = np.stack(cols, -1)  # (T, 6, C)
    Fm, Pm, Tm = F.numpy(), P.numpy(), Tq.numpy()
    T, Pn = contact.shape
    Fv = [[cp.Variable(3) if contact[t, k] else np.zeros(3) for k in range(Pn)] for t in range(T)]
    Mv = [[cp.Variable(3) if contact[t, k] else np.zeros(3) for k in range(Pn)] for t in range(T)]
    cost, cons = 0, []
    if da is not None:
        cost += cp.sum_squares(da) / opts.root_accel_scale**2
    for t in range(T):
        for k in range(Pn):
            if not contact[t, k]:
                continue
            f, m = Fv[t][k], Mv[t][k]
            cost += cp.sum_squares(f - Fm[t, k]) / opts.force_scale**2
            cost += (
                cp.sum_squares(m[[0, 2]] - Tm[t, k, [0, 2]]) / (opts.cop_scale * Fm[t, k, 1]) ** 2
            )
            cost += cp.square(m[1] - Tm[t, k, 1]) / opts.torque_scale**2
            mu = opts.friction
            cons += [f[1] >= 0, cp.abs(f[0]) <= mu * f[1], cp.abs(f[2]) <= mu * f[1]]
        if contact[t].any():
            extra = np.zeros(6) if da is None else J[t] @ da[t]
            cons.append(sum(Fv[t][k] for k in range(Pn) if contact[t, k]) == f_req[t] + extra[:3])
            mom = [cp.hstack([Pm[t, k, 1] * Fv[t][k][2] - Pm[t, k, 2] * Fv[t][k][1],
                              Pm[t, k, 2] * Fv[t][k][0] - Pm[t, k, 0] * Fv[t][k][2],
                              Pm[t, k, 0] * Fv[t][k][1] - Pm[t, k, 1] * Fv[t][k][0]]) + Mv[t][k]
                   for k in range(Pn) if contact[t, k]]  # fmt: skip
            cons.append(sum(mom) == n_req[t] + extra[3:])
    for k in range(Pn):
        for t in range(1, T - 1):
            for v, s in ((Fv, opts.force_smooth_scale), (Mv, opts.moment_smooth_scale)):
                dd = v[t - 1][k] - 2 * v[t][k] + v[t + 1][k]
                if not isinstance(dd, np.ndarray):
                    cost += cp.sum_squares(dd) / (s * dt * dt) ** 2
    cp.Problem(cp.Minimize(cost), cons).solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)  # fmt: skip
    val = lambda x: x.value if hasattr(x, "value") else x  # noqa: E731
    return np.array([[val(Fv[t][k]) for k in range(Pn)] for t in range(T)]), np.array(
        [[val(Mv[t][k]) for k in range(Pn)] for t in range(T)]
    )


@pytest.mark.parametrize("mu,adjust", [(0.8, False), (0.12, True)])
def test_matches_independent_solver(walk, mu, adjust):
    """Double support, then one foot off; mu = 0.12 makes friction limits active (feasible
    only with the root accelerations adjusted)."""
    model, t, q, qd, qdd, F, P, Tq = _window(walk, 0.58, 0.75)
    dt = float(np.diff(t).mean())
    opts = RefineOptions(friction=mu, adjust_root=adjust)
    ref = refine_ground_reactions(model, q, qd, qdd, F, P, Tq, time_step=dt, options=opts)
    if mu < 0.5:
        assert ref.active.any()  # the case exercises the active set
    Fr, Mr = _cvxpy_reference(model, q, qd, qdd, F, P, Tq, dt, opts, ref.contact.numpy())
    np.testing.assert_allclose(ref.force.numpy(), Fr, atol=1e-4 * float(F.abs().max()))
    np.testing.assert_allclose(ref.moment.numpy(), Mr, atol=1e-4 * float(F.abs().max()))


def test_infeasible_friction_raises(walk):
    from diffbio import DiffbioError

    model, t, q, qd, qdd, F, P, Tq = _window(walk, 0.58, 0.75)
    with pytest.raises(DiffbioError, match="infeasible"):
        refine_ground_reactions(
            model, q, qd, qdd, F, P, Tq, time_step=0.0167, options=RefineOptions(friction=0.12)
        )


def test_gradcheck_forces_points_torques(walk):
    model, t, q, qd, qdd, F, P, Tq = _window(walk, 0.58, 0.66)
    dt = float(np.diff(t).mean())
    c = F[..., 1] > 20.0

    def f(Fi, Pi, Ti):
        r = refine_ground_reactions(model, q, qd, qdd, Fi, Pi, Ti, time_step=dt, contact=c)
        return r.force, r.point, r.torque

    args = tuple(a.clone().requires_grad_(True) for a in (F, P, Tq))
    assert torch.autograd.gradcheck(f, args, eps=1e-6, atol=1e-6, rtol=1e-5, fast_mode=True)


def test_gradcheck_kinematics_with_active_friction(walk):
    """Root accelerations adjusted and mu = 0.12: gradients w.r.t. q, qd, qdd through the
    inverse dynamics at an active set with friction limits."""
    model, t, q, qd, qdd, F, P, Tq = _window(walk, 0.58, 0.66)
    dt = float(np.diff(t).mean())
    c = F[..., 1] > 20.0
    opts = RefineOptions(friction=0.12, adjust_root=True)
    assert refine_ground_reactions(
        model, q, qd, qdd, F, P, Tq, time_step=dt, contact=c, options=opts
    ).active.any()

    def f(qi, qdi, qddi):
        r = refine_ground_reactions(
            model, qi, qdi, qddi, F, P, Tq, time_step=dt, contact=c, options=opts
        )
        return r.force, r.moment, r.root_qdd_change

    args = tuple(a.clone().requires_grad_(True) for a in (q, qd, qdd))
    assert torch.autograd.gradcheck(f, args, eps=1e-6, atol=1e-5, rtol=1e-5, fast_mode=True)


def test_finite_differences_of_a_loss(walk):
    """d(loss)/d(force, q) against central differences along random directions."""
    model, t, q, qd, qdd, F, P, Tq = _window(walk, 0.58, 0.7)
    dt = float(np.diff(t).mean())
    c = F[..., 1] > 20.0
    w = torch.randn(len(t), 2, 3, dtype=torch.float64)

    def loss(Fi, qi):
        r = refine_ground_reactions(model, qi, qd, qdd, Fi, P, Tq, time_step=dt, contact=c)
        return (r.force * w).sum() + 10.0 * (r.point * w).sum()

    Fi, qi = F.clone().requires_grad_(True), q.clone().requires_grad_(True)
    gF, gq = torch.autograd.grad(loss(Fi, qi), (Fi, qi))
    for g, which in ((gF, 0), (gq, 1)):
        d = torch.randn_like(g)
        h = 1e-5 if which == 0 else 1e-7
        a = (F + h * d, q) if which == 0 else (F, q + h * d)
        b = (F - h * d, q) if which == 0 else (F, q - h * d)
        fd = (loss(*a) - loss(*b)) / (2 * h)
        an = (g * d).sum()
        assert abs(float(fd - an)) <= 1e-6 * max(1.0, abs(float(an)))


def test_batch_matches_loop(walk):
    model, t, q, qd, qdd, F, P, Tq = _window(walk, 0.58, 0.66)
    dt = float(np.diff(t).mean())
    Fb = torch.stack([F, 1.05 * F])
    rb = refine_ground_reactions(model, q, qd, qdd, Fb, P, Tq, time_step=dt)
    for i in range(2):
        ri = refine_ground_reactions(model, q, qd, qdd, Fb[i], P, Tq, time_step=dt)
        torch.testing.assert_close(rb.force[i], ri.force)
        torch.testing.assert_close(rb.point[i], ri.point)


def test_sparse_solve_gradcheck():
    n = 5
    A = torch.randn(n, n, dtype=torch.float64) + 4 * torch.eye(n, dtype=torch.float64)
    r, c = np.nonzero(np.ones((n, n)))
    vals = A.reshape(-1).clone().requires_grad_(True)
    rhs = torch.randn(n, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(sparse_solve(r, c, vals, rhs, n), torch.linalg.solve(A, rhs))
    assert torch.autograd.gradcheck(lambda v, b: sparse_solve(r, c, v, b, n), (vals, rhs))


def test_nan_input_raises(walk):
    from diffbio import DiffbioError

    model, t, q, qd, qdd, F, P, Tq = _window(walk)
    F = F.clone()
    F[1, 0, 1] = torch.nan
    with pytest.raises(DiffbioError, match="force holds NaN"):
        refine_ground_reactions(model, q, qd, qdd, F, P, Tq, time_step=0.01)
