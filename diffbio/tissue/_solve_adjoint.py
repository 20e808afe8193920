"""The adjoint of the equilibrium (implicit function theorem with the final Hessian) as a
torch autograd function, over the total potential written in plain torch."""

from __future__ import annotations

import torch

from diffbio.tissue._reference import elastic_energy_torch
from diffbio.tissue._solve_linalg import _symmetric_solve
from diffbio.tissue._solve_problem import _Problem, cuff_potential, lumped_masses


def _potential_torch(
    prob: _Problem, u, rest, lam, mu, loads, gravity, fixed_values, forces, moments
):
    """The total potential in plain torch, as a function of u and every parameter."""
    bc = prob.bc
    x = prob.x_base.to(u).clone()
    x = x.index_put((bc.fixed_dofs,), fixed_values.to(u))
    x = x.index_put((prob.free,), u[: prob.nf]).reshape(prob.N, 3)
    mat = prob.material.with_lame(lam, mu)
    total = elastic_energy_torch(x, rest, prob.mesh.tets, mat)
    if loads is not None:
        total = total - (loads * x).sum()
    if gravity is not None:
        m = lumped_masses(rest, prob.mesh.tets, prob.material.rho(prob.mesh.num_elements, rest))
        total = total - (m[:, None] * gravity * x).sum()
    for k, cf in enumerate(bc.cuffs):
        p = u[prob.nf + 6 * k : prob.nf + 6 * k + 6]
        total = total + cuff_potential(x[cf.nodes], p, rest[cf.nodes], cf, forces[k], moments[k])
    if prob.quad is not None:
        Q, b = prob.quad
        xf = x.reshape(-1)
        Qt = torch.sparse_csr_tensor(
            torch.from_numpy(Q.indptr).long(),
            torch.from_numpy(Q.indices).long(),
            torch.from_numpy(Q.data).to(u),
            size=Q.shape,
        )
        total = total + 0.5 * (xf * (Qt @ xf)).sum() - (b.to(u) * xf).sum()
    return total


class _Equilibrium(torch.autograd.Function):
    @staticmethod
    def forward(ctx, holder, rest, lam, mu, loads, gravity, fixed_values, *wrench):
        nc = len(holder["bc"].cuffs)
        prob, u = holder["prob"], holder["u"]
        ctx.holder = holder
        ctx.nc = nc
        ctx.save_for_backward(rest, lam, mu, loads, gravity, fixed_values, *wrench)
        return prob.x_of(u).clone(), prob.poses(u).clone()

    @staticmethod
    def backward(ctx, g_x, g_p):
        holder = ctx.holder
        prob, u = holder["prob"], holder["u"]
        rest, lam, mu, loads, gravity, fixed_values, *wrench = ctx.saved_tensors
        nc = ctx.nc
        g_x = torch.zeros(prob.N, 3, dtype=prob.dtype) if g_x is None else g_x.to(prob.dtype)
        g_p = torch.zeros(nc, 6, dtype=prob.dtype) if g_p is None else g_p.to(prob.dtype)
        g_u = torch.cat([g_x.reshape(-1)[prob.free], g_p.reshape(-1)])
        H = prob.hessian(u)
        lam_vec = torch.from_numpy(_symmetric_solve(H, g_u.numpy()))
        params = [rest, lam, mu, loads, gravity, fixed_values, *wrench]
        with torch.enable_grad():
            leaves = [None if t is None else t.detach().requires_grad_(True) for t in params]
            uu = u.detach().clone().requires_grad_(True)
            forces, moments = leaves[6 : 6 + nc], leaves[6 + nc :]
            Pi = _potential_torch(prob, uu, *leaves[:6], forces, moments)
            (r,) = torch.autograd.grad(Pi, uu, create_graph=True)
            S = -(lam_vec * r).sum() + (g_x.reshape(-1)[prob.bc.fixed_dofs] * leaves[5]).sum()
            want = [t for t in leaves if t is not None and (t.dtype.is_floating_point)]
            grads = torch.autograd.grad(S, want, allow_unused=True)
        it = iter(grads)
        out = []
        for t in leaves:
            if t is None:
                out.append(None)
            else:
                gr = next(it)
                out.append(torch.zeros_like(t) if gr is None else gr)
        return (None, *out)
