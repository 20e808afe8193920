"""``.trc`` marker trajectories (PathFileType 4, ``(X/Y/Z)``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from diffbio._errors import FileFormatError

__all__ = ["MarkerData", "read_trc", "TRC_UNITS"]

#: Length units a ``.trc`` header may name, and their size in metres.
TRC_UNITS: dict[str, float] = {"mm": 1e-3, "cm": 1e-2, "m": 1.0}


@dataclass(frozen=True, eq=False)
class MarkerData:
    """Marker trajectories from a ``.trc`` file.

    Attributes:
        time: ``(T,) [s]``.
        names: the ``K`` marker names.
        positions: ``(T, K, 3) [m]`` in the lab frame of the file (no axis change);
            missing samples are NaN.
        data_rate: ``DataRate`` from the header ``[Hz]``.
        units: the file's length unit (``mm``, ``cm`` or ``m``) before conversion.
        frame_numbers: ``(T,)`` the ``Frame#`` column.
        header: every header key/value (``DataRate``, ``CameraRate``, ``NumFrames``, ...).
    """

    time: np.ndarray
    names: tuple[str, ...]
    positions: np.ndarray
    data_rate: float
    units: str = "m"
    frame_numbers: np.ndarray | None = None
    header: dict[str, str] = field(default_factory=dict)

    def marker(self, name: str) -> np.ndarray:
        """Trajectory of marker ``name``: ``(T, 3) [m]``."""
        try:
            return self.positions[:, self.names.index(name)]
        except ValueError:
            raise KeyError(f"no marker named {name!r}") from None

    def __repr__(self) -> str:
        return (
            f"MarkerData(T={self.time.shape[0]}, K={len(self.names)}, "
            f"data_rate={self.data_rate:g} Hz, units={self.units!r})"
        )


def _fields(line: str) -> list[str]:
    return [p.strip() for p in line.rstrip("\r\n").split("\t")]


def read_trc(path: str | Path) -> MarkerData:
    """Read a ``.trc`` marker file, converting positions to metres.

    Layout: line 1 ``PathFileType 4 (X/Y/Z) name``; line 2 header keys; line 3 their
    values (``Units`` among them); line 4 ``Frame# Time`` and the marker names (each
    followed by two empty cells); line 5 ``X1 Y1 Z1 ...``; then rows (blank lines
    skipped). Empty cells and cells missing at the end of a row are missing samples: a
    marker with any empty cell in a row is NaN in all three coordinates there (OpenSim's
    ``TRCFileAdapter`` does the same; unlike it, short rows are accepted).

    Raises:
        FileFormatError: unknown unit (named), marker-count or frame-count mismatch with
            the header, a row with too many values or a non-numeric value (line, column).
    """
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(path, "no such file")
    with open(path, encoding="utf-8", errors="replace") as fh:
        lines = fh.read().splitlines()
    if len(lines) < 5:
        raise FileFormatError(path, "too short for a .trc file (needs 5 header lines)")
    if not lines[0].startswith("PathFileType"):
        raise FileFormatError(path, "first line does not start with 'PathFileType'", line=1)
    keys = [k for k in _fields(lines[1]) if k]
    values = [v for v in _fields(lines[2]) if v] if "\t" in lines[2] else lines[2].split()
    if len(values) < len(keys):
        raise FileFormatError(path, f"{len(keys)} header keys but {len(values)} values", line=3)
    header = dict(zip(keys, values))
    try:
        data_rate = float(header.get("DataRate", "nan"))
        n_markers = int(header["NumMarkers"]) if "NumMarkers" in header else None
        n_frames = int(header["NumFrames"]) if "NumFrames" in header else None
    except ValueError as exc:
        raise FileFormatError(path, f"bad header value: {exc}", line=3) from None
    unit = header.get("Units", "mm")
    if unit not in TRC_UNITS:
        raise FileFormatError(
            path,
            f"unknown length unit {unit!r} (expected one of {', '.join(TRC_UNITS)})",
            line=3,
            column="Units",
        )
    scale = TRC_UNITS[unit]

    label_cells = _fields(lines[3])
    names = tuple(c for c in label_cells[2:] if c)
    if n_markers is not None and n_markers != len(names):
        raise FileFormatError(
            path,
            f"header says NumMarkers={n_markers} but line 4 names {len(names)} markers",
            line=4,
        )
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise FileFormatError(path, f"duplicate marker name {dup!r}", line=4, column=dup)
    K = len(names)
    width = 2 + 3 * K

    rows: list[list[float]] = []
    for k in range(5, len(lines)):
        text = lines[k]
        if not text.strip():
            continue
        cells = _fields(text) if "\t" in text else text.split()
        while len(cells) > width and cells[-1] == "":
            cells.pop()
        if len(cells) > width:
            raise FileFormatError(
                path, f"row has {len(cells)} values, expected at most {width}", line=k + 1
            )
        vals = []
        for j, c in enumerate(cells):
            if c == "":
                vals.append(np.nan)
                continue
            try:
                vals.append(float(c))
            except ValueError:
                col = (
                    ("Frame#", "Time")[j]
                    if j < 2
                    else f"{names[(j - 2) // 3]}.{'XYZ'[(j - 2) % 3]}"
                )
                raise FileFormatError(
                    path, f"non-numeric value {c!r}", line=k + 1, column=col
                ) from None
        vals.extend([np.nan] * (width - len(vals)))
        rows.append(vals)
    table = np.asarray(rows, dtype=np.float64).reshape(len(rows), width)
    if n_frames is not None and n_frames != len(rows):
        raise FileFormatError(
            path, f"header says NumFrames={n_frames} but the file has {len(rows)} rows"
        )
    positions = table[:, 2:].reshape(len(rows), K, 3) * scale
    # A marker sample with any empty cell is missing as a whole (as OpenSim reads it).
    positions[np.isnan(positions).any(axis=2)] = np.nan
    return MarkerData(
        time=table[:, 1].copy(),
        names=names,
        positions=positions,
        data_rate=data_rate,
        units=unit,
        frame_numbers=table[:, 0].copy(),
        header=header,
    )
