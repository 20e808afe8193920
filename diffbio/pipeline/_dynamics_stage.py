"""Demo stages after kinematics: ground reactions, inverse dynamics, static optimization.

The synthetic walk has no force plates, so its ground reactions are *estimated*: each foot
is in contact where its lowest contact sphere is within ``contact_height`` of the floor,
body weight is shared between the feet in contact as a first guess, applied at the lowest
sphere and directed at the whole-body centre of mass, and the refinement layer (:func:`diffbio.dynamics.refine_ground_reactions`, with the root
accelerations free to change) finds the smallest change of that guess for which the
Newton-Euler equations of the whole body hold. Inverse dynamics with those forces gives
the joint moments, and static optimization shares them among the model's muscles.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from diffbio.dynamics import (
    RefineOptions,
    center_of_mass,
    inverse_dynamics,
    refine_ground_reactions,
    root_residuals,
)
from diffbio.dynamics._loads import PointLoad, body_wrenches
from diffbio.io import ExternalForce, ExternalLoads, Storage, spline_derivatives, write_storage
from diffbio.kinematics import body_points, forward_kinematics
from diffbio.model import Model

_FEET = {"r": ("calcn_r", "talus_r"), "l": ("calcn_l", "talus_l")}


def estimated_ground_reactions(
    model: Model, time_s: np.ndarray, q: torch.Tensor, *, contact_height: float = 0.015
):
    """Ground reactions of both feet ``(T, 2, 3)`` (force, centre of pressure, free torque)
    that make the motion ``q: (T, Q)`` dynamically consistent, and the kinematics used."""
    qd, qdd = (torch.as_tensor(v) for v in spline_derivatives(time_s, q.numpy(), order=2))
    with torch.no_grad():
        poses = forward_kinematics(model, q)
    spheres = model.contact_spheres
    body = torch.tensor([model.body_index(s.body) for s in spheres])
    centers = torch.tensor([s.location for s in spheres], dtype=q.dtype)
    radius = torch.tensor([s.radius for s in spheres], dtype=q.dtype)
    pts = body_points(poses, body, centers)  # (T, S, 3)
    low = pts[..., 1] - radius
    point, contact = [], []
    weight = model.total_mass * 9.80665
    for bodies in _FEET.values():
        idx = [k for k, s in enumerate(spheres) if s.body in bodies]
        h, k = low[:, idx].min(-1)
        on = h < contact_height
        p = pts[torch.arange(len(k)), torch.tensor(idx)[k]].clone()
        p[:, 1] = 0.0
        contact.append(on)
        point.append(p)
    contact_t = torch.stack(contact, 1)  # (T, 2)
    share = contact_t.to(q.dtype) / contact_t.sum(1, keepdim=True).clamp_min(1).to(q.dtype)
    # each foot's share of body weight, directed from its centre of pressure at the
    # whole-body centre of mass (the inverted-pendulum picture of walking: braking in
    # early stance, propulsion in late stance)
    P = torch.stack(point, 1)  # (T, 2, 3)
    with torch.no_grad():
        d = center_of_mass(model, q).unsqueeze(1) - P  # (T, 2, 3)
    f = (weight * share).unsqueeze(-1) * d / d[..., 1:2].clamp_min(1e-3)
    refined = refine_ground_reactions(
        model, q, qd, qdd, f, P, time_step=float(time_s[1] - time_s[0]),
        contact=contact_t, options=RefineOptions(adjust_root=True),
    )  # fmt: skip
    return refined, qd, refined.adjusted_qdd(qdd)


def dynamics_stage(report, model: Model, time_s, q: torch.Tensor, out: Path, progress) -> dict:
    """Ground reactions, joint moments (``walk_id.sto``) and, when the model has muscles,
    static optimization (``walk_so_*.sto``)."""
    t = time.perf_counter()
    refined, qd, qdd = estimated_ground_reactions(model, time_s, q)
    loads = [
        PointLoad(
            body=bodies[0],
            force=refined.force[:, i],
            point=refined.point[:, i],
            torque=refined.torque[:, i],
        )  # fmt: skip
        for i, bodies in enumerate(_FEET.values())
    ]
    with torch.no_grad():
        wrenches = body_wrenches(model, forward_kinematics(model, q), loads)
        tau = inverse_dynamics(model, q, qd, qdd, wrenches)
        res = root_residuals(model, q, qd, qdd, wrenches)
    labels = [
        f"{c.name}_{'moment' if r else 'force'}"
        for c, r in zip(model.coordinates, model.rotational_mask)
    ]
    path = out / "walk_id.sto"
    write_storage(path, Storage.from_arrays(time_s, labels, tau.numpy(), name="Inverse Dynamics"))
    report.files.append(path)
    grf = out / "walk_estimated_grf.mot"
    cols, data = [], []
    for i, side in enumerate(_FEET):
        for name, arr in (("v", refined.force), ("p", refined.point), ("torque_", refined.torque)):
            for k, ax in enumerate("xyz"):
                cols.append(
                    f"{side}_ground_force_{name}{ax}"
                    if name != "torque_"
                    else f"{side}_ground_torque_{ax}"
                )
                data.append(arr[:, i, k].detach().numpy())
    write_storage(grf, Storage.from_arrays(time_s, cols, np.stack(data, -1), name="estimated GRF"))
    report.files.append(grf)
    bw = model.total_mass * 9.80665
    knee = model.coordinate_index("knee_angle_r")
    hip = model.coordinate_index("hip_flexion_r")
    ankle = model.coordinate_index("ankle_angle_r")
    report.add(
        "dynamics",
        "peak vertical ground reaction",
        round(float(refined.force[..., 1].max()) / bw, 2),
        "BW",
    )
    report.add(
        "dynamics",
        "root residual force after refinement (RMS)",
        f"{float(res.force.norm(dim=-1).pow(2).mean().sqrt()):.1e}",
        "N",
    )
    for name, i in (("hip flexion", hip), ("knee", knee), ("ankle", ankle)):
        report.add(
            "dynamics",
            f"{name} moment range (right)",
            f"{float(tau[:, i].min()) / model.total_mass:.2f} to {float(tau[:, i].max()) / model.total_mass:.2f}",
            "N m/kg",
        )
    progress(
        f"[6/7] dynamics: estimated ground reactions and joint moments "
        f"({time.perf_counter() - t:.1f} s)"
    )
    return {"tau": tau, "qd": qd, "qdd": qdd, "refined": refined}


def static_optimization_stage(
    report, model: Model, time_s, q, dyn: dict, out: Path, progress
) -> None:
    """Muscle activations sharing the joint moments (reserves on every coordinate)."""
    import xml.etree.ElementTree as ET

    from diffbio.muscles import muscle_names, muscle_parameters_from_osim
    from diffbio.muscles._actuators import reserve_actuators
    from diffbio.muscles._static_opt_trial import (
        solve_static_optimization,
        static_optimization_frames,
    )

    if not model.force_set_xml:
        return
    t = time.perf_counter()
    root = ET.fromstring(f"<OpenSimDocument><Model>{model.force_set_xml}</Model></OpenSimDocument>")
    params = muscle_parameters_from_osim(root)
    refined = dyn["refined"]
    forces = tuple(
        ExternalForce(
            name=f"foot_{side}",
            applied_to_body=bodies[0],
            force_expressed_in_body="ground",
            point_expressed_in_body="ground",
            force_identifier=f"{side}_ground_force_v",
            point_identifier=f"{side}_ground_force_p",
            torque_identifier=f"{side}_ground_torque_",
            force=refined.force[:, i].detach().numpy(),
            point=refined.point[:, i].detach().numpy(),
            torque=refined.torque[:, i].detach().numpy(),
        )  # fmt: skip
        for i, (side, bodies) in enumerate(_FEET.items())
    )
    loads = ExternalLoads(time=np.asarray(time_s), forces=forces, name="estimated")
    root_coords = list(model.joints[0].coordinates)
    frames = static_optimization_frames(
        model, params, np.asarray(time_s), q, dyn["qd"], dyn["qdd"], loads,
        reserve_actuators(model, None, optimal_force=1.0),
    )  # fmt: skip
    result = solve_static_optimization(frames)
    names = muscle_names(model)
    act = result.activations.detach().numpy()
    path = out / "walk_so_activation.sto"
    write_storage(path, Storage.from_arrays(time_s, names, act, name="Static Optimization"))
    report.files.append(path)
    ctrl = result.controls.detach()
    crossed = (frames.moment_arms.detach() != 0).any(0).any(0)  # (Q,) coordinates with muscles
    idx = {c: k for k, c in enumerate(frames.coordinates)}
    groups = {"coordinates crossed by muscles": [], "coordinates without muscles": []}
    for k, a in enumerate(frames.actuators):
        if a.coordinate in root_coords or a.coordinate not in idx:
            continue
        key = "coordinates crossed by muscles" if crossed[idx[a.coordinate]] else None
        groups[key or "coordinates without muscles"].append(k)
    report.add("static optimization", "muscles", len(names))
    report.add("static optimization", "peak activation", round(float(act.max()), 3))
    for label, cols in groups.items():
        if cols:
            rms = float(ctrl[:, cols].pow(2).mean().sqrt())
            report.add(
                "static optimization", f"reserve torque, {label} (RMS)", round(rms, 2), "N m"
            )
    progress(
        f"[7/7] static optimization: {len(names)} muscles over {len(time_s)} frames "
        f"({time.perf_counter() - t:.1f} s)"
    )
