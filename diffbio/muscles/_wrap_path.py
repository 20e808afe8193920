"""OpenSim's ``GeometryPath::applyWrapObjects``, batched: which segment of a muscle's
current path wraps over which object, in which order, until the length settles.

The current path of every sample is a padded list of nodes (path points, then the two
tangent points of each wrap object where it applies) held in tensors, so that each sample
may take its own branch: per sample, a wrap object's candidate segments are those between
the first and last active point of its range; the first segment that cuts the object
(mandatory wrap) wins, otherwise the wrapped segment that lengthens the path least. With
two or more objects this repeats (up to 8 times) until the length changes by less than
0.5 mm, and when the first object does not wrap while the second has a point inside, the
two swap order, exactly as in OpenSim.

With several objects OpenSim 4.6 re-wraps each object from the others' latest tangent
points, but measures every straight distance (the length, the length change that picks a
segment) from each tangent point's location in ground as first cached in that state's
computation (``Point::getLocationInGround``), i.e. where the point was at the end of the
first iteration that had it in the path; the surface lengths are the latest. Nodes carry
both locations (``pos`` for wrapping, ``cpos`` for distances; see :func:`_remember`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from diffbio._errors import ModelError
from diffbio.muscles._path import WrapKind, WrapObject
from diffbio.muscles._wrap import (
    INSIDE,
    MANDATORY,
    NO_WRAP,
    WRAPPED,
    wrap_cylinder,
    wrap_ellipsoid,
    wrap_sphere,
    wrap_torus,
)

_MAX_ITER = 8
_TOL = 0.0005


def scaled_wrap(obj: WrapObject, R_GB: Tensor, p_GB: Tensor, s_B: Tensor | None):
    """Pose of a wrap frame in ground and its (scaled) dimensions ``(..., n)``."""
    dtype, device = R_GB.dtype, R_GB.device
    R_BW = torch.tensor(obj.rotation, dtype=dtype, device=device)
    t_BW = torch.tensor(obj.translation, dtype=dtype, device=device)
    dims = torch.tensor(obj.dims, dtype=dtype, device=device).expand(*R_GB.shape[:-2], -1)
    if s_B is not None:
        t_BW = t_BW * s_B
        axes = (R_BW.T * s_B.unsqueeze(-2)).norm(dim=-1)  # (..., 3) scaled axis lengths
        if obj.kind is WrapKind.CYLINDER:
            dims = dims * torch.stack([0.5 * (axes[..., 0] + axes[..., 1]), axes[..., 2]], -1)
        elif obj.kind is WrapKind.ELLIPSOID:
            dims = dims * axes
        elif obj.kind is WrapKind.SPHERE:
            dims = dims * s_B.mean(-1, keepdim=True)
        elif obj.kind is WrapKind.TORUS:
            dims = dims * (0.5 * (axes[..., 0] + axes[..., 1])).unsqueeze(-1)
    R_GW = R_GB @ R_BW
    p_GW = p_GB + (R_GB @ t_BW.unsqueeze(-1)).squeeze(-1)
    return R_GW, p_GW, dims


def wrap_in_frame(obj: WrapObject, dims: Tensor, p1: Tensor, p2: Tensor, single: bool = True):
    """Dispatch to the surface's wrap function (points in the wrap frame); ``single``: the
    path has one wrap object (OpenSim then skips the cylinder's tangency iteration)."""
    if obj.kind is WrapKind.CYLINDER:
        return wrap_cylinder(p1, p2, dims[..., 0], dims[..., 1], obj.quadrant, single)
    if obj.kind is WrapKind.SPHERE:
        return wrap_sphere(p1, p2, dims[..., 0], obj.quadrant)
    if obj.kind is WrapKind.ELLIPSOID:
        return wrap_ellipsoid(p1, p2, dims, obj.quadrant)
    if obj.kind is WrapKind.TORUS:
        return wrap_torus(p1, p2, dims[..., 0], dims[..., 1], obj.quadrant, single)
    raise ModelError(f"wrap object {obj.name!r}: {obj.kind.value} wrapping is not supported")


def _take(t: Tensor, idx: Tensor) -> Tensor:
    """Gather along the node axis (dim ``idx.ndim - 1``) with trailing dims kept."""
    extra = t.shape[idx.ndim :]
    full = idx.reshape(*idx.shape, *([1] * len(extra))).expand(*idx.shape, *extra)
    return torch.gather(t, idx.ndim - 1, full)


class _Nodes:
    """A padded node path: ``pos`` where the wrap computations see each node, ``cpos``
    where OpenSim's distances see it (a tangent point's first location in ground, see
    :func:`wrapped_path_length`), ``wid`` the wrap object of a tangent point (-1 for path
    points), ``wlen`` the surface length ending at a second tangent point, ``src`` the
    path-point index (-1 for tangent points)."""

    def __init__(self, pos, cpos, wid, wlen, valid, src):
        self.pos, self.cpos, self.wid, self.wlen = pos, cpos, wid, wlen
        self.valid, self.src = valid, src

    def fields(self):
        return [self.pos, self.cpos, self.wid, self.wlen, self.valid, self.src]

    def permute(self, idx):
        return _Nodes(*[_take(f, idx) for f in self.fields()])

    def where(self, mask, other: _Nodes) -> _Nodes:
        out = []
        for a, b in zip(self.fields(), other.fields()):
            m = mask.reshape(*mask.shape, *([1] * (a.ndim - mask.ndim)))
            out.append(torch.where(m, a, b))
        return _Nodes(*out)

    def compact(self, keep):
        order = torch.argsort((~keep).to(torch.int8), dim=-1, stable=True)
        n = self.permute(order)
        n.valid = _take(keep, order)
        return n


def path_length(nodes: _Nodes) -> Tensor:
    """Length of a node path ``(...,)`` [m]."""
    a, b = nodes.cpos[..., :-1, :], nodes.cpos[..., 1:, :]
    both = nodes.valid[..., :-1] & nodes.valid[..., 1:]
    same = (nodes.wid[..., :-1] >= 0) & (nodes.wid[..., :-1] == nodes.wid[..., 1:])
    diff = torch.where(both.unsqueeze(-1), b - a, torch.ones_like(a))
    dist = diff.norm(dim=-1)
    seg = torch.where(same, nodes.wlen[..., 1:], dist)
    return torch.where(both, seg, torch.zeros_like(seg)).sum(-1)


def wrapped_path_length(
    X: Tensor,
    active: Tensor,
    wraps: list[tuple[WrapObject, int, int, Tensor, Tensor, Tensor]],
) -> Tensor:
    """Length ``(...,) [m]`` of one muscle's path with wrapping.

    Args:
        X: ``(..., P, 3) [m]`` the muscle's path points in ground.
        active: ``(..., P)`` which points are active.
        wraps: per PathWrap, ``(object, start, end, R_GW (...,3,3), p_GW (...,3), dims)``.
    """
    lead = X.shape[:-2]
    P, K = X.shape[-2], len(wraps)
    N = P + 2 * K
    dev = X.device
    pad = torch.zeros(*lead, 2 * K, 3, dtype=X.dtype, device=dev)
    pos = torch.cat([X, pad], -2)
    src = torch.cat([torch.arange(P, device=dev), torch.full((2 * K,), -1, device=dev)]).expand(
        *lead, N
    )
    valid = torch.cat([active, torch.zeros(*lead, 2 * K, dtype=torch.bool, device=dev)], -1)
    nodes = _Nodes(
        pos,
        pos,
        torch.full((*lead, N), -1, device=dev),
        torch.zeros(*lead, N, dtype=X.dtype, device=dev),
        valid,
        src,
    )
    nodes = nodes.compact(valid)
    # per wrap object: its tangent points' first locations in ground and whether set
    cache = [
        (pad[..., 0, :], pad[..., 0, :], torch.zeros(lead, dtype=torch.bool, device=dev))
        for _ in range(K)
    ]
    order = torch.arange(K, device=dev).expand(*lead, K).clone()
    done = torch.zeros(lead, dtype=torch.bool, device=dev)
    last = torch.full(lead, math.inf, dtype=X.dtype, device=dev)
    length = path_length(nodes)
    kidx = torch.arange(N, device=dev)
    for kk in range(_MAX_ITER if K > 1 else 1):
        results = []
        before = nodes
        for i in range(K):
            res_i = torch.zeros(lead, dtype=torch.long, device=dev)
            for w, (obj, start, end, R_GW, p_GW, dims) in enumerate(wraps):
                sel = order[..., i] == w
                if not bool(sel.any()):
                    continue
                new, res = _apply_one(
                    nodes, w, obj, start, end, R_GW, p_GW, dims, active, kidx, K == 1, cache[w]
                )
                nodes = new.where(sel, nodes)
                res_i = torch.where(sel, res, res_i)
            results.append(res_i)
        nodes = before.where(done, nodes)
        length = path_length(nodes)
        cache = [_remember(nodes, w, c, ~done) for w, c in enumerate(cache)]
        newly = (length - last).abs() < _TOL
        last = torch.where(done, last, length)
        done = done | newly
        if bool(done.all()):
            break
        if kk == 0 and K > 1:
            swap = (results[0] == NO_WRAP) & (results[1] == INSIDE) & ~done
            if bool(swap.any()):
                order = torch.where(swap.unsqueeze(-1), _swapped(order), order)
                w0 = 0
                keep = nodes.valid & (nodes.wid != w0)
                nodes = nodes.compact(keep).where(swap, nodes)
    return length


def _remember(nodes: _Nodes, w: int, cache, upd: Tensor):
    """OpenSim caches a point's location in ground the first time a distance asks for it
    (Point::getLocationInGround) and keeps it for the rest of the state's path
    computation, while PathWrap::setLocation only changes the point's local location.
    So the distances of a path with several wrap objects use each tangent point where it
    was when first in the path at the end of an iteration; later iterations move only
    what the wrap computations see. ``cache``: ``(C1, C2, has)``."""
    C1, C2, has = cache
    mine = nodes.valid & (nodes.wid == w)
    N = mine.shape[-1]
    k = torch.arange(N, device=mine.device)
    i1 = torch.where(mine, k, N).min(-1).values.clamp(max=N - 1)
    i2 = torch.where(mine, k, -1).max(-1).values.clamp(min=0)
    new = mine.any(-1) & ~has & upd
    P1 = _take(nodes.pos, i1.unsqueeze(-1)).squeeze(-2)
    P2 = _take(nodes.pos, i2.unsqueeze(-1)).squeeze(-2)
    m = new.unsqueeze(-1)
    return torch.where(m, P1, C1), torch.where(m, P2, C2), has | new


def _swapped(order: Tensor) -> Tensor:
    o = order.clone()
    o[..., 0], o[..., 1] = 1, 0
    return o


def _apply_one(nodes: _Nodes, w, obj, start, end, R_GW, p_GW, dims, active, kidx, single, cache):
    """One wrap object over the current path: remove its old points, pick the segment,
    insert the new tangent points. Returns the new nodes and OpenSim's result code.
    The wrap sees the nodes' current locations (``pos``), the length change the cached
    ones (``cpos``, see :func:`_remember`)."""
    nodes = nodes.compact(nodes.valid & (nodes.wid != w))
    lead = nodes.valid.shape[:-1]
    N = nodes.valid.shape[-1]
    if not obj.active:
        return nodes, torch.zeros(lead, dtype=torch.long, device=kidx.device)
    # first / last active original point in the range, and their node positions
    rng = torch.arange(active.shape[-1], device=kidx.device)
    in_rng = active & (rng >= start) & (rng <= end)
    big = active.shape[-1]
    smp = torch.where(in_rng, rng, big).min(-1).values
    emp = torch.where(in_rng, rng, -1).max(-1).values
    is_s = (nodes.src == smp.unsqueeze(-1)) & nodes.valid
    is_e = (nodes.src == emp.unsqueeze(-1)) & nodes.valid
    s_pos = torch.where(is_s, kidx, N).min(-1).values
    e_pos = torch.where(is_e, kidx, -1).max(-1).values
    # all candidate segments at once
    a, b = nodes.pos[..., :-1, :], nodes.pos[..., 1:, :]
    RT = R_GW.transpose(-1, -2).unsqueeze(-3)
    pa = (RT @ (a - p_GW.unsqueeze(-2)).unsqueeze(-1)).squeeze(-1)
    pb = (RT @ (b - p_GW.unsqueeze(-2)).unsqueeze(-1)).squeeze(-1)
    code, r1, r2, wlen = wrap_in_frame(obj, dims.unsqueeze(-2), pa, pb, single)
    j = kidx[:-1]
    same = (nodes.wid[..., :-1] >= 0) & (nodes.wid[..., :-1] == nodes.wid[..., 1:])
    cand = (j >= s_pos.unsqueeze(-1)) & (j < e_pos.unsqueeze(-1)) & ~same
    cand = cand & nodes.valid[..., :-1] & nodes.valid[..., 1:]
    R = R_GW.unsqueeze(-3)
    g1 = (R @ r1.unsqueeze(-1)).squeeze(-1) + p_GW.unsqueeze(-2)
    g2 = (R @ r2.unsqueeze(-1)).squeeze(-1) + p_GW.unsqueeze(-2)
    ac, bc = nodes.cpos[..., :-1, :], nodes.cpos[..., 1:, :]
    change = (g1 - ac).norm(dim=-1) + wlen + (bc - g2).norm(dim=-1) - (bc - ac).norm(dim=-1)
    mand = cand & (code == MANDATORY)
    wrapped = cand & (code == WRAPPED)
    first_m = torch.where(mand, j, N).min(-1).values
    has_m = first_m < N
    ch = torch.where(
        wrapped & (j < first_m.unsqueeze(-1)), change, torch.full_like(change, math.inf)
    )
    best_w = ch.argmin(-1)
    has_w = torch.isfinite(ch.min(-1).values)
    best = torch.where(has_m, first_m, best_w)
    ins = has_m | has_w
    # OpenSim's result[i]: the code of the last segment examined
    last_j = torch.where(cand & (j <= first_m.unsqueeze(-1)), j, -1).max(-1).values
    res = torch.gather(code, -1, last_j.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    res = torch.where(last_j >= 0, res, torch.zeros_like(res))
    # insert r1 (at best + 1) and r2 (at best + 2)
    e = (best + 1).unsqueeze(-1)
    k = kidx.expand(*lead, N)
    src_idx = torch.where(k < e, k, (k - 2).clamp(min=0))
    moved = nodes.permute(src_idx)
    bi = best.unsqueeze(-1)
    G1 = _take(g1, bi).squeeze(-2)
    G2 = _take(g2, bi).squeeze(-2)
    WL = torch.gather(wlen, -1, bi).squeeze(-1)
    at1, at2 = (k == e), (k == e + 1)
    pos = torch.where(
        at1.unsqueeze(-1),
        G1.unsqueeze(-2),
        torch.where(at2.unsqueeze(-1), G2.unsqueeze(-2), moved.pos),
    )
    wid = torch.where(at1 | at2, w, moved.wid)
    wl = torch.where(
        at2, WL.unsqueeze(-1), torch.where(at1, torch.zeros_like(moved.wlen), moved.wlen)
    )
    C1, C2, has = cache
    h = has.unsqueeze(-1)
    CG1 = torch.where(h, C1, G1).unsqueeze(-2)
    CG2 = torch.where(h, C2, G2).unsqueeze(-2)
    cpos = torch.where(at1.unsqueeze(-1), CG1, torch.where(at2.unsqueeze(-1), CG2, moved.cpos))
    valid = at1 | at2 | moved.valid
    srcs = torch.where(at1 | at2, -1, moved.src)
    inserted = _Nodes(pos, cpos, wid, wl, valid, srcs)
    return inserted.where(ins, nodes), res
