"""Closed-form Hill-type muscle curves: DeGrooteFregly2016 and Thelen2003.

Every function is a pure, differentiable torch function of a normalized quantity with any
leading shape ``(...)``; curve parameters are floats or tensors that broadcast against it
(typically ``(M,)`` against ``(..., M)``). The formulas and constants are those of OpenSim
4.6 (``DeGrooteFregly2016Muscle`` and ``Thelen2003Muscle``), pinned by live comparisons in
``tests/muscles/test_curves.py``.

Normalized quantities
    fiber length ``l_norm = l_fiber / l_opt`` [-], fiber velocity
    ``v_norm = v_fiber / (v_max l_opt)`` [-] (negative when shortening), tendon length
    ``lt_norm = l_tendon / l_slack`` [-]; forces are multiples of the maximum isometric force.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

# --- DeGrooteFregly2016 constants (OpenSim's DeGrooteFregly2016Muscle.h) ---------------------
# Active force-length: sum of three Gaussian-like terms (b1, b2, b3, b4) each.
_DG_B = (
    (0.8150671134243542, 1.055033428970575, 0.162384573599574, 0.063303448465465),
    (0.433004984392647, 0.716775413397760, -0.029947116970696, 0.200356847296188),
    (0.1, 1.0, 0.353553390593274, 0.0),
)
_DG_KPE = 4.0  # passive exponential shape factor
_DG_MIN_NORM_FIBER_LENGTH = 0.2  # passive curve passes through zero here
_DG_C1, _DG_C2, _DG_C3 = 0.200, 1.0, 0.200  # tendon curve
_DG_D1 = -0.3211346127989808  # force-velocity
_DG_D2 = -8.149
_DG_D3 = -0.374
_DG_D4 = 0.8825327733249912


def degroote_active_force_length(l_norm: Tensor, width_scale: Tensor | float = 1.0) -> Tensor:
    """DeGrooteFregly2016 active force-length multiplier.

    Args:
        l_norm: (...) normalized fiber length [-].
        width_scale: ``active_force_width_scale`` (broadcasts), 1 by default [-].

    Returns:
        (...) multiplier [-], 1 at ``l_norm = 1``.
    """
    x = (l_norm - 1.0) / width_scale + 1.0
    out = torch.zeros_like(x)
    for b1, b2, b3, b4 in _DG_B:
        out = out + b1 * torch.exp(-0.5 * (x - b2) ** 2 / (b3 + b4 * x) ** 2)
    return out


def degroote_force_velocity(v_norm: Tensor) -> Tensor:
    """DeGrooteFregly2016 force-velocity multiplier (0 at ``v_norm=-1``, 1 at 0).

    Args:
        v_norm: (...) normalized fiber velocity [-], negative when shortening.

    Returns:
        (...) multiplier [-].
    """
    t = _DG_D2 * v_norm + _DG_D3
    return _DG_D1 * torch.asinh(t) + _DG_D4


def degroote_force_velocity_inverse(fv: Tensor) -> Tensor:
    """Inverse of :func:`degroote_force_velocity`: (...) multiplier -> (...) ``v_norm`` [-]."""
    return (torch.sinh((fv - _DG_D4) / _DG_D1) - _DG_D3) / _DG_D2


def degroote_passive_force_length(
    l_norm: Tensor, strain_at_one_norm_force: Tensor | float = 0.6
) -> Tensor:
    """DeGrooteFregly2016 passive fiber force-length multiplier.

    Exponential through 0 at ``l_norm = 0.2`` and 1 at ``1 + strain_at_one_norm_force``
    (``passive_fiber_strain_at_one_norm_force``); negative below 0.2, as in OpenSim.

    Args:
        l_norm: (...) normalized fiber length [-].
        strain_at_one_norm_force: fiber strain at one normalized force [-] (broadcasts).

    Returns:
        (...) multiplier [-].
    """
    e0 = torch.as_tensor(strain_at_one_norm_force, dtype=l_norm.dtype, device=l_norm.device)
    offset = torch.exp(_DG_KPE * (_DG_MIN_NORM_FIBER_LENGTH - 1.0) / e0)
    denom = math.exp(_DG_KPE) - offset
    return (torch.exp(_DG_KPE * (l_norm - 1.0) / e0) - offset) / denom


def _degroote_kt(strain: Tensor | float, like: Tensor) -> Tensor:
    e = torch.as_tensor(strain, dtype=like.dtype, device=like.device)
    return math.log((1.0 + _DG_C3) / _DG_C1) / (1.0 + e - _DG_C2)


def degroote_tendon_force_length(
    lt_norm: Tensor, strain_at_one_norm_force: Tensor | float = 0.049
) -> Tensor:
    """DeGrooteFregly2016 tendon force-length multiplier ``c1 exp(kT (lt_norm - c2)) - c3``.

    ``kT`` makes the curve pass through 1 at ``lt_norm = 1 + strain_at_one_norm_force``
    (``tendon_strain_at_one_norm_force``); 0 at slack length, slightly negative below.

    Args:
        lt_norm: (...) normalized tendon length [-].
        strain_at_one_norm_force: tendon strain at one normalized force [-] (broadcasts).

    Returns:
        (...) normalized tendon force [-].
    """
    kt = _degroote_kt(strain_at_one_norm_force, lt_norm)
    return _DG_C1 * torch.exp(kt * (lt_norm - _DG_C2)) - _DG_C3


def degroote_tendon_force_length_inverse(
    ft_norm: Tensor, strain_at_one_norm_force: Tensor | float = 0.049
) -> Tensor:
    """Inverse of :func:`degroote_tendon_force_length`: (...) force -> (...) ``lt_norm``."""
    kt = _degroote_kt(strain_at_one_norm_force, ft_norm)
    return torch.log((ft_norm + _DG_C3) / _DG_C1) / kt + _DG_C2


# --- Thelen2003 (OpenSim's Thelen2003Muscle) ------------------------------------------------


def thelen_active_force_length(l_norm: Tensor, kshape_active: Tensor | float = 0.45) -> Tensor:
    """Thelen2003 active force-length Gaussian ``exp(-(l_norm - 1)^2 / KshapeActive)``.

    Args:
        l_norm: (...) normalized fiber length [-].
        kshape_active: ``KshapeActive`` [-] (broadcasts; OpenSim's default 0.45).

    Returns:
        (...) multiplier [-].
    """
    return torch.exp(-((l_norm - 1.0) ** 2) / kshape_active)


def thelen_passive_force_length(
    l_norm: Tensor,
    fmax_muscle_strain: Tensor | float = 0.6,
    kshape_passive: Tensor | float = 5.0,
) -> Tensor:
    """Thelen2003 passive force-length: ``(exp(kPE (l_norm-1)/e0) - 1)/(exp(kPE) - 1)``, 0 below 1.

    Args:
        l_norm: (...) normalized fiber length [-].
        fmax_muscle_strain: ``FmaxMuscleStrain`` e0 [-] (broadcasts).
        kshape_passive: ``KshapePassive`` kPE [-] (broadcasts).

    Returns:
        (...) multiplier [-].
    """
    kpe = torch.as_tensor(kshape_passive, dtype=l_norm.dtype, device=l_norm.device)
    stretch = torch.clamp_min(l_norm - 1.0, 0.0)
    return torch.expm1(kpe * stretch / fmax_muscle_strain) / torch.expm1(kpe)


def _thelen_tendon_constants(fmax_tendon_strain: Tensor | float, like: Tensor):
    e0 = torch.as_tensor(fmax_tendon_strain, dtype=like.dtype, device=like.device)
    e3 = math.exp(3.0)
    e_toe = 99.0 * e0 * e3 / (166.0 * e3 - 67.0)
    k_lin = 0.67 / (e0 - e_toe)
    return e_toe, k_lin


def thelen_tendon_force_length(
    lt_norm: Tensor, fmax_tendon_strain: Tensor | float = 0.033
) -> Tensor:
    """Thelen2003 tendon force-length: exponential toe up to 0.33, then linear; 0 when slack.

    Args:
        lt_norm: (...) normalized tendon length [-].
        fmax_tendon_strain: ``FmaxTendonStrain`` [-] (broadcasts).

    Returns:
        (...) normalized tendon force [-].
    """
    k_toe, f_toe = 3.0, 0.33
    e_toe, k_lin = _thelen_tendon_constants(fmax_tendon_strain, lt_norm)
    strain = lt_norm - 1.0
    toe_strain = torch.minimum(torch.clamp_min(strain, 0.0), e_toe)
    toe = f_toe / math.expm1(k_toe) * torch.expm1(k_toe * toe_strain / e_toe)
    linear = k_lin * torch.clamp_min(strain - e_toe, 0.0) + f_toe
    return torch.where(strain > e_toe, linear, toe)


def _thelen_fv_constants(activation, af, flen, threshold, like: Tensor):
    c = 0.25 + 0.75 * torch.as_tensor(activation, dtype=like.dtype, device=like.device)
    af = torch.as_tensor(af, dtype=like.dtype, device=like.device)
    flen = torch.as_tensor(flen, dtype=like.dtype, device=like.device)
    g = 2.0 + 2.0 / af
    k = c * (flen - 1.0) / g  # eccentric constant
    f_t = threshold * flen  # eccentric extrapolation starts here (multiplier)
    v_t = k * (f_t - 1.0) / (flen - f_t)
    b_t = g * (flen - f_t) / (flen - 1.0)
    db = -g / (flen - 1.0)
    slope_e = c / b_t - c * (f_t - 1.0) / b_t**2 * db  # dv/dfv beyond f_t
    slope_c = c * (1.0 + 1.0 / af)  # dv/dfv below fv = 0
    return c, af, flen, k, f_t, v_t, slope_e, slope_c


def thelen_force_velocity(
    v_norm: Tensor,
    activation: Tensor | float,
    af: Tensor | float = 0.25,
    flen: Tensor | float = 1.8,
    extrapolation_threshold: Tensor | float = 0.95,
) -> Tensor:
    """Thelen2003 force-velocity multiplier as OpenSim 4.6 implements it (activation dependent).

    OpenSim defines the fiber velocity as a function of force (``calcdlceN``), with the
    factor ``0.25 + 0.75 a`` and linear extrapolation below ``fv = 0`` and above
    ``extrapolation_threshold * Flen``; this is its exact inverse, in closed form.

    Args:
        v_norm: (...) normalized fiber velocity [-] (negative when shortening).
        activation: (...) activation [-] (broadcasts).
        af: ``Af`` [-]; flen: ``Flen`` [-]; extrapolation_threshold:
            ``fv_linear_extrap_threshold`` [-] (all broadcast).

    Returns:
        (...) multiplier [-].
    """
    c, af, flen, k, f_t, v_t, slope_e, slope_c = _thelen_fv_constants(
        activation, af, flen, extrapolation_threshold, v_norm
    )
    v = v_norm
    # Each branch is evaluated on an input clamped into its own range, so that no branch
    # produces inf/nan (and hence no nan gradient) where it is not selected.
    v_conc = torch.minimum(torch.maximum(v, -c), torch.zeros_like(v))
    conc = (c + v_conc) / (c - v_conc / af)
    below = (v + c) / slope_c
    v_ecc = torch.minimum(torch.clamp_min(v, 0.0), v_t)
    ecc = (v_ecc * flen + k) / (k + v_ecc)
    above = f_t + (v - v_t) / slope_e
    return torch.where(v <= -c, below, torch.where(v <= 0, conc, torch.where(v < v_t, ecc, above)))


def thelen_force_velocity_inverse(
    fv: Tensor,
    activation: Tensor | float,
    af: Tensor | float = 0.25,
    flen: Tensor | float = 1.8,
    extrapolation_threshold: Tensor | float = 0.95,
) -> Tensor:
    """OpenSim's Thelen2003 ``calcdlceN`` in multiplier form: (...) ``fv`` -> (...) ``v_norm``."""
    c, af, flen, k, f_t, v_t, slope_e, slope_c = _thelen_fv_constants(
        activation, af, flen, extrapolation_threshold, fv
    )
    f_conc = torch.minimum(torch.clamp_min(fv, 0.0), torch.ones_like(fv))
    conc = c * (f_conc - 1.0) / (1.0 + f_conc / af)
    f_ecc = torch.minimum(torch.clamp_min(fv, 1.0), f_t)
    ecc = k * (f_ecc - 1.0) / (flen - f_ecc)
    return torch.where(
        fv <= 0,
        -c + slope_c * fv,
        torch.where(fv <= 1, conc, torch.where(fv < f_t, ecc, v_t + slope_e * (fv - f_t))),
    )
