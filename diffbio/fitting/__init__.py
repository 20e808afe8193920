"""Fitting models to data by gradient-based optimization: inverse kinematics and scaling."""

from diffbio.fitting._ik import IKResult, inverse_kinematics
from diffbio.fitting._scale import ScaleResult, fit_scales, write_scale_set
from diffbio.fitting._setup import CoordinateTask, IKSetup, read_ik_setup

__all__ = [
    "CoordinateTask",
    "IKResult",
    "IKSetup",
    "ScaleResult",
    "fit_scales",
    "inverse_kinematics",
    "read_ik_setup",
    "write_scale_set",
]
