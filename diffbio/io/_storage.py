"""OpenSim Storage tables (``.sto`` / ``.mot``): reading, writing, a frozen container.

Two header dialects are read:

* version 1 (OpenSim 2.x-4.x): a first line with the table name, then ``key=value`` lines
  (``version``, ``nRows``, ``nColumns``, ``inDegrees``, anything else), free text, and
  ``endheader``;
* the older SIMM form: first line the name, then ``datacolumns N`` / ``datarows N`` /
  ``range t0 t1`` (space or ``=`` separated), ``endheader``.

``inDegrees`` may be missing (then ``no``). After ``endheader`` comes one line of column
labels (the first is time, whatever it is called) and one row per frame, tab or
whitespace separated. ``nColumns`` counts the time column.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from diffbio._errors import FileFormatError, ShapeError

__all__ = ["Storage", "read_storage", "write_storage"]

_ROW_KEYS = ("nrows", "datarows", "nr")
_COL_KEYS = ("ncolumns", "datacolumns", "nc")


@dataclass(frozen=True, eq=False)
class Storage:
    """An OpenSim Storage table.

    Attributes:
        name: table name (first header line).
        time: ``(T,) [s]``, strictly increasing.
        labels: the ``C`` column names, excluding time.
        data: ``(T, C)`` values in file units (degrees for rotational coordinates when
            ``in_degrees``).
        in_degrees: the file's ``inDegrees`` flag.
        header: other ``key=value`` header lines, in file order (``version``, ``nRows``,
            ``nColumns`` and ``inDegrees`` are not repeated here).
        comments: free-text header lines (no ``=``), in file order.
    """

    name: str
    time: np.ndarray
    labels: tuple[str, ...]
    data: np.ndarray
    in_degrees: bool = False
    header: dict[str, str] = field(default_factory=dict)
    comments: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        time = np.ascontiguousarray(self.time, dtype=np.float64)
        data = np.ascontiguousarray(self.data, dtype=np.float64)
        if data.ndim == 1 and len(self.labels) == 1:
            data = data[:, None]
        if time.ndim != 1 or data.ndim != 2 or data.shape != (time.shape[0], len(self.labels)):
            raise ShapeError(
                f"Storage: time {time.shape}, data {data.shape} and {len(self.labels)} labels "
                "do not agree (expected time (T,), data (T, C))"
            )
        time.flags.writeable = False
        data.flags.writeable = False
        object.__setattr__(self, "time", time)
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "labels", tuple(str(s) for s in self.labels))
        object.__setattr__(self, "header", dict(self.header))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(
        cls,
        time: np.ndarray,
        labels: tuple[str, ...] | list[str],
        data: np.ndarray,
        *,
        in_degrees: bool = False,
        name: str = "",
        header: dict[str, str] | None = None,
    ) -> Storage:
        """Build a Storage from ``time (T,) [s]``, ``C`` labels and ``data (T, C)``.

        Raises :class:`~diffbio.FileFormatError` (no path) on duplicate labels or a time
        column that is not strictly increasing.
        """
        labels = tuple(labels)
        _check_unique(None, labels, line=None)
        time = np.asarray(time, dtype=np.float64)
        if time.ndim == 1 and time.size > 1:
            bad = np.nonzero(np.diff(time) <= 0)[0]
            if bad.size:
                i = int(bad[0]) + 1
                raise FileFormatError(
                    None,
                    f"time is not strictly increasing: row {i} has t={float(time[i])!r} "
                    f"after t={float(time[i - 1])!r}",
                    column="time",
                )
        return cls(name, time, labels, np.asarray(data), in_degrees, dict(header or {}))

    # ---------------------------------------------------------------------- access
    @property
    def n_frames(self) -> int:
        """Number of rows ``T``."""
        return int(self.time.shape[0])

    def index(self, name: str) -> int:
        """Column index of ``name`` (KeyError naming the missing column otherwise)."""
        try:
            return self.labels.index(name)
        except ValueError:
            raise KeyError(f"Storage {self.name!r} has no column {name!r}") from None

    def column(self, name: str) -> np.ndarray:
        """The column ``name``: ``(T,)``."""
        return self.data[:, self.index(name)]

    def columns(self, names: list[str] | tuple[str, ...]) -> np.ndarray:
        """The columns ``names`` in that order: ``(T, len(names))``."""
        return self.data[:, [self.index(n) for n in names]]

    def slice_time(self, t0: float, t1: float) -> Storage:
        """Rows with ``t0 <= time <= t1`` (inclusive on both ends)."""
        keep = (self.time >= t0) & (self.time <= t1)
        return replace(self, time=self.time[keep], data=self.data[keep])

    def with_columns(self, names: list[str] | tuple[str, ...]) -> Storage:
        """A Storage holding only the columns ``names``, in that order."""
        return replace(self, labels=tuple(names), data=self.columns(names))

    def with_data(self, data: np.ndarray, labels: tuple[str, ...] | None = None) -> Storage:
        """A copy with new ``data (T, C')`` (and optionally new labels)."""
        return replace(self, data=data, labels=self.labels if labels is None else labels)

    def __repr__(self) -> str:
        span = f"{self.time[0]:g}..{self.time[-1]:g} s" if self.n_frames else "empty"
        return (
            f"Storage(name={self.name!r}, T={self.n_frames}, C={len(self.labels)}, {span}, "
            f"in_degrees={self.in_degrees})"
        )


# -------------------------------------------------------------------------- reading
def _check_unique(path: Path | None, labels: tuple[str, ...], line: int | None) -> None:
    seen: dict[str, int] = {}
    for i, lab in enumerate(labels):
        if lab in seen:
            raise FileFormatError(
                path,
                f"duplicate column name {lab!r} (columns {seen[lab] + 2} and {i + 2}, "
                "counting time as column 1)",
                line=line,
                column=lab,
            )
        seen[lab] = i


def _parse_bool(text: str) -> bool:
    return text.strip().lower() in ("yes", "true", "1", "y")


def _split(line: str) -> list[str]:
    """Split a table line on tabs when it has any (keeping inner empties), else on spaces."""
    if "\t" in line:
        parts = [p.strip() for p in line.rstrip("\r\n").split("\t")]
        while parts and parts[-1] == "":
            parts.pop()
        while parts and parts[0] == "":
            parts.pop(0)
        return parts
    return line.split()


def _parse_block(lines: list[str], start: int, width: int) -> np.ndarray | None:
    """The numeric rows ``lines[start:]`` as a ``(T, width)`` array parsed in C, or None
    where the fast parse may disagree with :func:`_parse_rows` (which then reads the rows
    and reports the exact error): a row of another width, a token that is not a plain
    number, an empty tab-separated field, a line with a tab among lines without."""
    import io
    import warnings

    body = "\n".join(lines[start:])
    if not body.strip():
        return None
    # Tab-separated rows are split on tabs (fields stripped), others on whitespace; a
    # table mixing the two, or holding empty fields, takes the slow path.
    delimiter = "\t" if "\t" in body else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            table = np.loadtxt(
                io.StringIO(body), dtype=np.float64, delimiter=delimiter, comments=None,
                ndmin=2, quotechar=None,
            )  # fmt: skip
    except (ValueError, Warning):
        return None
    if table.shape[1] != width:
        return None
    return table


def _parse_rows(
    path: Path, lines: list[str], start: int, all_labels: list[str]
) -> tuple[np.ndarray, list[int]]:
    """The numeric rows ``lines[start:]`` read one by one (exact error messages): the
    ``(T, width)`` table and the 1-based line number of every row."""
    width = len(all_labels)
    rows: list[list[float]] = []
    row_lines: list[int] = []
    for k in range(start, len(lines)):
        text = lines[k]
        if not text.strip():
            continue
        parts = _split(text)
        if len(parts) != width:
            raise FileFormatError(
                path,
                f"row has {len(parts)} values, expected {width} (time + {width - 1} columns)",
                line=k + 1,
            )
        vals = []
        for j, tok in enumerate(parts):
            try:
                vals.append(float(tok))
            except ValueError:
                raise FileFormatError(
                    path, f"non-numeric value {tok!r}", line=k + 1, column=all_labels[j]
                ) from None
        rows.append(vals)
        row_lines.append(k + 1)
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), width), row_lines


def read_storage(path: str | Path, *, allow_nan: bool = True) -> Storage:
    """Read an OpenSim ``.sto``/``.mot`` file.

    Args:
        path: the file.
        allow_nan: when False, a NaN value raises :class:`~diffbio.FileFormatError` naming
            the column, the time and the line.

    Returns:
        A :class:`Storage` with ``time (T,) [s]`` and ``data (T, C)`` in file units.

    Raises:
        FileFormatError: no ``endheader``, no label line, a row with the wrong number of
            values (line), a non-numeric value (line and column), a NaN with
            ``allow_nan=False``, duplicate column names, time not strictly increasing,
            ``nRows``/``nColumns`` that disagree with the table.
    """
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(path, "no such file")
    with open(path, encoding="utf-8", errors="replace") as fh:
        lines = fh.read().splitlines()

    end = None
    for i, line in enumerate(lines):
        if line.strip().lower() == "endheader":
            end = i
            break
    if end is None:
        raise FileFormatError(path, "no 'endheader' line: not an OpenSim Storage file")

    name = ""
    header: dict[str, str] = {}
    comments: list[str] = []
    n_rows = n_cols = None
    in_degrees = False
    for i in range(end):
        raw = lines[i].strip()
        if i == 0:
            # The first line is the table name unless it is already a key=value line.
            if "=" not in raw:
                name = raw
                continue
        if not raw:
            continue
        if "=" in raw:
            key, _, value = raw.partition("=")
            key, value = key.strip(), value.strip()
        else:
            parts = raw.split(None, 1)
            key, value = parts[0], (parts[1].strip() if len(parts) > 1 else "")
            if key.lower() not in _ROW_KEYS + _COL_KEYS + ("range",):
                comments.append(raw)
                continue
        low = key.lower()
        try:
            if low in _ROW_KEYS:
                n_rows = int(value)
                continue
            if low in _COL_KEYS:
                n_cols = int(value)
                continue
        except ValueError:
            raise FileFormatError(
                path, f"header value {key}={value!r} is not an integer", line=i + 1
            ) from None
        if low == "indegrees":
            in_degrees = _parse_bool(value)
            continue
        if low == "version":
            continue
        header[key] = value

    # Label line: the first non-empty line after endheader.
    li = end + 1
    while li < len(lines) and not lines[li].strip():
        li += 1
    if li >= len(lines):
        raise FileFormatError(path, "no column-label line after 'endheader'", line=end + 2)
    all_labels = _split(lines[li])
    if not all_labels:
        raise FileFormatError(path, "empty column-label line", line=li + 1)
    labels = tuple(all_labels[1:])
    _check_unique(path, labels, line=li + 1)
    if all_labels[0] in labels:
        _check_unique(path, tuple(all_labels), line=li + 1)
    width = len(all_labels)
    if n_cols is not None and n_cols != width:
        raise FileFormatError(
            path,
            f"header says nColumns={n_cols} but the label line has {width} columns (time included)",
            line=li + 1,
        )

    table = _parse_block(lines, li + 1, width)
    if table is None:
        table, row_lines = _parse_rows(path, lines, li + 1, all_labels)
    else:
        row_lines = None
    n = table.shape[0]
    if n_rows is not None and n_rows != n:
        raise FileFormatError(path, f"header says nRows={n_rows} but the table has {n} rows")

    def line_of(r: int) -> int:
        nonlocal row_lines
        if row_lines is None:
            row_lines = [k + 1 for k in range(li + 1, len(lines)) if lines[k].strip()]
        return row_lines[r]

    time = table[:, 0]
    if np.isnan(time).any():
        r = int(np.nonzero(np.isnan(time))[0][0])
        raise FileFormatError(path, "time is NaN", line=line_of(r), column=all_labels[0])
    if n > 1:
        bad = np.nonzero(np.diff(time) <= 0)[0]
        if bad.size:
            r = int(bad[0]) + 1
            raise FileFormatError(
                path,
                f"time is not strictly increasing: t={float(time[r])!r} follows t={float(time[r - 1])!r}",
                line=line_of(r),
                column=all_labels[0],
            )
    data = table[:, 1:]
    if not allow_nan:
        nan = np.isnan(data)
        if nan.any():
            r, c = (int(v) for v in np.argwhere(nan)[0])
            raise FileFormatError(
                path,
                f"NaN value at time {float(time[r])!r} (allow_nan=False)",
                line=line_of(r),
                column=labels[c],
            )
    return Storage(name, time, labels, data, in_degrees, header, tuple(comments))


# -------------------------------------------------------------------------- writing
def _fmt(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Inf" if v > 0 else "-Inf"
    return repr(float(v))


def write_storage(path: str | Path, storage: Storage) -> Path:
    """Write ``storage`` as a version-1 OpenSim Storage file (tab separated).

    Values are written with 17 significant digits (``repr``), so a round trip is exact;
    OpenSim 4.6 reads the result with ``opensim.Storage`` and ``opensim.TimeSeriesTable``.
    """
    path = Path(path)
    _check_unique(path, storage.labels, line=None)
    out = [
        storage.name or path.stem,
        "version=1",
        f"nRows={storage.n_frames}",
        f"nColumns={len(storage.labels) + 1}",
        f"inDegrees={'yes' if storage.in_degrees else 'no'}",
    ]
    for key, value in storage.header.items():
        if key.lower() in ("version",) + _ROW_KEYS + _COL_KEYS + ("indegrees",):
            continue
        out.append(f"{key}={value}")
    out.extend(c for c in storage.comments if c.strip().lower() != "endheader")
    out.append("endheader")
    out.append("\t".join(("time",) + storage.labels))
    for t, row in zip(storage.time, storage.data):
        out.append("\t".join([_fmt(t)] + [_fmt(v) for v in row]))
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path
