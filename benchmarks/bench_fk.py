"""Forward-kinematics throughput: OpenSim 4.6 against diffbio's torch and Warp paths.

Model gait2392 ``subject01_simbody.osim`` (12 bodies, 23 coordinates), coordinates from the
walking trial ``subject01_walk1_ik.mot`` (211 frames, degrees -> radians for rotational
coordinates). Measured side by side in one process, in frames per second:

* OpenSim 4.6 (Python bindings): per frame, set every coordinate value in a State,
  ``realizePosition``, read every body's transform in ground (position and body-fixed
  X-Y-Z angles, as OpenSim's BodyKinematics reports them);
* diffbio ``forward_kinematics`` (torch) and ``forward_kinematics_warp`` (Warp kernel on
  the device of ``q``; the CPU here), float64 and float32, one trial ``(T, Q)`` per call
  and a batch ``(B, T, Q)`` of the trial repeated ``B`` times per call; forward alone and
  forward plus backward (gradient of a scalar of all poses w.r.t. ``q``).

Every row (OpenSim's included: one pass over the trial) is the fastest of several timed
calls after a warm-up call; ratios are to OpenSim's frames per second. Run ``python benchmarks/bench_fk.py [--quick] [--batch B] [--threads N]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DATA = REPO.parent / "shared" / "data" / "opensim" / "gait2392"
MODEL = DATA / "subject01_simbody.osim"
TRIAL = DATA / "subject01_walk1_ik.mot"


def _read_mot(path: Path) -> tuple[tuple[str, ...], np.ndarray, bool]:
    """Labels (without time), data ``(T, C)`` and the inDegrees flag of a Storage file."""
    try:
        from diffbio.io import read_storage
    except ImportError:
        read_storage = None
    if read_storage is not None:
        s = read_storage(path)
        return s.labels, np.asarray(s.data), s.in_degrees
    lines = path.read_text().splitlines()
    end = next(i for i, line in enumerate(lines) if line.strip().lower() == "endheader")
    in_degrees = any(line.replace(" ", "").lower() == "indegrees=yes" for line in lines[:end])
    labels = tuple(lines[end + 1].split())
    table = np.array(
        [[float(v) for v in line.split()] for line in lines[end + 2 :] if line.strip()]
    )
    return labels[1:], table[:, 1:], in_degrees


def trial_q(model) -> np.ndarray:
    """The trial's coordinates ``(T, Q) [rad or m]`` in ``model.coordinate_names`` order."""
    labels, data, in_degrees = _read_mot(TRIAL)
    q = data[:, [labels.index(n) for n in model.coordinate_names]].copy()
    if in_degrees:
        rot = np.array(model.rotational_mask)
        q[:, rot] = np.deg2rad(q[:, rot])
    return q


def bench_opensim(
    q: np.ndarray, repeats: int, budget_s: float
) -> tuple[float, np.ndarray, list[str]]:
    """Frames per second of OpenSim's per-frame loop over the trial ``q (T, Q)``, body
    origins ``(T, NB, 3) [m]`` and OpenSim's coordinate names."""
    import opensim as osim

    osim.Logger.setLevelString("error")
    model = osim.Model(str(MODEL))
    state = model.initSystem()
    coords = [model.getCoordinateSet().get(i) for i in range(model.getCoordinateSet().getSize())]
    bodies = [model.getBodySet().get(i) for i in range(model.getBodySet().getSize())]
    names = [c.getName() for c in coords]
    out = np.zeros((q.shape[0], len(bodies), 3))

    def run():
        for t, row in enumerate(q):
            for c, v in zip(coords, row, strict=True):
                c.setValue(state, float(v), False)
            model.realizePosition(state)
            for b, body in enumerate(bodies):
                X = body.getTransformInGround(state)
                out[t, b] = X.p().to_numpy()
                X.R().convertRotationToBodyFixedXYZ().to_numpy()

    dt = best_time(run, repeats, budget_s)
    return q.shape[0] / dt, out, names


def best_time(fn, repeats: int, budget_s: float) -> float:
    """Fastest of up to ``repeats`` timed calls of ``fn()`` (at least two; no new call once
    ``budget_s`` seconds are spent) after one warm-up call. The minimum is the least
    disturbed by other processes on a shared machine."""
    fn()
    times: list[float] = []
    while len(times) < 2 or (len(times) < repeats and sum(times) < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run (fewer frames and repeats)")
    parser.add_argument(
        "--batch", type=int, default=None, help="trials per batched call (default 256; 32 quick)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1: OpenSim's loop and Warp's CPU launches are "
        "single-threaded too, and on a shared machine more threads mostly wait)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not MODEL.exists() or not TRIAL.exists():
        print(f"skipped: shared OpenSim data not found under {DATA}")
        return 0

    import warp as wp

    wp.config.log_level = wp.LOG_WARNING
    wp.config.quiet = True
    from diffbio.kinematics import forward_kinematics, forward_kinematics_warp
    from diffbio.model import load_osim

    model = load_osim(MODEL)
    q_np = trial_q(model)
    T = q_np.shape[0]
    B = args.batch or (32 if args.quick else 256)
    repeats, budget = (3, 1.0) if args.quick else (7, 5.0)
    osim_fps, osim_pos, osim_names = bench_opensim(q_np, repeats, budget)
    assert tuple(osim_names) == model.coordinate_names

    rows = []
    for dtype in (torch.float64, torch.float32):
        q1 = torch.tensor(q_np, dtype=dtype)
        qb = q1.expand(B, T, -1).contiguous()
        for label, fn in (("torch", forward_kinematics), ("warp", forward_kinematics_warp)):
            for shape_label, q, frames in (("1 trial", q1, T), (f"{B} trials", qb, B * T)):
                sec = best_time(lambda fn=fn, q=q: fn(model, q), repeats, budget)
                rows.append(
                    (label, str(dtype).removeprefix("torch."), shape_label, "forward", frames / sec)
                )

                def fwd_bwd(fn=fn, q=q):
                    qg = q.detach().requires_grad_()
                    p = fn(model, qg)
                    (p.translation.sum() + p.rotation.sum()).backward()

                sec = best_time(fwd_bwd, repeats, budget)
                rows.append(
                    (label, str(dtype).removeprefix("torch."), shape_label, "fwd+bwd", frames / sec)
                )

    # agreement with OpenSim on the frames OpenSim computed (a sanity check of the inputs)
    ours = forward_kinematics_warp(model, torch.tensor(q_np))
    err = np.abs(ours.translation.numpy() - osim_pos).max()

    print(
        f"gait2392 subject01, {T} frames per trial, {len(model.bodies)} bodies; torch threads "
        f"{torch.get_num_threads()}; warp {wp.__version__} on cpu; max |p_diffbio - p_OpenSim| = {err:.1e} m"
    )
    print(f"{'path':<8}{'dtype':<9}{'call':<12}{'pass':<9}{'frames/s':>12}{'x OpenSim':>11}")
    print(
        f"{'OpenSim':<8}{'float64':<9}{'per frame':<12}{'forward':<9}{osim_fps:>12.0f}{1.0:>11.2f}"
    )
    for label, dt, shape_label, kind, fps in rows:
        print(f"{label:<8}{dt:<9}{shape_label:<12}{kind:<9}{fps:>12.0f}{fps / osim_fps:>11.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
