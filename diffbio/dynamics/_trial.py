"""A gait trial prepared as OpenSim's InverseDynamicsTool / AnalyzeTool prepare it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from diffbio._errors import DiffbioError
from diffbio.model import Model


@dataclass(frozen=True)
class Trial:
    """Kinematics and loads of a trial: ``time (T,) [s]``, ``q, qd, qdd: (T, Q)`` [rad or m
    and time derivatives], ``loads`` (a :class:`diffbio.io.ExternalLoads` or None), and the
    coordinates the motion did not have (kept at their default values)."""

    time: np.ndarray
    q: Tensor
    qd: Tensor
    qdd: Tensor
    loads: object | None
    missing_coordinates: tuple[str, ...]
    limited_to_loads: bool


def load_trial(
    model: Model,
    motion: str | Path,
    loads: str | Path | None = None,
    *,
    time_range: tuple[float, float] | None = None,
    lowpass_hz: float | None = None,
    min_frames: int = 1,
    dtype: torch.dtype = torch.float64,
    device=None,
) -> Trial:
    """Read a motion (and an ExternalLoads ``.xml``) and compute ``q, qd, qdd`` as OpenSim's
    tools do: optional ``lowpass_hz`` filter, GCV quintic spline derivatives, coordinates
    missing from the motion at their defaults, the time range cut to where the loads exist.

    Raises :class:`DiffbioError` (naming the file) for loads on a body the model lacks, a
    time range that overlaps neither the motion nor the loads, a motion sharing no column
    with the model, or fewer than ``min_frames`` frames."""
    from diffbio.io import prepare_coordinates, read_external_loads, read_storage

    storage = read_storage(motion)
    ext = read_external_loads(loads) if loads is not None else None
    if ext is not None:
        for f in ext.forces:
            if f.enabled and f.applied_to_body not in model.body_names:
                raise DiffbioError(
                    f"{loads}: ExternalForce {f.name!r} is applied to body "
                    f"{f.applied_to_body!r}, which model {model.name!r} does not have "
                    f"(bodies: {', '.join(model.body_names)})"
                )
    m0, m1 = float(storage.time[0]), float(storage.time[-1])
    t0, t1 = (m0, m1) if time_range is None else (float(time_range[0]), float(time_range[1]))
    if t0 > t1:
        raise DiffbioError(f"time range {t0:g} {t1:g}: the start is after the end")
    if t1 < m0 or t0 > m1:
        raise DiffbioError(
            f"{motion}: time range {t0:g}-{t1:g} s does not overlap the motion ({m0:g}-{m1:g} s)"
        )
    limited = False
    if ext is not None:
        l0, l1 = float(ext.time[0]), float(ext.time[-1])
        if t1 < l0 or t0 > l1:
            raise DiffbioError(
                f"{loads}: time range {t0:g}-{t1:g} s does not overlap the external loads "
                f"({l0:g}-{l1:g} s)"
            )
        limited = l0 > t0 or l1 < t1
        t0, t1 = max(t0, l0), min(t1, l1)
    t0, t1 = max(t0, m0), min(t1, m1)
    present = [c for c in model.coordinate_names if c in storage.labels]
    if not present:
        raise DiffbioError(f"{motion}: no column matches a coordinate of {model.name!r}")
    rot = {c for c, r in zip(model.coordinate_names, model.rotational_mask) if r and c in present}
    t, qp, qdp, qddp = prepare_coordinates(
        storage, present, lowpass_hz=lowpass_hz, time_range=(t0, t1), rotational=rot
    )
    if len(t) < min_frames:
        raise DiffbioError(f"{motion}: fewer than {min_frames} frames in {t0:g}-{t1:g} s")
    Q = model.num_coordinates
    q = np.tile(model.default_q().numpy(), (len(t), 1))
    qd, qdd = np.zeros((len(t), Q)), np.zeros((len(t), Q))
    idx = [model.coordinate_index(c) for c in present]
    q[:, idx], qd[:, idx], qdd[:, idx] = qp, qdp, qddp
    kw = {"dtype": dtype, "device": device}
    return Trial(
        time=t,
        q=torch.tensor(q, **kw),
        qd=torch.tensor(qd, **kw),
        qdd=torch.tensor(qdd, **kw),
        loads=ext,
        missing_coordinates=tuple(c for c in model.coordinate_names if c not in present),
        limited_to_loads=limited,
    )
