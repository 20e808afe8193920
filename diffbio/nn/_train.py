"""Training, evaluation and checkpoints of :class:`KinematicsNet`."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from diffbio._errors import DiffbioError
from diffbio.data._synthetic import KinematicsDataset
from diffbio.model import Model
from diffbio.nn._losses import LossWeights, total_loss
from diffbio.nn._metrics import (
    mae_deg,
    mpjve,
    pa_mpjpe,
    root_flip_fraction,
    root_geodesic_deg,
    skeleton_points,
)
from diffbio.nn._network import KinematicsNet, NetConfig

__all__ = ["TrainConfig", "TrainResult", "evaluate", "load_checkpoint", "save_checkpoint", "train"]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings: AdamW with a one-cycle schedule; ``epochs``, ``batch_size``,
    ``lr``, ``weight_decay``, ``seed``, loss ``weights``, ``device``, ``grad_clip``;
    ``pos_warmup``: the fraction of the optimisation steps over which the keypoint (and
    physics) weights ramp up linearly per optimisation step (1 / n of their value at the
    first of the n = pos_warmup x steps warm-up steps), so that the angle terms first bring
    the pelvis orientation near the labels, on the labels' Euler branch (the keypoint loss is ill-conditioned between pelvis tilt and hip flexion, and
    blind to the branch of the pelvis Euler triple)."""

    epochs: int = 30
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    weights: LossWeights = field(default_factory=LossWeights)
    device: str = "cpu"
    grad_clip: float = 1.0
    pos_warmup: float = 0.3


@dataclass(frozen=True)
class TrainResult:
    """``history``: per epoch the mean training terms and validation metrics;
    ``seconds``: wall time of training; ``best_epoch``: by the validation ``mae_deg``
    (branch-aware for the root orientation, see :func:`diffbio.nn.mae_deg`)."""

    history: tuple[dict, ...]
    seconds: float
    best_epoch: int


def _batches(n: int, size: int, rng: np.random.Generator | None):
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for i in range(0, n, size):
        yield torch.as_tensor(order[i : i + size], dtype=torch.long)


def train(
    skeleton: Model,
    net: KinematicsNet,
    train_set: KinematicsDataset,
    val_set: KinematicsDataset | None,
    config: TrainConfig,
    *,
    progress: bool = True,
    checkpoint: str | Path | None = None,
) -> TrainResult:
    """Train ``net`` in place (normalisation from ``train_set``); keeps the weights of the
    epoch with the best validation MAE when ``val_set`` is given, and writes them to
    ``checkpoint`` when given."""
    from tqdm import tqdm

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    dev = torch.device(config.device)
    net.to(dev)
    net.set_normalization(train_set.features.to(dev), train_set.q.to(dev))
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = config.epochs * max(1, -(-len(train_set) // config.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=steps, pct_start=0.1)
    history: list[dict] = []
    best, best_state, best_epoch = float("inf"), None, -1
    step = 0
    t0 = time.perf_counter()
    bar = tqdm(range(config.epochs), desc="train", disable=not progress)
    for epoch in bar:
        net.train()
        sums: dict[str, float] = {}
        nb = 0
        for idx in _batches(len(train_set), config.batch_size, rng):
            ramp = (
                min(1.0, (step + 1) / (config.pos_warmup * steps)) if config.pos_warmup > 0 else 1.0
            )
            step += 1
            w = replace(
                config.weights, pos=ramp * config.weights.pos, physics=ramp * config.weights.physics
            )
            f = train_set.features[idx].to(dev)
            q, s = train_set.q[idx].to(dev), train_set.scales[idx].to(dev)
            pred = net(f)
            loss, terms = total_loss(
                skeleton,
                w,
                pred.q,
                pred.free_vec,
                pred.scales,
                q,
                s,
                net.free_idx,
                train_set.frame_rate,
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
            opt.step()
            sched.step()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v
            nb += 1
        row = {"epoch": epoch, **{f"train_{k}": v / nb for k, v in sums.items()}}
        if val_set is not None:
            metrics = evaluate(skeleton, net, val_set, device=config.device)
            row.update({f"val_{k}": v for k, v in metrics.items()})
            if metrics["mae_deg"] < best:
                best, best_epoch = metrics["mae_deg"], epoch
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            bar.set_postfix(mae=f"{metrics['mae_deg']:.2f}", pa=f"{metrics['pa_mpjpe_mm']:.1f}")
        history.append(row)
    if best_state is not None:
        net.load_state_dict(best_state)
    seconds = time.perf_counter() - t0
    if checkpoint is not None:
        save_checkpoint(
            checkpoint, net, {"train_config": _plain(asdict(config)), "seconds": seconds}
        )
    return TrainResult(history=tuple(history), seconds=seconds, best_epoch=best_epoch)


@torch.no_grad()
def evaluate(
    skeleton: Model,
    net: KinematicsNet,
    data: KinematicsDataset,
    *,
    batch_size: int = 32,
    device: str = "cpu",
) -> dict[str, float]:
    """Metrics of ``net`` on ``data``, means over all frames: ``mae_deg`` [deg] (the root's
    Euler triple scored branch-aware, :func:`diffbio.nn.mae_deg`), ``root_geodesic_deg``
    [deg] (angle between predicted and true root orientation), ``root_flip_pct`` [%] (frames
    whose root triple is predicted on the other, equivalent branch), ``pa_mpjpe_mm`` [mm],
    ``mpjve_mm_s`` [mm/s] and ``scale_l1``."""
    net.eval()
    dev = torch.device(device)
    qs, ss = [], []
    for idx in _batches(len(data), batch_size, None):
        pred = net(data.features[idx].to(dev))
        qs.append(pred.q.cpu())
        ss.append(pred.scales.cpu())
    q, s = torch.cat(qs).double(), torch.cat(ss).double()
    qt, st = data.q.double(), data.scales.double()
    pp = skeleton_points(skeleton, q, s.unsqueeze(-3))
    pt = skeleton_points(skeleton, qt, st.unsqueeze(-3))
    return {
        "mae_deg": float(mae_deg(skeleton, q, qt)),
        "root_geodesic_deg": float(root_geodesic_deg(skeleton, q, qt)),
        "root_flip_pct": 100.0 * float(root_flip_fraction(skeleton, q, qt)),
        "pa_mpjpe_mm": float(pa_mpjpe(pp, pt)),
        "mpjve_mm_s": float(mpjve(pp, pt, data.frame_rate)),
        "scale_l1": float((s - st).abs().mean()),
    }


def _plain(x):
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def save_checkpoint(path: str | Path, net: KinematicsNet, extra: dict | None = None) -> None:
    """Write the network's configuration and weights (and ``extra``) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"net_config": asdict(net.config), "state": net.state_dict(), "extra": extra or {}}, path
    )


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[KinematicsNet, dict]:
    """``(network in eval mode, extra)`` from a checkpoint written by :func:`save_checkpoint`."""
    path = Path(path)
    try:
        blob = torch.load(path, map_location=device, weights_only=True)
        cfg = blob["net_config"]
    except (OSError, RuntimeError, KeyError, EOFError) as exc:
        raise DiffbioError(f"{path}: not a diffbio network checkpoint ({exc})") from None
    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}
    try:
        net = KinematicsNet(NetConfig(**cfg))
        net.load_state_dict(blob["state"])
    except (TypeError, RuntimeError, KeyError) as exc:
        first = str(exc).splitlines()[0]
        raise DiffbioError(
            f"{path}: written by another version of the network ({first}); retrain it"
        ) from None
    return net.to(device).eval(), blob.get("extra", {})
