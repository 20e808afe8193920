"""Batched, differentiable forward kinematics of OpenSim-style models.

``forward_kinematics(model, q, scales)`` gives body poses; ``marker_positions`` the markers.
A Warp kernel path (``forward_kinematics_warp``) computes the same with the torch path as
its reference.
"""

from diffbio.kinematics._fk import (
    BodyPoses,
    apply_couplers,
    body_points,
    forward_kinematics,
    joint_transforms,
    marker_positions,
)
from diffbio.kinematics._jacobian import fold_couplers, point_jacobian
from diffbio.kinematics._motion import coordinates_from_storage, match_coordinate_columns
from diffbio.kinematics._rotations import (
    axis_angle_matrix,
    euler_xyz_from_matrix,
    matrix_from_euler_xyz,
)
from diffbio.kinematics._tree import KinematicTree, axis_values, kinematic_tree

__all__ = [
    "BodyPoses",
    "KinematicTree",
    "apply_couplers",
    "axis_angle_matrix",
    "axis_values",
    "body_points",
    "coordinates_from_storage",
    "fold_couplers",
    "match_coordinate_columns",
    "point_jacobian",
    "euler_xyz_from_matrix",
    "forward_kinematics",
    "forward_kinematics_warp",
    "joint_transforms",
    "kinematic_tree",
    "marker_positions",
    "matrix_from_euler_xyz",
]


def __getattr__(name: str):
    # The Warp path imports warp (seconds); load it on first use only.
    if name == "forward_kinematics_warp":
        from diffbio.kinematics._warp_fk import forward_kinematics_warp

        return forward_kinematics_warp
    raise AttributeError(f"module 'diffbio.kinematics' has no attribute {name!r}")
