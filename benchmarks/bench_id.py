"""Inverse-dynamics throughput, side by side in one run (frames per second, ratios).

gait2392 walking trial (0.5-2.5 s, 6 Hz low-pass, same q/qd/qdd/loads for everyone):
OpenSim 4.6 ``InverseDynamicsSolver.solve(state, udot)`` frame by frame, diffbio torch on
the trial, and diffbio torch batched over ``--trials`` copies of the trial. Pinocchio has no
gait2392 model here: its RNEA is timed against diffbio on the Pin/Ball/Free test model of
tests/dynamics/test_pinocchio.py (10 coordinates). The Warp path is not implemented yet.

Run: ``.venv/bin/python benchmarks/bench_id.py [--trials 64]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _best(fn, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=64)
    args = ap.parse_args()
    from diffbio.dynamics import inverse_dynamics, wrenches_from_external_loads
    from diffbio.io import prepare_coordinates, read_external_loads, read_storage
    from diffbio.model import load_osim, parse_osim_string
    from tests.conftest import OPENSIM_DATA
    from tests.dynamics._osim_helpers import opensim_inverse_dynamics, opensim_model

    d = OPENSIM_DATA / "gait2392"
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
    t_th = _best(lambda: inverse_dynamics(model, qt, qdt, qddt, w))
    B = args.trials
    qb, qdb, qddb = (x.expand(B, -1, -1) for x in (qt, qdt, qddt))
    wb = type(w)(*(x.expand(B, -1, -1, -1) for x in (w.force, w.torque, w.point)))
    t_b = _best(lambda: inverse_dynamics(model, qb, qdb, qddb, wb), 2)
    print(f"gait2392, {T} frames, torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = [
        ("OpenSim InverseDynamicsSolver", T / t_os),
        ("diffbio torch (1 trial)", T / t_th),
        (f"diffbio torch ({B} trials batched)", B * T / t_b),
    ]
    for name, fps in rows:
        print(f"  {name:38s} {fps:12.0f} frames/s   x{fps / rows[0][1]:8.2f} vs OpenSim")

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

    t_pin = _best(run_pin, 2)
    Qt = [torch.tensor(x) for x in Qs]
    t_sm = _best(lambda: inverse_dynamics(small, *Qt), 2)
    print(f"Pin/Ball/Free test model, {N} states")
    print(f"  {'Pinocchio rnea (loop)':38s} {N / t_pin:12.0f} states/s")
    print(
        f"  {'diffbio torch (batched)':38s} {N / t_sm:12.0f} states/s   x{t_pin / t_sm:8.2f} vs Pinocchio"
    )


if __name__ == "__main__":
    main()
