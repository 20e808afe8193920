"""Torus wrapping (axis Z, centred), as OpenSim's WrapTorus (see :mod:`diffbio.muscles._wrap`)."""

from __future__ import annotations

import torch
from torch import Tensor

from diffbio.muscles._wrap_common import NO_WRAP, WRAPPED, _safe_sqrt, _sgn, _unit
from diffbio.muscles._wrap_cylinder import wrap_cylinder

_TORUS_CYL_LENGTH = 10000.0  # OpenSim's CYL_LENGTH


def _circle_resid(u, a, n, R):
    """OpenSim's WrapTorus::calcCircleResids and its derivative: at ``x = a + u n``,
    ``f = d/du (|x|^2 - 4 R rho)``, ``rho = |x_xy|`` (OpenSim's residual carries a factor
    2 on the circle term)."""
    x = a + u.unsqueeze(-1) * n
    c4 = n[..., 0] ** 2 + n[..., 1] ** 2
    rho = _safe_sqrt(x[..., 0] ** 2 + x[..., 1] ** 2)
    g = (x[..., :2] * n[..., :2]).sum(-1)  # d rho^2 / du / 2 = c4 u + c3
    f = 2.0 * (a * n).sum(-1) + 2.0 * u - 4.0 * R * g / rho
    fp = 2.0 - 4.0 * R * (c4 * rho * rho - g * g) / rho**3
    return f, fp


def _line_circle_stationary(a: Tensor, b: Tensor, R: Tensor) -> Tensor:
    """The point of line a->b where OpenSim's residual vanishes, found from ``u = 0`` (at a)
    as OpenSim's Levenberg-Marquardt pass does: damped Newton steps without gradients
    (step at most 0.2 m, OpenSim's initial trust radius), then one Newton step with
    gradients for the implicit derivative."""
    n = _unit(b - a)
    with torch.no_grad():
        ad, nd, Rd = a.detach(), n.detach(), R.detach()
        u = torch.zeros_like(ad[..., 0])
        tol = 1e3 * torch.finfo(u.dtype).eps
        for _ in range(100):
            f, fp = _circle_resid(u, ad, nd, Rd)
            ok = fp > 0
            step = torch.where(ok, -f / torch.where(ok, fp, torch.ones_like(fp)), -f)
            step = step.clamp(-0.2, 0.2)
            u = u + step
            if bool((step.abs() < tol).all()):
                break
    f, fp = _circle_resid(u, a, n, R)
    u = u - f / torch.where(fp.abs() > 1e-12, fp, torch.ones_like(fp))
    return a + u.unsqueeze(-1) * n


def wrap_torus(
    p1: Tensor,
    p2: Tensor,
    inner: Tensor,
    outer: Tensor,
    quadrant: tuple[int, int],
    single: bool = True,
):
    """OpenSim's WrapTorus (axis Z, centred): the point of the circle of radius ``outer``
    [m] in the XY plane nearest the segment (OpenSim's two passes, from p1 and from p2,
    the nearer or the one on the quadrant's side), then OpenSim's cylinder of radius
    ``inner`` [m] through that point, tangent to the circle, its +X (wrapping) side
    towards the torus axis. WRAPPED (OpenSim's torus never reports a mandatory wrap)
    where that cylinder wraps, else NO_WRAP."""
    axis, sign = quadrant
    R = outer
    a1 = _line_circle_stationary(p1, p2, R)
    a2 = _line_circle_stationary(p2, p1, R)

    def dist(x):
        rho = _safe_sqrt(x[..., 0] ** 2 + x[..., 1] ** 2)
        return _safe_sqrt((x * x).sum(-1) + R * R - 2.0 * R * rho)

    d1, d2 = dist(a1), dist(a2)
    found = torch.ones_like(d1, dtype=torch.bool)
    if sign == 0:
        first = d1 < d2
    else:
        on1, on2 = _sgn(a1[..., axis]) == sign, _sgn(a2[..., axis]) == sign
        first = torch.where(on1 & on2, d1 < d2, on1)
        found = on1 | on2
    a = torch.where(first.unsqueeze(-1), a1, a2)
    rho = _safe_sqrt(a[..., 0] ** 2 + a[..., 1] ** 2).unsqueeze(-1)
    c = torch.cat([a[..., :2] * R.unsqueeze(-1) / rho, torch.zeros_like(a[..., :1])], -1)
    X = -c / _safe_sqrt((c * c).sum(-1, keepdim=True))
    Y = torch.zeros_like(X)
    Y[..., 2] = -1.0
    Z = torch.cross(X, Y, dim=-1)
    M = torch.stack([X, Y, Z], -2)  # rows: cylinder axes in the torus frame

    def to_cyl(p):
        return (M @ (p - c).unsqueeze(-1)).squeeze(-1)

    def from_cyl(r):
        return (M.transpose(-1, -2) @ r.unsqueeze(-1)).squeeze(-1) + c

    length = torch.full_like(inner, _TORUS_CYL_LENGTH)
    code, r1, r2, wlen = wrap_cylinder(to_cyl(p1), to_cyl(p2), inner, length, (0, 1), single)
    code = torch.where(found & (code >= WRAPPED), WRAPPED, NO_WRAP)
    return code, from_cyl(r1), from_cyl(r2), wlen
