"""Coordinates of a model from an OpenSim motion (``.mot``/``.sto``) table."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor

from diffbio._errors import FileFormatError
from diffbio.kinematics._fk import apply_couplers
from diffbio.model import Model


def match_coordinate_columns(model: Model, labels: tuple[str, ...]) -> dict[str, int]:
    """Map coordinate names to column indices. Accepts OpenSim 4 path labels such as
    ``/jointset/hip_r/hip_flexion_r/value`` as well as bare names."""
    out = {}
    names = set(model.coordinate_names)
    for i, lab in enumerate(labels):
        key = lab
        if lab.startswith("/"):
            parts = lab.strip("/").split("/")
            if parts[-1] != "value":
                continue
            key = parts[-2]
        if key in names and key not in out:
            out[key] = i
    return out


def coordinates_from_storage(
    model: Model, storage, *, dtype: torch.dtype = torch.float64, source: str | None = None
) -> tuple[np.ndarray, Tensor]:
    """``time (T,) [s]`` and ``q (T, Q) [rad or m]`` from a motion table.

    Columns are matched to coordinates by name; rotational coordinates are converted from
    degrees when the file says ``inDegrees=yes`` (as OpenSim converts them); coordinates
    missing from the file take their default values (a warning names them), and the
    dependent coordinates of coupler constraints are computed when absent. A motion
    sharing no column with the model, or holding NaN, is an error naming the file.
    """
    src = source or getattr(storage, "path", None)
    cols = match_coordinate_columns(model, storage.labels)
    if not cols:
        raise FileFormatError(
            src,
            f"no column matches a coordinate of model {model.name!r} "
            f"(columns: {', '.join(storage.labels[:8])}{', ...' if len(storage.labels) > 8 else ''}; "
            f"coordinates: {', '.join(model.coordinate_names[:8])}, ...)",
        )
    dependent = {k.dependent for k in model.couplers}
    missing = [n for n in model.coordinate_names if n not in cols]
    missing_free = [n for n in missing if n not in dependent and not model.coordinate(n).locked]
    if missing_free:
        warnings.warn(
            f"{src}: no column for coordinates {missing_free}; using their default values",
            stacklevel=2,
        )
    T = len(storage.time)
    q = np.tile(model.default_q().numpy(), (T, 1))
    rot = model.rotational_mask
    for name, ci in cols.items():
        j = model.coordinate_index(name)
        v = storage.data[:, ci]
        bad = np.flatnonzero(~np.isfinite(v))
        if bad.size:
            raise FileFormatError(
                src,
                f"NaN or infinite value at time {storage.time[bad[0]]:g}",
                column=storage.labels[ci],
            )
        q[:, j] = np.deg2rad(v) if (storage.in_degrees and rot[j]) else v
    qt = torch.tensor(q, dtype=dtype)
    if any(d in missing for d in dependent):
        qt = apply_couplers(model, qt)
    return np.asarray(storage.time, dtype=float), qt
