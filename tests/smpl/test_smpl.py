"""The SMPL / SMPL-X bridge on generated model files (tests/smpl/_fixture.py), whose
skeleton is the default model's, so that keypoints, kinematics and scales are known."""

from __future__ import annotations

import numpy as np
import pytest
import smplx
import torch

from diffbio import FileFormatError, ShapeError
from diffbio.cli import main
from diffbio.data import MOTIONS, keypoint_names, parametric_motion
from diffbio.io import read_storage
from diffbio.model import default_model
from diffbio.smpl import (
    SMPL_JOINT_KEYPOINTS,
    JointRegressor,
    apply_regressor,
    body_model_vertices,
    fit_joint_regressor,
    fit_smpl_sequence,
    load_body_model,
)
from tests.smpl._fixture import C, make_body_model, smpl_params

MODEL = default_model()
NAMES = keypoint_names(MODEL)
ARGS = ("betas", "body_pose", "global_orient", "transl")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # small problems on a shared 2-core machine: one thread avoids oversubscription
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bodymodels")
    out = {}
    for key, kind, name, blend in (
        ("smpl", "smpl", "SMPL_NEUTRAL.pkl", 0.0),
        ("smpl_blend", "smpl", "SMPL_BLEND.pkl", 0.005),
        ("smplx", "smplx", "SMPLX_NEUTRAL.npz", 0.0),
    ):
        arrays = make_body_model(MODEL, kind, d / name, pose_blend=blend)
        out[key] = (d / name, arrays, load_body_model(d / name, kind))
    return out


def _sequences(body, kind, seed, n_seq, T=20):
    """Paired data: SMPL(-X) parameters, vertices, true keypoints, q and scales."""
    rng = np.random.default_rng(seed)
    seqs = []
    for s in range(n_seq):
        mo = parametric_motion(MODEL, MOTIONS[s % len(MOTIONS)], T, 30.0, rng)
        betas = np.concatenate([rng.normal(0, 0.05, 6), rng.normal(0, 1, 4)])
        p = smpl_params(MODEL, kind, mo.q, betas, rng)
        out = body_model_vertices(body, *(torch.tensor(p[k]) for k in ARGS))
        seqs.append({**p, "q": mo.q, "vertices": out.vertices, "joints": out.joints})
    return seqs


def _stack(seqs, key):
    return torch.cat([torch.as_tensor(s[key]) for s in seqs]).double()


def test_smplx_loads_generated_files(files):
    """smplx's own entry point reads both files; its joints at zero pose are the
    designed joints (the default model's joint centres in SMPL's frame)."""
    for key, n_joints in (("smpl", 24), ("smplx", 55)):
        path, arrays, body = files[key]
        m = smplx.create(str(path), model_type=key, ext=path.suffix[1:])
        assert isinstance(m, smplx.SMPLX if key == "smplx" else smplx.SMPL)
        assert m.get_num_verts() == body.num_vertices == {"smpl": 6890, "smplx": 10475}[key]
        assert m.J_regressor.shape[0] == n_joints
        z = torch.zeros(1, body.num_body_pose, dtype=torch.float64)
        out = body_model_vertices(body, torch.zeros(10, dtype=torch.float64), z, z[:, :3], z[:, :3])
        J = (C @ (arrays["joints_os"] - arrays["root"]).T).T
        assert torch.allclose(out.joints[0, :n_joints], torch.tensor(J), atol=1e-6)
        assert out.joints.shape[-2] == len(body.joint_names)


def test_fixture_pairing_is_exact(files):
    """The cluster-centroid regressor of the generated mesh gives the default model's
    keypoints exactly (to smplx's float32 storage of the model arrays, ~1e-8 m)."""
    for key in ("smpl", "smplx"):
        _, arrays, body = files[key]
        seq = _sequences(body, key, seed=3, n_seq=2, T=8)
        V, K = _stack(seq, "vertices"), _stack(seq, "keypoints")
        err = (torch.tensor(arrays["oracle"]) @ V - K).norm(dim=-1)
        assert err.max() < 1e-6, (key, float(err.max()))


def test_body_model_vertices_batching(files):
    _, _, body = files["smpl"]
    g = torch.Generator().manual_seed(1)
    pose = 0.3 * torch.randn(2, 3, 69, generator=g, dtype=torch.float64)
    orient = 0.3 * torch.randn(2, 3, 3, generator=g, dtype=torch.float64)
    transl = torch.randn(2, 3, 3, generator=g, dtype=torch.float64)
    betas = torch.randn(2, 10, generator=g, dtype=torch.float64)  # one per sequence
    out = body_model_vertices(body, betas, pose, orient, transl, chunk=4)
    assert out.vertices.shape == (2, 3, 6890, 3)
    one = body_model_vertices(body, betas[1], pose[1, 2:], orient[1, 2:], transl[1, 2:])
    assert torch.allclose(out.vertices[1, 2:], one.vertices, atol=1e-12)
    with pytest.raises(ShapeError):
        body_model_vertices(body, betas, pose[..., :60], orient, transl)


@pytest.fixture(scope="module")
def regressor(files):
    _, _, body = files["smpl"]
    train = _sequences(body, "smpl", seed=1, n_seq=6)
    return fit_joint_regressor(
        _stack(train, "vertices"), _stack(train, "keypoints"), NAMES, kind="smpl"
    )


def test_regressor_recovers_exact_keypoints(files, regressor):
    """Exactly reachable targets (rigid clusters, no pose blendshapes): held-out error at
    the level of the QP tolerance and ridge (observed 0.0006 mm RMS)."""
    _, _, body = files["smpl"]
    test = _sequences(body, "smpl", seed=2, n_seq=3)
    err = (regressor(_stack(test, "vertices")) - _stack(test, "keypoints")).norm(dim=-1)
    assert err.pow(2).mean().sqrt() < 5e-6 and err.max() < 5e-5
    W = regressor.dense()
    assert W.min() >= 0 and torch.allclose(W.sum(-1), torch.ones(len(NAMES), dtype=W.dtype))
    nnz = (W > 0).sum(-1)
    assert nnz.max() <= 48 and nnz.float().mean() < 30  # sparse, like SMPL's J_regressor


def test_regressor_with_pose_blendshapes_beats_cluster_centroids(files):
    """With 5 mm pose-corrective fields the targets are not reachable; the learned
    regressor's held-out error must not exceed the by-construction regressor's (observed
    1.2 vs 2.1 mm RMS)."""
    _, arrays, body = files["smpl_blend"]
    train = _sequences(body, "smpl", seed=1, n_seq=6)
    reg = fit_joint_regressor(_stack(train, "vertices"), _stack(train, "keypoints"), NAMES)
    test = _sequences(body, "smpl", seed=2, n_seq=3)
    V, K = _stack(test, "vertices"), _stack(test, "keypoints")
    rms = (reg(V) - K).norm(dim=-1).pow(2).mean().sqrt()
    oracle = (torch.tensor(arrays["oracle"]) @ V - K).norm(dim=-1).pow(2).mean().sqrt()
    assert rms < oracle and rms < 2e-3, (float(rms), float(oracle))


def test_regressor_save_load(tmp_path, regressor):
    path = regressor.save(tmp_path / "reg.npz")
    back = JointRegressor.load(path)
    assert back.names == regressor.names and back.num_vertices == 6890
    assert torch.equal(back.index, regressor.index)
    assert torch.equal(back.weights, regressor.weights)
    np.savez(tmp_path / "bad.npz", names=np.array(["a"]))
    with pytest.raises(FileFormatError, match="missing arrays"):
        JointRegressor.load(tmp_path / "bad.npz")


def test_apply_regressor_gradcheck_and_finite_differences():
    g = torch.Generator().manual_seed(2)
    verts = torch.randn(2, 9, 3, generator=g, dtype=torch.float64, requires_grad=True)
    index = torch.tensor([[0, 3, 5], [8, 1, 1]])
    w = torch.rand(2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v, w: apply_regressor(v, index, w), (verts, w))
    # directional derivative against central finite differences
    dv = torch.randn_like(verts)
    f = apply_regressor(verts, index, w)
    (grad,) = torch.autograd.grad(f, verts, torch.ones_like(f))
    h = 1e-6
    fd = apply_regressor(verts + h * dv, index, w) - apply_regressor(verts - h * dv, index, w)
    assert torch.allclose((grad * dv).sum(), fd.sum() / (2 * h), atol=1e-8)


def test_keypoints_of_parameters_gradcheck(files, regressor):
    """keypoints(betas, pose) through smplx and the regressor: gradcheck (fast mode, the
    output has 159 entries) and a finite-difference directional derivative."""
    _, _, body = files["smpl"]
    g = torch.Generator().manual_seed(3)
    betas = 0.1 * torch.randn(10, generator=g, dtype=torch.float64)
    pose = 0.2 * torch.randn(1, 69, generator=g, dtype=torch.float64)
    orient = 0.2 * torch.randn(1, 3, generator=g, dtype=torch.float64)
    transl = torch.zeros(1, 3, dtype=torch.float64)

    def f(b, p, o):
        return regressor(body_model_vertices(body, b, p, o, transl).vertices)

    inputs = tuple(x.clone().requires_grad_() for x in (betas, pose, orient))
    assert torch.autograd.gradcheck(f, inputs, fast_mode=True, atol=1e-6)
    dirs = [torch.randn(x.shape, generator=g, dtype=torch.float64) for x in inputs]
    out = f(*inputs)
    grads = torch.autograd.grad(out.sum(), inputs)
    h = 1e-6
    plus = f(*(x.detach() + h * d for x, d in zip(inputs, dirs))).sum()
    minus = f(*(x.detach() - h * d for x, d in zip(inputs, dirs))).sum()
    analytic = sum((gr * d).sum() for gr, d in zip(grads, dirs))
    assert torch.allclose(analytic, (plus - minus) / (2 * h), rtol=1e-5, atol=1e-7)


def test_fit_recovers_kinematics_and_scales_from_keypoints():
    """Exact keypoints in SMPL's frame: coordinates and scales recovered (the scale
    regularisation 1e-4 biases scales by ~3e-5)."""
    rng = np.random.default_rng(5)
    mo = parametric_motion(MODEL, "walk", 15, 30.0, rng)
    p = smpl_params(MODEL, "smpl", mo.q, np.r_[rng.normal(0, 0.05, 6), np.zeros(4)], rng)
    fit = fit_smpl_sequence(MODEL, torch.tensor(p["keypoints"]), NAMES)
    assert (fit.q - torch.tensor(mo.q)).abs().max() < 1e-4
    assert (fit.scales - torch.tensor(p["scales"])).abs().max() < 2e-4
    assert fit.ik.marker_error_rms.max() < 1e-4


def test_fit_through_mesh_and_learned_regressor(files, regressor):
    """Parameters -> mesh -> learned regressor -> fit: kinematics and scales recovered."""
    _, _, body = files["smpl"]
    seq = _sequences(body, "smpl", seed=7, n_seq=1, T=12)[0]
    fit = fit_smpl_sequence(MODEL, regressor(seq["vertices"]), regressor.names)
    assert (fit.q - torch.tensor(seq["q"])).abs().max() < 1e-3
    assert (fit.scales - torch.tensor(seq["scales"])).abs().max() < 1e-3


def test_fit_smplx_from_smplx_joints(files):
    """SMPL-X without a regressor: smplx's joints mapped by SMPL_JOINT_KEYPOINTS (exact on
    the generated model by construction)."""
    _, _, body = files["smplx"]
    seq = _sequences(body, "smplx", seed=8, n_seq=1, T=10)[0]
    idx = [body.joint_names.index(j) for j in SMPL_JOINT_KEYPOINTS]
    fit = fit_smpl_sequence(MODEL, seq["joints"][:, idx], list(SMPL_JOINT_KEYPOINTS.values()))
    assert (fit.q - torch.tensor(seq["q"])).abs().max() < 1e-3
    assert (fit.scales - torch.tensor(seq["scales"])).abs().max() < 1e-3


def test_cli_smpl_fit_end_to_end(tmp_path, files, regressor, capsys):
    path, _, body = files["smpl"]
    seq = _sequences(body, "smpl", seed=9, n_seq=1, T=10)[0]
    params = tmp_path / "walk.npz"
    np.savez(params, mocap_framerate=50.0, **{k: seq[k] for k in ARGS})
    reg = regressor.save(tmp_path / "reg.npz")
    out = tmp_path / "out"
    rc = main(["smpl-fit", str(params), "--body-model", str(path), "--regressor", str(reg),
               "--out", str(out)])  # fmt: skip
    assert rc == 0
    mot = read_storage(out / "walk.mot")
    assert mot.in_degrees and mot.labels == MODEL.coordinate_names
    assert np.allclose(mot.time, np.arange(10) / 50.0)
    q = mot.data.copy()
    rot = np.array(MODEL.rotational_mask)
    q[:, rot] = np.deg2rad(q[:, rot])
    assert np.abs(q - seq["q"]).max() < 1e-3
    xml = (out / "walk_scales.xml").read_text()
    assert "<ScaleSet" in xml and "femur_r" in xml
    assert (out / "walk_keypoints.trc").is_file()
    assert "keypoint RMS error" in capsys.readouterr().out


def test_cli_smpl_fit_errors(tmp_path, files, capsys):
    path, _, _ = files["smpl"]
    bad = tmp_path / "bad.npz"
    np.savez(bad, betas=np.zeros(10), body_pose=np.zeros((3, 69)), global_orient=np.zeros((3, 3)))
    assert main(["smpl-fit", str(bad), "--body-model", str(path), "--out", str(tmp_path)]) == 2
    assert "missing arrays ['transl']" in capsys.readouterr().err
    missing = tmp_path / "nope.npz"
    assert main(["smpl-fit", str(missing), "--body-model", str(path), "--out", str(tmp_path)]) == 2
    assert "nope.npz" in capsys.readouterr().err
    assert main(["smpl-fit", str(bad), "--body-model", str(tmp_path / "SMPL_X.pkl"),
                 "--out", str(tmp_path)]) == 2  # fmt: skip
    assert "body model file not found" in capsys.readouterr().err
    broken = tmp_path / "SMPL_BROKEN.npz"
    np.savez(broken, v_template=np.zeros((4, 3)))
    with pytest.raises(FileFormatError, match="missing arrays"):
        load_body_model(broken)
