"""Shared pieces of the ``.osim`` importer: error reporting, XML text helpers, rotations
and offsets, and the named-frame table (bodies and PhysicalOffsetFrames resolved to their
base body and offset)."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from diffbio._errors import FileFormatError, ModelError
from diffbio.model._model import Offset


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


# ------------------------------------------------------------------------------- frames


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
