"""Joints, coordinates and coordinate-coupler constraints of a ``.osim`` file (format 30000
and 40000+), every joint type converted to OpenSim's CustomJoint form with the coordinate
motion types that OpenSim itself assigns."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np

from diffbio._errors import ModelError
from diffbio.model._functions import Constant, Linear
from diffbio.model._model import (
    GROUND,
    Coordinate,
    CoordinateCoupler,
    CoordinateType,
    Joint,
    JointType,
    TransformAxis,
)
from diffbio.model._osim_functions import _axis_function, _function_child
from diffbio.model._osim_xml import (
    _bool,
    _Ctx,
    _floats,
    _offset,
    _register_offset_frame,
    _resolve_frame,
    _text,
)

_JOINT_TAGS = {t.value: t for t in JointType}
_KNOWN_UNSUPPORTED_JOINTS = {"EllipsoidJoint", "ScapulothoracicJoint", "ConstantCurvatureJoint"}


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
