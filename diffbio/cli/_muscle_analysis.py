"""``diffbio muscle-analysis MODEL --motion MOT --out DIR``: as OpenSim's MuscleAnalysis,
``<name>_Length.sto`` (muscle-tendon lengths, m) and ``<name>_MomentArm_<coord>.sto`` (m) for
each coordinate; with ``--activation A`` also ``<name>_FiberLength.sto`` (m) and
``<name>_TendonForce.sto`` (N) of a rigid-tendon Hill model at that activation."""

from __future__ import annotations

from pathlib import Path

import torch

from diffbio.cli._common import load_model_arg, read_motion


def register(sub) -> None:
    p = sub.add_parser(
        "muscle-analysis", help="muscle-tendon lengths and moment arms over a motion"
    )
    p.add_argument("model", help="an OpenSim .osim file")
    p.add_argument("--motion", required=True, help="coordinates (.mot/.sto)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--name", default=None, help="file prefix (default: the model name)")
    p.add_argument("--time", nargs=2, type=float, metavar=("T0", "T1"))
    p.add_argument(
        "--activation", type=float, default=None, help="activation for fibre lengths and forces"
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from diffbio.muscles._analysis import muscle_analysis, write_muscle_analysis

    model = load_model_arg(args.model)
    time, q = read_motion(model, args.motion, args.time)
    q = torch.as_tensor(q, dtype=torch.float64)
    with torch.no_grad():
        result = muscle_analysis(model, q, time)
    extra = {}
    if args.activation is not None:
        from diffbio.muscles import muscle_parameters_from_osim, rigid_tendon_force
        from diffbio.muscles._path_length import muscle_tendon_velocities

        params = muscle_parameters_from_osim(model.source, list(result.muscles))
        dt = torch.tensor(list(time), dtype=torch.float64)
        qd = torch.gradient(q, spacing=(dt,), dim=0)[0] if q.shape[0] > 1 else torch.zeros_like(q)
        with torch.no_grad():
            v = muscle_tendon_velocities(model, q, qd)
            a = torch.full_like(result.lengths, args.activation)
            f = rigid_tendon_force(a, result.lengths, v, params)
        extra = {"FiberLength": f.fiber_length.numpy(), "TendonForce": f.tendon_force.numpy()}
    name = args.name or model.name
    written = write_muscle_analysis(result, Path(args.out), name, extra)
    print(
        f"wrote {len(written)} files to {args.out} ({len(time)} frames, {len(result.muscles)} muscles)"
    )
    return 0
