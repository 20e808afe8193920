"""One-stop preparation of coordinate trajectories as OpenSim's InverseDynamicsTool does it."""

from __future__ import annotations

import math

import numpy as np

from diffbio._errors import FileFormatError
from diffbio.io._filter import opensim_lowpass
from diffbio.io._spline import spline_evaluate_orders
from diffbio.io._storage import Storage

__all__ = ["prepare_coordinates", "find_index"]


def find_index(time: np.ndarray, t: float) -> int:
    """OpenSim's ``Storage::findIndex``: the last row with ``time <= t`` (0 if none)."""
    return max(int(np.searchsorted(time, t, side="right")) - 1, 0)


def prepare_coordinates(
    storage: Storage,
    columns: list[str] | tuple[str, ...] | None = None,
    *,
    lowpass_hz: float | None = None,
    time_range: tuple[float, float] | None = None,
    rotational: set[str] | frozenset[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Coordinates, velocities and accelerations as OpenSim's InverseDynamicsTool gets them.

    Steps (OpenSim 4.6 ``InverseDynamicsTool::run``): if ``lowpass_hz`` is given, pad by
    ``T // 2`` and low-pass (resampling at the smallest step when the times are not
    uniform; see :func:`~diffbio.io.opensim_lowpass`); convert the ``rotational`` columns
    from degrees to radians when the file is ``inDegrees``; fit the natural quintic
    interpolating spline (``GCVSplineSet(5)``) over all rows, padding included; evaluate
    value, first and second derivative at the rows from ``findIndex(start)`` to
    ``findIndex(end)``.

    Model-agnostic: the caller says which columns to use and which are rotational.

    Args:
        storage: the coordinates file (``.mot``), e.g. from :func:`read_storage`.
        columns: labels to return, in this order (default: all columns).
        lowpass_hz: cutoff ``[Hz]``; ``None`` (or negative, as in OpenSim) skips filtering.
        time_range: ``(start, end) [s]``, intersected with the data; default: the time
            span of ``storage`` (before padding).
        rotational: labels of rotational coordinates; converted from degrees to radians
            when ``storage.in_degrees``. Other columns are left in file units.

    Returns:
        ``time (T,) [s]``, ``q (T, Q)``, ``qd (T, Q)``, ``qdd (T, Q)`` (numpy float64), in
        ``[rad]`` for rotational columns of a degree file, file units otherwise (per s and
        per s^2 for the derivatives).

    Raises:
        FileFormatError: a requested column is missing, or a NaN in the coordinates
            (names the column and the time).
    """
    names = tuple(storage.labels if columns is None else columns)
    missing = [n for n in names if n not in storage.labels]
    if missing:
        raise FileFormatError(
            None,
            f"storage {storage.name!r} has no column(s) {', '.join(map(repr, missing))}",
            column=missing[0],
        )
    t = storage.time
    y = storage.columns(names)
    nan = np.isnan(y)
    if nan.any():
        r, c = (int(v) for v in np.argwhere(nan)[0])
        raise FileFormatError(
            None,
            f"NaN coordinate value at time {float(t[r])!r} in storage {storage.name!r}",
            column=names[c],
        )
    t0, t1 = float(t[0]), float(t[-1])
    if lowpass_hz is not None and lowpass_hz >= 0:
        t, y = opensim_lowpass(t, y, lowpass_hz)
    if storage.in_degrees and rotational:
        unknown = set(rotational) - set(storage.labels)
        if unknown:
            raise FileFormatError(
                None,
                f"rotational column(s) not in storage: {', '.join(sorted(unknown))}",
                column=sorted(unknown)[0],
            )
        y = y.copy()
        for j, n in enumerate(names):
            if n in rotational:
                y[:, j] = y[:, j] * (math.pi / 180.0)
    if time_range is not None:
        t0, t1 = float(time_range[0]), float(time_range[1])
    start = max(float(t[0]), t0)
    end = min(float(t[-1]), t1)
    i0, i1 = find_index(t, start), find_index(t, end)
    times = t[i0 : i1 + 1].copy()
    q, qd, qdd = spline_evaluate_orders(t, y, times, (0, 1, 2))
    return times, q, qd, qdd
