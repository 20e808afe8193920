"""Training with the physics (root-residual) loss: the term is trained, lowers the residual
mismatch of the predictions, and the train command takes ``--physics-weight``."""

from __future__ import annotations

import json
import math

import pytest
import torch

from diffbio.cli._main import main
from diffbio.data import SyntheticConfig, synthetic_dataset
from diffbio.model import default_model
from diffbio.nn import KinematicsNet, LossWeights, NetConfig, TrainConfig, physics_loss, train


@pytest.fixture(scope="module")
def setup():
    model = default_model()
    data = synthetic_dataset(
        model, SyntheticConfig(num_subjects=3, sequences_per_subject=2, seq_len=8), seed=0
    )
    return model, data


def _physics_after_training(model, data, weight: float) -> tuple[float, tuple[dict, ...]]:
    torch.manual_seed(0)
    net = KinematicsNet(NetConfig.small(data.features.shape[-1], 21, 10, seq_len=8))
    cfg = TrainConfig(epochs=10, batch_size=2, lr=3e-3, seed=0, weights=LossWeights(physics=weight))
    result = train(model, net, data, None, cfg, progress=False)
    net.eval()
    with torch.no_grad():
        p = net(data.features)
        value = physics_loss(
            model,
            p.q.double(),
            p.scales.double(),
            data.q.double(),
            data.scales.double(),
            data.frame_rate,
        )
    return float(value), result.history


def test_physics_loss_lowers_the_residual_mismatch(setup):
    model, data = setup
    off, h_off = _physics_after_training(model, data, 0.0)
    on, h_on = _physics_after_training(model, data, 1.0)
    assert "train_physics" not in h_off[0]
    assert all(math.isfinite(h["train_physics"]) and h["train_physics"] > 0 for h in h_on)
    # Trained on the term, the predictions' root residuals (in body weights) are much
    # closer to the labels' than without it.
    assert on < 0.5 * off


def test_train_command_with_physics_weight(tmp_path):
    out = tmp_path / "run"
    args = ["train", "--out", str(out), "--subjects", "3", "--sequences", "1"]
    args += ["--seq-len", "8", "--epochs", "1", "--physics-weight", "0.1", "--quiet"]
    assert main(args) == 0
    history = json.loads((out / "history.json").read_text())
    assert math.isfinite(history[0]["train_physics"]) and history[0]["train_physics"] > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert all(math.isfinite(v) for v in metrics.values())
