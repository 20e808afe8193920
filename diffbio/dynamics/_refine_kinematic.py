"""The nonlinear refinement: ground reactions and kinematics adjusted together (theseus).

Unknowns per trial: a kinematic correction ``dq (T, Q)`` (velocities and accelerations
follow through the central-difference operators ``D1``, ``D2`` of the frame grid:
``qd + D1 dq``, ``qdd + D2 dq``), and corrections ``dF``, ``dM (T, P, 3)`` of the force and
of the moment about the measured centre of pressure of each plate in contact (zero out of
contact). The nonlinear least squares

    |r(q + dq, ..., F, M)|^2 / s_r^2 + |dq|^2 / s_q^2 + |dF|^2 / s_F^2 + |dM|^2 / s_M^2

(``r``: the 6 root-residual equations per frame, the inverse dynamics being nonlinear in
``q``) is solved by theseus' Levenberg-Marquardt, and differentiated by its implicit
backward mode (gradients w.r.t. the measured forces, points, torques and kinematics).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from diffbio._errors import ShapeError
from diffbio.dynamics._refine import required_root_wrench
from diffbio.model import Model


@dataclass(frozen=True)
class KinematicRefinement:
    """Result of :func:`refine_with_kinematics` (leading batch ``B``, ``T`` frames).

    ``q, qd, qdd: (B, T, Q)`` adjusted kinematics; ``force, moment: (B, T, P, 3)`` [N,
    N m] refined force and moment about the measured point, in ground; ``residual:
    (B, T, 6)`` root residual (force [N], moment about the ground origin [N m]) left;
    ``iterations``: Levenberg-Marquardt iterations; ``converged``: (B,) bool."""

    q: Tensor
    qd: Tensor
    qdd: Tensor
    force: Tensor
    moment: Tensor
    residual: Tensor
    converged: Tensor


def difference_operators(T: int, dt: float, dtype=torch.float64) -> tuple[Tensor, Tensor]:
    """``(D1, D2)``: ``(T, T)`` first and second central differences (one-sided ends)."""
    eye = np.eye(T)
    d1 = np.gradient(eye, dt, axis=0)
    d2 = np.gradient(d1, dt, axis=0)
    return torch.as_tensor(d1, dtype=dtype), torch.as_tensor(d2, dtype=dtype)


def refine_with_kinematics(
    model: Model,
    q: Tensor,
    qd: Tensor,
    qdd: Tensor,
    force: Tensor,
    point: Tensor,
    torque: Tensor,
    *,
    time_step: float,
    contact: Tensor | None = None,
    contact_threshold: float = 20.0,
    kinematics_scale: float = 0.01,
    force_scale: float = 5.0,
    moment_scale: float = 1.0,
    residual_scale: float = 0.01,
    max_iterations: int = 30,
) -> KinematicRefinement:
    """Adjust kinematics and ground reactions together to remove the root residuals.

    Args:
        q, qd, qdd: ``(B, T, Q)`` kinematics; force, point, torque: ``(B, T, P, 3)`` in
            ground [N, m, N m]; time_step [s]; contact ``(B, T, P)`` or None (measured
            normal force > ``contact_threshold``); scales: sizes of a unit cost
            (``kinematics_scale`` [rad or m], ``force_scale`` [N], ``moment_scale``
            [N m], ``residual_scale`` [N or N m]).
    Returns:
        :class:`KinematicRefinement`, differentiable (theseus implicit backward).
    """
    import theseus as th

    if q.dim() != 3 or force.dim() != 4 or force.shape[:2] != q.shape[:2]:
        raise ShapeError(
            f"refine_with_kinematics: q must be (B, T, Q) and force (B, T, P, 3); got "
            f"{tuple(q.shape)} and {tuple(force.shape)}"
        )
    B, T, Q = q.shape
    P = force.shape[2]
    dt_, dev = q.dtype, q.device
    D1, D2 = (d.to(dev) for d in difference_operators(T, time_step, dt_))
    n = -torch.tensor(model.gravity, dtype=dt_, device=dev)
    n = n / n.norm()
    if contact is None:
        contact = (force.detach() @ n) > contact_threshold
    mask = contact.to(dt_).unsqueeze(-1)

    dq = th.Vector(tensor=torch.zeros(B, T * Q, dtype=dt_, device=dev), name="dq")
    dF = th.Vector(tensor=torch.zeros(B, T * P * 3, dtype=dt_, device=dev), name="dF")
    dM = th.Vector(tensor=torch.zeros(B, T * P * 3, dtype=dt_, device=dev), name="dM")
    aux_names = ("q", "qd", "qdd", "Fm", "Pm", "Tm")
    aux_vals = (q, qd, qdd, force, point, torque)
    aux = [th.Variable(v.detach().reshape(B, -1), name=k) for k, v in zip(aux_names, aux_vals)]

    def parts(optim_vars, aux_vars):
        dqv, dFv, dMv = (v.tensor for v in optim_vars)
        qa, qda, qdda, Fm, Pm, Tm = (v.tensor for v in aux_vars)
        Bb = dqv.shape[0]
        qa, qda, qdda = (a.reshape(Bb, T, Q) for a in (qa, qda, qdda))
        Fm, Pm, Tm = (a.reshape(Bb, T, P, 3) for a in (Fm, Pm, Tm))
        d = dqv.reshape(Bb, T, Q)
        q1, qd1, qdd1 = qa + d, qda + D1 @ d, qdda + D2 @ d
        F = mask * (Fm + dFv.reshape(Bb, T, P, 3))
        M = mask * (Tm + dMv.reshape(Bb, T, P, 3))
        f_req, n_req = required_root_wrench(model, q1, qd1, qdd1)
        r = torch.cat(
            [f_req - F.sum(2), n_req - (torch.linalg.cross(Pm, F) + M).sum(2)], -1
        )  # (B, T, 6)
        return q1, qd1, qdd1, F, M, r, dqv, dFv, dMv

    def err_fn(optim_vars, aux_vars):
        *_, r, dqv, dFv, dMv = parts(optim_vars, aux_vars)
        return torch.cat(
            [
                r.reshape(r.shape[0], -1) / residual_scale,
                dqv / kinematics_scale,
                dFv / force_scale,
                dMv / moment_scale,
            ],
            -1,
        )

    dim = 6 * T + T * Q + 6 * T * P
    w = th.ScaleCostWeight(torch.tensor(1.0, dtype=dt_, device=dev))
    cost = th.AutoDiffCostFunction(
        [dq, dF, dM],
        err_fn,
        dim,
        cost_weight=w,
        aux_vars=aux,
        autograd_mode="dense",
        autograd_create_graph=False,
        autograd_vectorize=True,
        autograd_strategy="forward-mode",
    )
    objective = th.Objective(dtype=dt_)
    objective.add(cost)
    opt = th.LevenbergMarquardt(
        objective, max_iterations=max_iterations, step_size=1.0,
        abs_err_tolerance=1e-14, rel_err_tolerance=1e-14,
    )  # fmt: skip
    layer = th.TheseusLayer(opt).to(device=dev, dtype=dt_)
    inputs = {
        "dq": torch.zeros(B, T * Q, dtype=dt_, device=dev),
        "dF": torch.zeros(B, T * P * 3, dtype=dt_, device=dev),
        "dM": torch.zeros(B, T * P * 3, dtype=dt_, device=dev),
    }
    for k, v in zip(aux_names, aux_vals):
        inputs[k] = v.reshape(B, -1)
    sol, info = layer.forward(
        inputs, optimizer_kwargs={"backward_mode": "implicit", "damping": 1e-9}
    )
    ov = [th.Vector(tensor=sol[k]) for k in ("dq", "dF", "dM")]
    av = [th.Variable(inputs[k]) for k in aux_names]
    q1, qd1, qdd1, F, M, r, *_ = parts(ov, av)
    conv = torch.as_tensor(info.status == th.NonlinearOptimizerStatus.CONVERGED)
    return KinematicRefinement(q1, qd1, qdd1, F, M, r, conv)
