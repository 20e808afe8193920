"""Natural interpolating splines vs OpenSim's GCVSplineSet, live; gradcheck and FD."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffbio import ShapeError
from diffbio.io import read_storage, spline_derivatives, spline_evaluate, spline_operator
from tests.conftest import opensim_data_path

IK = ("gait2392", "subject01_walk1_ik.mot")


def _gcv(osim, path, times, orders=(0, 1, 2)):
    s = osim.Storage(str(path))
    gs = osim.GCVSplineSet(5, s)
    n = gs.getSize()
    return [np.array([[gs.evaluate(j, o, t) for j in range(n)] for t in times]) for o in orders]


def test_derivatives_match_gcvsplineset_at_frames():
    """Measured on gait2392 IK (deg): max |err| 2.8e-14 (q), 7.3e-12 (qd), 1.5e-9 (qdd),
    i.e. ~1e-14 of each signal's peak; per column relative to that column's peak <= 2.1e-9
    (qd) and 1.4e-8 (qdd), both in the near-constant subtalar_angle_l, where OpenSim's own
    round-off is of that size."""
    osim = pytest.importorskip("opensim")
    path = opensim_data_path(*IK)
    st = read_storage(path)
    ref = _gcv(osim, path, st.time)
    q = spline_evaluate(st.time, st.data, st.time)
    qd, qdd = spline_derivatives(st.time, st.data, order=2)
    for mine, r in zip((q, qd, qdd), ref):
        err = np.abs(mine - r)
        assert err.max() <= 1e-12 * np.abs(r).max()
        assert (err.max(0) / np.maximum(np.abs(r).max(0), 1e-300)).max() <= 5e-8
    # columns that actually move: 1e-10 relative per column
    moving = np.abs(ref[1]).max(0) > 1.0
    assert moving.sum() >= 15
    for mine, r in zip((qd, qdd), ref[1:]):
        assert (np.abs(mine - r).max(0)[moving] / np.abs(r).max(0)[moving]).max() <= 1e-10


def test_evaluation_between_frames_matches_gcvsplineset():
    osim = pytest.importorskip("opensim")
    path = opensim_data_path(*IK)
    st = read_storage(path)
    te = np.linspace(st.time[0], st.time[-1], 97)
    ref = _gcv(osim, path, te)
    for o, r in enumerate(ref):
        mine = spline_evaluate(st.time, st.data, te, o)
        assert np.abs(mine - r).max() <= 1e-12 * np.abs(r).max()


def test_reproduces_quadratics_and_nonuniform_knots():
    # A natural spline of half-order m reproduces polynomials of degree < m exactly.
    rng = np.random.default_rng(0)
    t = np.cumsum(rng.uniform(0.005, 0.02, 40))
    y = 3.0 + 2.0 * t - 5.0 * t**2
    d1, d2 = spline_derivatives(t, y)
    np.testing.assert_allclose(d1, 2.0 - 10.0 * t, rtol=0, atol=1e-10)
    np.testing.assert_allclose(d2, -10.0 + 0 * t, rtol=0, atol=1e-7)
    te = np.array([t[0] - 0.05, 0.5 * (t[3] + t[4]), t[-1] + 0.1])  # incl. natural extension
    np.testing.assert_allclose(
        spline_evaluate(t, y, te), 3.0 + 2.0 * te - 5.0 * te**2, rtol=0, atol=1e-11
    )
    # cubic splines (degree 3) reproduce lines; smooth data: interior derivative accuracy
    np.testing.assert_allclose(spline_evaluate(t, 1 - 4 * t, t, 1, degree=3), -4.0, atol=1e-10)
    ts = np.linspace(0, 1, 101)
    d1, _ = spline_derivatives(ts, np.sin(3 * ts))
    np.testing.assert_allclose(d1[10:-10], 3 * np.cos(3 * ts[10:-10]), atol=1e-8)


def test_shapes_and_errors():
    t = np.linspace(0, 1, 20)
    y = np.random.default_rng(1).normal(size=(2, 3, 20, 4))
    d1, d2, d3 = spline_derivatives(t, y, order=3)
    assert d1.shape == d2.shape == d3.shape == y.shape
    np.testing.assert_allclose(d1[1, 2], spline_derivatives(t, y[1, 2], order=1)[0], atol=1e-12)
    assert spline_operator(t, t[:5], 1).shape == (5, 20)
    with pytest.raises(ShapeError, match="at least 6 samples"):
        spline_derivatives(t[:5], y[..., :5, :])
    with pytest.raises(ShapeError, match="samples along time"):
        spline_derivatives(t, y[..., :7, :])
    with pytest.raises(ValueError, match="odd"):
        spline_operator(t, t, degree=4)


def test_gradcheck_and_finite_differences():
    t = np.cumsum(np.random.default_rng(2).uniform(0.01, 0.02, 12))
    y = torch.randn(1, 12, 2, dtype=torch.float64, requires_grad=True)

    def f(v):
        d1, d2 = spline_derivatives(t, v)
        return torch.cat([d1, d2, spline_evaluate(t, v, t[:4] + 0.003)], dim=-2)

    assert torch.autograd.gradcheck(f, (y,))
    np.testing.assert_allclose(
        f(y).detach().numpy()[..., :12, :],
        spline_derivatives(t, y.detach().numpy())[0],
        rtol=0,
        atol=1e-10,
    )
    w = torch.randn(1, 28, 2, dtype=torch.float64)

    def loss(v):
        out = f(v)
        return (out * w).sum() + 1e-4 * (out**2).sum()

    (g,) = torch.autograd.grad(loss(y), y)
    eps = 1e-6
    fd = torch.zeros_like(y)
    for idx in np.ndindex(*y.shape):
        e = torch.zeros_like(y)
        e[idx] = eps
        fd[idx] = (loss(y + e) - loss(y - e)) / (2 * eps)
    torch.testing.assert_close(g, fd, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("degree", [3, 5, 7])
def test_numpy_solve_and_torch_operator_agree(degree):
    """Numpy data go through the banded solve of their own knot derivatives, torch data
    through the cached operator: same numbers to round-off, inside and outside the knots;
    the public operator is a fresh writable copy of the cached one."""
    rng = np.random.default_rng(4)
    t = np.cumsum(rng.uniform(0.005, 0.02, 60))
    te = np.sort(rng.uniform(t[0] - 0.05, t[-1] + 0.05, 25))
    y = rng.normal(size=(2, 60, 3)) + 20.0
    for d in range(4):
        a = spline_evaluate(t, y, te, d, degree=degree)
        b = spline_evaluate(t, torch.tensor(y), te, d, degree=degree).numpy()
        E = spline_operator(t, te, d, degree=degree)
        c = np.einsum("nt,btc->bnc", E, y - (y[:, :1] if d else 0))
        scale = max(np.abs(a).max(), 1.0)
        assert np.abs(a - b).max() <= 1e-11 * scale
        assert np.abs(a - c).max() <= 1e-11 * scale
        E[:] = 0.0
        assert np.abs(spline_operator(t, te, d, degree=degree)).max() > 0


def test_evaluate_orders_matches_separate_calls():
    """One banded solve for several orders gives the numbers of one call per order."""
    from diffbio.io._spline import spline_evaluate_orders

    rng = np.random.default_rng(3)
    t = np.cumsum(0.008 + 0.004 * rng.random(60))
    y = 0.26 + 0.1 * rng.standard_normal((60, 4))  # an offset, as a 15 deg angle
    te = t[5:50]
    got = spline_evaluate_orders(t, y, te, (0, 1, 2))
    for r, g in zip((0, 1, 2), got):
        ref = spline_evaluate(t, y, te, r)
        np.testing.assert_allclose(g, ref, rtol=0, atol=1e-14 * np.abs(ref).max())
