"""Inverse-dynamics throughput, side by side in one run (frames per second, ratios).

gait2392 walking trial (0.5-2.5 s, 6 Hz low-pass, 121 frames; same q/qd/qdd/loads for
everyone):

- OpenSim 4.6 ``InverseDynamicsTool`` run on the trial (the tool itself: reads the
  motion and loads, filters, solves, writes the .sto into a temporary folder), and the
  ``InverseDynamicsSolver.solve(state, udot)`` loop frame by frame (the ratio's
  denominator);
- diffbio torch (``inverse_dynamics``) and Warp (``inverse_dynamics_warp``), float64, on
  the trial and batched over ``--trials`` trials of ``--frames`` frames (the trial's frames
  tiled), processed in chunks of ``--chunk`` trials under ``torch.no_grad``.

Pinocchio has no gait2392 model here: its RNEA (a Python loop over states) is timed
against diffbio on the 10-coordinate Pin/Ball/Free model of tests/dynamics/
test_pinocchio.py.

Every path runs on one CPU thread (``torch.set_num_threads(1)``; Warp's CPU launches and
OpenSim are single-threaded). Rates are frames per second of process CPU time
(``time.process_time``, best of ``--repeat``), which is less sensitive than wall time to
other jobs on a shared machine; the wall-clock rate of the batched runs is printed too.

Run: ``.venv/bin/python benchmarks/bench_id.py [--trials 1000 --frames 1000 --chunk 8]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _best(fn, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def _opensim_tool(d: Path, out: Path) -> None:
    import opensim as osim

    tool = osim.InverseDynamicsTool()
    tool.setModelFileName(str(d / "subject01_simbody.osim"))
    tool.setCoordinatesFileName(str(d / "subject01_walk1_ik.mot"))
    tool.setExternalLoadsFileName(str(d / "subject01_walk1_grf.xml"))
    tool.setLowpassCutoffFrequency(6.0)
    tool.setStartTime(0.5)
    tool.setEndTime(2.5)
    excluded = osim.ArrayStr()
    excluded.append("Muscles")
    tool.setExcludedForces(excluded)
    tool.setResultsDir(str(out))
    tool.setOutputGenForceFileName("id.sto")
    cwd = os.getcwd()
    os.chdir(d)  # the loads file names its .mot relative to itself
    try:
        if not tool.run():
            raise RuntimeError("InverseDynamicsTool failed")
    finally:
        os.chdir(cwd)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=64)
    ap.add_argument("--frames", type=int, default=121)
    ap.add_argument("--chunk", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from diffbio.dynamics import (
        BodyWrenches,
        inverse_dynamics,
        inverse_dynamics_warp,
        wrenches_from_external_loads,
    )
    from diffbio.io import prepare_coordinates, read_external_loads, read_storage
    from diffbio.model import load_osim, parse_osim_string
    from tests.conftest import OPENSIM_DATA
    from tests.dynamics._osim_helpers import opensim_inverse_dynamics, opensim_model

    d = OPENSIM_DATA / "gait2392"
    if not d.is_dir():
        print(f"skipped: {d} is absent")
        return
    model = load_osim(d / "subject01_simbody.osim")
    rot = {c for c, r in zip(model.coordinate_names, model.rotational_mask) if r}
    t, q, qd, qdd = prepare_coordinates(
        read_storage(d / "subject01_walk1_ik.mot"),
        model.coordinate_names,
        lowpass_hz=6.0,
        time_range=(0.5, 2.5),
        rotational=rot,
    )
    loads = read_external_loads(d / "subject01_walk1_grf.xml")
    qt, qdt, qddt = (torch.tensor(a) for a in (q, qd, qdd))
    w = wrenches_from_external_loads(model, loads, qt, t)
    T = len(t)
    om, s, umap = opensim_model(d / "subject01_simbody.osim", d / "subject01_walk1_grf.xml")
    t_os = _best(lambda: opensim_inverse_dynamics(om, s, umap, q, qd, qdd, times=t), 1)
    with tempfile.TemporaryDirectory() as tmp:
        t_tool = _best(lambda: _opensim_tool(d, Path(tmp)), 1)
    ref = opensim_inverse_dynamics(om, s, umap, q, qd, qdd, times=t)
    tau_t = inverse_dynamics(model, qt, qdt, qddt, w)
    tau_w = inverse_dynamics_warp(model, qt, qdt, qddt, w)  # compiles / loads the kernel
    r = args.repeat
    t_th = _best(lambda: inverse_dynamics(model, qt, qdt, qddt, w), r)
    t_wp = _best(lambda: inverse_dynamics_warp(model, qt, qdt, qddt, w), r)

    B, F = args.trials, args.frames
    idx = torch.arange(F) % T
    qb, qdb, qddb = (x[idx].expand(B, -1, -1) for x in (qt, qdt, qddt))
    wb = BodyWrenches(*(x[idx].expand(B, -1, -1, -1) for x in (w.force, w.torque, w.point)))
    batched = {}
    for name, fn in (("torch", inverse_dynamics), ("warp", inverse_dynamics_warp)):
        with torch.no_grad():
            w0 = time.perf_counter()
            cpu = _best(lambda fn=fn: fn(model, qb, qdb, qddb, wb, chunk_size=args.chunk), 1)
            batched[name] = (cpu, time.perf_counter() - w0)

    print(
        f"gait2392, {T} frames, torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(
        f"  max |tau - OpenSim| torch {np.abs(tau_t.numpy() - ref).max():.1e}, "
        f"warp {np.abs(tau_w.numpy() - ref).max():.1e}"
    )
    rows = [
        ("OpenSim InverseDynamicsSolver loop", T / t_os),
        ("OpenSim InverseDynamicsTool (run)", T / t_tool),
        ("diffbio torch (1 trial)", T / t_th),
        ("diffbio warp (1 trial)", T / t_wp),
    ]
    for name, (cpu, _wall) in batched.items():
        rows.append((f"diffbio {name} ({B}x{F} frames, chunk {args.chunk})", B * F / cpu))
    for name, fps in rows:
        print(f"  {name:44s} {fps:12.0f} frames/s   x{fps / rows[0][1]:8.2f} vs OpenSim")
    for name, (cpu, wall) in batched.items():
        print(f"  {name} batched: {cpu:.1f} s CPU, {wall:.1f} s wall")

    import pinocchio as pin

    from tests.dynamics.test_pinocchio import _order, _osim_xml, _pin_model

    small = parse_osim_string(_osim_xml())
    pm = _pin_model()
    data = pm.createData()
    perm = _order(small)
    rng = np.random.default_rng(0)
    N = 2000
    Qs = [rng.uniform(-1.5, 1.5, (N, small.num_coordinates)) for _ in range(3)]
    qp, vp, ap_ = (x[:, perm].copy() for x in Qs)

    def run_pin():
        for k in range(N):
            pin.rnea(pm, data, qp[k], vp[k], ap_[k])

    t_pin = _best(run_pin, r)
    Qt = [torch.tensor(x) for x in Qs]
    inverse_dynamics_warp(small, *Qt)
    t_sm = _best(lambda: inverse_dynamics(small, *Qt), r)
    t_smw = _best(lambda: inverse_dynamics_warp(small, *Qt), r)
    print(f"Pin/Ball/Free test model, {N} states")
    print(f"  {'Pinocchio rnea (Python loop)':44s} {N / t_pin:12.0f} states/s")
    for name, tt in (("diffbio torch (batched)", t_sm), ("diffbio warp (batched)", t_smw)):
        print(f"  {name:44s} {N / tt:12.0f} states/s   x{t_pin / tt:8.2f} vs Pinocchio")


if __name__ == "__main__":
    main()
