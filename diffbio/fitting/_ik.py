"""Inverse kinematics by batched Levenberg-Marquardt on the exact marker Jacobian.

Per frame, as OpenSim's InverseKinematicsTool:

    min_q  sum_k w_k |x_k(q) - m_k|^2 + sum_c w_c (q_c - v_c)^2

with locked coordinates held at their default values, clamped coordinates kept in range,
and coupled (dependent) coordinates following their independent coordinate. All frames are
solved at once (frames are independent problems), each with its own damping, so a batch of
trials costs about one trial's Python overhead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from diffbio._errors import DiffbioError, ShapeError
from diffbio.fitting._setup import CoordinateTask
from diffbio.kinematics import apply_couplers
from diffbio.kinematics._jacobian import point_jacobian
from diffbio.model import Model


@dataclass(frozen=True)
class IKResult:
    """Inverse-kinematics solution; leading dims ``...`` are the frames (e.g. ``(T,)``).

    ``q: (..., Q) [rad or m]``; ``marker_errors: (..., K) [m]`` distance per marker (NaN
    where the marker is missing); ``weighted_squared_error: (..., ) [m^2]`` the weighted
    marker term (OpenSim's ``total_squared_error``); ``marker_error_rms``/``_max: (...,)
    [m]``; ``objective: (...,)`` markers plus coordinate tasks; ``converged: (...,)``;
    ``iterations``."""

    q: Tensor
    marker_names: tuple[str, ...]
    marker_errors: Tensor
    weighted_squared_error: Tensor
    marker_error_rms: Tensor
    marker_error_max: Tensor
    objective: Tensor
    converged: Tensor
    iterations: int


class _Problem:
    def __init__(self, model, markers, names, weights, tasks, scales):
        self.model = model
        self.names = tuple(names)
        by_name = {m.name: m for m in model.markers}
        missing = [n for n in self.names if n not in by_name]
        if missing:
            raise DiffbioError(f"markers not in model {model.name!r}: {missing}")
        dt, dev = markers.dtype, markers.device
        self.body = torch.tensor(
            [model.body_index(by_name[n].body) for n in self.names], device=dev
        )
        loc = torch.tensor([by_name[n].location for n in self.names], dtype=dt, device=dev)
        self.scales = scales
        self.points = loc * scales[..., self.body, :] if scales is not None else loc
        present = ~torch.isnan(markers).any(-1)
        self.target = torch.nan_to_num(markers)
        self.w = weights.to(dt) * present.to(dt)  # (..., K)
        Q = model.num_coordinates
        self.task_idx = torch.tensor(
            [model.coordinate_index(t.name) for t in tasks], device=dev, dtype=torch.long
        )
        self.task_w = torch.tensor([t.weight for t in tasks], dtype=dt, device=dev)
        dq = model.default_q().to(dt)
        self.task_v = torch.tensor(
            [
                dq[model.coordinate_index(t.name)].item() if t.value is None else t.value
                for t in tasks
            ],
            dtype=dt,
            device=dev,
        )
        dependent = {model.coordinate_index(k.dependent) for k in model.couplers}
        self.free = torch.tensor(
            [i for i, c in enumerate(model.coordinates) if not c.locked and i not in dependent],
            device=dev,
            dtype=torch.long,
        )
        lo = torch.full((Q,), -torch.inf, dtype=dt, device=dev)
        hi = torch.full((Q,), torch.inf, dtype=dt, device=dev)
        for i, c in enumerate(model.coordinates):
            if c.clamped:
                lo[i], hi[i] = c.range
        self.lo, self.hi = lo, hi

    def residual(self, q, jac: bool):
        if jac:
            x, J = point_jacobian(self.model, q, self.body, self.points, self.scales, couplers=True)
        else:
            from diffbio.kinematics._fk import _forward
            from diffbio.kinematics._jacobian import _points

            x = _points(_forward(self.model, q, self.scales)[0], self.body, self.points)
            J = None
        sw = self.w.sqrt().unsqueeze(-1)
        r_m = (sw * (x - self.target)).flatten(-2)
        r_c = self.task_w.sqrt() * (q[..., self.task_idx] - self.task_v)
        r = torch.cat([r_m, r_c], -1)
        if not jac:
            return r, None
        J_m = (sw.unsqueeze(-1) * J).flatten(-3, -2)
        J_c = torch.zeros(
            *q.shape[:-1], len(self.task_idx), q.shape[-1], dtype=q.dtype, device=q.device
        )
        if len(self.task_idx):
            J_c[..., torch.arange(len(self.task_idx)), self.task_idx] = self.task_w.sqrt()
        return r, torch.cat([J_m, J_c], -2)[..., self.free]

    def update(self, q, delta):
        q = q.clone()
        q[..., self.free] = q[..., self.free] + delta
        q = torch.maximum(torch.minimum(q, self.hi), self.lo)
        return apply_couplers(self.model, q)


def _lm(problem: _Problem, q: Tensor, max_iterations: int, tol: float, free_subset=None):
    lam = torch.full(q.shape[:-1], 1e-3, dtype=q.dtype, device=q.device)
    r, J = problem.residual(q, jac=True)
    cost = (r * r).sum(-1)
    done = torch.zeros_like(cost, dtype=torch.bool)
    it = 0
    for it in range(1, max_iterations + 1):  # noqa: B007
        if free_subset is not None:
            J = J * free_subset
        H = J.transpose(-1, -2) @ J
        g = J.transpose(-1, -2) @ r.unsqueeze(-1)
        diag = torch.diagonal(H, dim1=-2, dim2=-1)
        A = H + torch.diag_embed(lam.unsqueeze(-1) * (diag + 1e-9))
        delta = -torch.linalg.solve(A, g).squeeze(-1)
        delta = torch.where(done.unsqueeze(-1), torch.zeros_like(delta), delta)
        q_new = problem.update(q, delta)
        r_new, _ = problem.residual(q_new, jac=False)
        cost_new = (r_new * r_new).sum(-1)
        better = (cost_new < cost) & ~done
        small = (cost - cost_new).abs() <= tol * (1.0 + cost)
        q = torch.where(better.unsqueeze(-1), q_new, q)
        done = done | (better & small) | (~better & (lam > 1e8))
        cost = torch.where(better, cost_new, cost)
        lam = torch.where(better, lam / 3.0, lam * 4.0).clamp(1e-12, 1e10)
        if bool(done.all()):
            break
        r, J = problem.residual(q, jac=True)
    return q, done, it


def inverse_kinematics(
    model: Model,
    markers: Tensor,
    marker_names: list[str] | tuple[str, ...],
    *,
    marker_weights: Tensor | dict[str, float] | None = None,
    coordinate_tasks: tuple[CoordinateTask, ...] = (),
    q0: Tensor | None = None,
    scales: Tensor | None = None,
    max_iterations: int = 200,
    tolerance: float = 1e-12,
) -> IKResult:
    """Fit coordinates to marker positions, every frame independently and all at once.

    Args:
        model: the model (its markers are matched by name).
        markers: ``(..., K, 3) [m]`` measured positions in ground; NaN marks a missing
            marker in that frame (it then gets weight 0).
        marker_names: the ``K`` names, in the order of ``markers``.
        marker_weights: ``(K,)`` weights or a ``{name: weight}`` dict (missing names: 0);
            default 1 for all.
        coordinate_tasks: OpenSim IKCoordinateTasks.
        q0: ``(..., Q)`` initial guess; default: the model's default pose with the root
            joint fitted first.
        scales: optional ``(..., NB, 3)`` segment scales.
    Returns:
        :class:`IKResult`.
    """
    if markers.shape[-2:] != (len(marker_names), 3):
        raise ShapeError(
            f"markers must be (..., K={len(marker_names)}, 3), got {tuple(markers.shape)}"
        )
    dt, dev = markers.dtype, markers.device
    if marker_weights is None:
        w = torch.ones(len(marker_names), dtype=dt, device=dev)
    elif isinstance(marker_weights, dict):
        w = torch.tensor([marker_weights.get(n, 0.0) for n in marker_names], dtype=dt, device=dev)
    else:
        w = marker_weights.to(dt)
    problem = _Problem(model, markers, marker_names, w, coordinate_tasks, scales)
    lead = markers.shape[:-2]
    if q0 is None:
        q = model.default_q().to(dt).to(dev).expand(*lead, -1).clone()
        q = apply_couplers(model, q)
        root_mask = _root_mask(model, problem, dt, dev)
        q = _init_root_translation(model, problem, q)
        q, _, _ = _lm(problem, q, 50, 1e-8, free_subset=root_mask)
    else:
        q = q0.to(dt).expand(*lead, -1).clone()
    q, converged, iters = _lm(problem, q, max_iterations, tolerance)
    return _result(problem, q, converged, iters)


def _root_mask(model, problem, dt, dev):
    root = model.joints[0]
    idx = [model.coordinate_index(c) for c in root.coordinates]
    mask = torch.tensor(
        [1.0 if int(i) in idx else 0.0 for i in problem.free.tolist()], dtype=dt, device=dev
    )
    return mask


def _init_root_translation(model, problem, q):
    """Shift the root joint's translational coordinates so the model's marker centroid
    matches the measured one (helps the first iterations from a default pose)."""
    root = model.joints[0]
    from diffbio.kinematics._fk import _forward
    from diffbio.kinematics._jacobian import _points

    x = _points(_forward(model, q, problem.scales)[0], problem.body, problem.points)
    w = (problem.w > 0).to(q.dtype).unsqueeze(-1)
    shift = ((problem.target - x) * w).sum(-2) / w.sum(-2).clamp_min(1.0)
    q = q.clone()
    for ax in root.axes[3:]:
        if ax.coordinate is None:
            continue
        i = model.coordinate_index(ax.coordinate)
        if model.coordinates[i].locked:
            continue
        a = torch.tensor(ax.axis, dtype=q.dtype, device=q.device)
        slope = ax.function(q[..., i], 1)
        q[..., i] = q[..., i] + (shift @ a) / slope.clamp_min(1e-9)
    return q


def _result(problem: _Problem, q: Tensor, converged: Tensor, iters: int) -> IKResult:
    from diffbio.kinematics._fk import _forward
    from diffbio.kinematics._jacobian import _points

    x = _points(_forward(problem.model, q, problem.scales)[0], problem.body, problem.points)
    d = (x - problem.target).norm(dim=-1)
    present = problem.w > 0
    d = torch.where(present, d, torch.full_like(d, torch.nan))
    sq = torch.where(present, d * d, torch.zeros_like(d))
    n = present.sum(-1).clamp_min(1)
    wsq = (problem.w * sq).sum(-1)
    r, _ = problem.residual(q, jac=False)
    return IKResult(
        q=q,
        marker_names=problem.names,
        marker_errors=d,
        weighted_squared_error=wsq,
        marker_error_rms=(sq.sum(-1) / n).sqrt(),
        marker_error_max=torch.where(present, d, torch.zeros_like(d)).amax(-1),
        objective=(r * r).sum(-1),
        converged=converged,
        iterations=iters,
    )
