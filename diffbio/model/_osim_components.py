"""Points on bodies in a ``.osim`` file: markers, contact spheres; and the muscle names of
a ForceSet fragment."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np

from diffbio.model._model import ContactSphere, Marker
from diffbio.model._osim_xml import _bool, _Ctx, _floats, _resolve_frame, _text


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
