"""Hill-type muscle forces: rigid-tendon force and compliant-tendon equilibrium.

Pennation follows OpenSim's constant-thickness model: the fiber width
``h = l_opt sin(alpha_opt)`` is constant, so ``sin(alpha) = h / l_fiber`` and the fiber length
along the tendon is ``sqrt(l_fiber^2 - h^2)``. Shapes: per-sample arguments are ``(..., M)``
(any leading dimensions); :class:`~diffbio.muscles.MuscleParameters` tensors ``(M,)``
broadcast against them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from diffbio._errors import ShapeError
from diffbio.muscles._bezier import bezier_curve_value, bezier_curve_values
from diffbio.muscles._curves import (
    degroote_active_force_length,
    degroote_force_velocity,
    degroote_passive_force_length,
    degroote_tendon_force_length,
    thelen_active_force_length,
    thelen_force_velocity,
    thelen_passive_force_length,
    thelen_tendon_force_length,
)
from diffbio.muscles._params import MuscleCurves, MuscleParameters


@dataclass(frozen=True)
class MuscleForce:
    """Rigid-tendon muscle force, every field (..., M).

    Attributes:
        tendon_force: total force along the tendon [N],
            ``activation * F_active_per_a + F_passive``.
        F_active_per_a: active force along the tendon per unit activation [N],
            ``F0 f_l f_v cos(alpha)``.
        F_passive: passive force along the tendon [N], ``F0 (f_p + damping v_norm) cos(alpha)``.
        fiber_length: [m]; pennation_angle: [rad]; normalized_fiber_length: [-];
        normalized_fiber_velocity: fiber velocity over ``v_max l_opt`` [-] (negative when
            shortening).
    """

    tendon_force: Tensor
    F_active_per_a: Tensor
    F_passive: Tensor
    fiber_length: Tensor
    pennation_angle: Tensor
    normalized_fiber_length: Tensor
    normalized_fiber_velocity: Tensor


@dataclass(frozen=True)
class MuscleEquilibrium:
    """Compliant-tendon equilibrium, every field (..., M).

    Attributes:
        fiber_length: [m]; fiber_length_along_tendon: [m]; pennation_angle: [rad];
        tendon_length: [m]; tendon_force: [N] (equal to the fiber force along the tendon);
        normalized_fiber_length: [-];
        converged: bool, whether the residual met the tolerance.
    """

    fiber_length: Tensor
    fiber_length_along_tendon: Tensor
    pennation_angle: Tensor
    tendon_length: Tensor
    tendon_force: Tensor
    normalized_fiber_length: Tensor
    converged: Tensor


def _check(params: MuscleParameters, **tensors: Tensor) -> None:
    m = params.num_muscles
    for name, t in tensors.items():
        if t.dim() == 0 or t.shape[-1] not in (1, m):
            raise ShapeError(f"{name}: expected shape (..., M) with M={m}, got {tuple(t.shape)}")


def _as(t, like: Tensor) -> Tensor:
    return torch.as_tensor(t, dtype=like.dtype, device=like.device)


def _multipliers(params: MuscleParameters, l_norm: Tensor, v_norm: Tensor, fv_activation):
    """Active force-length, force-velocity and passive multipliers, each (..., M)."""
    cp = params.curve_parameters
    if params.curves is MuscleCurves.DEGROOTE_FREGLY_2016:
        fl = degroote_active_force_length(l_norm, _as(cp.active_force_width_scale, l_norm))
        fv = degroote_force_velocity(v_norm)
        fp = degroote_passive_force_length(
            l_norm, _as(cp.passive_fiber_strain_at_one_norm_force, l_norm)
        )
    elif params.curves is MuscleCurves.THELEN_2003:
        fl = thelen_active_force_length(l_norm, _as(cp.KshapeActive, l_norm))
        fv = thelen_force_velocity(
            v_norm,
            fv_activation,
            _as(cp.Af, l_norm),
            _as(cp.Flen, l_norm),
            _as(cp.fv_linear_extrap_threshold, l_norm),
        )
        fp = thelen_passive_force_length(
            l_norm, _as(cp.FmaxMuscleStrain, l_norm), _as(cp.KshapePassive, l_norm)
        )
    else:
        fl, fv, fp = bezier_curve_values(
            [cp.active_force_length, cp.force_velocity, cp.fiber_force_length],
            [l_norm, v_norm, l_norm],
        )
    return fl, fv, fp


def tendon_force_multiplier(params: MuscleParameters, lt_norm: Tensor) -> Tensor:
    """Normalized tendon force of the muscles' curve family.

    Args:
        params: the M muscles.
        lt_norm: (..., M) tendon length over tendon slack length [-].

    Returns:
        (..., M) tendon force over max isometric force [-].
    """
    cp = params.curve_parameters
    if params.curves is MuscleCurves.DEGROOTE_FREGLY_2016:
        return degroote_tendon_force_length(
            lt_norm, _as(cp.tendon_strain_at_one_norm_force, lt_norm)
        )
    if params.curves is MuscleCurves.THELEN_2003:
        return thelen_tendon_force_length(lt_norm, _as(cp.FmaxTendonStrain, lt_norm))
    return bezier_curve_value(cp.tendon_force_length, lt_norm)


def _min_length_along_tendon(params: MuscleParameters, like: Tensor) -> Tensor:
    """(M,) [m] the shortest fiber length along the tendon (at least ``1e-3 l_opt``)."""
    lmin = _as(params.min_fiber_length, like)
    h = _as(params.fiber_width, like)
    floor = 1e-3 * _as(params.optimal_fiber_length, like)
    return torch.maximum(torch.sqrt(torch.clamp_min(lmin**2 - h**2, 0.0)), floor)


def _fiber_force_along_tendon(params, activation, x, v_fiber, fv_activation, passive=True):
    """Fiber geometry and force along the tendon for fiber length along tendon x (..., M)."""
    lopt = _as(params.optimal_fiber_length, x)
    h = _as(params.fiber_width, x)
    lf = torch.sqrt(x**2 + h**2)
    cos = x / lf
    l_norm = lf / lopt
    v_norm = v_fiber / (_as(params.max_contraction_velocity, x) * lopt)
    fl, fv, fp = _multipliers(
        params, l_norm, v_norm, activation if fv_activation is None else fv_activation
    )
    f0 = _as(params.max_isometric_force, x)
    f_act = f0 * fl * fv * cos
    damping = _as(params.fiber_damping, x) * v_norm
    f_pas = f0 * (fp + damping) * cos if passive else torch.zeros_like(f_act)
    return f_act, f_pas, lf, cos, l_norm, v_norm


def rigid_tendon_force(
    activation: Tensor,
    mtu_length: Tensor,
    mtu_velocity: Tensor,
    params: MuscleParameters,
    *,
    passive: bool = True,
    fv_activation: Tensor | float | None = None,
) -> MuscleForce:
    """Hill-type muscle force with a rigid (inextensible) tendon.

    ``F = a F0 f_l f_v cos(alpha) + F0 (f_p + damping v_norm) cos(alpha)``, with the tendon at
    its slack length, the fiber length along the tendon ``l_mtu - l_slack`` (clamped, as in
    OpenSim, at :attr:`MuscleParameters.min_fiber_length`, and at least ``1e-3 l_opt``) and
    the fiber velocity ``cos(alpha) v_mtu``.

    Args:
        activation: (..., M) [-].
        mtu_length: (..., M) musculotendon length [m].
        mtu_velocity: (..., M) musculotendon lengthening velocity [m/s].
        params: M muscles.
        passive: include the passive (elastic and damping) force.
        fv_activation: Thelen2003 only, whose force-velocity curve depends on activation:
            the activation used inside it. None uses ``activation`` (OpenSim's model; then F
            is affine in activation only at zero velocity); a constant such as 1.0 makes F
            affine in activation, as static optimization needs. DeGrooteFregly2016 and
            Millard2012 force are always affine in activation.

    Returns:
        :class:`MuscleForce`, fields (..., M).
    """
    _check(params, activation=activation, mtu_length=mtu_length, mtu_velocity=mtu_velocity)
    a = activation
    lmt = mtu_length.to(a.dtype) if mtu_length.dtype != a.dtype else mtu_length
    x = torch.maximum(
        lmt - _as(params.tendon_slack_length, lmt), _min_length_along_tendon(params, lmt)
    )
    h = _as(params.fiber_width, x)
    cos = x / torch.sqrt(x**2 + h**2)
    f_act, f_pas, lf, cos, l_norm, v_norm = _fiber_force_along_tendon(
        params, a, x, cos * mtu_velocity, fv_activation, passive
    )
    return MuscleForce(
        tendon_force=a * f_act + f_pas,
        F_active_per_a=f_act,
        F_passive=f_pas,
        fiber_length=lf,
        pennation_angle=torch.atan2(h.expand_as(x), x),
        normalized_fiber_length=l_norm,
        normalized_fiber_velocity=v_norm,
    )


def equilibrium_fiber_length(
    activation: Tensor,
    mtu_length: Tensor,
    params: MuscleParameters,
    mtu_velocity: Tensor | float = 0.0,
    *,
    max_iter: int = 100,
    tol: float | None = None,
) -> MuscleEquilibrium:
    """Compliant-tendon equilibrium: the fiber length where tendon and fiber forces balance.

    Solves ``F0 (a f_l f_v + f_p + damping v_norm) cos(alpha) = F0 f_t(l_t / l_slack)`` with
    ``l_t = l_mtu - l_fiber cos(alpha)`` for the fiber length along the tendon, by Newton's
    method safeguarded by bisection inside ``[x_min, l_mtu - l_slack]``, batched over
    every element, where ``x_min`` is :attr:`MuscleParameters.min_fiber_length` along the
    tendon (at least ``1e-3 l_opt``). A slack muscle, whose fiber force is not below the
    tendon force even at ``x_min``, stays at ``x_min`` as OpenSim clamps it. The fiber velocity is taken as ``cos(alpha) v_mtu`` (tendon length rate
    neglected; 0 at the default ``mtu_velocity=0``, the static equilibrium OpenSim's
    ``equilibrateMuscles`` computes). Gradients flow to activation, lengths and parameters
    by the implicit function theorem (one Newton step on the converged root).

    Args:
        activation: (..., M) [-].
        mtu_length: (..., M) musculotendon length [m].
        params: M muscles.
        mtu_velocity: (..., M) musculotendon lengthening velocity [m/s] or a float.
        max_iter: Newton iterations at most.
        tol: residual tolerance [N]; default ``1e-9 F0`` in float64 and ``1e-4 F0`` in float32.

    Returns:
        :class:`MuscleEquilibrium`, fields (..., M); ``converged`` is False where the
        iteration limit was reached.
    """
    a = activation
    lmt = _as(mtu_length, a)
    vmt = _as(mtu_velocity, a)
    _check(params, activation=a, mtu_length=lmt)
    a, lmt, vmt = torch.broadcast_tensors(a, lmt, vmt)
    lts = _as(params.tendon_slack_length, a)
    f0 = _as(params.max_isometric_force, a)
    h = _as(params.fiber_width, a)
    rel = 1e-9 if a.dtype == torch.float64 else 1e-4
    tol_n = f0 * rel if tol is None else torch.full_like(f0, tol)

    def residual(x, a_, lmt_, vmt_):
        cos = x / torch.sqrt(x**2 + h**2)
        f_act, f_pas, *_ = _fiber_force_along_tendon(params, a_, x, cos * vmt_, None)
        ft = f0 * tendon_force_multiplier(params, (lmt_ - x) / lts)
        return a_ * f_act + f_pas - ft

    def value_and_slope(x):
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            r = residual(xg, a.detach(), lmt.detach(), vmt.detach())
            (dr,) = torch.autograd.grad(r.sum(), xg)
        return r.detach(), dr

    lo_bound = _min_length_along_tendon(params, a) + torch.zeros_like(a)
    with torch.no_grad():
        lo = lo_bound.clone()
        hi = torch.maximum(lmt.detach() - lts, lo * 2)
        # A slack muscle (fiber force >= tendon force even at the shortest fiber) sits at
        # its lower bound, as OpenSim clamps it.
        at_bound = value_and_slope(lo)[0] >= -tol_n
        x = torch.clamp(lmt.detach() - 1.01 * lts, lo, hi)
        x = torch.where(x <= lo, 0.5 * (lo + hi), x)
        x = torch.where(at_bound, lo, x)
        converged = at_bound.clone()
        for _ in range(max_iter):
            r, dr = value_and_slope(x)
            converged = at_bound | (r.abs() <= tol_n)
            if bool(converged.all()):
                break
            lo = torch.where(r < 0, x, lo)
            hi = torch.where(r > 0, x, hi)
            step = x - r / torch.where(dr > 0, dr, torch.ones_like(dr))
            ok = (dr > 0) & (step > lo) & (step < hi)
            x = torch.where(converged, x, torch.where(ok, step, 0.5 * (lo + hi)))
    r, dr = value_and_slope(x)
    converged = at_bound | (r.abs() <= tol_n)
    x_star = x.detach()
    # Implicit function theorem: one Newton step with the slope held constant.
    safe = torch.where(dr.abs() > 0, dr, torch.ones_like(dr))
    x = torch.where(at_bound, lo_bound, x_star - residual(x_star, a, lmt, vmt) / safe)
    lf = torch.sqrt(x**2 + h**2)
    lt = lmt - x
    return MuscleEquilibrium(
        fiber_length=lf,
        fiber_length_along_tendon=x,
        pennation_angle=torch.atan2(h.expand_as(x), x),
        tendon_length=lt,
        tendon_force=f0 * tendon_force_multiplier(params, lt / lts),
        normalized_fiber_length=lf / _as(params.optimal_fiber_length, a),
        converged=converged,
    )
