"""Shared helpers of the command-line tools (model loading, motion reading, tables)."""

from __future__ import annotations

from pathlib import Path

from diffbio._errors import DiffbioError


def load_model_arg(spec: str):
    """A model from a path, or ``default`` for the built-in default model."""
    if spec == "default":
        from diffbio.model import default_model

        return default_model()
    from diffbio.model import load_osim

    return load_osim(Path(spec))


def read_motion(model, path: str | Path, time_range=None):
    """``(time, q)`` of ``model`` from a motion file, optionally cut to ``time_range``."""
    from diffbio.io import read_storage
    from diffbio.kinematics import coordinates_from_storage

    storage = read_storage(path)
    if time_range is not None:
        t0, t1 = time_range
        if t1 < storage.time[0] or t0 > storage.time[-1]:
            raise DiffbioError(
                f"{path}: time range {t0:g}-{t1:g} s does not overlap the motion "
                f"({storage.time[0]:g}-{storage.time[-1]:g} s)"
            )
        storage = storage.slice_time(t0, t1)
    return coordinates_from_storage(model, storage, source=str(path))


def print_table(rows: list[list], header: list[str]) -> None:
    """Print a plain aligned table."""
    cells = [[str(h) for h in header]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for k, r in enumerate(cells):
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))
            )
        )
        if k == 0:
            print("  ".join("-" * w for w in widths))


def _fmt(c) -> str:
    if isinstance(c, float):
        return f"{c:.4g}"
    return str(c)
