"""The main job: the video-to-muscle chain on the built-in model and synthetic walk.

Each stage reads what the previous one wrote, writes OpenSim-compatible files into the
output folder, and adds a row to the summary. Stages:

1. model: the built-in default model, written as ``default_model.osim``;
2. motion: the synthetic walking trial (``walk.mot``);
3. kinematics: body kinematics (``walk_BodyKinematics_pos_global.sto``) and marker
   trajectories with measurement noise (``walk_markers.trc``);
4. inverse kinematics: coordinates recovered from the noisy markers (``walk_ik.mot``),
   compared with the truth;
5. muscles: muscle-tendon lengths and moment arms of the model's muscles over the walk
   (``walk_MuscleAnalysis_Length.sto`` and a figure of the knee moment arms);
6. dynamics: ground reactions estimated by the refinement layer (``walk_estimated_grf.mot``)
   and joint moments by inverse dynamics (``walk_id.sto``);
7. static optimization: muscle activations (``walk_so_activation.sto``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from diffbio.data import synthetic_walk
from diffbio.fitting import inverse_kinematics
from diffbio.io import Storage, write_storage
from diffbio.kinematics import forward_kinematics, marker_positions
from diffbio.model import default_model, default_model_xml


@dataclass
class DemoReport:
    """What the demo produced: ``rows`` (stage, quantity, value, unit) and ``files``."""

    out_dir: Path
    rows: list[tuple[str, str, float | str, str]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def add(self, stage: str, what: str, value, unit: str = "") -> None:
        self.rows.append((stage, what, value, unit))

    def to_json(self) -> dict:
        return {
            "out_dir": str(self.out_dir),
            "results": [
                {"stage": s, "quantity": w, "value": v, "unit": u} for s, w, v, u in self.rows
            ],
            "files": [str(f) for f in self.files],
        }


def run_demo(
    out_dir: str | Path,
    *,
    height: float = 1.75,
    mass: float = 75.0,
    duration: float = 2.0,
    frame_rate: float = 100.0,
    marker_noise: float = 0.002,
    seed: int = 0,
    plots: bool = True,
    progress=print,
) -> DemoReport:
    """Run every stage that exists of the chain; returns the :class:`DemoReport`.

    ``marker_noise`` is the standard deviation [m] of the Gaussian noise added to the
    synthetic markers."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = DemoReport(out)
    rng = np.random.default_rng(seed)

    # 1. model -------------------------------------------------------------------------
    t = time.perf_counter()
    model = default_model(height, mass)
    osim_path = out / "default_model.osim"
    osim_path.write_text(default_model_xml(height=height, mass=mass))
    report.files.append(osim_path)
    report.add(
        "model",
        "bodies / coordinates / markers",
        f"{model.num_bodies} / {model.num_coordinates} / {len(model.markers)}",
    )
    report.add("model", "mass", round(model.total_mass, 3), "kg")
    progress(
        f"[1/7] model: {model.name}, {model.num_coordinates} coordinates "
        f"({time.perf_counter() - t:.1f} s)"
    )

    # 2. motion ------------------------------------------------------------------------
    trial = synthetic_walk(duration=duration, frame_rate=frame_rate, height=height, seed=seed)
    if tuple(trial.coordinate_names) != model.coordinate_names:
        q_true = _reorder(trial, model)
    else:
        q_true = torch.tensor(trial.q, dtype=torch.float64)
    mot = out / "walk.mot"
    write_storage(mot, _coordinates_storage(model, trial.time, q_true, "walk"))
    report.files.append(mot)
    report.add("motion", "frames", len(trial.time))
    report.add("motion", "speed", trial.speed, "m/s")
    report.add("motion", "cadence", round(trial.cadence, 1), "steps/min")
    progress(f"[2/7] motion: synthetic walk, {len(trial.time)} frames at {frame_rate:g} Hz")

    # 3. forward kinematics and markers --------------------------------------------------
    t = time.perf_counter()
    from diffbio.cli._fk import body_kinematics_table

    labels, table = body_kinematics_table(model, q_true)
    bk = out / "walk_BodyKinematics_pos_global.sto"
    write_storage(
        bk,
        Storage.from_arrays(
            trial.time, labels, table, in_degrees=True, name="BodyKinematics_pos_global"
        ),
    )
    report.files.append(bk)
    with torch.no_grad():
        poses = forward_kinematics(model, q_true)
        markers = marker_positions(model, poses)
    noisy = markers + torch.tensor(rng.normal(0.0, marker_noise, markers.shape))
    trc = out / "walk_markers.trc"
    _write_trc(trc, trial.time, model.marker_names, noisy.numpy())
    report.files.append(trc)
    report.add("kinematics", "marker noise (sd)", marker_noise * 1000, "mm")
    progress(
        f"[3/7] forward kinematics: {len(labels) // 6} bodies, {len(model.markers)} markers "
        f"({time.perf_counter() - t:.2f} s)"
    )

    # 4. inverse kinematics --------------------------------------------------------------
    t = time.perf_counter()
    ik = inverse_kinematics(model, noisy, model.marker_names)
    ik_time = time.perf_counter() - t
    ik_mot = out / "walk_ik.mot"
    write_storage(ik_mot, _coordinates_storage(model, trial.time, ik.q, "walk_ik"))
    report.files.append(ik_mot)
    rot = torch.tensor(model.rotational_mask)
    err = (ik.q - q_true).pow(2).mean(0).sqrt()
    report.add(
        "inverse kinematics",
        "marker RMS error (mean)",
        round(float(ik.marker_error_rms.mean()) * 1000, 2),
        "mm",
    )
    report.add(
        "inverse kinematics",
        "angle RMS error vs truth (mean over rotations)",
        round(float(torch.rad2deg(err[rot]).mean()), 3),
        "deg",
    )
    report.add(
        "inverse kinematics",
        "angle RMS error vs truth (worst)",
        round(float(torch.rad2deg(err[rot]).max()), 3),
        "deg",
    )
    report.add(
        "inverse kinematics", "frames solved per second", round(len(trial.time) / ik_time, 1), "1/s"
    )
    progress(
        f"[4/7] inverse kinematics: {len(trial.time)} frames in {ik_time:.1f} s, "
        f"mean angle error {float(torch.rad2deg(err[rot]).mean()):.2f} deg"
    )

    # 5. muscles ---------------------------------------------------------------------------
    muscle_stage(report, model, trial.time, ik.q, out, plots=plots, progress=progress)

    # 6-7. ground reactions, inverse dynamics, static optimization (on the true motion:
    # IK from noisy markers would need the 6 Hz low-pass OpenSim users apply first)
    from diffbio.pipeline._dynamics_stage import dynamics_stage, static_optimization_stage

    dyn = dynamics_stage(report, model, trial.time, q_true, out, progress)
    static_optimization_stage(report, model, trial.time, q_true, dyn, out, progress)

    if plots:
        from diffbio.pipeline._plots import plot_coordinates, plot_stick_figure

        report.files.append(
            plot_coordinates(out / "walk_ik_angles.png", model, trial.time, q_true, ik.q)
        )
        report.files.append(
            plot_stick_figure(out / "walk_stick_figure.png", model, poses, trial.time)
        )
    summary = out / "summary.json"
    summary.write_text(json.dumps(report.to_json(), indent=2))
    report.files.append(summary)
    return report


def muscle_stage(report, model, time_s, q, out: Path, *, plots: bool, progress) -> None:
    """Muscle-tendon lengths and moment arms over the motion ``q: (T, Q)``."""
    from diffbio.muscles import moment_arms, muscle_names, muscle_tendon_lengths

    t = time.perf_counter()
    names = muscle_names(model)
    with torch.no_grad():
        lengths = muscle_tendon_lengths(model, q)
        arms = moment_arms(model, q)
    path = out / "walk_MuscleAnalysis_Length.sto"
    write_storage(path, Storage.from_arrays(time_s, names, lengths.numpy(), name="Length"))
    report.files.append(path)
    knee = model.coordinate_index("knee_angle_r")
    r_knee = arms[..., knee]
    extensors = [
        i for i, n in enumerate(names) if n.startswith(("vas", "recfem")) and n.endswith("_r")
    ]
    report.add("muscles", "muscles", len(names))
    report.add(
        "muscles",
        "muscle-tendon length range",
        f"{float(lengths.min()):.3f}-{float(lengths.max()):.3f}",
        "m",
    )
    if extensors:
        report.add(
            "muscles",
            "quadriceps knee moment arm (mean)",
            round(float(r_knee[:, extensors].mean()) * 100, 2),
            "cm",
        )
    progress(
        f"[5/7] muscles: {len(names)} paths, lengths and {arms.shape[-2]}x{arms.shape[-1]} "
        f"moment arms per frame ({time.perf_counter() - t:.1f} s)"
    )
    if plots:
        from diffbio.pipeline._plots import plot_moment_arms

        report.files.append(
            plot_moment_arms(
                out / "walk_knee_moment_arms.png", time_s, names, r_knee, "knee_angle_r"
            )
        )


def _reorder(trial, model) -> torch.Tensor:
    idx = [list(trial.coordinate_names).index(n) for n in model.coordinate_names]
    return torch.tensor(trial.q[:, idx], dtype=torch.float64)


def _coordinates_storage(model, time_s, q: torch.Tensor, name: str) -> Storage:
    data = q.detach().numpy().copy()
    rot = np.array(model.rotational_mask)
    data[:, rot] = np.rad2deg(data[:, rot])
    return Storage.from_arrays(time_s, model.coordinate_names, data, in_degrees=True, name=name)


def _write_trc(path: Path, time_s, names, positions) -> None:
    from diffbio.io import write_trc

    write_trc(path, time_s, names, positions)
