"""The model's kinematic tree as tensors, and batched evaluation of every joint axis.

:func:`kinematic_tree` compiles a :class:`~diffbio.model.Model` once per dtype and device
(cached on the model) into index and offset tensors; :func:`axis_values` evaluates the six
transform-axis functions of every joint, with their first and second derivatives with
respect to the driving coordinate, in one vectorized pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from diffbio.model import Constant, Linear, Model, PiecewiseCubic


@dataclass(frozen=True)
class KinematicTree:
    """Tensors describing the joint tree (J joints in parent-before-child order).

    ``parent``/``child``: ``(J,)`` body indices (``-1`` = ground); ``R_pF, t_pF``: joint frame
    F in the parent body ``(J, 3, 3), (J, 3) [m]``; ``R_cM, t_cM``: joint frame M in the child
    body; ``axes``: ``(J, 6, 3)`` unit axes; ``coord``: ``(J, 6)`` index of the coordinate that
    drives each axis (``-1`` for constant axes); ``scaled_translation``: ``(J, 3)`` True where
    a translation axis is driven by a coordinate (scaled by the parent's scale factors, as
    OpenSim's ScaleTool does)."""

    parent: Tensor
    child: Tensor
    R_pF: Tensor
    t_pF: Tensor
    R_cM: Tensor
    t_cM: Tensor
    axes: Tensor
    coord: Tensor
    scaled_translation: Tensor
    bank: _FunctionBank


@dataclass(frozen=True)
class _FunctionBank:
    """All ``J*6`` axis functions grouped by kind for vectorized evaluation."""

    n: int
    const_idx: Tensor
    const_val: Tensor
    lin_idx: Tensor
    lin_coord: Tensor
    lin_slope: Tensor
    lin_icpt: Tensor
    spl_idx: Tensor
    spl_coord: Tensor
    spl_knots: Tensor  # (S, K) padded with +inf
    spl_coef: Tensor  # (S, K, 4) y, b, c, d
    spl_last: Tensor  # (S,) index of the last knot
    other: tuple  # (flat index, coordinate index, ScalarFunction) evaluated one by one


def kinematic_tree(model: Model, dtype=torch.float64, device=None) -> KinematicTree:
    """The compiled tree of ``model`` for ``dtype``/``device`` (cached)."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    key = ("tree", dtype, device)
    tree = model._cache.get(key)
    if tree is None:
        tree = _compile(model, dtype, device)
        model._cache[key] = tree
    return tree


def _compile(model: Model, dtype, device) -> KinematicTree:
    J = len(model.joints)
    kw = {"dtype": dtype, "device": device}
    parent = [model.body_index(j.parent_body) for j in model.joints]
    child = [model.body_index(j.child_body) for j in model.joints]
    R_pF = [j.parent_offset.rotation for j in model.joints]
    t_pF = [j.parent_offset.translation for j in model.joints]
    R_cM = [j.child_offset.rotation for j in model.joints]
    t_cM = [j.child_offset.translation for j in model.joints]
    axes = [[a.axis for a in j.axes] for j in model.joints]
    coord = [
        [model.coordinate_index(a.coordinate) if a.coordinate else -1 for a in j.axes]
        for j in model.joints
    ]
    scaled = [[True for _ in j.axes[3:]] for j in model.joints]

    consts, lins, spls, others = [], [], [], []
    for ji, j in enumerate(model.joints):
        for k, a in enumerate(j.axes):
            flat = ji * 6 + k
            f = a.function
            ci = coord[ji][k]
            if ci < 0 or isinstance(f, Constant):
                val = f(torch.zeros(1, dtype=torch.float64))[0].item()
                consts.append((flat, val))
            elif isinstance(f, Linear):
                lins.append((flat, ci, f.slope * f.scale, f.intercept * f.scale))
            elif isinstance(f, PiecewiseCubic):
                spls.append((flat, ci, f))
            else:
                others.append((flat, ci, f))
    itensor = lambda v: torch.tensor(v, dtype=torch.long, device=device)  # noqa: E731
    K = max([len(f.x) for _, _, f in spls], default=2)
    knots = np.full((len(spls), K), np.inf)
    coef = np.zeros((len(spls), K, 4))
    last = []
    for s, (_, _, f) in enumerate(spls):
        n = len(f.x)
        knots[s, :n] = f.x
        coef[s, :n] = np.stack([f.y, f.b, f.c, f.d], -1) * f.scale
        last.append(n - 1)
    bank = _FunctionBank(
        n=J * 6,
        const_idx=itensor([c[0] for c in consts]),
        const_val=torch.tensor([c[1] for c in consts], **kw),
        lin_idx=itensor([c[0] for c in lins]),
        lin_coord=itensor([c[1] for c in lins]),
        lin_slope=torch.tensor([c[2] for c in lins], **kw),
        lin_icpt=torch.tensor([c[3] for c in lins], **kw),
        spl_idx=itensor([c[0] for c in spls]),
        spl_coord=itensor([c[1] for c in spls]),
        spl_knots=torch.tensor(knots, **kw),
        spl_coef=torch.tensor(coef, **kw),
        spl_last=itensor(last),
        other=tuple(others),
    )
    return KinematicTree(
        parent=itensor(parent),
        child=itensor(child),
        R_pF=torch.tensor(R_pF, **kw).reshape(J, 3, 3),
        t_pF=torch.tensor(t_pF, **kw).reshape(J, 3),
        R_cM=torch.tensor(R_cM, **kw).reshape(J, 3, 3),
        t_cM=torch.tensor(t_cM, **kw).reshape(J, 3),
        axes=torch.tensor(axes, **kw).reshape(J, 6, 3),
        coord=itensor(coord).reshape(J, 6),
        scaled_translation=torch.tensor(scaled, dtype=torch.bool, device=device).reshape(J, 3),
        bank=bank,
    )


def axis_values(tree: KinematicTree, q: Tensor, order: int = 0) -> Tensor:
    """Values (or ``order``-th derivatives w.r.t. the driving coordinate) of every joint axis.

    ``q: (..., Q) [rad or m]`` -> ``(..., J, 6)``: rotation angles [rad] in columns 0-2 and
    translations [m] (unscaled) in columns 3-5."""
    b = tree.bank
    lead = q.shape[:-1]
    parts, index = [], []
    if b.const_idx.numel():
        v = b.const_val if order == 0 else torch.zeros_like(b.const_val)
        parts.append(v.expand(*lead, -1))
        index.append(b.const_idx)
    if b.lin_idx.numel():
        x = q[..., b.lin_coord]
        if order == 0:
            parts.append(x * b.lin_slope + b.lin_icpt)
        elif order == 1:
            parts.append(torch.zeros_like(x) + b.lin_slope)
        else:
            parts.append(torch.zeros_like(x))
        index.append(b.lin_idx)
    if b.spl_idx.numel():
        parts.append(_eval_splines(b, q[..., b.spl_coord], order))
        index.append(b.spl_idx)
    for flat, ci, f in b.other:
        parts.append(f(q[..., ci], order).unsqueeze(-1))
        index.append(torch.tensor([flat], device=q.device))
    values = torch.cat(parts, -1)
    perm = torch.empty(b.n, dtype=torch.long, device=q.device)
    perm[torch.cat(index)] = torch.arange(b.n, device=q.device)
    return values[..., perm].reshape(*lead, b.n // 6, 6)


def _eval_splines(b: _FunctionBank, x: Tensor, order: int) -> Tensor:
    """Evaluate S padded piecewise cubics at ``x (..., S)``."""
    lead = x.shape[:-1]
    S = x.shape[-1]
    xs = x.reshape(math.prod(lead), S).transpose(0, 1).contiguous()  # (S, N)
    i = torch.searchsorted(b.spl_knots, xs.detach(), right=True) - 1
    i = torch.minimum(i.clamp_min(0), (b.spl_last - 1).unsqueeze(-1))
    xi = torch.gather(b.spl_knots, 1, i)
    c = torch.gather(b.spl_coef, 1, i.unsqueeze(-1).expand(-1, -1, 4))
    y0, b0, c0, d0 = c.unbind(-1)
    dx = xs - xi
    first_x = b.spl_knots[:, :1]
    last_x = torch.gather(b.spl_knots, 1, b.spl_last.unsqueeze(-1))
    first = b.spl_coef[:, 0]
    last = torch.gather(b.spl_coef, 1, b.spl_last.view(-1, 1, 1).expand(-1, 1, 4))[:, 0]
    if order == 0:
        inside = y0 + dx * (b0 + dx * (c0 + dx * d0))
        lo = first[:, :1] + (xs - first_x) * first[:, 1:2]
        hi = last[:, :1] + (xs - last_x) * last[:, 1:2]
    elif order == 1:
        inside = b0 + dx * (2.0 * c0 + 3.0 * dx * d0)
        lo = torch.zeros_like(xs) + first[:, 1:2]
        hi = torch.zeros_like(xs) + last[:, 1:2]
    else:
        inside = 2.0 * c0 + 6.0 * dx * d0
        lo = torch.zeros_like(xs)
        hi = torch.zeros_like(xs)
    out = torch.where(xs < first_x, lo, torch.where(xs > last_x, hi, inside))
    return out.transpose(0, 1).reshape(*lead, S)
