"""Musculoskeletal models as immutable data: bodies, joints, coordinates, markers.

``load_osim(path)`` reads OpenSim ``.osim`` files (format 30000 and 40000+) without OpenSim.
"""

from diffbio.model._default import DEFAULT_COORDINATES, default_model_xml
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
    ContactSphere,
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


def default_model(height: float = 1.75, mass: float = 75.0, *, sex: str = "male") -> Model:
    """The built-in 3D gait model (21 coordinates, de Leva 1996 segment parameters scaled
    by ``height`` [m] and ``mass`` [kg]); see :func:`default_model_xml` for its sources."""
    xml = default_model_xml(height=height, mass=mass, sex=sex)
    return parse_osim_string(xml, source=f"<diffbio default model {height:g} m {mass:g} kg>")


__all__ = [
    "DEFAULT_COORDINATES",
    "GROUND",
    "Body",
    "Constant",
    "ContactSphere",
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
    "default_model",
    "default_model_xml",
    "load_osim",
    "parse_osim_string",
    "rotation_xyz",
]
