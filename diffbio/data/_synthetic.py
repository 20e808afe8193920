"""Synthetic video-feature training data with labels exact by construction.

Subjects are the skeleton with sampled segment scales; motions (:mod:`diffbio.data._motions`)
drive it; forward kinematics gives 3D keypoints (joint centres, segment centres of mass and
markers); two calibrated static cameras (:func:`default_cameras`) project them; detector-like
noise (white pixel noise, a slowly drifting jitter and occlusion dropouts) makes the per-frame
features. :class:`KinematicsDataset` also holds any precomputed per-frame features (e.g. from a
pose backbone) in place of the synthetic ones: the network only sees ``features (N, T, F)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

from diffbio._errors import ShapeError
from diffbio.data._cameras import Camera, default_cameras, project
from diffbio.data._motions import MOTIONS, Motion, parametric_motion
from diffbio.kinematics import forward_kinematics, marker_positions
from diffbio.model import Model

__all__ = [
    "FeatureNoise",
    "KinematicsDataset",
    "SyntheticConfig",
    "keypoint_names",
    "keypoints",
    "sample_scales",
    "smooth_above",
    "synthetic_dataset",
    "video_features",
]


def keypoint_names(model: Model) -> tuple[str, ...]:
    """Names of the keypoints of :func:`keypoints`: joint centres (``<joint>_jc``), segment
    centres of mass (``<body>_com``), then the model's markers (K = J + NB + markers; 53 for
    the default model)."""
    return (
        *(f"{j}_jc" for j in model.joint_names),
        *(f"{b}_com" for b in model.body_names),
        *model.marker_names,
    )


def keypoints(model: Model, q: Tensor, scales: Tensor | None = None) -> Tensor:
    """3D keypoints ``(..., K, 3) [m]`` in ground from ``q: (..., Q)`` and ``scales:
    (..., NB, 3)`` through the differentiable forward kinematics (order of
    :func:`keypoint_names`)."""
    poses = forward_kinematics(model, q, scales)
    com = torch.tensor([b.mass_center for b in model.bodies], dtype=q.dtype, device=q.device)
    if scales is not None:
        com = com * scales
    com_g = poses.translation + (poses.rotation @ com.unsqueeze(-1)).squeeze(-1)
    parts = [poses.joint_centers, com_g]
    if model.markers:
        parts.append(marker_positions(model, poses, scales))
    return torch.cat(parts, -2)


def sample_scales(
    model: Model, rng: np.random.Generator, *, sd_global: float = 0.06, sd_segment: float = 0.04
) -> np.ndarray:
    """Segment scales ``(NB, 3)``: one stature factor N(1, ``sd_global``) times a per-segment
    factor N(1, ``sd_segment``) per axis, equal for left and right (``_r``/``_l``) bodies;
    every draw is clipped to +- 2.5 sd."""
    g = 1.0 + sd_global * float(np.clip(rng.standard_normal(), -2.5, 2.5))
    out = np.ones((model.num_bodies, 3))
    drawn: dict[str, np.ndarray] = {}
    for i, name in enumerate(model.body_names):
        key = name[:-2] if name.endswith(("_r", "_l")) else name
        if key not in drawn:
            drawn[key] = 1.0 + sd_segment * np.clip(rng.standard_normal(3), -2.5, 2.5)
        out[i] = g * drawn[key]
    return out


@dataclass(frozen=True)
class FeatureNoise:
    """Detector-like corruption of the 2D keypoints: white noise ``pixel_sd`` [px], a drifting
    jitter (random walk smoothed over ``jitter_frames`` frames) of size ``jitter_sd`` [px],
    and occlusion dropouts, each keypoint lost with probability ``dropout`` per frame in
    bursts of about ``burst`` frames."""

    pixel_sd: float = 3.0
    jitter_sd: float = 2.0
    jitter_frames: int = 8
    dropout: float = 0.05
    burst: int = 4


def video_features(
    cameras: tuple[Camera, ...] | list[Camera],
    points: Tensor,
    noise: FeatureNoise | None,
    rng: np.random.Generator,
) -> Tensor:
    """Per-frame features from 3D keypoints.

    Args:
        cameras: V calibrated cameras.
        points: ``(T, K, 3) [m]`` keypoints in ground.
        noise: the corruption (None: exact projections).
        rng: the random generator.
    Returns:
        ``(T, V * K * 3)``: per view and keypoint the normalised image coordinates
        ``((u - cx) / f, (v - cy) / f)`` and a visibility flag (1 seen, 0 occluded or outside
        the image, when the coordinates are zero).
    """
    T, K = points.shape[0], points.shape[1]
    views = []
    for cam in cameras:
        uv, depth = project(cam, points)
        uv = uv.detach().cpu().numpy().astype(np.float64)
        vis = (depth.detach().cpu().numpy() > 0.1).astype(np.float64)
        if noise is not None:
            uv = uv + noise.pixel_sd * rng.standard_normal(uv.shape)
            walk = np.cumsum(rng.standard_normal((T + noise.jitter_frames, K, 2)), 0)
            w = noise.jitter_frames
            c = np.concatenate([np.zeros((1, K, 2)), np.cumsum(walk, 0)])
            smooth = ((c[w:] - c[:-w]) / w)[:T]  # moving average over w frames
            smooth = smooth - smooth.mean(0, keepdims=True)
            sd = smooth.std() + 1e-12
            uv = uv + noise.jitter_sd * smooth / sd
            start = rng.random((T, K)) < noise.dropout / max(noise.burst, 1)
            lost = np.zeros((T, K), bool)
            for k in range(max(noise.burst, 1)):
                lost[k:] |= start[: T - k]
            vis = vis * (~lost)
        inside = (
            (uv[..., 0] >= 0)
            & (uv[..., 0] < cam.width)
            & (uv[..., 1] >= 0)
            & (uv[..., 1] < cam.height)
        )
        vis = vis * inside
        xy = np.stack([(uv[..., 0] - cam.cx) / cam.focal, (uv[..., 1] - cam.cy) / cam.focal], -1)
        xy = xy * vis[..., None]
        views.append(np.concatenate([xy, vis[..., None]], -1))
    feats = np.stack(views, 1)  # (T, V, K, 3)
    return torch.from_numpy(feats.reshape(T, -1)).to(points.dtype)


@dataclass(frozen=True, eq=False)
class KinematicsDataset:
    """Sequences of per-frame features with their kinematic labels.

    features: (N, T, F) per-frame features (synthetic 2D keypoints or any precomputed image
    features); q: (N, T, Q) [rad or m] coordinates; scales: (N, NB, 3) segment scales;
    subject: (N,) subject ids (splits are by subject); kinds: motion name per sequence;
    frame_rate [Hz].
    """

    features: Tensor
    q: Tensor
    scales: Tensor
    subject: Tensor
    kinds: tuple[str, ...]
    frame_rate: float

    def __post_init__(self) -> None:
        n = self.features.shape[0]
        if (
            self.features.dim() != 3
            or self.q.dim() != 3
            or self.features.shape[:2] != self.q.shape[:2]
        ):
            raise ShapeError(
                f"features (N, T, F) and q (N, T, Q) must share N and T; got {tuple(self.features.shape)} "
                f"and {tuple(self.q.shape)}"
            )
        if self.scales.shape[0] != n or self.scales.dim() != 3 or self.scales.shape[-1] != 3:
            raise ShapeError(
                f"scales must have shape (N, NB, 3) with N = {n}; got {tuple(self.scales.shape)}"
            )
        if self.subject.shape != (n,) or len(self.kinds) != n:
            raise ShapeError(f"subject (N,) and kinds (N) must have N = {n} entries")

    def __len__(self) -> int:
        return self.features.shape[0]

    def subset(self, index) -> KinematicsDataset:
        """The sequences at ``index`` (a list or a long tensor)."""
        idx = torch.as_tensor(index, dtype=torch.long)
        return replace(
            self,
            features=self.features[idx],
            q=self.q[idx],
            scales=self.scales[idx],
            subject=self.subject[idx],
            kinds=tuple(self.kinds[i] for i in idx.tolist()),
        )

    def split_by_subject(
        self, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0
    ) -> tuple[KinematicsDataset, KinematicsDataset, KinematicsDataset]:
        """Train, validation and test sets with disjoint subjects (each gets at least one
        subject when there are three or more), deterministic given ``seed``."""
        subjects = np.unique(self.subject.numpy())
        perm = np.random.default_rng(seed).permutation(subjects)
        n = len(perm)
        n_val = max(1, round(fractions[1] * n)) if n >= 3 else 0
        n_test = max(1, round(fractions[2] * n)) if n >= 3 else 0
        n_train = n - n_val - n_test
        groups = (perm[:n_train], perm[n_train : n_train + n_val], perm[n_train + n_val :])
        sub = self.subject.numpy()
        return tuple(self.subset(np.nonzero(np.isin(sub, g))[0].tolist()) for g in groups)  # type: ignore[return-value]


@dataclass(frozen=True)
class SyntheticConfig:
    """What :func:`synthetic_dataset` makes: ``num_subjects`` subjects with
    ``sequences_per_subject`` sequences each of ``seq_len`` frames at ``frame_rate`` [Hz],
    motions drawn from ``motions``, feature corruption ``noise``, scale spread
    ``scale_sd_global`` and ``scale_sd_segment``."""

    num_subjects: int = 20
    sequences_per_subject: int = 6
    seq_len: int = 64
    frame_rate: float = 30.0
    motions: tuple[str, ...] = MOTIONS
    noise: FeatureNoise | None = field(default_factory=FeatureNoise)
    scale_sd_global: float = 0.06
    scale_sd_segment: float = 0.04


_FOOT = ("RHEE", "RTOE", "RMT1", "RMT5", "LHEE", "LTOE", "LMT1", "LMT5")


def smooth_above(
    target: np.ndarray,
    floor: np.ndarray,
    frame_rate: float,
    cutoff_hz: float = 2.0,
    tol: float = 1e-3,
) -> np.ndarray:
    """A zero-phase low-pass of ``target (T,)`` that stays above ``floor (T,)`` (within
    ``tol``, same units).

    The Whittaker smoother ``argmin_y sum w_t (y_t - target_t)^2 + lam sum (y_{t+1} - 2 y_t
    + y_{t-1})^2``: a symmetric (zero-phase) filter with gain 1 / (1 + lam (2 - 2 cos w)^2),
    one half at ``cutoff_hz`` [Hz] for ``lam = (2 - 2 cos(2 pi cutoff / frame_rate))^-2``;
    frames where ``y`` falls below ``floor - tol`` get their weight raised 1000-fold and
    it is solved again (up to 30 times), which lifts the curve onto the floor there.
    """
    T = target.shape[0]
    if T < 3:
        return np.maximum(target, floor)
    w_c = 2.0 * np.pi * min(cutoff_hz / frame_rate, 0.5)
    lam = (2.0 - 2.0 * np.cos(w_c)) ** -2
    D = np.diff(np.eye(T), 2, axis=0)
    P = lam * D.T @ D
    w = np.ones(T)
    y = target
    for _ in range(30):
        y = np.linalg.solve(np.diag(w) + P, w * target)
        low = y < floor - tol
        if not low.any():
            break
        w = np.where(low, w * 1000.0, w)
        target = np.where(low, np.maximum(target, floor), target)
    return y


def _ground_contact(
    model: Model, q: Tensor, scales: Tensor, offset: Tensor, frame_rate: float
) -> Tensor:
    """``q`` with ``pelvis_ty`` set by foot contact, plus ``offset (..., T) [m]`` (flight),
    then smoothed over time.

    Per frame, the height that puts the lowest foot marker 1 cm above the floor (plus
    ``offset``) jumps whenever another marker becomes the lowest; its second differences
    gave the labels a mean centre-of-mass acceleration force ``m |a_com|`` (central
    differences) of 66.5 % body weight (default model, 24 subjects x 4 sequences of 32
    frames at 30 Hz, seed 0; by kind: run 218.0, jump 105.2, walk 34.9, sit-to-stand 18.8,
    squat 11.8, trunk 5.4 %). :func:`smooth_above` (2 Hz zero-phase low-pass, the lowest
    foot marker kept at or above the floor within 1 mm) brings it to 34.8 % (run 91.1, jump
    63.7, including 100 % in flight, walk 12.1, sit-to-stand 16.4, squat 9.7, trunk 5.4 %);
    with ``pelvis_ty`` held constant the other coordinates alone give 18.2 %.
    """
    iy = model.coordinate_index("pelvis_ty")
    q0 = q.clone()
    q0[..., iy] = 0.0
    names = [m for m in _FOOT if m in model.marker_names]
    poses = forward_kinematics(model, q0, scales.unsqueeze(-3))
    low = marker_positions(model, poses, scales.unsqueeze(-3), names)[..., 1].amin(-1)
    floor = (offset - low).detach().cpu().numpy().reshape(-1, q.shape[-2])
    ty = np.stack([smooth_above(f + 0.01, f, frame_rate) for f in floor])
    q0[..., iy] = torch.as_tensor(ty, dtype=q.dtype, device=q.device).reshape(low.shape)
    return q0


def synthetic_dataset(
    model: Model,
    config: SyntheticConfig = SyntheticConfig(),
    *,
    seed: int = 0,
    motions: list[Motion] | None = None,
) -> KinematicsDataset:
    """A synthetic data set (deterministic given ``seed``).

    Each subject gets sampled scales (:func:`sample_scales`); each sequence a motion (random
    kind from ``config.motions``, or, when ``motions`` is given, sequences cut from those,
    e.g. ``.mot`` files read with :func:`motion_from_storage`), a perturbed camera rig
    centred on the subject's mean pelvis position, and its video features.
    """
    rng = np.random.default_rng(seed)
    T = config.seq_len
    qs, ss, subj, kinds, offsets = [], [], [], [], []
    for s in range(config.num_subjects):
        scales = sample_scales(
            model, rng, sd_global=config.scale_sd_global, sd_segment=config.scale_sd_segment
        )
        for _ in range(config.sequences_per_subject):
            if motions:
                m = motions[int(rng.integers(len(motions)))]
                start = int(rng.integers(max(1, m.q.shape[0] - T + 1)))
                q = m.q[start : start + T]
                if q.shape[0] < T:
                    q = np.concatenate([q, np.repeat(q[-1:], T - q.shape[0], 0)])
                off = np.full(T, np.nan)
                kind = m.kind
            else:
                kind = config.motions[int(rng.integers(len(config.motions)))]
                m = parametric_motion(model, kind, T, config.frame_rate, rng)
                q, off = m.q, m.vertical_offset
            qs.append(q)
            offsets.append(off)
            ss.append(scales)
            subj.append(s)
            kinds.append(kind)
    q = torch.tensor(np.stack(qs), dtype=torch.float64)
    scales_t = torch.tensor(np.stack(ss), dtype=torch.float64)
    off = torch.tensor(np.stack(offsets), dtype=torch.float64)
    contact = ~torch.isnan(off[:, 0])
    if contact.any():
        q[contact] = _ground_contact(
            model, q[contact], scales_t[contact], off[contact], config.frame_rate
        )
    with torch.no_grad():
        pts = keypoints(model, q, scales_t.unsqueeze(-3))  # (N, T, K, 3)
    feats = []
    for n in range(q.shape[0]):
        centre = pts[n, :, 0].mean(0).numpy()  # mean pelvis position
        target = (float(centre[0]), 0.9, float(centre[2]))
        cams = default_cameras(rng, target=target)
        feats.append(video_features(cams, pts[n], config.noise, rng))
    return KinematicsDataset(
        features=torch.stack(feats).float(),
        q=q.float(),
        scales=scales_t.float(),
        subject=torch.tensor(subj, dtype=torch.long),
        kinds=tuple(kinds),
        frame_rate=config.frame_rate,
    )
