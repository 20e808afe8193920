"""Segment scaling by gradient-based fitting to markers, and OpenSim ScaleSet files.

:func:`fit_scales` minimizes the IK objective over the coordinates of every frame and the
segment scale factors shared by all frames, plus a small pull of the scales towards 1.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.func import jvp, vmap

from diffbio.fitting._ik import IKResult, _Problem, inverse_kinematics
from diffbio.model import Model


@dataclass(frozen=True)
class ScaleResult:
    """``scales: (NB, 3)`` segment scale factors, ``ik``: the IK at those scales,
    ``rounds``: Levenberg-Marquardt iterations."""

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
    max_iterations: int = 60,
    tolerance: float = 1e-12,
    bounds: tuple[float, float] = (0.5, 2.0),
) -> ScaleResult:
    """Fit segment scales (one factor per body with ``uniform``, else per axis) together with
    the coordinates of every frame to marker data ``(T, K, 3) [m]``.

    Levenberg-Marquardt on all unknowns at once: the per-frame coordinate blocks are
    eliminated (Schur complement), so each iteration costs T small solves plus one of the
    size of the scale parameters. ``regularization`` pulls the scales towards 1 (it keeps
    segments without markers, whose scale the data cannot determine, at 1)."""
    dt = markers.dtype
    nb = model.num_bodies
    npar = nb if uniform else nb * 3
    names = tuple(marker_names)
    if isinstance(marker_weights, dict):
        w = torch.tensor([marker_weights.get(n, 0.0) for n in names], dtype=dt)
    elif marker_weights is None:
        w = torch.ones(len(names), dtype=dt)
    else:
        w = marker_weights.to(dt)

    def expand(p):
        return (p.unsqueeze(-1).expand(nb, 3) if uniform else p.reshape(nb, 3)).contiguous()

    def problem(p):
        return _Problem(model, markers, names, w, coordinate_tasks, expand(p))

    def total_cost(p, q):
        r, _ = problem(p).residual(q, jac=False)
        return float((r * r).sum() + regularization * ((p - 1.0) ** 2).sum())

    p = torch.ones(npar, dtype=dt)
    q = inverse_kinematics(
        model, markers, names, marker_weights=w, coordinate_tasks=coordinate_tasks
    ).q
    cost = total_cost(p, q)
    lam = 1e-4
    eye_p = torch.eye(npar, dtype=dt)
    it = 0
    for it in range(1, max_iterations + 1):  # noqa: B007
        prob = problem(p)
        r, Jq = prob.residual(q, jac=True)  # (T, R), (T, R, Qf)
        Js = vmap(
            lambda v, q=q, p=p: jvp(lambda pp: problem(pp).residual(q, jac=False)[0], (p,), (v,))[1]
        )(eye_p).permute(1, 2, 0)  # (T, R, P)
        Hqq = Jq.transpose(-1, -2) @ Jq
        Hqq = Hqq + torch.diag_embed(lam * (torch.diagonal(Hqq, dim1=-2, dim2=-1) + 1e-9))
        Hqs = Jq.transpose(-1, -2) @ Js
        Hss = (Js.transpose(-1, -2) @ Js).sum(0) + regularization * eye_p
        Hss = Hss + lam * torch.diag(torch.diagonal(Hss) + 1e-9)
        gq = (Jq.transpose(-1, -2) @ r.unsqueeze(-1)).squeeze(-1)
        gs = (Js.transpose(-1, -2) @ r.unsqueeze(-1)).squeeze(-1).sum(0) + regularization * (
            p - 1.0
        )
        X = torch.linalg.solve(Hqq, Hqs)
        y = torch.linalg.solve(Hqq, gq.unsqueeze(-1)).squeeze(-1)
        S = Hss - (Hqs.transpose(-1, -2) @ X).sum(0)
        rhs = -(gs - (Hqs.transpose(-1, -2) @ y.unsqueeze(-1)).squeeze(-1).sum(0))
        dp = torch.linalg.solve(S, rhs)
        dq = -(y + (X @ dp.unsqueeze(-1)).squeeze(-1))
        p_new = (p + dp).clamp(*bounds)
        q_new = prob.update(q, dq)
        cost_new = total_cost(p_new, q_new)
        if cost_new < cost:
            converged = cost - cost_new <= tolerance * (1.0 + cost)
            p, q, cost, lam = p_new, q_new, cost_new, max(lam / 3.0, 1e-12)
            if converged:
                break
        else:
            lam *= 4.0
            if lam > 1e10:
                break
    ik = inverse_kinematics(
        model,
        markers,
        names,
        marker_weights=w,
        coordinate_tasks=coordinate_tasks,
        q0=q,
        scales=expand(p),
    )
    return ScaleResult(scales=expand(p), ik=ik, rounds=it)


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
