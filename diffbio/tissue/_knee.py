"""Knee exoskeleton interface: thigh and shank soft-tissue sleeves loaded through cuffs.

Each sleeve is a :func:`limb_mesh` in its segment frame, origin at the knee centre and +Y
pointing away from the knee along the segment; the knee flexion axis is +Z. The bone nodes
are tied to the (fixed) bone. A rigid cuff band of width ``cuff_width`` centred at
``cuff_distance`` from the knee holds the skin (tied or frictionless penalty contact).

The exoskeleton is a series-elastic actuator of rotational stiffness ``k_exo`` [N m/rad]
hinged at the knee. To deliver the assistive torque ``tau(t)`` it deflects its spring by
``tau/k_exo`` assuming a rigid attachment; on each segment the link pulls the cuff along X
through a spring ``k_exo / d^2`` [N/m] (d the cuff distance), so that with a rigid cuff the
bone receives exactly ``tau`` about +Z. Soft tissue lets the cuff migrate, relaxing the
spring: the torque that reaches the bone (the moment of the bone-node reactions about the
knee axis) falls short of ``tau`` and lags it (Rayleigh damping), and the tissue dissipates
energy each cycle. Each segment is simulated on its own (the exoskeleton frame is taken as
held by the other segment), with backward-Euler dynamics over the gait cycle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from diffbio.tissue._bc import BoundaryConditions, Cuff, CuffContact
from diffbio.tissue._dynamics import simulate
from diffbio.tissue._material import Material, MaterialModel
from diffbio.tissue._mesh import TetMesh, boundary_faces, limb_mesh

__all__ = [
    "SleeveSpec",
    "SegmentInterface",
    "KneeCuffResult",
    "knee_exo_gait",
    "skin_node_areas",
    "gait_torque",
]


@dataclass(frozen=True)
class SleeveSpec:
    """Geometry [m] and mesh resolution of one segment's soft-tissue sleeve and cuff."""

    name: str
    bone_radius: float
    outer_radius: float
    length: float
    cuff_distance: float
    cuff_width: float
    n_radial: int = 3
    n_circ: int = 16
    n_axial: int = 8


THIGH = SleeveSpec("thigh", 0.015, 0.070, 0.30, 0.18, 0.08)
SHANK = SleeveSpec("shank", 0.012, 0.050, 0.30, 0.15, 0.08)


@dataclass(frozen=True)
class SegmentInterface:
    """Results for one segment over the last simulated gait cycle.

    Attributes:
        time: (T,) [s]; commanded_torque, transmitted_torque: (T,) [N m] about the knee axis.
        transmission_percent: 100 * peak |transmitted| / peak |commanded|.
        energy_absorbed_J: energy dissipated by the tissue over the cycle [J].
        cuff_migration_m: peak cuff displacement along X [m].
        peak_pressure_Pa: largest interface pressure [Pa] over the cycle, at ``peak_y_m``
            (distance from the knee) and ``peak_theta_deg`` (angle about +Y from +X,
            right-handed; 0 = anterior +X), at time ``peak_time_s``.
        pressure_map: (C, 3) rows (y [m], theta [deg], pressure [Pa]) at the peak time.
    """

    name: str
    elements: int
    time: torch.Tensor
    commanded_torque: torch.Tensor
    transmitted_torque: torch.Tensor
    transmission_percent: float
    energy_absorbed_J: float
    cuff_migration_m: float
    peak_pressure_Pa: float
    peak_y_m: float
    peak_theta_deg: float
    peak_time_s: float
    pressure_map: torch.Tensor


@dataclass(frozen=True)
class KneeCuffResult:
    segments: tuple[SegmentInterface, ...]


def skin_node_areas(mesh: TetMesh, nodes: torch.Tensor) -> torch.Tensor:
    """(K,) [m^2] skin area attributed to ``nodes`` (a third of each adjacent boundary triangle)."""
    faces = boundary_faces(mesh.tets)
    on = torch.zeros(mesh.num_nodes, dtype=torch.bool)
    on[nodes] = True
    faces = faces[on[faces].all(1)]
    p = mesh.rest[faces]
    area = 0.5 * torch.linalg.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]).norm(dim=-1)
    acc = torch.zeros(mesh.num_nodes, dtype=mesh.rest.dtype).index_add(
        0, faces.reshape(-1), (area / 3).repeat_interleave(3)
    )
    return acc[nodes]


def gait_torque(t: float, peak: float, period: float) -> float:
    """Assistive knee torque [N m] over a gait cycle: extension assistance in early stance and a
    smaller flexion pulse in swing, ``peak sin^2`` bumps (0 at heel strike)."""
    ph = (t % period) / period
    if ph < 0.4:
        return peak * math.sin(math.pi * ph / 0.4) ** 2
    if 0.6 <= ph < 0.9:
        return -0.4 * peak * math.sin(math.pi * (ph - 0.6) / 0.3) ** 2
    return 0.0


def _segment(
    spec: SleeveSpec,
    E,
    nu,
    density,
    alpha,
    beta,
    model,
    peak,
    k_exo,
    period,
    steps,
    cycles,
    contact,
    penalty,
) -> SegmentInterface:
    mesh = limb_mesh(
        spec.bone_radius,
        spec.outer_radius,
        spec.length,
        n_radial=spec.n_radial,
        n_circ=spec.n_circ,
        n_axial=spec.n_axial,
    )
    mat = Material.from_young(
        E, nu, mesh.num_elements, model=model, density=density, alpha=alpha, beta=beta
    )
    X = mesh.rest
    outer = mesh.node_sets["outer"]
    band = outer[(X[outer, 1] - spec.cuff_distance).abs() <= spec.cuff_width / 2 + 1e-12]
    normals = X[band] * torch.tensor([1.0, 0.0, 1.0], dtype=X.dtype)
    normals = normals / normals.norm(dim=-1, keepdim=True)
    d = spec.cuff_distance
    k_lin = k_exo / d**2
    center = torch.tensor([0.0, d, 0.0], dtype=X.dtype)
    # the exo link holds the cuff's axial and mediolateral slide and its tilt and spin
    # (stiff springs); about the knee axis only a weak 0.5 N m/rad hold, so that
    # a slack frictionless cuff is never a free body
    spring = torch.tensor([k_lin, 1e5, 1e5, 50.0, 50.0, 0.5], dtype=X.dtype)
    bone = BoundaryConditions.fix(mesh.node_sets["bone"], X[mesh.node_sets["bone"]])
    zero3 = torch.zeros(3, dtype=X.dtype)

    def bc_at(t: float) -> BoundaryConditions:
        tau = gait_torque(t, peak, period)
        target = torch.tensor([-d * tau / k_exo, 0, 0, 0, 0, 0], dtype=X.dtype)
        cuff = Cuff(band, center, zero3, zero3, penalty, contact, normals, spring, target)
        return bone.with_(cuffs=(cuff,))

    dt = period / steps
    traj = simulate(mesh, mat, bc_at, dt, steps * cycles, rtol=1e-9, atol=1e-9)
    last = slice(steps * (cycles - 1) + 1, steps * cycles + 1)
    bone_nodes = mesh.node_sets["bone"]
    on_bone = -traj.reactions[:, bone_nodes]  # force of the tissue on the bone
    Mz = (X[bone_nodes, 0] * on_bone[..., 1] - X[bone_nodes, 1] * on_bone[..., 0]).sum(-1)
    tau_cmd = torch.tensor([gait_torque(float(t), peak, period) for t in traj.time], dtype=X.dtype)
    # pressure: contact / tie force of the cuff on each skin node, normal component
    areas = skin_node_areas(mesh, outer)[(band[:, None] == outer[None, :]).float().argmax(1)]
    from diffbio.tissue._bc import rodrigues

    pressures = []
    for n in range(traj.x.shape[0]):
        p = traj.cuff_poses[n, 0]
        R = rodrigues(p[3:])
        y = (X[band] - center) @ R.T + center + p[:3]
        nn_ = normals @ R.T
        pen = ((traj.x[n, band] - y) * nn_).sum(-1)
        if contact is CuffContact.CONTACT:
            pen = pen.clamp(min=0.0)
        pressures.append(penalty * pen / areas)  # >0 = skin pressed into the cuff
    P = torch.stack(pressures)[last]
    tl = traj.time[last]
    flat = int(P.argmax())
    it, ic = divmod(flat, P.shape[1])
    theta = torch.rad2deg(torch.atan2(-X[band, 2], X[band, 0]))
    pmap = torch.stack([X[band, 1], theta, P[it]], dim=-1)
    tr = Mz[last]
    cmd = tau_cmd[last]
    return SegmentInterface(
        name=spec.name,
        elements=mesh.num_elements,
        time=tl,
        commanded_torque=cmd,
        transmitted_torque=tr,
        transmission_percent=100.0 * float(tr.abs().max() / cmd.abs().max()),
        energy_absorbed_J=float(traj.dissipated[last.start - 1 : last.stop - 1].sum()),
        cuff_migration_m=float(traj.cuff_poses[last, 0, 0].abs().max()),
        peak_pressure_Pa=float(P[it, ic]),
        peak_y_m=float(X[band[ic], 1]),
        peak_theta_deg=float(theta[ic]),
        peak_time_s=float(tl[it]),
        pressure_map=pmap,
    )


def knee_exo_gait(
    *,
    E: float = 12000.0,
    nu: float = 0.475,
    density: float = 1060.0,
    alpha: float = 0.0,
    beta: float = 0.02,
    model: MaterialModel = MaterialModel.STABLE_NEO_HOOKEAN,
    peak_torque: float = 10.0,
    exo_stiffness: float = 300.0,
    period: float = 1.0,
    steps: int = 40,
    cycles: int = 2,
    contact: CuffContact = CuffContact.CONTACT,
    penalty: float = 2.0e5,
    segments: tuple[SleeveSpec, ...] = (THIGH, SHANK),
) -> KneeCuffResult:
    """Simulate the exoskeleton-cuff-tissue-bone chain over ``cycles`` gait cycles.

    Args:
        E, nu, density: tissue Young's modulus [Pa], Poisson ratio, density [kg/m^3].
        alpha, beta: Rayleigh damping [1/s], [s].
        peak_torque: peak assistive knee torque [N m] (see :func:`gait_torque`).
        exo_stiffness: series-elastic stiffness of the exoskeleton [N m/rad].
        period: gait cycle [s]; steps: time steps per cycle; cycles: cycles simulated
            (results from the last one).
        contact, penalty: cuff-skin coupling and its penalty stiffness per node [N/m].
    """
    return KneeCuffResult(
        tuple(
            _segment(
                s,
                E,
                nu,
                density,
                alpha,
                beta,
                model,
                peak_torque,
                exo_stiffness,
                period,
                steps,
                cycles,
                contact,
                penalty,
            )
            for s in segments
        )
    )
