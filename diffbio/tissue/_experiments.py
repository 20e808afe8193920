"""Standard tissue experiments with closed-form checks: uniaxial, simple shear, torsion."""

from __future__ import annotations

import math

import torch

from diffbio.tissue._bc import BoundaryConditions, axis_rotation, rigid_transform
from diffbio.tissue._energy import internal_forces
from diffbio.tissue._material import Material, MaterialModel, VolumetricTreatment, young_to_lame
from diffbio.tissue._mesh import TetMesh, TetSplit, box_mesh, limb_mesh
from diffbio.tissue._solve import EquilibriumResult, solve_equilibrium

__all__ = [
    "reaction_forces",
    "uniaxial_test",
    "simple_shear_test",
    "confined_compression_test",
    "torsion_test",
    "torsion_convergence",
    "torsion_stiffness_exact",
    "svk_uniaxial_stress",
    "svk_shear_stress",
]


def reaction_forces(
    x: torch.Tensor, mesh: TetMesh, material: Material, bc: BoundaryConditions
) -> torch.Tensor:
    """(N, 3) [N] forces the supports exert on the tissue at equilibrium ``x: (N, 3) [m]``,
    ``dPsi/dx - loads - m g`` (no cuffs), differentiable in x, rest, lam and mu."""
    r = -internal_forces(x, mesh, material)
    if bc.loads is not None:
        r = r - bc.loads
    if bc.gravity is not None:
        from diffbio.tissue._solve import lumped_masses

        m = lumped_masses(mesh.rest, mesh.tets, material.rho(mesh.num_elements, mesh.rest))
        r = r - m[:, None] * bc.gravity
    return r


def svk_uniaxial_stress(E: float, stretch: float) -> float:
    """Nominal stress [Pa] of SVK in uniaxial stress: ``E a (a^2 - 1) / 2``."""
    return E * stretch * (stretch**2 - 1.0) / 2.0


def svk_shear_stress(lam: float, mu: float, gamma: float) -> float:
    """Nominal shear stress P12 [Pa] of SVK in simple shear: ``mu g + (lam/2 + mu) g^3``."""
    return mu * gamma + (lam / 2.0 + mu) * gamma**3


def _material(mesh, E, nu, model, lam_mu=None):
    if lam_mu is not None:
        return Material.from_lame(lam_mu[0], lam_mu[1], mesh.num_elements, model=model)
    return Material.from_young(E, nu, mesh.num_elements, model=model)


def uniaxial_test(
    E: float = 12000.0,
    nu: float = 0.475,
    stretch: float = 1.2,
    *,
    model: MaterialModel = MaterialModel.SVK,
    cells: int = 2,
    jitter: float = 0.2,
    size: float = 0.01,
    load_steps: int = 1,
) -> dict:
    """Homogeneous uniaxial stress of a cube of side ``size`` [m] on a jittered mesh.

    Rollers on x0, y0, z0; the x1 face is moved to ``stretch * size``. Returns the nominal
    stress [Pa] (x1 reaction / rest area), the lateral stretch, the worst deviation of the
    nodes from the affine solution [m] and the closed forms for SVK.
    """
    mesh = box_mesh((size,) * 3, (cells,) * 3, jitter=jitter)
    mat = _material(mesh, E, nu, model)
    s, X = mesh.node_sets, mesh.rest
    bc = BoundaryConditions.fix(s["x0"], X[s["x0"]], (0,))
    bc = bc.and_fix(s["y0"], X[s["y0"]], (1,)).and_fix(s["z0"], X[s["z0"]], (2,))
    bc = bc.and_fix(s["x1"], X[s["x1"]] * stretch, (0,))
    res = solve_equilibrium(mesh, mat, bc, load_steps=load_steps)
    P11 = float(res.reactions[s["x1"], 0].sum()) / size**2
    lateral = float(res.x[s["y1"], 1].mean()) / size
    b = math.sqrt(1.0 - nu * (stretch**2 - 1.0))
    affine = X * torch.tensor([stretch, b, b], dtype=X.dtype)
    out = {
        "E_Pa": E,
        "nu": nu,
        "stretch": stretch,
        "model": model.value,
        "elements": mesh.num_elements,
        "nominal_stress_Pa": P11,
        "lateral_stretch": lateral,
        "newton_iterations": res.iterations,
    }
    if model is MaterialModel.SVK:
        out["nominal_stress_exact_Pa"] = svk_uniaxial_stress(E, stretch)
        out["lateral_stretch_exact"] = b
        out["max_node_error_m"] = float((res.x - affine).abs().max())
    return out


def simple_shear_test(
    E: float = 12000.0,
    nu: float = 0.475,
    gamma: float = 0.3,
    *,
    model: MaterialModel = MaterialModel.SVK,
    cells: int = 3,
    jitter: float = 0.2,
    size: float = 0.01,
) -> dict:
    """Simple shear ``x = X + gamma Y e1`` of a jittered cube: every boundary node follows the
    affine map, interior nodes are free (patch test). P12 [Pa] from the virial of the reactions,
    ``P12 = sum_i R_ix Y_i / V``."""
    mesh = box_mesh((size,) * 3, (cells,) * 3, jitter=jitter)
    mat = _material(mesh, E, nu, model)
    X = mesh.rest
    boundary = torch.tensor(
        sorted(set(range(mesh.num_nodes)) - set(mesh.node_sets["interior"].tolist()))
    )
    affine = X.clone()
    affine[:, 0] = X[:, 0] + gamma * X[:, 1]
    bc = BoundaryConditions.fix(boundary, affine[boundary])
    res = solve_equilibrium(mesh, mat, bc)
    P12 = float((res.reactions[:, 0] * X[:, 1]).sum()) / size**3
    lam, mu = (
        float(v)
        for v in young_to_lame(
            torch.tensor(E, dtype=torch.float64), torch.tensor(nu, dtype=torch.float64)
        )
    )
    out = {
        "E_Pa": E,
        "nu": nu,
        "gamma": gamma,
        "model": model.value,
        "elements": mesh.num_elements,
        "shear_stress_Pa": P12,
        "max_node_error_m": float((res.x - affine).abs().max()),
        "newton_iterations": res.iterations,
    }
    if model is MaterialModel.SVK:
        out["shear_stress_exact_Pa"] = svk_shear_stress(lam, mu, gamma)
    return out


def confined_compression_test(
    mesh: TetMesh, material: Material, stretch: float | torch.Tensor, size: float
) -> torch.Tensor:
    """Axial force [N] (differentiable) to hold a box of side ``size`` at ``stretch`` in x with
    lateral faces on rollers (uniaxial strain); SVK closed form ``a (lam + 2 mu)(a^2-1)/2 * A``."""
    s, X = mesh.node_sets, mesh.rest
    bc = BoundaryConditions.fix(s["x0"], X[s["x0"]], (0,))
    for f in ("y0", "y1"):
        bc = bc.and_fix(s[f], X[s[f]], (1,))
    for f in ("z0", "z1"):
        bc = bc.and_fix(s[f], X[s[f]], (2,))
    bc = bc.and_fix(s["x1"], X[s["x1"]] * stretch, (0,))
    res = solve_equilibrium(mesh, material, bc)
    R = reaction_forces(res.x, mesh, material, bc)
    return R[s["x1"], 0].sum()


def torsion_stiffness_exact(
    mu: float, inner_radius: float, outer_radius: float, length: float
) -> float:
    """Small-twist torsional stiffness [N m/rad] of an annulus with its bore fixed and its
    outer surface rotated: ``4 pi mu L / (1/a^2 - 1/b^2)``."""
    return 4.0 * math.pi * mu * length / (1.0 / inner_radius**2 - 1.0 / outer_radius**2)


def torsion_test(
    mesh: TetMesh, material: Material, angle: float = 1e-3
) -> tuple[torch.Tensor, EquilibriumResult]:
    """Torque [N m] about +Y (differentiable) needed to rotate the ``"outer"`` nodes of a limb
    mesh by ``angle`` [rad] with the ``"bone"`` nodes fixed; and the equilibrium.

    The outer nodes are placed exactly on the rigid rotation ``R(angle) X`` (all three
    components prescribed, a tied cuff); the torque is ``sum (x_i x R_i) . e_y`` over them,
    ``R_i = dPi/dx_i`` the reaction of the discrete equilibrium (exact for the discrete
    problem, whatever the mesh)."""
    s, X = mesh.node_sets, mesh.rest
    R = axis_rotation((0.0, 1.0, 0.0), angle).to(X.dtype)
    zero = torch.zeros(3, dtype=X.dtype)
    bc = BoundaryConditions.fix(s["bone"], X[s["bone"]])
    bc = bc.and_fix(s["outer"], rigid_transform(X[s["outer"]], R, zero, zero))
    res = solve_equilibrium(mesh, material, bc)
    F = reaction_forces(res.x, mesh, material, bc)[s["outer"]]
    return torch.cross(res.x[s["outer"]], F, dim=-1)[:, 1].sum(), res


def torsion_convergence(
    E: float,
    nu: float,
    inner_radius: float,
    outer_radius: float,
    length: float,
    refinements=(1, 2, 3),
    base=(2, 8, 2),
    *,
    split: TetSplit = TetSplit.KUHN,
    volumetric: VolumetricTreatment = VolumetricTreatment.ELEMENT,
    model: MaterialModel = MaterialModel.SVK,
    radial_grading: float = 1.0,
    angle: float = 1e-3,
) -> list[dict]:
    """Torsional stiffness under mesh refinement against the closed form (a table of dicts).

    Level ``r`` meshes ``base = (radial, circumferential, axial)`` cells times ``r`` with
    :func:`limb_mesh` (``split``, ``radial_grading``); the material uses ``volumetric``.
    ``k = T / angle`` with T the exact discrete reaction torque on the rotated skin nodes
    (:func:`torsion_test`). ``order`` is the observed rate ``log(e_prev/e) / log(r/r_prev)``
    of the relative error against the mesh size ``h ~ 1/r`` (None on the first row).
    """
    rows = []
    for r in refinements:
        mesh = limb_mesh(
            inner_radius,
            outer_radius,
            length,
            n_radial=base[0],
            n_circ=base[1],
            n_axial=base[2],
            refine=r,
            radial_grading=radial_grading,
            split=split,
        )
        mat = Material.from_young(E, nu, mesh.num_elements, model=model, volumetric=volumetric)
        with torch.no_grad():
            T, res = torsion_test(mesh, mat, angle)
        k = float(T) / angle
        exact = torsion_stiffness_exact(float(mat.mu[0]), inner_radius, outer_radius, length)
        err = k / exact - 1.0
        order = None
        if rows and err != 0.0 and rows[-1]["rel_error"] != 0.0:
            order = math.log(abs(rows[-1]["rel_error"] / err)) / math.log(r / rows[-1]["refine"])
        rows.append(
            {
                "refine": r,
                "divisions": [base[0] * r, base[1] * r, base[2] * r],
                "elements": mesh.num_elements,
                "nodes": mesh.num_nodes,
                "stiffness_Nm_per_rad": k,
                "exact_Nm_per_rad": exact,
                "rel_error": err,
                "order": order,
                "newton_iterations": res.iterations,
            }
        )
    return rows
