"""OpenSim scalar functions of one coordinate, evaluated in torch with exact derivatives.

OpenSim's joints (CustomJoint TransformAxis), moving path points and coordinate couplers use
``OpenSim::Function`` objects. Each class here reproduces one of them exactly (same
coefficients, same extrapolation outside the knots) and evaluates the value and its first
and second derivatives, batched over any leading shape and differentiable with autograd.

Supported: ``Constant``, ``LinearFunction``, ``PolynomialFunction``, ``SimmSpline``,
``NaturalCubicSpline`` (OpenSim 4 reads it as a SimmSpline, and so do we),
``PiecewiseLinearFunction`` and ``MultiplierFunction`` (a scale on any of them).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

_TINY = 1e-10  # OpenSim's TINY_NUMBER in SimmSpline / NaturalCubicSpline


@dataclass(frozen=True)
class ScalarFunction:
    """Base class: ``f(x)`` of one variable with ``scale`` (OpenSim's MultiplierFunction)."""

    scale: float = 1.0

    def with_scale(self, factor: float) -> ScalarFunction:
        """The same function multiplied by ``factor`` (composes like nested multipliers)."""
        return _replace(self, scale=self.scale * factor)

    @property
    def is_constant(self) -> bool:
        return False

    def __call__(self, x: Tensor, order: int = 0) -> Tensor:
        """Value (``order=0``), first (1) or second (2) derivative at ``x: (...,)``."""
        return self.scale * self._eval(x, order)

    def _eval(self, x: Tensor, order: int) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def _replace(obj, **changes):
    import dataclasses

    return dataclasses.replace(obj, **changes)


@dataclass(frozen=True)
class Constant(ScalarFunction):
    value: float = 0.0

    @property
    def is_constant(self) -> bool:
        return True

    def _eval(self, x: Tensor, order: int) -> Tensor:
        v = self.value if order == 0 else 0.0
        return torch.full_like(x, v)


@dataclass(frozen=True)
class Linear(ScalarFunction):
    """OpenSim ``LinearFunction``: ``slope * x + intercept``."""

    slope: float = 1.0
    intercept: float = 0.0

    def _eval(self, x: Tensor, order: int) -> Tensor:
        if order == 0:
            return self.slope * x + self.intercept
        if order == 1:
            return torch.full_like(x, self.slope)
        return torch.zeros_like(x)


@dataclass(frozen=True)
class Polynomial(ScalarFunction):
    """OpenSim ``PolynomialFunction``: coefficients from the highest power down."""

    coefficients: tuple[float, ...] = (0.0,)

    def _eval(self, x: Tensor, order: int) -> Tensor:
        c = list(self.coefficients)
        for _ in range(order):
            n = len(c) - 1
            c = [c[i] * (n - i) for i in range(n)] or [0.0]
        out = torch.zeros_like(x)
        for ci in c:
            out = out * x + ci
        return out


@dataclass(frozen=True)
class PiecewiseCubic(ScalarFunction):
    """A cubic spline ``y_i + b_i dx + c_i dx^2 + d_i dx^3`` on ``[x_i, x_{i+1}]`` with linear
    extrapolation by the end slopes, as OpenSim's SimmSpline does.

    Build with :meth:`simm_spline` or :meth:`piecewise_linear`.
    """

    x: tuple[float, ...] = (0.0, 1.0)
    y: tuple[float, ...] = (0.0, 0.0)
    b: tuple[float, ...] = (0.0, 0.0)
    c: tuple[float, ...] = (0.0, 0.0)
    d: tuple[float, ...] = (0.0, 0.0)
    kind: str = "SimmSpline"

    @staticmethod
    def simm_spline(x, y) -> PiecewiseCubic:
        """OpenSim ``SimmSpline``: end third derivatives from divided differences (FMM)."""
        x, y = np.asarray(x, float), np.asarray(y, float)
        b, c, d = _fmm_coefficients(x, y)
        return PiecewiseCubic(x=_t(x), y=_t(y), b=_t(b), c=_t(c), d=_t(d), kind="SimmSpline")

    @staticmethod
    def piecewise_linear(x, y) -> PiecewiseCubic:
        """OpenSim ``PiecewiseLinearFunction`` (linear extrapolation by the end segments)."""
        x, y = np.asarray(x, float), np.asarray(y, float)
        slopes = np.diff(y) / np.maximum(np.diff(x), _TINY)
        b = np.concatenate([slopes, slopes[-1:]])
        z = np.zeros_like(x)
        return PiecewiseCubic(x=_t(x), y=_t(y), b=_t(b), c=_t(z), d=_t(z), kind="Linear")

    @functools.cached_property
    def _tensor_cache(self) -> dict:
        return {}

    def _eval(self, x: Tensor, order: int) -> Tensor:
        key = (x.dtype, x.device)
        tensors = self._tensor_cache.get(key)
        if tensors is None:
            knots = torch.as_tensor(self.x, dtype=x.dtype, device=x.device)
            coef = torch.as_tensor(
                np.stack([self.y, self.b, self.c, self.d], axis=-1), dtype=x.dtype, device=x.device
            )
            tensors = self._tensor_cache[key] = (knots, coef)
        return _eval_cubic(*tensors, x, order)


def _t(a) -> tuple[float, ...]:
    return tuple(float(v) for v in a)


def _eval_cubic(knots: Tensor, coef: Tensor, x: Tensor, order: int) -> Tensor:
    """Evaluate one piecewise cubic (knots ``(n,)``, coef ``(n, 4)``) at ``x (...,)``."""
    n = knots.shape[0]
    i = torch.searchsorted(knots, x.detach().contiguous(), right=True) - 1
    i = i.clamp(0, n - 2)
    below = x < knots[0]
    above = x > knots[-1]
    xi = knots[i]
    y0, b0, c0, d0 = coef[i].unbind(-1)
    dx = x - xi
    if order == 0:
        inside = y0 + dx * (b0 + dx * (c0 + dx * d0))
        lo = coef[0, 0] + (x - knots[0]) * coef[0, 1]
        hi = coef[-1, 0] + (x - knots[-1]) * coef[-1, 1]
    elif order == 1:
        inside = b0 + dx * (2.0 * c0 + 3.0 * dx * d0)
        lo = torch.zeros_like(x) + coef[0, 1]
        hi = torch.zeros_like(x) + coef[-1, 1]
    else:
        inside = 2.0 * c0 + 6.0 * dx * d0
        lo = torch.zeros_like(x)
        hi = torch.zeros_like(x)
    return torch.where(below, lo, torch.where(above, hi, inside))


def _fmm_coefficients(x: np.ndarray, y: np.ndarray):
    """Coefficients of OpenSim's SimmSpline (Forsythe, Malcolm & Moler's ``spline``)."""
    n = len(x)
    if n < 2:
        raise ValueError("a spline needs at least 2 points")
    b, c, d = np.zeros(n), np.zeros(n), np.zeros(n)
    if n == 2:
        t = max(_TINY, x[1] - x[0])
        b[:] = (y[1] - y[0]) / t
        return b, c, d
    nm1, nm2 = n - 1, n - 2
    d[0] = max(_TINY, x[1] - x[0])
    c[1] = (y[1] - y[0]) / d[0]
    for i in range(1, nm1):
        d[i] = max(_TINY, x[i + 1] - x[i])
        b[i] = 2.0 * (d[i - 1] + d[i])
        c[i + 1] = (y[i + 1] - y[i]) / d[i]
        c[i] = c[i + 1] - c[i]
    b[0] = -d[0]
    b[nm1] = -d[nm2]
    c[0] = 0.0
    c[nm1] = 0.0
    if n > 3:
        d31 = max(_TINY, x[3] - x[1])
        d20 = max(_TINY, x[2] - x[0])
        d1 = max(_TINY, x[nm1] - x[n - 3])
        d2 = max(_TINY, x[nm2] - x[n - 4])
        d30 = max(_TINY, x[3] - x[0])
        d3 = max(_TINY, x[nm1] - x[n - 4])
        c[0] = c[2] / d31 - c[1] / d20
        c[nm1] = c[nm2] / d1 - c[n - 3] / d2
        c[0] = c[0] * d[0] * d[0] / d30
        c[nm1] = -c[nm1] * d[nm2] * d[nm2] / d3
    for i in range(1, n):
        t = d[i - 1] / b[i - 1]
        b[i] -= t * d[i - 1]
        c[i] -= t * c[i - 1]
    c[nm1] /= b[nm1]
    for j in range(nm1):
        i = nm2 - j
        c[i] = (c[i] - d[i] * c[i + 1]) / b[i]
    b[nm1] = (y[nm1] - y[nm2]) / d[nm2] + d[nm2] * (c[nm2] + 2.0 * c[nm1])
    for i in range(nm1):
        b[i] = (y[i + 1] - y[i]) / d[i] - d[i] * (c[i + 1] + 2.0 * c[i])
        d[i] = (c[i + 1] - c[i]) / d[i]
        c[i] *= 3.0
    c[nm1] *= 3.0
    d[nm1] = d[nm2]
    return b, c, d
