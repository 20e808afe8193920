"""Natural interpolating splines as OpenSim's ``GCVSpline`` builds them, as linear operators.

OpenSim fits ``GCVSplineSet(degree, storage)`` with error variance 0: Woltring's GCVSPL in
mode 3 with ``VAL=0``. Its search for the smoothing parameter then halves ``p`` until
``p * el`` drops below ``1e-15`` and stops there, so the fit is the *natural interpolating*
spline of degree ``2m - 1`` (half-order ``m``) up to a relative regularisation of about
1e-15. That spline is unique; this module computes it directly.

Representation: on each interval the spline is the Hermite polynomial of degree ``2m-1``
fixed by the value and derivatives ``1..m-1`` at both knots; the unknown derivatives
follow from continuity of derivatives ``m..2m-2`` at interior knots and the natural end
conditions (those derivatives vanish at the first and last knot). Everything is linear in
the data, so values or derivatives at any times are ``E @ y`` for an operator matrix
``E (n_eval, T)`` that depends on the knot times only; applied in torch it is
differentiable with respect to the data (not the times).

Outside ``[x_0, x_{T-1}]`` the natural spline continues as the Taylor polynomial of degree
``m - 1`` at the end knot.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from math import factorial

import numpy as np
import scipy.linalg
import torch

from diffbio._errors import ShapeError

__all__ = ["spline_operator", "spline_evaluate", "spline_derivatives"]


@lru_cache(maxsize=8)
def _hermite_inverse(m: int) -> np.ndarray:
    """``Hinv (2m, 2m)``: monomial coefficients of p(u) on [0, 1] from
    ``[p(0), p'(0), .., p^(m-1)(0), p(1), .., p^(m-1)(1)]``.

    Inverted in exact rational arithmetic: the entries are small rationals, and exact
    ones keep the operators' annihilation of low-degree polynomials exact."""
    n = 2 * m
    H = [[Fraction(0)] * n for _ in range(n)]
    for j in range(m):
        H[j][j] = Fraction(factorial(j))
        for k in range(j, n):
            H[m + j][k] = Fraction(factorial(k), factorial(k - j))
    # Gauss-Jordan elimination on [H | I] in rationals.
    A = [row[:] + [Fraction(int(i == r)) for i in range(n)] for r, row in enumerate(H)]
    for c in range(n):
        piv = next(r for r in range(c, n) if A[r][c] != 0)
        A[c], A[piv] = A[piv], A[c]
        pv = A[c][c]
        A[c] = [v / pv for v in A[c]]
        for r in range(n):
            if r != c and A[r][c] != 0:
                f = A[r][c]
                A[r] = [a - f * b for a, b in zip(A[r], A[c])]
    return np.array([[float(v) for v in row[n:]] for row in A])


def _monomial_row(u: np.ndarray, r: int, n: int) -> np.ndarray:
    """``(len(u), n)``: d^r/du^r of u^k for k < n."""
    out = np.zeros((u.shape[0], n))
    for k in range(r, n):
        out[:, k] = factorial(k) / factorial(k - r) * u ** (k - r)
    return out


def _check_knots(x: np.ndarray, m: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ShapeError(f"knot times must be (T,), got shape {x.shape}")
    if x.shape[0] < 2 * m:
        raise ShapeError(
            f"a degree-{2 * m - 1} spline needs at least {2 * m} samples, got {x.shape[0]}"
        )
    if not np.all(np.diff(x) > 0):
        raise ValueError("knot times must be strictly increasing")
    return x


@lru_cache(maxsize=16)
def _knot_derivative_operator(xb: bytes, m: int) -> np.ndarray:
    """``Z (T, m-1, T)``: derivatives 1..m-1 at the knots (in units of the scaled time
    ``tau = (x - x0) / h``, ``h`` the mean step) as linear maps of the values."""
    x = np.frombuffer(xb, dtype=np.float64)
    n = x.shape[0]
    if m == 1:
        return np.zeros((n, 0, n))
    href = (x[-1] - x[0]) / (n - 1)
    h = np.diff((x - x[0]) / href)  # (n-1,)
    Hinv = _hermite_inverse(m)
    q = m - 1  # unknowns per knot
    # Derivative r (tau units) at the left (u=0) and right (u=1) end of an interval, as
    # coefficients on the interval's Hermite data [y_i, D_i(1..q) , y_i+1, D_i+1(1..q)]
    # where the data derivatives are in tau units; p^(j)(0) = h^j D_j.
    # The system matrix is banded (a knot's equations touch its neighbours' unknowns):
    # assemble it directly in LAPACK band storage, ab[upper + row - col, col].
    lower = upper = 3 * q
    ab = np.zeros((lower + upper + 1, n * q))
    B = np.zeros((n * q, n))

    def add(row: int, col0: int, vals: np.ndarray) -> None:
        cols = np.arange(col0, col0 + vals.shape[0])
        ab[upper + row - cols, cols] += vals

    orders = list(range(m, 2 * m - 1))  # m .. 2m-2, q of them

    def end_rows(i: int, r: int, side: int) -> tuple[np.ndarray, np.ndarray]:
        """(coeffs on z of knots i,i+1 (2q,), coeffs on y_i,y_i+1 (2,)) of the r-th tau
        derivative at side 0 (left) / 1 (right) of interval i."""
        w = _monomial_row(np.array([float(side)]), r, 2 * m)[0] @ Hinv  # on p-data
        hi = h[i]
        scale = hi**-r
        jpow = hi ** np.arange(m)  # p^(j) = h^j D_j
        w = w * np.concatenate([jpow, jpow]) * scale
        zc = np.concatenate([w[1:m], w[m + 1 :]])
        yc = np.array([w[0], w[m]])
        return zc, yc

    row = 0
    for k in range(n):
        for r in orders:
            if k == 0 or k == n - 1:
                i, side, sign = (0, 0, 1.0) if k == 0 else (n - 2, 1, 1.0)
                zc, yc = end_rows(i, r, side)
                add(row, i * q, sign * zc)
                B[row, i : i + 2] -= sign * yc
            else:
                zl, yl = end_rows(k - 1, r, 1)
                zr, yr = end_rows(k, r, 0)
                add(row, (k - 1) * q, zl)
                add(row, k * q, -zr)
                B[row, k - 1 : k + 1] -= yl
                B[row, k : k + 2] += yr
            row += 1
    Z = scipy.linalg.solve_banded((lower, upper), ab, B)
    Z = Z.reshape(n, q, n)
    Z.flags.writeable = False
    return Z


def spline_operator(
    knots: np.ndarray, t_eval: np.ndarray, deriv: int = 0, *, degree: int = 5
) -> np.ndarray:
    """Linear operator of the natural interpolating spline OpenSim's ``GCVSpline`` fits.

    Args:
        knots: ``(T,) [s]`` strictly increasing sample times.
        t_eval: ``(N,) [s]`` evaluation times (may lie outside the knots: natural
            extension).
        deriv: derivative order (0 = value), any non-negative integer.
        degree: odd spline degree ``2m - 1`` (OpenSim: 5 for coordinates, 3 for forces).

    Returns:
        ``E (N, T)`` with ``E @ y`` the ``deriv``-th time derivative ``[unit / s^deriv]`` at
        ``t_eval`` of the spline through samples ``y (T, ...)``.
    """
    if degree < 1 or degree % 2 == 0:
        raise ValueError(f"spline degree must be a positive odd integer, got {degree}")
    m = (degree + 1) // 2
    x = _check_knots(knots, m)
    te = np.atleast_1d(np.asarray(t_eval, dtype=np.float64))
    n = x.shape[0]
    href = (x[-1] - x[0]) / (n - 1)
    tau_knots = (x - x[0]) / href
    tau = (te - x[0]) / href
    Z = _knot_derivative_operator(x.tobytes(), m)  # (n, m-1, n)
    # Full derivative table at the knots: D[k, j, :] for j = 0..m-1 (tau units).
    D = np.concatenate([np.eye(n)[:, None, :], Z], axis=1)
    E = np.zeros((te.shape[0], n))

    below = tau < tau_knots[0]
    above = tau > tau_knots[-1]
    inside = ~(below | above)
    if inside.any():
        ti = tau[inside]
        i = np.clip(np.searchsorted(tau_knots, ti, side="right") - 1, 0, n - 2)
        h = tau_knots[i + 1] - tau_knots[i]
        u = (ti - tau_knots[i]) / h
        Hinv = _hermite_inverse(m)
        W = _monomial_row(u, deriv, 2 * m) @ Hinv if deriv < 2 * m else np.zeros((len(u), 2 * m))
        jpow = h[:, None] ** np.arange(m)[None, :]  # (N, m)
        wl = W[:, :m] * jpow * h[:, None] ** -deriv
        wr = W[:, m:] * jpow * h[:, None] ** -deriv
        E[inside] = np.einsum("nj,njt->nt", wl, D[i]) + np.einsum("nj,njt->nt", wr, D[i + 1])
    for mask, k in ((below, 0), (above, n - 1)):
        if mask.any():
            dt = tau[mask] - tau_knots[k]
            # Taylor polynomial of degree m-1 at the end knot, differentiated `deriv` times.
            for j in range(deriv, m):
                c = dt ** (j - deriv) / factorial(j - deriv)
                E[mask] += c[:, None] * D[k, j][None, :]
    return E / href**deriv


def time_matmul(M: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``M (N, T)`` applied along the time axis of ``y (..., T, C)`` (or ``(T,)``) as one
    2-D GEMM (a batched ``torch.matmul`` is pathologically slow on small CPU inputs)."""
    if y.ndim == 1:
        return M @ y
    T = y.shape[-2]
    lead = y.shape[:-2]
    flat = y.movedim(-2, 0).reshape(T, -1)
    return (M @ flat).reshape((M.shape[0], *lead, y.shape[-1])).movedim(0, -2)


def _apply(op: np.ndarray, y, deriv: int = 0):
    """``op (N, T)`` applied along the time axis of ``y (..., T, C)`` or ``(T,)``.

    For derivatives the first sample is subtracted first (the operator annihilates
    constants), which removes the round-off of large offsets such as a 15 deg angle."""
    if isinstance(y, torch.Tensor):
        M = torch.tensor(op, dtype=y.dtype, device=y.device)
        if deriv > 0:
            y = y - (y[..., :1, :] if y.ndim >= 2 else y[:1])
        return time_matmul(M, y)
    y = np.asarray(y, dtype=np.float64)
    if deriv > 0:
        y = y - (y[..., :1, :] if y.ndim >= 2 else y[:1])
    return np.matmul(op, y) if y.ndim >= 2 else op @ y


def _time_axis_len(y) -> int:
    return int(y.shape[-2] if y.ndim >= 2 else y.shape[0])


def spline_evaluate(knots, y, t_eval, deriv: int = 0, *, degree: int = 5):
    """Evaluate the natural interpolating spline through ``y`` at ``t_eval``.

    Args:
        knots: ``(T,) [s]``.
        y: ``(T,)`` or ``(..., T, C)`` samples (numpy or torch; torch stays differentiable).
        t_eval: ``(N,) [s]``.
        deriv: derivative order.
        degree: odd spline degree (5 as OpenSim's tools use for coordinates).

    Returns:
        ``(N,)`` or ``(..., N, C)`` in ``[unit / s^deriv]``, same array type as ``y``.
    """
    if _time_axis_len(y) != len(knots):
        raise ShapeError(f"y has {_time_axis_len(y)} samples along time, knots has {len(knots)}")
    return _apply(spline_operator(knots, t_eval, deriv, degree=degree), y, deriv)


def spline_derivatives(time, x, order: int = 2, *, degree: int = 5):
    """Time derivatives of ``x`` at its own sample times, as OpenSim's tools compute them.

    OpenSim's InverseDynamicsTool and AnalyzeTool fit ``GCVSplineSet(5, coordinates)`` (a
    natural quintic interpolating spline, see the module notes) and evaluate it with
    derivative orders 1 and 2 at the frame times; this returns those numbers.

    Args:
        time: ``(T,) [s]`` strictly increasing (need not be uniform).
        x: ``(T,)`` or ``(..., T, Q)`` samples ``[unit]``, numpy or torch. With torch the
            result is a linear map of ``x`` (differentiable w.r.t. ``x``, not ``time``).
        order: highest derivative to return (1 or 2 ... any positive integer).
        degree: odd spline degree (5 in OpenSim's tools).

    Returns:
        A tuple of ``order`` arrays ``(xd, xdd, ...)``, each shaped like ``x``, in
        ``[unit / s]``, ``[unit / s^2]``, ...
    """
    if order < 1:
        raise ValueError(f"order must be >= 1, got {order}")
    t = np.asarray(time, dtype=np.float64)
    if _time_axis_len(x) != t.shape[0]:
        raise ShapeError(f"x has {_time_axis_len(x)} samples along time, time has {t.shape[0]}")
    return tuple(_apply(spline_operator(t, t, r, degree=degree), x, r) for r in range(1, order + 1))
