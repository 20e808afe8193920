"""Muscle paths read from an OpenSim ForceSet: path points, conditional and moving points,
and the wrap objects they refer to.

:func:`muscle_paths` compiles a model's muscle geometry once per dtype and device into a
:class:`MusclePaths` (cached on the model). Point kinds, as OpenSim 4.6 defines them:

* ``PathPoint``: fixed ``location`` [m] in its parent frame;
* ``ConditionalPathPoint``: active iff ``range[0] - 1e-5 <= q[coordinate] <= range[1] + 1e-5``;
* ``MovingPathPoint``: ``x/y/z_location`` functions of ``socket_x/y/z_coordinate``
  (evaluated at 0 where a socket is empty).

Scaling (OpenSim's ScaleTool): point locations, moving-point functions and wrap-object
translations scale with their body's factors; a cylinder's radius by the mean of the scaled
lengths of its X and Y axes and its length by that of its Z axis, an ellipsoid's semi-axes
by those of its own axes, a sphere's radius by the mean of the three factors, a torus's
radii by the mean of the scaled lengths of its X and Y axes.
"""

from __future__ import annotations

import enum
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from diffbio._errors import ModelError
from diffbio.model import Model
from diffbio.model._functions import Constant, ScalarFunction
from diffbio.model._osim import (
    _Ctx,
    _function_child,
    _register_offset_frame,
    _resolve_frame,
    muscle_names_from_force_set,
    rotation_xyz,
)

_COND_TOL = 1e-5  # OpenSim's ConditionalPathPoint::isActive tolerance


class WrapKind(enum.Enum):
    """OpenSim wrap-object classes."""

    CYLINDER = "WrapCylinder"
    SPHERE = "WrapSphere"
    ELLIPSOID = "WrapEllipsoid"
    TORUS = "WrapTorus"


@dataclass(frozen=True)
class WrapObject:
    """A wrap surface fixed on ``body`` (index, -1 for ground) at ``rotation`` (3x3, columns
    are the wrap axes in the body frame) and ``translation`` [m]. ``dims``: cylinder
    ``(radius, length)``, sphere ``(radius,)``, ellipsoid ``(a, b, c)`` semi-axes, torus
    ``(inner_radius, outer_radius)``. ``quadrant``: ``(axis, sign)`` with sign 0 for all."""

    name: str
    kind: WrapKind
    body: int
    rotation: tuple[tuple[float, float, float], ...]
    translation: tuple[float, float, float]
    dims: tuple[float, ...]
    quadrant: tuple[int, int]
    active: bool = True


@dataclass(frozen=True)
class PathWrapSpec:
    """A muscle's ``PathWrap``: the wrap object index and its 0-based point range
    ``(start, end)`` into the muscle's PathPointSet (OpenSim's 1-based ``range``; -1 = ends)."""

    wrap: int
    start: int
    end: int


@dataclass(frozen=True)
class MusclePath:
    """One muscle's path (indices into :attr:`MusclePaths` point arrays)."""

    name: str
    points: tuple[int, ...]
    wraps: tuple[PathWrapSpec, ...] = ()


@dataclass(frozen=True)
class MusclePaths:
    """A model's compiled muscle geometry (see the module docstring).

    Point arrays run over all ``K`` points of all muscles: ``body (K,)`` (-1 ground),
    ``location (K, 3) [m]`` in the body frame, ``cond_coord (K,)`` (-1: always active),
    ``cond_range (K, 2)``; moving points are listed in ``moving`` as
    ``(point, axis, coordinate or -1, function)``.
    """

    muscles: tuple[MusclePath, ...]
    body: Tensor
    location: Tensor
    cond_coord: Tensor
    cond_range: Tensor
    moving: tuple[tuple[int, int, int, ScalarFunction], ...]
    wrap_objects: tuple[WrapObject, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.muscles)

    @property
    def num_muscles(self) -> int:
        return len(self.muscles)

    @property
    def has_wrapping(self) -> bool:
        return any(m.wraps for m in self.muscles)


# ----------------------------------------------------------------------------- parsing
def _frames_from_source(model: Model) -> dict:
    """OpenSim frame names -> (body name, Offset), re-read from ``model.source``."""
    from diffbio.model import GROUND, Offset

    frames: dict = {GROUND: (GROUND, Offset()), "/ground": (GROUND, Offset())}
    for b in model.bodies:
        frames[b.name] = (b.name, Offset())
        frames["/bodyset/" + b.name] = (b.name, Offset())
    if model.source is None or not model.source.exists():
        return frames
    root = ET.parse(model.source).getroot()
    model_el = root if root.tag == "Model" else root.find("Model")
    ctx = _Ctx(model.source)
    holders = [model_el, *model_el.iter("Body")]
    for holder in holders:
        comps = holder.find("components")
        if comps is not None:
            for fr in comps.findall("PhysicalOffsetFrame"):
                _register_offset_frame(fr, frames, ctx, owner_path=None)
    return frames


def _wrap_objects_from_source(model: Model) -> list[tuple[str, ET.Element]]:
    """``(body name, wrap element)`` for every wrap object in the model file."""
    from diffbio.model import GROUND

    if model.source is None or not model.source.exists():
        return []
    root = ET.parse(model.source).getroot()
    model_el = root if root.tag == "Model" else root.find("Model")
    out = []
    holders = [(GROUND, model_el.find("Ground"))] + [
        (b.get("name"), b) for b in model_el.iter("Body")
    ]
    for bname, holder in holders:
        if holder is None:
            continue
        ws = holder.find("WrapObjectSet")
        objs = ws.find("objects") if ws is not None else None
        for w in objs if objs is not None else []:
            out.append((GROUND if bname == "ground" else bname, w))
    return out


def _floats(text: str | None, default: str) -> tuple[float, ...]:
    return tuple(float(v) for v in (text or default).split())


_QUADRANTS = {
    "all": (0, 0),
    "x": (0, 1),
    "-x": (0, -1),
    "y": (1, 1),
    "-y": (1, -1),
    "z": (2, 1),
    "-z": (2, -1),
}


def _parse_wrap(bname: str, w: ET.Element, model: Model) -> WrapObject:
    name = w.get("name")
    try:
        kind = WrapKind(w.tag)
    except ValueError:
        raise ModelError(
            f"{model.source}: wrap object {name!r} has unsupported type <{w.tag}>"
        ) from None
    rot = rotation_xyz(_floats(w.findtext("xyz_body_rotation"), "0 0 0"))
    trans = _floats(w.findtext("translation"), "0 0 0")
    quad = (w.findtext("quadrant") or "all").strip().lower()
    if quad not in _QUADRANTS:
        raise ModelError(f"{model.source}: wrap object {name!r}: unknown quadrant {quad!r}")
    if kind is WrapKind.CYLINDER:
        dims = (float(w.findtext("radius") or 1.0), float(w.findtext("length") or 1.0))
    elif kind is WrapKind.SPHERE:
        dims = (float(w.findtext("radius") or 1.0),)
    elif kind is WrapKind.ELLIPSOID:
        dims = _floats(w.findtext("dimensions"), "1 1 1")
    else:
        dims = (float(w.findtext("inner_radius") or 0.01), float(w.findtext("outer_radius") or 0.1))
    active = (w.findtext("active") or "true").strip().lower() in ("true", "1")
    return WrapObject(
        name=name,
        kind=kind,
        body=model.body_index(bname),
        rotation=tuple(tuple(float(v) for v in row) for row in rot),
        translation=tuple(float(v) for v in trans),  # type: ignore[arg-type]
        dims=tuple(float(v) for v in dims),
        quadrant=_QUADRANTS[quad],
        active=active,
    )


def _coord_index(model: Model, ref: str | None, what: str) -> int:
    if not ref:
        return -1
    name = ref.strip().rstrip("/").split("/")[-1]
    if name not in model.coordinate_names:
        raise ModelError(f"{model.source}: {what} refers to unknown coordinate {ref!r}")
    return model.coordinate_index(name)


def _compile(model: Model) -> dict:
    if not model.force_set_xml:
        return {"muscles": [], "points": [], "moving": [], "wraps": []}
    names = set(muscle_names_from_force_set(model.force_set_xml))
    root = ET.fromstring(model.force_set_xml)
    frames = _frames_from_source(model)
    ctx = _Ctx(model.source)
    wrap_objs = [_parse_wrap(b, w, model) for b, w in _wrap_objects_from_source(model)]
    wrap_index = {w.name: i for i, w in enumerate(wrap_objs)}
    muscles, points, moving = [], [], []
    for f in root.find("objects"):
        if f.get("name") not in names:
            continue
        gp = f.find("GeometryPath")
        pps = gp.find("PathPointSet/objects")
        idx = []
        for p in pps if pps is not None else []:
            pname = f"{f.get('name')}/{p.get('name')}"
            ref = p.findtext("socket_parent_frame") or p.findtext("body")
            if ref is None:
                raise ModelError(f"{model.source}: path point {pname} has no parent frame")
            bname, off = _resolve_frame(ref, frames, ctx, f"path point {pname}")
            R, t = np.array(off.rotation), np.array(off.translation)
            loc = np.array(_floats(p.findtext("location"), "0 0 0"))
            cond = (-1, 0.0, 0.0)
            if p.tag == "ConditionalPathPoint":
                ref_c = p.findtext("socket_coordinate") or p.findtext("coordinate")
                rng = _floats(p.findtext("range"), "0 0")
                cond = (_coord_index(model, ref_c, f"path point {pname}"), rng[0], rng[1])
            elif p.tag == "MovingPathPoint":
                loc = np.zeros(3)
                for ax, key in enumerate("xyz"):
                    fn = _function_child(p.find(f"{key}_location"), ctx) or Constant(value=0.0)
                    ci = _coord_index(
                        model,
                        p.findtext(f"socket_{key}_coordinate") or p.findtext(f"{key}_coordinate"),
                        f"path point {pname}",
                    )
                    if ci < 0:
                        loc[ax] = float(fn(torch.zeros(1, dtype=torch.float64))[0])
                    else:
                        moving.append((len(points), ax, ci, fn))
                if not np.allclose(R, np.eye(3)):
                    raise ModelError(
                        f"{model.source}: moving path point {pname} on a rotated offset frame "
                        "is not supported"
                    )
            elif p.tag != "PathPoint":
                raise ModelError(
                    f"{model.source}: path point {pname} has unsupported type <{p.tag}>"
                )
            idx.append(len(points))
            points.append((model.body_index(bname), t + R @ loc, cond))
        if len(idx) < 2:
            raise ModelError(f"{model.source}: muscle {f.get('name')} has fewer than 2 path points")
        wraps = []
        pws = gp.find("PathWrapSet/objects")
        for pw in pws if pws is not None else []:
            wname = (pw.findtext("wrap_object") or "").strip()
            if wname not in wrap_index:
                raise ModelError(
                    f"{model.source}: muscle {f.get('name')} wraps over unknown object {wname!r}"
                )
            rng = [int(float(v)) for v in (pw.findtext("range") or "-1 -1").split()]
            start = rng[0] - 1 if rng[0] >= 1 else 0
            end = rng[1] - 1 if rng[1] >= 1 else len(idx) - 1
            wraps.append(PathWrapSpec(wrap_index[wname], start, min(end, len(idx) - 1)))
        muscles.append(MusclePath(f.get("name"), tuple(idx), tuple(wraps)))
    return {"muscles": muscles, "points": points, "moving": moving, "wraps": wrap_objs}


def muscle_paths(model: Model, dtype=torch.float64, device=None) -> MusclePaths:
    """The compiled muscle geometry of ``model`` (cached per dtype and device)."""
    key = ("muscle_paths", dtype, str(device))
    cached = model._cache.get(key)
    if cached is not None:
        return cached
    raw = model._cache.get("muscle_paths_raw")
    if raw is None:
        raw = _compile(model)
        model._cache["muscle_paths_raw"] = raw
    pts = raw["points"]
    kw = {"dtype": dtype, "device": device}
    out = MusclePaths(
        muscles=tuple(raw["muscles"]),
        body=torch.tensor([p[0] for p in pts], dtype=torch.long, device=device),
        location=torch.tensor(np.array([p[1] for p in pts]).reshape(-1, 3), **kw),
        cond_coord=torch.tensor([p[2][0] for p in pts], dtype=torch.long, device=device),
        cond_range=torch.tensor([[p[2][1], p[2][2]] for p in pts], **kw).reshape(-1, 2),
        moving=tuple(raw["moving"]),
        wrap_objects=tuple(raw["wraps"]),
    )
    model._cache[key] = out
    return out


# ----------------------------------------------------------------------------- geometry
def point_locations(paths: MusclePaths, q: Tensor, scales: Tensor | None = None) -> Tensor:
    """Every path point in its body frame ``(..., K, 3) [m]`` (moving points evaluated,
    locations scaled with their body)."""
    loc = paths.location.expand(*q.shape[:-1], -1, 3)
    if paths.moving:
        loc = loc.clone()
        for k, ax, ci, fn in paths.moving:
            loc[..., k, ax] = fn(q[..., ci])
    if scales is not None:
        s = _scales_with_ground(scales)
        loc = loc * s[..., paths.body, :]
    return loc


def point_active(paths: MusclePaths, q: Tensor) -> Tensor:
    """``(..., K)`` bool: which points are active (conditional points by their range)."""
    ci = paths.cond_coord.clamp(min=0)
    val = q[..., ci]
    inside = (val >= paths.cond_range[:, 0] - _COND_TOL) & (
        val <= paths.cond_range[:, 1] + _COND_TOL
    )
    return inside | (paths.cond_coord < 0)


def _scales_with_ground(scales: Tensor) -> Tensor:
    return torch.cat([scales, torch.ones_like(scales[..., :1, :])], -2)


def poses_with_ground(rotation: Tensor, translation: Tensor) -> tuple[Tensor, Tensor]:
    """Body poses with ground appended as index ``-1`` (i.e. the last body)."""
    eye = torch.eye(3, dtype=rotation.dtype, device=rotation.device).expand(
        *rotation.shape[:-3], 1, 3, 3
    )
    zero = torch.zeros_like(translation[..., :1, :])
    return torch.cat([rotation, eye], -3), torch.cat([translation, zero], -2)
