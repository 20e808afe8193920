"""``diffbio evaluate CHECKPOINT``: MAE [deg], PA-MPJPE [mm] and MPJVE [mm/s] of a trained
network on held-out synthetic subjects (a fresh seed) or on ``--data FILE.pt``."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="evaluate a trained video-to-kinematics network")
    p.add_argument("checkpoint", help="model.pt written by 'diffbio train'")
    p.add_argument("--data", help="a .pt data set (default: synthetic subjects from --seed)")
    p.add_argument("--subjects", type=int, default=6)
    p.add_argument("--sequences", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=None, help="default: the network's")
    p.add_argument("--seed", type=int, default=1000, help="seed of the synthetic test subjects")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", help="also write the metrics here")
    p.set_defaults(func=run)


def run(args) -> int:
    from diffbio.cli._common import print_table
    from diffbio.cli._train import load_dataset
    from diffbio.model import default_model
    from diffbio.nn import evaluate, load_checkpoint

    net, _ = load_checkpoint(args.checkpoint, args.device)
    if args.seq_len is None:
        args.seq_len = net.config.seq_len
    data = load_dataset(args)
    metrics = evaluate(default_model(), net, data, device=args.device)
    print_table([[k, v] for k, v in metrics.items()], ["metric", "value"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(metrics, f, indent=1)
    return 0
