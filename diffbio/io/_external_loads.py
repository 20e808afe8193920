"""OpenSim ExternalLoads: the ``.xml`` that maps columns of a force ``.mot`` onto bodies.

Column matching follows OpenSim 4.6 (``Storage::getColumnIndicesForIdentifier``): every
column whose label *starts with* the identifier, in file order, and there must be exactly
three (``ground_force_v`` -> ``ground_force_vx, _vy, _vz``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diffbio._errors import FileFormatError
from diffbio.io._spline import spline_evaluate
from diffbio.io._storage import Storage, read_storage, write_storage

__all__ = ["ExternalForce", "ExternalLoads", "read_external_loads", "write_external_loads"]

_UNSET = ("", "unassigned")


@dataclass(frozen=True, eq=False)
class ExternalForce:
    """One ``ExternalForce`` with its data.

    Attributes:
        name: the element's ``name``.
        applied_to_body: body the force acts on.
        force_expressed_in_body: frame of ``force`` and ``torque`` (usually ``ground``).
        point_expressed_in_body: frame of ``point``.
        force_identifier, point_identifier, torque_identifier: column prefixes ("" if none).
        force: ``(T, 3) [N]`` or None when there is no force identifier.
        point: ``(T, 3) [m]`` or None (then the force acts at the body origin).
        torque: ``(T, 3) [N m]`` or None.
        columns: the data-file labels used, force then point then torque.
        enabled: False when the xml disables it (``isDisabled`` true or ``appliesForce``
            false); OpenSim then ignores it.
        data_source_name: the optional ``data_source_name`` ("" when unassigned).
    """

    name: str
    applied_to_body: str
    force_expressed_in_body: str
    point_expressed_in_body: str
    force_identifier: str
    point_identifier: str
    torque_identifier: str
    force: np.ndarray | None
    point: np.ndarray | None
    torque: np.ndarray | None
    columns: tuple[str, ...] = ()
    enabled: bool = True
    data_source_name: str = ""


@dataclass(frozen=True, eq=False)
class ExternalLoads:
    """An ExternalLoads set with its force data.

    Attributes:
        time: ``(T,) [s]`` of the data file.
        forces: the :class:`ExternalForce` entries in xml order.
        name: the ExternalLoads ``name``.
        xml_path: the xml read (None when built in memory).
        data_path: the data file read.
    """

    time: np.ndarray
    forces: tuple[ExternalForce, ...]
    name: str = ""
    xml_path: Path | None = None
    data_path: Path | None = None

    def bodies(self) -> tuple[str, ...]:
        """Names of the bodies the enabled forces act on (first occurrence order)."""
        out: list[str] = []
        for f in self.forces:
            if f.enabled and f.applied_to_body not in out:
                out.append(f.applied_to_body)
        return tuple(out)

    def at(self, times: np.ndarray) -> tuple[ExternalForce, ...]:
        """The forces interpolated at ``times (N,) [s]`` as OpenSim does.

        OpenSim's ``ExternalForce`` interpolates each component with ``GCVSpline(3)``
        (a natural interpolating cubic) when there are at least 4 rows, linearly for 2-3
        rows and as a constant for 1 row. Returns new :class:`ExternalForce` objects whose
        arrays are ``(N, 3)``.
        """
        te = np.asarray(times, dtype=np.float64)
        T = self.time.shape[0]
        names = ("force", "point", "torque")
        arrays = [a for f in self.forces for a in (getattr(f, w) for w in names) if a is not None]
        if not arrays:
            return tuple(self.forces)
        # All columns in one evaluation: the spline system is solved once for all of them.
        a = np.concatenate([np.asarray(v, dtype=np.float64).reshape(T, 3) for v in arrays], 1)
        if T >= 4:
            res = spline_evaluate(self.time, a, te, 0, degree=3)
        elif T == 1:
            res = np.repeat(a, te.shape[0], axis=0)
        else:
            res = np.stack([np.interp(te, self.time, a[:, k]) for k in range(a.shape[1])], 1)
        out = []
        col = 0
        for f in self.forces:
            got = {}
            for w in names:
                if getattr(f, w) is None:
                    got[w] = None
                else:
                    got[w] = res[:, col : col + 3].copy()
                    col += 3
            out.append(
                ExternalForce(
                    f.name,
                    f.applied_to_body,
                    f.force_expressed_in_body,
                    f.point_expressed_in_body,
                    f.force_identifier,
                    f.point_identifier,
                    f.torque_identifier,
                    got["force"],
                    got["point"],
                    got["torque"],
                    f.columns,
                    f.enabled,
                    f.data_source_name,
                )
            )
        return tuple(out)


def _text(el: ET.Element, tag: str, default: str = "") -> str:
    child = el.find(tag)
    if child is None or child.text is None:
        return default
    return child.text.strip()


def _match(data: Storage, ident: str, what: str, force_name: str, path: Path) -> tuple[int, ...]:
    idx = tuple(i for i, lab in enumerate(data.labels) if lab.startswith(ident))
    if len(idx) != 3:
        found = ", ".join(data.labels[i] for i in idx) or "none"
        raise FileFormatError(
            path,
            f"ExternalForce {force_name!r}: {what} identifier {ident!r} must match exactly 3 "
            f"columns by prefix (e.g. {ident}x, {ident}y, {ident}z); found {found}",
            column=ident,
        )
    return idx


def read_external_loads(
    xml_path: str | Path, data_file: str | Path | None = None, *, allow_nan: bool = False
) -> ExternalLoads:
    """Read an OpenSim ExternalLoads ``.xml`` and the force data file it names.

    Args:
        xml_path: the ExternalLoads xml.
        data_file: the force ``.mot``/``.sto``; default: the xml's ``<datafile>``,
            resolved relative to the xml's folder.
        allow_nan: accept NaN in the force, point and torque columns used (default: a
            NaN raises, naming the column and the time).

    Raises:
        FileFormatError: not an ExternalLoads xml, missing data file, force columns not
            found (named), NaN data.
    """
    xml_path = Path(xml_path)
    if not xml_path.is_file():
        raise FileFormatError(xml_path, "no such file")
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as exc:
        raise FileFormatError(xml_path, f"not valid XML: {exc}", line=exc.position[0]) from None
    el = root if root.tag == "ExternalLoads" else root.find("ExternalLoads")
    if el is None:
        raise FileFormatError(xml_path, "no <ExternalLoads> element")
    if data_file is None:
        name = _text(el, "datafile")
        if name.lower() in _UNSET:
            raise FileFormatError(xml_path, "no <datafile> given and no data_file passed")
        data_path = Path(name) if Path(name).is_absolute() else xml_path.parent / name
    else:
        data_path = Path(data_file)
    if not data_path.is_file():
        raise FileFormatError(xml_path, f"force data file {str(data_path)!r} not found")
    data = read_storage(data_path)

    objects = el.find("objects")
    forces: list[ExternalForce] = []
    for fe in [] if objects is None else objects.findall("ExternalForce"):
        fname = fe.get("name", "")
        disabled = _text(fe, "isDisabled", "false").lower() == "true"
        applies = _text(fe, "appliesForce", "true").lower() != "false"
        idents = {}
        for key in ("force_identifier", "point_identifier", "torque_identifier"):
            v = _text(fe, key)
            idents[key] = "" if v.lower() in _UNSET else v
        if not idents["force_identifier"] and not idents["torque_identifier"]:
            raise FileFormatError(
                xml_path, f"ExternalForce {fname!r} has neither a force nor a torque identifier"
            )
        if idents["point_identifier"] and not idents["force_identifier"]:
            raise FileFormatError(
                xml_path, f"ExternalForce {fname!r} gives a point but no force identifier"
            )
        arrays: dict[str, np.ndarray | None] = {}
        used: list[str] = []
        for key, what in (
            ("force_identifier", "force"),
            ("point_identifier", "point"),
            ("torque_identifier", "torque"),
        ):
            ident = idents[key]
            if not ident:
                arrays[what] = None
                continue
            idx = _match(data, ident, what, fname, data_path)
            cols = [data.labels[i] for i in idx]
            block = data.data[:, list(idx)]
            if not allow_nan and np.isnan(block).any():
                r, c = (int(v) for v in np.argwhere(np.isnan(block))[0])
                raise FileFormatError(
                    data_path, f"NaN {what} value at time {float(data.time[r])!r}", column=cols[c]
                )
            arrays[what] = block.copy()
            used.extend(cols)
        src = _text(fe, "data_source_name")
        forces.append(
            ExternalForce(
                name=fname,
                applied_to_body=_text(fe, "applied_to_body"),
                force_expressed_in_body=_text(fe, "force_expressed_in_body", "ground"),
                point_expressed_in_body=_text(fe, "point_expressed_in_body", "ground"),
                force_identifier=idents["force_identifier"],
                point_identifier=idents["point_identifier"],
                torque_identifier=idents["torque_identifier"],
                force=arrays["force"],
                point=arrays["point"],
                torque=arrays["torque"],
                columns=tuple(used),
                enabled=applies and not disabled,
                data_source_name="" if src.lower() in _UNSET else src,
            )
        )
    return ExternalLoads(data.time.copy(), tuple(forces), el.get("name", ""), xml_path, data_path)


def write_external_loads(xml_path: str | Path, mot_path: str | Path, loads: ExternalLoads) -> None:
    """Write ``loads`` as an ExternalLoads xml plus its force ``.mot`` (OpenSim 4.6 format).

    Columns are named ``<identifier>x/y/z`` from each force's identifiers (defaults
    ``<name>_force_v``, ``<name>_force_p``, ``<name>_torque_`` where an identifier is
    empty but data is present). The xml's ``<datafile>`` is ``mot_path`` relative to the
    xml's folder when possible.
    """
    xml_path, mot_path = Path(xml_path), Path(mot_path)
    labels: list[str] = []
    blocks: list[np.ndarray] = []
    entries = []
    for f in loads.forces:
        ids = {}
        for what, arr, ident, default in (
            ("force", f.force, f.force_identifier, f"{f.name}_force_v"),
            ("point", f.point, f.point_identifier, f"{f.name}_force_p"),
            ("torque", f.torque, f.torque_identifier, f"{f.name}_torque_"),
        ):
            if arr is None:
                ids[what] = ""
                continue
            ident = ident or default
            ids[what] = ident
            labels.extend(ident + c for c in "xyz")
            blocks.append(np.asarray(arr, dtype=np.float64).reshape(-1, 3))
        entries.append((f, ids))
    data = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(loads.time), 0))
    storage = Storage.from_arrays(loads.time, labels, data, name=mot_path.name)
    write_storage(mot_path, storage)

    root = ET.Element("OpenSimDocument", Version="40000")
    el = ET.SubElement(root, "ExternalLoads", name=loads.name or "externalloads")
    objs = ET.SubElement(el, "objects")
    for f, ids in entries:
        fe = ET.SubElement(objs, "ExternalForce", name=f.name)
        ET.SubElement(fe, "appliesForce").text = "true" if f.enabled else "false"
        ET.SubElement(fe, "applied_to_body").text = f.applied_to_body
        ET.SubElement(fe, "force_expressed_in_body").text = f.force_expressed_in_body
        ET.SubElement(fe, "point_expressed_in_body").text = f.point_expressed_in_body
        ET.SubElement(fe, "force_identifier").text = ids["force"]
        ET.SubElement(fe, "point_identifier").text = ids["point"]
        ET.SubElement(fe, "torque_identifier").text = ids["torque"]
        if f.data_source_name:
            ET.SubElement(fe, "data_source_name").text = f.data_source_name
    ET.SubElement(el, "groups")
    try:
        rel = mot_path.resolve().relative_to(xml_path.resolve().parent)
    except ValueError:
        rel = mot_path.resolve()
    ET.SubElement(el, "datafile").text = str(rel)
    ET.indent(root, space="\t")
    xml_path.write_text(
        '<?xml version="1.0" encoding="UTF-8" ?>\n' + ET.tostring(root, encoding="unicode") + "\n",
        encoding="utf-8",
    )
