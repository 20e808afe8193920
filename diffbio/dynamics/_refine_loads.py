"""Force-plate loads between :class:`diffbio.io.ExternalLoads` and the tensors of
:func:`refine_ground_reactions` (``(T, P, 3)`` force, point, free torque in ground)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from diffbio._errors import DiffbioError, FileFormatError, ModelError
from diffbio.dynamics._refine import RefinedLoads
from diffbio.model import GROUND, Model


def _plates(loads):
    return [f for f in loads.forces if f.enabled]


def plate_loads(
    model: Model, loads, time: np.ndarray, *, dtype=torch.float64, device=None
) -> tuple[Tensor, Tensor, Tensor]:
    """The enabled forces of ``loads`` at ``time (T,) [s]`` as force-plate tensors.

    Returns ``(force, point, torque)``, each ``(T, P, 3)`` in ground [N, m, N m] (P enabled
    forces in xml order; a missing torque is zero).
    Raises:
        ModelError: a force applied to a body the model does not have.
        DiffbioError: a force without point, or not expressed in ground; ``time`` outside
            the loads; no enabled force.
        FileFormatError: NaN in the data (names the column and time).
    """
    plates = _plates(loads)
    src = loads.xml_path or "external loads"
    if not plates:
        raise DiffbioError(f"{src}: no enabled ExternalForce to refine")
    for f in plates:
        if f.applied_to_body not in model.body_names:
            raise ModelError(
                f"{src}: ExternalForce {f.name!r} is applied to body {f.applied_to_body!r}, "
                f"which model {model.name!r} does not have (bodies: "
                f"{', '.join(model.body_names)})"
            )
        if f.force is None or f.point is None:
            raise DiffbioError(
                f"{src}: ExternalForce {f.name!r} needs force and point columns to be refined"
            )
        for what, frame in (
            ("force", f.force_expressed_in_body),
            ("point", f.point_expressed_in_body),
        ):
            if (frame or GROUND) != GROUND:
                raise DiffbioError(
                    f"{src}: ExternalForce {f.name!r}: {what} expressed in {frame!r}; "
                    "refinement needs force-plate data expressed in ground"
                )
    t = np.asarray(time, dtype=np.float64)
    lt = np.asarray(loads.time)
    if t.size and (t.min() < lt[0] - 1e-6 or t.max() > lt[-1] + 1e-6):
        raise DiffbioError(
            f"{loads.data_path or src}: loads cover {lt[0]:g}..{lt[-1]:g} s but frames run "
            f"{t.min():g}..{t.max():g} s"
        )
    at = {id(f): g for f, g in zip(loads.forces, loads.at(t))}
    out = []
    for what, k0 in (("force", 0), ("point", 3), ("torque", 6)):
        cols = []
        for f in plates:
            a = getattr(at[id(f)], what)
            if a is None:
                a = np.zeros((t.shape[0], 3))
            if np.isnan(a).any():
                r, c = (int(v) for v in np.argwhere(np.isnan(a))[0])
                col = f.columns[k0 + c] if len(f.columns) > k0 + c else what
                raise FileFormatError(
                    loads.data_path, f"NaN in {f.name!r} {what} at time {t[r]:g} s", column=col
                )
            cols.append(a)
        out.append(torch.as_tensor(np.stack(cols, 1), dtype=dtype, device=device))
    return out[0], out[1], out[2]


def refined_external_loads(loads, time: np.ndarray, refined: RefinedLoads):
    """An :class:`~diffbio.io.ExternalLoads` holding ``refined`` (one trial, ``(T, P, 3)``)
    at ``time (T,)`` with the enabled forces' names, bodies and identifiers of ``loads``
    (torque columns are written even where the original had none)."""
    from diffbio.io import ExternalForce, ExternalLoads

    if refined.force.dim() != 3:
        raise DiffbioError("refined_external_loads: expects a single trial (T, P, 3)")
    forces = []
    for k, f in enumerate(_plates(loads)):

        def arr(t: Tensor, k: int = k) -> np.ndarray:
            return t[:, k].detach().cpu().double().numpy().copy()

        forces.append(
            ExternalForce(
                name=f.name,
                applied_to_body=f.applied_to_body,
                force_expressed_in_body=GROUND,
                point_expressed_in_body=GROUND,
                force_identifier=f.force_identifier,
                point_identifier=f.point_identifier,
                torque_identifier=f.torque_identifier or f"{f.name}_torque_",
                force=arr(refined.force),
                point=arr(refined.point),
                torque=arr(refined.torque),
                data_source_name=f.data_source_name,
            )
        )
    return ExternalLoads(np.asarray(time, dtype=np.float64).copy(), tuple(forces), loads.name)
