"""OpenSim's wrap action codes and the helpers shared by the wrap surfaces (see
:mod:`diffbio.muscles._wrap`)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

NO_WRAP, INSIDE, WRAPPED, MANDATORY = 0, 1, 2, 3
_TWO_PI = 2.0 * math.pi


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


def _unit(v: Tensor) -> Tensor:
    return v / _safe_sqrt((v * v).sum(-1, keepdim=True))
