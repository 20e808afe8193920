"""``diffbio synergies ACTIVATIONS.sto [-k K] [--kmax N] [--threshold V] --out DIR``.

Non-negative matrix factorization of an activation table (columns whose values all lie in
[0, 1]; actuator controls outside that range are left out and named): VAF for K = 1..kmax,
K chosen by the VAF threshold (default 0.90) and by the elbow, and the factorization for
the chosen K (or ``-k``) written as ``synergy_vectors.sto`` (one row per muscle index,
columns ``synergy_<s>``, the muscle order listed in its header) and
``synergy_activations.sto`` (time courses), with ``vaf.sto``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from diffbio._errors import DiffbioError


def register(sub) -> None:
    p = sub.add_parser("synergies", help="muscle synergies (NMF) of an activation table")
    p.add_argument("activations", help="activations .sto (e.g. from `diffbio so`)")
    p.add_argument("-k", type=int, help="number of synergies (default: by VAF threshold)")
    p.add_argument("--kmax", type=int, default=10, help="largest K of the VAF curve")
    p.add_argument("--threshold", type=float, default=0.9, help="VAF threshold (default 0.9)")
    p.add_argument("--restarts", type=int, default=8)
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=run)


def run(args) -> int:
    from diffbio.io import Storage, read_storage, write_storage
    from diffbio.muscles import choose_synergies, nmf, vaf_curve

    st = read_storage(args.activations)
    data = np.asarray(st.columns(list(st.labels)), dtype=float)
    ok = np.all((data >= 0) & (data <= 1), axis=0) & np.all(np.isfinite(data), axis=0)
    labels = [name for name, k in zip(st.labels, ok) if k]
    left = [name for name, k in zip(st.labels, ok) if not k]
    if len(labels) < 2:
        raise DiffbioError(f"{args.activations}: fewer than two columns with values in [0, 1]")
    if left:
        print(f"note: left out {len(left)} column(s) outside [0, 1]: {', '.join(left)}")
    A = torch.tensor(data[:, ok])
    kmax = min(args.kmax, *A.shape)
    g = torch.Generator().manual_seed(0)
    vafs, fits = vaf_curve(A, kmax, restarts=args.restarts, generator=g)
    k_thr, k_elbow = choose_synergies(vafs, args.threshold)
    print("K    VAF")
    for k, v in enumerate(vafs.tolist(), 1):
        print(f"{k:<4d} {100 * v:6.2f}%")
    print(f"K by VAF >= {100 * args.threshold:.0f}%: {k_thr}; K by elbow: {k_elbow}")
    k = args.k or k_thr
    if not 1 <= k <= min(A.shape):
        raise DiffbioError(f"-k {k}: must lie in 1..{min(A.shape)}")
    fit = fits[k - 1] if k <= kmax else nmf(A, k, restarts=args.restarts, generator=g)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cols = [f"synergy_{s + 1}" for s in range(k)]
    write_storage(
        out / "synergy_activations.sto",
        Storage.from_arrays(st.time, cols, fit.H.numpy(), name="Synergy activations"),
    )
    write_storage(
        out / "synergy_vectors.sto",
        Storage.from_arrays(
            np.arange(len(labels), dtype=float),
            cols,
            fit.W.numpy(),
            name="Synergy vectors (rows: " + " ".join(labels) + ")",
        ),
    )
    write_storage(
        out / "vaf.sto",
        Storage.from_arrays(
            np.arange(1, kmax + 1, dtype=float), ["vaf"], vafs.numpy()[:, None], name="VAF"
        ),
    )
    print(
        f"K = {k}: VAF {100 * float(fit.vaf):.2f}%; wrote {out}/synergy_vectors.sto, "
        "synergy_activations.sto, vaf.sto"
    )
    return 0
