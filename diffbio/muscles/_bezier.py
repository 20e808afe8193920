"""Millard2012 muscle curves: segmented quintic Bezier curves built as OpenSim builds them.

OpenSim's ``SmoothSegmentedFunctionFactory`` turns a curve's parameters into a chain of
quintic Bezier "corner" segments (``SegmentedQuinticBezierToolkit``); outside its domain a
curve continues linearly with its end slopes. The construction below follows OpenSim 4.6
(``ActiveForceLengthCurve``, ``ForceVelocityCurve``, ``ForceVelocityInverseCurve``,
``FiberForceLengthCurve``, ``TendonForceLengthCurve``, including how the optional
properties default), and is pinned against the live ``opensim`` curve objects by tests.

The control points are built once, in float64 NumPy, from plain parameters (not
differentiated); evaluating a curve is a differentiable torch function of its argument.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from diffbio._errors import ModelError


@dataclass(frozen=True)
class BezierCurve:
    """A segmented quintic Bezier curve with linear extrapolation, possibly one per muscle.

    Attributes:
        x_ctrl, y_ctrl: (..., S, 6) control points of S segments (``...`` is () for one curve
            or (M,) for one per muscle).
        x_min, x_max: (...) domain ends; y_min, y_max: (...) values there;
        dydx_min, dydx_max: (...) slopes used for extrapolation beyond the ends.
    """

    x_ctrl: Tensor
    y_ctrl: Tensor
    x_min: Tensor
    x_max: Tensor
    y_min: Tensor
    y_max: Tensor
    dydx_min: Tensor
    dydx_max: Tensor

    def to(self, dtype: torch.dtype | None = None, device=None) -> BezierCurve:
        """Copy with every tensor moved to ``dtype`` / ``device``."""
        kw = {k: getattr(self, k).to(dtype=dtype, device=device) for k in self.__dataclass_fields__}
        return BezierCurve(**kw)

    @staticmethod
    def stack(curves: list[BezierCurve]) -> BezierCurve:
        """Stack single curves of one kind into one curve per muscle, shapes (M, S, 6), (M,)."""
        kw = {
            k: torch.stack([getattr(c, k) for c in curves])
            for k in BezierCurve.__dataclass_fields__
        }
        return BezierCurve(**kw)


# --- construction (float64 NumPy) --------------------------------------------------------


def _corner(x0, y0, dydx0, x1, y1, dydx1, curviness):
    """Control points of one C-shaped quintic Bezier corner (OpenSim's toolkit)."""
    if abs(dydx0 - dydx1) > math.sqrt(np.finfo(float).eps):
        xc = (y1 - y0 - x1 * dydx1 + x0 * dydx0) / (dydx0 - dydx1)
    else:
        xc = (x1 + x0) / 2
    yc = (xc - x1) * dydx1 + y1
    a = (xc - x0) ** 2 + (yc - y0) ** 2
    b = (xc - x1) ** 2 + (yc - y1) ** 2
    c = (x1 - x0) ** 2 + (y1 - y0) ** 2
    if not (c > a and c > b):
        raise ModelError("curve parameters do not form a C-shaped Bezier corner")
    x0m, y0m = x0 + curviness * (xc - x0), y0 + curviness * (yc - y0)
    x1m, y1m = x1 + curviness * (xc - x1), y1 + curviness * (yc - y1)
    return [x0, x0m, x0m, x1m, x1m, x1], [y0, y0m, y0m, y1m, y1m, y1]


def _scale_curviness(curviness: float) -> float:
    return 0.1 + 0.8 * curviness


def _make(segments, x_min, x_max, y_min, y_max, dydx_min, dydx_max, swap=False) -> BezierCurve:
    xs = torch.tensor([s[0] for s in segments], dtype=torch.float64)
    ys = torch.tensor([s[1] for s in segments], dtype=torch.float64)
    if swap:
        xs, ys = ys, xs
    f = lambda v: torch.tensor(float(v), dtype=torch.float64)  # noqa: E731
    return BezierCurve(xs, ys, f(x_min), f(x_max), f(y_min), f(y_max), f(dydx_min), f(dydx_max))


def millard_active_force_length_curve(
    min_norm_active_fiber_length: float = 0.4441,
    transition_norm_fiber_length: float = 0.73,
    max_norm_active_fiber_length: float = 1.8123,
    shallow_ascending_slope: float = 0.8616,
    minimum_value: float = 0.1,
) -> BezierCurve:
    """OpenSim's ``ActiveForceLengthCurve`` (5 segments; defaults are OpenSim 4.6's)."""
    x0, x1, x2, x3 = (
        min_norm_active_fiber_length,
        transition_norm_fiber_length,
        1.0,
        max_norm_active_fiber_length,
    )
    ylow, dydx = minimum_value, shallow_ascending_slope
    eps = math.sqrt(np.finfo(float).eps)
    if not (x0 >= 0 and x1 > x0 + eps and x2 > x1 + eps and x3 > x2 + eps):
        raise ModelError(
            "ActiveForceLengthCurve: need 0 <= min_norm_active_fiber_length < "
            "transition_norm_fiber_length < 1 < max_norm_active_fiber_length"
        )
    if ylow < 0 or not (0 <= dydx < (1 - ylow) / (x2 - x1)):
        raise ModelError(
            "ActiveForceLengthCurve: minimum_value or shallow_ascending_slope out of range"
        )
    c = _scale_curviness(1.0)
    x_delta = 0.05 * x2
    xs = x2 - x_delta
    y0, y1 = 0.0, 1 - dydx * (xs - x1)
    dydx01 = 1.25 * (y1 - y0) / (x1 - x0)
    x01, y01 = x0 + 0.5 * (x1 - x0), y0 + 0.5 * (y1 - y0)
    x1s, y1s = x1 + 0.5 * (xs - x1), y1 + 0.5 * (1 - y1)
    y2, y3 = 1.0, 0.0
    x23 = (x2 + x_delta) + 0.5 * (x3 - (x2 + x_delta))
    y23 = y2 + 0.5 * (y3 - y2)
    dydx23 = (y3 - y2) / ((x3 - x_delta) - (x2 + x_delta))
    segs = [
        _corner(x0, ylow, 0.0, x01, y01, dydx01, c),
        _corner(x01, y01, dydx01, x1s, y1s, dydx, c),
        _corner(x1s, y1s, dydx, x2, y2, 0.0, c),
        _corner(x2, y2, 0.0, x23, y23, dydx23, c),
        _corner(x23, y23, dydx23, x3, ylow, 0.0, c),
    ]
    return _make(segs, x0, x3, ylow, ylow, 0.0, 0.0)


def _fv_segments(fmax_e, dydx_c, dydx_near_c, dydx_iso, dydx_e, dydx_near_e, conc_c, ecc_c):
    if not (fmax_e > 1.0 and 0 <= dydx_c < 1 and dydx_c < dydx_near_c <= 1 and dydx_iso > 1):
        raise ModelError(
            "ForceVelocityCurve: slope or max_eccentric_velocity_force_multiplier out of range"
        )
    if not (0 <= dydx_e < fmax_e - 1 and dydx_e <= dydx_near_e < fmax_e - 1):
        raise ModelError("ForceVelocityCurve: eccentric slopes out of range")
    if not (0 <= conc_c <= 1 and 0 <= ecc_c <= 1):
        raise ModelError("ForceVelocityCurve: curviness must be in [0, 1]")
    cc, ce = _scale_curviness(conc_c), _scale_curviness(ecc_c)
    xc, yc, xiso, yiso, xe, ye = -1.0, 0.0, 0.0, 1.0, 1.0, fmax_e
    xnc = -0.9
    ync = yc + 0.5 * dydx_near_c * (xnc - xc) + 0.5 * dydx_c * (xnc - xc)
    xne = 0.9
    yne = ye + 0.5 * dydx_near_e * (xne - xe) + 0.5 * dydx_e * (xne - xe)
    return [
        _corner(xc, yc, dydx_c, xnc, ync, dydx_near_c, cc),
        _corner(xnc, ync, dydx_near_c, xiso, yiso, dydx_iso, cc),
        _corner(xiso, yiso, dydx_iso, xne, yne, dydx_near_e, ce),
        _corner(xne, yne, dydx_near_e, xe, ye, dydx_e, ce),
    ]


def millard_force_velocity_curve(
    concentric_slope_at_vmax: float = 0.0,
    concentric_slope_near_vmax: float = 0.25,
    isometric_slope: float = 5.0,
    eccentric_slope_at_vmax: float = 0.0,
    eccentric_slope_near_vmax: float = 0.15,
    max_eccentric_velocity_force_multiplier: float = 1.4,
    concentric_curviness: float = 0.6,
    eccentric_curviness: float = 0.9,
) -> BezierCurve:
    """OpenSim's ``ForceVelocityCurve``: normalized fiber velocity -> multiplier (4 segments)."""
    segs = _fv_segments(
        max_eccentric_velocity_force_multiplier,
        concentric_slope_at_vmax,
        concentric_slope_near_vmax,
        isometric_slope,
        eccentric_slope_at_vmax,
        eccentric_slope_near_vmax,
        concentric_curviness,
        eccentric_curviness,
    )
    fe = max_eccentric_velocity_force_multiplier
    return _make(segs, -1.0, 1.0, 0.0, fe, concentric_slope_at_vmax, eccentric_slope_at_vmax)


def millard_force_velocity_inverse_curve(
    concentric_slope_at_vmax: float = 0.1,
    concentric_slope_near_vmax: float = 0.25,
    isometric_slope: float = 5.0,
    eccentric_slope_at_vmax: float = 0.1,
    eccentric_slope_near_vmax: float = 0.15,
    max_eccentric_velocity_force_multiplier: float = 1.4,
    concentric_curviness: float = 0.6,
    eccentric_curviness: float = 0.9,
) -> BezierCurve:
    """OpenSim's ``ForceVelocityInverseCurve``: multiplier -> normalized fiber velocity.

    The end slopes must be positive for the inverse to exist (OpenSim's defaults are 0.1).
    """
    if concentric_slope_at_vmax <= 0 or eccentric_slope_at_vmax <= 0:
        raise ModelError("ForceVelocityInverseCurve: the slopes at vmax must be positive")
    segs = _fv_segments(
        max_eccentric_velocity_force_multiplier,
        concentric_slope_at_vmax,
        concentric_slope_near_vmax,
        isometric_slope,
        eccentric_slope_at_vmax,
        eccentric_slope_near_vmax,
        concentric_curviness,
        eccentric_curviness,
    )
    fe = max_eccentric_velocity_force_multiplier
    return _make(
        segs,
        0.0,
        fe,
        -1.0,
        1.0,
        1 / concentric_slope_at_vmax,
        1 / eccentric_slope_at_vmax,
        swap=True,
    )


def millard_fiber_force_length_curve(
    strain_at_zero_force: float = 0.0,
    strain_at_one_norm_force: float = 0.7,
    stiffness_at_low_force: float | None = None,
    stiffness_at_one_norm_force: float | None = None,
    curviness: float | None = None,
) -> BezierCurve:
    """OpenSim's ``FiberForceLengthCurve`` (passive; the optional three default together)."""
    e0, e1 = strain_at_zero_force, strain_at_one_norm_force
    opt = (stiffness_at_low_force, stiffness_at_one_norm_force, curviness)
    if all(v is None for v in opt):
        k_low, k_iso, curv = 0.2, 2.0 / (e1 - e0), 0.75
    elif any(v is None for v in opt):
        raise ModelError(
            "FiberForceLengthCurve: stiffness_at_low_force, stiffness_at_one_norm_force and "
            "curviness must all be set or all be empty"
        )
    else:
        k_low, k_iso, curv = opt
    if not (e1 > e0 and k_iso > 1.0 / (e1 - e0) and 0 < k_low < 1 / (e1 - e0) and 0 <= curv <= 1):
        raise ModelError("FiberForceLengthCurve: strains, stiffnesses or curviness out of range")
    c = _scale_curviness(curv)
    x_zero, x_iso = 1 + e0, 1 + e1
    delta = min(0.1 * (1.0 / k_iso), 0.1 * (x_iso - x_zero))
    x_low = x_zero + delta
    x_foot = x_zero + 0.5 * (x_low - x_zero)
    y_low = k_low * (x_low - x_foot)
    segs = [
        _corner(x_zero, 0.0, 0.0, x_low, y_low, k_low, c),
        _corner(x_low, y_low, k_low, x_iso, 1.0, k_iso, c),
    ]
    return _make(segs, x_zero, x_iso, 0.0, 1.0, 0.0, k_iso)


def millard_tendon_force_length_curve(
    strain_at_one_norm_force: float = 0.049,
    stiffness_at_one_norm_force: float | None = None,
    norm_force_at_toe_end: float | None = None,
    curviness: float | None = None,
) -> BezierCurve:
    """OpenSim's ``TendonForceLengthCurve`` (the optional three default together)."""
    e_iso = strain_at_one_norm_force
    opt = (stiffness_at_one_norm_force, norm_force_at_toe_end, curviness)
    if all(v is None for v in opt):
        k_iso, f_toe, curv = 1.375 / e_iso, 2.0 / 3.0, 0.5
    elif any(v is None for v in opt):
        raise ModelError(
            "TendonForceLengthCurve: stiffness_at_one_norm_force, norm_force_at_toe_end and "
            "curviness must all be set or all be empty"
        )
    else:
        k_iso, f_toe, curv = opt
    if not (e_iso > 0 and 0 < f_toe < 1 and k_iso > 1 / e_iso and 0 <= curv <= 1):
        raise ModelError(
            "TendonForceLengthCurve: strain, stiffness, toe force or curviness out of range"
        )
    c = _scale_curviness(curv)
    x_iso = 1.0 + e_iso
    x_toe = (f_toe - 1) / k_iso + x_iso
    x_foot = 1.0 + (x_toe - 1.0) / 10.0
    y_toe_mid = f_toe * 0.5
    x_toe_mid = (y_toe_mid - 1.0) / k_iso + x_iso
    dydx_toe_mid = y_toe_mid / (x_toe_mid - x_foot)
    x_ctrl = x_foot + 0.5 * (x_toe_mid - x_foot)
    y_ctrl = dydx_toe_mid * (x_ctrl - x_foot)
    segs = [
        _corner(1.0, 0.0, 0.0, x_ctrl, y_ctrl, dydx_toe_mid, c),
        _corner(x_ctrl, y_ctrl, dydx_toe_mid, x_toe, f_toe, k_iso, c),
    ]
    return _make(segs, 1.0, x_toe, 0.0, f_toe, 0.0, k_iso)


# --- evaluation (torch) --------------------------------------------------------------------


def _casteljau(u: Tensor, p: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Quintic Bezier value, d/du and d2/du2 at u (...) for control points p (6, ...).

    De Casteljau's algorithm (numerically stable, as the Bernstein form): each level
    interpolates neighbouring points; the derivatives come from the last three levels. The
    control points lead (contiguous rows) so that every level is a contiguous operation.
    """
    q = p
    for _ in range(3):
        q = torch.lerp(q[:-1], q[1:], u)
    d2 = 20.0 * (q[2] - 2.0 * q[1] + q[0])
    q = torch.lerp(q[:-1], q[1:], u)
    d1 = 5.0 * (q[1] - q[0])
    return torch.lerp(q[0], q[1], u), d1, d2


def _solve_u(x: Tensor, px: Tensor, max_iter: int = 60) -> Tensor:
    """u in [0, 1] with Bx(u) = x for monotone Bx (safeguarded Halley/Newton; no graph).

    ``px``: (6, ...) the control points of each element's segment.
    """
    eps = torch.finfo(x.dtype).eps
    x0, x5 = px[0], px[5]
    lo, hi = torch.zeros_like(x), torch.ones_like(x)
    u = ((x - x0) / (x5 - x0)).clamp(0.0, 1.0)
    u = torch.where(x <= x0, torch.zeros_like(u), torch.where(x >= x5, torch.ones_like(u), u))
    tol = 4 * eps * (x5 - x0).abs().clamp_min(1.0)
    for _ in range(max_iter):
        bx, df, d2f = _casteljau(u, px)
        f = bx - x
        lo = torch.where(f < 0, u, lo)
        hi = torch.where(f > 0, u, hi)
        # Halley's step (cubic convergence), Newton's where its correction is not mild
        r = f / torch.where(df > 0, df, torch.ones_like(df))
        den = 1.0 - 0.5 * r * d2f / torch.where(df > 0, df, torch.ones_like(df))
        step = u - torch.where((den > 0.5) & (den < 2.0), r / den, r)
        ok = (df > 0) & (step >= lo) & (step <= hi)
        u_new = torch.where(f.abs() <= tol, u, torch.where(ok, step, 0.5 * (lo + hi)))
        done = bool(((u_new - u).abs() <= 2 * eps).all())
        u = u_new
        if done:
            break
    return u


def bezier_curve_value(curve: BezierCurve, x: Tensor) -> Tensor:
    """Evaluate a segmented quintic Bezier curve, differentiably in ``x``.

    Args:
        curve: the curve; its leading shape (``()`` or ``(M,)``) broadcasts against ``x``.
        x: (...) or (..., M) argument.

    Returns:
        Tensor of the broadcast shape of ``x`` and the curve's leading shape.

    Each element is evaluated on its own segment only (its control points gathered per
    element). The parameter ``u`` of the segment is found by a safeguarded Newton iteration
    without a graph, then a second-order correction step
    ``u = u0 + d - Bx''(u0) d^2 / (2 Bx'(u0))`` with ``d = (x - Bx(u0)) / Bx'(u0)`` carries the
    exact first and second derivatives ``du/dx = 1/Bx'`` and ``d2u/dx2 = -Bx''/Bx'^3``.
    """
    dtype, device = x.dtype, x.device
    as_ = lambda t: t.to(dtype=dtype, device=device)  # noqa: E731
    px, py = as_(curve.x_ctrl), as_(curve.y_ctrl)  # (L..., S, 6)
    lead, n_seg = px.shape[:-2], px.shape[-2]
    shape = torch.broadcast_shapes(x.shape, lead)
    xb = x.expand(shape)
    with torch.no_grad():
        idx = ((xb.unsqueeze(-1) >= px[..., 0]).sum(-1) - 1).clamp(0, n_seg - 1)
        base = torch.arange(0, px[..., 0, 0].numel() * n_seg, n_seg, device=device)
        flat = (base.reshape(lead) + idx).reshape(-1)
    # the control points of each element's segment, (6, *shape)
    px = px.reshape(-1, 6).t().index_select(1, flat).reshape(6, *shape)
    py = py.reshape(-1, 6).t().index_select(1, flat).reshape(6, *shape)
    xc = torch.minimum(torch.maximum(xb, px[0]), px[5])
    with torch.no_grad():
        u0 = _solve_u(xc.detach(), px)
        bx0, dx, d2x = _casteljau(u0, px)
        dx = dx.clamp_min(torch.finfo(dtype).tiny)
    d = (xc - bx0) / dx
    u = u0 + d - d2x * d**2 / (2.0 * dx)
    y_in = _casteljau(u, py)[0]
    c = curve
    below = as_(c.y_min) + as_(c.dydx_min) * (x - as_(c.x_min))
    above = as_(c.y_max) + as_(c.dydx_max) * (x - as_(c.x_max))
    return torch.where(x < as_(c.x_min), below, torch.where(x > as_(c.x_max), above, y_in))


def bezier_curve_values(curves: list[BezierCurve], xs: list[Tensor]) -> list[Tensor]:
    """Evaluate several per-muscle curves at once: ``[bezier_curve_value(c, x) ...]``.

    The curves (each of leading shape ``(M_i,)``, any number of segments) are padded to a
    common number of segments and joined along the muscle axis, so that one Newton iteration
    serves them all (the cost is per operation, not per element, at the sizes of a model).

    Args:
        curves: curves of leading shape ``(M_i,)``.
        xs: arguments ``(..., M_i)``, of one leading shape ``(...)``.

    Returns:
        ``[(..., M_i)]``, equal to evaluating each curve on its own.
    """
    shapes = {tuple(x.shape[:-1]) for x in xs}
    if len(shapes) != 1 or any(
        c.x_ctrl.dim() != 3 or x.shape[-1] != c.x_ctrl.shape[0] for c, x in zip(curves, xs)
    ):
        return [bezier_curve_value(c, x) for c, x in zip(curves, xs)]
    dtype, device = xs[0].dtype, xs[0].device
    n_seg = max(c.x_ctrl.shape[-2] for c in curves)

    def pad(t: Tensor, value: float) -> Tensor:
        t = t.to(dtype=dtype, device=device)
        extra = n_seg - t.shape[-2]
        if extra == 0:
            return t
        return torch.cat([t, t.new_full((t.shape[0], extra, 6), value)], -2)

    # padded segments start at +inf: never selected
    kw = {"x_ctrl": torch.cat([pad(c.x_ctrl, math.inf) for c in curves])}
    kw["y_ctrl"] = torch.cat([pad(c.y_ctrl, 0.0) for c in curves])
    for k in ("x_min", "x_max", "y_min", "y_max", "dydx_min", "dydx_max"):
        kw[k] = torch.cat([getattr(c, k).to(dtype=dtype, device=device) for c in curves])
    y = bezier_curve_value(BezierCurve(**kw), torch.cat(xs, -1))
    return list(torch.split(y, [x.shape[-1] for x in xs], -1))
