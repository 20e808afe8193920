"""Static optimization, side by side in one run on the same trial: OpenSim 4.6's
StaticOptimization (AnalyzeTool), a per-frame OSQP loop, cvxpylayers, and diffbio (one
batch of QPs, forward and forward+backward), as frames per second and ratios; accuracy
against OpenSim (activation RMSE, per-muscle correlation); and, on gait2392, synergies
(VAF for K = 1..10, K chosen, synergy-constrained SO's moment error and reserve use).

OSQP, cvxpylayers and diffbio solve the identical QPs (diffbio's frames: moment arms,
forces, inverse dynamics); their times exclude building those inputs, which is reported
separately ("diffbio inputs"). OpenSim's time is its whole AnalyzeTool run.

Run: ``.venv/bin/python benchmarks/bench_so.py [--trial gait2392|gait10dof18musc]
[--t0 T0 --t1 T1] [--no-opensim] [--no-cvxpylayers] [--synergies]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WINDOWS = {"gait2392": (0.5, 2.5), "gait10dof18musc": (0.0, 2.5)}


def _qp_data(fr):
    """Per-frame QP matrices (numpy) of diffbio's frames: P diag, A, b, l, u."""
    idx = torch.nonzero(fr.keep).flatten()
    Rt = fr.moment_arms.transpose(-1, -2)
    A = torch.cat([Rt * fr.F_active_per_a.unsqueeze(-2), fr.actuator_moments], -1)[:, idx]
    b = fr.tau[:, idx]
    lo = np.concatenate([fr.a_min.numpy(), [a.min_control for a in fr.actuators]])
    hi = np.concatenate([fr.a_max.numpy(), [a.max_control for a in fr.actuators]])
    P = 2.0 * np.ones(A.shape[-1])
    return P, A.numpy(), b.numpy(), lo, hi


def osqp_loop(fr):
    import osqp
    import scipy.sparse as sp

    P, A, b, lo, hi = _qp_data(fr)
    n = A.shape[-1]
    out = np.zeros((A.shape[0], n))
    big = 1e20
    for t in range(A.shape[0]):
        C = sp.vstack([sp.csc_matrix(A[t]), sp.eye(n)]).tocsc()
        lb = np.concatenate([b[t], np.maximum(lo, -big)])
        ub = np.concatenate([b[t], np.minimum(hi, big)])
        m = osqp.OSQP()
        m.setup(
            sp.diags(P).tocsc(),
            np.zeros(n),
            C,
            lb,
            ub,
            verbose=False,
            eps_abs=1e-8,
            eps_rel=1e-8,
            max_iter=20000,
            polish=True,
        )
        out[t] = m.solve().x
    return out


def cvxpylayers_batch(fr, backward=False):
    import cvxpy as cp
    from cvxpylayers.torch import CvxpyLayer

    P, A, b, lo, hi = _qp_data(fr)
    T, m, n = A.shape
    Ap, bp = cp.Parameter((m, n)), cp.Parameter(m)
    x = cp.Variable(n)
    cons = [Ap @ x == bp]
    fin_lo, fin_hi = np.isfinite(lo), np.isfinite(hi)
    cons += [x[fin_lo] >= lo[fin_lo], x[fin_hi] <= hi[fin_hi]]
    prob = cp.Problem(cp.Minimize(cp.sum_squares(x)), cons)
    layer = CvxpyLayer(prob, parameters=[Ap, bp], variables=[x])
    At = torch.tensor(A, requires_grad=backward)
    bt = torch.tensor(b, requires_grad=backward)
    t0 = time.perf_counter()
    (sol,) = layer(At, bt)
    if backward:
        sol.sum().backward()
    return sol.detach().numpy(), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trial", default="gait2392", choices=sorted(WINDOWS))
    ap.add_argument("--t0", type=float)
    ap.add_argument("--t1", type=float)
    ap.add_argument("--no-opensim", action="store_true")
    ap.add_argument("--no-cvxpylayers", action="store_true")
    ap.add_argument("--synergies", action="store_true", help="synergy analysis (gait2392)")
    args = ap.parse_args()
    from diffbio.io import read_storage
    from diffbio.muscles import (
        load_static_optimization_trial,
        solve_static_optimization,
    )
    from tests.muscles.test_static_opt_opensim import (
        TRIALS,
        compare,
        run_opensim_static_optimization,
    )

    D = ROOT.parent / "shared" / "data" / "opensim"
    paths = [D / p for p in TRIALS[args.trial]]
    t0, t1 = WINDOWS[args.trial]
    t0 = args.t0 if args.t0 is not None else t0
    t1 = args.t1 if args.t1 is not None else t1
    st = read_storage(paths[1])
    t0 = max(t0, float(st.time[0]))
    rows = []
    start = time.perf_counter()
    _, fr = load_static_optimization_trial(*paths, time_range=(t0, t1), progress=True)
    t_inputs = time.perf_counter() - start
    T = len(fr.time)
    print(
        f"{args.trial} {t0:g}-{t1:g} s: {T} frames, {len(fr.muscles)} muscles, "
        f"{len(fr.actuators)} actuators; diffbio inputs (ID, geometry, forces) {t_inputs:.2f} s"
    )
    solve_static_optimization(fr.slice(0, 2))  # warm-up
    s = time.perf_counter()
    res = solve_static_optimization(fr)
    t_fwd = time.perf_counter() - s
    frq = fr.__class__(**{**fr.__dict__, "tau": fr.tau.clone().requires_grad_()})
    s = time.perf_counter()
    r2 = solve_static_optimization(frq)
    r2.activations.sum().backward()
    t_bwd = time.perf_counter() - s
    f32 = fr.to(dtype=torch.float32)
    s = time.perf_counter()
    r32 = solve_static_optimization(f32)
    t_32 = time.perf_counter() - s
    d32 = float((r32.activations.double() - res.activations).abs().max())
    rows += [
        ("diffbio float64 forward", t_fwd),
        ("diffbio float64 fwd+bwd", t_bwd),
        (f"diffbio float32 forward (max |da| vs f64 {d32:.1e})", t_32),
        ("diffbio inputs + float64 forward", t_inputs + t_fwd),
    ]
    s = time.perf_counter()
    xo = osqp_loop(fr)
    rows.append(("OSQP per-frame loop", time.perf_counter() - s))
    print(
        f"OSQP vs diffbio max |da| {np.abs(xo[:, : len(fr.muscles)] - res.activations.numpy()).max():.2e}"
    )
    if not args.no_cvxpylayers:
        xc, tc = cvxpylayers_batch(fr)
        rows.append(("cvxpylayers batch forward", tc))
        print(
            f"cvxpylayers vs diffbio max |da| "
            f"{np.abs(xc[:, : len(fr.muscles)] - res.activations.numpy()).max():.2e}"
        )
    t_os = None
    if not args.no_opensim:
        with tempfile.TemporaryDirectory() as tmp:
            sto, t_os = run_opensim_static_optimization(*paths, t0, t1, tmp)
            cmp = compare(fr, res, sto)
        rows.insert(0, ("OpenSim 4.6 StaticOptimization", t_os))
        bad = {m: round(c, 4) for m, c in cmp["corr"].items() if c < 0.98}
        print(
            f"accuracy vs OpenSim: activation RMSE {cmp['rmse']:.4f} (all muscles, frames); "
            f"min correlation {min(cmp['corr'].values()):.4f} over {len(cmp['corr'])} muscles "
            f"with peak > 0.05; below 0.98: {bad or 'none'}"
        )
    print(f"\n{'method':58s} {'time [s]':>9s} {'frames/s':>10s} {'vs OpenSim':>10s}")
    for name, t in rows:
        ratio = f"{t_os / t:9.1f}x" if t_os else "-"
        print(f"{name:58s} {t:9.3f} {T / t:10.1f} {ratio:>10s}")
    if args.synergies:
        synergies_report(fr, res)


def synergies_report(fr, res) -> None:
    from diffbio.model import load_osim
    from diffbio.muscles import (
        actuator_generalized_forces,
        choose_synergies,
        reserve_actuators,
        synergy_static_optimization,
        vaf_curve,
    )
    from tests.muscles.test_static_opt_opensim import TRIALS

    A = res.activations.detach()
    vafs, fits = vaf_curve(A, 10, restarts=8, generator=torch.Generator().manual_seed(0))
    k_thr, k_elbow = choose_synergies(vafs, 0.9)
    print("\nsynergies: VAF for K = 1..10:", " ".join(f"{100 * v:.1f}" for v in vafs.tolist()))
    print(f"K by VAF >= 90%: {k_thr}; by elbow: {k_elbow}")
    model = load_osim(ROOT.parent / "shared" / "data" / "opensim" / TRIALS["gait2392"][0])
    extra = reserve_actuators(model, [c for c, k in zip(fr.coordinates, fr.keep) if k])
    S_extra = actuator_generalized_forces(
        model, extra, torch.zeros(len(fr.time), len(fr.coordinates), dtype=torch.float64)
    )
    acts = tuple(fr.actuators) + tuple(extra)
    S = torch.cat([fr.actuator_moments, S_extra], -1)
    cmin = torch.tensor([a.min_control for a in acts], dtype=torch.float64)
    cmax = torch.tensor([a.max_control for a in acts], dtype=torch.float64)
    n0 = len(fr.actuators)
    tau_rms = float(fr.tau[:, fr.keep].pow(2).mean().sqrt())
    for k in sorted({k_thr, k_elbow}):
        r = synergy_static_optimization(
            fits[k - 1].W,
            fr.tau,
            fr.moment_arms,
            fr.F_active_per_a,
            None,
            S,
            a_min=0.0,
            a_max=fr.a_max,
            control_min=cmin,
            control_max=cmax,
            keep=fr.keep,
        )
        u = r.controls[:, n0:]
        Rt = fr.moment_arms.transpose(-1, -2)
        mus = (Rt @ (r.activations * fr.F_active_per_a).unsqueeze(-1)).squeeze(-1)
        full = fr.tau - (fr.actuator_moments @ r.controls[:, :n0].unsqueeze(-1)).squeeze(-1)
        err = (mus - full)[:, fr.keep]
        print(
            f"K = {k}: solved {int((r.status == 0).sum())}/{len(fr.time)} frames; muscles "
            f"miss the joint moments by rms {float(err.pow(2).mean().sqrt()):.2f} N m "
            f"(rms joint moment {tau_rms:.2f}); reserves rms {float(u.pow(2).mean().sqrt()):.2f} "
            f"N m, peak {float(u.abs().max()):.2f} N m"
        )


if __name__ == "__main__":
    main()
