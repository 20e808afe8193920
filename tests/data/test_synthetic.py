"""Synthetic video-feature data: cameras, motions, keypoints, features, determinism, splits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from diffbio import ShapeError
from diffbio.data import (
    MOTIONS,
    Camera,
    FeatureNoise,
    SyntheticConfig,
    default_cameras,
    keypoint_names,
    keypoints,
    parametric_motion,
    project,
    smooth_above,
    synthetic_dataset,
    video_features,
)
from diffbio.kinematics import forward_kinematics, marker_positions
from diffbio.model import default_model

TINY = SyntheticConfig(num_subjects=3, sequences_per_subject=2, seq_len=8)


@pytest.fixture(scope="module")
def model():
    return default_model()


@pytest.fixture(scope="module")
def tiny(model):
    return synthetic_dataset(model, TINY, seed=3)


def test_camera_intrinsics_and_orientation():
    cam = Camera.look_at(np.array([5.0, 1.0, 0.0]), np.array([0.0, 1.0, 0.0]))
    assert cam.focal == pytest.approx(33.0 / 36.0 * 1080.0)
    assert (cam.width, cam.height, cam.cx, cam.cy) == (1080, 720, 540.0, 360.0)
    pts = torch.tensor([[0.0, 1.0, 0.0], [0.0, 2.0, 0.0], [0.0, 1.0, 1.0]], dtype=torch.float64)
    uv, depth = project(cam, pts)
    # target at the principal point, 5 m away; up in ground is up in the image (v smaller);
    # the camera looks along -X, so ground +Z is on the image's left.
    assert torch.allclose(uv[0], torch.tensor([540.0, 360.0], dtype=torch.float64), atol=1e-9)
    assert torch.allclose(depth, torch.full((3,), 5.0, dtype=torch.float64), atol=1e-12)
    assert uv[1, 1] == pytest.approx(360.0 - cam.focal / 5.0)
    assert uv[2, 0] == pytest.approx(540.0 - cam.focal / 5.0)


def test_project_gradcheck_and_finite_differences():
    cam = default_cameras(1)[1]
    pts = (
        torch.randn(4, 3, dtype=torch.float64) * 0.3
        + torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    ).requires_grad_()
    assert torch.autograd.gradcheck(lambda p: project(cam, p)[0], (pts,))
    g = torch.autograd.grad(project(cam, pts)[0][2, 0], pts)[0]
    h = 1e-6
    for j in range(3):
        e = torch.zeros_like(pts)
        e[2, j] = h
        with torch.no_grad():
            fd = (project(cam, pts + e)[0][2, 0] - project(cam, pts - e)[0][2, 0]) / (2 * h)
        assert float(g[2, j]) == pytest.approx(float(fd), rel=1e-6, abs=1e-6)
    with pytest.raises(ShapeError):
        project(cam, torch.zeros(4, 2))


def test_default_rig_heights_and_views():
    for seed in range(20):
        front, side = default_cameras(seed)
        for cam in (front, side):
            assert 0.9 - 1e-12 <= cam.center[1] <= 1.3 + 1e-12
        assert front.center[0] > 4.0 and abs(front.center[2]) < 0.2
        assert side.center[2] > 4.0 and abs(side.center[0]) < 0.2


@pytest.mark.parametrize("kind", MOTIONS)
def test_motions_in_range_and_deterministic(model, kind):
    a = parametric_motion(model, kind, 40, 30.0, 7)
    b = parametric_motion(model, kind, 40, 30.0, 7)
    assert a.q.shape == (40, model.num_coordinates)
    np.testing.assert_array_equal(a.q, b.q)
    lo = np.array([c.range[0] for c in model.coordinates])
    hi = np.array([c.range[1] for c in model.coordinates])
    assert np.all(a.q >= lo) and np.all(a.q <= hi)
    assert np.ptp(a.q, axis=0).max() > math.radians(5.0)  # it moves


def test_keypoints_are_joint_centres_coms_and_markers(model):
    q = torch.tensor([c.default_value for c in model.coordinates], dtype=torch.float64).expand(
        2, -1
    )
    s = torch.full((model.num_bodies, 3), 1.1, dtype=torch.float64)
    k = keypoints(model, q, s)
    names = keypoint_names(model)
    assert k.shape == (2, len(names), 3) and len(names) == 10 + 10 + 33
    poses = forward_kinematics(model, q, s)
    assert torch.allclose(k[:, :10], poses.joint_centers)
    assert torch.allclose(k[:, 20:], marker_positions(model, poses, s))
    i = model.body_index("femur_r")
    com = torch.tensor(model.bodies[i].mass_center, dtype=torch.float64) * 1.1
    expect = poses.translation[:, i] + poses.rotation[:, i] @ com
    assert torch.allclose(k[:, 10 + i], expect)


def test_video_features_exact_without_noise():
    cams = default_cameras(0)
    pts = torch.tensor([[[0.0, 1.0, 0.0], [0.1, 1.5, 0.2]]] * 3, dtype=torch.float64)
    f = video_features(cams, pts, None, np.random.default_rng(0)).reshape(3, 2, 2, 3)
    for v, cam in enumerate(cams):
        uv, _ = project(cam, pts)
        expect = (uv - torch.tensor([cam.cx, cam.cy], dtype=torch.float64)) / cam.focal
        assert torch.allclose(f[:, v, :, :2], expect)
        assert torch.all(f[:, v, :, 2] == 1.0)


def test_video_features_noise_and_dropout():
    cams = default_cameras(0)
    pts = torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64).expand(400, 30, 3).contiguous()
    clean = video_features(cams, pts, None, np.random.default_rng(0)).reshape(400, 2, 30, 3)
    noise = FeatureNoise(pixel_sd=3.0, jitter_sd=0.0, dropout=0.1, burst=4)
    noisy = video_features(cams, pts, noise, np.random.default_rng(0)).reshape(400, 2, 30, 3)
    vis = noisy[..., 2] > 0
    lost = 1.0 - vis.double().mean()
    assert 0.06 < float(lost) < 0.14  # about the requested 10 % dropout
    assert torch.all(noisy[..., :2][~vis] == 0.0)
    err_px = (noisy[..., :2] - clean[..., :2])[vis] * cams[0].focal
    assert float(err_px.std()) == pytest.approx(3.0, rel=0.05)


def test_dataset_shapes_determinism_and_labels(model, tiny):
    n = TINY.num_subjects * TINY.sequences_per_subject
    assert tiny.features.shape == (n, 8, 2 * 53 * 3)
    assert tiny.q.shape == (n, 8, 21) and tiny.scales.shape == (n, 10, 3)
    again = synthetic_dataset(model, TINY, seed=3)
    assert torch.equal(again.features, tiny.features) and torch.equal(again.q, tiny.q)
    other = synthetic_dataset(model, TINY, seed=4)
    assert not torch.equal(other.q, tiny.q)
    # one scale set per subject, left equal to right
    for s in range(TINY.num_subjects):
        sc = tiny.scales[tiny.subject == s]
        assert torch.equal(sc[0], sc[-1])
    assert torch.equal(
        tiny.scales[:, model.body_index("femur_r")], tiny.scales[:, model.body_index("femur_l")]
    )


FEET = ["RHEE", "RTOE", "RMT1", "RMT5", "LHEE", "LTOE", "LMT1", "LMT5"]


@pytest.fixture(scope="module")
def contact(model):
    cfg = SyntheticConfig(
        num_subjects=2, sequences_per_subject=8, seq_len=32, noise=None, motions=MOTIONS[:4]
    )
    return synthetic_dataset(model, cfg, seed=5)


def _lowest_foot(model, q, s):
    return marker_positions(model, forward_kinematics(model, q, s), s, FEET)[..., 1].amin(-1)


def test_ground_contact_of_labels(model, contact):
    q, s = contact.q.double(), contact.scales.double().unsqueeze(-3)
    low = _lowest_foot(model, q, s)
    assert float(low.min()) > -1.5e-3  # never more than 1 mm (plus float32 labels) below
    for n, kind in enumerate(contact.kinds):
        if kind != "jump":  # on the ground (1 cm target) in some frame of every sequence
            assert float(low[n].min()) < 0.0105, kind


def test_pelvis_height_is_smoothed(model, contact):
    q, s = contact.q.double(), contact.scales.double().unsqueeze(-3)
    iy = model.coordinate_index("pelvis_ty")
    q0 = q.clone()
    q0[..., iy] = 0.0
    raw = 0.01 - _lowest_foot(model, q0, s)  # the per-frame contact height
    keep = [n for n, k in enumerate(contact.kinds) if k != "jump"]
    assert {contact.kinds[n] for n in keep} >= {"run", "walk", "squat"}

    def rms_dd(x):
        return float((x[keep, 2:] - 2 * x[keep, 1:-1] + x[keep, :-2]).pow(2).mean().sqrt())

    assert rms_dd(q[..., iy]) < 0.5 * rms_dd(raw)


def test_smooth_above_is_a_zero_phase_low_pass_above_the_floor():
    fs, T = 30.0, 301
    t = np.arange(T) / fs
    slow = 0.05 * np.sin(2 * math.pi * 0.5 * t)
    fast = 0.01 * np.cos(2 * math.pi * 8.0 * (t - t[T // 2]))
    y = smooth_above(slow + fast, np.full(T, -1.0), fs, cutoff_hz=2.0)
    mid = slice(60, -60)  # away from the ends
    assert np.abs(y - slow)[mid].max() < 0.1 * 0.01 + 0.002  # 8 Hz removed, 0.5 Hz kept
    # the gain at the cut-off is one half: 1 / (1 + lam (2 - 2 cos w)^2)
    c = np.cos(2 * math.pi * 2.0 * t)
    y = smooth_above(c, np.full(T, -2.0), fs, cutoff_hz=2.0)
    assert np.abs(y[mid] - 0.5 * c[mid]).max() < 1e-3
    # zero phase: reversing the input reverses the output
    x = np.random.default_rng(0).standard_normal(40)
    floor = np.full(40, -5.0)
    assert np.allclose(smooth_above(x[::-1], floor, fs)[::-1], smooth_above(x, floor, fs))
    # a floor that the low-pass would cut through is respected within tol
    floor = np.where(np.arange(40) % 10 < 2, 1.0, 0.0)
    y = smooth_above(floor + 0.01, floor, fs, tol=1e-3)
    assert np.all(y >= floor - 1e-3)


def test_split_by_subject(model):
    ds = synthetic_dataset(
        model, SyntheticConfig(num_subjects=6, sequences_per_subject=1, seq_len=4), seed=0
    )
    tr, va, te = ds.split_by_subject((0.6, 0.2, 0.2), seed=1)
    sets = [set(d.subject.tolist()) for d in (tr, va, te)]
    assert all(sets) and not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert len(tr) + len(va) + len(te) == len(ds)
    assert [len(d) for d in ds.split_by_subject((0.6, 0.2, 0.2), seed=1)] == [
        len(tr),
        len(va),
        len(te),
    ]
