"""``diffbio tissue SCENARIO``: soft-tissue experiments (uniaxial, shear, torsion, knee-cuff, fit).

Each prints a table, or with ``--json`` one JSON object, e.g.
``diffbio tissue uniaxial --E 12000 --nu 0.475 --stretch 1.2 --json`` (``nominal_stress_Pa``)
and ``diffbio tissue torsion --E 12000 --nu 0.475 --inner-radius 0.02 --outer-radius 0.05
--length 0.1 --json`` (``stiffness_Nm_per_rad``; by default the alternating split and the
nodal-average volumetric term, ``--split kuhn --volumetric element`` for plain linear tets).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from diffbio._errors import DiffbioError, FileFormatError

SCENARIOS = ("uniaxial", "shear", "torsion", "knee-cuff", "fit")


def register(sub) -> None:
    p = sub.add_parser("tissue", help="soft-tissue FEM experiments (SVK / stable neo-Hookean)")
    p.add_argument("scenario", choices=SCENARIOS)
    p.add_argument("--E", type=float, default=12000.0, help="Young's modulus [Pa]")
    p.add_argument("--nu", type=float, default=0.475, help="Poisson's ratio")
    p.add_argument(
        "--model",
        choices=["svk", "stable_neo_hookean"],
        help="strain energy (default: svk; stable_neo_hookean for knee-cuff)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    g = p.add_argument_group("uniaxial / shear")
    g.add_argument("--stretch", type=float, default=1.2)
    g.add_argument("--gamma", type=float, default=0.3, help="shear amount")
    g.add_argument("--cells", type=int, default=2, help="cells per side of the cube")
    g.add_argument(
        "--jitter", type=float, default=0.2, help="interior node jitter (fraction of a cell)"
    )
    g = p.add_argument_group("torsion")
    g.add_argument("--inner-radius", type=float, default=0.02, help="bone radius a [m]")
    g.add_argument("--outer-radius", type=float, default=0.05, help="skin radius b [m]")
    g.add_argument("--length", type=float, default=0.1, help="[m]")
    g.add_argument("--refine", type=int, nargs="+", default=[1, 2, 3], help="refinement levels")
    g.add_argument(
        "--base",
        type=int,
        nargs=3,
        default=[2, 16, 1],
        metavar=("NR", "NC", "NA"),
        help="radial, circumferential, axial cells at refine 1 (each times the level)",
    )
    g.add_argument(
        "--split",
        choices=["alternating", "kuhn"],
        default="alternating",
        help="tetrahedral split of each cell (kuhn: all along one diagonal)",
    )
    g.add_argument(
        "--volumetric",
        choices=["nodal_average", "element"],
        default="nodal_average",
        help="lam term on nodal averages (anti-locking) or per element (plain linear tets)",
    )
    g.add_argument(
        "--radial-grading", type=float, default=1.0, help="growth of radial layers outward"
    )
    g = p.add_argument_group("knee-cuff")
    g.add_argument("--peak-torque", type=float, default=10.0, help="[N m]")
    g.add_argument("--exo-stiffness", type=float, default=300.0, help="[N m/rad]")
    g.add_argument("--steps", type=int, default=40, help="time steps per gait cycle")
    g.add_argument("--cycles", type=int, default=2)
    g.add_argument("--period", type=float, default=1.0, help="gait cycle [s]")
    g.add_argument("--alpha", type=float, default=0.0, help="mass damping [1/s]")
    g.add_argument("--beta", type=float, default=0.02, help="stiffness damping [s]")
    g.add_argument("--contact", default="contact", choices=["contact", "tied"])
    g.add_argument("--coarse", action="store_true", help="coarse sleeves (576 elements each)")
    g = p.add_argument_group("fit")
    g.add_argument("--E0", type=float, default=6000.0, help="initial guess [Pa]")
    g.add_argument("--nu0", type=float, default=0.3, help="initial guess")
    g.add_argument("--torque-angle", help="CSV angle_rad,torque_Nm of the annulus torsion")
    g.add_argument(
        "--force-displacement", help="CSV stretch,force_N of confined compression of a 1 cm cube"
    )
    p.set_defaults(func=run)


def _print_table(rows: list[list], header: list[str]) -> None:
    cells = [header] + [[f"{c:.6g}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    w = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for k, r in enumerate(cells):
        print("  ".join(c.rjust(w[i]) for i, c in enumerate(r)))
        if k == 0:
            print("  ".join("-" * x for x in w))


def _emit(args, obj: dict, rows: list[list], header: list[str]) -> None:
    if args.json:
        print(json.dumps(obj))
    else:
        _print_table(rows, header)


def _read_pairs(path: str) -> tuple[np.ndarray, np.ndarray]:
    p = Path(path)
    xs, ys = [], []
    for n, line in enumerate(p.read_text().splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#") or (n == 1 and not s[0].isdigit() and s[0] not in "+-."):
            continue
        parts = s.split(",")
        if len(parts) != 2:
            raise FileFormatError(
                p, f"expected 2 comma-separated columns, got {len(parts)}", line=n
            )
        try:
            xs.append(float(parts[0]))
            ys.append(float(parts[1]))
        except ValueError as exc:
            raise FileFormatError(p, f"not a number: {exc}", line=n) from exc
    if not xs:
        raise FileFormatError(p, "no data rows")
    return np.array(xs), np.array(ys)


def run(args) -> int:
    import torch

    from diffbio import tissue as T

    name = args.model or ("stable_neo_hookean" if args.scenario == "knee-cuff" else "svk")
    model = T.MaterialModel(name)
    if not (args.E > 0 and -1.0 < args.nu < 0.5):
        raise DiffbioError("need E > 0 and -1 < nu < 0.5")
    if args.scenario == "uniaxial":
        r = T.uniaxial_test(
            args.E, args.nu, args.stretch, model=model, cells=args.cells, jitter=args.jitter
        )
        rows = [[k, v] for k, v in r.items()]
        _emit(args, r, rows, ["quantity", "value"])
    elif args.scenario == "shear":
        r = T.simple_shear_test(
            args.E, args.nu, args.gamma, model=model, cells=max(args.cells, 3), jitter=args.jitter
        )
        _emit(args, r, [[k, v] for k, v in r.items()], ["quantity", "value"])
    elif args.scenario == "torsion":
        rows = T.torsion_convergence(
            args.E,
            args.nu,
            args.inner_radius,
            args.outer_radius,
            args.length,
            tuple(args.refine),
            tuple(args.base),
            split=T.TetSplit(args.split),
            volumetric=T.VolumetricTreatment(args.volumetric),
            model=model,
            radial_grading=args.radial_grading,
        )
        obj = {
            "E_Pa": args.E,
            "nu": args.nu,
            "inner_radius_m": args.inner_radius,
            "outer_radius_m": args.outer_radius,
            "length_m": args.length,
            "split": args.split,
            "volumetric": args.volumetric,
            "stiffness_Nm_per_rad": rows[-1]["stiffness_Nm_per_rad"],
            "exact_Nm_per_rad": rows[-1]["exact_Nm_per_rad"],
            "convergence": rows,
        }
        _emit(
            args,
            obj,
            [
                [
                    r["refine"],
                    "x".join(str(d) for d in r["divisions"]),
                    r["elements"],
                    r["stiffness_Nm_per_rad"],
                    r["exact_Nm_per_rad"],
                    r["rel_error"],
                    "-" if r["order"] is None else r["order"],
                ]
                for r in rows
            ],
            ["refine", "cells", "elements", "k [N m/rad]", "exact", "rel. error", "order"],
        )
    elif args.scenario == "knee-cuff":
        from dataclasses import replace

        segs = (T._knee.THIGH, T._knee.SHANK)
        if args.coarse:
            segs = tuple(replace(s, n_radial=2, n_circ=8, n_axial=6) for s in segs)
        res = T.knee_exo_gait(
            E=args.E,
            nu=args.nu,
            alpha=args.alpha,
            beta=args.beta,
            model=model,
            peak_torque=args.peak_torque,
            exo_stiffness=args.exo_stiffness,
            period=args.period,
            steps=args.steps,
            cycles=args.cycles,
            contact=T.CuffContact(args.contact),
            segments=segs,
        )
        obj = {"segments": []}
        rows = []
        for s in res.segments:
            d = {
                "name": s.name,
                "elements": s.elements,
                "transmission_percent": s.transmission_percent,
                "energy_absorbed_J_per_cycle": s.energy_absorbed_J,
                "cuff_migration_m": s.cuff_migration_m,
                "peak_pressure_Pa": s.peak_pressure_Pa,
                "peak_pressure_y_m": s.peak_y_m,
                "peak_pressure_theta_deg": s.peak_theta_deg,
                "peak_pressure_time_s": s.peak_time_s,
                "time_s": s.time.tolist(),
                "commanded_torque_Nm": s.commanded_torque.tolist(),
                "transmitted_torque_Nm": s.transmitted_torque.tolist(),
            }
            obj["segments"].append(d)
            rows.append(
                [
                    s.name,
                    s.elements,
                    s.transmission_percent,
                    s.energy_absorbed_J,
                    1000 * s.cuff_migration_m,
                    s.peak_pressure_Pa,
                    s.peak_y_m,
                    s.peak_theta_deg,
                ]
            )
        _emit(
            args,
            obj,
            rows,
            [
                "segment",
                "elements",
                "transmitted %",
                "absorbed J/cycle",
                "migration mm",
                "peak p [Pa]",
                "at y [m]",
                "theta [deg]",
            ],
        )
    elif args.scenario == "fit":
        obj = _fit(args, T, torch, model)
        rows = [[k, v] for k, v in obj.items() if not isinstance(v, list)]
        _emit(args, obj, rows, ["quantity", "value"])
    return 0


def _fit(args, T, torch, model) -> dict:
    lm = T.limb_mesh(0.02, 0.05, 0.1, n_radial=1, n_circ=8, n_axial=1)
    bm = T.box_mesh((0.01,) * 3, (1, 1, 1))
    dt = torch.float64
    if args.torque_angle:
        angles, torques = _read_pairs(args.torque_angle)
    else:
        angles, torques = np.array([0.05, 0.1]), None
    if args.force_displacement:
        stretches, forces = _read_pairs(args.force_displacement)
    else:
        stretches, forces = np.array([0.9, 0.8]), None

    def torq(lam, mu):
        return torch.stack(
            [
                T.torsion_test(
                    lm, T.Material.from_lame(lam, mu, lm.num_elements, model=model), float(a)
                )[0]
                for a in angles
            ]
        )

    def force(lam, mu):
        return torch.stack(
            [
                T.confined_compression_test(
                    bm, T.Material.from_lame(lam, mu, bm.num_elements, model=model), float(s), 0.01
                )
                for s in stretches
            ]
        )

    lam_t, mu_t = (
        v.to(dt)
        for v in T.young_to_lame(torch.tensor(args.E, dtype=dt), torch.tensor(args.nu, dtype=dt))
    )
    synthetic = torques is None or forces is None
    with torch.no_grad():
        yT = torq(lam_t, mu_t) if torques is None else torch.tensor(torques, dtype=dt)
        yF = force(lam_t, mu_t) if forces is None else torch.tensor(forces, dtype=dt)
    lam0, mu0 = (
        float(v)
        for v in T.young_to_lame(torch.tensor(args.E0, dtype=dt), torch.tensor(args.nu0, dtype=dt))
    )
    r = T.fit_lame([(torq, yT), (force, yF)], lam0, mu0, iterations=40)
    out = {
        "synthetic_data": synthetic,
        "lam_fit_Pa": r.lam,
        "mu_fit_Pa": r.mu,
        "E_fit_Pa": r.E,
        "nu_fit": r.nu,
        "loss_final": r.loss[-1],
        "evaluations": r.iterations,
        "loss_history": list(r.loss),
    }
    if synthetic:
        out["lam_true_Pa"], out["mu_true_Pa"] = float(lam_t), float(mu_t)
        out["lam_rel_error"] = r.lam / float(lam_t) - 1.0
        out["mu_rel_error"] = r.mu / float(mu_t) - 1.0
    if not math.isfinite(r.loss[-1]):
        raise DiffbioError("fit diverged")
    return out
