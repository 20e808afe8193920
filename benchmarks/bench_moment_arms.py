"""All moment arms of gait2392 over the walk: diffbio vs OpenSim 4.6 (computeMomentArm),
reported as a ratio; also lengths, lengthening speeds and moment arms together
(``muscle_geometry``, one kinematics pass). Run:
.venv/bin/python benchmarks/bench_moment_arms.py [--frames N] [--threads N]"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "opensim" / "gait2392"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=20, help="walk frames timed (OpenSim is slow)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import opensim as osim

    from diffbio.io._storage import read_storage
    from diffbio.model import load_osim
    from diffbio.muscles import coordinates_from_motion, moment_arms

    path = DATA / "subject01_simbody.osim"
    model = load_osim(path)
    q_all = coordinates_from_motion(model, read_storage(DATA / "subject01_walk1_ik.mot"))
    q = q_all[np.linspace(0, q_all.shape[0] - 1, args.frames).round().astype(int)]

    def best_of(fn, n=3):
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
        return out, min(times)

    moment_arms(model, q[:2])  # warm-up
    ours, t_ours = best_of(lambda: moment_arms(model, q))
    from diffbio.muscles._path_length import muscle_geometry

    qd = torch.ones_like(q)
    muscle_geometry(model, q[:2], qd[:2])
    geo, t_geo = best_of(lambda: muscle_geometry(model, q, qd))
    assert torch.equal(geo[2], ours)

    osim.Logger.setLevelString("error")
    m = osim.Model(str(path))
    s = m.initSystem()
    cs, ms = m.getCoordinateSet(), m.getMuscles()
    ref = np.zeros(tuple(ours.shape))
    t0 = time.perf_counter()
    for t, qt in enumerate(q.numpy()):
        for j in range(cs.getSize()):
            cs.get(j).setValue(s, float(qt[j]), False)
        m.realizePosition(s)
        for i in range(ms.getSize()):
            for j in range(cs.getSize()):
                ref[t, i, j] = ms.get(i).computeMomentArm(s, cs.get(j))
    t_osim = time.perf_counter() - t0
    n = ours.numel()
    print(
        f"gait2392, {args.frames} frames, {n} moment arms; torch threads {torch.get_num_threads()}"
    )
    print(
        f"diffbio  {t_ours:8.3f} s   OpenSim {t_osim:8.3f} s   speed-up (OpenSim / diffbio) {t_osim / t_ours:6.1f}x"
    )
    print(f"max |diffbio - OpenSim| = {np.abs(ours.numpy() - ref).max() * 1e3:.2e} mm")
    print(
        f"diffbio lengths + speeds + moment arms (muscle_geometry) {t_geo:8.3f} s: "
        f"{t_osim / t_geo:6.1f}x OpenSim's moment arms alone"
    )


if __name__ == "__main__":
    main()
