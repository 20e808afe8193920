"""Soft-tissue benchmark: Warp kernels vs a plain-torch autograd energy, side by side.

1. Energy-and-force throughput [elements/s]: the Warp kernel (float32, float64) against
   the torch reference (energy forward + autograd backward), on limb meshes.
2. One Newton solve of a ~2,300-element limb mesh (bone tied, outer surface twisted by
   0.2 rad and gravity): Warp forces/Hessians + SciPy sparse LU, Warp + matrix-free CG,
   and a plain-torch Newton (autograd gradient, Hessian-vector products by double
   backward, the same CG).

Run: ``.venv/bin/python benchmarks/bench_tissue.py [--json] [--device cuda]``.
Ratios > 1 mean the Warp path is faster.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from diffbio.tissue import (
    BoundaryConditions,
    LinearSolver,
    Material,
    axis_rotation,
    elastic_energy_torch,
    limb_mesh,
    rigid_transform,
    solve_equilibrium,
)
from diffbio.tissue._energy import ElasticKernels


def _timeit(fn, min_time=0.5, min_reps=3):
    fn()  # warm-up (compiles Warp kernels on first launch)
    reps, t0 = 0, time.perf_counter()
    while reps < min_reps or time.perf_counter() - t0 < min_time:
        fn()
        reps += 1
    return (time.perf_counter() - t0) / reps


def kernel_throughput(refine: int, device: str) -> dict:
    mesh = limb_mesh(0.02, 0.05, 0.2, n_radial=4, n_circ=16, n_axial=6, refine=refine)
    row = {"elements": mesh.num_elements, "device": device}
    for dtype, name in ((torch.float32, "f32"), (torch.float64, "f64")):
        m = mesh.to(dtype=dtype, device=device)
        mat = Material.from_young(12000.0, 0.475, m.num_elements, dtype=dtype)
        mat = Material(mat.lam.to(device), mat.mu.to(device))
        x = (m.rest * 1.02).contiguous()
        k = ElasticKernels(m, mat)

        def warp_call(k=k, x=x):
            k.energy_forces(x)
            if device != "cpu":
                torch.cuda.synchronize()

        def torch_call(m=m, mat=mat, x=x):
            xr = x.detach().requires_grad_(True)
            e = elastic_energy_torch(xr, m.rest, m.tets, mat)
            (g,) = torch.autograd.grad(e, xr)
            if device != "cpu":
                torch.cuda.synchronize()
            return g

        tw, tt = _timeit(warp_call), _timeit(torch_call)
        row[f"warp_{name}_elem_per_s"] = m.num_elements / tw
        row[f"torch_{name}_elem_per_s"] = m.num_elements / tt
        row[f"speedup_{name}"] = tt / tw
    return row


def _twist_problem():
    mesh = limb_mesh(0.02, 0.05, 0.2, n_radial=4, n_circ=16, n_axial=6)
    mat = Material.from_young(12000.0, 0.475, mesh.num_elements)
    s, X = mesh.node_sets, mesh.rest
    z = torch.zeros(3, dtype=X.dtype)
    bc = BoundaryConditions.fix(s["bone"], X[s["bone"]])
    bc = bc.and_fix(
        s["outer"][: len(s["outer"]) // 2],
        rigid_transform(X[s["outer"]], axis_rotation((0, 1, 0), 0.2), z, z)[: len(s["outer"]) // 2],
    )
    bc = bc.with_(gravity=torch.tensor([0.0, 0.0, -9.80665], dtype=X.dtype))
    return mesh, mat, bc


def torch_newton(mesh, mat, bc, rtol=1e-10, max_iter=50):
    """Plain-torch Newton: autograd gradient, double-backward Hessian-vector products, PCG."""
    from diffbio.tissue._solve import _pcg, lumped_masses

    N = mesh.num_nodes
    fixed = torch.zeros(3 * N, dtype=torch.bool)
    fixed[bc.fixed_dofs] = True
    free = torch.nonzero(~fixed).squeeze(1)
    x = mesh.rest.clone().reshape(-1)
    x[bc.fixed_dofs] = bc.fixed_values
    m = lumped_masses(mesh.rest, mesh.tets, torch.full((mesh.num_elements,), 1000.0, dtype=x.dtype))
    ext = (m[:, None] * bc.gravity).reshape(-1)

    def potential(u):
        xx = x.clone()
        xx[free] = u
        return elastic_energy_torch(xx.reshape(N, 3), mesh.rest, mesh.tets, mat) - ext @ xx

    u = x[free].clone()
    ref = None
    for it in range(max_iter):
        ur = u.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(potential(ur), ur, create_graph=True)
        res = float(g.detach().abs().max())
        if ref is None:
            ref = res
        elif res <= rtol * ref:
            return u, it

        def hvp(v, g=g, ur=ur):
            return torch.autograd.grad(g, ur, v, retain_graph=True)[0]

        diag = torch.ones_like(u) * float(hvp(torch.ones_like(u)).abs().mean())
        d, _ = _pcg(hvp, diag, -g.detach(), 1e-8, 3000)
        E0 = float(potential(u))
        a = 1.0
        while (
            float(potential(u + a * d)) > E0 + 1e-4 * a * float(g.detach() @ d) + 1e-14 * abs(E0)
            and a > 1e-8
        ):
            a /= 2
        u = u + a * d
    return u, max_iter


def newton_solves() -> dict:
    mesh, mat, bc = _twist_problem()
    out = {"elements": mesh.num_elements, "dofs": 3 * mesh.num_nodes - bc.fixed_dofs.numel()}
    solve_equilibrium(mesh, mat, bc)  # warm-up: compiles kernels
    for name, ls in (
        ("warp_sparse_lu", LinearSolver.SPARSE_DIRECT),
        ("warp_matrix_free_cg", LinearSolver.MATRIX_FREE_CG),
    ):
        t0 = time.perf_counter()
        res = solve_equilibrium(mesh, mat, bc, linear_solver=ls, rtol=1e-10)
        out[f"{name}_s"] = time.perf_counter() - t0
        out[f"{name}_iterations"] = res.iterations
    t0 = time.perf_counter()
    u, its = torch_newton(mesh, mat, bc)
    out["torch_newton_cg_s"] = time.perf_counter() - t0
    out["torch_newton_cg_iterations"] = its
    fixed = torch.zeros(3 * mesh.num_nodes, dtype=torch.bool)
    fixed[bc.fixed_dofs] = True
    out["max_diff_vs_torch_m"] = float((res.x.reshape(-1)[~fixed] - u).abs().max())
    out["speedup_sparse_lu_vs_torch"] = out["torch_newton_cg_s"] / out["warp_sparse_lu_s"]
    out["speedup_cg_vs_torch"] = out["torch_newton_cg_s"] / out["warp_matrix_free_cg_s"]
    return out


def torsion_formulations(refine: int = 3) -> dict:
    """Torsion of the annulus (base 2 x 16 x 1 cells, alternating split) side by side: one
    Newton solve per volumetric treatment, and one factorisation of each Hessian with
    SciPy's default SuperLU ordering (COLAMD) against the symmetric mode the solver uses."""
    import numpy as np
    import scipy.sparse.linalg as spla

    from diffbio.tissue import TetSplit, VolumetricTreatment, torsion_test
    from diffbio.tissue._solve import _Problem, _symmetric_solve

    mesh = limb_mesh(
        0.02, 0.05, 0.1, n_radial=2, n_circ=16, n_axial=1, refine=refine,
        split=TetSplit.ALTERNATING,
    )  # fmt: skip
    out = {"elements": mesh.num_elements}
    s = mesh.node_sets
    for vol in VolumetricTreatment:
        mat = Material.from_young(12000.0, 0.475, mesh.num_elements, volumetric=vol)
        with torch.no_grad():
            torsion_test(mesh, mat, 1e-3)  # warm-up
            t0 = time.perf_counter()
            torsion_test(mesh, mat, 1e-3)
        out[f"{vol.value}_solve_s"] = time.perf_counter() - t0
        bc = BoundaryConditions.fix(s["bone"], mesh.rest[s["bone"]])
        bc = bc.and_fix(s["outer"], mesh.rest[s["outer"]])
        prob = _Problem(mesh, mat, bc)
        H = prob.hessian(prob.u_of(mesh.rest))
        b = np.ones(H.shape[0])
        out[f"{vol.value}_hessian_nnz"] = int(H.nnz)
        out[f"{vol.value}_lu_colamd_s"] = _timeit(lambda H=H, b=b: spla.spsolve(H, b), 0.2, 1)
        out[f"{vol.value}_lu_symmetric_s"] = _timeit(
            lambda H=H, b=b: _symmetric_solve(H, b), 0.2, 1
        )
    out["solve_ratio_nodal_vs_element"] = out["nodal_average_solve_s"] / out["element_solve_s"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--refine", type=int, nargs="+", default=[1, 2])
    p.add_argument("--skip-newton", action="store_true")
    p.add_argument("--torsion-refine", type=int, default=3, help="0 skips the torsion part")
    args = p.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    report = {
        "threads": torch.get_num_threads(),
        "kernels": [kernel_throughput(r, args.device) for r in args.refine],
    }
    if not args.skip_newton:
        report["newton"] = newton_solves()
    if args.torsion_refine:
        report["torsion"] = torsion_formulations(args.torsion_refine)
    if args.json:
        print(json.dumps(report))
        return
    print(f"torch threads: {report['threads']}  (Warp CPU launches are single-threaded)")
    print(
        f"{'elements':>9} {'device':>6} {'warp f32 el/s':>14} {'torch f32 el/s':>15} {'x':>6} {'warp f64 el/s':>14} {'torch f64 el/s':>15} {'x':>6}"
    )
    for r in report["kernels"]:
        print(
            f"{r['elements']:>9} {r['device']:>6} {r['warp_f32_elem_per_s']:>14.3e} {r['torch_f32_elem_per_s']:>15.3e} "
            f"{r['speedup_f32']:>6.2f} {r['warp_f64_elem_per_s']:>14.3e} {r['torch_f64_elem_per_s']:>15.3e} {r['speedup_f64']:>6.2f}"
        )
    if "newton" in report:
        n = report["newton"]
        print(f"\nNewton solve, {n['elements']} elements, {n['dofs']} free dofs:")
        print(
            f"  Warp + sparse LU      {n['warp_sparse_lu_s']:8.3f} s  ({n['warp_sparse_lu_iterations']} it)  x{n['speedup_sparse_lu_vs_torch']:.2f} vs torch"
        )
        print(
            f"  Warp + matrix-free CG {n['warp_matrix_free_cg_s']:8.3f} s  ({n['warp_matrix_free_cg_iterations']} it)  x{n['speedup_cg_vs_torch']:.2f} vs torch"
        )
        print(
            f"  plain torch Newton-CG {n['torch_newton_cg_s']:8.3f} s  ({n['torch_newton_cg_iterations']} it)"
        )
        print(f"  max |x_warp - x_torch| = {n['max_diff_vs_torch_m']:.2e} m")
    if "torsion" in report:
        t = report["torsion"]
        print(f"\nTorsion, {t['elements']} elements (alternating split), per volumetric term:")
        for v in ("element", "nodal_average"):
            ratio = t[f"{v}_lu_colamd_s"] / t[f"{v}_lu_symmetric_s"]
            print(
                f"  {v:<14} solve {t[f'{v}_solve_s']:7.3f} s  Hessian nnz {t[f'{v}_hessian_nnz']:>9}"
                f"  LU symmetric mode x{ratio:.2f} vs COLAMD"
            )
        print(f"  nodal-average solve / element solve = {t['solve_ratio_nodal_vs_element']:.2f}")


if __name__ == "__main__":
    main()
