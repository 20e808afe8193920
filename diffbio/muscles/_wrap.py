"""Wrapping of one straight path segment over one wrap surface, in the surface's frame.

Each function takes the segment end points ``p1, p2: (..., 3) [m]`` expressed in the wrap
object's frame and returns ``(code, r1, r2, wrap_length)``: the OpenSim ``WrapAction``
(:data:`NO_WRAP`, :data:`INSIDE`, :data:`WRAPPED`, :data:`MANDATORY`) as ``(...,)`` long,
the tangent points ``(..., 3) [m]`` where the path leaves the straight line and the length
``(...,) [m]`` of the path on the surface. Decisions (inside, mandatory wrap when the
segment cuts the surface, the quadrant constraint ``(axis, sign)``, which way round) and the
surface paths mirror OpenSim 4.6 (hybrid method), written as closed forms or as iterations
whose last step carries the implicit derivative, so lengths are differentiable and
continuous where a path starts to touch a surface.

* Cylinder (axis Z, centred, finite ``length``): OpenSim's WrapCylinder: tangent points in
  the end points' cross-sections slid along the axis onto the plane through both points and
  the apex line, helix length ``sqrt((R theta)^2 + dz^2)``; with several wrap objects on one
  path (``single=False``) OpenSim's tangency iteration (``_adjust_tangent_point``).
* Sphere: great circle in the plane through the centre and both points.
* Ellipsoid: OpenSim's WrapEllipsoid: wraps only when the segment cuts it; the path lies in
  the plane through both points and OpenSim's surface point c1 (Frans / fan blend, Graphics
  Gems closest points); tangent points and arc are exact on the ellipse that plane cuts
  (OpenSim iterates to the same tangent points and sums ~1 mm chords of the arc).
* Torus: OpenSim's WrapTorus: the cylinder wrap above, on a cylinder of the inner radius
  placed at the point of the torus's centre circle nearest the segment (OpenSim's
  residual and two passes), wrapping on the side towards the torus axis.

Inside the unrolled iterations, forward-mode duals are kept from meeting plain tensors or
Python numbers (:func:`_lift`): in torch 2.13 such mixed binary ops take a slow path.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor
from torch.autograd import forward_ad as fwAD

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


def _acos_le1(x: Tensor) -> Tensor:
    """``acos(x)`` for ``0 <= x < 1`` (a tangent angle ``acos(R / d)``); 0 with a zero
    derivative for ``x >= 1`` (end point on or inside the surface: no wrap, and no NaN
    reaching the gradient through the discarded branch)."""
    ok = x < 1.0
    return torch.where(ok, torch.acos(torch.where(ok, x, torch.zeros_like(x))), 0.0)


def _safe_sqrt(x: Tensor) -> Tensor:
    return torch.sqrt(torch.clamp(x, min=1e-30))


# --------------------------------------------------------------------------------- cylinder
def _unit(v: Tensor) -> Tensor:
    return v / _safe_sqrt((v * v).sum(-1, keepdim=True))


_TANGENCY = 0.1 * math.pi / 180.0  # OpenSim's TANGENCY_THRESHOLD
_MAX_ADJUST = 100


def _is_dual(x: Tensor) -> bool:
    return fwAD.unpack_dual(x).tangent is not None


def _lift(x, like: bool):
    """``x`` (tensor or number) as a forward-mode dual with a zero tangent when ``like``:
    in torch 2.13 a binary op between a dual and a plain tensor or a Python number takes
    a slow decomposed path (~100x), dual with dual does not."""
    if not like:
        return x
    if _is_dual(x):
        return x
    x = x.contiguous()
    return fwAD.make_dual(x, torch.zeros_like(x, memory_format=torch.contiguous_format))


def _spiral_point(c, s, ang):
    """OpenSim's spiral point at angle ``ang`` from angle (c, s)."""
    ca, sa = torch.cos(ang), torch.sin(ang)
    return ca * c - sa * s, sa * c + ca * s


def _slide_to_tangency(p, r, w, k15):
    """OpenSim's _adjust_tangent_point: ``(changed, new z)`` of tangent point ``r`` given the
    next spiral point ``w`` (all ``(..., 3)``, cylinder frame): r slides along the axis by
    1.5 times its distance to the point of its vertical line closest to the line p-w."""
    pr, rw = _unit((r - p).detach()), _unit((w - r).detach())  # a decision only
    da = torch.acos(pr[..., 2].clamp(-1, 1)) - torch.acos(rw[..., 2].clamp(-1, 1))
    change = da.abs() > _TANGENCY
    d, w0 = w - p, p - r
    a, b = (d * d).sum(-1), d[..., 2]
    dd, ee = (d * w0).sum(-1), w0[..., 2]
    den = a - b * b
    den = torch.where(den.abs() > 1e-300, den, torch.ones_like(den))
    return change, r[..., 2] + k15 * ((a * ee - b * dd) / den)


def _adjust_spiral(p1, p2, R, c1, s1, c2, s2, zr1, zr2, theta, sense):
    """OpenSim's tangency iteration in _make_spiral_path (paths with several wrap objects):
    while the path leaves either tangent point more than 0.1 deg off the spiral's slope
    (checked against the spiral point one 2 mm segment along), slide that point (at most
    100 times). Unrolled, so the derivative is that of the iterate OpenSim stops at."""
    args = [p1, p2, R, c1, s1, c2, s2, zr1, zr2, theta, sense]
    dual = any(_is_dual(v) for v in args)
    one = torch.ones((), dtype=zr1.dtype, device=zr1.device)
    p1, p2, R, c1, s1, c2, s2, zr1, zr2, theta, sense, k15, inv_seg = [
        _lift(v, dual) for v in [*args, 1.5 * one, one / 0.002]
    ]
    Rc1, Rs1, Rc2, Rs2 = R * c1, R * s1, R * c2, R * s2
    Rth2 = (R * theta) ** 2
    ang = sense * theta
    x = torch.zeros_like(zr1, dtype=torch.bool)
    for _ in range(_MAX_ADJUST):
        dz = zr2 - zr1
        wlen = _safe_sqrt(Rth2 + dz**2)
        nseg = torch.floor(fwAD.unpack_dual(wlen).primal * inv_seg.detach()).clamp(min=1)
        t = _lift((one / nseg).detach(), dual)
        u = _lift((1.0 - one / nseg).detach(), dual)
        cw, sw = _spiral_point(c1, s1, ang * t)
        w1 = torch.stack([R * cw, R * sw, zr1 + t * dz], -1)
        cw, sw = _spiral_point(c1, s1, ang * u)
        w2 = torch.stack([R * cw, R * sw, zr1 + u * dz], -1)
        r1 = torch.stack([Rc1, Rs1, zr1], -1)
        r2 = torch.stack([Rc2, Rs2, zr2], -1)
        ch1, z1n = _slide_to_tangency(p1, r1, w1, k15)
        ch2, z2n = _slide_to_tangency(p2, r2, w2, k15)
        go = (nseg >= 2) & ~x
        ch1, ch2 = ch1 & go, ch2 & go
        if not bool((ch1 | ch2).any()):
            break
        zr1 = torch.where(ch1, z1n, zr1)
        zr2 = torch.where(ch2, z2n, zr2)
        x = x | ~(ch1 | ch2)
    return zr1, zr2


def _adjust_where(go: Tensor, p1, p2, *args):
    """:func:`_adjust_spiral` on the wrapping elements ``go`` only; the others keep z."""
    shape = go.shape
    idx = go.reshape(-1).nonzero().squeeze(-1)
    zr1, zr2 = args[5], args[6]
    if idx.numel() == 0:
        return zr1, zr2
    p1, p2 = (p.expand(*shape, 3).reshape(-1, 3)[idx] for p in (p1, p2))
    flat = [a.reshape(-1)[idx] for a in args]
    z1, z2 = _adjust_spiral(p1, p2, *flat)
    out1 = zr1.reshape(-1).index_copy(0, idx, z1).reshape(shape)
    out2 = zr2.reshape(-1).index_copy(0, idx, z2).reshape(shape)
    return out1, out2


def wrap_cylinder(
    p1: Tensor,
    p2: Tensor,
    radius: Tensor,
    length: Tensor,
    quadrant: tuple[int, int],
    single: bool = True,
):
    """Cylinder of ``radius`` and ``length`` [m] along Z, as OpenSim's WrapCylinder (see the
    module docstring): preliminary tangent points in the cross-sections of p1 and p2, slid
    along the axis onto the plane through p1, p2 and the apex line, and the helix between
    them (length ``sqrt((R theta)^2 + dz^2)``)."""
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
    a1, a2 = _acos_le1(R / d1), _acos_le1(R / d2)
    # candidates: "a" = phi + alpha (counter-clockwise side), "b" = phi - alpha
    ang = {"1a": phi1 + a1, "1b": phi1 - a1, "2a": phi2 + a2, "2b": phi2 - a2}
    u = {k: torch.stack([torch.cos(v), torch.sin(v)], -1) for k, v in ang.items()}

    def dot(a, b):
        return (a * b).sum(-1)

    long_wrap = torch.zeros_like(inside)
    far = torch.zeros_like(inside)
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
        alpha = torch.acos(torch.clamp(dot(u["1a"], u["2b"]).detach(), -1, 1))
        beta = torch.acos(torch.clamp(dot(u["1b"], u["2a"]).detach(), -1, 1))
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
        far = torch.where(ab, alpha > beta, alpha <= beta) | (~A & ~B & ~C & ~D)
        r1xy = torch.where(ab.unsqueeze(-1), u["1a"], u["1b"]) * R.unsqueeze(-1)
        r2xy = torch.where(ab.unsqueeze(-1), u["2b"], u["2a"]) * R.unsqueeze(-1)
        sum_musc = (r1xy - p1[..., :2]) + (r2xy - p2[..., :2])
        sum_r = r1xy + r2xy  # the z parts of both sums are zero
        long_wrap = dot(sum_r, sum_musc) < 0
    psi1 = torch.where((pick == 0) | (pick == 1), ang["1a"], ang["1b"])
    psi2 = torch.where((pick == 0) | (pick == 2), ang["2a"], ang["2b"])
    c1, s1, c2, s2 = torch.cos(psi1), torch.sin(psi1), torch.cos(psi2), torch.sin(psi2)
    # apex: on the surface next to the axis point closest to the split of p1-p2 in the
    # ratio of the points' axis distances; the tangent points slide along the axis onto
    # the plane through p1, p2 and the apex
    tm = (d1 / (d1 + d2)).unsqueeze(-1)
    mpt = p1 + tm * (p2 - p1)
    axispt = torch.zeros_like(mpt)
    axispt = torch.cat([axispt[..., :2], mpt[..., 2:]], -1)
    n = torch.cross(_unit(p1 - axispt), _unit(p2 - axispt), dim=-1)
    n = _unit(n)
    vert = _unit(torch.stack([-n[..., 1], n[..., 0], torch.zeros_like(n[..., 0])], -1))
    apex1, apex2 = axispt + R.unsqueeze(-1) * vert, axispt - R.unsqueeze(-1) * vert
    closer1 = ((mpt - apex1) ** 2).sum(-1) < ((mpt - apex2) ** 2).sum(-1)
    apex = torch.where((closer1 != far).unsqueeze(-1), apex1, apex2)
    m = torch.cross(_unit(p1 - apex), _unit(p2 - apex), dim=-1)
    r1 = torch.stack([R * c1, R * s1, z1], -1)
    r2 = torch.stack([R * c2, R * s2, z2], -1)

    def slide(r, z_own, z_other):
        nz = m[..., 2]
        ok = nz.abs() > 1e-300
        s = ((m * (p1 - r)).sum(-1)) / torch.where(ok, nz, torch.ones_like(nz))
        zp = r[..., 2] + s
        ok = ok & (s.abs() <= 10.0) & ((zp - z_other).abs() < (z_own - z_other).abs())
        return torch.where(ok, zp, r[..., 2])

    zr1, zr2 = slide(r1, z1, z2), slide(r2, z2, z1)
    r1 = torch.stack([R * c1, R * s1, zr1], -1)
    r2 = torch.stack([R * c2, R * s2, zr2], -1)
    theta = torch.atan2((c1 * s2 - s1 * c2).abs(), c1 * c2 + s1 * s2)
    theta = torch.where(long_wrap, _TWO_PI - theta, theta)
    # OpenSim: no wrap when both tangent points lie beyond the cylinder's ends (checked
    # before the tangency iteration)
    half = 0.5 * length
    beyond = ((zr1 < -half) | (zr1 > half)) & ((zr2 < -half) | (zr2 > half))
    code = torch.where(beyond & (code > INSIDE), NO_WRAP, code)
    code = torch.where(inside, INSIDE, code)
    if not single:
        sense = torch.where(long_wrap, -1.0, 1.0).to(p1.dtype)
        sense = sense * torch.where(c1 * s2 - s1 * c2 >= 0, 1.0, -1.0).to(p1.dtype)
        args = torch.broadcast_tensors(R, c1, s1, c2, s2, zr1, zr2, theta, sense)
        go = (code > INSIDE).expand(args[0].shape)
        zr1, zr2 = _adjust_where(go, p1, p2, *args)
        r1 = torch.stack([R * c1, R * s1, zr1], -1)
        r2 = torch.stack([R * c2, R * s2, zr2], -1)
    wlen = _safe_sqrt((R * theta) ** 2 + (zr2 - zr1) ** 2)
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
    shape = torch.broadcast_shapes(p1.shape, p2.shape, semi_axes.shape)
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


# ---------------------------------------------------------------------------------- torus
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
