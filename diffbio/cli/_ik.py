"""``diffbio ik MODEL --markers TRC [--setup IK_SETUP.xml] [--scale] --out OUT.mot``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from diffbio._errors import DiffbioError
from diffbio.cli._common import load_model_arg, print_table


def register(sub) -> None:
    p = sub.add_parser("ik", help="inverse kinematics (and optional scaling) from markers")
    p.add_argument("model", help="an OpenSim .osim file, or 'default'")
    p.add_argument("--markers", required=True, help="marker trajectories (.trc)")
    p.add_argument("--setup", help="OpenSim IK setup .xml (marker weights, tasks, time range)")
    p.add_argument("--time", nargs=2, type=float, metavar=("T0", "T1"))
    p.add_argument("--scale", action="store_true", help="also fit segment scale factors")
    p.add_argument("--out", required=True, help="output motion (.mot, degrees)")
    p.set_defaults(func=run)


def run(args) -> int:
    from diffbio.fitting import fit_scales, inverse_kinematics, read_ik_setup, write_scale_set
    from diffbio.io import Storage, read_trc, write_storage

    model = load_model_arg(args.model)
    weights, tasks, time_range = None, (), None
    if args.setup:
        setup = read_ik_setup(args.setup)
        weights, tasks, time_range = setup.marker_weights, setup.coordinate_tasks, setup.time_range
    if args.time:
        time_range = tuple(args.time)
    data = read_trc(args.markers)
    names = [n for n in data.names if n in model.marker_names and (weights is None or n in weights)]
    if not names:
        raise DiffbioError(f"{args.markers}: no marker matches the model's markers")
    sel = np.ones(len(data.time), dtype=bool)
    if time_range is not None:
        sel = (data.time >= time_range[0] - 1e-9) & (data.time <= time_range[1] + 1e-9)
        if not sel.any():
            raise DiffbioError(f"{args.markers}: no frame in the time range {time_range}")
    idx = [data.names.index(n) for n in names]
    X = torch.tensor(data.positions[sel][:, idx], dtype=torch.float64)
    if args.scale:
        fit = fit_scales(model, X, names, marker_weights=weights, coordinate_tasks=tasks)
        res = fit.ik
        sp = write_scale_set(
            Path(args.out).with_suffix("").as_posix() + "_scales.xml", model, fit.scales
        )
        print(f"wrote {sp}")
    else:
        res = inverse_kinematics(model, X, names, marker_weights=weights, coordinate_tasks=tasks)
    q = res.q.numpy().copy()
    rot = np.array(model.rotational_mask)
    q[:, rot] = np.rad2deg(q[:, rot])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_storage(
        out,
        Storage.from_arrays(
            data.time[sel], model.coordinate_names, q, in_degrees=True, name="Coordinates"
        ),
    )
    err = Storage.from_arrays(
        data.time[sel],
        ["total_squared_error", "marker_error_RMS", "marker_error_max"],
        np.stack(
            [
                res.weighted_squared_error.numpy(),
                res.marker_error_rms.numpy(),
                res.marker_error_max.numpy(),
            ],
            -1,
        ),
        name="Model Marker Errors from IK",
    )
    err_path = out.with_name(out.stem + "_ik_marker_errors.sto")
    write_storage(err_path, err)
    rms = res.marker_error_rms.numpy() * 1000
    print_table(
        [
            ["frames", int(sel.sum())],
            ["markers", len(names)],
            ["RMS error mean [mm]", float(rms.mean())],
            ["RMS error max [mm]", float(rms.max())],
            ["max error [mm]", float(res.marker_error_max.max() * 1000)],
            ["converged", f"{int(res.converged.sum())}/{len(rms)}"],
        ],
        ["inverse kinematics", "value"],
    )
    print(f"wrote {out} and {err_path}")
    return 0
