"""Training: determinism by seed, loss decrease, checkpoints, the train/evaluate commands."""

from __future__ import annotations

import json

import pytest
import torch

from diffbio._errors import DiffbioError
from diffbio.cli._main import main
from diffbio.data import SyntheticConfig, synthetic_dataset
from diffbio.model import default_model
from diffbio.nn import (
    KinematicsNet,
    LossWeights,
    NetConfig,
    TrainConfig,
    evaluate,
    load_checkpoint,
    save_checkpoint,
    train,
)


@pytest.fixture(scope="module")
def setup():
    model = default_model()
    data = synthetic_dataset(
        model, SyntheticConfig(num_subjects=3, sequences_per_subject=2, seq_len=8), seed=0
    )
    return model, data


def _fit(model, data, epochs=3, seed=0):
    torch.manual_seed(seed)
    net = KinematicsNet(NetConfig.small(data.features.shape[-1], 21, 10, seq_len=8))
    cfg = TrainConfig(
        epochs=epochs, batch_size=2, lr=3e-3, seed=seed, weights=LossWeights(pos=100.0)
    )
    return net, train(model, net, data, data, cfg, progress=False)


def test_training_is_deterministic_and_learns(setup):
    model, data = setup
    a, ra = _fit(model, data)
    b, rb = _fit(model, data)
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), k
    assert ra.history[-1]["train_angle"] < ra.history[0]["train_angle"]
    assert len(ra.history) == 3 and {"val_mae_deg", "val_pa_mpjpe_mm", "val_mpjve_mm_s"} <= set(
        ra.history[0]
    )


def test_checkpoint_round_trip(setup, tmp_path):
    model, data = setup
    net, _ = _fit(model, data, epochs=1)
    save_checkpoint(tmp_path / "m.pt", net, {"note": "x"})
    back, extra = load_checkpoint(tmp_path / "m.pt")
    assert extra == {"note": "x"} and back.config == net.config
    net.eval()
    assert torch.equal(back(data.features).q, net(data.features).q)
    assert evaluate(model, back, data) == evaluate(model, net, data)


def test_checkpoint_of_another_version_is_a_clear_error(setup, tmp_path):
    model, data = setup
    net, _ = _fit(model, data, epochs=1)
    save_checkpoint(tmp_path / "m.pt", net)
    blob = torch.load(tmp_path / "m.pt", weights_only=True)
    blob["state"].pop(next(iter(blob["state"])))  # a weight the current network expects
    torch.save(blob, tmp_path / "old.pt")
    with pytest.raises(DiffbioError, match="another version of the network"):
        load_checkpoint(tmp_path / "old.pt")


def test_train_and_evaluate_commands(tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "train",
        "--out",
        str(out),
        "--subjects",
        "3",
        "--sequences",
        "1",
        "--seq-len",
        "8",
        "--epochs",
        "1",
        "--quiet",
    ]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {
        "mae_deg",
        "root_geodesic_deg",
        "root_flip_pct",
        "pa_mpjpe_mm",
        "mpjve_mm_s",
        "scale_l1",
    }
    assert (
        main(
            [
                "evaluate",
                str(out / "model.pt"),
                "--subjects",
                "1",
                "--sequences",
                "1",
                "--json",
                str(tmp_path / "e.json"),
            ]
        )
        == 0
    )
    assert "pa_mpjpe_mm" in capsys.readouterr().out
    assert main(["evaluate", str(tmp_path / "missing.pt")]) == 2


def test_keypoint_weight_ramps_up_per_step(setup, monkeypatch):
    import diffbio.nn._train as tr

    seen = []
    real = tr.total_loss

    def spy(model, weights, *args):
        seen.append(weights.pos)
        return real(model, weights, *args)

    monkeypatch.setattr(tr, "total_loss", spy)
    model, data = setup
    _fit(model, data, epochs=2)  # 3 batches per epoch, warm-up over 0.3 x 6 steps
    assert seen[0] == pytest.approx(100.0 / 1.8) and seen[1:] == [100.0] * 5
