"""``diffbio id MODEL --motion MOT --loads XML [--lowpass HZ] [--time T0 T1] --out OUT.sto``.

Inverse dynamics as OpenSim's InverseDynamicsTool runs it: the coordinates are (optionally)
low-pass filtered, splined (``GCVSplineSet(5)``) and differentiated; coordinates missing
from the motion keep their default value; the external loads are interpolated at the frame
times; muscles are excluded. Output columns ``<coord>_moment`` (rotational) and
``<coord>_force`` (otherwise), as OpenSim names them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from diffbio._errors import DiffbioError
from diffbio.cli._common import load_model_arg


def register(sub) -> None:
    p = sub.add_parser("id", help="inverse dynamics (generalized forces) of a motion")
    p.add_argument("model", help="an OpenSim .osim file, or 'default'")
    p.add_argument("--motion", required=True, help="coordinates (.mot / .sto)")
    p.add_argument("--loads", help="ExternalLoads .xml (its datafile holds the forces)")
    p.add_argument("--lowpass", type=float, metavar="HZ", help="low-pass cutoff for coordinates")
    p.add_argument("--time", nargs=2, type=float, metavar=("T0", "T1"))
    p.add_argument("--out", required=True, help="output generalized forces (.sto)")
    p.add_argument("--residuals", action="store_true", help="print the root residuals")
    p.set_defaults(func=run)


def output_labels(model) -> list[str]:
    """OpenSim's InverseDynamicsTool column names for ``model``'s coordinates."""
    return [
        c + ("_moment" if rot else "_force")
        for c, rot in zip(model.coordinate_names, model.rotational_mask)
    ]


def run(args) -> int:
    from diffbio.dynamics import inverse_dynamics, root_residuals, wrenches_from_external_loads
    from diffbio.io import (
        Storage,
        prepare_coordinates,
        read_external_loads,
        read_storage,
        write_storage,
    )

    model = load_model_arg(args.model)
    storage = read_storage(args.motion)
    loads = read_external_loads(args.loads) if args.loads else None
    if loads is not None:
        for name in loads.bodies():
            if name not in model.body_names:
                raise DiffbioError(
                    f"{args.loads}: external load applied to body {name!r}, which model "
                    f"{model.name!r} does not have (bodies: {', '.join(model.body_names)})"
                )
    m0, m1 = float(storage.time[0]), float(storage.time[-1])
    t0, t1 = (m0, m1) if args.time is None else (float(args.time[0]), float(args.time[1]))
    if t0 > t1:
        raise DiffbioError(f"--time {t0:g} {t1:g}: the start is after the end")
    if t1 < m0 or t0 > m1:
        raise DiffbioError(
            f"{args.motion}: time range {t0:g}-{t1:g} s does not overlap the motion "
            f"({m0:g}-{m1:g} s)"
        )
    if loads is not None:
        l0, l1 = float(loads.time[0]), float(loads.time[-1])
        if t1 < l0 or t0 > l1:
            raise DiffbioError(
                f"{args.loads}: time range {t0:g}-{t1:g} s does not overlap the external "
                f"loads ({l0:g}-{l1:g} s)"
            )
        if args.time is None and (l0 > m0 or l1 < m1):
            print(f"note: limiting to {max(t0, l0):g}-{min(t1, l1):g} s, where loads exist")
        t0, t1 = max(t0, l0), min(t1, l1)

    present = [c for c in model.coordinate_names if c in storage.labels]
    if not present:
        raise DiffbioError(f"{args.motion}: no column matches a coordinate of {model.name!r}")
    rot = {c for c, r in zip(model.coordinate_names, model.rotational_mask) if r and c in present}
    t, qp, qdp, qddp = prepare_coordinates(
        storage, present, lowpass_hz=args.lowpass, time_range=(t0, t1), rotational=rot
    )
    Q = model.num_coordinates
    q = np.tile(model.default_q().numpy(), (len(t), 1))
    qd = np.zeros((len(t), Q))
    qdd = np.zeros((len(t), Q))
    idx = [model.coordinate_index(c) for c in present]
    q[:, idx], qd[:, idx], qdd[:, idx] = qp, qdp, qddp
    missing = [c for c in model.coordinate_names if c not in storage.labels]
    if missing:
        print(f"note: {len(missing)} coordinate(s) not in the motion keep their default value")
    qt, qdt, qddt = (torch.tensor(a) for a in (q, qd, qdd))
    w = wrenches_from_external_loads(model, loads, qt, t) if loads is not None else None
    tau = inverse_dynamics(model, qt, qdt, qddt, w)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_storage(
        out,
        Storage.from_arrays(
            t, output_labels(model), tau.numpy(), name="Inverse Dynamics Generalized Forces"
        ),
    )
    print(f"wrote {out} ({len(t)} frames, {Q} coordinates)")
    if args.residuals and w is not None:
        r = root_residuals(model, qt, qdt, qddt, w)
        print(
            f"root residuals: max force {float(r.max_force):.2f} N "
            f"({'ok' if bool(r.force_ok) else 'above'} 5% of peak external force "
            f"{float(r.peak_external_force):.1f} N), max moment {float(r.max_moment):.2f} N m "
            f"({'ok' if bool(r.moment_ok) else 'above'} 1% of COM height x peak force)"
        )
    return 0
