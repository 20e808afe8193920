"""diffbio.tissue: differentiable soft tissue (St. Venant-Kirchhoff / stable neo-Hookean FEM).

Linear tetrahedra with Warp kernels for energies, forces and element Hessians (float32 and
float64, CPU and CUDA) beside a plain-torch reference; Newton equilibrium with a line search
and its adjoint as a torch autograd function; backward-Euler dynamics with Rayleigh damping;
rigid cuffs; the knee-exoskeleton interface; fitting of (lam, mu). An optional nodal-average
volumetric term (``VolumetricTreatment``) relieves the locking of linear tetrahedra. Stands on its own: it
imports no other diffbio subpackage. Shapes: ``rest: (N, 3) [m]``, ``tets: (E, 4)``,
``lam, mu: (E,) [Pa]``. Limb segments run along their local +Y axis (OpenSim convention).
"""

from diffbio.tissue._bc import (
    BoundaryConditions,
    Cuff,
    CuffContact,
    axis_rotation,
    rigid_transform,
    rodrigues,
)
from diffbio.tissue._dynamics import DynamicsResult, assemble_stiffness, simulate
from diffbio.tissue._energy import (
    Backend,
    elastic_energy,
    element_hessians,
    internal_forces,
    svk_energy,
)
from diffbio.tissue._experiments import (
    confined_compression_test,
    reaction_forces,
    simple_shear_test,
    svk_shear_stress,
    svk_uniaxial_stress,
    torsion_convergence,
    torsion_stiffness_exact,
    torsion_test,
    uniaxial_test,
)
from diffbio.tissue._fit import FitResult, fit_lame
from diffbio.tissue._knee import (
    KneeCuffResult,
    SegmentInterface,
    SleeveSpec,
    gait_torque,
    knee_exo_gait,
    skin_node_areas,
)
from diffbio.tissue._material import (
    LameConvention,
    Material,
    MaterialModel,
    VolumetricTreatment,
    lame_to_young,
    young_to_lame,
)
from diffbio.tissue._mesh import (
    TetMesh,
    TetSplit,
    boundary_faces,
    box_mesh,
    limb_mesh,
    read_mesh,
    write_mesh,
)
from diffbio.tissue._reference import (
    deformation_gradient,
    elastic_energy_torch,
    energy_density,
    rest_geometry,
)
from diffbio.tissue._solve import (
    EquilibriumResult,
    LinearSolver,
    NoEquilibriumError,
    SolveStatus,
    cuff_potential,
    lumped_masses,
    solve_equilibrium,
)
from diffbio.tissue._volumetric import nodal_volumetric_energy, volumetric_measure

__all__ = [
    "Backend",
    "BoundaryConditions",
    "Cuff",
    "CuffContact",
    "DynamicsResult",
    "EquilibriumResult",
    "FitResult",
    "KneeCuffResult",
    "LameConvention",
    "LinearSolver",
    "Material",
    "MaterialModel",
    "NoEquilibriumError",
    "SegmentInterface",
    "SleeveSpec",
    "SolveStatus",
    "VolumetricTreatment",
    "TetMesh",
    "TetSplit",
    "assemble_stiffness",
    "axis_rotation",
    "boundary_faces",
    "box_mesh",
    "confined_compression_test",
    "cuff_potential",
    "deformation_gradient",
    "elastic_energy",
    "elastic_energy_torch",
    "element_hessians",
    "energy_density",
    "fit_lame",
    "gait_torque",
    "internal_forces",
    "knee_exo_gait",
    "lame_to_young",
    "limb_mesh",
    "lumped_masses",
    "nodal_volumetric_energy",
    "reaction_forces",
    "read_mesh",
    "rest_geometry",
    "rigid_transform",
    "rodrigues",
    "simple_shear_test",
    "simulate",
    "skin_node_areas",
    "solve_equilibrium",
    "svk_energy",
    "svk_shear_stress",
    "svk_uniaxial_stress",
    "torsion_convergence",
    "torsion_stiffness_exact",
    "torsion_test",
    "uniaxial_test",
    "volumetric_measure",
    "write_mesh",
    "young_to_lame",
]
