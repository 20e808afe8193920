"""Muscle-tendon lengths and moment arms against OpenSim 4.6, live (no wrapping)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffbio.model import load_osim
from diffbio.muscles._analysis import coordinates_from_motion
from diffbio.muscles._path_length import (
    moment_arms,
    muscle_names,
    muscle_tendon_lengths,
    muscle_tendon_velocities,
)
from tests.conftest import opensim_data_path

osim = pytest.importorskip("opensim")
osim.Logger.setLevelString("error")


def opensim_lengths_moment_arms(path, q: np.ndarray, speeds: np.ndarray | None = None):
    """OpenSim's getLength, computeMomentArm (and getLengtheningSpeed) at states q (T, Q)."""
    m = osim.Model(str(path))
    s = m.initSystem()
    cs, ms = m.getCoordinateSet(), m.getMuscles()
    nm, nq = ms.getSize(), cs.getSize()
    L, R, V = np.zeros((len(q), nm)), np.zeros((len(q), nm, nq)), np.zeros((len(q), nm))
    for t, qt in enumerate(q):
        for j in range(nq):
            cs.get(j).setValue(s, float(qt[j]), False)
            cs.get(j).setSpeedValue(s, 0.0 if speeds is None else float(speeds[t, j]))
        m.realizeVelocity(s)
        for i in range(nm):
            mu = ms.get(i)
            L[t, i] = mu.getLength(s)
            V[t, i] = mu.getLengtheningSpeed(s)
            for j in range(nq):
                R[t, i, j] = mu.computeMomentArm(s, cs.get(j))
    return [ms.get(i).getName() for i in range(nm)], L, R, V


def random_states(model, n: int, seed: int = 0) -> torch.Tensor:
    """In-range random states (locked coordinates at their defaults, couplers applied)."""
    from diffbio.kinematics import apply_couplers

    g = torch.Generator().manual_seed(seed)
    lo = torch.tensor([max(c.range[0], -2.0) for c in model.coordinates], dtype=torch.float64)
    hi = torch.tensor([min(c.range[1], 2.0) for c in model.coordinates], dtype=torch.float64)
    q = lo + (hi - lo) * torch.rand(n, len(lo), generator=g, dtype=torch.float64)
    locked = [i for i, c in enumerate(model.coordinates) if c.locked]
    q[:, locked] = model.default_q()[locked]
    return apply_couplers(model, q)


def walk_frames(model, folder, motion, n=10):
    from diffbio.io._storage import read_storage

    st = read_storage(opensim_data_path(folder, motion))
    q = coordinates_from_motion(model, st)
    idx = np.linspace(0, q.shape[0] - 1, n).round().astype(int)
    return q[idx]


CASES = [
    ("leg6dof9musc", "leg6dof9musc.osim", ("gait10dof18musc", "subject01_walk_IK.mot")),
    ("gait10dof18musc", "subject01.osim", ("gait10dof18musc", "subject01_walk_IK.mot")),
    ("gait2392", "subject01_simbody.osim", ("gait2392", "subject01_walk1_ik.mot")),
]


@pytest.mark.parametrize("folder,file,walk", CASES, ids=[c[0] for c in CASES])
def test_lengths_and_moment_arms_match_opensim(folder, file, walk):
    path = opensim_data_path(folder, file)
    model = load_osim(path)
    q = torch.cat([walk_frames(model, *walk, n=10), random_states(model, 3)])
    names, L, R, _ = opensim_lengths_moment_arms(path, q.numpy())
    assert list(names) == list(muscle_names(model))
    lengths = muscle_tendon_lengths(model, q).numpy()
    arms = moment_arms(model, q).numpy()
    assert lengths.shape == (q.shape[0], len(names))
    assert arms.shape == (q.shape[0], len(names), model.num_coordinates)
    # the issue asks for 0.01 mm; both agree to round-off (measured ~4e-16 m and ~3e-15 m)
    assert np.abs(lengths - L).max() < 1e-9
    err = np.abs(arms - R)
    worst = np.unravel_index(err.argmax(), err.shape)
    assert err.max() < 1e-9, (names[worst[1]], model.coordinate_names[worst[2]], err.max())


def test_lengthening_speed_matches_opensim():
    path = opensim_data_path("leg6dof9musc", "leg6dof9musc.osim")
    model = load_osim(path)
    q = random_states(model, 3, seed=3)
    qd = torch.randn(q.shape, dtype=torch.float64)
    # coupled coordinates move with their independent coordinate
    for k in model.couplers:
        i, d = model.coordinate_index(k.independent), model.coordinate_index(k.dependent)
        qd[:, d] = k.function(q[:, i], 1) * qd[:, i]
    _, _, _, V = opensim_lengths_moment_arms(path, q.numpy(), qd.numpy())
    v = muscle_tendon_velocities(model, q, qd).numpy()
    assert np.abs(v - V).max() < 1e-8
