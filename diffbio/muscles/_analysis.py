"""OpenSim's MuscleAnalysis: muscle-tendon lengths and moment arms over a motion.

``coordinates_from_motion(model, storage)`` turns a coordinates ``.mot`` into ``q (T, Q)``
(degrees to radians for rotational coordinates, missing columns at their defaults, couplers
applied); ``muscle_analysis(model, q)`` evaluates lengths ``(T, M)`` and moment arms
``(T, M, Q)``; ``write_muscle_analysis`` writes OpenSim-style ``<name>_Length.sto`` and
``<name>_MomentArm_<coordinate>.sto`` tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from diffbio.model import Model
from diffbio.muscles._path_length import muscle_geometry, muscle_names


@dataclass(frozen=True)
class MuscleAnalysis:
    """``time (T,) [s]``, ``lengths (T, M) [m]``, ``moment_arms (T, M, Q) [m]`` with the
    model's muscle and coordinate names."""

    time: np.ndarray
    muscles: tuple[str, ...]
    coordinates: tuple[str, ...]
    lengths: Tensor
    moment_arms: Tensor


def coordinates_from_motion(model: Model, storage, dtype=torch.float64) -> Tensor:
    """``q (T, Q) [rad or m]`` from a coordinates Storage (file units converted)."""
    from diffbio.kinematics import apply_couplers

    T = storage.n_frames
    q = model.default_q().to(dtype).expand(T, -1).clone()
    rot = model.rotational_mask
    for i, name in enumerate(model.coordinate_names):
        if name in storage.labels:
            col = torch.tensor(np.array(storage.column(name)), dtype=dtype)
            q[:, i] = col * (math.pi / 180.0) if (storage.in_degrees and rot[i]) else col
    return apply_couplers(model, q)


def muscle_analysis(model: Model, q: Tensor, time=None, *, chunk: int = 256) -> MuscleAnalysis:
    """Lengths and moment arms of every muscle at every frame of ``q (T, Q)`` (one
    kinematics pass per chunk of frames; ``q`` is made consistent with the couplers)."""
    L, R = [], []
    for s in range(0, q.shape[0], chunk):
        lengths, _, arms = muscle_geometry(model, q[s : s + chunk])
        L.append(lengths)
        R.append(arms)
    t = np.arange(q.shape[0], dtype=float) if time is None else np.asarray(time, dtype=float)
    return MuscleAnalysis(
        t, muscle_names(model), model.coordinate_names, torch.cat(L), torch.cat(R)
    )


def write_muscle_analysis(
    result: MuscleAnalysis, out_dir: str | Path, name: str, extra=None
) -> list[Path]:
    """Write ``<name>_Length.sto`` and ``<name>_MomentArm_<coord>.sto`` (one per
    coordinate) in ``out_dir``; ``extra`` maps a suffix to a ``(T, M)`` array written as
    ``<name>_<suffix>.sto``. Returns the paths written."""
    from diffbio.io._storage import Storage, write_storage

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = {"Length": result.lengths.detach().cpu().numpy()}
    for j, c in enumerate(result.coordinates):
        tables[f"MomentArm_{c}"] = result.moment_arms[..., j].detach().cpu().numpy()
    for k, v in (extra or {}).items():
        tables[k] = np.asarray(v)
    written = []
    for suffix, data in tables.items():
        st = Storage.from_arrays(
            result.time, list(result.muscles), data, in_degrees=False, name=f"{name}_{suffix}"
        )
        written.append(write_storage(out / f"{name}_{suffix}.sto", st))
    return written
