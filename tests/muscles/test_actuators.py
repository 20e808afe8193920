"""Actuator generalized forces: against virtual work from the kinematics' own Jacobians
(autograd of forward kinematics), batched over actuators and leading dimensions;
gradcheck and finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffbio.kinematics import forward_kinematics
from diffbio.model import GROUND, load_osim
from diffbio.muscles import Actuator, ActuatorKind, actuator_generalized_forces
from tests.conftest import opensim_data_path


@pytest.fixture(scope="module")
def model():
    return load_osim(opensim_data_path("gait2392", "subject01_simbody.osim"))


def _actuators():
    P, T, C = ActuatorKind.POINT, ActuatorKind.TORQUE, ActuatorKind.COORDINATE
    return (
        Actuator("fx", P, 2.0, body="pelvis", direction=(1, 0, 0), force_is_global=True),
        Actuator("fl", P, 3.0, body="femur_r", point=(0.01, -0.2, 0.03), direction=(1, 2, 2)),
        Actuator(
            "fg", P, 1.5, body="tibia_l", point=(0.1, 0.5, 0.0), point_is_global=True,
            direction=(0, 1, 0), force_is_global=True,
        ),
        Actuator("hip_r_reserve", C, 4.0, coordinate="hip_flexion_r"),
        Actuator("mz", T, 5.0, body="pelvis", axis=(0, 0, 1)),
        Actuator("mlocal", T, 2.5, body="femur_l", body_b="pelvis", axis=(1, 1, 0),
                 torque_is_global=False),
    )  # fmt: skip


def _q(model, shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    q0 = model.default_q().to(torch.float64)
    return q0 + 0.2 * torch.randn(*shape, q0.shape[0], generator=g, dtype=torch.float64)


def _virtual_work(model, acts, q):
    """``(Q, NA)`` for one frame ``q (Q,)`` from the autograd Jacobians of the poses."""
    bi = {n: i for i, n in enumerate(model.body_names)}

    def poses(v):
        p = forward_kinematics(model, v)
        return p.rotation, p.translation

    R, t = poses(q)
    dR, dt = torch.autograd.functional.jacobian(poses, q)  # (NB,3,3,Q), (NB,3,Q)
    cols = []
    for a in acts:
        if a.kind is ActuatorKind.COORDINATE:
            c = torch.zeros(q.shape[0], dtype=q.dtype)
            c[model.coordinate_index(a.coordinate)] = 1.0
        elif a.kind is ActuatorKind.POINT:
            b = bi[a.body]
            d = torch.tensor(a.direction, dtype=q.dtype)
            d = d / d.norm()
            f = d if a.force_is_global else R[b] @ d
            r = torch.tensor(a.point, dtype=q.dtype)
            r_local = R[b].T @ (r - t[b]) if a.point_is_global else r  # fixed in the body
            dp = torch.einsum("ijq,j->iq", dR[b], r_local) + dt[b]  # (3, Q)
            c = dp.T @ f
        else:
            ax = torch.tensor(a.axis, dtype=q.dtype)
            ax = ax / ax.norm()
            ax = ax if a.torque_is_global else R[bi[a.body]] @ ax

            def omega(b):  # (3, Q): angular-velocity Jacobian, [w]x = dR R^T
                W = torch.einsum("ijq,kj->ikq", dR[b], R[b])
                return torch.stack([W[2, 1], W[0, 2], W[1, 0]])

            w = omega(bi[a.body]) - (omega(bi[a.body_b]) if a.body_b != GROUND else 0.0)
            c = w.T @ ax
        cols.append(c * a.optimal_force)
    return torch.stack(cols, -1)


def test_matches_virtual_work_with_leading_dims(model):
    acts = _actuators()
    q = _q(model, (2, 3))
    S = actuator_generalized_forces(model, acts, q)
    assert S.shape == (2, 3, model.num_coordinates, len(acts))
    for idx in np.ndindex(2, 3):
        ref = _virtual_work(model, acts, q[idx])
        torch.testing.assert_close(S[idx], ref, rtol=1e-10, atol=1e-10)
    # one actuator at a time gives the same columns as all together
    for k, a in enumerate(acts):
        torch.testing.assert_close(
            actuator_generalized_forces(model, (a,), q)[..., 0], S[..., k], rtol=0, atol=1e-12
        )


def test_gradcheck_and_finite_differences(model):
    acts = _actuators()
    q = _q(model, (1,), seed=1).requires_grad_()
    f = lambda v: actuator_generalized_forces(model, acts, v)  # noqa: E731
    assert torch.autograd.gradcheck(f, (q,))
    w = torch.randn(1, model.num_coordinates, len(acts), dtype=torch.float64)
    loss = lambda v: (f(v) * w).sum()  # noqa: E731
    (g,) = torch.autograd.grad(loss(q), q)
    eps = 1e-6
    fd = torch.zeros_like(q)
    for j in range(q.shape[-1]):
        e = torch.zeros_like(q)
        e[..., j] = eps
        fd[..., j] = (loss(q + e) - loss(q - e)) / (2 * eps)
    torch.testing.assert_close(g, fd, rtol=1e-6, atol=1e-7)
