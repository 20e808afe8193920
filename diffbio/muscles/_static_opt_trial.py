"""Static optimization of a gait trial: from a model, a motion and external loads to the
per-frame QP inputs (:class:`StaticOptimizationFrames`), then to activations.

Reproduces OpenSim 4.6's AnalyzeTool + StaticOptimization set-up: coordinates low-pass
filtered and splined (:func:`diffbio.io.prepare_coordinates`), inverse dynamics with gravity
and the external loads, muscles as rigid-tendon force-length-velocity actuators
(``use_muscle_physiology``; Thelen2003's force-velocity curve at activation 1, as OpenSim's
``calcInextensibleTendonActiveFiberForce(s, 1.0)``), passive muscle force left out unless
asked for, and the model's and the given actuators as extra unknowns.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from diffbio._errors import DiffbioError
from diffbio.kinematics import BodyPoses
from diffbio.kinematics._fk import _forward
from diffbio.model import Model
from diffbio.muscles._actuators import (
    Actuator,
    _actuator_generalized_forces,
    muscle_control_bounds,
    read_actuators,
)
from diffbio.muscles._hill import rigid_tendon_force
from diffbio.muscles._params import MuscleCurves, MuscleParameters, muscle_parameters_from_osim
from diffbio.muscles._path import muscle_paths
from diffbio.muscles._path_length import _muscle_geometry, muscle_names
from diffbio.muscles._static_opt import StaticOptimizationResult, static_optimization
from diffbio.solvers import QPOptions


@dataclass(frozen=True)
class StaticOptimizationFrames:
    """Inputs of static optimization at T frames.

    Attributes:
        time: (T,) [s].
        tau: (T, Q) [N m or N] inverse-dynamics generalized forces.
        moment_arms: (T, M, Q) [m or -].
        F_active_per_a: (T, M) [N] rigid-tendon active force per unit activation.
        F_passive: (T, M) [N] rigid-tendon passive force.
        actuator_moments: (T, Q, NA) generalized forces per unit control.
        keep: (Q,) bool, the coordinates whose equation is enforced.
        a_min, a_max: (M,) activation bounds (the muscles' min/max control).
        muscles: M names; actuators: NA :class:`Actuator`; coordinates: Q names.
    """

    time: np.ndarray
    tau: Tensor
    moment_arms: Tensor
    F_active_per_a: Tensor
    F_passive: Tensor
    actuator_moments: Tensor
    keep: Tensor
    a_min: Tensor
    a_max: Tensor
    muscles: tuple[str, ...]
    actuators: tuple[Actuator, ...]
    coordinates: tuple[str, ...]

    def to(self, dtype=None, device=None) -> StaticOptimizationFrames:
        """Copy with the float tensors moved to ``dtype`` / ``device``."""
        kw = {}
        for k in ("tau", "moment_arms", "F_active_per_a", "F_passive", "actuator_moments"):
            kw[k] = getattr(self, k).to(dtype=dtype, device=device)
        for k in ("a_min", "a_max"):
            kw[k] = getattr(self, k).to(dtype=dtype, device=device)
        kw["keep"] = self.keep.to(device=device)
        return replace(self, **kw)

    def slice(self, i0: int, i1: int) -> StaticOptimizationFrames:
        """Frames ``i0:i1``."""
        kw = {
            k: getattr(self, k)[i0:i1]
            for k in ("tau", "moment_arms", "F_active_per_a", "F_passive", "actuator_moments")
        }
        return replace(self, time=self.time[i0:i1], **kw)


def muscle_states(
    model: Model,
    params: MuscleParameters,
    q: Tensor,
    qd: Tensor,
    *,
    chunk: int = 32,
    progress=False,
):
    """Moment arms ``(..., M, Q)``, active force per activation ``(..., M)`` and passive
    force ``(..., M)`` of the rigid-tendon muscles at ``q, qd (..., T, Q)``, in chunks of
    frames along the last leading axis (memory: ``chunk`` frames where muscles wrap, whose
    moment arms take one forward-mode pass per coordinate; at least 256 otherwise)."""
    return _muscle_states(model, params, q, qd, chunk=chunk, progress=progress)


def _muscle_states(model, params, q, qd, *, chunk=32, progress=False, fk=None):
    """:func:`muscle_states`; ``fk``: ``_forward(model, q, None, with_axes=True)`` where
    the caller already has it (sliced into the same chunks)."""
    T = q.shape[-2]
    if not muscle_paths(model, q.dtype, q.device).has_wrapping:
        chunk = max(chunk, 256)
    R, Fa, Fp = [], [], []
    fva = 1.0 if params.curves is MuscleCurves.THELEN_2003 else None
    it = range(0, T, chunk)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="muscle geometry", unit="chunk", leave=False)
    for s in it:
        qc, qdc = q[..., s : s + chunk, :], qd[..., s : s + chunk, :]
        fkc = None if fk is None else _chunk_kinematics(fk, s, min(chunk, T - s))
        lmt, vmt, r = _muscle_geometry(model, qc, qdc, None, fkc)
        f = rigid_tendon_force(torch.ones_like(lmt), lmt, vmt, params, fv_activation=fva)
        R.append(r)
        Fa.append(f.F_active_per_a)
        Fp.append(f.F_passive)
    return torch.cat(R, -3), torch.cat(Fa, -2), torch.cat(Fp, -2)


def _chunk_kinematics(fk, s: int, n: int):
    """Frames ``s : s + n`` of ``_forward(..., with_axes=True)``: poses and axes whose frame
    axis precedes ``(NB, 3, 3)``, ``(NB, 3)``, ``(J, 3)`` and ``(J, 6, 3)``."""
    poses, axes = fk

    def cut(x: Tensor, core: int) -> Tensor:
        return x.narrow(x.dim() - core - 1, s, n)

    rot, trans, centres = poses.rotation, poses.translation, poses.joint_centers
    return BodyPoses(cut(rot, 3), cut(trans, 2), cut(centres, 2)), cut(axes, 3)


def structural_zeros(moment_arms: Tensor, tol: float | None = None) -> Tensor:
    """``moment_arms (..., M, Q)`` with the structurally zero ones set to exactly 0.

    A muscle that does not cross a coordinate's joint has a moment arm of 0 about it, but
    ``-dl/dq`` evaluates to rounding noise (about 1e-16 m in float64: the path moves
    rigidly, and the difference of its points' velocities is not exactly 0). A moment arm
    whose magnitude is at most ``tol`` at every frame (default ``1024 eps`` [m or -], 2e-13
    in float64) is such a zero: setting it to 0 changes the generalized forces by less than
    ``tol`` times the muscle force, and its derivative (0 up to rounding) to exactly 0.
    Static optimization then sees the block structure of the problem
    (:func:`~diffbio.muscles.static_optimization`, ``decompose``).
    """
    if tol is None:
        tol = 1024.0 * torch.finfo(moment_arms.dtype).eps
    if moment_arms.dim() < 3:
        zero = moment_arms.detach().abs() <= tol
    else:
        zero = (moment_arms.detach().abs() <= tol).flatten(0, -3).all(0)
    return moment_arms.masked_fill(zero, 0.0)


def static_optimization_frames(
    model: Model,
    params: MuscleParameters,
    time: np.ndarray,
    q: Tensor,
    qd: Tensor,
    qdd: Tensor,
    loads=None,
    actuators: tuple[Actuator, ...] | list[Actuator] = (),
    *,
    a_min: Tensor | None = None,
    a_max: Tensor | None = None,
    chunk: int = 32,
    progress: bool = False,
) -> StaticOptimizationFrames:
    """QP inputs of static optimization at frames ``q, qd, qdd (T, Q)``.

    Args:
        model: the model; params: its M muscles (:func:`muscle_parameters_from_osim`), in
            :func:`muscle_names` order.
        time: (T,) [s]; q, qd, qdd: (T, Q) coordinates and derivatives.
        loads: a :class:`diffbio.io.ExternalLoads` or None.
        actuators: reserve/residual :class:`Actuator` items.
        a_min, a_max: (M,) activation bounds (default 0 and 1).

    Moment arms that are rounding noise at every frame are set to exactly 0
    (:func:`structural_zeros`).
    """
    from diffbio.dynamics import wrenches_from_external_loads
    from diffbio.dynamics._rnea import _newton_euler, _screws

    names = muscle_names(model)
    if tuple(params.names) and tuple(params.names) != tuple(names):
        raise DiffbioError("muscle parameters are not in the model's muscle order")
    params = params.to(dtype=q.dtype, device=q.device)
    # One kinematics pass shared by the loads, inverse dynamics, the muscle paths and the
    # actuators (each would otherwise run its own).
    fk = _forward(model, q, None, with_axes=True)
    js = _screws(model, q, None, fk)
    w = None
    if loads is not None:
        w = wrenches_from_external_loads(model, loads, q, time, poses=fk[0])
    tau = _newton_euler(model, q, qd, qdd, w, None, None, True, js)[0]
    R, Fa, Fp = _muscle_states(model, params, q, qd, chunk=chunk, progress=progress, fk=fk)
    R = structural_zeros(R)
    S = _actuator_generalized_forces(model, tuple(actuators), q, js)
    keep = (R != 0).flatten(0, -3).any(0).any(0) | (S != 0).any(-1).flatten(0, -2).any(0)
    for i, c in enumerate(model.coordinates):
        if c.locked:
            keep[i] = False
    M = len(names)
    kw = {"dtype": q.dtype, "device": q.device}
    lo = torch.zeros(M, **kw) if a_min is None else a_min.to(**kw)
    hi = torch.ones(M, **kw) if a_max is None else a_max.to(**kw)
    return StaticOptimizationFrames(
        time=np.asarray(time, dtype=float),
        tau=tau,
        moment_arms=R,
        F_active_per_a=Fa,
        F_passive=Fp,
        actuator_moments=S,
        keep=keep,
        a_min=lo,
        a_max=hi,
        muscles=tuple(names),
        actuators=tuple(actuators),
        coordinates=tuple(model.coordinate_names),
    )


def solve_static_optimization(
    frames: StaticOptimizationFrames,
    *,
    passive: bool = False,
    weights: Tensor | float = 1.0,
    actuator_weights: Tensor | float = 1.0,
    exponent: float = 2.0,
    options: QPOptions | None = None,
    chunk: int | None = None,
    decompose: bool = True,
) -> StaticOptimizationResult:
    """Static optimization of every frame of ``frames`` as one batch (differentiable w.r.t.
    the frames' tensors and the weights); ``passive`` includes the muscles' passive force;
    ``exponent`` is OpenSim's ``activation_exponent``; ``decompose`` solves the
    constraints' connected components separately (see :func:`static_optimization`)."""
    acts = frames.actuators
    dt = frames.tau.dtype
    dev = frames.tau.device

    def t(vals):
        return torch.tensor(vals, dtype=dt, device=dev)

    opts = options or QPOptions(chunk_size=chunk)
    return static_optimization(
        frames.tau,
        frames.moment_arms,
        frames.F_active_per_a,
        frames.F_passive if passive else None,
        frames.actuator_moments,
        weights=weights,
        actuator_weights=actuator_weights,
        a_min=frames.a_min,
        a_max=frames.a_max,
        control_min=t([a.min_control for a in acts]),
        control_max=t([a.max_control for a in acts]),
        actuator_optimal_force=t([a.optimal_force for a in acts]),
        keep=frames.keep,
        exponent=exponent,
        options=opts,
        decompose=decompose,
    )


_MODEL_CACHE: OrderedDict = OrderedDict()
_MODEL_CACHE_SIZE = 4


def _model_inputs(path: Path):
    """The model, its muscle parameters, activation bounds and own actuators read from an
    ``.osim`` (parsed once per file version: cached on its resolved path, size and
    modification time; every item is immutable)."""
    from diffbio.model import load_osim

    try:
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    except OSError:
        key = None
    hit = _MODEL_CACHE.get(key) if key is not None else None
    if hit is not None:
        _MODEL_CACHE.move_to_end(key)
        return hit
    model = load_osim(path)
    params = muscle_parameters_from_osim(path, muscle_names(model))
    lo, hi = muscle_control_bounds(path, params.names)
    out = (model, params, lo, hi, tuple(read_actuators(path)))
    if key is not None:
        _MODEL_CACHE[key] = out
        while len(_MODEL_CACHE) > _MODEL_CACHE_SIZE:
            _MODEL_CACHE.popitem(last=False)
    return out


def load_static_optimization_trial(
    model_path: str | Path,
    motion_path: str | Path,
    loads_path: str | Path | None = None,
    actuators: tuple[Actuator, ...] | list[Actuator] | str | Path | None = None,
    *,
    time_range: tuple[float, float] | None = None,
    lowpass_hz: float | None = 6.0,
    dtype: torch.dtype = torch.float64,
    device=None,
    chunk: int = 32,
    progress: bool = False,
) -> tuple[Model, StaticOptimizationFrames]:
    """Read a model, a motion and external loads and build :class:`StaticOptimizationFrames`
    as OpenSim's AnalyzeTool would (``lowpass_hz`` on the coordinates, GCV quintic splines,
    coordinates missing from the motion at their defaults, time range within the loads).

    ``actuators``: a path to an actuator ``.xml`` or :class:`Actuator` items; the model's own
    Coordinate/Point/Torque actuators are always included first, as OpenSim includes them.
    """
    from diffbio.dynamics import load_trial

    model, params, lo, hi, model_acts = _model_inputs(Path(model_path))
    lo, hi = lo.clone(), hi.clone()
    trial = load_trial(
        model, motion_path, loads_path, time_range=time_range, lowpass_hz=lowpass_hz,
        dtype=dtype, device=device,
    )  # fmt: skip
    t, loads, qt, qdt, qddt = trial.time, trial.loads, trial.q, trial.qd, trial.qdd
    acts = list(model_acts)
    if isinstance(actuators, (str, Path)):
        acts += list(read_actuators(actuators))
    elif actuators is not None:
        acts += list(actuators)
    frames = static_optimization_frames(
        model,
        params,
        t,
        qt,
        qdt,
        qddt,
        loads,
        acts,
        a_min=lo,
        a_max=hi,
        chunk=chunk,
        progress=progress,
    )
    return model, frames
