import pytest
import torch

from diffbio import ShapeError
from diffbio.tissue import (
    Backend,
    LameConvention,
    Material,
    MaterialModel,
    box_mesh,
    deformation_gradient,
    elastic_energy,
    element_hessians,
    energy_density,
    internal_forces,
    rest_geometry,
    svk_energy,
    young_to_lame,
)

MODELS = list(MaterialModel)


@pytest.fixture(scope="module")
def mesh():
    return box_mesh((0.02, 0.02, 0.02), (2, 1, 1), jitter=0.0)


def _material(mesh, model, dtype=torch.float64):
    g = torch.Generator().manual_seed(1)
    lam = 77288.0 * (1 + 0.2 * torch.rand(mesh.num_elements, generator=g, dtype=dtype))
    mu = 4068.0 * (1 + 0.2 * torch.rand(mesh.num_elements, generator=g, dtype=dtype))
    return Material.from_lame(lam, mu, mesh.num_elements, model=model, dtype=dtype)


def _deformed(mesh, scale=0.1):
    g = torch.Generator().manual_seed(2)
    return mesh.rest * 1.05 + scale * 0.02 * torch.randn(
        mesh.rest.shape, generator=g, dtype=mesh.rest.dtype
    )


def test_young_to_lame_issue_values():
    lam, mu = young_to_lame(
        torch.tensor(12000.0, dtype=torch.float64), torch.tensor(0.475, dtype=torch.float64)
    )
    assert float(lam) == pytest.approx(77288.1, abs=0.1)
    assert float(mu) == pytest.approx(4067.8, abs=0.1)


@pytest.mark.parametrize("model", MODELS)
def test_warp_matches_torch_reference(mesh, model):
    mat = _material(mesh, model)
    x = _deformed(mesh)
    e_w, e_t = elastic_energy(x, mesh, mat), elastic_energy(x, mesh, mat, Backend.TORCH)
    assert float(e_w) == pytest.approx(float(e_t), rel=1e-13)
    f_w, f_t = internal_forces(x, mesh, mat), internal_forces(x, mesh, mat, Backend.TORCH)
    assert torch.allclose(f_w, f_t, rtol=1e-12, atol=1e-12 * float(f_t.abs().max()))
    # float32 kernels agree to single precision
    m32 = mesh.to(dtype=torch.float32)
    mat32 = Material(mat.lam.float(), mat.mu.float(), model)
    f32 = internal_forces(x.float(), m32, mat32)
    assert torch.allclose(f32.double(), f_t, rtol=0, atol=1e-4 * float(f_t.abs().max()))


@pytest.mark.parametrize("model", MODELS)
def test_element_hessian_matches_autograd(mesh, model):
    mat = _material(mesh, model)
    x = _deformed(mesh)
    H = element_hessians(x, mesh, mat)
    Dm_inv, vol = rest_geometry(mesh.rest, mesh.tets)
    for e in (0, mesh.num_elements - 1):

        def energy(v, e=e):
            F = deformation_gradient(
                v.reshape(1, 4, 3), torch.tensor([[0, 1, 2, 3]]), Dm_inv[e : e + 1]
            )
            return (vol[e] * energy_density(F, mat.lam[e : e + 1], mat.mu[e : e + 1], model)).sum()

        Ht = torch.autograd.functional.hessian(energy, x[mesh.tets[e]].reshape(12))
        assert torch.allclose(H[e], Ht, rtol=1e-11, atol=1e-11 * float(Ht.abs().max()))
        assert torch.allclose(H[e], H[e].T, atol=1e-9 * float(Ht.abs().max()))


@pytest.mark.parametrize("model", MODELS)
def test_rest_state_is_stress_free(mesh, model):
    mat = _material(mesh, model)
    assert float(elastic_energy(mesh.rest, mesh, mat)) == pytest.approx(0.0, abs=1e-12)
    assert float(internal_forces(mesh.rest, mesh, mat).abs().max()) < 1e-10


def test_small_strain_limit_is_linear_elasticity(mesh):
    # both models share the linear-elastic tangent at rest for the same (lam, mu)
    svk, snh = _material(mesh, MaterialModel.SVK), _material(mesh, MaterialModel.STABLE_NEO_HOOKEAN)
    H1, H2 = element_hessians(mesh.rest, mesh, svk), element_hessians(mesh.rest, mesh, snh)
    assert torch.allclose(H1, H2, rtol=1e-12, atol=1e-10 * float(H1.abs().max()))


def test_mujoco3_convention_doubles_lambda(mesh):
    x = _deformed(mesh)
    mat = _material(mesh, MaterialModel.SVK)
    mj3 = Material(mat.lam, mat.mu, convention=LameConvention.MUJOCO3)
    mj4 = Material(mat.lam, mat.mu, convention=LameConvention.MUJOCO4)
    doubled = Material(2 * mat.lam, mat.mu)
    assert float(elastic_energy(x, mesh, mj3)) == pytest.approx(
        float(elastic_energy(x, mesh, doubled)), rel=1e-14
    )
    assert float(elastic_energy(x, mesh, mj4)) == pytest.approx(
        float(elastic_energy(x, mesh, mat)), rel=1e-14
    )


def test_batching_keeps_leading_dims(mesh):
    mat = _material(mesh, MaterialModel.SVK)
    x = torch.stack([_deformed(mesh, s) for s in (0.05, 0.1, 0.15)]).reshape(
        3, 1, mesh.num_nodes, 3
    )
    e = elastic_energy(x, mesh, mat)
    f = internal_forces(x, mesh, mat)
    assert e.shape == (3, 1) and f.shape == (3, 1, mesh.num_nodes, 3)
    assert float(e[1, 0]) == pytest.approx(
        float(elastic_energy(x[1, 0], mesh, mat, Backend.TORCH)), rel=1e-13
    )
    with pytest.raises(ShapeError):
        elastic_energy(x[..., :2], mesh, mat)


@pytest.mark.parametrize("model", MODELS)
def test_gradcheck_warp_energy_and_forces(model):
    mesh = box_mesh((0.02, 0.02, 0.02), (1, 1, 1))
    mat = _material(mesh, model)
    x = _deformed(mesh).requires_grad_(True)
    lam, mu = mat.lam.clone().requires_grad_(True), mat.mu.clone().requires_grad_(True)
    rest = mesh.rest.clone().requires_grad_(True)

    def energy(x, lam, mu, rest):
        return elastic_energy(x, mesh.with_rest(rest), Material(lam, mu, model))

    def forces(x, lam, mu, rest):
        return internal_forces(x, mesh.with_rest(rest), Material(lam, mu, model))

    assert torch.autograd.gradcheck(energy, (x, lam, mu, rest), eps=1e-7, atol=1e-6, rtol=1e-6)
    assert torch.autograd.gradcheck(
        forces, (x, lam, mu, rest), eps=1e-7, atol=1e-5, rtol=1e-6, fast_mode=True
    )


def test_forces_are_minus_energy_gradient_by_finite_differences(mesh):
    mat = _material(mesh, MaterialModel.SVK)
    x = _deformed(mesh)
    f = internal_forces(x, mesh, mat)
    h = 1e-7
    for node, ax in ((0, 0), (5, 1), (mesh.num_nodes - 1, 2)):
        xp, xm = x.clone(), x.clone()
        xp[node, ax] += h
        xm[node, ax] -= h
        fd = (float(svk_energy(xp, mesh, mat)) - float(svk_energy(xm, mesh, mat))) / (2 * h)
        assert -float(f[node, ax]) == pytest.approx(fd, rel=1e-6, abs=1e-9)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("model", MODELS)
def test_cuda_kernels_match_cpu(mesh, model):
    mat = _material(mesh, model)
    x = _deformed(mesh)
    f_cpu = internal_forces(x, mesh, mat)
    mg = mesh.to(device="cuda")
    matg = Material(mat.lam.cuda(), mat.mu.cuda(), model)
    f_gpu = internal_forces(x.cuda(), mg, matg).cpu()
    assert torch.allclose(f_gpu, f_cpu, rtol=1e-12, atol=1e-12 * float(f_cpu.abs().max()))
    H_gpu = element_hessians(x.cuda(), mg, matg).cpu()
    assert torch.allclose(H_gpu, element_hessians(x, mesh, mat), rtol=1e-12, atol=1e-6)
