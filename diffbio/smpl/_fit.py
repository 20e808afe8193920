"""Model kinematics and segment scales from SMPL(-X) keypoint sequences.

The keypoints (joint centres ``<joint>_jc``, segment centres of mass ``<body>_com`` and
markers, :func:`diffbio.data.keypoint_names`) are turned into markers of the model
(:func:`keypoint_model`) and fitted with the existing machinery:
:func:`diffbio.fitting.fit_scales` (scales and per-frame coordinates, Levenberg-Marquardt)
or :func:`diffbio.fitting.inverse_kinematics` (coordinates only). Neither solver is
differentiated: gradients end at the keypoints (the regressor and the body model are
differentiable).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from diffbio._errors import DiffbioError, ShapeError
from diffbio.fitting import IKResult, fit_scales, inverse_kinematics
from diffbio.model import Marker, Model

__all__ = [
    "SMPL_JOINT_KEYPOINTS",
    "SMPL_TO_OPENSIM",
    "SMPLFit",
    "fit_smpl_sequence",
    "keypoint_model",
]

#: Rotation taking SMPL's canonical frame (Y up, body facing +Z, +X the body's left) to
#: OpenSim ground (X forward, Y up, Z right): ``x_opensim = SMPL_TO_OPENSIM @ x_smpl``.
SMPL_TO_OPENSIM = ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (-1.0, 0.0, 0.0))

#: smplx joints used as this project's keypoints when no learned regressor is given. On
#: real SMPL meshes this is an approximation with centimetre offsets (SMPL's pelvis and
#: spine joints are not OpenSim's pelvis origin and lumbar joint, its shoulder joints lie
#: inside the shoulder, not at the acromion markers, its toe and heel joints are single
#: surface vertices); a :class:`~diffbio.smpl.JointRegressor` fitted on paired data
#: removes that error. On the tests' generated model these joints sit at the keypoints.
SMPL_JOINT_KEYPOINTS = {
    "pelvis": "ground_pelvis_jc",
    "left_hip": "hip_l_jc",
    "right_hip": "hip_r_jc",
    "spine1": "back_jc",
    "left_knee": "knee_l_jc",
    "right_knee": "knee_r_jc",
    "left_ankle": "ankle_l_jc",
    "right_ankle": "ankle_r_jc",
    "left_heel": "LHEE",
    "right_heel": "RHEE",
    "left_big_toe": "LTOE",
    "right_big_toe": "RTOE",
    "left_small_toe": "LMT5",
    "right_small_toe": "RMT5",
    "left_shoulder": "LSHO",
    "right_shoulder": "RSHO",
}


def keypoint_model(model: Model, *, clamp: bool = False) -> Model:
    """``model`` with a marker for every joint centre (``<joint>_jc``, on the joint's child
    body at its child frame) and segment centre of mass (``<body>_com``), so that every
    keypoint name of :func:`diffbio.data.keypoint_names` is a marker (and scales as
    :func:`diffbio.data.keypoints` scales it). With ``clamp`` every coordinate except the
    root joint's is clamped to its range."""
    have = set(model.marker_names)
    extra = [
        Marker(f"{j.name}_jc", j.child_body, tuple(j.child_offset.translation))
        for j in model.joints
        if f"{j.name}_jc" not in have
    ]
    extra += [
        Marker(f"{b.name}_com", b.name, tuple(b.mass_center))
        for b in model.bodies
        if f"{b.name}_com" not in have
    ]
    coords = model.coordinates
    if clamp:
        root = set(model.joints[0].coordinates)
        coords = tuple(
            c if c.name in root else dataclasses.replace(c, clamped=True) for c in coords
        )
    return dataclasses.replace(
        model, markers=model.markers + tuple(extra), coordinates=coords, _cache={}
    )


@dataclass(frozen=True)
class SMPLFit:
    """Result of :func:`fit_smpl_sequence`: ``q: (T, Q) [rad or m]`` model coordinates,
    ``scales: (NB, 3)`` segment scale factors (ones when not fitted), ``keypoints: (T, K, 3)
    [m]`` the fitted targets in OpenSim ground, ``names`` their K names and ``ik`` the
    final :class:`~diffbio.fitting.IKResult` (per-keypoint errors)."""

    q: Tensor
    scales: Tensor
    keypoints: Tensor
    names: tuple[str, ...]
    ik: IKResult


def fit_smpl_sequence(
    model: Model,
    keypoints: Tensor,
    names: tuple[str, ...] | list[str],
    *,
    rotation: Tensor | None = None,
    scale: bool = True,
    clamp: bool = True,
    uniform: bool = True,
    weights: dict[str, float] | None = None,
    regularization: float = 1e-6,
) -> SMPLFit:
    """Fit the model's coordinates (and scales) to keypoints from an SMPL(-X) sequence.

    Args:
        model: the musculoskeletal model (e.g. :func:`diffbio.model.default_model`).
        keypoints: ``(T, K, 3) [m]`` in the body model's world frame (e.g. a
            :class:`JointRegressor` applied to the vertices); NaN marks a missing one.
        names: the K keypoint names (joint centres, centres of mass or model markers).
        rotation: ``(3, 3)`` taking the body model's world frame to OpenSim ground;
            default :data:`SMPL_TO_OPENSIM` (SMPL's Y-up canonical frame). Pass the
            appropriate rotation for camera frames (Y down) or Z-up data.
        scale: fit segment scales (:func:`~diffbio.fitting.fit_scales`); else coordinates
            only at unit scale.
        clamp: keep the joint coordinates (all but the root's) within their ranges, as
            OpenSim's IK does for clamped coordinates; from the default pose, unclamped
            fits can settle in flipped-foot minima (seen on the tests' sequences).
        uniform: one scale factor per body (else per axis).
        weights: keypoint weights by name (default 1 each).
        regularization: pull of the scales towards 1 (see ``fit_scales``; smaller than
            its default there, as keypoints reach every body of the default model).
    Returns:
        :class:`SMPLFit`.
    """
    names = tuple(names)
    if keypoints.dim() != 3 or keypoints.shape[1:] != (len(names), 3):
        raise ShapeError(f"keypoints must be (T, K={len(names)}, 3), got {tuple(keypoints.shape)}")
    kmodel = keypoint_model(model, clamp=clamp)
    unknown = [n for n in names if n not in kmodel.marker_names]
    if unknown:
        raise DiffbioError(f"keypoints not in model {model.name!r}: {unknown}")
    x = keypoints.detach().to(torch.float64)
    R = torch.tensor(SMPL_TO_OPENSIM, dtype=x.dtype) if rotation is None else rotation.to(x)
    if R.shape != (3, 3):
        raise ShapeError(f"rotation must be (3, 3), got {tuple(R.shape)}")
    x = x @ R.T
    w = None if weights is None else {n: float(weights.get(n, 1.0)) for n in names}
    if scale:
        res = fit_scales(
            kmodel, x, names, marker_weights=w, uniform=uniform, regularization=regularization
        )
        ik, scales = res.ik, res.scales
    else:
        ik = inverse_kinematics(kmodel, x, names, marker_weights=w)
        scales = torch.ones(model.num_bodies, 3, dtype=x.dtype)
    return SMPLFit(q=ik.q, scales=scales, keypoints=x, names=names, ik=ik)
