"""Static optimization against OpenSim 4.6's StaticOptimization, run live (AnalyzeTool, the
same exponent, actuators, 6 Hz coordinate filter), and gradients on real frames."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from diffbio.io import read_storage
from diffbio.muscles import (
    load_static_optimization_trial,
    solve_static_optimization,
    static_optimization,
)
from tests.conftest import opensim_data_path

TRIALS = {
    "gait10dof18musc": (
        "gait10dof18musc/subject01.osim",
        "gait10dof18musc/subject01_walk_IK.mot",
        "gait10dof18musc/subject01_walk_grf.xml",
        "gait10dof18musc/gait10dof_Reserve_Actuators.xml",
    ),
    "gait2392": (
        "gait2392/subject01_simbody.osim",
        "gait2392/subject01_walk1_ik.mot",
        "gait2392/subject01_walk1_grf.xml",
        "gait2392/gait2392_SO_Residual_Actuators.xml",
    ),
}


def trial_paths(name: str) -> tuple[Path, ...]:
    return tuple(opensim_data_path(p) for p in TRIALS[name])


def run_opensim_static_optimization(
    model, motion, loads, actuators, t0, t1, out_dir, lowpass=6.0, exponent=2.0
) -> tuple[Path, float]:
    """Run OpenSim's AnalyzeTool with a StaticOptimization analysis (actuators appended to
    the model's force set); returns the activation ``.sto`` path and the run time [s]."""
    osim = pytest.importorskip("opensim", reason="OpenSim 4.6 is the reference")
    osim.Logger.setLevelString("error")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tool = osim.AnalyzeTool()
    tool.setName("so")
    tool.setModelFilename(str(Path(model).resolve()))
    if actuators is not None:
        files = osim.ArrayStr()
        files.append(str(Path(actuators).resolve()))
        tool.setForceSetFiles(files)
        tool.setReplaceForceSet(False)
    tool.setCoordinatesFileName(str(Path(motion).resolve()))
    tool.setLowpassCutoffFrequency(lowpass)
    tool.setExternalLoadsFileName(str(Path(loads).resolve()))
    tool.setInitialTime(t0)
    tool.setFinalTime(t1)
    tool.setResultsDir(str(out_dir.resolve()))
    so = osim.StaticOptimization()
    so.setStartTime(t0)
    so.setEndTime(t1)
    so.setUseModelForceSet(True)
    so.setActivationExponent(exponent)
    so.setUseMusclePhysiology(True)
    tool.getAnalysisSet().cloneAndAppend(so)
    setup = out_dir / "setup_so.xml"
    tool.printToXML(str(setup))
    tool = osim.AnalyzeTool(str(setup))
    cwd = os.getcwd()
    os.chdir(Path(loads).parent)
    try:
        start = time.perf_counter()
        tool.run()
        elapsed = time.perf_counter() - start
    finally:
        os.chdir(cwd)
    return out_dir / "so_StaticOptimization_activation.sto", elapsed


def compare(frames, result, reference: Path) -> dict:
    """Activation RMSE over all muscles and frames, and per-muscle correlations of the
    muscles whose reference peak exceeds 0.05."""
    st = read_storage(reference)
    ref = st.columns(frames.muscles)
    ours = result.activations.detach().cpu().double().numpy()
    assert len(st.time) == len(frames.time)
    np.testing.assert_allclose(st.time, frames.time, atol=1e-6)
    rmse = float(np.sqrt(((ours - ref) ** 2).mean()))
    corr = {}
    for j, m in enumerate(frames.muscles):
        if ref[:, j].max() > 0.05 and ref[:, j].std() > 0 and ours[:, j].std() > 0:
            corr[m] = float(np.corrcoef(ours[:, j], ref[:, j])[0, 1])
    ctrl = st.columns([a.name for a in frames.actuators])
    return {"rmse": rmse, "corr": corr, "controls_ref": ctrl}


@pytest.mark.slow
@pytest.mark.parametrize("name, t0, t1", [("gait10dof18musc", 0.6, 0.7), ("gait2392", 0.6, 0.65)])
def test_activations_match_opensim(name, t0, t1, tmp_path):
    model, motion, loads, acts = trial_paths(name)
    sto, _ = run_opensim_static_optimization(model, motion, loads, acts, t0, t1, tmp_path)
    _, frames = load_static_optimization_trial(model, motion, loads, acts, time_range=(t0, t1))
    res = solve_static_optimization(frames)
    assert bool((res.status == 0).all())
    cmp = compare(frames, res, sto)
    assert cmp["rmse"] <= 0.02, cmp["rmse"]
    # controls (reserves, residuals) agree too: the same generalized forces are matched
    ctrl = res.controls.detach().numpy()
    scale = np.abs(cmp["controls_ref"]).max(0) + 1e-3
    assert np.abs(ctrl - cmp["controls_ref"]).max(0).max() / scale.max() < 0.05
    # frames are few here; correlation is checked over the full trial in bench_so.py
    if len(frames.time) >= 6:
        assert min(cmp["corr"].values()) >= 0.9, cmp["corr"]


@pytest.fixture(scope="module")
def real_frames():
    model, motion, loads, acts = trial_paths("gait10dof18musc")
    _, frames = load_static_optimization_trial(model, motion, loads, acts, time_range=(0.6, 0.62))
    return frames


def test_gradients_on_real_frames(real_frames):
    """d activations / d (tau, F_active_per_a) by autograd vs central differences (the
    perturbed problems solved as one batch), and gradcheck, on real static-optimization
    frames of gait10dof18musc."""
    fr = real_frames.slice(0, 2)
    acts = fr.actuators
    kw = {
        "a_min": fr.a_min,
        "a_max": fr.a_max,
        "control_min": torch.tensor([a.min_control for a in acts], dtype=torch.float64),
        "control_max": torch.tensor([a.max_control for a in acts], dtype=torch.float64),
        "keep": fr.keep,
    }

    def act(tau, Fa):
        return static_optimization(tau, fr.moment_arms, Fa, None, fr.actuator_moments, **kw)

    ref = solve_static_optimization(fr)
    torch.testing.assert_close(act(fr.tau, fr.F_active_per_a).activations, ref.activations)
    tau = fr.tau.clone().requires_grad_()
    Fa = fr.F_active_per_a.clone().requires_grad_()
    a = act(tau, Fa).activations
    assert bool((a > fr.a_min + 1e-3).any())  # some muscles are off their bounds
    probe = torch.linspace(-1, 1, a.numel(), dtype=a.dtype).view_as(a)
    g_tau, g_fa = torch.autograd.grad((a * probe).sum(), (tau, Fa))
    for x, g, h, which in ((fr.tau, g_tau, 1e-4, 0), (fr.F_active_per_a, g_fa, 1e-3, 1)):
        n = x.numel()
        d = (h * torch.eye(n, dtype=x.dtype)).view(n, *x.shape)
        xs = torch.cat([x + d, x - d])
        res = act(xs, fr.F_active_per_a) if which == 0 else act(fr.tau, xs)
        assert bool((res.status == 0).all())
        out = (res.activations * probe).sum((-1, -2))
        fd = ((out[:n] - out[n:]) / (2 * h)).view_as(x)
        torch.testing.assert_close(g, fd, atol=1e-8, rtol=1e-4)
        assert g.abs().max() > 0
    tau1 = fr.tau.clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda t: act(t, fr.F_active_per_a).activations,
        (tau1,),
        eps=1e-5,
        atol=1e-6,
        rtol=1e-4,
        fast_mode=True,
    )


def test_so_cli_writes_opensim_tables(real_frames, tmp_path, capsys):
    from diffbio.cli._main import main

    model, motion, loads, acts = trial_paths("gait10dof18musc")
    argv = ["so", str(model), "--motion", str(motion), "--loads", str(loads)]
    argv += ["--actuators", str(acts), "--time", "0.6", "0.62", "--out", str(tmp_path)]
    assert main(argv) == 0
    act = read_storage(tmp_path / "so_StaticOptimization_activation.sto")
    frc = read_storage(tmp_path / "so_StaticOptimization_force.sto")
    names = list(real_frames.muscles) + [a.name for a in real_frames.actuators]
    assert list(act.labels) == names and list(frc.labels) == names
    ref = solve_static_optimization(real_frames)
    np.testing.assert_allclose(
        act.columns(list(real_frames.muscles)), ref.activations.numpy(), atol=1e-9
    )
    np.testing.assert_allclose(
        frc.columns(list(real_frames.muscles)), ref.muscle_forces.numpy(), atol=1e-6
    )
    out = capsys.readouterr().out
    assert "lumbar_extension_reserve" in out and "rms" in out


@pytest.mark.slow
def test_activation_exponent_3_matches_opensim(tmp_path):
    """OpenSim's StaticOptimization with activation_exponent = 3 against the sequential-QP
    solution on gait2392 frames: RMSE, per-muscle correlation, objective and the equations;
    the p = 2 solution is much farther from OpenSim's p = 3 result."""
    model, motion, loads, acts = trial_paths("gait2392")
    t0, t1 = 0.6, 0.75
    sto, _ = run_opensim_static_optimization(
        model, motion, loads, acts, t0, t1, tmp_path, exponent=3.0
    )
    _, frames = load_static_optimization_trial(model, motion, loads, acts, time_range=(t0, t1))
    res = solve_static_optimization(frames, exponent=3.0)
    assert bool((res.status == 0).all())
    cmp = compare(frames, res, sto)
    assert cmp["rmse"] <= 0.005, cmp["rmse"]
    assert min(cmp["corr"].values()) >= 0.95, cmp["corr"]
    ref = read_storage(sto)
    names = list(frames.muscles) + [a.name for a in frames.actuators]
    x_ref = ref.columns(names)
    x = torch.cat([res.activations, res.controls], -1).numpy()
    # no worse than OpenSim's optimizer on the same objective (it stops at its tolerance)
    obj, obj_ref = (np.abs(x) ** 3).sum(-1), (np.abs(x_ref) ** 3).sum(-1)
    assert (obj <= obj_ref * (1 + 1e-3)).all(), obj / obj_ref
    assert float(res.moment_residual[:, frames.keep].abs().max()) < 1e-8
    p2 = compare(frames, solve_static_optimization(frames), sto)
    assert p2["rmse"] > 5 * cmp["rmse"], (p2["rmse"], cmp["rmse"])


def test_so_cli_exponent(real_frames, tmp_path):
    from diffbio.cli._main import main

    model, motion, loads, acts = trial_paths("gait10dof18musc")
    argv = ["so", str(model), "--motion", str(motion), "--loads", str(loads)]
    argv += ["--actuators", str(acts), "--time", "0.6", "0.62", "--out", str(tmp_path)]
    assert main([*argv, "--exponent", "3"]) == 0
    act = read_storage(tmp_path / "so_StaticOptimization_activation.sto")
    ref = solve_static_optimization(real_frames, exponent=3.0)
    np.testing.assert_allclose(
        act.columns(list(real_frames.muscles)), ref.activations.numpy(), atol=1e-9
    )
    p2 = solve_static_optimization(real_frames)
    assert float((ref.activations - p2.activations).abs().max()) > 1e-3


def test_model_inputs_are_parsed_once_and_not_shared_mutably(real_frames):
    """The .osim is parsed once per file version; the frames of a second call are equal and
    own their bounds (editing them does not leak into later calls)."""
    model, motion, loads, acts = trial_paths("gait10dof18musc")
    m1, f1 = load_static_optimization_trial(model, motion, loads, acts, time_range=(0.6, 0.62))
    f1.a_min.add_(0.5)
    m2, f2 = load_static_optimization_trial(model, motion, loads, acts, time_range=(0.6, 0.62))
    assert m1 is m2
    torch.testing.assert_close(f2.a_min, real_frames.a_min, rtol=0, atol=0)
    for k in ("tau", "moment_arms", "F_active_per_a", "actuator_moments"):
        torch.testing.assert_close(getattr(f2, k), getattr(real_frames, k), rtol=0, atol=0)
