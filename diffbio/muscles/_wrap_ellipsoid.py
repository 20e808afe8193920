"""Sphere and ellipsoid wrapping (see :mod:`diffbio.muscles._wrap`): the sphere as a great
circle in the plane through the centre and both points; the ellipsoid as OpenSim's
WrapEllipsoid (hybrid method). Both reduce to the 2-D wrap over the ellipse a plane cuts."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from diffbio._shapes import broadcast_shapes
from diffbio.muscles._wrap_common import (
    _TWO_PI,
    INSIDE,
    MANDATORY,
    NO_WRAP,
    _acos_le1,
    _decide,
    _safe_sqrt,
    _sgn,
    _unit,
)

_GL_X, _GL_W = np.polynomial.legendre.leggauss(48)


# --------------------------------------------------------------------------- plane helpers
def _plane_basis(p1: Tensor, p2: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Orthonormal ``e1, e2`` spanning the plane through the origin, p1 and p2; normal."""
    n = torch.cross(p1, p2, dim=-1)
    n = n / _safe_sqrt((n * n).sum(-1, keepdim=True)).clamp(min=1e-300)
    e1 = p1 / _safe_sqrt((p1 * p1).sum(-1, keepdim=True))
    e2 = torch.cross(n, e1, dim=-1)
    return e1, e2, n


def _segment_hits(p1, p2, D: Tensor):
    """Segment p1-p2 against the quadric ``x^T diag(D) x = 1``: cuts it (both crossings in
    (0, 1)) and the point of the line closest to the centre in that metric."""
    d = p2 - p1
    a = (d * d * D).sum(-1)
    b = 2.0 * (p1 * d * D).sum(-1)
    c = (p1 * p1 * D).sum(-1) - 1.0
    disc = b * b - 4 * a * c
    sq = _safe_sqrt(disc)
    l1, l2 = (-b + sq) / (2 * a), (-b - sq) / (2 * a)
    hit = (disc > 0) & (l1 > 0) & (l1 < 1) & (l2 > 0) & (l2 < 1)
    tmin = -(p1 * d).sum(-1) / (d * d).sum(-1).clamp(min=1e-300)
    near = p1 + tmin.unsqueeze(-1) * d
    return hit, near


def _ellipse_wrap(P1: Tensor, P2: Tensor, A: Tensor, B: Tensor, ccw: Tensor):
    """2-D: ellipse ``x^2/A^2 + y^2/B^2 = 1``, points P1, P2 outside. Tangent parameters,
    arc length going counter-clockwise (``ccw``) or clockwise, tangent lengths."""
    q1 = torch.stack([P1[..., 0] / A, P1[..., 1] / B], -1)
    q2 = torch.stack([P2[..., 0] / A, P2[..., 1] / B], -1)
    rho1 = _safe_sqrt((q1 * q1).sum(-1))
    rho2 = _safe_sqrt((q2 * q2).sum(-1))
    f1, f2 = torch.atan2(q1[..., 1], q1[..., 0]), torch.atan2(q2[..., 1], q2[..., 0])
    a1, a2 = _acos_le1(1.0 / rho1), _acos_le1(1.0 / rho2)
    sgn = torch.where(ccw, 1.0, -1.0).to(P1.dtype)
    t1 = f1 + sgn * a1
    t2 = f2 - sgn * a2
    dt = t2 - t1
    delta = torch.atan2(torch.sin(dt), torch.cos(dt))
    delta = torch.where(sgn * delta < 0, delta + sgn * _TWO_PI, delta)  # directed, in [0, 2pi)
    x = torch.as_tensor(_GL_X, dtype=P1.dtype, device=P1.device)
    w = torch.as_tensor(_GL_W, dtype=P1.dtype, device=P1.device)
    tt = t1.unsqueeze(-1) + 0.5 * delta.unsqueeze(-1) * (x + 1.0)
    speed = torch.sqrt(
        (A.unsqueeze(-1) * torch.sin(tt)) ** 2 + (B.unsqueeze(-1) * torch.cos(tt)) ** 2
    )
    arc = 0.5 * delta.abs() * (w * speed).sum(-1)
    T1 = torch.stack([A * torch.cos(t1), B * torch.sin(t1)], -1)
    T2 = torch.stack([A * torch.cos(t2), B * torch.sin(t2)], -1)
    tm = t1 + 0.5 * delta
    mid = torch.stack([A * torch.cos(tm), B * torch.sin(tm)], -1)
    return T1, T2, arc, mid


def _wrap_centred_quadric(p1, p2, semi: Tensor, quadrant: tuple[int, int]):
    """Sphere (equal semi-axes) or ellipsoid ``semi (..., 3)``: path in the plane through
    the centre and both points, the side chosen as OpenSim does."""
    axis, sign = quadrant
    D = 1.0 / semi**2
    inside = ((p1 * p1 * D).sum(-1) < 1.0) | ((p2 * p2 * D).sum(-1) < 1.0)
    hit, near = _segment_hits(p1, p2, D)
    code = _decide(p1[..., axis], p2[..., axis], near[..., axis], hit, sign)
    e1, e2, _ = _plane_basis(p1, p2)
    # the ellipse cut by the plane: principal axes of the 2x2 form
    Q11 = (e1 * e1 * D).sum(-1)
    Q12 = (e1 * e2 * D).sum(-1)
    Q22 = (e2 * e2 * D).sum(-1)
    half_tr, dif = 0.5 * (Q11 + Q22), 0.5 * (Q11 - Q22)
    rad = _safe_sqrt(dif * dif + Q12 * Q12)
    lam1, lam2 = half_tr + rad, half_tr - rad
    ang = 0.5 * torch.atan2(2 * Q12, Q11 - Q22)
    c, s = torch.cos(ang), torch.sin(ang)
    f1 = c.unsqueeze(-1) * e1 + s.unsqueeze(-1) * e2  # eigenvector of lam1 (shorter axis)
    f2 = -s.unsqueeze(-1) * e1 + c.unsqueeze(-1) * e2
    A, B = 1.0 / torch.sqrt(lam1), 1.0 / torch.sqrt(lam2)

    def to2d(p):
        return torch.stack([(p * f1).sum(-1), (p * f2).sum(-1)], -1)

    def to3d(v):
        return v[..., :1] * f1 + v[..., 1:] * f2

    P1, P2 = to2d(p1), to2d(p2)
    ones = torch.ones_like(inside)
    T1a, T2a, arc_a, mid_a = _ellipse_wrap(P1, P2, A, B, ones)
    T1b, T2b, arc_b, mid_b = _ellipse_wrap(P1, P2, A, B, ~ones)
    tot_a = (T1a - P1).norm(dim=-1) + arc_a + (P2 - T2a).norm(dim=-1)
    tot_b = (T1b - P1).norm(dim=-1) + arc_b + (P2 - T2b).norm(dim=-1)
    if sign == 0:
        use_a = tot_a <= tot_b
    else:
        ma, mb = to3d(mid_a)[..., axis] * sign, to3d(mid_b)[..., axis] * sign
        use_a = torch.where((ma >= 0) == (mb >= 0), tot_a <= tot_b, ma >= 0)
    ua = use_a.unsqueeze(-1)
    r1 = to3d(torch.where(ua, T1a, T1b))
    r2 = to3d(torch.where(ua, T2a, T2b))
    wlen = torch.where(use_a, arc_a, arc_b)
    code = torch.where(inside, INSIDE, code)
    return code, r1, r2, wlen


def wrap_sphere(p1: Tensor, p2: Tensor, radius: Tensor, quadrant: tuple[int, int]):
    """Sphere of ``radius`` [m] at the origin (see the module docstring)."""
    semi = radius.unsqueeze(-1).expand(*radius.shape, 3)
    return _wrap_centred_quadric(p1, p2, semi, quadrant)


# ------------------------------------------------------------------------------ ellipsoid
# OpenSim's WrapEllipsoid (hybrid method): the path lies in the plane through p1, p2 and a
# point c1 on the surface found by blending "Frans'" axis-plane closest point with the
# averaged "fan" of closest points along the chord; tangent points and arc are exact on the
# ellipse that plane cuts (OpenSim iterates to the same tangent points and sums 1 mm chords).
_MU_BLEND_MIN, _MU_BLEND_MAX, _SV_BOUNDARY_BLEND, _FAN = 0.7073, 0.9, 0.3, 300


def _newton(f_fp, t0: Tensor, *args) -> Tensor:
    """Graphics Gems IV root of ``f(t)`` by OpenSim's 64 Newton steps (stop at |f| < 1e-9),
    run without gradients; one last step with gradients gives the implicit derivative."""
    with torch.no_grad():
        t = t0.detach()
        det = [x.detach() for x in args]
        for _ in range(64):
            f, fp = f_fp(t, *det)
            done = f.abs() < 1e-9
            if bool(done.all()):
                break
            t = torch.where(done, t, t - f / torch.where(done, torch.ones_like(fp), fp))
    f, fp = f_fp(t, *args)
    return t - f / fp


def _f3(t, a2, u2a2):
    P = t.unsqueeze(-1) + a2  # (..., 3)
    P2 = P * P
    pr = P2.prod(-1)
    f = pr - (u2a2 * pr.unsqueeze(-1) / P2).sum(-1)
    PQR = P.prod(-1)
    pq = PQR.unsqueeze(-1) / P  # products of the other two
    others = P.sum(-1, keepdim=True) - P
    fp = 2.0 * (PQR * pq.sum(-1) - (u2a2 * pq * others).sum(-1))
    return f, fp


def _closest_on_ellipsoid(a: Tensor, u: Tensor) -> Tensor:
    """OpenSim's findClosestPoint (general case): closest point to ``u`` on the ellipsoid
    with semi-axes ``a`` (both ``(..., 3)``)."""
    a2 = a * a
    inside = ((u / a) ** 2).sum(-1) < 1.0
    t0 = torch.where(inside, 0.0, a.max(-1).values * u.norm(dim=-1))
    t = _newton(_f3, t0, a2, a2 * u * u)
    return a2 * u / (t.unsqueeze(-1) + a2)


def _f2(t, a2, b2, au, bv):
    P, Q = t + a2, t + b2
    f = P * P * Q * Q - au * Q * Q - bv * P * P
    fp = 2.0 * (P * Q * (P + Q) - au * Q - bv * P)
    return f, fp


def _closest_in_axis_plane(a: Tensor, u: Tensor, axis: Tensor) -> Tensor:
    """OpenSim's findClosestPoint with ``specialCaseAxis`` (per sample, ``(...,)`` long):
    keep ``u[axis]``, solve the 2-D closest point on the cross-section ellipse of the
    other two axes (taken cyclically, as OpenSim does)."""
    perm = (axis.unsqueeze(-1) + torch.arange(3, device=u.device)) % 3
    ap, up = torch.gather(a, -1, perm), torch.gather(u, -1, perm)
    A, B, x, y = ap[..., 1], ap[..., 2], up[..., 1], up[..., 2]
    inside = (x / A) ** 2 + (y / B) ** 2 < 1.0
    t0 = torch.where(inside, 0.0, torch.maximum(A, B) * torch.sqrt(x * x + y * y))
    t = _newton(_f2, t0, A * A, B * B, A * A * x * x, B * B * y * y)
    cp = torch.stack([up[..., 0], A * A * x / (t + A * A), B * B * y / (t + B * B)], -1)
    return torch.zeros_like(cp).scatter(-1, perm, cp)


def _ellipsoid_c1(p1: Tensor, p2: Tensor, a: Tensor, quadrant: tuple[int, int]) -> Tensor:
    """OpenSim's wrapping-plane point c1 (hybrid method), in the frame scaled by OpenSim's
    ``factor``; ``p1``-``p2`` must cut the ellipsoid."""
    axis, sign = quadrant
    d = p1 - p2
    aa = ((d / a) ** 2).sum(-1)
    bb = 2.0 * (d * p2 / a**2).sum(-1)
    cc = ((p2 / a) ** 2).sum(-1) - 1.0
    sq = _safe_sqrt(bb * bb - 4 * aa * cc)
    l1, l2 = (-bb + sq) / (2 * aa), (-bb - sq) / (2 * aa)
    r1 = p2 + l1.unsqueeze(-1) * d
    r2 = p2 + l2.unsqueeze(-1) * d
    r12 = r2 - r1
    mu = _unit(d).abs()
    small = r12.abs() < 1e-12
    tt = torch.where(small, 0.5, -r1 / torch.where(small, torch.ones_like(r12), r12))
    best = mu.argmax(-1, keepdim=True)
    mu_b = torch.gather(mu, -1, best).squeeze(-1)
    t_b = torch.gather(tt, -1, best).squeeze(-1)
    sv_fr = r1 + t_b.unsqueeze(-1) * r12
    frans = _closest_in_axis_plane(a, sv_fr, best.squeeze(-1))
    s = torch.where(
        (t_b < 0) | (t_b > 1),
        0.0,
        torch.where(
            t_b < _SV_BOUNDARY_BLEND,
            t_b / _SV_BOUNDARY_BLEND,
            torch.where(t_b > 1 - _SV_BOUNDARY_BLEND, (1 - t_b) / _SV_BOUNDARY_BLEND, 1.0),
        ),
    )
    mu_b = torch.where(
        (mu_b > _MU_BLEND_MIN) & (s < 1), _MU_BLEND_MIN + s * (mu_b - _MU_BLEND_MIN), mu_b
    )
    # fan: average direction from chord samples to their closest surface points
    ks = torch.arange(1, _FAN - 1, dtype=p1.dtype, device=p1.device) / _FAN
    sv = r1.unsqueeze(-2) + ks.unsqueeze(-1) * r12.unsqueeze(-2)
    blades = _unit(_closest_on_ellipsoid(a.unsqueeze(-2), sv) - sv).sum(-2)
    mid = r1 + 0.5 * r12
    c_fan = _closest_on_ellipsoid(a, mid + _unit(blades))
    w = ((mu_b - _MU_BLEND_MIN) / (_MU_BLEND_MAX - _MU_BLEND_MIN)).unsqueeze(-1)
    blend = _closest_on_ellipsoid(a, w * frans + (1 - w) * c_fan)
    c1 = torch.where(
        (mu_b <= _MU_BLEND_MIN).unsqueeze(-1),
        c_fan,
        torch.where((mu_b >= _MU_BLEND_MAX).unsqueeze(-1), frans, blend),
    )
    fan_w = torch.where(
        mu_b <= _MU_BLEND_MIN,
        1.0,
        torch.where(mu_b >= _MU_BLEND_MAX, 1 - w.squeeze(-1), 1 - w.squeeze(-1)),
    ).clamp(max=1.0)
    if sign != 0:
        flip = _sgn(c1[..., axis]) != sign
        cf = c1.clone()
        cf[..., axis] = -c1[..., axis]
        cb = cf.clone()
        cb[..., axis] = cf[..., axis] + fan_w * (0.0 - cf[..., axis])
        cproj = _closest_on_ellipsoid(a, cb)
        cf = torch.where((fan_w > 0).unsqueeze(-1), cproj, cf)
        c1 = torch.where(flip.unsqueeze(-1), cf, c1)
    return c1


def wrap_ellipsoid(p1: Tensor, p2: Tensor, semi_axes: Tensor, quadrant: tuple[int, int]):
    """Ellipsoid with ``semi_axes (..., 3)`` [m] at the origin, as OpenSim's WrapEllipsoid
    (hybrid method): wraps only where the segment cuts the surface (MANDATORY) and never
    when an end point is inside (INSIDE); the path lies in the plane through p1, p2 and
    OpenSim's point c1, over the arc on c1's side."""
    shape = broadcast_shapes(p1.shape, p2.shape, semi_axes.shape)
    a = semi_axes.expand(shape)
    D = 1.0 / a**2
    inside = ((p1 * p1 * D).sum(-1) < 1.0 - 1e-4) | ((p2 * p2 * D).sum(-1) < 1.0 - 1e-4)
    hit, _ = _segment_hits(p1, p2, D)
    code = torch.where(inside, INSIDE, torch.where(hit, MANDATORY, NO_WRAP))
    # the surface path only where the segment wraps (OpenSim's iteration is costly)
    go = (hit & ~inside).expand(shape[:-1]).reshape(-1)
    idx = go.nonzero().squeeze(-1)
    flat = [x.expand(shape).reshape(-1, 3)[idx] for x in (p1, p2, a)]
    r1s, r2s, wls = _ellipsoid_path(*flat, quadrant)
    zero = p1.new_zeros(go.shape[0], 3)
    r1 = zero.index_copy(0, idx, r1s).reshape(shape)
    r2 = zero.index_copy(0, idx, r2s).reshape(shape)
    wlen = zero[:, 0].index_copy(0, idx, wls).reshape(shape[:-1])
    return code.expand(shape[:-1]), r1, r2, wlen


def _ellipsoid_path(q1: Tensor, q2: Tensor, a: Tensor, quadrant: tuple[int, int]):
    """Tangent points and arc length for segments ``q1``-``q2`` that cut the ellipsoid."""
    D = 1.0 / a**2
    factor = 3.0 / a.sum(-1, keepdim=True)
    c1 = _ellipsoid_c1(q1 * factor, q2 * factor, a * factor, quadrant) / factor
    # plane through q1, q2, c1 and the ellipse it cuts: centre x0, y^T D y = k in the plane
    n = _unit(torch.cross(q2 - q1, c1 - q1, dim=-1))
    h = (n * q1).sum(-1)
    nDn = (n * n / D).sum(-1)
    x0 = (h / nDn).unsqueeze(-1) * n / D
    k = 1.0 - h * h / nDn
    e1 = _unit(q2 - q1)
    e2 = torch.cross(n, e1, dim=-1)
    Q11, Q12, Q22 = ((e1 * e1 * D).sum(-1), (e1 * e2 * D).sum(-1), (e2 * e2 * D).sum(-1))
    half_tr, dif = 0.5 * (Q11 + Q22), 0.5 * (Q11 - Q22)
    rad = _safe_sqrt(dif * dif + Q12 * Q12)
    ang = 0.5 * torch.atan2(2 * Q12, Q11 - Q22)
    c, s = torch.cos(ang).unsqueeze(-1), torch.sin(ang).unsqueeze(-1)
    f1, f2 = c * e1 + s * e2, -s * e1 + c * e2
    A, B = torch.sqrt(k / (half_tr + rad)), torch.sqrt(k / (half_tr - rad))

    def to2d(p):
        return torch.stack([((p - x0) * f1).sum(-1), ((p - x0) * f2).sum(-1)], -1)

    def to3d(v):
        return x0 + v[..., :1] * f1 + v[..., 1:] * f2

    P1, P2, C1 = to2d(q1), to2d(q2), to2d(c1)
    ones = torch.ones_like(k, dtype=torch.bool)
    T1a, T2a, arc_a, mid_a = _ellipse_wrap(P1, P2, A, B, ones)
    T1b, T2b, arc_b, _ = _ellipse_wrap(P1, P2, A, B, ~ones)

    def side(X):
        dd, xx = P2 - P1, X - P1
        return dd[..., 0] * xx[..., 1] - dd[..., 1] * xx[..., 0] >= 0

    use_a = (side(mid_a) == side(C1)).unsqueeze(-1)
    r1 = to3d(torch.where(use_a, T1a, T1b))
    r2 = to3d(torch.where(use_a, T2a, T2b))
    return r1, r2, torch.where(use_a.squeeze(-1), arc_a, arc_b)
