"""Fitting (lam, mu) to measured torque-angle and force-displacement data by gradient descent."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from diffbio._errors import ShapeError
from diffbio.tissue._material import lame_to_young

__all__ = ["FitResult", "fit_lame"]


@dataclass(frozen=True)
class FitResult:
    """Fitted homogeneous Lame parameters [Pa] (and E [Pa], nu), the loss history."""

    lam: float
    mu: float
    E: float
    nu: float
    loss: tuple[float, ...]
    iterations: int


def fit_lame(
    experiments: Sequence[
        tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], torch.Tensor]
    ],
    lam0: float,
    mu0: float,
    *,
    iterations: int = 60,
    lr: float = 0.1,
    tol: float = 1e-14,
    method: str = "lbfgs",
) -> FitResult:
    """Fit scalar (lam, mu) [Pa] so that each ``predict(lam, mu)`` matches its measurement.

    Args:
        experiments: pairs ``(predict, measured)``; ``predict(lam, mu) -> (K,)`` is a
            differentiable simulation (e.g. torques [N m] at K twist angles through the
            equilibrium adjoint) and ``measured: (K,)`` the data in the same units.
        lam0, mu0: initial guess [Pa].
        iterations: most loss evaluations (L-BFGS) or steps (Adam) on ``(log lam, log mu)``.
        lr: Adam learning rate.
        tol: stop when the loss (relative squared errors) changes (L-BFGS) or falls (Adam)
            below this.
        method: ``"lbfgs"`` (gradient-based quasi-Newton with a strong-Wolfe line search)
            or ``"adam"`` (plain gradient descent with moments).
    """
    if not experiments:
        raise ShapeError("fit_lame needs at least one (predict, measured) pair")
    theta = torch.tensor([float(lam0), float(mu0)], dtype=torch.float64).log().requires_grad_(True)
    history: list[float] = []

    def loss_fn() -> torch.Tensor:
        lam, mu = theta.exp()
        return sum(
            (((predict(lam, mu) - y) / y.abs().clamp(min=1e-300)) ** 2).mean()
            for predict, y in experiments
        )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_fn()
        history.append(float(loss.detach()))
        loss.backward()
        return loss

    if method == "lbfgs":
        opt = torch.optim.LBFGS(
            [theta],
            lr=1.0,
            max_iter=iterations,
            tolerance_grad=1e-12,
            tolerance_change=tol,
            line_search_fn="strong_wolfe",
        )
        opt.step(closure)
    elif method == "adam":
        opt = torch.optim.Adam([theta], lr=lr)
        for _ in range(iterations):
            opt.step(closure)
            if history[-1] < tol:
                break
    else:
        raise ValueError(f"unknown method {method!r} (use 'lbfgs' or 'adam')")
    it = len(history)
    lam, mu = theta.detach().exp()
    E, nu = lame_to_young(lam, mu)
    return FitResult(float(lam), float(mu), float(E), float(nu), tuple(history), it)
