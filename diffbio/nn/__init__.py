"""diffbio.nn: video features to kinematics.

The biomechanics-aware network (:class:`KinematicsNet`: frame encoder and temporal
transformer U-Net, heads for coordinates and segment scales), its losses (angles on the unit
circle and in L1, scales, joint ranges, keypoints through the differentiable forward
kinematics, root-residual physics), metrics (MAE, PA-MPJPE, MPJVE), training and
checkpoints, and the SMPL / SMPL-X bridge.
"""

from diffbio.nn._losses import (
    LossWeights,
    angle_loss,
    bio_loss,
    physics_loss,
    position_loss,
    scale_loss,
    total_loss,
)
from diffbio.nn._metrics import (
    mae_deg,
    mpjve,
    pa_mpjpe,
    procrustes_align,
    root_branch,
    root_equivalent,
    root_flip_fraction,
    root_geodesic_deg,
    skeleton_points,
)
from diffbio.nn._network import KinematicsNet, NetConfig, Prediction
from diffbio.nn._train import (
    TrainConfig,
    TrainResult,
    evaluate,
    load_checkpoint,
    save_checkpoint,
    train,
)

__all__ = [
    "KinematicsNet",
    "LossWeights",
    "NetConfig",
    "Prediction",
    "TrainConfig",
    "TrainResult",
    "angle_loss",
    "bio_loss",
    "evaluate",
    "load_checkpoint",
    "mae_deg",
    "mpjve",
    "pa_mpjpe",
    "physics_loss",
    "position_loss",
    "procrustes_align",
    "root_branch",
    "root_equivalent",
    "root_flip_fraction",
    "root_geodesic_deg",
    "save_checkpoint",
    "scale_loss",
    "skeleton_points",
    "total_loss",
    "train",
]
