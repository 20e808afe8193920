"""Scale fitting recovers known segment scales from synthetic markers."""

from __future__ import annotations

import torch

from diffbio.fitting import fit_scales, write_scale_set
from diffbio.kinematics import forward_kinematics, marker_positions
from diffbio.model import default_model


def test_fit_scales_recovers_synthetic_scales(tmp_path):
    model = default_model()
    g = torch.Generator().manual_seed(0)
    true = 1 + 0.08 * (torch.rand(model.num_bodies, generator=g, dtype=torch.float64) - 0.5)
    scales = true.unsqueeze(-1).expand(-1, 3)
    lo = torch.tensor([c.range[0] for c in model.coordinates], dtype=torch.float64)
    hi = torch.tensor([c.range[1] for c in model.coordinates], dtype=torch.float64)
    q = model.default_q() + 0.3 * (
        torch.rand(5, model.num_coordinates, generator=g, dtype=torch.float64) - 0.5
    ) * (hi - lo).clamp(max=1.0)
    X = marker_positions(model, forward_kinematics(model, q, scales), scales)
    fit = fit_scales(model, X, model.marker_names, regularization=1e-8)
    # bodies that carry markers are determined; a marker-less talus is not (its scale
    # only moves the calcaneus, which the calcaneus' own scale also does)
    marked = torch.tensor([any(k.body == b for k in model.markers) for b in model.body_names])
    assert torch.allclose(fit.scales[marked, 0], true[marked], atol=2e-3), fit.scales[:, 0] - true
    assert float(fit.ik.marker_error_max.max()) < 1e-3
    path = write_scale_set(tmp_path / "scales.xml", model, fit.scales)
    from tests._support import opensim_ref as ref

    ss = ref.osim.ScaleSet(str(path))
    assert ss.getSize() == model.num_bodies
    assert ss.get(0).getScaleFactors().get(1) == float(f"{fit.scales[0, 1]:.10g}")
