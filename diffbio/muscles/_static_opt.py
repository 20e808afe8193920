"""Static optimization: muscle activations and actuator controls that produce the inverse-
dynamics generalized forces, frame by frame, as one batch of QPs.

Per frame (OpenSim's StaticOptimization with ``activation_exponent = 2``)::

    min  sum_i w_i a_i^2 + sum_k v_k c_k^2
    s.t. sum_i r_ij (a_i F_i^act + F_i^pas) + sum_k S_jk c_k = tau_j   (kept coordinates j)
         a_min <= a <= a_max,  c_min <= c <= c_max

``F^act`` is the rigid-tendon active force per unit activation at the frame's fiber length
and velocity (force-length-velocity, pennation), ``F^pas`` the passive force (OpenSim's SO
leaves it out: ``passive=False``), ``r`` the moment arms and ``S`` the actuators' generalized
forces per unit control. Solved with :func:`diffbio.solvers.solve_qp`, so activations are
differentiable w.r.t. every input (tau, moment arms, forces, weights, bounds).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from diffbio._errors import DiffbioError, ShapeError
from diffbio.solvers import QPOptions, solve_qp


@dataclass(frozen=True)
class StaticOptimizationResult:
    """Static-optimization solution; ``...`` are the frames' leading dimensions.

    Attributes:
        activations: (..., M) [-].
        controls: (..., NA) [-] actuator controls (force = control * optimal_force).
        muscle_forces: (..., M) [N] tendon forces ``a F^act (+ F^pas)``.
        actuator_forces: (..., NA) [N or N m] ``control * optimal_force``.
        moment_residual: (..., Q) [N m or N] ``tau`` minus the muscles' and actuators'
            generalized forces (about 0 on kept coordinates; the unmatched ``tau`` on
            dropped ones).
        status: (...) int64 :class:`~diffbio.solvers.QPStatus` codes.
    """

    activations: Tensor
    controls: Tensor
    muscle_forces: Tensor
    actuator_forces: Tensor
    moment_residual: Tensor
    status: Tensor


def _as(x, like: Tensor, shape) -> Tensor:
    t = torch.as_tensor(x, dtype=like.dtype, device=like.device)
    return t.expand(shape) if t.dim() == 0 else t


def kept_coordinates(moment_arms: Tensor, actuator_moments: Tensor | None = None) -> Tensor:
    """(Q,) bool: coordinates some muscle or actuator acts on at some frame (the rows of
    the equality constraint that static optimization keeps)."""
    act = (moment_arms.detach() != 0).flatten(0, -2).any(0) if moment_arms.dim() > 1 else None
    keep = act if act is not None else torch.zeros(moment_arms.shape[-1], dtype=torch.bool)
    if actuator_moments is not None and actuator_moments.shape[-1] > 0:
        s = (actuator_moments.detach() != 0).any(-1)
        keep = keep | s.reshape(-1, s.shape[-1]).any(0)
    return keep


def static_optimization(
    tau: Tensor,
    moment_arms: Tensor,
    F_active_per_a: Tensor,
    F_passive: Tensor | None = None,
    actuator_moments: Tensor | None = None,
    *,
    weights: Tensor | float = 1.0,
    actuator_weights: Tensor | float = 1.0,
    a_min: Tensor | float = 0.0,
    a_max: Tensor | float = 1.0,
    control_min: Tensor | float = -torch.inf,
    control_max: Tensor | float = torch.inf,
    actuator_optimal_force: Tensor | float = 1.0,
    keep: Tensor | None = None,
    exponent: float = 2.0,
    options: QPOptions | None = None,
) -> StaticOptimizationResult:
    """Solve static optimization for a batch of frames (one QP per frame).

    Args:
        tau: (..., Q) [N m or N] generalized forces to produce (inverse dynamics).
        moment_arms: (..., M, Q) [m or -] ``r = -dl/dq``.
        F_active_per_a: (..., M) [N] active tendon force per unit activation.
        F_passive: (..., M) [N] passive tendon force, or None (left out, as OpenSim).
        actuator_moments: (..., Q, NA) generalized forces per unit control (see
            :func:`~diffbio.muscles.actuator_generalized_forces`), or None.
        weights: (M,) or scalar cost weights of the activations.
        actuator_weights: (NA,) or scalar cost weights of the controls.
        a_min, a_max: (M,) or scalar activation bounds.
        control_min, control_max: (NA,) or scalar control bounds (may be infinite).
        actuator_optimal_force: (NA,) or scalar [N or N m], for ``actuator_forces`` only
            (``actuator_moments`` already include it).
        keep: (Q,) bool, the coordinates whose equation is enforced; default
            :func:`kept_coordinates` (those some muscle or actuator acts on). Locked or
            coupled coordinates should be dropped by the caller, as OpenSim drops them.
        exponent: only 2 (the QP) is supported.
        options: :class:`~diffbio.solvers.QPOptions`.

    Returns:
        :class:`StaticOptimizationResult`; frames whose QP is not solved hold NaN.

    Dtype and device follow ``tau``.
    """
    if exponent != 2.0:
        raise DiffbioError(
            f"static optimization: activation exponent {exponent:g} unsupported (only 2)"
        )
    Q = tau.shape[-1]
    if moment_arms.shape[-1] != Q or moment_arms.dim() < 2:
        raise ShapeError(f"moment_arms must be (..., M, {Q}); got {tuple(moment_arms.shape)}")
    M = moment_arms.shape[-2]
    if F_active_per_a.shape[-1] != M:
        raise ShapeError(f"F_active_per_a must be (..., {M}); got {tuple(F_active_per_a.shape)}")
    dt, dev = tau.dtype, tau.device
    if actuator_moments is None:
        actuator_moments = torch.zeros(Q, 0, dtype=dt, device=dev)
    if actuator_moments.shape[-2] != Q:
        raise ShapeError(
            f"actuator_moments must be (..., {Q}, NA); got {tuple(actuator_moments.shape)}"
        )
    NA = actuator_moments.shape[-1]
    if keep is None:
        keep = kept_coordinates(moment_arms, actuator_moments)
    idx = torch.nonzero(keep.to(dev)).flatten()
    Rt = moment_arms.to(dt).transpose(-1, -2)  # (..., Q, M)
    A_mus = Rt * F_active_per_a.to(dt).unsqueeze(-2)
    b = tau
    if F_passive is not None:
        b = b - (Rt @ F_passive.to(dt).unsqueeze(-1)).squeeze(-1)
    S = actuator_moments.to(dt)
    lead = torch.broadcast_shapes(A_mus.shape[:-2], S.shape[:-2], b.shape[:-1])
    A = torch.cat([A_mus.expand(*lead, Q, M), S.expand(*lead, Q, NA)], -1)
    A_k, b_k = A[..., idx, :], b.expand(*lead, Q)[..., idx]
    w = _as(weights, tau, (M,))
    v = _as(actuator_weights, tau, (NA,))
    P = 2.0 * torch.cat([w.expand(M), v.expand(NA)])
    lo = torch.cat([_as(a_min, tau, (M,)).expand(M), _as(control_min, tau, (NA,)).expand(NA)])
    hi = torch.cat([_as(a_max, tau, (M,)).expand(M), _as(control_max, tau, (NA,)).expand(NA)])
    q0 = torch.zeros(*lead, M + NA, dtype=dt, device=dev)
    sol = solve_qp(P, q0, A_k, b_k, lo, hi, diagonal=True, options=options)
    x = sol.x
    a, c = x[..., :M], x[..., M:]
    Fm = a * F_active_per_a.to(dt)
    if F_passive is not None:
        Fm = Fm + F_passive.to(dt)
    produced = (A @ x.unsqueeze(-1)).squeeze(-1)
    residual = b.expand(*lead, Q) - produced
    return StaticOptimizationResult(
        activations=a,
        controls=c,
        muscle_forces=Fm,
        actuator_forces=c * _as(actuator_optimal_force, tau, (NA,)),
        moment_residual=residual,
        status=sol.status,
    )
