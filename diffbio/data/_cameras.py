"""Calibrated pinhole cameras for the synthetic video-feature data.

Frames are OpenSim's (ground, Y up). A :class:`Camera` maps a ground point ``p`` to its camera
frame by ``x_C = R (p - center)``, with the camera looking along its ``+Z`` axis, ``+X`` to the
right of the image and ``+Y`` down the image (the usual computer-vision convention), and to
pixels by ``u = f x/z + cx``, ``v = f y/z + cy``.

The default rig follows the reference design of the video-to-kinematics study: two static
cameras, frontal and sagittal, 1.1 +- 0.1 m high, a 33 mm lens on a 36 mm wide sensor,
1080 x 720 pixels, with small random perturbations of position and aim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from diffbio._errors import ShapeError

__all__ = ["Camera", "default_cameras", "project"]


@dataclass(frozen=True)
class Camera:
    """A calibrated static pinhole camera.

    rotation: (3, 3) ``R`` (rows are the camera axes in ground); center: (3,) [m] optical
    centre in ground; focal: [px]; cx, cy: principal point [px]; width, height: image size
    [px]; name: a label (``"frontal"``, ``"sagittal"``).
    """

    rotation: tuple[tuple[float, float, float], ...]
    center: tuple[float, float, float]
    focal: float
    cx: float
    cy: float
    width: int
    height: int
    name: str = "camera"

    @staticmethod
    def look_at(
        center: np.ndarray,
        target: np.ndarray,
        *,
        focal_mm: float = 33.0,
        sensor_mm: float = 36.0,
        width: int = 1080,
        height: int = 720,
        roll: float = 0.0,
        name: str = "camera",
    ) -> Camera:
        """A camera at ``center`` [m] aimed at ``target`` [m] with ground-up (+Y) as image
        up, rolled by ``roll`` [rad] about its optical axis."""
        z = np.asarray(target, float) - np.asarray(center, float)
        z = z / np.linalg.norm(z)
        x = np.cross(z, np.array([0.0, 1.0, 0.0]))  # image right (y down, z forward)
        x = x / np.linalg.norm(x)
        y = np.cross(z, x)
        c, s = math.cos(roll), math.sin(roll)
        x, y = c * x + s * y, -s * x + c * y
        R = np.stack([x, y, z])
        focal = focal_mm / sensor_mm * width
        return Camera(
            rotation=tuple(tuple(float(v) for v in r) for r in R),
            center=tuple(float(v) for v in center),
            focal=float(focal),
            cx=width / 2.0,
            cy=height / 2.0,
            width=width,
            height=height,
            name=name,
        )

    def tensors(self, dtype=torch.float32, device=None) -> tuple[Tensor, Tensor]:
        """``(R (3, 3), center (3,) [m])`` as tensors."""
        R = torch.tensor(self.rotation, dtype=dtype, device=device)
        return R, torch.tensor(self.center, dtype=dtype, device=device)


def project(camera: Camera, points: Tensor) -> tuple[Tensor, Tensor]:
    """Pinhole projection, differentiable in ``points``.

    Args:
        camera: the camera.
        points: ``(..., K, 3) [m]`` in ground.
    Returns:
        ``uv: (..., K, 2) [px]`` and ``depth: (..., K) [m]`` (distance along the optical axis;
        points with ``depth <= 0`` are behind the camera and their ``uv`` is meaningless).
    """
    if points.shape[-1] != 3:
        raise ShapeError(f"points must have shape (..., K, 3); got {tuple(points.shape)}")
    R, c = camera.tensors(points.dtype, points.device)
    x = (points - c) @ R.T
    z = x[..., 2]
    zs = torch.where(z.abs() > 1e-9, z, torch.full_like(z, 1e-9))
    u = camera.focal * x[..., 0] / zs + camera.cx
    v = camera.focal * x[..., 1] / zs + camera.cy
    return torch.stack([u, v], -1), z


def default_cameras(
    rng: np.random.Generator | int = 0,
    *,
    target: tuple[float, float, float] = (0.0, 0.9, 0.0),
    distance: float = 4.5,
    height_mean: float = 1.1,
    height_sd: float = 0.1,
    jitter_m: float = 0.1,
    jitter_deg: float = 2.0,
) -> tuple[Camera, Camera]:
    """The frontal and sagittal cameras of the reference rig, randomly perturbed.

    The frontal camera stands ``distance`` [m] in front of ``target`` along ground +X and
    looks back along -X; the sagittal one stands ``distance`` to the right (+Z) and looks
    along -Z. Camera heights are drawn from N(``height_mean``, ``height_sd``) [m] (clipped to
    +- 2 sd); positions move by up to ``jitter_m`` [m] horizontally, aim and roll by up to
    ``jitter_deg`` [deg]. Deterministic given ``rng`` (a Generator or a seed).
    """
    rng = np.random.default_rng(rng) if isinstance(rng, int) else rng
    t = np.asarray(target, float)
    cams = []
    for name, direction in (
        ("frontal", np.array([1.0, 0.0, 0.0])),
        ("sagittal", np.array([0.0, 0.0, 1.0])),
    ):
        h = height_mean + height_sd * float(np.clip(rng.standard_normal(), -2.0, 2.0))
        offset = rng.uniform(-jitter_m, jitter_m, 3) * np.array([1.0, 0.0, 1.0])
        center = t + distance * direction + offset
        center[1] = h
        aim = t + np.tan(np.radians(rng.uniform(-jitter_deg, jitter_deg, 3))) * distance
        aim[1] = t[1] + (aim[1] - t[1]) * 0.5
        roll = math.radians(rng.uniform(-jitter_deg, jitter_deg))
        cams.append(Camera.look_at(center, aim, roll=roll, name=name))
    return cams[0], cams[1]
