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
