"""``diffbio train --out DIR``: train the video-to-kinematics network on synthetic data (or on
a data set of precomputed features, ``--data FILE.pt``), with a progress bar, a seed, a
checkpoint ``DIR/model.pt``, the per-epoch history ``DIR/history.json`` and the test metrics
``DIR/metrics.json``."""

from __future__ import annotations

import json
from pathlib import Path

from diffbio._errors import DiffbioError


def register(sub) -> None:
    p = sub.add_parser("train", help="train the video-to-kinematics network (synthetic data)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--size", choices=["cpu", "full"], default="cpu", help="network size")
    p.add_argument(
        "--data", help="a .pt data set (features, q, scales, subject, kinds, frame_rate)"
    )
    p.add_argument("--subjects", type=int, default=24)
    p.add_argument("--sequences", type=int, default=4, help="sequences per subject")
    p.add_argument("--seq-len", type=int, default=32)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bio-weight", type=float, default=1.0)
    p.add_argument("--pos-weight", type=float, default=100.0)
    p.add_argument("--physics-weight", type=float, default=0.0)
    p.add_argument("--frame-based", action="store_true", help="no temporal refinement")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def load_dataset(args):
    """The data set of ``--data``, or a synthetic one from the size arguments."""
    import torch

    from diffbio.data import KinematicsDataset, SyntheticConfig, synthetic_dataset
    from diffbio.model import default_model

    if args.data:
        try:
            blob = torch.load(args.data, weights_only=False)
            return KinematicsDataset(
                **{
                    k: blob[k]
                    for k in ("features", "q", "scales", "subject", "kinds", "frame_rate")
                }
            )
        except (OSError, KeyError, RuntimeError, TypeError) as exc:
            raise DiffbioError(f"{args.data}: not a data set file ({exc})") from None
    cfg = SyntheticConfig(
        num_subjects=args.subjects, sequences_per_subject=args.sequences, seq_len=args.seq_len
    )
    return synthetic_dataset(default_model(), cfg, seed=args.seed)


def run(args) -> int:
    import torch

    from diffbio.cli._common import print_table
    from diffbio.model import default_model
    from diffbio.nn import (
        KinematicsNet,
        LossWeights,
        NetConfig,
        TrainConfig,
        evaluate,
        save_checkpoint,
        train,
    )

    skeleton = default_model()
    data = load_dataset(args)
    if data.q.shape[-1] != skeleton.num_coordinates:
        raise DiffbioError(
            f"data set has {data.q.shape[-1]} coordinates; the default model has {skeleton.num_coordinates}"
        )
    tr, va, te = data.split_by_subject((0.7, 0.15, 0.15), seed=args.seed)
    make = NetConfig.small if args.size == "cpu" else NetConfig.full
    torch.manual_seed(args.seed)  # the initial weights depend on the seed only
    net = KinematicsNet(
        make(
            data.features.shape[-1],
            skeleton.num_coordinates,
            skeleton.num_bodies,
            seq_len=data.features.shape[1],
            sequence=not args.frame_based,
        )
    )
    weights = LossWeights(bio=args.bio_weight, pos=args.pos_weight, physics=args.physics_weight)
    cfg = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        weights=weights,
        device=args.device,
    )
    result = train(skeleton, net, tr, va if len(va) else None, cfg, progress=not args.quiet)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    metrics = evaluate(skeleton, net, te if len(te) else tr, device=args.device)
    save_checkpoint(
        out / "model.pt",
        net,
        {"seconds": result.seconds, "best_epoch": result.best_epoch, "seed": args.seed},
    )
    (out / "history.json").write_text(json.dumps(list(result.history), indent=1))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    print_table([[k, v] for k, v in metrics.items()], ["test metric", "value"])
    print(f"trained {args.epochs} epochs in {result.seconds:.0f} s; wrote {out / 'model.pt'}")
    return 0
