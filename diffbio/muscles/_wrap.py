"""Wrapping of one straight path segment over one wrap surface, in the surface's frame.

Each function takes the segment end points ``p1, p2: (..., 3) [m]`` expressed in the wrap
object's frame and returns ``(code, r1, r2, wrap_length)``: the OpenSim ``WrapAction``
(:data:`NO_WRAP`, :data:`INSIDE`, :data:`WRAPPED`, :data:`MANDATORY`) as ``(...,)`` long,
the tangent points ``(..., 3) [m]`` where the path leaves the straight line and the length
``(...,) [m]`` of the path on the surface. The decision logic (inside a surface, mandatory
wrap when the segment cuts the surface, the quadrant constraint ``(axis, sign)`` and which
way round) follows OpenSim's WrapCylinder / WrapSphere; the surface path itself is the exact
shortest path (geodesic) for the chosen side, so lengths and their derivatives are smooth
while the wrap state does not change, and both the length and its gradient are continuous
where a path starts to touch a surface.

* Cylinder (axis Z, centred, finite ``length``): helix found by unrolling the cylinder.
* Sphere: great circle in the plane through the centre and both points.
* Ellipsoid: the path lies in the plane through the centre and both points; on the ellipse
  cut by that plane the tangent points are exact and the arc length is integrated by
  Gauss-Legendre quadrature (OpenSim's own ellipsoid path is an iterative approximation).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

NO_WRAP, INSIDE, WRAPPED, MANDATORY = 0, 1, 2, 3
_TWO_PI = 2.0 * math.pi
_GL_X, _GL_W = np.polynomial.legendre.leggauss(48)


def _sgn(x: Tensor) -> Tensor:
    """OpenSim's DSIGN: +1 for x >= 0, else -1."""
    return torch.where(x >= 0, 1, -1)


def _decide(p1k, p2k, neark, intersect, sign: int) -> Tensor:
    """OpenSim's quadrant decision shared by cylinder, sphere and ellipsoid."""
    mand = torch.where(intersect, MANDATORY, NO_WRAP)
    if sign == 0:
        return mand
    s1, s2 = _sgn(p1k), _sgn(p2k)
    on = (s1 == sign) | (s2 == sign)
    cross = (s1 != s2) & (_sgn(neark) != sign)
    code_on = torch.where(intersect, MANDATORY, torch.where(cross, WRAPPED, NO_WRAP))
    return torch.where(on, code_on, torch.full_like(code_on, WRAPPED))


def _safe_sqrt(x: Tensor) -> Tensor:
    return torch.sqrt(torch.clamp(x, min=1e-30))


# --------------------------------------------------------------------------------- cylinder
def wrap_cylinder(
    p1: Tensor, p2: Tensor, radius: Tensor, length: Tensor, quadrant: tuple[int, int]
):
    """Cylinder of ``radius`` and ``length`` [m] along Z (see the module docstring)."""
    axis, sign = quadrant
    R = radius
    x1, y1, z1 = p1.unbind(-1)
    x2, y2, z2 = p2.unbind(-1)
    d1sq, d2sq = x1 * x1 + y1 * y1, x2 * x2 + y2 * y2
    inside = (d1sq < R * R) | (d2sq < R * R)
    dx, dy = x2 - x1, y2 - y1
    dd = torch.clamp(dx * dx + dy * dy, min=1e-300)
    t12 = -(x1 * dx + y1 * dy) / dd
    near = p1 + t12.unsqueeze(-1) * (p2 - p1)
    intersect = (near[..., 0] ** 2 + near[..., 1] ** 2 < R * R) & (t12 > 0) & (t12 < 1)
    code = _decide(p1[..., axis], p2[..., axis], near[..., axis], intersect, sign)

    d1, d2 = _safe_sqrt(d1sq), _safe_sqrt(d2sq)
    phi1, phi2 = torch.atan2(y1, x1), torch.atan2(y2, x2)
    a1 = torch.acos(torch.clamp(R / d1, -1.0, 1.0))
    a2 = torch.acos(torch.clamp(R / d2, -1.0, 1.0))
    # candidates: "a" = phi + alpha (counter-clockwise side), "b" = phi - alpha
    ang = {"1a": phi1 + a1, "1b": phi1 - a1, "2a": phi2 + a2, "2b": phi2 - a2}
    u = {k: torch.stack([torch.cos(v), torch.sin(v)], -1) for k, v in ang.items()}

    def dot(a, b):
        return (a * b).sum(-1)

    long_wrap = torch.zeros_like(inside)
    if sign == 0:
        j1, j2, j3, j4 = (
            dot(u["1a"], u["2a"]),
            dot(u["1a"], u["2b"]),
            dot(u["1b"], u["2a"]),
            dot(u["1b"], u["2b"]),
        )
        pick = torch.where(
            (j1 > j2) & (j1 > j3) & (j1 > j4),
            0,
            torch.where((j2 > j3) & (j2 > j4), 1, torch.where(j3 > j4, 2, 3)),
        )
    else:
        alpha = torch.acos(torch.clamp(dot(u["1a"], u["2b"]), -1, 1))
        beta = torch.acos(torch.clamp(dot(u["1b"], u["2a"]), -1, 1))
        # which preliminary tangent points lie on the active side (OpenSim's choice chain)
        if axis == 2:
            A = _sgn(z1) == sign
            B, C, D = A, _sgn(z2) == sign, _sgn(z2) == sign
        else:
            A = _sgn(R * u["1a"][..., axis]) == sign
            B = _sgn(R * u["1b"][..., axis]) == sign
            C = _sgn(R * u["2a"][..., axis]) == sign
            D = _sgn(R * u["2b"][..., axis]) == sign
        ab = (A & B & ~C) | (A & ~B) | (~A & ~B & ~C & D) | (~A & ~B & ~C & ~D & (alpha > beta))
        pick = torch.where(ab, 1, 2)
        r1xy = torch.where(ab.unsqueeze(-1), u["1a"], u["1b"]) * R.unsqueeze(-1)
        r2xy = torch.where(ab.unsqueeze(-1), u["2b"], u["2a"]) * R.unsqueeze(-1)
        sum_musc = (r1xy - p1[..., :2]) + (r2xy - p2[..., :2])
        sum_r = r1xy + r2xy  # the z parts of both sums are zero
        long_wrap = dot(sum_r, sum_musc) < 0
    psi1 = torch.where((pick == 0) | (pick == 1), ang["1a"], ang["1b"])
    psi2 = torch.where((pick == 0) | (pick == 2), ang["2a"], ang["2b"])
    # arc angle: directed for the geodesic pairs (smooth through 0), OpenSim's rule otherwise
    dpsi = psi2 - psi1
    cs, sn = torch.cos(dpsi), torch.sin(dpsi)
    directed = torch.where(pick == 1, torch.atan2(sn, cs), torch.atan2(-sn, cs))
    theta = torch.where((pick == 1) | (pick == 2), directed, torch.atan2(sn.abs(), cs))
    theta = torch.where(long_wrap, _TWO_PI - theta.abs(), theta)
    t1, t2 = _safe_sqrt(d1sq - R * R), _safe_sqrt(d2sq - R * R)
    arc = R * theta
    s = torch.clamp(t1 + arc + t2, min=1e-300)
    dz = z2 - z1
    zr1 = z1 + dz * t1 / s
    zr2 = z1 + dz * (t1 + arc) / s
    r1 = torch.stack([R * torch.cos(psi1), R * torch.sin(psi1), zr1], -1)
    r2 = torch.stack([R * torch.cos(psi2), R * torch.sin(psi2), zr2], -1)
    wlen = arc * torch.sqrt(1.0 + (dz / s) ** 2)
    half = 0.5 * length
    beyond = ((zr1 < -half) | (zr1 > half)) & ((zr2 < -half) | (zr2 > half))
    code = torch.where(beyond & (code > INSIDE), NO_WRAP, code)
    code = torch.where(inside, INSIDE, code)
    return code, r1, r2, wlen


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
    a1 = torch.acos(torch.clamp(1.0 / rho1, -1.0, 1.0))
    a2 = torch.acos(torch.clamp(1.0 / rho2, -1.0, 1.0))
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


def wrap_ellipsoid(p1: Tensor, p2: Tensor, semi_axes: Tensor, quadrant: tuple[int, int]):
    """Ellipsoid with ``semi_axes (..., 3)`` [m] at the origin (module docstring)."""
    return _wrap_centred_quadric(p1, p2, semi_axes, quadrant)
