"""Read OpenSim InverseKinematicsTool setup files (``*_Setup_IK.xml``)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from diffbio._errors import FileFormatError


@dataclass(frozen=True)
class CoordinateTask:
    """An IKCoordinateTask: keep ``name`` near ``value`` [rad or m] with ``weight``.
    ``value=None`` means the coordinate's default value (``value_type=default_value``)."""

    name: str
    weight: float
    value: float | None = None


@dataclass(frozen=True)
class IKSetup:
    """The parts of an OpenSim IK setup that the fit uses. Paths are resolved against the
    setup file's folder."""

    marker_weights: dict[str, float]
    coordinate_tasks: tuple[CoordinateTask, ...] = ()
    model_file: Path | None = None
    marker_file: Path | None = None
    time_range: tuple[float, float] | None = None
    accuracy: float = 1e-5
    output_motion_file: Path | None = None
    disabled_markers: tuple[str, ...] = field(default=())


def read_ik_setup(path: str | Path) -> IKSetup:
    """Parse an ``InverseKinematicsTool`` setup file (format 30000 or 40000)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"IK setup file not found: {path}")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise FileFormatError(path, f"not valid XML ({exc.msg})", line=exc.position[0]) from None
    tool = root.find("InverseKinematicsTool") if root.tag != "InverseKinematicsTool" else root
    if tool is None:
        raise FileFormatError(path, "no <InverseKinematicsTool> element")
    base = path.parent

    def text(tag):
        el = tool.find(tag)
        return el.text.strip() if el is not None and el.text and el.text.strip() else None

    def resolve(name):
        return None if name is None or name.lower() == "unassigned" else (base / name)

    weights, disabled, coords = {}, [], []
    taskset = tool.find("IKTaskSet")
    objects = taskset.find("objects") if taskset is not None else None
    for task in objects if objects is not None else []:
        name = task.get("name")
        apply_el = task.find("apply")
        applied = apply_el is None or (apply_el.text or "").strip().lower() != "false"
        weight_el = task.find("weight")
        try:
            weight = float(weight_el.text) if weight_el is not None else 1.0
        except ValueError:
            raise FileFormatError(path, f"task {name}: weight is not a number") from None
        if task.tag == "IKMarkerTask":
            if applied:
                weights[name] = weight
            else:
                disabled.append(name)
        elif task.tag == "IKCoordinateTask" and applied:
            vtype = (task.findtext("value_type") or "default_value").strip()
            value = None
            if vtype == "manual_value":
                value = float(task.findtext("value") or 0.0)
            elif vtype == "from_file":
                raise FileFormatError(
                    path, f"coordinate task {name}: value_type from_file is not supported"
                )
            coords.append(CoordinateTask(name, weight, value))
    time_range = None
    tr = text("time_range")
    if tr:
        vals = [float(v) for v in tr.split()]
        if len(vals) != 2:
            raise FileFormatError(path, f"time_range needs two numbers, got {tr!r}")
        time_range = (vals[0], vals[1])
    return IKSetup(
        marker_weights=weights,
        coordinate_tasks=tuple(coords),
        model_file=resolve(text("model_file")),
        marker_file=resolve(text("marker_file")),
        time_range=time_range,
        accuracy=float(text("accuracy") or 1e-5),
        output_motion_file=resolve(text("output_motion_file")),
        disabled_markers=tuple(disabled),
    )
