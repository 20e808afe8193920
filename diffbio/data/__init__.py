"""diffbio.data: built-in data sets (the synthetic walking trial for the default model)."""

from diffbio.data._walking import WalkingTrial, synthetic_walk

__all__ = ["WalkingTrial", "synthetic_walk"]

# Synthetic video-feature data for the video-to-kinematics network (diffbio.nn).
from diffbio.data._cameras import Camera, default_cameras, project  # noqa: E402
from diffbio.data._motions import MOTIONS, Motion, motion_from_storage, parametric_motion  # noqa: E402
from diffbio.data._synthetic import (  # noqa: E402
    FeatureNoise,
    KinematicsDataset,
    SyntheticConfig,
    keypoint_names,
    keypoints,
    sample_scales,
    smooth_above,
    synthetic_dataset,
    video_features,
)

__all__ += [
    "MOTIONS",
    "Camera",
    "FeatureNoise",
    "KinematicsDataset",
    "Motion",
    "SyntheticConfig",
    "default_cameras",
    "keypoint_names",
    "keypoints",
    "motion_from_storage",
    "parametric_motion",
    "project",
    "sample_scales",
    "smooth_above",
    "synthetic_dataset",
    "video_features",
]
