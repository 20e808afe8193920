"""Rotation helpers, batched over leading dimensions ``...``."""

from __future__ import annotations

import torch
from torch import Tensor


def axis_angle_matrix(axis: Tensor, angle: Tensor) -> Tensor:
    """Rotation by ``angle (...,)`` [rad] about unit ``axis (..., 3)`` -> ``(..., 3, 3)``
    (Rodrigues). ``axis`` broadcasts against ``angle``."""
    axis = axis.expand(*angle.shape, 3)
    c, s = torch.cos(angle), torch.sin(angle)
    x, y, z = axis.unbind(-1)
    one_c = 1.0 - c
    rows = [
        [c + x * x * one_c, x * y * one_c - z * s, x * z * one_c + y * s],
        [y * x * one_c + z * s, c + y * y * one_c, y * z * one_c - x * s],
        [z * x * one_c - y * s, z * y * one_c + x * s, c + z * z * one_c],
    ]
    return torch.stack([torch.stack(r, -1) for r in rows], -2)


def euler_xyz_from_matrix(R: Tensor) -> Tensor:
    """Body-fixed X-Y-Z angles ``(..., 3)`` [rad] of ``R (..., 3, 3)`` with
    ``R = Rx(a) Ry(b) Rz(c)``, as OpenSim's BodyKinematics reports orientations."""
    b = torch.asin(R[..., 0, 2].clamp(-1.0, 1.0))
    a = torch.atan2(-R[..., 1, 2], R[..., 2, 2])
    c = torch.atan2(-R[..., 0, 1], R[..., 0, 0])
    return torch.stack([a, b, c], -1)


def matrix_from_euler_xyz(angles: Tensor) -> Tensor:
    """``Rx(a) Ry(b) Rz(c)`` from body-fixed X-Y-Z angles ``(..., 3)`` [rad]."""
    eye = torch.eye(3, dtype=angles.dtype, device=angles.device)
    rx = axis_angle_matrix(eye[0], angles[..., 0])
    ry = axis_angle_matrix(eye[1], angles[..., 1])
    rz = axis_angle_matrix(eye[2], angles[..., 2])
    return rx @ ry @ rz
