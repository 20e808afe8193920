"""WrapTorus: OpenSim 4.6 semantics against live OpenSim on small models built in the test,
gradients (float64 gradcheck, finite differences)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffbio.model import load_osim
from diffbio.muscles._path_length import moment_arms, muscle_tendon_lengths
from diffbio.muscles._wrap import NO_WRAP, WRAPPED, wrap_torus

T64 = torch.float64

osim = pytest.importorskip("opensim")
osim.Logger.setLevelString("error")

# (quadrant, torus xyz_body_rotation, origin on ground, insertion on the moving body)
CASES = {
    "through_ring": ("all", (0.0, 0.0, 0.0), (0.04, 0.0, 0.15), (0.04, 0.0, -0.15)),
    "tilted_x": ("x", (0.3, -0.2, 0.5), (0.035, 0.01, 0.15), (0.045, -0.01, -0.12)),
    "oblique_-y": ("-y", (0.1, 0.2, 0.0), (0.0, -0.04, 0.12), (0.01, -0.035, -0.12)),
    # OpenSim holds a path that passes outside the ring on the ring's inner side
    "outside_ring": ("all", (0.0, 0.0, 0.0), (0.12, 0.0, 0.15), (0.11, 0.01, -0.15)),
}


def _build(path, quadrant, rot, origin, insertion, inner=0.02, outer=0.05):
    """Ground, a body on a FreeJoint (rotations within 0.3 rad, translations within 2 cm)
    and one muscle from ground through a WrapTorus on ground to the body."""
    m = osim.Model()
    m.setName("torus_test")
    g = m.getGround()
    b = osim.Body("b", 1.0, osim.Vec3(0), osim.Inertia(0.01, 0.01, 0.01))
    m.addBody(b)
    j = osim.FreeJoint("j", g, osim.Vec3(0), osim.Vec3(0), b, osim.Vec3(0), osim.Vec3(0))
    m.addJoint(j)
    for k in range(6):
        c = j.upd_coordinates(k)
        lim = 0.3 if k < 3 else 0.02
        c.setRangeMin(-lim)
        c.setRangeMax(lim)
    t = osim.WrapTorus()
    t.setName("ring")
    t.set_inner_radius(inner)
    t.set_outer_radius(outer)
    t.set_quadrant(quadrant)
    t.set_xyz_body_rotation(osim.Vec3(*rot))
    g.addWrapObject(t)
    mus = osim.Millard2012EquilibriumMuscle("m", 100.0, 0.1, 0.1, 0.0)
    mus.addNewPathPoint("o", g, osim.Vec3(*origin))
    mus.addNewPathPoint("i", b, osim.Vec3(*insertion))
    mus.updGeometryPath().addPathWrap(t)
    m.addForce(mus)
    m.finalizeConnections()
    m.printToXML(str(path))
    return path


def _opensim(path, q: np.ndarray, h=1e-6):
    """getLength, the straight distance between the two path points, and the central
    difference -dL/dq of getLength, at states q (T, 6)."""
    m = osim.Model(str(path))
    s = m.initSystem()
    cs, mus = m.getCoordinateSet(), m.getMuscles().get(0)
    pps = mus.getGeometryPath().getPathPointSet()

    def at(qt):
        for j in range(6):
            cs.get(j).setValue(s, float(qt[j]), False)
        m.realizePosition(s)

    L, straight, fd = np.zeros(len(q)), np.zeros(len(q)), np.zeros((len(q), 6))
    for t, qt in enumerate(q):
        at(qt)
        L[t] = mus.getLength(s)
        a, b = (pps.get(k).getLocationInGround(s).to_numpy() for k in (0, 1))
        straight[t] = np.linalg.norm(a - b)
        for j in range(6):
            e = np.zeros(6)
            e[j] = h
            at(qt + e)
            up = mus.getLength(s)
            at(qt - e)
            fd[t, j] = -(up - mus.getLength(s)) / (2 * h)
    return L, straight, fd


@pytest.mark.parametrize("case", list(CASES))
def test_torus_lengths_and_moment_arms_match_opensim(tmp_path, case):
    """Default pose and 10 random in-range states per model. Moment arms are -dl/dq against
    OpenSim's central differences of getLength."""
    from tests.muscles.test_path_opensim import random_states

    path = _build(tmp_path / f"{case}.osim", *CASES[case])
    model = load_osim(path)
    q = torch.cat([model.default_q()[None], random_states(model, 10, seed=3)])
    L, straight, fd = _opensim(path, q.numpy())
    wrapped = L - straight > 1e-6
    assert wrapped.sum() >= 5
    el = np.abs(muscle_tendon_lengths(model, q).numpy()[:, 0] - L)
    er = np.abs(moment_arms(model, q).numpy()[:, 0] - fd)
    print(case, "length error [mm]:", el.max() * 1e3, "-dl/dq error [mm]:", er.max() * 1e3)
    assert el.max() < 1e-8
    assert er.max() < 1e-8


def _torus_total(p1, p2, inner, outer, quadrant=(0, 0)):
    code, r1, r2, wl = wrap_torus(p1, p2, inner, outer, quadrant)
    wrapped = (r1 - p1).norm(dim=-1) + wl + (p2 - r2).norm(dim=-1)
    return torch.where(code == WRAPPED, wrapped, (p2 - p1).norm(dim=-1)), code


def test_torus_gradcheck_and_finite_differences():
    inner, outer = torch.tensor(0.02, dtype=T64), torch.tensor(0.05, dtype=T64)
    p1 = torch.tensor([0.035, 0.01, 0.15], dtype=T64, requires_grad=True)
    p2 = torch.tensor([0.045, -0.012, -0.12], dtype=T64, requires_grad=True)
    total, code = _torus_total(p1, p2, inner, outer)
    assert code == WRAPPED
    assert total > (p2 - p1).norm() + 1e-4
    assert torch.autograd.gradcheck(
        lambda a, b: _torus_total(a, b, inner, outer)[0],
        (p1, p2),
        eps=1e-7,
        atol=1e-6,
        check_forward_ad=True,
    )
    g = torch.autograd.grad(total, p1)[0]
    h = 1e-6
    for k in range(3):
        e = torch.zeros(3, dtype=T64)
        e[k] = h
        with torch.no_grad():
            fd = (
                _torus_total(p1 + e, p2, inner, outer)[0]
                - _torus_total(p1 - e, p2, inner, outer)[0]
            ) / (2 * h)
        assert abs(g[k] - fd) < 1e-7


def test_torus_no_wrap_through_the_middle_of_the_ring():
    """A segment through the ring, clear of the tube, keeps its straight length."""
    inner, outer = torch.tensor(0.02, dtype=T64), torch.tensor(0.05, dtype=T64)
    p1 = torch.tensor([[0.01, 0.0, 0.15], [-0.02, 0.01, 0.15]], dtype=T64)
    p2 = torch.tensor([[0.01, 0.0, -0.15], [0.0, -0.01, -0.15]], dtype=T64)
    total, code = _torus_total(p1, p2, inner, outer)
    assert (code == NO_WRAP).all()
    assert torch.equal(total, (p2 - p1).norm(dim=-1))
