"""``diffbio inspect MODEL [--json]``: bodies, coordinates, muscles, mass."""

from __future__ import annotations

import json
import math

from diffbio.cli._common import load_model_arg, print_table


def register(sub) -> None:
    p = sub.add_parser("inspect", help="describe a model: bodies, coordinates, muscles, mass")
    p.add_argument("model", help="an OpenSim .osim file, or 'default' for the built-in model")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    model = load_model_arg(args.model)
    info = model.summary()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"model {info['name']}  ({info['source'] or 'built-in'})")
    print(
        f"mass {info['mass_kg']:.3f} kg, {len(info['bodies'])} bodies, "
        f"{len(info['coordinates'])} coordinates, {len(info['muscles'])} muscles, "
        f"{len(info['markers'])} markers"
    )
    print()
    print_table([[b["name"], b["mass_kg"]] for b in info["bodies"]], ["body", "mass [kg]"])
    print()
    rows = []
    for c in info["coordinates"]:
        deg = c["type"] != "translational"
        f = math.degrees if deg else (lambda v: v)
        rows.append(
            [
                c["name"],
                c["type"],
                f"{f(c['range'][0]):.4g}",
                f"{f(c['range'][1]):.4g}",
                "deg" if deg else "m",
                "locked" if c["locked"] else "",
            ]
        )
    print_table(rows, ["coordinate", "type", "min", "max", "unit", ""])
    if info["muscles"]:
        print()
        print("muscles: " + ", ".join(info["muscles"]))
    return 0
