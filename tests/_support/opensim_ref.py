"""Helpers that query OpenSim 4.6 (the reference implementation) in tests."""

from __future__ import annotations

import numpy as np
import pytest

osim = pytest.importorskip("opensim", reason="OpenSim 4.6 (pip install opensim) is the reference")
osim.Logger.setLevelString("error")


def load(path, scales=None, body_names=None):
    """An initialized OpenSim model and state, optionally scaled by ``scales (NB, 3)``."""
    model = osim.Model(str(path))
    state = model.initSystem()
    if scales is not None:
        ss = osim.ScaleSet()
        for name, s in zip(body_names, np.asarray(scales)):
            k = osim.Scale()
            k.setSegmentName(name)
            k.setScaleFactors(osim.Vec3(*map(float, s)))
            k.setApply(True)
            ss.cloneAndAppend(k)
        model.scale(state, ss, True)
        state = model.initSystem()
    return model, state


def set_q(model, state, q) -> None:
    cs = model.getCoordinateSet()
    for i in range(cs.getSize()):
        cs.get(i).setValue(state, float(q[i]), False)
    model.realizePosition(state)


def body_poses(model, state, names):
    """``(NB, 3, 3)`` rotations and ``(NB, 3)`` origins in ground."""
    R, p = [], []
    for n in names:
        b = model.getBodySet().get(n)
        X = b.getTransformInGround(state)
        M = X.R().asMat33()
        R.append([[M.get(r, c) for c in range(3)] for r in range(3)])
        p.append(X.p().to_numpy())
    return np.array(R), np.array(p)


def marker_positions(model, state, names):
    ms = model.getMarkerSet()
    return np.array([ms.get(n).getLocationInGround(state).to_numpy() for n in names]).reshape(-1, 3)
