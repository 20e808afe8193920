"""Read OpenSim ``.osim`` models (format 30000 and 40000+) by parsing the XML.

No OpenSim installation is needed at run time. Every joint type is converted to OpenSim's
CustomJoint form (see :mod:`diffbio.model._model`), with the coordinate motion types that
OpenSim itself assigns.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from diffbio._errors import FileFormatError, ModelError
from diffbio.model._functions import (
    Constant,
    Linear,
    PiecewiseCubic,
    Polynomial,
    ScalarFunction,
)
from diffbio.model._model import (
    GROUND,
    Body,
    ContactSphere,
    Coordinate,
    CoordinateCoupler,
    CoordinateType,
    Joint,
    JointType,
    Marker,
    Model,
    Offset,
    TransformAxis,
)

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
_JOINT_TAGS = {t.value: t for t in JointType}
_KNOWN_UNSUPPORTED_JOINTS = {"EllipsoidJoint", "ScapulothoracicJoint", "ConstantCurvatureJoint"}


# ------------------------------------------------------------------------------- helpers
class _Ctx:
    def __init__(self, path: Path | None):
        self.path = path

    def error(self, message: str) -> FileFormatError:
        return FileFormatError(self.path, message)


def _text(el: ET.Element | None, tag: str, default: str | None = None) -> str | None:
    if el is None:
        return default
    child = el.find(tag)
    if child is None or child.text is None:
        return default
    return child.text.strip()


def _floats(text: str | None, n: int | None, ctx: _Ctx, what: str) -> tuple[float, ...]:
    if text is None:
        raise ctx.error(f"missing {what}")
    try:
        vals = tuple(float(v) for v in text.replace(",", " ").split())
    except ValueError:
        raise ctx.error(f"{what}: expected numbers, got {text!r}") from None
    if n is not None and len(vals) != n:
        raise ctx.error(f"{what}: expected {n} numbers, got {len(vals)}")
    return vals


def _bool(text: str | None, default: bool = False) -> bool:
    if text is None or text == "":
        return default
    return text.strip().lower() in ("true", "1", "yes")


def rotation_xyz(angles) -> np.ndarray:
    """Body-fixed X-Y-Z rotation (OpenSim's ``orientation`` of frames): Rx Ry Rz."""
    rx, ry, rz = angles
    cx, sx, cy, sy, cz, sz = (
        math.cos(rx),
        math.sin(rx),
        math.cos(ry),
        math.sin(ry),
        math.cos(rz),
        math.sin(rz),
    )
    x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return x @ y @ z


def _offset(translation, orientation) -> Offset:
    r = rotation_xyz(orientation)
    return Offset(
        translation=tuple(float(v) for v in translation),
        rotation=tuple(tuple(float(v) for v in row) for row in r),
    )


def _compose(a: Offset, b: Offset) -> Offset:
    """Offset ``b`` given in frame ``a``, expressed in ``a``'s base frame."""
    ra, rb = np.array(a.rotation), np.array(b.rotation)
    p = np.array(a.translation) + ra @ np.array(b.translation)
    return Offset(tuple(float(v) for v in p), tuple(tuple(float(v) for v in r) for r in ra @ rb))


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


# ------------------------------------------------------------------------------- joints
def _canonical_axes(jtype: JointType, coords: list[str]) -> list[TransformAxis]:
    """The CustomJoint-equivalent axes of OpenSim's fixed-type joints."""
    ex, ey, ez = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)
    names = ["rotation1", "rotation2", "rotation3", "translation1", "translation2", "translation3"]
    default_axes = [ex, ey, ez, ex, ey, ez]
    plan: dict[int, tuple[tuple[float, float, float], int]] = {}
    if jtype is JointType.PIN:
        plan = {0: (ez, 0)}
    elif jtype is JointType.SLIDER:
        plan = {3: (ex, 0)}
    elif jtype is JointType.UNIVERSAL:
        plan = {0: (ex, 0), 1: (ey, 1)}
    elif jtype in (JointType.BALL, JointType.GIMBAL):
        plan = {0: (ex, 0), 1: (ey, 1), 2: (ez, 2)}
    elif jtype is JointType.FREE:
        plan = {0: (ex, 0), 1: (ey, 1), 2: (ez, 2), 3: (ex, 3), 4: (ey, 4), 5: (ez, 5)}
    elif jtype is JointType.PLANAR:
        plan = {0: (ez, 0), 3: (ex, 1), 4: (ey, 2)}
    axes = []
    for i, name in enumerate(names):
        if i in plan:
            axis, ci = plan[i]
            axes.append(TransformAxis(name, axis, coords[ci], Linear(slope=1.0, intercept=0.0)))
        else:
            axes.append(TransformAxis(name, default_axes[i], None, Constant(value=0.0)))
    return axes


_NCOORDS = {
    JointType.PIN: 1,
    JointType.SLIDER: 1,
    JointType.WELD: 0,
    JointType.UNIVERSAL: 2,
    JointType.BALL: 3,
    JointType.GIMBAL: 3,
    JointType.FREE: 6,
    JointType.PLANAR: 3,
}


def _custom_axes(
    st: ET.Element | None, ctx: _Ctx, jname: str, nonlinear: set[str]
) -> list[TransformAxis]:
    """The six axes of a CustomJoint; adds to ``nonlinear`` the coordinates whose first
    axis is driven through anything but a plain LinearFunction."""
    names = ["rotation1", "rotation2", "rotation3", "translation1", "translation2", "translation3"]
    found = {}
    if st is not None:
        for ta in st.iter("TransformAxis"):
            found[ta.get("name")] = ta
    defaults = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 0, 0), (0, 1, 0), (0, 0, 1)]
    axes = []
    seen: set[str] = set()
    for i, name in enumerate(names):
        ta = found.get(name)
        if ta is None:
            axes.append(TransformAxis(name, defaults[i], None, Constant(value=0.0)))
            continue
        axis = np.array(_floats(_text(ta, "axis"), 3, ctx, f"joint {jname} {name} axis"))
        norm = np.linalg.norm(axis)
        if norm == 0:
            raise ctx.error(f"joint {jname} {name}: zero axis")
        coord_names = (_text(ta, "coordinates", "") or "").split()
        func, tag = _axis_function(ta, ctx)
        for cn in coord_names:
            if cn not in seen and tag != "LinearFunction":
                nonlinear.add(cn)
            seen.add(cn)
        if len(coord_names) > 1:
            raise ModelError(
                f"{ctx.path}: joint {jname} {name} uses {len(coord_names)} coordinates; "
                "multi-variable transform functions are not supported"
            )
        if func is None:
            func = Linear(slope=1.0, intercept=0.0) if coord_names else Constant(value=0.0)
        coord = coord_names[0] if coord_names else None
        if coord is None and not func.is_constant:
            # A function of no coordinate: OpenSim evaluates it at 0.
            import torch

            func = Constant(value=float(func(torch.zeros(1, dtype=torch.float64))[0]))
        axes.append(TransformAxis(name, tuple(float(v) for v in axis / norm), coord, func))
    return axes


def _motion_type(axes: list[TransformAxis], coord: str, nonlinear: set[str]) -> CoordinateType:
    """OpenSim's rule: the first axis a coordinate drives decides: through a plain
    LinearFunction it is rotational or translational by the axis, otherwise coupled."""
    if coord in nonlinear:
        return CoordinateType.COUPLED
    for ax in axes:
        if ax.coordinate == coord:
            return CoordinateType.ROTATIONAL if ax.is_rotation else CoordinateType.TRANSLATIONAL
    return CoordinateType.ROTATIONAL


def _parse_coordinate(el: ET.Element, jname: str, ctx: _Ctx) -> dict:
    name = el.get("name")
    rng = _floats(_text(el, "range", "-1e10 1e10"), 2, ctx, f"coordinate {name} range")
    return {
        "name": name,
        "joint": jname,
        "default_value": float(_text(el, "default_value", "0") or 0.0),
        "range": (rng[0], rng[1]),
        "clamped": _bool(_text(el, "clamped"), False),
        "locked": _bool(_text(el, "locked"), False),
        "motion_type_30000": _text(el, "motion_type"),
    }


# ------------------------------------------------------------------------------- model
def load_osim(path: str | Path) -> Model:
    """Read an OpenSim model file. Raises :class:`FileFormatError` for malformed XML."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        tree = ET.parse(path)
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else None
        raise FileFormatError(
            path, f"not a valid .osim (XML error: {exc.msg})", line=line
        ) from None
    return _parse_document(tree.getroot(), _Ctx(path))


def parse_osim_string(text: str, *, source: str | Path | None = None) -> Model:
    """Read an OpenSim model from an XML string."""
    ctx = _Ctx(Path(source) if source else None)
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else None
        raise FileFormatError(
            ctx.path, f"not a valid .osim (XML error: {exc.msg})", line=line
        ) from None
    return _parse_document(root, ctx)


def _parse_document(root: ET.Element, ctx: _Ctx) -> Model:
    model_el = root if root.tag == "Model" else root.find("Model")
    if model_el is None:
        raise ctx.error("no <Model> element: not an OpenSim model file")
    version = int(root.get("Version", "40000")) if root.tag == "OpenSimDocument" else 40000
    name = model_el.get("name", "model")
    gravity = _floats(_text(model_el, "gravity", "0 -9.80665 0"), 3, ctx, "gravity")

    bodies: list[Body] = []
    frames: dict[str, tuple[str, Offset]] = {}  # path or name -> (base body, offset)
    ground_name = GROUND
    g = model_el.find("Ground")
    if g is not None:
        ground_name = g.get("name", GROUND)
    frames[ground_name] = (GROUND, Offset())
    frames["/" + ground_name] = (GROUND, Offset())

    body_els = []
    bodyset = model_el.find("BodySet")
    if bodyset is None:
        raise ctx.error("no <BodySet> in the model")
    objs = bodyset.find("objects")
    for b in objs if objs is not None else []:
        if b.tag != "Body":
            continue
        bname = b.get("name")
        if version < 40000 and bname == "ground":
            continue
        body_els.append(b)
        mass = float(_text(b, "mass", "0") or 0.0)
        com = _floats(_text(b, "mass_center", "0 0 0"), 3, ctx, f"body {bname} mass_center")
        if b.find("inertia") is not None:
            inertia = _floats(_text(b, "inertia"), 6, ctx, f"body {bname} inertia")
        else:
            keys = [
                "inertia_xx",
                "inertia_yy",
                "inertia_zz",
                "inertia_xy",
                "inertia_xz",
                "inertia_yz",
            ]
            inertia = tuple(float(_text(b, k, "0") or 0.0) for k in keys)
        bodies.append(Body(bname, mass, com, inertia))  # type: ignore[arg-type]
        frames[bname] = (bname, Offset())
        frames["/bodyset/" + bname] = (bname, Offset())
    if not bodies:
        raise ctx.error("the model has no bodies")

    # Frames attached to bodies (4.0: <components> of bodies or of the model).
    for holder in [*body_els, model_el]:
        comps = holder.find("components")
        if comps is None:
            continue
        for fr in comps.findall("PhysicalOffsetFrame"):
            _register_offset_frame(fr, frames, ctx, owner_path=None)

    if version >= 40000:
        joints_raw = _joints_40000(model_el, frames, ctx)
    else:
        joints_raw = _joints_30000(body_els, ctx)
    joints, coords = _build_joints(joints_raw, [b.name for b in bodies], ctx)

    couplers = _parse_couplers(model_el, ctx, {c.name for c in coords})
    markers = _parse_markers(model_el, frames, ctx, version)
    spheres = _parse_contact_spheres(model_el, frames, ctx)
    force_set = model_el.find("ForceSet")
    force_xml = ET.tostring(force_set, encoding="unicode") if force_set is not None else None
    return Model(
        name=name,
        bodies=tuple(bodies),
        joints=tuple(joints),
        coordinates=tuple(coords),
        couplers=tuple(couplers),
        markers=tuple(markers),
        contact_spheres=tuple(spheres),
        gravity=gravity,  # type: ignore[arg-type]
        source=ctx.path,
        force_set_xml=force_xml,
    )


def _register_offset_frame(fr: ET.Element, frames, ctx: _Ctx, owner_path: str | None) -> str:
    fname = fr.get("name")
    parent = _text(fr, "socket_parent") or ".."
    t = _floats(_text(fr, "translation", "0 0 0"), 3, ctx, f"frame {fname} translation")
    o = _floats(_text(fr, "orientation", "0 0 0"), 3, ctx, f"frame {fname} orientation")
    base, base_off = _resolve_frame(parent, frames, ctx, f"frame {fname}")
    off = _compose(base_off, _offset(t, o))
    frames[fname] = (base, off)
    if owner_path:
        frames[f"{owner_path}/{fname}"] = (base, off)
    return fname


def _resolve_frame(ref: str, frames, ctx: _Ctx, what: str) -> tuple[str, Offset]:
    ref = ref.strip()
    candidates = [ref, ref.rstrip("/")]
    last = ref.rstrip("/").split("/")[-1]
    candidates.append(last)
    for c in candidates:
        if c in frames:
            return frames[c]
    raise ModelError(f"{ctx.path}: {what} refers to an unknown frame {ref!r}")


def _joints_40000(model_el: ET.Element, frames, ctx: _Ctx) -> list[dict]:
    out = []
    jointset = model_el.find("JointSet")
    objs = jointset.find("objects") if jointset is not None else None
    for j in objs if objs is not None else []:
        jname = j.get("name")
        if j.tag not in _JOINT_TAGS:
            raise ModelError(
                f"{ctx.path}: joint {jname!r} has unsupported type <{j.tag}>; supported: "
                + ", ".join(sorted(_JOINT_TAGS))
            )
        # the joint's own offset frames
        local = dict(frames)
        fr_el = j.find("frames")
        if fr_el is not None:
            for fr in fr_el.findall("PhysicalOffsetFrame"):
                _register_offset_frame(fr, local, ctx, owner_path=None)
        pref = _text(j, "socket_parent_frame")
        cref = _text(j, "socket_child_frame")
        if pref is None or cref is None:
            raise ctx.error(f"joint {jname}: missing socket_parent_frame or socket_child_frame")
        pbody, poff = _resolve_frame(pref, local, ctx, f"joint {jname} parent frame")
        cbody, coff = _resolve_frame(cref, local, ctx, f"joint {jname} child frame")
        coord_els = []
        ce = j.find("coordinates")
        if ce is not None:
            coord_els = ce.findall("Coordinate")
        out.append(
            {
                "name": jname,
                "type": _JOINT_TAGS[j.tag],
                "parent": pbody,
                "child": cbody,
                "poff": poff,
                "coff": coff,
                "coords": [_parse_coordinate(c, jname, ctx) for c in coord_els],
                "st": j.find("SpatialTransform"),
            }
        )
    return out


def _joints_30000(body_els: list[ET.Element], ctx: _Ctx) -> list[dict]:
    out = []
    for b in body_els:
        jwrap = b.find("Joint")
        if jwrap is None:
            continue
        for j in jwrap:
            jname = j.get("name")
            if j.tag not in _JOINT_TAGS:
                raise ModelError(f"{ctx.path}: joint {jname!r} has unsupported type <{j.tag}>")
            parent = _text(j, "parent_body")
            if parent is None:
                raise ctx.error(f"joint {jname}: missing parent_body")
            poff = _offset(
                _floats(_text(j, "location_in_parent", "0 0 0"), 3, ctx, "location_in_parent"),
                _floats(
                    _text(j, "orientation_in_parent", "0 0 0"), 3, ctx, "orientation_in_parent"
                ),
            )
            coff = _offset(
                _floats(_text(j, "location", "0 0 0"), 3, ctx, "location"),
                _floats(_text(j, "orientation", "0 0 0"), 3, ctx, "orientation"),
            )
            cs = j.find("CoordinateSet")
            coord_els = []
            if cs is not None and cs.find("objects") is not None:
                coord_els = cs.find("objects").findall("Coordinate")
            out.append(
                {
                    "name": jname,
                    "type": _JOINT_TAGS[j.tag],
                    "parent": GROUND if parent == "ground" else parent,
                    "child": b.get("name"),
                    "poff": poff,
                    "coff": coff,
                    "coords": [_parse_coordinate(c, jname, ctx) for c in coord_els],
                    "st": j.find("SpatialTransform"),
                }
            )
    return out


def _build_joints(raw: list[dict], body_names: list[str], ctx: _Ctx):
    placed = {GROUND}
    for r in raw:
        for side in ("parent", "child"):
            if r[side] != GROUND and r[side] not in body_names:
                raise ModelError(
                    f"{ctx.path}: joint {r['name']} refers to unknown body {r[side]!r}"
                )
    # Coordinates keep the file's joint order (OpenSim's CoordinateSet order);
    # joints are reordered parent-before-child for kinematics.
    coords: list[Coordinate] = []
    joints_by_name: dict[str, Joint] = {}
    for r in raw:
        cnames = [c["name"] for c in r["coords"]]
        jt = r["type"]
        nonlinear: set[str] = set()
        if jt is JointType.CUSTOM:
            axes = _custom_axes(r["st"], ctx, r["name"], nonlinear)
            used = {a.coordinate for a in axes if a.coordinate}
            unknown = used - set(cnames)
            if unknown:
                raise ModelError(
                    f"{ctx.path}: joint {r['name']} axes use coordinates {sorted(unknown)} "
                    "that the joint does not declare"
                )
        else:
            need = _NCOORDS[jt]
            if len(cnames) != need:
                raise ModelError(
                    f"{ctx.path}: {jt.value} {r['name']} needs {need} coordinates, has {len(cnames)}"
                )
            axes = _canonical_axes(jt, cnames)
        for c in r["coords"]:
            mt30 = c.pop("motion_type_30000")
            mtype = _motion_type(axes, c["name"], nonlinear)
            if mt30 and jt is not JointType.CUSTOM:
                mtype = CoordinateType(mt30.strip().lower())
            coords.append(Coordinate(motion_type=mtype, **c))
        joints_by_name[r["name"]] = Joint(
            name=r["name"],
            type=jt,
            parent_body=r["parent"],
            child_body=r["child"],
            parent_offset=r["poff"],
            child_offset=r["coff"],
            coordinates=tuple(cnames),
            axes=tuple(axes),
        )
    ordered: list[Joint] = []
    pending = [joints_by_name[r["name"]] for r in raw]
    children = [j.child_body for j in pending]
    dup = {c for c in children if children.count(c) > 1}
    if dup:
        raise ModelError(
            f"{ctx.path}: bodies with more than one parent joint (loops): {sorted(dup)}"
        )
    while pending:
        progressed = False
        for j in list(pending):
            if j.parent_body in placed:
                ordered.append(j)
                placed.add(j.child_body)
                pending.remove(j)
                progressed = True
        if not progressed:
            names = ", ".join(j.name for j in pending)
            raise ModelError(f"{ctx.path}: joints not connected to ground: {names}")
    orphans = [b for b in body_names if b not in placed]
    if orphans:
        raise ModelError(f"{ctx.path}: bodies without a joint to ground: {orphans}")
    return ordered, coords


def _parse_couplers(model_el: ET.Element, ctx: _Ctx, coord_names: set[str]):
    out = []
    cs = model_el.find("ConstraintSet")
    objs = cs.find("objects") if cs is not None else None
    for c in objs if objs is not None else []:
        if c.tag != "CoordinateCouplerConstraint":
            raise ModelError(f"{ctx.path}: unsupported constraint type <{c.tag}> ({c.get('name')})")
        indep = (_text(c, "independent_coordinate_names", "") or "").split()
        dep = _text(c, "dependent_coordinate_name")
        if len(indep) != 1 or dep is None:
            raise ModelError(
                f"{ctx.path}: constraint {c.get('name')}: only one independent coordinate supported"
            )
        for n in [*indep, dep]:
            if n not in coord_names:
                raise ModelError(
                    f"{ctx.path}: constraint {c.get('name')} names unknown coordinate {n!r}"
                )
        func = _function_child(c.find("coupled_coordinates_function"), ctx)
        if func is None:
            raise ctx.error(f"constraint {c.get('name')}: missing coupled_coordinates_function")
        func = func.with_scale(float(_text(c, "scale_factor", "1") or 1.0))
        out.append(CoordinateCoupler(c.get("name"), dep, indep[0], func))
    return out


def _point_on_body(el: ET.Element, frame_tags, frames, ctx: _Ctx, what: str):
    """``(body, location in the body frame)`` of an element with a ``location`` on a frame
    named by the first of ``frame_tags`` it has (offset frames resolved to their body)."""
    ref = next((r for r in (_text(el, t) for t in frame_tags) if r), None)
    if ref is None:
        raise ctx.error(f"{what}: no parent frame")
    base, off = _resolve_frame(ref, frames, ctx, what)
    loc = np.array(_floats(_text(el, "location", "0 0 0"), 3, ctx, f"{what} location"))
    p = np.array(off.translation) + np.array(off.rotation) @ loc
    return base, tuple(float(v) for v in p)


def _parse_markers(model_el: ET.Element, frames, ctx: _Ctx, version: int) -> list[Marker]:
    ms = model_el.find("MarkerSet")
    objs = ms.find("objects") if ms is not None else None
    out = []
    for m in objs if objs is not None else []:
        if m.tag != "Marker":
            continue
        name = m.get("name")
        base, p = _point_on_body(m, ("socket_parent_frame", "body"), frames, ctx, f"marker {name}")
        out.append(Marker(name, base, p, _bool(_text(m, "fixed"), False)))
    return out


def _parse_contact_spheres(model_el: ET.Element, frames, ctx: _Ctx) -> list[ContactSphere]:
    cs = model_el.find("ContactGeometrySet")
    objs = cs.find("objects") if cs is not None else None
    out = []
    for g in objs if objs is not None else []:
        if g.tag != "ContactSphere":
            continue
        name = g.get("name")
        what = f"contact sphere {name}"
        base, p = _point_on_body(g, ("socket_frame", "body_name"), frames, ctx, what)
        radius = float(_text(g, "radius", "0") or 0.0)
        out.append(ContactSphere(name, base, p, radius))
    return out


def muscle_names_from_force_set(force_set_xml: str | None) -> list[str]:
    """Names of the muscles (elements with a GeometryPath) in a ForceSet XML fragment."""
    if not force_set_xml:
        return []
    root = ET.fromstring(force_set_xml)
    objs = root.find("objects")
    return [
        f.get("name")
        for f in (objs if objs is not None else [])
        if f.find("GeometryPath") is not None and "Muscle" in f.tag
    ]
