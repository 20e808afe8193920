"""diffbio: differentiable musculoskeletal biomechanics in PyTorch.

Conventions (pinned by tests, used by every subpackage)
-------------------------------------------------------
Shape vocabulary
    B batch, T time (frames), Q generalized coordinates, K keypoints or markers,
    M muscles, S synergies, N nodes, E elements, NB bodies. Every public tensor documents
    its shape and units, e.g. ``q: (B, T, Q) [rad or m]``.
Batching rule (one rule, everywhere)
    Per-sample arguments carry any number of *leading* batch dimensions, written ``...``
    (typically ``(B, T)``); outputs keep those leading dimensions. Per-model parameters such
    as segment scales ``(..., NB, 3)`` broadcast against the leading dimensions of the
    per-sample data under PyTorch's broadcasting rules.
Units
    SI throughout: metres, kilograms, seconds, newtons, radians. Degrees only at file
    boundaries (``inDegrees=yes`` storage files) and where a name says so (``*_deg``).
Frames
    OpenSim's: ground is the inertial frame, Y up; a body's pose is the transform of its
    frame in ground, ``R_GB`` (rotation, columns are body axes in ground) and ``p_GB``.
Dtypes
    float64 is the reference precision (comparisons against OpenSim); float32 is supported.
    Model tensors follow the dtype and device the model was moved to with ``Model.to``.
"""

from diffbio._errors import DiffbioError, FileFormatError, ModelError, ShapeError

__version__ = "0.1.0"

__all__ = ["DiffbioError", "FileFormatError", "ModelError", "ShapeError", "__version__"]
