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
import torch

from diffbio._errors import ShapeError

__all__ = ["spline_operator", "spline_evaluate", "spline_evaluate_orders", "spline_derivatives"]


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
def _knot_system(xb: bytes, m: int):
    """The banded system ``A z = B y`` for the knot derivatives ``z (T, m-1)`` (in units of
    the scaled time ``tau = (x - x0) / h``, ``h`` the mean step) of data ``y (T,)``.

    Rows ``k (m-1) + (r - m)``: continuity of the ``r``-th derivative (``r = m .. 2m-2``)
    at interior knot ``k``, or its vanishing at an end knot. Returns ``(ab, terms)``: ``A`` in LAPACK band storage (``ab[upper + row - col, col]``,
    ``lower = upper = 3 (m-1)``) and ``B`` as ``(rows, cols, vals)`` slots (at most 4 per
    row), the rows within each slot distinct."""
    x = np.frombuffer(xb, dtype=np.float64)
    n = x.shape[0]
    q = m - 1
    href = (x[-1] - x[0]) / (n - 1)
    h = np.diff((x - x[0]) / href)  # (n-1,)
    Hinv = _hermite_inverse(m)
    orders = np.arange(m, 2 * m - 1)  # m .. 2m-2, q of them
    # base[s, r', :]: r-th u-derivative at side s (0 left, 1 right) on the Hermite p-data.
    base = np.stack(
        [
            np.stack([_monomial_row(np.array([float(s)]), r, 2 * m)[0] @ Hinv for r in orders])
            for s in (0, 1)
        ]
    )  # (2, q, 2m)
    # Per interval: p^(j) = h^j D_j (D in tau units) and d^r/dtau^r = h^-r d^r/du^r.
    jpow = h[:, None] ** np.arange(m)[None, :]  # (n-1, m)
    scale = np.concatenate([jpow, jpow], 1)[:, None, :] * h[:, None, None] ** -orders[None, :, None]
    W = base[:, None, :, :] * scale[None]  # (2, n-1, q, 2m)
    zc = np.concatenate([W[..., 1:m], W[..., m + 1 :]], -1)  # (2, n-1, q, 2q): z of i, i+1
    yc = W[..., [0, m]]  # (2, n-1, q, 2): y_i, y_i+1
    ki = np.arange(n)
    rr = np.arange(q)
    # Each row: "left" contribution (interval k-1 at its right end, +) and "right" one
    # (interval k at its left end, -); end knots keep only the one interval they have.
    il = np.clip(ki - 1, 0, n - 2)
    ir = np.clip(ki, 0, n - 2)
    sign_l = np.where(ki == 0, 0.0, 1.0)
    sign_l[-1] = 1.0
    sign_r = np.where(ki == 0, 1.0, -1.0)
    sign_r[-1] = 0.0
    rows = ki[:, None] * q + rr[None, :]  # (n, q)
    parts = ((il, 1, sign_l), (ir, 0, sign_r))
    lower = upper = 3 * q
    ab = np.zeros((lower + upper + 1, n * q))
    terms = []  # B as (rows, cols, vals) slots, each slot's rows distinct
    for iv, side, sign in parts:
        keep = sign != 0
        r_ = rows[keep]  # (nk, q)
        i_ = iv[keep]
        sg = sign[keep][:, None, None]
        z = sg * zc[side, i_]  # (nk, q, 2q)
        zcols = i_[:, None] * q + np.arange(2 * q)[None, :]  # (nk, 2q)
        R = np.broadcast_to(r_[:, :, None], z.shape)
        C = np.broadcast_to(zcols[:, None, :], z.shape)
        np.add.at(ab, (upper + R - C, C), z)
        yv = -sg * yc[side, i_]  # (nk, q, 2)
        ycols = i_[:, None] + np.arange(2)[None, :]
        for e in range(2):
            cols = np.broadcast_to(ycols[:, None, e], r_.shape)
            terms.append((r_.ravel(), cols.ravel(), yv[..., e].ravel()))
    ab.flags.writeable = False
    for t in terms:
        for a in t:
            a.flags.writeable = False
    return ab, tuple(terms)


@lru_cache(maxsize=16)
def _knot_factors(xb: bytes, m: int):
    """The LU factors of :func:`_knot_system`'s band matrix (LAPACK ``gbtrf``) and its
    right-hand side ``B`` as a sparse matrix, cached per knots."""
    import scipy.sparse
    from scipy.linalg.lapack import dgbtrf

    ab, terms = _knot_system(xb, m)
    q = 3 * (m - 1)
    n = len(xb) // 8
    lu, piv, info = dgbtrf(np.concatenate([np.zeros((q, ab.shape[1])), ab]), q, q)
    if info != 0:
        raise np.linalg.LinAlgError(f"singular spline system (gbtrf info {info})")
    rows, cols, vals = (np.concatenate(a) for a in zip(*terms))
    B = scipy.sparse.csr_matrix((vals, (rows, cols)), shape=(ab.shape[1], n))
    return lu, piv, B


def _solve_knot_derivatives(x: np.ndarray, m: int, y: np.ndarray) -> np.ndarray:
    """``z (T, m-1, C)``: knot derivatives (tau units) of the data ``y (T, C)``: one banded
    LU solve (factors cached per knots) for all columns."""
    from scipy.linalg.lapack import dgbtrs

    n = x.shape[0]
    if m == 1:
        return np.zeros((n, 0, y.shape[1]))
    lu, piv, B = _knot_factors(x.tobytes(), m)
    q = 3 * (m - 1)
    z, info = dgbtrs(lu, q, q, B @ y, piv)
    if info != 0:
        raise np.linalg.LinAlgError(f"spline solve failed (gbtrs info {info})")
    return z.reshape(n, m - 1, y.shape[1])


@lru_cache(maxsize=16)
def _knot_derivative_operator(xb: bytes, m: int) -> np.ndarray:
    """``Z (T, m-1, T)``: derivatives 1..m-1 at the knots (in units of the scaled time
    ``tau = (x - x0) / h``, ``h`` the mean step) as linear maps of the values."""
    x = np.frombuffer(xb, dtype=np.float64)
    Z = _solve_knot_derivatives(x, m, np.eye(x.shape[0]))
    Z.flags.writeable = False
    return Z


def _eval_weights(x: np.ndarray, te: np.ndarray, deriv: int, m: int):
    """Evaluation at ``te (N,)`` as weights on the derivative tables ``[y, z_1..z_{m-1}]``
    (tau units) of two neighbouring knots ``i`` and ``i + 1``: returns ``i (N,)``,
    ``wl (N, m)``, ``wr (N, m)``, already in ``[1 / s^deriv]``."""
    n = x.shape[0]
    href = (x[-1] - x[0]) / (n - 1)
    tau_knots = (x - x[0]) / href
    tau = (te - x[0]) / href
    N = te.shape[0]
    idx = np.zeros(N, dtype=np.int64)
    wl = np.zeros((N, m))
    wr = np.zeros((N, m))
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
        idx[inside] = i
        wl[inside] = W[:, :m] * jpow * h[:, None] ** -deriv
        wr[inside] = W[:, m:] * jpow * h[:, None] ** -deriv
    # Outside: the Taylor polynomial of degree m-1 at the end knot, differentiated.
    for mask, k, w in ((below, 0, wl), (above, n - 1, wr)):
        if mask.any():
            dt = tau[mask] - tau_knots[k]
            idx[mask] = 0 if k == 0 else n - 2
            for j in range(deriv, m):
                w[mask, j] = dt ** (j - deriv) / factorial(j - deriv)
    s = href**-deriv
    return idx, wl * s, wr * s


@lru_cache(maxsize=32)
def _spline_operator_cached(xb: bytes, teb: bytes, deriv: int, m: int) -> np.ndarray:
    x = np.frombuffer(xb, dtype=np.float64)
    te = np.frombuffer(teb, dtype=np.float64)
    i, wl, wr = _eval_weights(x, te, deriv, m)
    Z = _knot_derivative_operator(xb, m)  # (n, m-1, n)
    E = np.einsum("nj,njt->nt", wl[:, 1:], Z[i]) + np.einsum("nj,njt->nt", wr[:, 1:], Z[i + 1])
    rows = np.arange(te.shape[0])
    np.add.at(E, (rows, i), wl[:, 0])
    np.add.at(E, (rows, i + 1), wr[:, 0])
    E.flags.writeable = False
    return E


def _prepare(knots, t_eval, deriv: int, degree: int) -> tuple[np.ndarray, np.ndarray, int]:
    if degree < 1 or degree % 2 == 0:
        raise ValueError(f"spline degree must be a positive odd integer, got {degree}")
    if deriv < 0:
        raise ValueError(f"derivative order must be >= 0, got {deriv}")
    m = (degree + 1) // 2
    x = np.ascontiguousarray(_check_knots(knots, m))
    te = np.ascontiguousarray(np.atleast_1d(np.asarray(t_eval, dtype=np.float64)))
    return x, te, m


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
        ``t_eval`` of the spline through samples ``y (T, ...)`` (a fresh, writable array;
        the operator itself is cached per knots, times, order and degree).
    """
    x, te, m = _prepare(knots, t_eval, deriv, degree)
    return _spline_operator_cached(x.tobytes(), te.tobytes(), int(deriv), m).copy()


def time_matmul(M: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``M (N, T)`` applied along the time axis of ``y (..., T, C)`` (or ``(T,)``) as one
    2-D GEMM (a batched ``torch.matmul`` is pathologically slow on small CPU inputs)."""
    if y.ndim == 1:
        return M @ y
    T = y.shape[-2]
    lead = y.shape[:-2]
    flat = y.movedim(-2, 0).reshape(T, -1)
    return (M @ flat).reshape((M.shape[0], *lead, y.shape[-1])).movedim(0, -2)


def _apply(knots, t_eval, deriv: int, degree: int, y):
    """The spline through ``y (..., T, C)`` or ``(T,)`` at ``t_eval``.

    Torch data: the cached operator ``(N, T)`` applied as one GEMM (differentiable).
    Numpy data: the banded system solved for the data's own knot derivatives (``O(T C)``,
    no ``(T, T)`` operator). For derivatives the first sample is subtracted first (the
    spline of a constant is that constant), which removes the round-off of large offsets
    such as a 15 deg angle."""
    x, te, m = _prepare(knots, t_eval, deriv, degree)
    if isinstance(y, torch.Tensor):
        op = _spline_operator_cached(x.tobytes(), te.tobytes(), int(deriv), m)
        M = torch.tensor(op, dtype=y.dtype, device=y.device)
        if deriv > 0:
            y = y - (y[..., :1, :] if y.ndim >= 2 else y[:1])
        return time_matmul(M, y)
    return _evaluate_orders(x, te, m, np.asarray(y, dtype=np.float64), (deriv,))[0]


def _evaluate_orders(x: np.ndarray, te: np.ndarray, m: int, y: np.ndarray, orders) -> list:
    """Numpy evaluation of several derivative orders with one banded solve: the data and
    (when a derivative is asked for) the data less its first sample, side by side."""
    flat = np.moveaxis(y, -2, 0).reshape(y.shape[-2], -1) if y.ndim >= 2 else y[:, None]
    C = flat.shape[1]
    need0 = any(r == 0 for r in orders)
    need1 = any(r > 0 for r in orders)
    parts = ([flat] if need0 else []) + ([flat - flat[:1]] if need1 else [])
    data = np.concatenate(parts, 1) if len(parts) > 1 else parts[0]
    z = _solve_knot_derivatives(x, m, data)  # (T, m-1, C or 2C)
    out = []
    for r in orders:
        cs = slice(0, C) if r == 0 or not need0 else slice(C, 2 * C)
        fr, zr = data[:, cs], z[:, :, cs]
        i, wl, wr = _eval_weights(x, te, r, m)
        o = wl[:, :1] * fr[i] + wr[:, :1] * fr[i + 1]
        o += np.einsum("nj,njc->nc", wl[:, 1:], zr[i]) + np.einsum(
            "nj,njc->nc", wr[:, 1:], zr[i + 1]
        )
        if y.ndim == 1:
            out.append(o[:, 0])
        else:
            out.append(np.moveaxis(o.reshape((te.shape[0], *y.shape[:-2], y.shape[-1])), 0, -2))
    return out


def spline_evaluate_orders(knots, y, t_eval, orders=(0, 1, 2), *, degree: int = 5) -> list:
    """:func:`spline_evaluate` for several derivative ``orders`` at once (numpy ``y`` only:
    one banded solve serves them all; the same numbers as separate calls)."""
    if _time_axis_len(y) != len(knots):
        raise ShapeError(f"y has {_time_axis_len(y)} samples along time, knots has {len(knots)}")
    for r in orders:
        _prepare(knots, t_eval, r, degree)
    x, te, m = _prepare(knots, t_eval, 0, degree)
    return _evaluate_orders(x, te, m, np.asarray(y, dtype=np.float64), tuple(orders))


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
    return _apply(knots, t_eval, deriv, degree, y)


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
    return tuple(_apply(t, t, r, degree, x) for r in range(1, order + 1))
