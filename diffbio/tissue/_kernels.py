"""Warp kernels: element energies, nodal forces and element Hessians (float32 / float64).

Conventions: ``F = Ds Dm^{-1}`` with ``Ds = [x1-x0, x2-x0, x3-x0]``; the gradient of a
shape function is ``G_a`` (rows of ``Dm^{-1}`` for a = 1..3, ``G_0 = -(G_1+G_2+G_3)``);
``dPi/dx_a = V P G_a`` with the first Piola-Kirchhoff stress P; ``forces = -dPi/dx``.
The element Hessian ``K[3a+i, 3b+j] = V (dP[e_j G_b^T] G_a)_i`` is exact for both models.
Model codes: 0 St. Venant-Kirchhoff, 1 stable neo-Hookean (see MaterialModel).
"""

import functools
from types import SimpleNamespace

import warp as wp

_INIT = False


def init_warp() -> None:
    global _INIT
    if not _INIT:
        wp.config.log_level = wp.LOG_WARNING
        wp.init()
        _INIT = True


@functools.cache
def kernels(dtype) -> SimpleNamespace:
    """The kernels for one Warp scalar type (``wp.float32`` or ``wp.float64``)."""
    init_warp()
    vec3 = wp.types.vector(length=3, dtype=dtype)
    mat33 = wp.types.matrix(shape=(3, 3), dtype=dtype)

    @wp.func
    def shape_grad(Dm_inv: mat33, a: int):
        if a == 0:
            return -(Dm_inv[0] + Dm_inv[1] + Dm_inv[2])
        return Dm_inv[a - 1]

    @wp.func
    def cofactor(F: mat33):
        Ft = wp.transpose(F)
        c0 = wp.cross(Ft[1], Ft[2])
        c1 = wp.cross(Ft[2], Ft[0])
        c2 = wp.cross(Ft[0], Ft[1])
        return wp.transpose(mat33(c0[0], c0[1], c0[2], c1[0], c1[1], c1[2], c2[0], c2[1], c2[2]))

    @wp.func
    def dcofactor(F: mat33, dF: mat33):
        Ft = wp.transpose(F)
        dFt = wp.transpose(dF)
        c0 = wp.cross(dFt[1], Ft[2]) + wp.cross(Ft[1], dFt[2])
        c1 = wp.cross(dFt[2], Ft[0]) + wp.cross(Ft[2], dFt[0])
        c2 = wp.cross(dFt[0], Ft[1]) + wp.cross(Ft[0], dFt[1])
        return wp.transpose(mat33(c0[0], c0[1], c0[2], c1[0], c1[1], c1[2], c2[0], c2[1], c2[2]))

    @wp.func
    def deformation(
        x: wp.array(dtype=vec3), tets: wp.array2d(dtype=wp.int32), Dm_inv: mat33, e: int
    ):
        x0 = x[tets[e, 0]]
        d1 = x[tets[e, 1]] - x0
        d2 = x[tets[e, 2]] - x0
        d3 = x[tets[e, 3]] - x0
        Ds = mat33(d1[0], d2[0], d3[0], d1[1], d2[1], d3[1], d1[2], d2[2], d3[2])
        return Ds * Dm_inv

    @wp.func
    def stress(F: mat33, lam: dtype, mu: dtype, model: int):
        I = wp.identity(n=3, dtype=dtype)
        half = dtype(0.5)
        if model == 0:
            G = half * (wp.transpose(F) * F - I)
            S = lam * wp.trace(G) * I + dtype(2.0) * mu * G
            return F * S
        l = lam + mu
        J = wp.determinant(F)
        return mu * F + l * (J - dtype(1.0) - mu / l) * cofactor(F)

    @wp.func
    def density(F: mat33, lam: dtype, mu: dtype, model: int):
        I = wp.identity(n=3, dtype=dtype)
        half = dtype(0.5)
        if model == 0:
            G = half * (wp.transpose(F) * F - I)
            tr = wp.trace(G)
            return half * lam * tr * tr + mu * wp.ddot(G, G)
        l = lam + mu
        J = wp.determinant(F)
        a = J - dtype(1.0) - mu / l
        return half * mu * (wp.ddot(F, F) - dtype(3.0)) + half * l * a * a - half * mu * mu / l

    @wp.func
    def dstress(F: mat33, dF: mat33, lam: dtype, mu: dtype, model: int):
        I = wp.identity(n=3, dtype=dtype)
        half = dtype(0.5)
        if model == 0:
            G = half * (wp.transpose(F) * F - I)
            S = lam * wp.trace(G) * I + dtype(2.0) * mu * G
            C = wp.transpose(F) * dF
            dG = half * (C + wp.transpose(C))
            dS = lam * wp.trace(dG) * I + dtype(2.0) * mu * dG
            return dF * S + F * dS
        l = lam + mu
        J = wp.determinant(F)
        cof = cofactor(F)
        return (
            mu * dF + l * wp.ddot(cof, dF) * cof + l * (J - dtype(1.0) - mu / l) * dcofactor(F, dF)
        )

    @wp.kernel(module="unique")
    def energy_forces(
        x: wp.array(dtype=vec3),
        tets: wp.array2d(dtype=wp.int32),
        Dm_inv: wp.array(dtype=mat33),
        vol: wp.array(dtype=dtype),
        lam: wp.array(dtype=dtype),
        mu: wp.array(dtype=dtype),
        model: int,
        energy: wp.array(dtype=dtype),
        forces: wp.array(dtype=vec3),
    ):
        e = wp.tid()
        Dinv = Dm_inv[e]
        F = deformation(x, tets, Dinv, e)
        energy[e] = vol[e] * density(F, lam[e], mu[e], model)
        H = vol[e] * stress(F, lam[e], mu[e], model) * wp.transpose(Dinv)
        Ht = wp.transpose(H)
        wp.atomic_sub(forces, tets[e, 1], Ht[0])
        wp.atomic_sub(forces, tets[e, 2], Ht[1])
        wp.atomic_sub(forces, tets[e, 3], Ht[2])
        wp.atomic_add(forces, tets[e, 0], Ht[0] + Ht[1] + Ht[2])

    @wp.kernel(module="unique")
    def element_energy(
        x: wp.array(dtype=vec3),
        tets: wp.array2d(dtype=wp.int32),
        Dm_inv: wp.array(dtype=mat33),
        vol: wp.array(dtype=dtype),
        lam: wp.array(dtype=dtype),
        mu: wp.array(dtype=dtype),
        model: int,
        energy: wp.array(dtype=dtype),
        det: wp.array(dtype=dtype),
    ):
        e = wp.tid()
        F = deformation(x, tets, Dm_inv[e], e)
        energy[e] = vol[e] * density(F, lam[e], mu[e], model)
        det[e] = wp.determinant(F)

    @wp.kernel(module="unique")
    def element_hessian(
        x: wp.array(dtype=vec3),
        tets: wp.array2d(dtype=wp.int32),
        Dm_inv: wp.array(dtype=mat33),
        vol: wp.array(dtype=dtype),
        lam: wp.array(dtype=dtype),
        mu: wp.array(dtype=dtype),
        model: int,
        hess: wp.array3d(dtype=dtype),
    ):
        e = wp.tid()
        Dinv = Dm_inv[e]
        F = deformation(x, tets, Dinv, e)
        V = vol[e]
        for b in range(4):
            Gb = shape_grad(Dinv, b)
            for j in range(3):
                ej = vec3(dtype(0.0), dtype(0.0), dtype(0.0))
                ej[j] = dtype(1.0)
                dP = dstress(F, wp.outer(ej, Gb), lam[e], mu[e], model)
                for a in range(4):
                    col = V * (dP * shape_grad(Dinv, a))
                    for i in range(3):
                        hess[e, 3 * a + i, 3 * b + j] = col[i]

    return SimpleNamespace(
        vec3=vec3,
        mat33=mat33,
        dtype=dtype,
        energy_forces=energy_forces,
        element_energy=element_energy,
        element_hessian=element_hessian,
    )
