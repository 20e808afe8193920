"""Torsion convergence: alternating split, nodal-average volumetric term (anti-locking)."""

import math

import pytest
import torch

from diffbio import ShapeError
from diffbio.tissue import (
    Backend,
    BoundaryConditions,
    Material,
    MaterialModel,
    TetSplit,
    VolumetricTreatment,
    boundary_faces,
    box_mesh,
    elastic_energy,
    internal_forces,
    limb_mesh,
    nodal_volumetric_energy,
    solve_equilibrium,
    torsion_convergence,
    torsion_stiffness_exact,
    torsion_test,
)
from diffbio.tissue._volumetric import NodalVolumetric

F64 = torch.float64
E, NU = 12000.0, 0.475
NODAL = VolumetricTreatment.NODAL_AVERAGE


def _random_lame(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 5e4 + 3e4 * torch.rand(n, generator=g, dtype=F64), 4e3 + 1e3 * torch.rand(
        n, generator=g, dtype=F64
    )


def test_alternating_split_is_conforming_and_fills_the_polygonal_annulus():
    m = limb_mesh(0.02, 0.05, 0.1, n_radial=3, n_circ=8, n_axial=2, split=TetSplit.ALTERNATING)
    assert m.num_elements == 6 * 3 * 8 * 2
    assert bool((m.volumes() > 0).all())
    faces = boundary_faces(m.tets)
    # inner + outer cylinders (2 triangles per quad) and two annular caps: a closed surface
    assert faces.shape[0] == 2 * (2 * 8 * 2) + 2 * (2 * 3 * 8)
    e = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).sort(dim=1).values
    _, counts = torch.unique(e, dim=0, return_counts=True)
    assert bool((counts == 2).all())
    poly = 0.5 * 8 * math.sin(2 * math.pi / 8)
    assert float(m.volumes().sum()) == pytest.approx(poly * (0.05**2 - 0.02**2) * 0.1, rel=1e-12)
    # not one diagonal direction: both mirror images of the Kuhn tetrahedra occur
    kuhn = limb_mesh(0.02, 0.05, 0.1, n_radial=3, n_circ=8, n_axial=2)
    assert not torch.equal(kuhn.tets, m.tets)
    with pytest.raises(ShapeError, match="even"):
        limb_mesh(0.02, 0.05, 0.1, n_circ=7, split=TetSplit.ALTERNATING)


@pytest.mark.parametrize("model", list(MaterialModel))
def test_nodal_term_gradient_and_hessian_are_exact(model):
    m = box_mesh((0.01, 0.01, 0.01), (2, 2, 2), jitter=0.2)
    lam, _ = _random_lame(m.num_elements)
    g = torch.Generator().manual_seed(1)
    x = m.rest + 5e-4 * torch.randn(m.rest.shape, generator=g, dtype=F64)
    nv = NodalVolumetric(m.rest, m.tets, lam, model)
    xg = x.clone().requires_grad_(True)
    U = nodal_volumetric_energy(xg, m.rest, m.tets, lam, model)
    (gr,) = torch.autograd.grad(U, xg, create_graph=True)
    assert nv.energy(x) == pytest.approx(float(U.detach()), rel=1e-13)
    assert torch.allclose(
        nv.gradient(x), gr.detach(), rtol=0, atol=1e-12 * float(gr.detach().abs().max())
    )
    H = torch.stack(
        [torch.autograd.grad(c, xg, retain_graph=True)[0].reshape(-1) for c in gr.reshape(-1)]
    )
    Hn = torch.tensor(nv.hessian(x).toarray())
    assert torch.allclose(Hn, H, rtol=0, atol=1e-12 * float(H.abs().max()))
    # and the gradient against central differences of the energy
    d = torch.randn(x.shape, generator=g, dtype=F64)
    h = 1e-7
    fd = (nv.energy(x + h * d) - nv.energy(x - h * d)) / (2 * h)
    assert float((gr.detach() * d).sum()) == pytest.approx(fd, rel=1e-6)


@pytest.mark.parametrize("model", list(MaterialModel))
def test_nodal_average_equals_element_energy_for_homogeneous_deformations(model):
    # patch test (energy level): with constant lam every nodal average equals the element value
    m = box_mesh((0.01, 0.02, 0.015), (2, 3, 2), jitter=0.25)
    A = torch.tensor([[1.1, 0.05, -0.02], [0.03, 0.93, 0.04], [0.0, -0.06, 1.05]], dtype=F64)
    x = m.rest @ A.T + 1e-3
    el = Material.from_young(E, NU, m.num_elements, model=model)
    nd = Material.from_young(E, NU, m.num_elements, model=model, volumetric=NODAL)
    ref = float(elastic_energy(x, m, el))
    for backend in Backend:
        assert float(elastic_energy(x, m, nd, backend)) == pytest.approx(ref, rel=1e-12)
    # but not for an inhomogeneous one (the term really is averaged)
    y = x + 1e-3 * torch.sin(300 * m.rest)
    assert float(elastic_energy(y, m, nd)) < float(elastic_energy(y, m, el))


@pytest.mark.parametrize("model", list(MaterialModel))
def test_nodal_average_patch_test(model):
    # every boundary node on an affine map, interior nodes free: the solution is that map
    m = box_mesh((0.01,) * 3, (3, 3, 3), jitter=0.2)
    mat = Material.from_young(E, NU, m.num_elements, model=model, volumetric=NODAL)
    A = torch.tensor([[1.08, 0.1, 0.0], [0.0, 0.97, 0.05], [0.02, 0.0, 1.03]], dtype=F64)
    affine = m.rest @ A.T
    interior = set(m.node_sets["interior"].tolist())
    boundary = torch.tensor([i for i in range(m.num_nodes) if i not in interior])
    bc = BoundaryConditions.fix(boundary, affine[boundary])
    res = solve_equilibrium(m, mat, bc)
    assert res.converged
    assert float((res.x - affine).abs().max()) < 1e-15
    # the reactions' virial is the homogeneous first Piola-Kirchhoff stress of the model
    P = torch.einsum("ni,nj->ij", res.reactions, m.rest) / 0.01**3
    Fr = A.clone().requires_grad_(True)
    ref = Material.from_young(E, NU, 1, model=model)
    from diffbio.tissue import energy_density

    (P_exact,) = torch.autograd.grad(energy_density(Fr[None], ref.lam, ref.mu, model).sum(), Fr)
    assert torch.allclose(P, P_exact, rtol=0, atol=1e-9 * float(P_exact.abs().max()))


def test_nodal_energy_and_forces_gradcheck():
    m = box_mesh((0.01,) * 3, (1, 1, 2), jitter=0.0)
    lam, mu = _random_lame(m.num_elements, seed=2)
    g = torch.Generator().manual_seed(3)
    x = (m.rest + 4e-4 * torch.randn(m.rest.shape, generator=g, dtype=F64)).requires_grad_(True)
    rest = m.rest.clone().requires_grad_(True)
    lam, mu = lam.requires_grad_(True), mu.requires_grad_(True)
    for model in MaterialModel:

        def energy(x, rest, lam, mu, model=model):
            mat = Material(lam, mu, model, volumetric=NODAL)
            return elastic_energy(x, m.with_rest(rest), mat)

        def forces(x, rest, lam, mu, model=model):
            mat = Material(lam, mu, model, volumetric=NODAL)
            return internal_forces(x, m.with_rest(rest), mat)

        assert torch.autograd.gradcheck(energy, (x, rest, lam, mu))
        assert torch.autograd.gradcheck(forces, (x, rest, lam, mu))


def _torsion_mesh():
    return limb_mesh(0.02, 0.05, 0.04, n_radial=1, n_circ=8, n_axial=1, split=TetSplit.ALTERNATING)


def test_torsion_torque_gradient_gradcheck_and_finite_differences():
    mesh = _torsion_mesh()

    def torque(lam, mu):
        mat = Material.from_lame(lam, mu, mesh.num_elements, volumetric=NODAL)
        return torsion_test(mesh, mat, 0.02)[0]

    lam = torch.tensor(77288.0, dtype=F64, requires_grad=True)
    mu = torch.tensor(4068.0, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(torque, (lam, mu), eps=1e-3, atol=1e-9, rtol=1e-6)
    g_lam, g_mu = torch.autograd.grad(torque(lam, mu), (lam, mu))
    with torch.no_grad():
        h = 1.0
        fd_mu = (torque(lam, mu + h) - torque(lam, mu - h)) / (2 * h)
        fd_lam = (torque(lam + h, mu) - torque(lam - h, mu)) / (2 * h)
    assert float(g_mu) == pytest.approx(float(fd_mu), rel=1e-6)
    assert float(g_lam) == pytest.approx(float(fd_lam), rel=1e-6)


def test_torsion_torque_is_the_reaction_balance():
    # bone and skin reactions balance (no other load); T/angle tends to the small-twist
    # stiffness as k0 + c angle^2 (SVK geometric nonlinearity), negligible at 1 mrad
    mesh = _torsion_mesh()
    mat = Material.from_young(E, NU, mesh.num_elements, volumetric=NODAL)
    k = []
    with torch.no_grad():
        for angle in (1e-3, 2e-3, 4e-3):
            T, res = torsion_test(mesh, mat, angle)
            M = torch.linalg.cross(res.x, res.reactions, dim=-1).sum(0)
            assert float(M[1]) == pytest.approx(0.0, abs=1e-12 * float(T))
            k.append(float(T) / angle)
    assert (k[2] - k[1]) / (k[1] - k[0]) == pytest.approx(4.0, rel=1e-2)
    assert abs(k[1] - k[0]) / 3 < 1e-4 * k[0]


def test_torsion_converges_at_second_order_without_locking():
    """Levels 1 and 2 of the default CLI study (2 x 16 x 1 cells, alternating split, nodal
    average). No-locking criterion: the error at nu = 0.475 (lam/mu = 19) stays within 10 %
    of the error at nu = 0 (lam = 0, where no locking is possible) on the same mesh, whereas
    plain linear tetrahedra are several times worse; and the error falls at the rate of a
    conforming P1 energy (k - k_h = O(h^2); the inscribed polygon also errs at O(h^2))."""
    args = (0.02, 0.05, 0.1, (1, 2), (2, 16, 1))
    kw = dict(split=TetSplit.ALTERNATING, volumetric=NODAL)
    rows = torsion_convergence(E, NU, *args, **kw)
    ref = torsion_convergence(E, 0.0, *args, **kw)
    plain = torsion_convergence(E, NU, *args, split=TetSplit.KUHN)
    errs = [r["rel_error"] for r in rows]
    assert all(e > 0 for e in errs)  # conforming and stiff: from above
    assert 1.8 < rows[1]["order"] < 2.3, rows
    for r, r0, rp in zip(rows, ref, plain):
        assert abs(r["rel_error"]) < 1.10 * abs(r0["rel_error"]), (r, r0)
        assert rp["rel_error"] > 3 * r["rel_error"], (rp, r)
    assert rows[1]["exact_Nm_per_rad"] == pytest.approx(
        torsion_stiffness_exact(E / (2 * (1 + NU)), 0.02, 0.05, 0.1), rel=1e-14
    )


@pytest.mark.parametrize("model", list(MaterialModel))
def test_assembled_stiffness_includes_the_nodal_term(model):
    from diffbio.tissue import assemble_stiffness, elastic_energy_torch

    m = box_mesh((0.01,) * 3, (1, 2, 1), jitter=0.0)
    lam, mu = _random_lame(m.num_elements, seed=4)
    mat = Material(lam, mu, model, volumetric=NODAL)
    g = torch.Generator().manual_seed(5)
    x = (m.rest + 3e-4 * torch.randn(m.rest.shape, generator=g, dtype=F64)).reshape(-1)
    H = torch.autograd.functional.hessian(
        lambda v: elastic_energy_torch(v.reshape(-1, 3), m.rest, m.tets, mat), x
    )
    K = torch.tensor(assemble_stiffness(m, mat, x.reshape(-1, 3)).toarray())
    assert torch.allclose(K, H, rtol=0, atol=1e-10 * float(H.abs().max()))
