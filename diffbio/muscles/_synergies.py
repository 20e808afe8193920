"""Muscle synergies: non-negative matrix factorization of activations, variance accounted
for, the choice of the number of synergies, and synergy-constrained static optimization.

Convention: activations ``A (..., T, M)`` (frames by muscles, as in a ``.sto``) factor as
``A ~ H W^T`` with synergy vectors ``W (..., M, S) >= 0`` (columns scaled to unit maximum)
and their time courses ``H (..., T, S) >= 0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from diffbio._errors import DiffbioError, ShapeError
from diffbio._shapes import broadcast_shapes
from diffbio.muscles._static_opt import StaticOptimizationResult
from diffbio.solvers import QPOptions, solve_qp


@dataclass(frozen=True)
class Synergies:
    """NMF result: ``W (..., M, S)``, ``H (..., T, S)``, ``vaf (...)`` [-] of the best of the
    restarts (``A ~ H W^T``)."""

    W: Tensor
    H: Tensor
    vaf: Tensor


def vaf(A: Tensor, A_hat: Tensor) -> Tensor:
    """Variance accounted for ``1 - ||A - A_hat||^2 / ||A||^2`` over the last two axes."""
    return 1.0 - ((A - A_hat) ** 2).sum((-1, -2)) / (A**2).sum((-1, -2))


def nmf(
    A: Tensor,
    S: int,
    *,
    restarts: int = 8,
    iterations: int = 500,
    tol: float = 1e-7,
    generator: torch.Generator | None = None,
) -> Synergies:
    """Non-negative matrix factorization ``A ~ H W^T`` by multiplicative updates (Lee and
    Seung, Frobenius norm), batched over ``restarts`` random initializations; keeps the
    restart with the highest VAF.

    Args:
        A: (..., T, M) non-negative activations [-].
        S: number of synergies.
        restarts: random restarts, solved as one batch.
        iterations: multiplicative-update iterations at most.
        tol: stop when the relative change of the error is below ``tol``.
        generator: random generator for the initializations.

    Returns:
        :class:`Synergies`, ``W`` columns scaled to unit maximum.
    """
    if A.dim() < 2:
        raise ShapeError(f"nmf: A must be (..., T, M); got {tuple(A.shape)}")
    if bool((A < 0).any()):
        raise DiffbioError("nmf: activations must be non-negative")
    T, M = A.shape[-2:]
    if not 1 <= S <= min(T, M):
        raise DiffbioError(f"nmf: S = {S} synergies must lie in 1..{min(T, M)}")
    eps = torch.finfo(A.dtype).tiny ** 0.5
    lead = A.shape[:-2]
    X = A.unsqueeze(-3).expand(*lead, restarts, T, M)
    scale = A.mean((-1, -2), keepdim=True).unsqueeze(-3).sqrt()
    kw = {"dtype": A.dtype, "device": A.device}
    W = torch.rand(*lead, restarts, M, S, generator=generator, **kw).to(A.device) * scale
    H = torch.rand(*lead, restarts, T, S, generator=generator, **kw).to(A.device) * scale
    prev = None
    for _ in range(iterations):
        H = H * (X @ W) / (H @ (W.transpose(-1, -2) @ W) + eps)
        W = W * (X.transpose(-1, -2) @ H) / (W @ (H.transpose(-1, -2) @ H) + eps)
        err = ((X - H @ W.transpose(-1, -2)) ** 2).sum((-1, -2))
        if prev is not None and bool(((prev - err).abs() <= tol * prev.clamp_min(eps)).all()):
            break
        prev = err
    v = vaf(X, H @ W.transpose(-1, -2))
    best = v.argmax(-1)
    pick = lambda t: torch.take_along_dim(  # noqa: E731
        t, best.reshape(*lead, 1, *([1] * (t.dim() - len(lead) - 1))), dim=len(lead)
    ).squeeze(len(lead))
    W, H, v = pick(W), pick(H), pick(v)
    mx = W.amax(-2, keepdim=True).clamp_min(eps)
    return Synergies(W / mx, H * mx, v)


def vaf_curve(A: Tensor, k_max: int = 10, **kw) -> tuple[Tensor, list[Synergies]]:
    """VAF of NMF with ``S = 1..k_max`` synergies: ``(k_max,)`` (or ``(..., k_max)``) and
    the factorizations."""
    fits = [nmf(A, s, **kw) for s in range(1, k_max + 1)]
    return torch.stack([f.vaf for f in fits], -1), fits


def choose_synergies(vafs: Tensor, threshold: float = 0.9) -> tuple[int, int]:
    """Number of synergies by VAF threshold (the fewest with ``VAF >= threshold``; the last
    when none reaches it) and by the elbow (the point of the VAF curve farthest from the
    chord joining its ends). ``vafs: (K,)`` for ``S = 1..K``. Returns ``(k_threshold,
    k_elbow)``."""
    v = vafs.detach().double().cpu()
    K = v.shape[-1]
    above = torch.nonzero(v >= threshold).flatten()
    k_thr = int(above[0]) + 1 if len(above) else K
    if K < 3:
        return k_thr, K
    x = torch.arange(1, K + 1, dtype=v.dtype)
    x0, y0, x1, y1 = x[0], v[0], x[-1], v[-1]
    dist = ((y1 - y0) * x - (x1 - x0) * v + x1 * y0 - y1 * x0).abs()
    return k_thr, int(dist.argmax()) + 1


def synergy_static_optimization(
    W: Tensor,
    tau: Tensor,
    moment_arms: Tensor,
    F_active_per_a: Tensor,
    F_passive: Tensor | None = None,
    actuator_moments: Tensor | None = None,
    *,
    weights: Tensor | float = 1.0,
    actuator_weights: Tensor | float = 1.0,
    a_min: Tensor | float = 0.0,
    a_max: Tensor | float = 1.0,
    control_min: Tensor | float = -torch.inf,
    control_max: Tensor | float = torch.inf,
    keep: Tensor | None = None,
    residual_weight: float | None = None,
    options: QPOptions | None = None,
) -> StaticOptimizationResult:
    """Static optimization with activations built from synergies: ``a = W c (+ e)``.

    Per frame: ``min sum w_i a_i^2 + sum v_k u_k^2 (+ residual_weight ||e||^2)`` over
    ``c >= 0`` (S), the controls ``u`` (NA) and, when ``residual_weight`` is given, the
    residual activations ``e`` (M), subject to the moment equation of
    :func:`~diffbio.muscles.static_optimization` and ``a_min <= a <= a_max``.
    Differentiable w.r.t. ``W`` (and every other tensor) through the QP, so ``W`` can be
    learned end to end.

    Args:
        W: (M, S) or (..., M, S) non-negative synergy vectors.
        tau, moment_arms, F_active_per_a, F_passive, actuator_moments, weights,
            actuator_weights, a_min, a_max, control_min, control_max, keep: as in
            :func:`~diffbio.muscles.static_optimization`.
        residual_weight: cost weight of ``e``; None forbids a residual (``a = W c``).

    Returns:
        :class:`StaticOptimizationResult` (``activations = W c + e``).
    """
    from diffbio.muscles._static_opt import _as, kept_coordinates

    dt, dev = tau.dtype, tau.device
    Q = tau.shape[-1]
    M, S = W.shape[-2:]
    if moment_arms.shape[-2:] != (M, Q):
        raise ShapeError(f"moment_arms must be (..., {M}, {Q}); got {tuple(moment_arms.shape)}")
    if actuator_moments is None:
        actuator_moments = torch.zeros(Q, 0, dtype=dt, device=dev)
    NA = actuator_moments.shape[-1]
    if keep is None:
        keep = kept_coordinates(moment_arms, actuator_moments)
    idx = torch.nonzero(keep.to(dev)).flatten()
    W = W.to(dt)
    Rt = moment_arms.to(dt).transpose(-1, -2)
    A_mus = Rt * F_active_per_a.to(dt).unsqueeze(-2)  # (..., Q, M)
    b = tau
    if F_passive is not None:
        b = b - (Rt @ F_passive.to(dt).unsqueeze(-1)).squeeze(-1)
    E = residual_weight is not None
    ne = M if E else 0
    n = S + ne + NA
    w = _as(weights, tau, (M,)).expand(M)
    v = _as(actuator_weights, tau, (NA,)).expand(NA)
    lead = broadcast_shapes(
        A_mus.shape[:-2], actuator_moments.shape[:-2], b.shape[:-1], W.shape[:-2]
    )
    # a = T x with T = [W, I (if E), 0]
    blocks = [W.expand(*lead, M, S)]
    if E:
        blocks.append(torch.eye(M, dtype=dt, device=dev).expand(*lead, M, M))
    blocks.append(torch.zeros(*lead, M, NA, dtype=dt, device=dev))
    Tm = torch.cat(blocks, -1)  # (..., M, n)
    P = 2.0 * Tm.transpose(-1, -2) @ (w.unsqueeze(-1) * Tm)
    extra = torch.zeros(n, dtype=dt, device=dev)
    if E:
        extra = extra.index_put(
            (torch.arange(S, S + M, device=dev),),
            torch.full((M,), 2.0 * residual_weight, dtype=dt, device=dev),
        )
    extra = extra.index_put((torch.arange(S + ne, n, device=dev),), 2.0 * v)
    P = P + torch.diag_embed(extra)
    act_cols = torch.cat(
        [
            A_mus.expand(*lead, Q, M) @ Tm[..., :, : S + ne],
            actuator_moments.to(dt).expand(*lead, Q, NA),
        ],
        -1,
    )
    A_k, b_k = act_cols[..., idx, :], b.expand(*lead, Q)[..., idx]
    lo = torch.cat(
        [
            torch.zeros(S, dtype=dt, device=dev),
            torch.full((ne,), -torch.inf, dtype=dt, device=dev),
            _as(control_min, tau, (NA,)).expand(NA),
        ]
    )
    hi = torch.cat(
        [
            torch.full((S + ne,), torch.inf, dtype=dt, device=dev),
            _as(control_max, tau, (NA,)).expand(NA),
        ]
    )
    Tma = Tm[..., :, : S + ne]
    G = torch.cat([Tma, -Tma], -2)
    G = torch.cat([G, torch.zeros(*G.shape[:-1], NA, dtype=dt, device=dev)], -1)
    h = torch.cat([_as(a_max, tau, (M,)).expand(M), -_as(a_min, tau, (M,)).expand(M)])
    q0 = torch.zeros(*lead, n, dtype=dt, device=dev)
    sol = solve_qp(P, q0, A_k, b_k, lo, hi, G, h, options=options)
    x = sol.x
    a = (Tm @ x.unsqueeze(-1)).squeeze(-1)
    u = x[..., S + ne :]
    Fm = a * F_active_per_a.to(dt)
    if F_passive is not None:
        Fm = Fm + F_passive.to(dt)
    produced = (act_cols @ x.unsqueeze(-1)).squeeze(-1)
    return StaticOptimizationResult(
        activations=a,
        controls=u,
        muscle_forces=Fm,
        actuator_forces=u,
        moment_residual=b.expand(*lead, Q) - produced,
        status=sol.status,
    )
