"""Why OpenSim's velocity terms differ from ours where one coordinate drives several
rotations of a CustomJoint (Rajagopal 2016's knees).

Simbody's FunctionBased mobilizer (what a CustomJoint becomes) builds the time derivative
of its angular-velocity Jacobian ``H_rot = W Fq``, with ``W = [a1, R1 a2, R2 a3]`` the
rotation axes after the earlier rotations, as ``Wdot = [0, w1 x R1 a2, w2 x R2 a3]``, where
``w1`` (``w2``) is the angular velocity produced by the first (first two) *mobilities*.
The exact derivative needs the angular velocity of the first (first two) *rotations*:
``theta1_dot a1`` and ``theta1_dot a1 + theta2_dot R1 a2``. The two agree when each
rotation has its own coordinate, and differ when one coordinate drives several rotation
functions: then Simbody's bias acceleration is off by ``dWdot Fq u``.

This test builds a one-body model whose single coordinate drives three rotations and pins
the difference: OpenSim's generalized force equals ours (the exact Lagrangian value, see
``test_velocity_terms_equal_lagrangian``) plus ``H_rot^T I_O dWdot Fq u``, to round-off.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffbio.dynamics import inverse_dynamics
from diffbio.model import parse_osim_string

osim = pytest.importorskip("opensim")

SLOPES = (1.0, 0.5, 0.3)  # theta_i = slope_i * q
AXES = ((0.0, 0.0, 1.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0))
MASS, COM = 2.5, (0.1, -0.2, 0.05)
INERTIA = (0.3, 0.2, 0.25, 0.01, -0.02, 0.03)  # Ixx Iyy Izz Ixy Ixz Iyz about the COM


def _xml() -> str:
    rot = "".join(
        f"<TransformAxis name='rotation{i + 1}'><coordinates>q</coordinates>"
        f"<axis>{' '.join(map(str, AXES[i]))}</axis>"
        f"<LinearFunction><coefficients>{SLOPES[i]} 0</coefficients></LinearFunction>"
        "</TransformAxis>"
        for i in range(3)
    )
    trans = "".join(
        f"<TransformAxis name='translation{i + 1}'><axis>{' '.join(map(str, np.eye(3)[i]))}"
        "</axis><Constant><value>0</value></Constant></TransformAxis>"
        for i in range(3)
    )
    return (
        "<OpenSimDocument Version='40000'><Model name='hdot'><gravity>0 0 0</gravity>"
        f"<BodySet><objects><Body name='b'><mass>{MASS}</mass>"
        f"<mass_center>{' '.join(map(str, COM))}</mass_center>"
        f"<inertia>{' '.join(map(str, INERTIA))}</inertia></Body></objects></BodySet>"
        "<JointSet><objects><CustomJoint name='j'>"
        "<socket_parent_frame>ground_offset</socket_parent_frame>"
        "<socket_child_frame>b_offset</socket_child_frame>"
        "<coordinates><Coordinate name='q'><range>-3 3</range></Coordinate></coordinates>"
        "<frames><PhysicalOffsetFrame name='ground_offset'><socket_parent>/ground"
        "</socket_parent></PhysicalOffsetFrame><PhysicalOffsetFrame name='b_offset'>"
        "<socket_parent>/bodyset/b</socket_parent></PhysicalOffsetFrame></frames>"
        f"<SpatialTransform>{rot}{trans}</SpatialTransform></CustomJoint>"
        "</objects></JointSet></Model></OpenSimDocument>"
    )


def _axis_angle(axis, angle) -> np.ndarray:
    a = np.asarray(axis, float)
    K = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K


def _simbody_minus_exact(q: float, u: float) -> float:
    """``H_rot^T I_O (Wdot_simbody - Wdot_exact) Fq u`` at ``(q, u)``, frames as in the model
    (parent frame = ground, child frame = body frame)."""
    th = np.array(SLOPES) * q
    R1 = _axis_angle(AXES[0], th[0])
    R2 = R1 @ _axis_angle(AXES[1], th[1])
    R = R2 @ _axis_angle(AXES[2], th[2])
    W = np.stack([np.array(AXES[0]), R1 @ AXES[1], R2 @ AXES[2]], axis=1)
    Fq = np.array(SLOPES)
    w = W @ Fq * u  # N = 1: Simbody's partial velocities w1 = w2 = the whole w
    w1 = Fq[0] * u * W[:, 0]
    w12 = w1 + Fq[1] * u * W[:, 1]
    dWdot = np.stack([np.zeros(3), np.cross(w - w1, W[:, 1]), np.cross(w - w12, W[:, 2])], axis=1)
    dalpha = dWdot @ Fq * u
    Ixx, Iyy, Izz, Ixy, Ixz, Iyz = INERTIA
    Ic = np.array([[Ixx, Ixy, Ixz], [Ixy, Iyy, Iyz], [Ixz, Iyz, Izz]])
    c = np.array(COM)
    I_O = Ic + MASS * (c @ c * np.eye(3) - np.outer(c, c))
    return float((W @ Fq) @ (R @ I_O @ R.T) @ dalpha)


def test_opensim_velocity_terms_are_simbodys_hdot_approximation(tmp_path):
    path = tmp_path / "hdot.osim"
    path.write_text(_xml())
    model = parse_osim_string(_xml())
    om = osim.Model(str(path))
    s = om.initSystem()
    coord = om.getCoordinateSet().get(0)
    solver = osim.InverseDynamicsSolver(om)
    rng = np.random.default_rng(0)
    for q, u, udot in zip(rng.uniform(-1.5, 1.5, 5), rng.uniform(-3, 3, 5), rng.normal(size=5)):
        coord.setValue(s, float(q))
        coord.setSpeedValue(s, float(u))
        ref = solver.solve(s, osim.Vector(1, float(udot))).get(0)
        ours = float(inverse_dynamics(model, *(torch.tensor([x]) for x in (q, u, udot)))[0])
        gap = _simbody_minus_exact(q, u)
        assert abs(gap) > 1e-3 * abs(ref)  # the two conventions really differ here ...
        assert abs(ref - (ours + gap)) < 1e-12 * max(1.0, abs(ref))  # ... by exactly this
