"""Wrapping of one straight path segment over one wrap surface, in the surface's frame.

Each function takes the segment end points ``p1, p2: (..., 3) [m]`` expressed in the wrap
object's frame and returns ``(code, r1, r2, wrap_length)``: the OpenSim ``WrapAction``
(:data:`NO_WRAP`, :data:`INSIDE`, :data:`WRAPPED`, :data:`MANDATORY`) as ``(...,)`` long,
the tangent points ``(..., 3) [m]`` where the path leaves the straight line and the length
``(...,) [m]`` of the path on the surface. Decisions (inside, mandatory wrap when the
segment cuts the surface, the quadrant constraint ``(axis, sign)``, which way round) and the
surface paths mirror OpenSim 4.6 (hybrid method), written as closed forms or as iterations
whose last step carries the implicit derivative, so lengths are differentiable and
continuous where a path starts to touch a surface.

* Cylinder (axis Z, centred, finite ``length``): OpenSim's WrapCylinder: tangent points in
  the end points' cross-sections slid along the axis onto the plane through both points and
  the apex line, helix length ``sqrt((R theta)^2 + dz^2)``; with several wrap objects on one
  path (``single=False``) OpenSim's tangency iteration (``_adjust_tangent_point``).
* Sphere: great circle in the plane through the centre and both points.
* Ellipsoid: OpenSim's WrapEllipsoid: wraps only when the segment cuts it; the path lies in
  the plane through both points and OpenSim's surface point c1 (Frans / fan blend, Graphics
  Gems closest points); tangent points and arc are exact on the ellipse that plane cuts
  (OpenSim iterates to the same tangent points and sums ~1 mm chords of the arc).
* Torus: OpenSim's WrapTorus: the cylinder wrap above, on a cylinder of the inner radius
  placed at the point of the torus's centre circle nearest the segment (OpenSim's
  residual and two passes), wrapping on the side towards the torus axis.

The surfaces live in :mod:`._wrap_cylinder`, :mod:`._wrap_ellipsoid` (sphere and
ellipsoid), :mod:`._wrap_torus`; the action codes and shared helpers in
:mod:`._wrap_common`. This module re-exports the public names.
"""

from diffbio.muscles._wrap_common import INSIDE, MANDATORY, NO_WRAP, WRAPPED
from diffbio.muscles._wrap_cylinder import wrap_cylinder
from diffbio.muscles._wrap_ellipsoid import wrap_ellipsoid, wrap_sphere
from diffbio.muscles._wrap_torus import wrap_torus

__all__ = [
    "INSIDE",
    "MANDATORY",
    "NO_WRAP",
    "WRAPPED",
    "wrap_cylinder",
    "wrap_ellipsoid",
    "wrap_sphere",
    "wrap_torus",
]
