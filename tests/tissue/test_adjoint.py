"""The equilibrium adjoint: gradcheck, finite differences and a Taylor test."""

import math

import pytest
import torch

from diffbio.tissue import (
    BoundaryConditions,
    Cuff,
    CuffContact,
    Material,
    MaterialModel,
    box_mesh,
    limb_mesh,
    solve_equilibrium,
)

F64 = torch.float64


def _setup():
    mesh = box_mesh((0.02, 0.02, 0.02), (1, 1, 1))
    s = mesh.node_sets
    g = torch.Generator().manual_seed(3)
    lam = 77288.0 * (1 + 0.2 * torch.rand(mesh.num_elements, generator=g, dtype=F64))
    mu = 4068.0 * (1 + 0.2 * torch.rand(mesh.num_elements, generator=g, dtype=F64))
    loads = torch.zeros(mesh.num_nodes, 3, dtype=F64)
    loads[s["x1"], 0] = 0.3
    loads[s["x1"], 1] = -0.1
    fixed = BoundaryConditions.fix(s["x0"], mesh.rest[s["x0"]])
    w = torch.randn(mesh.num_nodes, 3, generator=g, dtype=F64)
    return mesh, lam, mu, loads, fixed, w


def _objective(mesh, fixed, w, model=MaterialModel.SVK):
    gravity = torch.tensor([0.0, -9.80665, 0.0], dtype=F64)

    def f(lam, mu, loads, fixed_values, rest):
        bc = BoundaryConditions(fixed.fixed_dofs, fixed_values, loads=loads, gravity=gravity)
        res = solve_equilibrium(mesh.with_rest(rest), Material(lam, mu, model), bc, rtol=1e-13)
        return (res.x * w).sum() * 100.0

    return f


@pytest.mark.parametrize("model", list(MaterialModel))
def test_gradcheck_equilibrium(model):
    mesh, lam, mu, loads, fixed, w = _setup()
    f = _objective(mesh, fixed, w, model)
    args = [t.clone().requires_grad_(True) for t in (lam, mu, loads, fixed.fixed_values, mesh.rest)]
    assert torch.autograd.gradcheck(f, args, eps=1e-6, atol=1e-6, rtol=1e-5, fast_mode=True)


def test_adjoint_matches_finite_differences_in_E_nu():
    mesh, _, _, loads, fixed, w = _setup()
    bc = fixed.with_(loads=loads)

    def loss(E, nu):
        mat = Material.from_young(E, nu, mesh.num_elements)
        return (solve_equilibrium(mesh, mat, bc, rtol=1e-13).x * w).sum()

    E = torch.tensor(12000.0, dtype=F64, requires_grad=True)
    nu = torch.tensor(0.45, dtype=F64, requires_grad=True)
    gE, gnu = torch.autograd.grad(loss(E, nu), (E, nu))
    with torch.no_grad():
        hE, hn = 1e-2, 1e-6
        fdE = (loss(E + hE, nu) - loss(E - hE, nu)) / (2 * hE)
        fdn = (loss(E, nu + hn) - loss(E, nu - hn)) / (2 * hn)
    assert float(gE) == pytest.approx(float(fdE), rel=1e-6)
    assert float(gnu) == pytest.approx(float(fdn), rel=1e-6)


def test_taylor_remainder_is_second_order():
    mesh, lam, mu, loads, fixed, w = _setup()
    f = _objective(mesh, fixed, w)
    theta = [lam, mu, loads]
    g = torch.Generator().manual_seed(7)
    dirs = [t * 0.5 * torch.randn(t.shape, generator=g, dtype=F64) for t in theta]
    params = [t.clone().requires_grad_(True) for t in theta]
    L0 = f(*params, fixed.fixed_values, mesh.rest)
    grads = torch.autograd.grad(L0, params)
    slope = sum((gr * d).sum() for gr, d in zip(grads, dirs))
    rem = []
    with torch.no_grad():
        for h in (0.2, 0.1, 0.05, 0.025):
            Lh = f(*[t + h * d for t, d in zip(theta, dirs)], fixed.fixed_values, mesh.rest)
            rem.append(abs(float(Lh - L0 - h * slope)))
    rates = [math.log2(rem[i] / rem[i + 1]) for i in range(len(rem) - 1)]
    assert all(1.8 < r < 2.2 for r in rates), rates


def test_gradient_wrt_cuff_force_matches_finite_differences():
    mesh = limb_mesh(0.02, 0.05, 0.08, n_radial=1, n_circ=8, n_axial=2)
    mat = Material.from_young(
        12000.0, 0.475, mesh.num_elements, model=MaterialModel.STABLE_NEO_HOOKEAN
    )
    X = mesh.rest
    outer = mesh.node_sets["outer"]
    band = outer[(X[outer, 1] - 0.04).abs() < 1e-9]
    center = torch.tensor([0.0, 0.04, 0.0], dtype=F64)
    bone = BoundaryConditions.fix(mesh.node_sets["bone"], X[mesh.node_sets["bone"]])

    def pose_x(force, moment):
        cuff = Cuff(band, center, force, moment, 1e5, CuffContact.TIED)
        res = solve_equilibrium(mesh, mat, bone.with_(cuffs=(cuff,)), rtol=1e-12)
        return res.cuff_poses[0, 0] + 0.1 * res.cuff_poses[0, 4]

    force = torch.tensor([1.0, 0.2, 0.0], dtype=F64, requires_grad=True)
    moment = torch.tensor([0.0, 0.02, 0.0], dtype=F64, requires_grad=True)
    gf, gm = torch.autograd.grad(pose_x(force, moment), (force, moment))
    h = 1e-4
    with torch.no_grad():
        e = torch.zeros(3, dtype=F64)
        e[0] = h
        fd_f = (pose_x(force + e, moment) - pose_x(force - e, moment)) / (2 * h)
        e = torch.zeros(3, dtype=F64)
        e[1] = h
        fd_m = (pose_x(force, moment + e) - pose_x(force, moment - e)) / (2 * h)
    assert float(gf[0]) == pytest.approx(float(fd_f), rel=1e-5)
    assert float(gm[1]) == pytest.approx(float(fd_m), rel=1e-5)
