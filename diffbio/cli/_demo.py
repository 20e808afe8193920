"""``diffbio demo [--out DIR]``: the main job on the built-in model and synthetic walk."""

from __future__ import annotations

import json

from diffbio.cli._common import print_table


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the chain on the built-in model and synthetic walk")
    p.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    p.add_argument("--height", type=float, default=1.75, help="subject height [m]")
    p.add_argument("--mass", type=float, default=75.0, help="subject mass [kg]")
    p.add_argument("--duration", type=float, default=2.0, help="trial length [s]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from diffbio.pipeline import run_demo

    quiet = args.json
    report = run_demo(
        args.out,
        height=args.height,
        mass=args.mass,
        duration=args.duration,
        seed=args.seed,
        plots=not args.no_plots,
        progress=(lambda *_: None) if quiet else print,
    )
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
        return 0
    print()
    print_table([list(r) for r in report.rows], ["stage", "quantity", "value", "unit"])
    print()
    print(f"wrote {len(report.files)} files to {report.out_dir}/")
    return 0
