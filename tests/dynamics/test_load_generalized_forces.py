"""``J^T f`` of external loads from shared joint screws (the static-optimization actuators'
path) equals minus inverse dynamics at rest without gravity; a kinematics pass given to
inverse dynamics changes nothing; gradcheck and finite differences."""

from __future__ import annotations

import pytest
import torch

from diffbio.dynamics import BodyWrenches, inverse_dynamics
from diffbio.dynamics._rnea import _load_generalized_forces, _newton_euler, _screws
from diffbio.kinematics._fk import _forward
from diffbio.model import load_osim
from tests.conftest import opensim_data_path


@pytest.fixture(scope="module")
def model():
    return load_osim(opensim_data_path("gait10dof18musc", "subject01.osim"))


def _state(model, lead, seed=0):
    g = torch.Generator().manual_seed(seed)
    q0 = model.default_q().to(torch.float64)
    q = q0 + 0.3 * torch.randn(*lead, q0.shape[0], generator=g, dtype=torch.float64)
    qd = torch.randn(*lead, q0.shape[0], generator=g, dtype=torch.float64)
    qdd = torch.randn(*lead, q0.shape[0], generator=g, dtype=torch.float64)
    return g, q, qd, qdd


def _wrenches(model, lead, g):
    NB = model.num_bodies
    r = lambda: torch.randn(*lead, NB, 3, generator=g, dtype=torch.float64)  # noqa: E731
    return BodyWrenches(50 * r(), 5 * r(), r())


def test_equals_minus_inverse_dynamics_at_rest(model):
    g, q, _, _ = _state(model, (4,))
    w = _wrenches(model, (3, 4), g)  # 3 load sets on the 4 poses: broadcast over the screws
    tau = _load_generalized_forces(model, _screws(model, q, None), w)
    qs = q.expand(3, *q.shape)
    zero = torch.zeros_like(qs)
    ref = -inverse_dynamics(model, qs, zero, zero, w, gravity=False)
    assert tau.shape == (3, 4, model.num_coordinates)
    torch.testing.assert_close(tau, ref, rtol=0, atol=1e-12)


def test_shared_kinematics_changes_nothing(model):
    g, q, qd, qdd = _state(model, (2, 3), seed=1)
    w = _wrenches(model, (2, 3), g)
    js = _screws(model, q, None, _forward(model, q, None, with_axes=True))
    tau = _newton_euler(model, q, qd, qdd, w, None, None, True, js)[0]
    assert torch.equal(tau, inverse_dynamics(model, q, qd, qdd, w))


def test_gradcheck_and_finite_differences(model):
    g, q, _, _ = _state(model, (1,), seed=2)
    w = _wrenches(model, (1,), g)
    f0 = w.force.clone().requires_grad_()
    qg = q.clone().requires_grad_()

    def fn(q, force):
        return _load_generalized_forces(
            model, _screws(model, q, None), BodyWrenches(force, w.torque, w.point)
        )

    assert torch.autograd.gradcheck(fn, (qg, f0))
    weights = torch.randn(1, model.num_coordinates, generator=g, dtype=torch.float64)
    loss = lambda v: (fn(v, w.force) * weights).sum()  # noqa: E731
    (grad,) = torch.autograd.grad(loss(qg), qg)
    eps = 1e-6
    fd = torch.zeros_like(q)
    for j in range(q.shape[-1]):
        e = torch.zeros_like(q)
        e[..., j] = eps
        fd[..., j] = (loss(q + e) - loss(q - e)) / (2 * eps)
    torch.testing.assert_close(grad, fd, rtol=1e-6, atol=1e-6)
