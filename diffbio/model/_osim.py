"""Read OpenSim ``.osim`` models (format 30000 and 40000+) by parsing the XML.

No OpenSim installation is needed at run time. Every joint type is converted to OpenSim's
CustomJoint form (see :mod:`diffbio.model._model`), with the coordinate motion types that
OpenSim itself assigns.

The parsing lives in ``_osim_xml`` (helpers, errors, frames), ``_osim_functions``,
``_osim_joints`` (joints, coordinates, couplers) and ``_osim_components`` (markers, contact
spheres, muscle names); this module assembles the :class:`Model`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from diffbio._errors import FileFormatError
from diffbio.model._model import GROUND, Body, Model, Offset
from diffbio.model._osim_components import (
    _parse_contact_spheres,
    _parse_markers,
    _point_on_body,
    muscle_names_from_force_set,
)
from diffbio.model._osim_functions import (
    _FUNCTION_TAGS,
    _axis_function,
    _function_child,
    parse_function,
)
from diffbio.model._osim_joints import (
    _JOINT_TAGS,
    _KNOWN_UNSUPPORTED_JOINTS,
    _NCOORDS,
    _build_joints,
    _canonical_axes,
    _custom_axes,
    _joints_30000,
    _joints_40000,
    _motion_type,
    _parse_coordinate,
    _parse_couplers,
)
from diffbio.model._osim_xml import (
    _bool,
    _compose,
    _Ctx,
    _floats,
    _offset,
    _register_offset_frame,
    _resolve_frame,
    _text,
    rotation_xyz,
)

# Every name this module defined before the importer was split into ``_osim_*`` modules
# stays importable from here (diffbio.muscles._path and the tests import some of them).
__all__ = [
    "_FUNCTION_TAGS",
    "_JOINT_TAGS",
    "_KNOWN_UNSUPPORTED_JOINTS",
    "_NCOORDS",
    "_Ctx",
    "_axis_function",
    "_bool",
    "_build_joints",
    "_canonical_axes",
    "_compose",
    "_custom_axes",
    "_floats",
    "_function_child",
    "_joints_30000",
    "_joints_40000",
    "_motion_type",
    "_offset",
    "_parse_contact_spheres",
    "_parse_coordinate",
    "_parse_couplers",
    "_parse_document",
    "_parse_markers",
    "_point_on_body",
    "_register_offset_frame",
    "_resolve_frame",
    "_text",
    "load_osim",
    "muscle_names_from_force_set",
    "parse_function",
    "parse_osim_string",
    "rotation_xyz",
]


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
