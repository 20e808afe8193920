"""Batched QP solver vs per-frame OSQP, Clarabel and cvxpylayers on static-optimization QPs.

Usage: ``.venv/bin/python benchmarks/bench_qp.py [--frames 1000] [--threads 1]``.

Also times the warm-started path (``warm_start``: active-set rounds from a guess, as in
each Newton step of static optimization with an exponent p != 2): the guess is the active
set of the same problems with ``b`` changed by 1 %.

One batch of random feasible problems of static-optimization shape (92 muscles + 23
reserves, 23 coordinates; P = 2I, q = 0; 0 <= activations <= 1, |reserves| <= 1e3) is
solved by every solver. Prints frames per second, ratios to diffbio, and the accuracy of
diffbio against Clarabel (max |x - x_clarabel| over all frames).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from diffbio.solvers import solve_qp  # noqa: E402
from tests.solvers.qp_problems import clarabel_solve, osqp_polished_solve, so_batch  # noqa: E402


def _time(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--muscles", type=int, default=92)
    ap.add_argument("--reserves", type=int, default=23)
    ap.add_argument("--coords", type=int, default=23)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: leave as is)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    ap.add_argument(
        "--peer-frames", type=int, default=200, help="frames timed for the per-frame peers"
    )
    ap.add_argument("--layer-frames", type=int, default=50, help="frames timed for cvxpylayers")
    ap.add_argument("--accuracy-frames", type=int, default=1000)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    B, M, R, Q = args.frames, args.muscles, args.reserves, args.coords
    n = M + R
    P, q, A, b, lo, hi = so_batch(B, n_muscles=M, n_reserves=R, n_coords=Q, seed=0)
    dev = torch.device(args.device)
    Pt, qt, At, bt, lt, ut = (t.to(device=dev, dtype=dtype) for t in (P, q, A, b, lo, hi))
    print(
        f"# {B} frames, n = {n} ({M} muscles + {R} reserves), m = {Q}; device {dev}, {args.dtype}, torch threads {torch.get_num_threads()}"
    )

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    solve_qp(Pt, qt, At[:8], bt[:8], lt, ut)  # warm-up
    sol = None

    def fwd():
        nonlocal sol
        sol = solve_qp(Pt, qt, At, bt, lt, ut)
        sync()

    t_fwd = _time(fwd)
    iters = sol.iterations.float()
    print(
        f"diffbio forward: {t_fwd:.3f} s, {B / t_fwd:.1f} frames/s; solved {int(sol.solved.sum())}/{B}; iterations mean {iters.mean():.1f} max {int(iters.max())}"
    )
    w = torch.randn(n, dtype=dtype, device=dev)

    def fwd_bwd():
        Ar, br = At.clone().requires_grad_(True), bt.clone().requires_grad_(True)
        (solve_qp(Pt, qt, Ar, br, lt, ut).x @ w).sum().backward()
        sync()

    t_fb = _time(fwd_bwd)
    print(f"diffbio forward+backward (grad A, b): {t_fb:.3f} s, {B / t_fb:.1f} frames/s")
    rows = [("diffbio forward", B / t_fwd), ("diffbio forward+backward", B / t_fb)]
    near = solve_qp(Pt, qt, At, bt * 1.01, lt, ut)
    guess = (near.z_lower > 0, near.z_upper > 0)
    warm = None

    def fwd_warm():
        nonlocal warm
        warm = solve_qp(Pt, qt, At, bt, lt, ut, warm_start=guess)
        sync()

    t_warm = _time(fwd_warm)
    dx = float((warm.x - sol.x).abs().max())
    fell = int((warm.iterations > 0).sum())
    print(
        f"diffbio forward warm-started: {t_warm:.3f} s, {B / t_warm:.1f} frames/s; max |dx| vs "
        f"cold {dx:.1e}; {fell} frames fell back to the interior-point method"
    )
    rows.append(("diffbio forward, warm-started (guess: b + 1 %)", B / t_warm))

    Pn, qn, An, bn, ln, un = (t.numpy() for t in (P, q, A, b, lo, hi))
    k = min(args.peer_frames, B)
    t_osqp = _time(lambda: [osqp_polished_solve(Pn, qn, An[i], bn[i], ln, un) for i in range(k)])
    rows.append(("OSQP per frame (eps 1e-10, polish)", k / t_osqp))
    t_osqp6 = _time(
        lambda: [osqp_polished_solve(Pn, qn, An[i], bn[i], ln, un, eps=1e-6) for i in range(k)]
    )
    rows.append(("OSQP per frame (eps 1e-6, polish)", k / t_osqp6))
    t_cl = _time(
        lambda: [clarabel_solve(Pn, qn, An[i], bn[i], ln, un, tol=1e-10) for i in range(k)]
    )
    rows.append(("Clarabel per frame (tol 1e-10)", k / t_cl))

    try:
        import cvxpy as cp
        from cvxpylayers.torch import CvxpyLayer

        kl = min(args.layer_frames, B)
        x = cp.Variable(n)
        Ap, bp = cp.Parameter((Q, n)), cp.Parameter(Q)
        prob = cp.Problem(cp.Minimize(cp.sum_squares(x)), [Ap @ x == bp, x >= ln, x <= un])
        layer = CvxpyLayer(prob, parameters=[Ap, bp], variables=[x])
        A64 = A[:kl].clone().requires_grad_(True)
        b64 = b[:kl].clone().requires_grad_(True)

        def run_layer():
            (xs,) = layer(A64, b64)
            (xs @ w.cpu().double()).sum().backward()

        t_layer = _time(run_layer)
        rows.append(("cvxpylayers forward+backward", kl / t_layer))
    except Exception as exc:  # noqa: BLE001 - a peer that cannot run is reported, not fatal
        print(f"cvxpylayers skipped: {exc}")

    ref = rows[0][1]
    print(f"\n{'solver':42s} {'frames/s':>12s} {'diffbio fwd / solver':>22s}")
    for name, fps in rows:
        print(f"{name:42s} {fps:12.1f} {ref / fps:22.2f}")

    na = min(args.accuracy_frames, B)
    xs = sol.x[:na].double().cpu().numpy()
    errs = []
    for i in range(na):
        xr, status = clarabel_solve(Pn, qn, An[i], bn[i], ln, un)
        if status != "Solved":
            print(f"frame {i}: Clarabel status {status}")
            continue
        errs.append(np.abs(xs[i] - xr).max())
    errs = np.array(errs)
    print(
        f"\naccuracy vs Clarabel on {len(errs)} frames: max |dx| {errs.max():.3e}, median {np.median(errs):.3e}, frames over 1e-6: {(errs > 1e-6).sum()}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
