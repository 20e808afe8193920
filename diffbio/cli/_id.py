"""``diffbio id MODEL --motion MOT --loads XML [--lowpass HZ] [--time T0 T1] --out OUT.sto``.

Inverse dynamics as OpenSim's InverseDynamicsTool runs it: the coordinates are (optionally)
low-pass filtered, splined (``GCVSplineSet(5)``) and differentiated; coordinates missing
from the motion keep their default value; the external loads are interpolated at the frame
times; muscles are excluded. Output columns ``<coord>_moment`` (rotational) and
``<coord>_force`` (otherwise), as OpenSim names them.
"""

from __future__ import annotations

from pathlib import Path

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
    from diffbio.dynamics import (
        inverse_dynamics,
        load_trial,
        root_residuals,
        wrenches_from_external_loads,
    )
    from diffbio.io import Storage, write_storage

    model = load_model_arg(args.model)
    trial = load_trial(
        model, args.motion, args.loads, time_range=args.time, lowpass_hz=args.lowpass
    )
    if trial.limited_to_loads and args.time is None:
        print(f"note: limiting to {trial.time[0]:g}-{trial.time[-1]:g} s, where loads exist")
    if trial.missing_coordinates:
        print(
            f"note: {len(trial.missing_coordinates)} coordinate(s) not in the motion keep "
            "their default value"
        )
    t, loads, qt, qdt, qddt = trial.time, trial.loads, trial.q, trial.qd, trial.qdd
    Q = model.num_coordinates
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
