"""Synergies: NMF recovers planted synergies, VAF and the choice of K, synergy-constrained
static optimization (feasibility, equivalence with full SO, gradients w.r.t. W), and the
``diffbio synergies`` command."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffbio import DiffbioError
from diffbio.muscles import (
    choose_synergies,
    nmf,
    static_optimization,
    synergy_static_optimization,
    vaf,
    vaf_curve,
)


def _planted(T=60, M=8, S=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = torch.rand(M, S, generator=g, dtype=torch.float64) ** 2
    W = W / W.amax(0, keepdim=True)
    t = torch.linspace(0, 1, T, dtype=torch.float64)
    H = torch.stack([0.5 * (1 + torch.sin(2 * np.pi * (t + s / S))) for s in range(S)], -1)
    return H @ W.T, W, H


def test_nmf_recovers_planted_synergies():
    A, W, _ = _planted()
    fit = nmf(A, 3, restarts=6, iterations=2000, generator=torch.Generator().manual_seed(1))
    assert float(fit.vaf) > 0.999
    assert bool((fit.W >= 0).all()) and bool((fit.H >= 0).all())
    torch.testing.assert_close(fit.W.amax(0), torch.ones(3, dtype=torch.float64))
    # each planted synergy matches one found synergy (cosine similarity)
    cos = (W / W.norm(dim=0)).T @ (fit.W / fit.W.norm(dim=0))
    assert float(cos.amax(1).min()) > 0.99
    torch.testing.assert_close(vaf(A, fit.H @ fit.W.T), fit.vaf)


def test_vaf_definition_and_choice_of_k():
    A, _, _ = _planted(S=3)
    noisy = A + 0.02 * torch.rand(
        A.shape, generator=torch.Generator().manual_seed(3), dtype=A.dtype
    )
    vafs, _ = vaf_curve(
        noisy, 5, restarts=3, iterations=300, generator=torch.Generator().manual_seed(2)
    )
    assert vafs.shape == (5,)
    assert bool((vafs[1:] >= vafs[:-1] - 1e-3).all())  # more synergies explain more
    k_thr, k_elbow = choose_synergies(vafs, 0.99)
    assert k_thr == 3 and k_elbow in (2, 3)
    # the fewest K at or above the threshold; K when none reaches it
    assert choose_synergies(torch.tensor([0.5, 0.8, 0.95, 0.97]), 0.9) == (3, 2)
    assert choose_synergies(torch.tensor([0.5, 0.6]), 0.9)[0] == 2
    # VAF = 1 - ||A - A_hat||^2 / ||A||^2
    B = torch.ones(2, 2, dtype=torch.float64)
    torch.testing.assert_close(vaf(B, 0.5 * B), torch.tensor(0.75, dtype=torch.float64))


def test_nmf_errors():
    with pytest.raises(DiffbioError):
        nmf(-torch.ones(4, 3), 2)
    with pytest.raises(DiffbioError):
        nmf(torch.ones(4, 3), 5)


def _so_frames(T=3, M=6, Q=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    R = 0.04 * torch.randn(T, M, Q, generator=g, dtype=torch.float64)
    Fa = 800.0 + 400 * torch.rand(T, M, generator=g, dtype=torch.float64)
    a = 0.1 + 0.3 * torch.rand(T, M, generator=g, dtype=torch.float64)
    tau = (R.transpose(-1, -2) @ (a * Fa).unsqueeze(-1)).squeeze(-1)
    S = torch.eye(Q, dtype=torch.float64).expand(T, Q, Q)  # unbounded reserves
    return tau, R, Fa, S


def test_identity_synergies_reproduce_static_optimization():
    tau, R, Fa, S = _so_frames()
    W = torch.eye(6, dtype=torch.float64)
    ref = static_optimization(tau, R, Fa, None, S)
    syn = synergy_static_optimization(W, tau, R, Fa, None, S)
    assert bool((syn.status == 0).all())
    torch.testing.assert_close(syn.activations, ref.activations, atol=1e-7, rtol=0)


def test_synergy_constraint_holds_and_residual_relaxes_it():
    tau, R, Fa, S = _so_frames()
    W = torch.rand(6, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    res = synergy_static_optimization(W, tau, R, Fa, None, S)
    assert bool((res.status == 0).all())
    a = res.activations
    assert bool((a >= -1e-9).all() & (a <= 1 + 1e-9).all())
    # a lies in the cone of W: its least-squares fit by W c (c >= 0 via lstsq) is exact
    c = torch.linalg.lstsq(W.expand(3, 6, 2), a.unsqueeze(-1)).solution
    torch.testing.assert_close((W @ c).squeeze(-1), a, atol=1e-7, rtol=0)
    torch.testing.assert_close(res.moment_residual, torch.zeros_like(tau), atol=1e-7, rtol=0)
    relaxed = synergy_static_optimization(W, tau, R, Fa, None, S, residual_weight=1.0)
    # with a penalized residual e, less reserve is needed
    assert float((relaxed.controls**2).sum()) < float((res.controls**2).sum())


def test_gradient_wrt_synergy_vectors():
    """gradcheck (float64) and central differences of d loss / d W."""
    tau, R, Fa, S = _so_frames(T=2)
    W0 = 0.2 + torch.rand(6, 2, generator=torch.Generator().manual_seed(7), dtype=torch.float64)

    def loss(W):
        r = synergy_static_optimization(W, tau, R, Fa, None, S, residual_weight=5.0)
        return torch.cat([r.activations.flatten(), r.controls.flatten()])

    W = W0.clone().requires_grad_()
    assert torch.autograd.gradcheck(loss, (W,), eps=1e-6, atol=1e-6, rtol=1e-4)
    probe = torch.linspace(-1, 1, loss(W0).numel(), dtype=torch.float64)
    (g,) = torch.autograd.grad((loss(W) * probe).sum(), W)
    fd = torch.zeros_like(W0)
    h = 1e-6
    for i in range(W0.numel()):
        d = torch.zeros(W0.numel(), dtype=torch.float64)
        d[i] = h
        d = d.view_as(W0)
        fd.view(-1)[i] = ((loss(W0 + d) - loss(W0 - d)) * probe).sum() / (2 * h)
    torch.testing.assert_close(g, fd, atol=1e-6, rtol=1e-4)
    assert g.abs().max() > 1e-6


def test_synergies_cli(tmp_path):
    from diffbio.cli._main import main
    from diffbio.io import Storage, read_storage, write_storage

    A, _, _ = _planted(T=40, M=6, S=2)
    data = np.concatenate([A.numpy(), -np.ones((40, 1))], 1)  # a control column < 0
    labels = [f"m{i}" for i in range(6)] + ["FX"]
    p = tmp_path / "act.sto"
    write_storage(p, Storage.from_arrays(np.linspace(0, 1, 40), labels, data, name="act"))
    rc = main(
        ["synergies", str(p), "--kmax", "3", "--threshold", "0.99", "--out", str(tmp_path / "out")]
    )
    assert rc == 0
    H = read_storage(tmp_path / "out" / "synergy_activations.sto")
    assert list(H.labels) == ["synergy_1", "synergy_2"]  # K = 2 reaches 99%
    v = read_storage(tmp_path / "out" / "vaf.sto").columns(["vaf"])[:, 0]
    assert v[1] > 0.99
