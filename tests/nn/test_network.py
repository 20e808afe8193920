"""Network shapes, temporal behaviour of the two modes, metrics on known cases."""

from __future__ import annotations

import math

import pytest
import torch

from diffbio import ShapeError
from diffbio.model import default_model
from diffbio.nn import KinematicsNet, NetConfig, mae_deg, mpjve, pa_mpjpe, procrustes_align


def _net(sequence=True, T=8):
    return KinematicsNet(
        NetConfig.small(12, 21, 10, seq_len=T, sequence=sequence, dropout=0.0)
    ).eval()


def test_full_size_matches_the_reference_layout():
    cfg = NetConfig.full(318, 21, 10)
    assert (cfg.channels, cfg.depths, cfg.heads, cfg.seq_len) == (
        (48, 96, 384),
        (2, 4, 6),
        (1, 2, 4),
        64,
    )
    net = KinematicsNet(cfg)
    assert (
        len(net.level0.blocks) == 2 and len(net.level1.blocks) == 4 and len(net.level2.blocks) == 6
    )
    assert net.level2.blocks[0].layer.self_attn.num_heads == 4


@pytest.mark.parametrize("sequence", [True, False])
def test_shapes_and_ranges(sequence):
    net = _net(sequence)
    p = net(torch.randn(3, 8, 12))
    assert (
        p.q.shape == (3, 8, 21)
        and p.free_vec.shape == (3, 8, 3, 2)
        and p.scales.shape == (3, 10, 3)
    )
    assert torch.allclose(p.q[..., :3], torch.atan2(p.free_vec[..., 1], p.free_vec[..., 0]))
    assert torch.all((p.scales > 0.7) & (p.scales < 1.3))


def test_shape_errors():
    with pytest.raises(ShapeError):
        _net()(torch.randn(2, 8, 11))
    with pytest.raises(ShapeError):
        _net()(torch.randn(2, 6, 12))
    with pytest.raises(ShapeError):
        _net()(torch.randn(2, 12, 12))


def test_frame_based_is_per_frame_and_sequence_based_mixes_time():
    x = torch.randn(1, 8, 12)
    y = x.clone()
    y[:, 0] += 1.0
    with torch.no_grad():
        frame = _net(False)
        a, b = frame(x).q, frame(y).q
        assert torch.equal(a[:, 1:], b[:, 1:]) and not torch.equal(a[:, 0], b[:, 0])
        seq = _net(True)
        a, b = seq(x).q, seq(y).q
        assert not torch.allclose(a[:, -1], b[:, -1])


def test_normalization_buffers():
    net = _net()
    f = torch.randn(4, 8, 12) * 3 + 2
    q = torch.randn(4, 8, 21)
    net.set_normalization(f, q)
    assert torch.allclose(net.feat_mean, f.reshape(-1, 12).mean(0))
    assert torch.allclose(net.q_std, q.reshape(-1, 21)[:, 3:].std(0))


def test_mae_deg_wraps_and_skips_translations():
    m = default_model()
    qt = torch.zeros(2, m.num_coordinates, dtype=torch.float64)
    qp = qt + math.radians(2.0)
    qp[:, m.coordinate_index("pelvis_tx")] += 5.0  # translations are not angles
    assert float(mae_deg(m, qp, qt)) == pytest.approx(2.0)
    qt[:, 0], qp[:, 0] = math.pi - math.radians(1), -math.pi + math.radians(1)
    expect = (2.0 * 17 + 2.0) / 18  # 18 rotational coordinates; the wrapped one is 2 deg off
    assert float(mae_deg(m, qp, qt)) == pytest.approx(expect)


def _rot(a, b, c):
    from diffbio.kinematics import matrix_from_euler_xyz

    return matrix_from_euler_xyz(torch.tensor([a, b, c], dtype=torch.float64))


def test_pa_mpjpe_invariant_to_similarity():
    true = torch.randn(4, 10, 3, dtype=torch.float64)
    pred = 1.3 * true @ _rot(0.3, -1.0, 2.0).T + torch.tensor([1.0, 2.0, -3.0], dtype=torch.float64)
    assert float(pa_mpjpe(pred, true)) == pytest.approx(0.0, abs=1e-9)
    assert torch.allclose(procrustes_align(pred, true), true, atol=1e-12)
    # a reflection is not a rotation: a mirrored cloud keeps an error
    assert float(pa_mpjpe(true * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64), true)) > 1.0
    noisy = true + 0.01 * torch.randn_like(true)
    assert float(pa_mpjpe(noisy, true)) <= float((noisy - true).norm(dim=-1).mean()) * 1000 + 1e-9
    x = noisy.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda p: procrustes_align(p, true), (x,))


def test_mpjve():
    T = 5
    true = torch.randn(2, T, 4, 3, dtype=torch.float64)
    assert float(mpjve(true + 0.5, true, 30.0)) == pytest.approx(0.0, abs=1e-9)
    drift = torch.arange(T, dtype=torch.float64)[None, :, None, None] * torch.tensor(
        [0.01, 0.0, 0.0], dtype=torch.float64
    )
    assert float(mpjve(true + drift, true, 30.0)) == pytest.approx(0.01 * 30.0 * 1000.0)
    x = (true + 0.1 * torch.randn_like(true)).requires_grad_()
    assert torch.autograd.gradcheck(lambda p: mpjve(p, true, 30.0), (x,))
