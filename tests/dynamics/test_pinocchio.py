"""Inverse dynamics against Pinocchio's RNEA on a model with Pin, Ball and Free joints.

Coordinates convention: OpenSim's Ball and Free coordinates are body-fixed X-Y-Z angles
(and translations along the parent frame's axes). Our generalized speeds are their time
derivatives (as for every CustomJoint), so the Pinocchio twin models each such joint as a
chain of elementary prismatic / revolute joints (massless intermediate links), whose
velocities are exactly those derivatives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffbio.dynamics import inverse_dynamics, mass_matrix
from diffbio.model import parse_osim_string

pin = pytest.importorskip("pinocchio")

BODIES = {  # name: mass, com, (Ixx Iyy Izz Ixy Ixz Iyz)
    "trunk": (8.0, (0.02, 0.15, -0.01), (0.3, 0.12, 0.25, 0.01, -0.02, 0.015)),
    "arm": (2.0, (0.0, -0.12, 0.03), (0.04, 0.01, 0.035, 0.002, 0.0, -0.003)),
    "hand": (0.6, (0.01, -0.05, 0.0), (0.002, 0.001, 0.0025, 0.0, 0.0001, 0.0)),
}
# joint: type, parent, child, parent offset (xyz, rpy), child offset, coordinates
JOINTS = [
    (
        "free",
        "FreeJoint",
        "ground",
        "trunk",
        ((0.1, 0.9, -0.2), (0.1, 0.2, -0.3)),
        ((0.0, -0.1, 0.02), (0.0, 0.0, 0.0)),
        ["rx", "ry", "rz", "tx", "ty", "tz"],
    ),
    (
        "shoulder",
        "BallJoint",
        "trunk",
        "arm",
        ((0.05, 0.3, 0.15), (0.0, 0.3, 0.1)),
        ((0.0, 0.02, 0.0), (0.2, -0.1, 0.0)),
        ["s1", "s2", "s3"],
    ),
    (
        "elbow",
        "PinJoint",
        "arm",
        "hand",
        ((0.0, -0.28, 0.0), (0.4, 0.0, 0.2)),
        ((0.0, 0.05, 0.01), (0.0, 0.0, -0.3)),
        ["e"],
    ),
]


def _osim_xml() -> str:
    bodies = "".join(
        f"<Body name='{n}'><mass>{m}</mass><mass_center>{' '.join(map(str, c))}</mass_center>"
        f"<inertia>{' '.join(map(str, i))}</inertia></Body>"
        for n, (m, c, i) in BODIES.items()
    )
    joints = ""
    for name, typ, parent, child, po, co, coords in JOINTS:
        cs = "".join(
            f"<Coordinate name='{c}'><default_value>0</default_value>"
            f"<range>-3 3</range></Coordinate>"
            for c in coords
        )
        pp = "/ground" if parent == "ground" else f"/bodyset/{parent}"
        frames = (
            f"<PhysicalOffsetFrame name='{parent}_offset'><socket_parent>{pp}</socket_parent>"
            f"<translation>{' '.join(map(str, po[0]))}</translation>"
            f"<orientation>{' '.join(map(str, po[1]))}</orientation></PhysicalOffsetFrame>"
            f"<PhysicalOffsetFrame name='{child}_offset'><socket_parent>/bodyset/{child}"
            f"</socket_parent><translation>{' '.join(map(str, co[0]))}</translation>"
            f"<orientation>{' '.join(map(str, co[1]))}</orientation></PhysicalOffsetFrame>"
        )
        joints += (
            f"<{typ} name='{name}'><socket_parent_frame>{parent}_offset</socket_parent_frame>"
            f"<socket_child_frame>{child}_offset</socket_child_frame>"
            f"<coordinates>{cs}</coordinates><frames>{frames}</frames></{typ}>"
        )
    return (
        "<OpenSimDocument Version='40000'><Model name='pbf'>"
        "<gravity>0 -9.80665 0</gravity>"
        f"<BodySet><objects>{bodies}</objects></BodySet>"
        f"<JointSet><objects>{joints}</objects></JointSet></Model></OpenSimDocument>"
    )


def _rot_xyz(rpy):
    c = np.cos(rpy)
    s = np.sin(rpy)
    rx = np.array([[1, 0, 0], [0, c[0], -s[0]], [0, s[0], c[0]]])
    ry = np.array([[c[1], 0, s[1]], [0, 1, 0], [-s[1], 0, c[1]]])
    rz = np.array([[c[2], -s[2], 0], [s[2], c[2], 0], [0, 0, 1]])
    return rx @ ry @ rz  # OpenSim's body-fixed X-Y-Z orientation of offset frames


def _pin_model():
    pm = pin.Model()
    pm.gravity = pin.Motion(np.array([0, -9.80665, 0.0]), np.zeros(3))
    frame_joint = {"ground": 0}
    body_in_joint = {"ground": pin.SE3.Identity()}  # body frame in its joint's frame M
    for name, typ, parent, child, po, co, _coords in JOINTS:
        X_pF = pin.SE3(_rot_xyz(np.array(po[1])), np.array(po[0], float))
        if typ == "FreeJoint":
            elems = [
                pin.JointModelPX(),
                pin.JointModelPY(),
                pin.JointModelPZ(),
                pin.JointModelRX(),
                pin.JointModelRY(),
                pin.JointModelRZ(),
            ]
        elif typ == "BallJoint":
            elems = [pin.JointModelRX(), pin.JointModelRY(), pin.JointModelRZ()]
        else:
            elems = [pin.JointModelRZ()]
        X_pF = body_in_joint[parent] * X_pF  # placement of F in the parent joint's frame
        jid = frame_joint[parent]
        for k, jm in enumerate(elems):
            jid = pm.addJoint(jid, jm, X_pF if k == 0 else pin.SE3.Identity(), f"{name}_{k}")
        m, com, I = BODIES[child]
        Ixx, Iyy, Izz, Ixy, Ixz, Iyz = I
        Imat = np.array([[Ixx, Ixy, Ixz], [Ixy, Iyy, Iyz], [Ixz, Iyz, Izz]])
        X_cM = pin.SE3(_rot_xyz(np.array(co[1])), np.array(co[0], float))
        inertia = pin.Inertia(m, np.array(com, float), Imat)
        pm.appendBodyToJoint(jid, X_cM.inverse().act(inertia), pin.SE3.Identity())
        frame_joint[child] = jid
        body_in_joint[child] = X_cM.inverse()
    return pm


def _order(model):
    """Our coordinate order -> Pinocchio's (free: rx ry rz tx ty tz vs PX PY PZ RX RY RZ)."""
    pin_names = []
    for _name, typ, *_rest, coords in JOINTS:
        pin_names += (coords[3:] + coords[:3]) if typ == "FreeJoint" else coords
    return [model.coordinate_index(n) for n in pin_names]


def test_matches_pinocchio_rnea_and_crba():
    model = parse_osim_string(_osim_xml())
    pm = _pin_model()
    data = pm.createData()
    perm = _order(model)
    rng = np.random.default_rng(0)
    for _ in range(5):
        q, qd, qdd = (rng.uniform(-1.5, 1.5, model.num_coordinates) for _ in range(3))
        tau = inverse_dynamics(model, *(torch.tensor(a) for a in (q, qd, qdd))).numpy()
        ref = pin.rnea(pm, data, q[perm], qd[perm], qdd[perm])
        np.testing.assert_allclose(tau[perm], ref, rtol=0, atol=1e-11)
        M = mass_matrix(model, torch.tensor(q)).numpy()
        Mp = pin.crba(pm, data, q[perm])
        Mp = np.triu(Mp) + np.triu(Mp, 1).T
        np.testing.assert_allclose(M[np.ix_(perm, perm)], Mp, rtol=0, atol=1e-12)
