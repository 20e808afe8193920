"""``diffbio fk MODEL --motion MOT --out OUT.sto``: body origins and orientations in ground,
as OpenSim's BodyKinematics columns (``<body>_X/Y/Z`` [m], ``<body>_Ox/Oy/Oz`` [deg],
body-fixed X-Y-Z)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from diffbio.cli._common import load_model_arg, read_motion


def register(sub) -> None:
    p = sub.add_parser("fk", help="forward kinematics of a motion (BodyKinematics columns)")
    p.add_argument("model", help="an OpenSim .osim file, or 'default'")
    p.add_argument("--motion", required=True, help="coordinates (.mot/.sto)")
    p.add_argument("--out", required=True, help="output .sto")
    p.add_argument("--time", nargs=2, type=float, metavar=("T0", "T1"))
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.set_defaults(func=run)


def body_kinematics_table(model, q: torch.Tensor) -> tuple[list[str], np.ndarray]:
    """Labels and data ``(T, 6 NB)`` of the BodyKinematics-style table."""
    from diffbio.kinematics import forward_kinematics

    with torch.no_grad():
        poses = forward_kinematics(model, q)
    pos = poses.translation.cpu().numpy()
    ang = np.rad2deg(poses.euler_xyz().cpu().numpy())
    labels, cols = [], []
    for b, body in enumerate(model.body_names):
        for k, ax in enumerate("XYZ"):
            labels.append(f"{body}_{ax}")
            cols.append(pos[:, b, k])
        for k, ax in enumerate("xyz"):
            labels.append(f"{body}_O{ax}")
            cols.append(ang[:, b, k])
    return labels, np.stack(cols, -1)


def run(args) -> int:
    from diffbio.io import Storage, write_storage

    model = load_model_arg(args.model)
    time, q = read_motion(model, args.motion, args.time)
    labels, data = body_kinematics_table(model, q.to(args.device))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_storage(
        out,
        Storage.from_arrays(time, labels, data, in_degrees=True, name="BodyKinematics_pos_global"),
    )
    print(f"wrote {out} ({len(time)} frames, {model.num_bodies} bodies)")
    return 0
