"""SMPL / SMPL-X bridge: from human-mesh-recovery output to this project's kinematics.

``load_body_model`` reads an SMPL or SMPL-X file through smplx's own loader;
``body_model_vertices`` poses it; a sparse, non-negative, rows-sum-to-one
:class:`JointRegressor` (fitted with ``fit_joint_regressor`` from paired data) maps the
vertices to this project's keypoints (joint centres, segment centres of mass, markers);
``fit_smpl_sequence`` fits the model's coordinates and segment scales to them with the
existing inverse kinematics and scale fitting. The licensed body-model files are not
shipped; the tests use a generated model file in the same format.
"""

from diffbio.smpl._bodymodel import (
    BodyModel,
    BodyModelOutput,
    body_joint_names,
    body_model_vertices,
    load_body_model,
)
from diffbio.smpl._fit import (
    SMPL_JOINT_KEYPOINTS,
    SMPL_TO_OPENSIM,
    SMPLFit,
    fit_smpl_sequence,
    keypoint_model,
)
from diffbio.smpl._regressor import JointRegressor, apply_regressor, fit_joint_regressor

__all__ = [
    "SMPL_JOINT_KEYPOINTS",
    "SMPL_TO_OPENSIM",
    "BodyModel",
    "BodyModelOutput",
    "JointRegressor",
    "SMPLFit",
    "apply_regressor",
    "body_joint_names",
    "body_model_vertices",
    "fit_joint_regressor",
    "fit_smpl_sequence",
    "keypoint_model",
    "load_body_model",
]
