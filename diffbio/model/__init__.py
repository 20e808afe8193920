"""Musculoskeletal models as immutable data: bodies, joints, coordinates, markers.

``load_osim(path)`` reads OpenSim ``.osim`` files (format 30000 and 40000+) without OpenSim.
"""

from diffbio.model._functions import (
    Constant,
    Linear,
    PiecewiseCubic,
    Polynomial,
    ScalarFunction,
)
from diffbio.model._model import (
    GROUND,
    Body,
    Coordinate,
    CoordinateCoupler,
    CoordinateType,
    Joint,
    JointType,
    Marker,
    Model,
    Offset,
    TransformAxis,
)
from diffbio.model._osim import load_osim, parse_osim_string, rotation_xyz

__all__ = [
    "GROUND",
    "Body",
    "Constant",
    "Coordinate",
    "CoordinateCoupler",
    "CoordinateType",
    "Joint",
    "JointType",
    "Linear",
    "Marker",
    "Model",
    "Offset",
    "PiecewiseCubic",
    "Polynomial",
    "ScalarFunction",
    "TransformAxis",
    "load_osim",
    "parse_osim_string",
    "rotation_xyz",
]
