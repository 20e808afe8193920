"""Low-pass filtering exactly as OpenSim 4.6 applies it to coordinates, and a plain
zero-lag Butterworth.

What OpenSim's InverseDynamicsTool and AnalyzeTool do when
``lowpass_cutoff_frequency_for_coordinates`` is set (``>= 0``)::

    storage.pad(storage.getSize() // 2)    # Signal::Pad, time column too
    storage.lowpassIIR(cutoff)             # resample if non-uniform, then Signal::LowpassIIR

``Signal::Pad(n)`` prepends ``2 x[0] - x[n..1]`` and appends ``2 x[-1] - x[-2..-n-1]`` (a
point reflection that keeps value and slope). ``Storage::lowpassIIR`` takes the smallest
time step ``dtmin``; if the mean step exceeds it by more than machine epsilon (times
printed with 8 decimals are never exactly uniform) it first *resamples* every column with
``GCVSplineSet(5)`` (natural quintic interpolant) at ``t0, t0 + dtmin, t0 + 2 dtmin, ...``
(a running sum, while ``<= t_last``). ``Signal::LowpassIIR(dtmin, fc)`` is a third-order
Butterworth from the bilinear transform (prewarped ``tan(pi fc T)``), run forward and then
backward (zero lag, effective order 6, -6 dB at ``fc``), each pass starting by copying the
first three samples. A cutoff at or above half the sampling rate is replaced by
``0.49 / T`` (OpenSim warns).
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache

import numpy as np
import torch

from diffbio._errors import ShapeError
from diffbio.io._spline import spline_evaluate, time_matmul

__all__ = [
    "opensim_pad",
    "opensim_iir",
    "lowpass_filter",
    "lowpass_operator",
    "opensim_lowpass",
    "butterworth_filtfilt",
]


def opensim_pad(x: np.ndarray, n_pad: int) -> np.ndarray:
    """OpenSim's ``Signal::Pad`` along axis 0: ``(T, ...) -> (T + 2 n_pad, ...)``.

    Prepends ``2 x[0] - x[n_pad], ..., 2 x[0] - x[1]`` and appends
    ``2 x[-1] - x[-2], ..., 2 x[-1] - x[-1-n_pad]``. Applies to the time column as well.
    """
    x = np.asarray(x, dtype=np.float64)
    T = x.shape[0]
    if n_pad == 0:
        return x.copy()
    if n_pad < 0 or n_pad > T - 1:
        raise ShapeError(f"pad size {n_pad} must be in [0, T-1] for T={T} samples")
    head = 2.0 * x[0] - x[n_pad:0:-1]
    tail = 2.0 * x[-1] - x[T - 2 : T - 2 - n_pad : -1] if T - 2 - n_pad >= 0 else None
    if tail is None:
        tail = 2.0 * x[-1] - x[T - 2 :: -1][:n_pad]
    return np.concatenate([head, x, tail], axis=0)


def _iir_coefficients(T: float, fc: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    fs = 1.0 / T
    if fc >= 0.5 * fs:
        fc = 0.49 * fs
        warnings.warn(
            f"cutoff frequency should be less than half the sample frequency; using "
            f"0.49*fs = {fc} Hz (as OpenSim does)",
            stacklevel=3,
        )
    wc = 2 * math.pi * fc
    wa = math.tan(wc * T / 2.0)
    wa2 = wa * wa
    wa3 = wa * wa * wa
    denom = (wa + 1) * (wa * wa + wa + 1.0)
    a = (wa3 / denom, 3 * wa3 / denom, 3 * wa3 / denom, wa3 / denom)
    b = (
        1.0,
        (3 * wa3 + 2 * wa2 - 2 * wa - 3) / denom,
        (3 * wa3 - 2 * wa2 - 2 * wa + 3) / denom,
        (wa - 1) * (wa2 - wa + 1) / denom,
    )
    return a, b


def _iir_pass(sig: np.ndarray, a, b) -> np.ndarray:
    """One pass of OpenSim's recursion along axis 0: ``out[:3] = sig[:3]`` and, for
    ``i >= 3``, ``out[i] = sum_k a_k sig[i-k] - sum_{k>=1} b_k out[i-k]`` (OpenSim's
    direct form). The feedback is a unit lower-triangular banded system, solved by forward
    substitution in LAPACK (``dtbtrs``: no pivoting, the recursion's own arithmetic up to
    the order of the sums) for all columns at once."""
    from scipy.linalg.lapack import dtbtrs

    T = sig.shape[0]
    if T <= 3:
        return sig.copy()
    flat = sig.reshape(T, -1)
    rhs = np.empty_like(flat)
    rhs[:3] = flat[:3]
    rhs[3:] = a[0] * flat[3:] + a[1] * flat[2:-1] + a[2] * flat[1:-2] + a[3] * flat[: T - 3]
    band = np.zeros((4, T))
    band[0] = 1.0
    for k in (1, 2, 3):
        band[k, : T - k] = b[k]
        band[k, : 3 - k] = 0.0  # the first three rows are copied, no feedback
    out, info = dtbtrs(band, rhs, uplo="L")
    if info != 0:  # a unit diagonal cannot be singular
        raise RuntimeError(f"IIR pass: LAPACK dtbtrs returned info = {info}")
    return out.reshape(sig.shape)


def opensim_iir(x: np.ndarray, dt: float, cutoff_hz: float) -> np.ndarray:
    """OpenSim's ``Signal::LowpassIIR`` along axis 0 of ``x (T, ...)`` (no padding).

    Third-order Butterworth, forward then backward pass, first three samples of each pass
    copied from its input. Needs ``T >= 4``.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.shape[0] < 4:
        raise ShapeError(f"the IIR filter needs at least 4 samples, got {x.shape[0]}")
    if dt <= 0:
        raise ValueError(f"dt must be positive, got {dt}")
    a, b = _iir_coefficients(float(dt), float(cutoff_hz))
    fwd = _iir_pass(x, a, b)
    return _iir_pass(fwd[::-1], a, b)[::-1].copy()


def lowpass_filter(x, dt: float, cutoff_hz: float, *, pad: bool = True, keep_padding: bool = False):
    """Low-pass filter uniformly sampled data the way OpenSim's tools filter coordinates.

    Pads with ``T // 2`` reflected samples (``Signal::Pad``), runs OpenSim's zero-lag
    third-order IIR Butterworth forward and backward, and (unless ``keep_padding``) drops
    the padding again.

    Args:
        x: ``(T,)`` or ``(..., T, C)`` samples, numpy or torch. Torch input is filtered
            as a ``(T', T)`` linear operator (the filter is linear), so the result is
            differentiable with respect to ``x``.
        dt: sample interval ``[s]``.
        cutoff_hz: cutoff frequency ``[Hz]`` (the -6 dB point of the two passes).
        pad: pad with ``T // 2`` samples first, as OpenSim does.
        keep_padding: return the padded length ``T + 2 (T // 2)`` (what OpenSim keeps
            and fits its splines to) instead of ``T``.

    Returns:
        Filtered samples of the same type, shaped like ``x`` (or padded along time).
    """
    is_torch = isinstance(x, torch.Tensor)
    T = int(x.shape[-2] if x.ndim >= 2 else x.shape[0])
    n_pad = T // 2 if pad else 0
    if not is_torch:
        arr = np.asarray(x, dtype=np.float64)
        moved = np.moveaxis(arr, -2, 0) if arr.ndim >= 2 else arr
        out = opensim_iir(opensim_pad(moved, n_pad), dt, cutoff_hz)
        if not keep_padding:
            out = out[n_pad : n_pad + T]
        return np.moveaxis(out, 0, -2) if arr.ndim >= 2 else out
    op = lowpass_operator(T, dt, cutoff_hz, pad=pad, keep_padding=keep_padding)
    M = torch.tensor(op, dtype=x.dtype, device=x.device)
    return time_matmul(M, x)


@lru_cache(maxsize=32)
def _lowpass_operator_cached(
    T: int, dt: float, cutoff_hz: float, pad: bool, keep_padding: bool
) -> np.ndarray:
    n_pad = T // 2 if pad else 0
    out = opensim_iir(opensim_pad(np.eye(T), n_pad), dt, cutoff_hz)
    out = out if keep_padding else out[n_pad : n_pad + T]
    out.flags.writeable = False
    return out


def lowpass_operator(
    T: int, dt: float, cutoff_hz: float, *, pad: bool = True, keep_padding: bool = False
) -> np.ndarray:
    """``F (T', T)``: :func:`lowpass_filter` as a matrix (it is linear in the data)."""
    return _lowpass_operator_cached(
        int(T), float(dt), float(cutoff_hz), bool(pad), bool(keep_padding)
    )


def opensim_lowpass(
    time: np.ndarray, x: np.ndarray, cutoff_hz: float
) -> tuple[np.ndarray, np.ndarray]:
    """Exactly ``Storage.pad(T // 2); Storage.lowpassIIR(cutoff_hz)`` of OpenSim 4.6.

    Args:
        time: ``(T,) [s]`` strictly increasing (need not be uniform).
        x: ``(T, C)`` or ``(T,)`` samples (numpy).
        cutoff_hz: cutoff ``[Hz]``.

    Returns:
        ``(time_f (T',), x_f (T', C))``: the padded (and, where the input steps were not
        uniform to machine precision, resampled at the smallest step) times and the
        filtered samples, exactly the rows OpenSim's storage holds afterwards. ``T'`` is
        ``T + 2 (T // 2)`` unless resampling changed the count.
    """
    t = np.asarray(time, dtype=np.float64)
    y = np.asarray(x, dtype=np.float64)
    if t.ndim != 1 or y.shape[0] != t.shape[0]:
        raise ShapeError(f"time {t.shape} and x {y.shape} must be (T,) and (T, ...)")
    n_pad = t.shape[0] // 2
    t = opensim_pad(t, n_pad)
    y = opensim_pad(y, n_pad)
    size = t.shape[0]
    dtmin = float(np.min(np.diff(t)))
    avg = (t[-1] - t[0]) / (size - 1)
    if dtmin < np.finfo(np.float64).eps:
        raise ValueError("time steps too small to resample")
    if avg - dtmin > np.finfo(np.float64).eps:
        t_new = _running_grid(t[0], t[-1], dtmin)
        y = spline_evaluate(t, y.reshape(size, -1), t_new, 0, degree=5)
        y = y.reshape((t_new.shape[0],) + np.asarray(x).shape[1:])
        t = t_new
    return t, opensim_iir(y, dtmin, cutoff_hz)


def _running_grid(t0: float, t1: float, dt: float) -> np.ndarray:
    """``t0, t0+dt, (t0+dt)+dt, ...`` while ``<= t1``: OpenSim's accumulated grid."""
    out = []
    x = t0
    while x <= t1:
        out.append(x)
        if x < t1:
            x += dt
        else:
            break
    return np.asarray(out)


def butterworth_filtfilt(x, dt: float, cutoff_hz: float, *, order: int = 4, axis: int = -2):
    """Zero-lag Butterworth low-pass (scipy ``filtfilt``, odd-extension padding).

    The cutoff is that of a single pass (each pass is -3 dB at ``cutoff_hz``, the two
    together -6 dB). A general-purpose helper; use :func:`lowpass_filter` to match OpenSim.

    Args:
        x: samples with time along ``axis`` (default ``-2``, i.e. ``(..., T, C)``); a 1-D
            array is filtered along its only axis. Numpy only.
        dt: sample interval ``[s]``.
        cutoff_hz: cutoff ``[Hz]``, below the Nyquist frequency.
        order: order of one pass.
    """
    import scipy.signal  # imported here: a slow import the OpenSim path does not need

    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        axis = 0
    nyq = 0.5 / dt
    if not 0 < cutoff_hz < nyq:
        raise ValueError(f"cutoff {cutoff_hz} Hz must lie in (0, {nyq}) Hz")
    sos = scipy.signal.butter(order, cutoff_hz / nyq, output="sos")
    return scipy.signal.sosfiltfilt(sos, x, axis=axis)
