"""The Jacobian path of moment arms (muscles without wrap objects) equals minus the
reverse-mode derivative of the path lengths, couplers and scales included."""

from __future__ import annotations

import pytest
import torch

from diffbio.kinematics import apply_couplers
from diffbio.model import load_osim
from diffbio.muscles import moment_arms, muscle_tendon_lengths
from tests.conftest import opensim_data_path


@pytest.mark.parametrize(
    "rel", ["gait2392/subject01_simbody.osim", "leg6dof9musc/leg6dof9musc.osim"]
)
@pytest.mark.parametrize("scaled", [False, True])
def test_equals_reverse_mode_derivative_of_length(rel, scaled):
    model = load_osim(opensim_data_path(*rel.split("/")))
    g = torch.Generator().manual_seed(3)
    lo = torch.tensor([c.range[0] for c in model.coordinates], dtype=torch.float64)
    hi = torch.tensor([c.range[1] for c in model.coordinates], dtype=torch.float64)
    q = lo + (hi - lo) * torch.rand(3, model.num_coordinates, generator=g, dtype=torch.float64)
    s = 1 + 0.1 * torch.rand(model.num_bodies, 3, generator=g, dtype=torch.float64)
    s = s if scaled else None
    r = moment_arms(model, q, s)
    dep = [model.coordinate_index(k.dependent) for k in model.couplers]
    for i in range(q.shape[0]):
        J = torch.autograd.functional.jacobian(
            lambda x: muscle_tendon_lengths(model, apply_couplers(model, x), s), q[i]
        )
        ref = -J
        ref[:, dep] = 0.0
        for k in model.couplers:
            a, d = model.coordinate_index(k.independent), model.coordinate_index(k.dependent)
            ref[:, d] = ref[:, a] / k.function(q[i, a : a + 1], 1)
        assert torch.allclose(r[i], ref, atol=1e-12), (r[i] - ref).abs().max()


def test_gradcheck():
    model = load_osim(opensim_data_path("leg6dof9musc", "leg6dof9musc.osim"))
    q = model.default_q().unsqueeze(0).clone() + 0.2
    s = torch.ones(model.num_bodies, 3, dtype=torch.float64) * 1.05
    assert torch.autograd.gradcheck(
        lambda q, s: moment_arms(model, q, s), (q.requires_grad_(), s.requires_grad_())
    )


@pytest.mark.parametrize(
    "rel, scaled",
    [
        ("gait2392/subject01_simbody.osim", False),
        ("gait2392/subject01_simbody.osim", True),
        ("leg6dof9musc/leg6dof9musc.osim", True),
        ("arm26/arm26.osim", False),  # wrapping: the separate functions
    ],
)
def test_muscle_geometry_equals_separate_functions(rel, scaled):
    """One pass (lengths, speeds, moment arms) equals muscle_tendon_lengths, the
    forward-mode muscle_tendon_velocities and moment_arms (batched leading dims)."""
    from diffbio.muscles._path_length import muscle_geometry, muscle_tendon_velocities

    model = load_osim(opensim_data_path(*rel.split("/")))
    g = torch.Generator().manual_seed(5)
    lo = torch.tensor([c.range[0] for c in model.coordinates], dtype=torch.float64)
    hi = torch.tensor([c.range[1] for c in model.coordinates], dtype=torch.float64)
    Q = model.num_coordinates
    shape = (1, 2, Q) if "arm26" in rel else (2, 3, Q)
    q = apply_couplers(model, lo + (hi - lo) * torch.rand(shape, generator=g, dtype=torch.float64))
    qd = torch.randn(shape, generator=g, dtype=torch.float64)
    s = 1 + 0.1 * torch.rand(model.num_bodies, 3, generator=g, dtype=torch.float64)
    s = s if scaled else None
    lengths, speeds, arms = muscle_geometry(model, q, qd, s)
    torch.testing.assert_close(lengths, muscle_tendon_lengths(model, q, s), atol=1e-13, rtol=0)
    ref_v = muscle_tendon_velocities(model, q, qd, s)
    torch.testing.assert_close(speeds, ref_v, atol=1e-12, rtol=0)
    torch.testing.assert_close(arms, moment_arms(model, q, s), atol=1e-13, rtol=0)
    assert muscle_geometry(model, q)[1] is None


def test_muscle_geometry_gradcheck_and_finite_differences():
    from diffbio.muscles._path_length import muscle_geometry

    model = load_osim(opensim_data_path("leg6dof9musc", "leg6dof9musc.osim"))
    q = model.default_q().unsqueeze(0).clone() + 0.2
    q = apply_couplers(model, q)
    qd = torch.linspace(-1, 1, model.num_coordinates, dtype=torch.float64).unsqueeze(0)
    s = torch.ones(model.num_bodies, 3, dtype=torch.float64) * 1.05

    def fn(q, qd, s):
        lengths, speeds, _ = muscle_geometry(model, q, qd, s)
        return lengths, speeds

    args = (q.clone().requires_grad_(), qd.clone().requires_grad_(), s.clone().requires_grad_())
    assert torch.autograd.gradcheck(fn, args)
    # d length / d t along qd by central differences equals the speed
    h = 1e-6
    up = muscle_geometry(model, q + h * qd)[0]
    dn = muscle_geometry(model, q - h * qd)[0]
    torch.testing.assert_close(fn(q, qd, None)[1], (up - dn) / (2 * h), atol=1e-8, rtol=1e-6)
