"""Muscle-tendon lengths, lengthening speeds and moment arms, batched and differentiable.

* ``muscle_tendon_lengths(model, q, scales) -> (..., M) [m]``: OpenSim's
  ``GeometryPath::getLength``: the sum of the straight segments between consecutive active
  points plus, where wrapping applies, the paths over the wrap surfaces.
* ``muscle_tendon_velocities(model, q, qd) -> (..., M) [m/s]``: ``dl/dt = (dl/dq) qd``.
* ``moment_arms(model, q, scales) -> (..., M, Q) [m or -]``: ``r = -dl/dq`` with
  CoordinateCouplerConstraints as OpenSim's MomentArmSolver treats them: the dependent
  coordinate follows its independent one (``l(q_indep, f(q_indep))`` is differentiated);
  the dependent coordinate's column is that total derivative divided by ``f'(q_indep)``.

All are differentiable with respect to ``q`` and ``scales`` (moment arms too, by forward
mode nested in autograd).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.autograd import forward_ad as fwAD

from diffbio._errors import ShapeError
from diffbio._shapes import broadcast_shapes
from diffbio.kinematics import forward_kinematics
from diffbio.model import Model
from diffbio.muscles._path import (
    MusclePaths,
    muscle_paths,
    point_active,
    point_locations,
    poses_with_ground,
)
from diffbio.muscles._wrap_path import scaled_wrap, wrapped_path_length


def _plain_index(paths: MusclePaths, device) -> tuple[list[int], Tensor]:
    """Muscles without wrapping and their padded point indices ``(M0, P)`` (-1 pad)."""
    plain = [i for i, m in enumerate(paths.muscles) if not m.wraps]
    pmax = max((len(paths.muscles[i].points) for i in plain), default=0)
    idx = torch.full((len(plain), pmax), -1, dtype=torch.long)
    for r, i in enumerate(plain):
        pts = paths.muscles[i].points
        idx[r, : len(pts)] = torch.tensor(pts)
    return plain, idx.to(device)


def _check(model: Model, q: Tensor, scales: Tensor | None) -> None:
    if q.shape[-1:] != (model.num_coordinates,):
        raise ShapeError(
            f"q must have shape (..., Q) with Q = {model.num_coordinates}; got {tuple(q.shape)}"
        )
    if scales is not None and scales.shape[-2:] != (model.num_bodies, 3):
        raise ShapeError(
            f"scales must have shape (..., NB, 3) with NB = {model.num_bodies}; got {tuple(scales.shape)}"
        )


def muscle_tendon_lengths(model: Model, q: Tensor, scales: Tensor | None = None) -> Tensor:
    """Muscle-tendon (path) lengths.

    Args:
        model: the model (its ForceSet muscles, in file order: see :func:`muscle_names`).
        q: ``(..., Q) [rad or m]`` coordinates.
        scales: optional ``(..., NB, 3)`` body scale factors.
    Returns:
        ``(..., M) [m]``.
    """
    _check(model, q, scales)
    paths = muscle_paths(model, q.dtype, q.device)
    lead = q.shape[:-1] if scales is None else broadcast_shapes(q.shape[:-1], scales.shape[:-2])
    q = q.expand(*lead, q.shape[-1])
    poses = forward_kinematics(model, q, scales)
    Rg, pg = poses_with_ground(poses.rotation, poses.translation)
    Rg = Rg.expand(*lead, *Rg.shape[-3:])
    pg = pg.expand(*lead, *pg.shape[-2:])
    loc = point_locations(paths, q, scales)
    body = paths.body
    X = pg[..., body, :] + (Rg[..., body, :, :] @ loc.unsqueeze(-1)).squeeze(-1)  # (..., K, 3)
    act = point_active(paths, q)
    out = torch.zeros(*lead, paths.num_muscles, dtype=q.dtype, device=q.device)
    key = ("muscle_plain_index", str(q.device))
    cached = model._cache.get(key)
    if cached is None:
        cached = _plain_index(paths, q.device)
        model._cache[key] = cached
    plain, idx = cached
    if plain:
        out = out.index_copy(-1, torch.tensor(plain, device=q.device), _plain_lengths(X, act, idx))
    s_ext = None
    if scales is not None:
        s_ext = torch.cat([scales, torch.ones_like(scales[..., :1, :])], -2).expand(*lead, -1, 3)
    for i, m in enumerate(paths.muscles):
        if not m.wraps:
            continue
        pts = torch.tensor(m.points, device=q.device)
        wraps = []
        for spec in m.wraps:
            obj = paths.wrap_objects[spec.wrap]
            s_B = None if s_ext is None else s_ext[..., obj.body, :]
            R_GW, p_GW, dims = scaled_wrap(obj, Rg[..., obj.body, :, :], pg[..., obj.body, :], s_B)
            wraps.append((obj, spec.start, spec.end, R_GW, p_GW, dims))
        li = wrapped_path_length(X[..., pts, :], act[..., pts], wraps)
        out = out.index_copy(-1, torch.tensor([i], device=q.device), li.unsqueeze(-1))
    return out


def _plain_lengths(X: Tensor, act: Tensor, idx: Tensor) -> Tensor:
    P = idx.shape[-1]
    Xm = X[..., idx.clamp(min=0), :]  # (..., M0, P, 3)
    am = act[..., idx.clamp(min=0)] & (idx >= 0)
    ar = torch.arange(P, device=X.device)
    big = torch.where(am, ar, P)
    cm = torch.flip(torch.cummin(torch.flip(big, [-1]), -1).values, [-1])
    nxt = torch.cat([cm[..., 1:], torch.full_like(cm[..., :1], P)], -1)
    seg = am & (nxt < P)
    Xn = torch.gather(Xm, -2, nxt.clamp(max=P - 1).unsqueeze(-1).expand(*nxt.shape, 3))
    d = torch.where(seg.unsqueeze(-1), Xn - Xm, torch.ones_like(Xm))
    return torch.where(seg, d.norm(dim=-1), torch.zeros_like(d[..., 0])).sum(-1)


def muscle_names(model: Model) -> tuple[str, ...]:
    """Names of the model's muscles: the ``M`` axis order."""
    return muscle_paths(model).names


def _coupled(model: Model, q: Tensor) -> Tensor:
    from diffbio.kinematics import apply_couplers

    return apply_couplers(model, q)


def moment_arms(model: Model, q: Tensor, scales: Tensor | None = None) -> Tensor:
    """Moment arms ``r = -dl/dq``.

    Args:
        q: ``(..., Q) [rad or m]``.
        scales: optional ``(..., NB, 3)``.
    Returns:
        ``(..., M, Q)`` [m for rotational coordinates, dimensionless for translational].
        For a coupler's dependent coordinate ``q_d = f(q_i)`` the column is OpenSim's:
        the independent coordinate's moment arm divided by ``f'(q_i)``.
    """
    _check(model, q, scales)
    paths = muscle_paths(model, q.dtype, q.device)
    if not paths.has_wrapping:
        qc = _coupled(model, q)
        return _fold_moment_arms(model, qc, _plain_geometry(model, paths, qc, scales)[1])
    Q = model.num_coordinates
    dep = [model.coordinate_index(k.dependent) for k in model.couplers]
    eye = torch.eye(Q, dtype=q.dtype, device=q.device)
    eye[dep, dep] = 0.0
    qq = q.unsqueeze(0).expand(Q, *q.shape).contiguous()
    tangent = eye.reshape(Q, *([1] * (q.ndim - 1)), Q).expand_as(qq).contiguous()
    sc = None if scales is None else scales.unsqueeze(0)
    with fwAD.dual_level():
        dual = fwAD.make_dual(qq, tangent)
        lengths = muscle_tendon_lengths(model, _coupled(model, dual), sc)
        dl = fwAD.unpack_dual(lengths).tangent
    if dl is None:
        dl = torch.zeros_like(lengths)
    r = -dl.movedim(0, -1)
    if model.couplers:
        cols = list(r.unbind(-1))
        for k in model.couplers:
            i, d = model.coordinate_index(k.independent), model.coordinate_index(k.dependent)
            cols[d] = cols[i] / k.function(q[..., i], 1).unsqueeze(-1)
        r = torch.stack(cols, -1)
    return r


def _fold_moment_arms(model: Model, q: Tensor, dl: Tensor) -> Tensor:
    """``r = -dl/dq`` with dependent coordinates folded into their independent ones and
    their columns set to OpenSim's ``r_independent / f'(q_independent)``."""
    from diffbio.kinematics import fold_couplers

    if not model.couplers:
        return -dl
    r = -fold_couplers(model, q, dl)
    cols = list(r.unbind(-1))
    for k in model.couplers:
        i, dcol = model.coordinate_index(k.independent), model.coordinate_index(k.dependent)
        cols[dcol] = cols[i] / k.function(q[..., i], 1).unsqueeze(-1)
    return torch.stack(cols, -1)


def muscle_geometry(
    model: Model, q: Tensor, qd: Tensor | None = None, scales: Tensor | None = None
) -> tuple[Tensor, Tensor | None, Tensor]:
    """Lengths, lengthening speeds and moment arms together (one kinematics pass when no
    muscle wraps; otherwise the separate functions).

    Args:
        q: ``(..., Q) [rad or m]``, made consistent with the couplers first (as
            :func:`moment_arms` does; a trial from :func:`diffbio.dynamics.load_trial` is).
        qd: ``(..., Q)`` or None; scales: optional ``(..., NB, 3)``.
    Returns:
        ``lengths (..., M) [m]``, ``velocities (..., M) [m/s]`` (None without ``qd``) and
        ``moment_arms (..., M, Q)``, equal to :func:`muscle_tendon_lengths`,
        :func:`muscle_tendon_velocities` and :func:`moment_arms`.
    """
    return _muscle_geometry(model, q, qd, scales)


def _muscle_geometry(model: Model, q: Tensor, qd: Tensor | None, scales: Tensor | None, fk=None):
    """:func:`muscle_geometry`; ``fk``: ``_forward(model, q, scales, with_axes=True)``
    where the caller already has it (used where no coupler changes ``q`` and no muscle
    wraps)."""
    _check(model, q, scales)
    if qd is not None and qd.shape != q.shape:
        raise ShapeError(f"qd must have the shape of q {tuple(q.shape)}; got {tuple(qd.shape)}")
    paths = muscle_paths(model, q.dtype, q.device)
    if paths.has_wrapping:
        qc = _coupled(model, q)
        v = None if qd is None else muscle_tendon_velocities(model, qc, qd, scales)
        return muscle_tendon_lengths(model, qc, scales), v, moment_arms(model, q, scales)
    qc = _coupled(model, q)
    lengths, dl = _plain_geometry(model, paths, qc, scales, fk if qc is q else None)
    v = None if qd is None else (dl * qd.unsqueeze(-2)).sum(-1)
    return lengths, v, _fold_moment_arms(model, qc, dl)


def muscle_tendon_velocities(
    model: Model, q: Tensor, qd: Tensor, scales: Tensor | None = None
) -> Tensor:
    """Lengthening speeds ``dl/dt = (dl/dq) qd``: ``q, qd (..., Q)`` -> ``(..., M) [m/s]``."""
    _check(model, q, scales)
    if qd.shape != q.shape:
        raise ShapeError(f"qd must have the shape of q {tuple(q.shape)}; got {tuple(qd.shape)}")
    with fwAD.dual_level():
        dual = fwAD.make_dual(q, qd)
        lengths = muscle_tendon_lengths(model, dual, scales)
        dl = fwAD.unpack_dual(lengths).tangent
    return torch.zeros_like(lengths) if dl is None else dl


# ------------------------------------------------------------------ one-pass Jacobian path
@dataclass(frozen=True)
class _PlainGeometryIndex:
    """Model-derived constants of the one-pass geometry of unwrapped muscles (cached per
    model, dtype and device)."""

    idx: Tensor  # (M, P) point indices, -1 pad
    real: Tensor  # (M, P) bool: the slot holds a point
    real_flat: Tensor  # (K,) the real slots among the M * P
    slot_point: Tensor  # (M * P,) point of each slot (0 for padding)
    muscle_start: Tensor  # (K,) position in ``points`` of the first point of its muscle
    points: Tensor  # (K,) the points in slot order (the real slots, muscle by muscle)
    point_muscle: Tensor  # (K,) muscle of each of them
    point_pair: Tensor  # (K,) (muscle, body) pair of each point
    n_pairs: int  # number of distinct (muscle, body) pairs
    axis_flat: Tensor  # (A,) the coordinate-driven axes among the J * 6
    axis_joint: Tensor  # (A,)
    axis_rot: Tensor  # (A, 1) bool: rotation axis
    term_flat: Tensor  # (L,) terms ``pair * A + axis``: an axis that moves the pair's body
    term_out: Tensor  # (L,) ... adds to ``muscle * Q + coordinate`` of that axis
    term_all_out: Tensor  # (L + V,) ``term_out`` then ``mov_out``
    loc_matrix: Tensor  # (K, (NB + 1) * 4): x_k = sum over [R_B^T; p_B] rows (unscaled)
    mov_point: Tensor  # (V,) moving entries: point, axis (0-2), coordinate
    mov_axis: Tensor
    mov_coord: Tensor
    mov_slot: Tensor  # (V,) position of the entry's point in ``points``
    mov_out: Tensor  # (V,) ``muscle * Q + coordinate``
    mov_bank: object  # padded spline bank of the entries' spline functions (or None)
    mov_other: tuple  # (entry, function) evaluated one by one


def _plain_geometry_index(model: Model, paths: MusclePaths, dtype, device) -> _PlainGeometryIndex:
    key = ("muscle_plain_geometry", dtype, str(device))
    cached = model._cache.get(key)
    if cached is not None:
        return cached
    from types import SimpleNamespace

    import numpy as np

    from diffbio.kinematics import kinematic_tree
    from diffbio.kinematics._jacobian import _ancestors
    from diffbio.model._functions import PiecewiseCubic

    kw = {"dtype": dtype, "device": device}
    lt = lambda v: torch.tensor(v, dtype=torch.long, device=device)  # noqa: E731
    _, idx = _plain_index(paths, device)
    Q = model.num_coordinates
    coord = kinematic_tree(model, dtype, device).coord.reshape(-1)
    flat = torch.nonzero(coord >= 0).flatten()
    joint = flat // 6
    anc = _ancestors(model, "cpu")[:, joint.cpu()].tolist()  # [body][axis]: axis moves it
    body = paths.body.tolist()
    axis_coord = coord[flat].tolist()
    mov = list(paths.moving)
    order = [(m, int(k)) for m, row in enumerate(idx.tolist()) for k in row if k >= 0]
    # (muscle, body) pairs, and the axes that move a pair's body (ground: none) but not all
    # of the muscle's bodies: an axis moving every point of a path moves it rigidly, which
    # leaves its length unchanged (the terms sum to zero), so those are left out
    pair_id: dict[tuple[int, int], int] = {}
    for m, k in order:
        pair_id.setdefault((m, body[k]), len(pair_id))
    n_ax = flat.numel()
    moves = lambda b: [b >= 0 and anc[b][a] for a in range(n_ax)]  # noqa: E731
    term_pair, term_axis, term_out = [], [], []
    for (m, b), p in pair_id.items():
        others = [moves(b2) for (m2, b2) in pair_id if m2 == m]
        for a, mv_a in enumerate(moves(b)):
            if mv_a and not all(o[a] for o in others):
                term_pair.append(p)
                term_axis.append(a)
                term_out.append(m * Q + axis_coord[a])
    slot = {k: r for r, (_, k) in enumerate(order)}
    spl = [e for e, mv in enumerate(mov) if isinstance(mv[3], PiecewiseCubic)]
    bank = None
    if spl:
        n = max(len(mov[e][3].x) for e in spl)
        knots = np.full((len(spl), n), np.inf)
        coef = np.zeros((len(spl), n, 4))
        for s, e in enumerate(spl):
            f = mov[e][3]
            knots[s, : len(f.x)] = f.x
            coef[s, : len(f.x)] = np.stack([f.y, f.b, f.c, f.d], -1) * f.scale
        bank = SimpleNamespace(
            entries=lt(spl),
            spl_knots=torch.tensor(knots, **kw),
            spl_coef=torch.tensor(coef, **kw),
            spl_last=lt([len(mov[e][3].x) - 1 for e in spl]),
        )
    counts = [sum(1 for m2, _ in order if m2 == m) for m in range(idx.shape[0])]
    first = [sum(counts[:m]) for m in range(idx.shape[0])]
    start = [first[m] for m, _ in order]
    NB1 = model.num_bodies + 1
    pts = lt([k for _, k in order])
    rows = torch.arange(pts.numel(), device=device)
    bcol = (paths.body.to(device)[pts] % NB1) * 4
    loc_matrix = torch.zeros(pts.numel(), NB1 * 4, **kw)
    for j in range(3):
        loc_matrix[rows, bcol + j] = paths.location[pts, j].to(**kw)
    loc_matrix[rows, bcol + 3] = 1.0
    out = _PlainGeometryIndex(
        idx=idx,
        real=idx >= 0,
        points=lt([k for _, k in order]),
        point_muscle=lt([m for m, _ in order]),
        point_pair=lt([pair_id[(m, body[k])] for m, k in order]),
        n_pairs=len(pair_id),
        axis_flat=flat,
        axis_joint=joint,
        axis_rot=((flat % 6) < 3).unsqueeze(-1),
        term_flat=lt([p * n_ax + a for p, a in zip(term_pair, term_axis)]),
        real_flat=torch.nonzero(idx.reshape(-1) >= 0).flatten(),
        slot_point=idx.clamp(min=0).reshape(-1),
        muscle_start=lt(start),
        term_out=lt(term_out),
        term_all_out=lt(term_out + [order[slot[mv[0]]][0] * Q + mv[2] for mv in mov]),
        loc_matrix=loc_matrix,
        mov_point=lt([mv[0] for mv in mov]),
        mov_axis=lt([mv[1] for mv in mov]),
        mov_coord=lt([mv[2] for mv in mov]),
        mov_slot=lt([slot[mv[0]] for mv in mov]),
        mov_out=lt([order[slot[mv[0]]][0] * Q + mv[2] for mv in mov]),
        mov_bank=bank,
        mov_other=tuple((e, mov[e][3]) for e in range(len(mov)) if e not in set(spl)),
    )
    model._cache[key] = out
    return out


def _moving_values(ix: _PlainGeometryIndex, q: Tensor) -> tuple[Tensor, Tensor]:
    """Values and slopes ``(..., V)`` of the moving path points' functions at ``q``."""
    from diffbio.kinematics._tree import _eval_splines

    x = q[..., ix.mov_coord]
    val = torch.zeros_like(x)
    slope = torch.zeros_like(x)
    b = ix.mov_bank
    if b is not None:
        xs = x[..., b.entries]
        val = val.index_copy(-1, b.entries, _eval_splines(b, xs, 0))
        slope = slope.index_copy(-1, b.entries, _eval_splines(b, xs, 1))
    for e, fn in ix.mov_other:
        e_t = torch.tensor([e], device=q.device)
        val = val.index_copy(-1, e_t, fn(x[..., e]).unsqueeze(-1))
        slope = slope.index_copy(-1, e_t, fn(x[..., e], 1).unsqueeze(-1))
    return val, slope


def _cross(a: Tensor, b: Tensor) -> Tensor:
    """``a x b`` over the last axis (elementwise ops: faster than ``linalg.cross`` here)."""
    a0, a1, a2 = a.unbind(-1)
    b0, b1, b2 = b.unbind(-1)
    return torch.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], -1)


def _plain_geometry(
    model: Model, paths: MusclePaths, q: Tensor, scales: Tensor | None, fk=None
) -> tuple[Tensor, Tensor]:
    """Lengths ``(..., M) [m]`` and partial derivatives ``dl/dq (..., M, Q)`` (couplers not
    folded) of muscles without wrap objects at ``q``, from one kinematics pass.

    With ``w_k = u_in - u_out`` at each active point (the unit directions of the segments
    ending and starting there), ``dl/dq = sum_k w_k . dx_k/dq``. A coordinate-driven joint
    axis moves the points of the bodies below it by ``w x (x - o)`` (rotation about ``w``
    through the joint centre ``o``) or ``t`` (translation), so ``w_k . dx_k/dv`` is the dot
    product of ``(x_k x w_k, w_k)`` with the axis twist ``(w, o x w)`` or ``(0, t)``: the
    points are summed per (muscle, body) pair first, then each pair is dotted with the
    twists of the axes that move its body (an axis that moves every body of a muscle moves
    its path rigidly and is skipped: those terms sum to zero), and the products are added
    to the axes' coordinates; no ``(..., K, Q, 3)`` Jacobian is formed. A moving path point
    adds ``w_k . R_B[:, axis] f'(q)`` (scaled).
    ``fk``: ``_forward(model, q, scales, with_axes=True)`` where the caller has it."""
    from diffbio.kinematics import axis_values, kinematic_tree
    from diffbio.kinematics._fk import _forward

    lead = q.shape[:-1] if scales is None else broadcast_shapes(q.shape[:-1], scales.shape[:-2])
    q = q.expand(*lead, q.shape[-1])
    ix = _plain_geometry_index(model, paths, q.dtype, q.device)
    Q = model.num_coordinates
    s_ext = None
    if scales is not None:
        s_ext = torch.cat([scales, torch.ones_like(scales[..., :1, :])], -2).expand(*lead, -1, 3)
    V = ix.mov_point.numel()
    val = slope = None
    if V:
        val, slope = _moving_values(ix, q)
    poses, axes_G = _forward(model, q, scales, with_axes=True) if fk is None else fk
    Rg, pg = poses_with_ground(poses.rotation, poses.translation)
    cols = None
    if V:  # column ``axis`` of the moving points' body rotations: (..., V, 3)
        cols = Rg.transpose(-1, -2)[..., paths.body[ix.mov_point], ix.mov_axis, :]
    Xc = _real_points(paths, ix, Rg, pg, s_ext, val, cols)  # (..., K, 3)
    # segments between consecutive active points, found on the padded (M, P) slots, then
    # evaluated on the K real slots only (muscle by muscle, each point once)
    idx = ix.idx
    M, Pn = idx.shape
    am = point_active(paths, q).index_select(-1, ix.slot_point).unflatten(-1, (M, Pn)) & ix.real
    ar = torch.arange(Pn, device=q.device)
    cm = torch.flip(torch.cummin(torch.flip(torch.where(am, ar, Pn), [-1]), -1).values, [-1])
    nxt = torch.cat([cm[..., 1:], torch.full_like(cm[..., :1], Pn)], -1)
    seg = (am & (nxt < Pn)).flatten(-2).index_select(-1, ix.real_flat)  # (..., K)
    # the next active point of each slot, as a position among the K real slots
    nxt_k = nxt.flatten(-2).index_select(-1, ix.real_flat) + ix.muscle_start
    nxt_k = nxt_k.clamp(max=ix.points.numel() - 1)
    take = nxt_k.unsqueeze(-1).expand(*nxt_k.shape, 3)
    d = torch.where(seg.unsqueeze(-1), torch.gather(Xc, -2, take) - Xc, torch.ones_like(Xc))
    dist = d.norm(dim=-1, keepdim=True)
    segf = seg.to(q.dtype).unsqueeze(-1)
    lengths = torch.zeros(*lead, M, dtype=q.dtype, device=q.device)
    lengths = lengths.index_add(-1, ix.point_muscle, (dist * segf).squeeze(-1))
    u_out = (d / dist) * segf
    w = torch.zeros_like(u_out).scatter_add_(-2, take, u_out) - u_out  # (..., K, 3)
    # per (muscle, body) pair the summed (x x w, w); dotted with the twists of the axes
    # moving the body (times dv/dq) and added to the axes' coordinates: (..., M, Q)
    f = torch.cat([_cross(Xc, w), w], -1)  # (..., K, 6)
    Fp = f.new_zeros(*lead, ix.n_pairs, 6).index_add_(-2, ix.point_pair, f)
    ax = axes_G.flatten(-3, -2).index_select(-2, ix.axis_flat)  # (..., A, 3)
    o = poses.joint_centers.index_select(-2, ix.axis_joint)
    tree = kinematic_tree(model, q.dtype, q.device)
    dv = axis_values(tree, q, order=1).flatten(-2).index_select(-1, ix.axis_flat).unsqueeze(-1)
    xi = torch.cat(
        [
            torch.where(ix.axis_rot, ax * dv, torch.zeros_like(ax)),
            torch.where(ix.axis_rot, _cross(o, ax), ax) * dv,
        ],
        -1,
    )  # (..., A, 6)
    E = (Fp @ xi.transpose(-1, -2)).flatten(-2)  # (..., n_pairs * A)
    terms = E.index_select(-1, ix.term_flat)  # (..., L)
    out_idx = ix.term_out
    if V:  # a moving path point adds w_k . R_B[:, axis] f'(q) (scaled)
        if s_ext is not None:
            slope = slope * s_ext[..., paths.body[ix.mov_point], ix.mov_axis]
        wv = w.index_select(-2, ix.mov_slot)
        terms = torch.cat([terms, (wv * cols).sum(-1) * slope], -1)
        out_idx = ix.term_all_out
    dl = terms.new_zeros(*lead, M * Q).index_add_(-1, out_idx, terms)
    return lengths, dl.reshape(*lead, M, Q)


def _real_points(paths, ix, Rg, pg, s_ext, val, cols) -> Tensor:
    """Ground positions ``(..., K, 3)`` of the points in slot order. Unscaled: one GEMM of
    the constant ``loc_matrix`` with the stacked ``[R^T; p]`` of every body (no per-point
    rotation gather), the moving points' coordinates then corrected along ``cols``."""
    if s_ext is None:
        lead = Rg.shape[:-3]
        NB1 = Rg.shape[-3]
        Ra = torch.cat([Rg.transpose(-1, -2), pg.unsqueeze(-2)], -2).reshape(-1, NB1 * 4, 3)
        n = Ra.shape[0]
        Xc = ix.loc_matrix @ Ra.transpose(0, 1).reshape(NB1 * 4, n * 3)  # (K, N * 3)
        Xc = Xc.reshape(-1, n, 3).transpose(0, 1).reshape(*lead, -1, 3)
        if val is not None:
            shift = val - paths.location[ix.mov_point, ix.mov_axis]
            Xc = Xc.index_add(-2, ix.mov_slot, cols * shift.unsqueeze(-1))
        return Xc
    loc = paths.location.expand(*s_ext.shape[:-2], -1, 3)
    if val is not None:
        flat_k = ix.mov_point * 3 + ix.mov_axis
        loc = loc.reshape(*loc.shape[:-2], -1).index_copy(-1, flat_k, val)
        loc = loc.reshape(*loc.shape[:-1], -1, 3)
    loc = loc * s_ext[..., paths.body, :]
    b = paths.body[ix.points]
    return pg[..., b, :] + (Rg[..., b, :, :] @ loc[..., ix.points, :].unsqueeze(-1)).squeeze(-1)
