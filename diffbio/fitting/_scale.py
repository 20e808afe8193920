"""Segment scaling by gradient-based fitting to markers, and OpenSim ScaleSet files.

:func:`fit_scales` alternates the batched IK (coordinates, per frame) with Gauss-Newton
steps on the segment scale factors shared by all frames, minimizing the same weighted
marker objective as IK plus a small pull of the scales towards 1.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.func import jvp, vmap

from diffbio.fitting._ik import IKResult, inverse_kinematics
from diffbio.kinematics import forward_kinematics, marker_positions
from diffbio.model import Model


@dataclass(frozen=True)
class ScaleResult:
    """``scales: (NB, 3)`` segment scale factors, ``ik``: the IK at those scales."""

    scales: Tensor
    ik: IKResult
    rounds: int


def fit_scales(
    model: Model,
    markers: Tensor,
    marker_names: list[str] | tuple[str, ...],
    *,
    marker_weights=None,
    coordinate_tasks=(),
    uniform: bool = True,
    regularization: float = 1e-4,
    rounds: int = 6,
    bounds: tuple[float, float] = (0.5, 2.0),
) -> ScaleResult:
    """Fit segment scales (one factor per body with ``uniform``, else per axis) and the
    coordinates of every frame to marker data ``(T, K, 3) [m]``."""
    dt = markers.dtype
    nb = model.num_bodies
    npar = nb if uniform else nb * 3
    s = torch.ones(npar, dtype=dt)
    names = tuple(marker_names)
    if isinstance(marker_weights, dict):
        w = torch.tensor([marker_weights.get(n, 0.0) for n in names], dtype=dt)
    elif marker_weights is None:
        w = torch.ones(len(names), dtype=dt)
    else:
        w = marker_weights.to(dt)
    present = ~torch.isnan(markers).any(-1)
    wt = (w * present).sqrt().unsqueeze(-1)
    target = torch.nan_to_num(markers)

    def expand(p):
        return (p.unsqueeze(-1).expand(nb, 3) if uniform else p.reshape(nb, 3)).contiguous()

    q = None
    ik = None
    done = 0
    for _ in range(rounds):
        done += 1
        ik = inverse_kinematics(
            model,
            markers,
            names,
            marker_weights=w,
            coordinate_tasks=coordinate_tasks,
            q0=q,
            scales=expand(s),
        )
        q = ik.q

        def resid(p, q=q):
            sc = expand(p)
            x = marker_positions(model, forward_kinematics(model, q, sc), sc, names)
            return torch.cat([(wt * (x - target)).reshape(-1), regularization**0.5 * (p - 1.0)])

        r = resid(s)
        basis = torch.eye(npar, dtype=dt)
        J = vmap(lambda v, s=s: jvp(resid, (s,), (v,))[1])(basis).T  # (R, P)
        H = J.T @ J + 1e-9 * torch.eye(npar, dtype=dt)
        step = -torch.linalg.solve(H, J.T @ r)
        s = (s + step).clamp(*bounds)
        if step.abs().max() < 1e-6:
            break
    ik = inverse_kinematics(
        model,
        markers,
        names,
        marker_weights=w,
        coordinate_tasks=coordinate_tasks,
        q0=q,
        scales=expand(s),
    )
    return ScaleResult(scales=expand(s), ik=ik, rounds=done)


def write_scale_set(path: str | Path, model: Model, scales: Tensor) -> Path:
    """Write ``scales (NB, 3)`` as an OpenSim ``ScaleSet`` XML (usable by the ScaleTool's
    manual scaling and by ``Model.scale``)."""
    doc = ET.Element("OpenSimDocument", Version="40000")
    ss = ET.SubElement(doc, "ScaleSet", name="diffbio_scales")
    objs = ET.SubElement(ss, "objects")
    for name, sc in zip(model.body_names, scales.detach().cpu().tolist()):
        el = ET.SubElement(objs, "Scale", name=name)
        ET.SubElement(el, "scales").text = " ".join(f"{v:.10g}" for v in sc)
        ET.SubElement(el, "segment").text = name
        ET.SubElement(el, "apply").text = "true"
    ET.SubElement(ss, "groups")
    ET.indent(doc)
    path = Path(path)
    ET.ElementTree(doc).write(path, encoding="UTF-8", xml_declaration=True)
    return path
