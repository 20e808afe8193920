"""Write ``.trc`` marker files (OpenSim's marker format)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_trc(
    path: str | Path,
    time: np.ndarray,
    names: tuple[str, ...] | list[str],
    positions: np.ndarray,
    *,
    units: str = "mm",
) -> Path:
    """Write marker trajectories ``positions: (T, K, 3) [m]`` at ``time: (T,) [s]`` as a
    ``.trc`` file in ``units`` (``mm`` by default, as motion-capture systems write them).
    NaN samples are written as empty cells (missing markers)."""
    path = Path(path)
    time = np.asarray(time, dtype=float)
    positions = np.asarray(positions, dtype=float)
    T, K = positions.shape[:2]
    factor = {"mm": 1000.0, "cm": 100.0, "m": 1.0}[units]
    rate = (T - 1) / (time[-1] - time[0]) if T > 1 else 0.0
    lines = [
        f"PathFileType\t4\t(X/Y/Z)\t{path.name}",
        "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame\tOrigNumFrames",
        f"{rate:.6g}\t{rate:.6g}\t{T}\t{K}\t{units}\t{rate:.6g}\t1\t{T}",
        "Frame#\tTime\t" + "\t\t\t".join(names) + "\t\t",
        "\t\t" + "\t".join(f"X{k + 1}\tY{k + 1}\tZ{k + 1}" for k in range(K)),
        "",
    ]
    for t in range(T):
        cells = [str(t + 1), f"{time[t]:.6f}"]
        for v in (positions[t] * factor).reshape(-1):
            cells.append("" if np.isnan(v) else f"{v:.6f}")
        lines.append("\t".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return path
