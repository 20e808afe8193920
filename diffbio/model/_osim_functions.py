"""OpenSim Function elements (Constant, LinearFunction, splines, ...) of a ``.osim`` file
as :class:`~diffbio.model._functions.ScalarFunction` objects."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from diffbio._errors import ModelError
from diffbio.model._functions import (
    Constant,
    Linear,
    PiecewiseCubic,
    Polynomial,
    ScalarFunction,
)
from diffbio.model._osim_xml import _Ctx, _floats, _text

_FUNCTION_TAGS = {
    "Constant",
    "LinearFunction",
    "PolynomialFunction",
    "SimmSpline",
    "NaturalCubicSpline",
    "PiecewiseLinearFunction",
    "MultiplierFunction",
    "GCVSpline",
}


# ------------------------------------------------------------------------------- functions
def parse_function(el: ET.Element, ctx: _Ctx) -> ScalarFunction:
    """Parse an OpenSim Function element (the element itself, e.g. ``<SimmSpline>``)."""
    tag = el.tag
    if tag == "Constant":
        return Constant(value=float(_text(el, "value", "0")))
    if tag == "LinearFunction":
        c = _floats(_text(el, "coefficients"), 2, ctx, "LinearFunction coefficients")
        return Linear(slope=c[0], intercept=c[1])
    if tag == "PolynomialFunction":
        c = _floats(_text(el, "coefficients"), None, ctx, "PolynomialFunction coefficients")
        return Polynomial(coefficients=c)
    if tag in ("SimmSpline", "NaturalCubicSpline", "PiecewiseLinearFunction", "GCVSpline"):
        x = _floats(_text(el, "x"), None, ctx, f"{tag} x")
        y = _floats(_text(el, "y"), len(x), ctx, f"{tag} y")
        if len(x) < 2:
            raise ctx.error(f"{tag} needs at least 2 points")
        if any(b <= a for a, b in zip(x, x[1:])):
            raise ctx.error(f"{tag} x values must increase strictly: {x}")
        if tag == "PiecewiseLinearFunction":
            return PiecewiseCubic.piecewise_linear(x, y)
        if tag == "GCVSpline":
            raise ModelError(
                f"{ctx.path}: GCVSpline functions in joints are not supported; "
                "refit them as SimmSpline"
            )
        # OpenSim 4 registers NaturalCubicSpline as an alias of SimmSpline: same curve.
        return PiecewiseCubic.simm_spline(x, y)
    if tag == "MultiplierFunction":
        scale = float(_text(el, "scale", "1"))
        inner = _function_child(el.find("function"), ctx)
        if inner is None:
            raise ctx.error("MultiplierFunction without a function")
        return inner.with_scale(scale)
    raise ModelError(f"{ctx.path}: unsupported function type <{tag}>")


def _function_child(container: ET.Element | None, ctx: _Ctx) -> ScalarFunction | None:
    """The function inside ``container`` (a ``<function>``-like wrapper) or None."""
    if container is None:
        return None
    for child in container:
        if child.tag in _FUNCTION_TAGS:
            return parse_function(child, ctx)
        if child.tag not in ("function",):
            raise ModelError(f"{ctx.path}: unsupported function type <{child.tag}>")
    return None


def _axis_function(axis_el: ET.Element, ctx: _Ctx) -> tuple[ScalarFunction | None, str]:
    """The axis' function and the tag it was written with (decides the motion type)."""
    for child in axis_el:
        if child.tag in _FUNCTION_TAGS:
            return parse_function(child, ctx), child.tag
        if child.tag == "function":
            inner = next((c for c in child if c.tag in _FUNCTION_TAGS), None)
            return _function_child(child, ctx), inner.tag if inner is not None else ""
    return None, "LinearFunction"
