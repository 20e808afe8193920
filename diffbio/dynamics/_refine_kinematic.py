"""The nonlinear refinement: ground reactions and kinematics adjusted together (theseus).

Unknowns per trial, ``x = (dq, dF, dM)`` with ``n = T (Q + 6 P)`` entries: a kinematic
correction ``dq (T, Q)`` (velocities and accelerations follow through the central-difference
operators ``D1``, ``D2`` of the frame grid: ``qd + D1 dq``, ``qdd + D2 dq``), and
corrections ``dF``, ``dM (T, P, 3)`` of the force and of the moment about the measured
centre of pressure of each plate in contact (zero out of contact). With the measured data
``theta = (q, qd, qdd, force, point, torque)`` the nonlinear least squares is

    C(x, theta) = 1/2 |e|^2,   e = (r / s_r, dq / s_q, dF / s_F, dM / s_M)

(``r (T, 6)``: the root-residual equations, required root wrench minus the applied plate
wrench, force and moment about the ground origin; nonlinear in ``q, qd, qdd`` through the
inverse dynamics; ``s_*``: the scales of :func:`refine_with_kinematics`).

Forward, run without tracking gradients: theseus' Levenberg-Marquardt (dense solver, fixed
damping 1e-9, i.e. Gauss-Newton steps) from ``x = 0``, given the exact Jacobian
``J = de/dx`` assembled per frame (one batched reverse pass of 6 probes through the inverse
dynamics gives ``dr_t / d(q, qd, qdd)_t``, chained through ``I``, ``D1``, ``D2``; the plate
blocks are ``-I`` and ``-[point]x``). Gauss-Newton converges only linearly at a
non-zero-residual optimum (about x0.4 per iteration here), so up to ``newton_steps`` exact
Newton steps with the full Hessian follow (each kept only where it does not raise ``C``)
until a step is below ``newton_tolerance (1 + |x|)``; that is ``converged``.

Backward (exact implicit function theorem, :class:`_ImplicitArgmin`): at the optimum
``g(x*, theta) = dC/dx = J^T e = 0``, so ``dx*/dtheta = -H^-1 dg/dtheta`` with ``H`` the
full Hessian of ``C`` (not theseus' Gauss-Newton ``J^T J``),

    H = J^T J + S,   S = sum_i e_i d2e_i/dx2 = sum_t A_t^T G_t A_t,

where ``G_t`` (``3Q x 3Q``) is the Hessian of ``(r_t / s_r^2) . r_t`` w.r.t. frame ``t``'s
``(q, qd, qdd)`` with the weights ``r_t / s_r^2`` held fixed (one batched double-backward of
``3Q`` probes: frames and trials are independent, so each probe serves all of them), and
``A_t = d(q, qd, qdd)_t / d dq`` (rows of ``I``, ``D1``, ``D2``); only ``r`` is nonlinear,
and only in ``dq``, so ``S`` lives in the ``dq`` block. Given the incoming gradient ``gbar``
the vector-Jacobian product solves ``H v = gbar`` once, as the augmented system
``[[-I, J], [J^T, S]] [w; v] = [0; gbar]`` (float64, Ruiz-equilibrated, dense LU: ``J^T J``
alone spans ~18 decades here, residual rows against regularization, beyond float64; the
augmented form keeps the conditioning of ``J``; theseus' dense solver already factors an
``n x n`` system every iteration, so a dense solve is no worse in scale), and returns
``-(dg/dtheta)^T v`` by one double-backward pass through ``<g(x*, theta), v>``. Gradients
reach ``q, qd, qdd`` and the measured ``force, point, torque``; the outputs ``q + dq, ...,
mask (force + dF), ...`` are then formed from ``x*`` and ``theta`` with ordinary autograd.
Model parameters (segment scales, inertia) are not differentiated through ``x*``: they
reach the outputs only through that final direct evaluation (the residual). The gradient
is exact at a stationary point only, so check ``converged``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from diffbio._errors import ShapeError
from diffbio.dynamics._refine import _skew, required_root_wrench
from diffbio.model import Model


@dataclass(frozen=True)
class KinematicRefinement:
    """Result of :func:`refine_with_kinematics` (leading batch ``B``, ``T`` frames).

    ``q, qd, qdd: (B, T, Q)`` adjusted kinematics; ``force, moment: (B, T, P, 3)`` [N,
    N m] refined force and moment about the measured point, in ground; ``residual:
    (B, T, 6)`` root residual (force [N], moment about the ground origin [N m]) left;
    ``converged: (B,)`` bool, whether each trial's last Newton step was below the
    tolerance (theseus' status when no Newton steps are taken)."""

    q: Tensor
    qd: Tensor
    qdd: Tensor
    force: Tensor
    moment: Tensor
    residual: Tensor
    converged: Tensor


def difference_operators(T: int, dt: float, dtype=torch.float64) -> tuple[Tensor, Tensor]:
    """``(D1, D2)``: ``(T, T)`` first and second central differences (one-sided ends)."""
    eye = np.eye(T)
    d1 = np.gradient(eye, dt, axis=0)
    d2 = np.gradient(d1, dt, axis=0)
    return torch.as_tensor(d1, dtype=dtype), torch.as_tensor(d2, dtype=dtype)


class _Problem:
    """The least squares of one call: error ``e(x, theta)``, its exact Jacobian and the
    exact Hessian of ``1/2 |e|^2`` (``x: (B, n)``; ``theta``: the six measured tensors)."""

    def __init__(self, model, T, Q, P, D1, D2, mask, s_r, s_q, s_F, s_M):
        self.model, self.T, self.Q, self.P = model, T, Q, P
        self.C = torch.stack([torch.eye(T, dtype=D1.dtype, device=D1.device), D1, D2])
        self.mask = mask  # (B, T, P, 1)
        self.s_r, self.s_q, self.s_F, self.s_M = s_r, s_q, s_F, s_M
        self.n = T * (Q + 6 * P)
        self.m = 6 * T + self.n

    def split(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        B, T, Q, P = x.shape[0], self.T, self.Q, self.P
        d, dF, dM = x.split([T * Q, 3 * T * P, 3 * T * P], -1)
        return d.reshape(B, T, Q), dF.reshape(B, T, P, 3), dM.reshape(B, T, P, 3)

    def _parts(self, x: Tensor, theta) -> tuple[Tensor, ...]:
        """``(q1, qd1, qdd1, F, M, applied)``: corrected kinematics, plate loads and their
        wrench about the ground origin ``(B, T, 6)``."""
        q, qd, qdd, Fm, Pm, Tm = theta
        d, dF, dM = self.split(x)
        dz = torch.einsum("ats,bsq->abtq", self.C, d)
        q1, qd1, qdd1 = q + dz[0], qd + dz[1], qdd + dz[2]
        F, M = self.mask * (Fm + dF), self.mask * (Tm + dM)
        applied = torch.cat([F.sum(2), (torch.linalg.cross(Pm, F) + M).sum(2)], -1)
        return q1, qd1, qdd1, F, M, applied

    def _required(self, q1: Tensor, qd1: Tensor, qdd1: Tensor) -> Tensor:
        f_req, n_req = required_root_wrench(self.model, q1, qd1, qdd1)
        return torch.cat([f_req, n_req], -1)

    def outputs(self, x: Tensor, theta) -> tuple[Tensor, ...]:
        """``(q1, qd1, qdd1, F, M, r)`` of the corrected trial."""
        q1, qd1, qdd1, F, M, applied = self._parts(x, theta)
        return q1, qd1, qdd1, F, M, self._required(q1, qd1, qdd1) - applied

    def _stack(self, r: Tensor, x: Tensor) -> Tensor:
        d, dF, dM = x.split([self.T * self.Q, 3 * self.T * self.P, 3 * self.T * self.P], -1)
        return torch.cat([r.flatten(1) / self.s_r, d / self.s_q, dF / self.s_F, dM / self.s_M], -1)

    def errors(self, x: Tensor, theta) -> Tensor:
        """``e: (B, m)``, ``m = 6 T + n``."""
        return self._stack(self.outputs(x, theta)[-1], x)

    def _linearize(self, x: Tensor, theta, hessian: bool):
        """``(J: (B, m, n), e: (B, m), G)``, exact; ``G: (B, T, 3, Q, 3, Q)`` (or None):
        per frame the Hessian of ``(r_t / s_r^2) . r_t`` w.r.t. ``(q, qd, qdd)_t``."""
        B, T, Q, P = x.shape[0], self.T, self.Q, self.P
        x, theta = x.detach(), tuple(a.detach() for a in theta)
        q1, qd1, qdd1, F, M, applied = self._parts(x, theta)
        with torch.enable_grad():
            z = torch.cat([q1, qd1, qdd1], -1).requires_grad_(True)
            y = self._required(z[..., :Q], z[..., Q : 2 * Q], z[..., 2 * Q :])
            (rows,) = torch.autograd.grad(
                y, z, _probes(y), is_grads_batched=True, retain_graph=hessian
            )
            r = y.detach() - applied
            G = None
            if hessian:
                (gz,) = torch.autograd.grad((r / self.s_r**2 * y).sum(), z, create_graph=True)
                # frames and trials are independent: probe j in every frame at once
                (cols,) = torch.autograd.grad(gz, z, _probes(gz), is_grads_batched=True)
                G = cols.movedim(0, -1).reshape(B, T, 3, Q, 3, Q)
        Jz = rows.movedim(0, 2).reshape(B, T, 6, 3, Q)  # dr_t / d(q, qd, qdd)_t
        Jd = torch.einsum("btkaq,ats->btksq", Jz, self.C).reshape(B, 6 * T, T * Q)
        eye = torch.eye(3, dtype=x.dtype, device=x.device).expand(B, T, P, 3, 3)
        m = self.mask.unsqueeze(-1)  # (B, T, P, 1, 1)
        blkF = -m * torch.cat([eye, _skew(theta[4])], -2)  # d r_t / d dF_t: -[I; [p]x]
        blkM = -m * torch.cat([torch.zeros_like(eye), eye], -2)
        JF = torch.einsum("btpkj,ts->btkspj", blkF, self.C[0]).reshape(B, 6 * T, 3 * T * P)
        JM = torch.einsum("btpkj,ts->btkspj", blkM, self.C[0]).reshape(B, 6 * T, 3 * T * P)
        scale = torch.cat(
            [x.new_full((T * Q,), 1 / self.s_q), x.new_full((3 * T * P,), 1 / self.s_F),
             x.new_full((3 * T * P,), 1 / self.s_M)]
        )  # fmt: skip
        Jr = torch.cat([Jd, JF, JM], -1) / self.s_r
        J = torch.cat([Jr, torch.diag(scale).expand(B, -1, -1)], 1)
        return J, self._stack(r, x), G

    def jacobian(self, x: Tensor, theta) -> tuple[Tensor, Tensor]:
        """``(J: (B, m, n), e: (B, m))``, exact."""
        return self._linearize(x, theta, False)[:2]

    def second_order(self, x: Tensor, theta) -> tuple[Tensor, Tensor, Tensor]:
        """``(J: (B, m, n), e: (B, m), S: (B, n, n))`` with ``S = sum_i e_i d2e_i/dx2``
        (non-zero in the ``dq`` block only), so that the Hessian is ``J^T J + S``."""
        B, T, Q = x.shape[0], self.T, self.Q
        J, e, G = self._linearize(x, theta, True)
        # S[s, u] = sum_t sum_ab C_a[t, s] G_t[a, b] C_b[t, u]
        right = torch.einsum("Btaibj,btu->Btaiuj", G, self.C)
        S = x.new_zeros(B, self.n, self.n)
        S[:, : T * Q, : T * Q] = torch.einsum("ats,Btaiuj->Bsiuj", self.C, right).reshape(
            B, T * Q, T * Q
        )
        return J, e, S

    def hessian(self, x: Tensor, theta) -> tuple[Tensor, Tensor, Tensor]:
        """``(H: (B, n, n), g: (B, n), C: (B,))``: the full Hessian, gradient and value of
        ``C = 1/2 |e|^2`` w.r.t. ``x``."""
        J, e, S = self.second_order(x, theta)
        g = (J.transpose(1, 2) @ e.unsqueeze(-1)).squeeze(-1)
        return J.transpose(1, 2) @ J + S, g, 0.5 * e.square().sum(-1)

    def newton(self, x: Tensor, theta, steps: int, tol: float) -> tuple[Tensor, Tensor]:
        """Up to ``steps`` exact Newton steps from ``x`` (each kept per trial only where it
        does not raise the cost), stopping once every trial's last kept step is at most
        ``tol (1 + |x|)``; returns ``x`` and whether that held ``(B,)``."""
        size = torch.full((x.shape[0],), float("inf"), dtype=x.dtype, device=x.device)
        done = size <= 0
        for _ in range(steps):
            if bool(done.all()):
                break
            J, e, S = self.second_order(x, theta)
            c = 0.5 * e.square().sum(-1)
            dx = _solve_augmented(J, S, -e, torch.zeros_like(x))
            x_new = x + dx.to(x.dtype)
            c_new = 0.5 * self.errors(x_new, theta).square().sum(-1)
            keep = c_new <= c * (1.0 + 1e-12)
            x = torch.where(keep[:, None], x_new, x)
            size = torch.where(keep, dx.norm(dim=-1).to(x.dtype), size)
            done = size <= tol * (1.0 + x.norm(dim=-1))
        return x, done


def _probes(y: Tensor) -> Tensor:
    """``(k, *y.shape)``: unit vector ``j`` of the last axis, broadcast over the others."""
    k = y.shape[-1]
    eye = torch.eye(k, dtype=y.dtype, device=y.device)
    return eye.reshape(k, *(1,) * (y.dim() - 1), k).expand(k, *y.shape)


def _solve_augmented(J: Tensor, S: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``v`` of ``[[-I, J], [J^T, S]] [w; v] = [a; b]``, i.e. ``(J^T J + S) v = b + J^T a``,
    in float64: the augmented system keeps the condition number of ``J`` instead of
    squaring it (``J^T J`` spans ~18 decades here: residual rows against regularization).
    Symmetric Ruiz equilibration, then LU. ``J: (B, m, n)``, ``S: (B, n, n)``."""
    dt_ = J.dtype
    J, S, a, b = J.double(), S.double(), a.double(), b.double()
    m = J.shape[-2]
    eye = -torch.eye(m, dtype=J.dtype, device=J.device).expand(J.shape[0], m, m)
    A = torch.cat([torch.cat([eye, J], -1), torch.cat([J.transpose(1, 2), S], -1)], -2)
    rhs = torch.cat([a, b], -1)
    d = torch.ones_like(rhs)
    for _ in range(8):
        r = A.abs().amax(-1).clamp_min(torch.finfo(A.dtype).tiny).rsqrt()
        A, d = r[..., :, None] * A * r[..., None, :], d * r
    y = torch.linalg.solve(A, (d * rhs).unsqueeze(-1)).squeeze(-1)
    return (d * y)[..., m:].to(dt_)


@functools.cache
def _cost_class():
    import theseus as th

    class _RefinementCost(th.CostFunction):
        """theseus cost ``e(x, theta)`` with the exact structured Jacobian."""

        def __init__(self, problem, optim_vars, aux_vars, weight, name=None):
            super().__init__(weight, name=name)
            self.problem = problem
            self.register_vars(optim_vars, is_optim_vars=True)
            self.register_vars(aux_vars, is_optim_vars=False)

        def _args(self):
            x = torch.cat([v.tensor for v in self.optim_vars], -1)
            theta = _unflatten(self.problem, [v.tensor for v in self.aux_vars])
            return x, theta

        def error(self):
            return self.problem.errors(*self._args())

        def jacobians(self):
            J, e = self.problem.jacobian(*self._args())
            sizes = [v.dof() for v in self.optim_vars]
            return list(J.split(sizes, -1)), e

        def dim(self):
            return self.problem.m

        def _copy_impl(self, new_name=None):
            return _RefinementCost(
                self.problem, [v.copy() for v in self.optim_vars],
                [v.copy() for v in self.aux_vars], self.weight.copy(), name=new_name,
            )  # fmt: skip

    return th, _RefinementCost


def _unflatten(problem: _Problem, flat) -> tuple[Tensor, ...]:
    T, Q, P = problem.T, problem.Q, problem.P
    B = max(a.shape[0] for a in flat)
    return tuple(a.reshape(B, T, Q) for a in flat[:3]) + tuple(
        a.reshape(B, T, P, 3) for a in flat[3:]
    )


class _ImplicitArgmin(torch.autograd.Function):
    """Identity on the optimum ``x*`` with the exact implicit-function backward."""

    @staticmethod
    def forward(ctx, problem, x, *theta):
        ctx.problem = problem
        ctx.save_for_backward(x, *theta)
        return x.clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, gbar):
        problem = ctx.problem
        x, *theta = ctx.saved_tensors
        need = ctx.needs_input_grad[2:]
        J, _, S = problem.second_order(x, theta)
        v = _solve_augmented(J, S, torch.zeros_like(J[..., 0]), gbar)
        with torch.enable_grad():
            xs = x.detach().requires_grad_(True)
            ths = [t.detach().requires_grad_(n) for t, n in zip(theta, need)]
            e = problem.errors(xs, ths)
            (g,) = torch.autograd.grad(0.5 * e.square().sum(), xs, create_graph=True)
            req = [t for t in ths if t.requires_grad]
            got = torch.autograd.grad(g, req, -v.to(g.dtype), allow_unused=True) if req else ()
        it = iter(got)
        out = [next(it) if n else None for n in need]
        out = [torch.zeros_like(t) if n and o is None else o for t, n, o in zip(theta, need, out)]
        return (None, None, *out)


def refine_with_kinematics(
    model: Model,
    q: Tensor,
    qd: Tensor,
    qdd: Tensor,
    force: Tensor,
    point: Tensor,
    torque: Tensor,
    *,
    time_step: float,
    contact: Tensor | None = None,
    contact_threshold: float = 20.0,
    kinematics_scale: float = 0.01,
    force_scale: float = 5.0,
    moment_scale: float = 1.0,
    residual_scale: float = 0.01,
    max_iterations: int = 30,
    newton_steps: int = 4,
    newton_tolerance: float = 1e-8,
) -> KinematicRefinement:
    """Adjust kinematics and ground reactions together to remove the root residuals.

    Args:
        q, qd, qdd: ``(B, T, Q)`` kinematics; force, point, torque: ``(B, T, P, 3)`` in
            ground [N, m, N m]; time_step [s]; contact ``(B, T, P)`` or None (measured
            normal force > ``contact_threshold``); scales: sizes of a unit cost
            (``kinematics_scale`` [rad or m], ``force_scale`` [N], ``moment_scale``
            [N m], ``residual_scale`` [N or N m]); max_iterations: theseus
            Levenberg-Marquardt iterations; newton_steps: exact Newton steps after it (full
            Hessian, each kept only where it does not raise the cost; stops early once
            converged); newton_tolerance: a trial is converged when its last kept Newton
            step is at most ``newton_tolerance * (1 + |x|)`` (Euclidean norms of the
            stacked unknowns; with ``newton_steps=0``, theseus' own status is used).
    Returns:
        :class:`KinematicRefinement`, differentiable w.r.t. ``q, qd, qdd, force, point,
        torque`` (exact implicit backward at the optimum, see the module docstring).
    """
    if q.dim() != 3 or force.dim() != 4 or force.shape[:2] != q.shape[:2]:
        raise ShapeError(
            f"refine_with_kinematics: q must be (B, T, Q) and force (B, T, P, 3); got "
            f"{tuple(q.shape)} and {tuple(force.shape)}"
        )
    th, cost_cls = _cost_class()
    B, T, Q = q.shape
    P = force.shape[2]
    # float64 throughout (the system spans ~18 decades); outputs in the inputs' dtype
    out_dtype, dt_, dev = q.dtype, torch.float64, q.device
    D1, D2 = (d.to(dev) for d in difference_operators(T, time_step, dt_))
    n = -torch.tensor(model.gravity, dtype=dt_, device=dev)
    n = n / n.norm()
    if contact is None:
        contact = (force.detach().to(dt_) @ n) > contact_threshold
    mask = contact.to(dt_).unsqueeze(-1)
    problem = _Problem(
        model, T, Q, P, D1, D2, mask, residual_scale, kinematics_scale, force_scale, moment_scale
    )
    theta = tuple(a.to(dt_) for a in (q, qd, qdd, force, point, torque))

    names = ("dq", "dF", "dM")
    sizes = (T * Q, 3 * T * P, 3 * T * P)
    x0 = {k: torch.zeros(B, s, dtype=dt_, device=dev) for k, s in zip(names, sizes)}
    aux_names = ("q", "qd", "qdd", "Fm", "Pm", "Tm")
    aux_vals = {k: v.detach().reshape(B, -1) for k, v in zip(aux_names, theta)}
    ov = [th.Vector(tensor=x0[k].clone(), name=k) for k in names]
    av = [th.Variable(aux_vals[k].clone(), name=k) for k in aux_names]
    w = th.ScaleCostWeight(torch.tensor(1.0, dtype=dt_, device=dev))
    objective = th.Objective(dtype=dt_)
    objective.add(cost_cls(problem, ov, av, w))
    opt = th.LevenbergMarquardt(
        objective, max_iterations=max_iterations, step_size=1.0,
        abs_err_tolerance=1e-14, rel_err_tolerance=1e-14,
    )  # fmt: skip
    layer = th.TheseusLayer(opt).to(device=dev, dtype=dt_)
    with torch.no_grad():
        sol, info = layer.forward({**x0, **aux_vals}, optimizer_kwargs={"damping": 1e-9})
    x_star = torch.cat([sol[k] for k in names], -1).detach()
    theta_d = tuple(a.detach() for a in theta)
    x_star, small_step = problem.newton(x_star, theta_d, newton_steps, newton_tolerance)
    x = _ImplicitArgmin.apply(problem, x_star, *theta)
    q1, qd1, qdd1, F, M, r = (a.to(out_dtype) for a in problem.outputs(x, theta))
    if newton_steps > 0:
        conv = small_step
    else:
        conv = torch.as_tensor(info.status == th.NonlinearOptimizerStatus.CONVERGED, device=dev)
    return KinematicRefinement(q1, qd1, qdd1, F, M, r, conv)
