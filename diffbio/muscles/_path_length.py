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

import torch
from torch import Tensor
from torch.autograd import forward_ad as fwAD

from diffbio._errors import ShapeError
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
    lead = (
        q.shape[:-1] if scales is None else torch.broadcast_shapes(q.shape[:-1], scales.shape[:-2])
    )
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
    if all(not m.wraps for m in paths.muscles) and bool((paths.body >= 0).all()):
        return _plain_moment_arms(model, paths, q, scales)
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


def _plain_moment_arms(model: Model, paths, q: Tensor, scales: Tensor | None) -> Tensor:
    """``-dl/dq`` of paths without wrap objects from the exact Jacobians of their points:
    ``dl/dq = sum over segments u . (dX_next/dq - dX/dq)``, one kinematics pass instead of
    one forward-mode pass per coordinate. Same conventions as :func:`moment_arms`."""
    from diffbio.kinematics import fold_couplers, point_jacobian

    lead = (
        q.shape[:-1] if scales is None else torch.broadcast_shapes(q.shape[:-1], scales.shape[:-2])
    )
    q = q.expand(*lead, q.shape[-1])
    q = _coupled(model, q)
    loc = point_locations(paths, q, scales)
    X, J = point_jacobian(model, q, paths.body, loc, scales)
    if paths.moving:
        # moving points: their location changes with a coordinate, in the body frame
        dloc = torch.zeros(*loc.shape, q.shape[-1], dtype=q.dtype, device=q.device)
        for k, ax, ci, fn in paths.moving:
            slope = fn(q[..., ci], 1)
            if scales is not None:
                slope = slope * scales[..., paths.body[k], ax]
            dloc[..., k, ax, ci] = dloc[..., k, ax, ci] + slope
        R = forward_kinematics(model, q, scales).rotation[..., paths.body, :, :]
        J = J + R @ dloc
    J = fold_couplers(model, q, J)
    key = ("muscle_plain_index", str(q.device))
    if key not in model._cache:
        model._cache[key] = _plain_index(paths, q.device)
    _, idx = model._cache[key]
    act = point_active(paths, q)
    P = idx.shape[-1]
    am = act[..., idx.clamp(min=0)] & (idx >= 0)
    ar = torch.arange(P, device=q.device)
    cm = torch.flip(torch.cummin(torch.flip(torch.where(am, ar, P), [-1]), -1).values, [-1])
    nxt = torch.cat([cm[..., 1:], torch.full_like(cm[..., :1], P)], -1)
    seg = am & (nxt < P)
    safe = idx.clamp(min=0)
    Xm, Jm = X[..., safe, :], J[..., safe, :, :]  # (..., M, P, 3[, Q])
    take = nxt.clamp(max=P - 1)
    Xn = torch.gather(Xm, -2, take.unsqueeze(-1).expand(*take.shape, 3))
    Jn = torch.gather(Jm, -3, take[..., None, None].expand(*take.shape, *Jm.shape[-2:]))
    d = torch.where(seg.unsqueeze(-1), Xn - Xm, torch.ones_like(Xm))
    u = d / d.norm(dim=-1, keepdim=True)
    dl = ((u.unsqueeze(-1) * (Jn - Jm)).sum(-2) * seg.unsqueeze(-1)).sum(-2)  # (..., M, Q)
    r = -dl
    if model.couplers:
        cols = list(r.unbind(-1))
        for k in model.couplers:
            i, dcol = model.coordinate_index(k.independent), model.coordinate_index(k.dependent)
            cols[dcol] = cols[i] / k.function(q[..., i], 1).unsqueeze(-1)
        r = torch.stack(cols, -1)
    return r


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
