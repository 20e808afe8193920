"""``diffbio so MODEL --motion MOT --loads XML [--actuators XML] [--reserves F] [--time T0 T1]
[--lowpass HZ] [--exponent P] [--passive] [--synergies K] [--device cpu|cuda] [--dtype D]
--out DIR``.

Static optimization as OpenSim's AnalyzeTool + StaticOptimization runs it (its
``activation_exponent``, 2 by default, as ``--exponent``; rigid-tendon
force-length-velocity, 6 Hz coordinate filter by default), all frames as one batch. Writes ``<name>_StaticOptimization_activation.sto`` (muscle activations, actuator
controls) and ``<name>_StaticOptimization_force.sto`` (muscle and actuator forces) with
OpenSim's column names, and prints reserve usage. ``--synergies K`` also factors the
activations into K synergies and re-solves with ``a = W c`` (plus unbounded reserves on
every coordinate), writing ``<name>_SynergyOptimization_activation.sto``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from diffbio._errors import DiffbioError


def register(sub) -> None:
    p = sub.add_parser("so", help="static optimization (muscle activations) of a motion")
    p.add_argument("model", help="an OpenSim .osim file")
    p.add_argument("--motion", required=True, help="coordinates (.mot / .sto)")
    p.add_argument("--loads", help="ExternalLoads .xml")
    p.add_argument("--actuators", help="reserve/residual actuators .xml (a <ForceSet>)")
    p.add_argument(
        "--reserves",
        type=float,
        metavar="F",
        help="add a reserve actuator of optimal force F on every unlocked coordinate",
    )
    p.add_argument("--time", nargs=2, type=float, metavar=("T0", "T1"))
    p.add_argument(
        "--lowpass",
        type=float,
        default=6.0,
        metavar="HZ",
        help="coordinate low-pass cutoff (default 6; negative: none)",
    )
    p.add_argument(
        "--exponent",
        type=float,
        default=2.0,
        metavar="P",
        help="activation exponent p > 1 of the cost sum |a|^p (OpenSim's activation_exponent; "
        "default 2)",
    )
    p.add_argument("--passive", action="store_true", help="include passive muscle force")
    p.add_argument("--synergies", type=int, metavar="K", help="also synergy-constrained SO")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    p.add_argument("--name", default="so", help="output file prefix (default so)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=run)


def _write(path: Path, time, labels, data, name) -> None:
    from diffbio.io import Storage, write_storage

    write_storage(
        path, Storage.from_arrays(np.asarray(time), list(labels), np.asarray(data), name=name)
    )


def reserve_report(frames, result) -> list[str]:
    """One line per actuator: RMS and peak force, and its share of the generalized force."""
    lines = []
    F = result.actuator_forces.detach().cpu().double().numpy()
    tau = frames.tau.detach().cpu().double().numpy()
    for k, a in enumerate(frames.actuators):
        f = F[:, k]
        unit = "N m" if a.kind.value != "PointActuator" else "N"
        line = f"  {a.name:28s} rms {np.sqrt((f**2).mean()):9.3f} {unit}  peak {np.abs(f).max():9.3f} {unit}"
        if a.coordinate:
            j = frames.coordinates.index(a.coordinate)
            rms_tau = np.sqrt((tau[:, j] ** 2).mean())
            if rms_tau > 0:
                line += f"  ({100 * np.sqrt((f**2).mean()) / rms_tau:5.1f}% of rms {a.coordinate} moment)"
        lines.append(line)
    return lines


def run(args) -> int:
    from diffbio.muscles import (
        load_static_optimization_trial,
        reserve_actuators,
        solve_static_optimization,
    )

    if args.device == "cuda" and not torch.cuda.is_available():
        raise DiffbioError("--device cuda: no CUDA device is available")
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    actuators = []
    if args.actuators:
        from diffbio.muscles import read_actuators

        actuators += list(read_actuators(args.actuators))
    if args.reserves is not None:
        from diffbio.model import load_osim

        actuators += list(
            reserve_actuators(load_osim(Path(args.model)), optimal_force=args.reserves)
        )
    model, frames = load_static_optimization_trial(
        args.model,
        args.motion,
        args.loads,
        actuators,
        time_range=args.time,
        lowpass_hz=None if args.lowpass < 0 else args.lowpass,
        progress=True,
    )
    frames = frames.to(dtype=dtype, device=args.device)
    res = solve_static_optimization(frames, passive=args.passive, exponent=args.exponent)
    bad = int((res.status != 0).sum())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = list(frames.muscles) + [a.name for a in frames.actuators]
    act = torch.cat([res.activations, res.controls], -1).detach().cpu().double().numpy()
    frc = torch.cat([res.muscle_forces, res.actuator_forces], -1).detach().cpu().double().numpy()
    p_act = out / f"{args.name}_StaticOptimization_activation.sto"
    p_frc = out / f"{args.name}_StaticOptimization_force.sto"
    _write(p_act, frames.time, names, act, "Static Optimization")
    _write(p_frc, frames.time, names, frc, "Static Optimization")
    print(
        f"wrote {p_act} and {p_frc} ({len(frames.time)} frames, {len(frames.muscles)} muscles, "
        f"{len(frames.actuators)} actuators)"
    )
    if bad:
        print(f"warning: {bad} frame(s) not solved (NaN in the output)")
    if frames.actuators:
        print("actuator usage:")
        print("\n".join(reserve_report(frames, res)))
    if args.synergies:
        _synergies(args, model, frames, res, out)
    return 0


def _synergies(args, model, frames, res, out: Path) -> None:
    from dataclasses import replace

    from diffbio.muscles import (
        actuator_generalized_forces,
        nmf,
        reserve_actuators,
        synergy_static_optimization,
    )

    A = res.activations.detach().double().cpu()
    syn = nmf(A, args.synergies, restarts=8)
    print(f"synergies: K = {args.synergies}, VAF {100 * float(syn.vaf):.1f}%")
    extra = reserve_actuators(model, [c for c, k in zip(frames.coordinates, frames.keep) if k])
    fr = frames.to(dtype=torch.float64, device="cpu")
    # reserves are coordinate actuators: their generalized forces need no pose
    S_extra = actuator_generalized_forces(
        model, extra, torch.zeros(len(fr.time), len(fr.coordinates), dtype=torch.float64)
    )
    S = torch.cat([fr.actuator_moments, S_extra], -1)
    acts = tuple(fr.actuators) + tuple(extra)
    fr = replace(fr, actuator_moments=S, actuators=acts)
    cmin = torch.tensor([a.min_control for a in acts], dtype=torch.float64)
    cmax = torch.tensor([a.max_control for a in acts], dtype=torch.float64)
    r = synergy_static_optimization(
        syn.W,
        fr.tau,
        fr.moment_arms,
        fr.F_active_per_a,
        fr.F_passive if args.passive else None,
        S,
        a_min=0.0,
        a_max=fr.a_max,
        control_min=cmin,
        control_max=cmax,
        keep=fr.keep,
    )
    n0 = len(frames.actuators)
    u = r.controls[:, n0:].detach().numpy()
    print(
        f"synergy-constrained SO: reserve moment rms {np.sqrt((u**2).mean()):.3f} N m, "
        f"peak {np.abs(u).max():.3f} N m over {len(extra)} coordinates"
    )
    p = out / f"{args.name}_SynergyOptimization_activation.sto"
    names = list(fr.muscles) + [a.name for a in acts]
    data = torch.cat([r.activations, r.controls], -1).detach().numpy()
    _write(p, fr.time, names, data, "Synergy-constrained static optimization")
    print(f"wrote {p}")
