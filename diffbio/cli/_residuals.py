"""``diffbio residuals MODEL --motion MOT --loads XML [--refine] --out DIR``.

Root (pelvis) residuals of a gait trial before and, with ``--refine``, after the
ground-reaction refinement (:func:`diffbio.dynamics.refine_ground_reactions`). The
kinematics are prepared as ``diffbio id`` prepares them (optional low-pass, quintic spline
derivatives, loads interpolated at the frames). Writes to DIR: ``residuals_before.sto``,
and with ``--refine`` ``residuals_after.sto``, ``refined_grf.mot`` + ``refined_grf.xml``
(an ExternalLoads set OpenSim reads) and, with ``--adjust-root``,
``root_acceleration_change.sto``. Residual columns: ``FX FY FZ`` [N] in ground and
``MX MY MZ`` [N m] about the root joint centre, in ground.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from diffbio.cli._common import load_model_arg, print_table

_LABELS = ["FX", "FY", "FZ", "MX", "MY", "MZ"]


def register(sub) -> None:
    p = sub.add_parser("residuals", help="root residuals, optionally removed by GRF refinement")
    p.add_argument("model", help="an OpenSim .osim file, or 'default'")
    p.add_argument("--motion", required=True, help="coordinates (.mot / .sto)")
    p.add_argument("--loads", required=True, help="ExternalLoads .xml (force plates)")
    p.add_argument("--lowpass", type=float, metavar="HZ", help="low-pass cutoff for coordinates")
    p.add_argument("--time", nargs=2, type=float, metavar=("T0", "T1"))
    p.add_argument("--refine", action="store_true", help="refine the ground reactions")
    p.add_argument("--adjust-root", action="store_true", help="also adjust the root accelerations")
    p.add_argument("--friction", type=float, default=0.8, help="friction coefficient")
    p.add_argument(
        "--contact-threshold", type=float, default=20.0, metavar="N", help="contact force [N]"
    )
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=run)


def _prepare(model, args):
    from diffbio.dynamics import load_trial

    trial = load_trial(
        model, args.motion, args.loads, time_range=args.time, lowpass_hz=args.lowpass,
        min_frames=3,
    )  # fmt: skip
    return trial.time, trial.loads, trial.q, trial.qd, trial.qdd


def _residual_array(r) -> np.ndarray:
    return torch.cat([r.force, r.moment], -1).detach().numpy()


def _stats(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RMS and peak |.| per column, plus the same of the force and moment magnitudes."""
    mag = np.stack([np.linalg.norm(a[:, :3], axis=1), np.linalg.norm(a[:, 3:], axis=1)], 1)
    full = np.concatenate([a, mag], 1)
    return np.sqrt((full**2).mean(0)), np.abs(full).max(0)


def run(args) -> int:
    from diffbio.dynamics import (
        PointLoad,
        RefineOptions,
        body_inertial,
        body_wrenches,
        plate_loads,
        refine_ground_reactions,
        refined_external_loads,
        root_residuals,
    )
    from diffbio.io import Storage, write_external_loads, write_storage
    from diffbio.kinematics import forward_kinematics

    model = load_model_arg(args.model)
    t, loads, q, qd, qdd = _prepare(model, args)
    force, point, torque = plate_loads(model, loads, t)
    bodies = [f.applied_to_body for f in loads.forces if f.enabled]
    poses = forward_kinematics(model, q)

    def residuals(F, Pt, Tq, acc):
        items = [PointLoad(b, F[:, k], Pt[:, k], Tq[:, k]) for k, b in enumerate(bodies)]
        return root_residuals(model, q, qd, acc, body_wrenches(model, poses, items))

    weight = float(body_inertial(model).mass.sum()) * float(np.linalg.norm(model.gravity))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    before = _residual_array(residuals(force, point, torque, qdd))
    write_storage(out / "residuals_before.sto", Storage.from_arrays(t, _LABELS, before))
    rows_b = _stats(before)
    header = ["residual", "RMS", "peak", "RMS %BW"]
    names = _LABELS + ["|F|", "|M|"]
    after = None
    if args.refine:
        opts = RefineOptions(
            contact_threshold=args.contact_threshold,
            friction=args.friction,
            adjust_root=args.adjust_root,
        )
        ref = refine_ground_reactions(
            model, q, qd, qdd, force, point, torque, time_step=float(np.diff(t).mean()),
            options=opts,
        )  # fmt: skip
        acc = ref.adjusted_qdd(qdd)
        after = _residual_array(residuals(ref.force, ref.point, ref.torque, acc))
        write_storage(out / "residuals_after.sto", Storage.from_arrays(t, _LABELS, after))
        write_external_loads(
            out / "refined_grf.xml", out / "refined_grf.mot", refined_external_loads(loads, t, ref)
        )
        if args.adjust_root:
            write_storage(
                out / "root_acceleration_change.sto",
                Storage.from_arrays(
                    t, list(ref.root_coordinates), ref.root_qdd_change.detach().numpy()
                ),
            )
        header += ["after RMS", "after peak", "after RMS %BW"]
        rows_a = _stats(after)
    table = []
    for i, name in enumerate(names):
        pct = 100.0 * rows_b[0][i] / weight if i in (0, 1, 2, 6) else "-"
        row = [name, float(rows_b[0][i]), float(rows_b[1][i]), pct]
        if after is not None:
            pa = 100.0 * rows_a[0][i] / weight if i in (0, 1, 2, 6) else "-"
            row += [float(rows_a[0][i]), float(rows_a[1][i]), pa]
        table.append(row)
    print(f"root residuals, {len(t)} frames {t[0]:.4g}-{t[-1]:.4g} s, body weight {weight:.1f} N")
    print("(forces [N] in ground; moments [N m] about the root joint centre)")
    print_table(table, header)
    if after is not None:
        d = (ref.force - force).detach().numpy()  # includes zeroing out of contact
        rms = np.sqrt((d**2).mean((0, 1)))
        mag = float(np.sqrt((d**2).sum(-1).mean()))
        print("change of the ground forces (all plates, all frames):")
        print_table(
            [[c, float(v), 100.0 * float(v) / weight] for c, v in zip(("x", "y", "z"), rms)]
            + [["|dF|", mag, 100.0 * mag / weight]],
            ["component", "RMS [N]", "RMS %BW"],
        )
        shift = (ref.point - point).norm(dim=-1)[ref.contact].detach().numpy()
        if shift.size:
            print(
                f"centre-of-pressure shift in contact: RMS {np.sqrt((shift**2).mean()):.4f} m, "
                f"peak {shift.max():.4f} m; active-set iterations {ref.iterations}, "
                f"active contact constraints {int(ref.active.sum())}"
            )
        if args.adjust_root:
            da = ref.root_qdd_change.detach().numpy()
            print_table(
                [[c, float(v)] for c, v in zip(ref.root_coordinates, np.sqrt((da**2).mean(0)))],
                ["root acceleration change", "RMS [rad/s^2 or m/s^2]"],
            )
    print(f"wrote {out}")
    return 0
