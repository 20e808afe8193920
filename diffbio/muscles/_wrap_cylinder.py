"""Cylinder wrapping (axis Z, centred, finite ``length``), as OpenSim's WrapCylinder (see
:mod:`diffbio.muscles._wrap`).

Inside the unrolled iterations, forward-mode duals are kept from meeting plain tensors or
Python numbers (:func:`_lift`): in torch 2.13 such mixed binary ops take a slow path.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.autograd import forward_ad as fwAD

from diffbio.muscles._wrap_common import (
    _TWO_PI,
    INSIDE,
    NO_WRAP,
    _acos_le1,
    _decide,
    _safe_sqrt,
    _sgn,
    _unit,
)

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
