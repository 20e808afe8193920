"""OpenSim reference computations shared by the dynamics tests (live, never cached)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def opensim_model(path: Path, loads_xml: Path | None = None):
    """An OpenSim model with muscles disabled (as InverseDynamicsTool does by default),
    optionally with ExternalLoads attached; returns ``(model, state, umap)`` where
    ``umap[i]`` is the mobility index of coordinate ``i`` (CoordinateSet order)."""
    import opensim as osim

    om = osim.Model(str(path))
    if loads_xml is not None:
        cwd = os.getcwd()
        os.chdir(loads_xml.parent)
        try:
            om.addModelComponent(osim.ExternalLoads(str(loads_xml), True))
            s = om.initSystem()
        finally:
            os.chdir(cwd)
    else:
        s = om.initSystem()
    fs = om.getForceSet()
    for i in range(fs.getSize()):
        if osim.Muscle.safeDownCast(fs.get(i)) is not None:
            fs.get(i).setAppliesForce(s, False)
    cs = om.getCoordinateSet()
    n = cs.getSize()
    for i in range(n):
        cs.get(i).setLocked(s, False)
    umap = []
    for i in range(n):
        for k in range(n):
            cs.get(k).setSpeedValue(s, 0.0)
        cs.get(i).setSpeedValue(s, 1.0)
        umap.append(int(np.argmax([s.getU().get(k) for k in range(s.getNU())])))
    return om, s, umap


def opensim_inverse_dynamics(om, s, umap, q, qd, qdd, times=None) -> np.ndarray:
    """``InverseDynamicsSolver.solve(state, udot)`` at each row of ``q, qd, qdd (T, Q)``."""
    import opensim as osim

    solver = osim.InverseDynamicsSolver(om)
    cs = om.getCoordinateSet()
    n = cs.getSize()
    out = np.zeros_like(q)
    for r in range(q.shape[0]):
        if times is not None:
            s.setTime(float(times[r]))
        for i in range(n):
            cs.get(i).setValue(s, float(q[r, i]), False)
        for i in range(n):
            cs.get(i).setSpeedValue(s, float(qd[r, i]))
        udot = osim.Vector(s.getNU(), 0.0)
        for i in range(n):
            udot.set(umap[i], float(qdd[r, i]))
        tau = solver.solve(s, udot)
        out[r] = [tau.get(umap[i]) for i in range(n)]
    return out


def opensim_mass_matrix(om, s, umap, q) -> np.ndarray:
    import opensim as osim

    cs = om.getCoordinateSet()
    n = cs.getSize()
    for i in range(n):
        cs.get(i).setValue(s, float(q[i]), False)
    om.realizePosition(s)
    M = osim.Matrix()
    om.getMatterSubsystem().calcM(s, M)
    full = np.array([[M.get(a, b) for b in range(M.ncol())] for a in range(M.nrow())])
    return full[np.ix_(umap, umap)]
