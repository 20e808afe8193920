"""Inverse dynamics of OpenSim-style models: batched recursive Newton-Euler in torch
(reference) and Warp (throughput), the joint-space mass matrix and bias forces, external
loads as body wrenches, the root residuals of a gait trial, and the ground-reaction
refinement layer that removes them.
"""

from diffbio.dynamics._inertial import BodyInertial, body_inertial, scale_body_inertial
from diffbio.dynamics._loads import PointLoad, body_wrenches, wrenches_from_external_loads
from diffbio.dynamics._refine import (
    RefinedLoads,
    RefineOptions,
    refine_ground_reactions,
    required_root_wrench,
)
from diffbio.dynamics._refine_kinematic import KinematicRefinement, refine_with_kinematics
from diffbio.dynamics._refine_loads import plate_loads, refined_external_loads
from diffbio.dynamics._residuals import Residuals, center_of_mass, root_residuals
from diffbio.dynamics._rnea import (
    BodyWrenches,
    bias_forces,
    coordinate_screws,
    inverse_dynamics,
    mass_matrix,
)
from diffbio.dynamics._trial import Trial, load_trial

__all__ = [
    "BodyInertial",
    "BodyWrenches",
    "KinematicRefinement",
    "PointLoad",
    "RefineOptions",
    "RefinedLoads",
    "Residuals",
    "Trial",
    "bias_forces",
    "body_inertial",
    "body_wrenches",
    "center_of_mass",
    "coordinate_screws",
    "inverse_dynamics",
    "inverse_dynamics_warp",
    "load_trial",
    "mass_matrix",
    "plate_loads",
    "refine_ground_reactions",
    "refine_with_kinematics",
    "refined_external_loads",
    "required_root_wrench",
    "root_residuals",
    "scale_body_inertial",
    "wrenches_from_external_loads",
]


def __getattr__(name: str):
    # The Warp path imports warp (seconds); load it on first use only.
    if name == "inverse_dynamics_warp":
        from diffbio.dynamics._warp_rnea import inverse_dynamics_warp

        return inverse_dynamics_warp
    raise AttributeError(f"module 'diffbio.dynamics' has no attribute {name!r}")
