"""A learned, sparse vertex-to-keypoint regressor (the kind of matrix SMPL's J_regressor is).

Each keypoint is a convex combination of a few mesh vertices: ``x_k = sum_v W_kv p_v`` with
``W >= 0`` and ``sum_v W_kv = 1``, so the regressor commutes with any rigid motion of the
mesh (it is fitted once in any world frame and applies in every other). The weights are
fitted from paired data, mesh vertices ``(F, V, 3)`` and keypoints ``(F, K, 3)``, by
non-negative least squares on the probability simplex, per keypoint::

    min_w  sum_f |sum_i w_i (p_fi - x_fk)|^2 + ridge * |w|^2    s.t.  w >= 0,  1'w = 1

over the ``candidates`` vertices nearest the keypoint (mean distance over the data), solved
for all keypoints at once with :func:`diffbio.solvers.solve_qp`; weights below ``prune``
times a row's largest are dropped and the problem re-solved on the kept vertices.

What a user must supply for a real SMPL/SMPL-X model: paired frames in which the same body
is described both by the mesh and by this project's keypoints, e.g. renders or fits of
synthetic subjects, or motion capture with a registered mesh. Validated only on the
generated fixture model of the tests (where the pairing is exact by construction).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from diffbio._errors import DiffbioError, FileFormatError, ShapeError

__all__ = ["JointRegressor", "apply_regressor", "fit_joint_regressor"]


def apply_regressor(vertices: Tensor, index: Tensor, weights: Tensor) -> Tensor:
    """Keypoints ``(..., K, 3) [m]`` from ``vertices: (..., V, 3) [m]``, a sparse regressor
    given as ``index: (K, N)`` vertex indices and ``weights: (K, N)`` (differentiable
    w.r.t. ``vertices`` and ``weights``)."""
    if vertices.shape[-1] != 3:
        raise ShapeError(f"vertices must be (..., V, 3), got {tuple(vertices.shape)}")
    gathered = vertices[..., index, :]  # (..., K, N, 3)
    return (gathered * weights.to(vertices.dtype).unsqueeze(-1)).sum(-2)


@dataclass(frozen=True, eq=False)
class JointRegressor:
    """A sparse regressor: keypoint ``k`` is ``sum_n weights[k, n] * vertices[index[k, n]]``.

    ``names``: the K keypoint names; ``index: (K, N)`` long, ``weights: (K, N)`` (padding
    entries have weight 0); ``num_vertices``: V of the body model it was fitted for;
    ``kind``: ``'smpl'`` or ``'smplx'`` (informative)."""

    names: tuple[str, ...]
    index: Tensor
    weights: Tensor
    num_vertices: int
    kind: str = ""

    def __call__(self, vertices: Tensor) -> Tensor:
        """Keypoints ``(..., K, 3) [m]`` from ``vertices: (..., V, 3) [m]``."""
        if vertices.shape[-2] != self.num_vertices:
            raise ShapeError(
                f"the regressor was fitted for V = {self.num_vertices} vertices; got "
                f"{tuple(vertices.shape)}"
            )
        return apply_regressor(vertices, self.index.to(vertices.device), self.weights)

    def dense(self) -> Tensor:
        """The ``(K, V)`` weight matrix."""
        W = torch.zeros(len(self.names), self.num_vertices, dtype=self.weights.dtype)
        return W.scatter_add_(1, self.index, self.weights)

    def save(self, path: str | Path) -> Path:
        """Write an ``.npz`` with ``names, index, weights, num_vertices, kind``."""
        path = Path(path)
        np.savez(
            path,
            names=np.array(self.names),
            index=self.index.cpu().numpy().astype(np.int64),
            weights=self.weights.detach().cpu().numpy().astype(np.float64),
            num_vertices=np.array(self.num_vertices),
            kind=np.array(self.kind),
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> JointRegressor:
        """Read a regressor written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"regressor file not found: {path}")
        try:
            data = np.load(path, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001
            raise FileFormatError(path, f"not an .npz file: {exc}") from exc
        with data:
            missing = [k for k in ("names", "index", "weights", "num_vertices") if k not in data]
            if missing:
                raise FileFormatError(path, f"not a joint regressor: missing arrays {missing}")
            names = tuple(str(n) for n in data["names"])
            index = torch.from_numpy(data["index"].astype(np.int64))
            weights = torch.from_numpy(data["weights"].astype(np.float64))
            nv = int(data["num_vertices"])
            kind = str(data["kind"]) if "kind" in data else ""
        if index.shape != weights.shape or index.shape[0] != len(names):
            raise FileFormatError(path, "index and weights must both be (K, N) with K names")
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= nv):
            raise FileFormatError(path, f"vertex index out of range 0..{nv - 1}")
        return cls(names=names, index=index, weights=weights, num_vertices=nv, kind=kind)


def fit_joint_regressor(
    vertices: Tensor,
    keypoints: Tensor,
    names: tuple[str, ...] | list[str],
    *,
    candidates: int = 48,
    ridge: float = 1e-8,
    prune: float = 1e-2,
    kind: str = "",
) -> JointRegressor:
    """Fit a :class:`JointRegressor` from paired data.

    Args:
        vertices: ``(F, V, 3) [m]`` mesh vertices of F frames (any subjects and poses).
        keypoints: ``(F, K, 3) [m]`` the keypoints of the same frames, same world frame.
        names: the K keypoint names.
        candidates: vertices considered per keypoint (the nearest on average).
        ridge: Tikhonov weight, relative to the mean diagonal of each keypoint's normal
            matrix (it makes the problem strictly convex when frames do not pin it down).
        prune: weights below ``prune`` times the row's largest are set to zero (and the
            rest re-fitted); larger values give sparser rows.
        kind: recorded with the regressor.
    Returns:
        the fitted regressor (weights float64, rows non-negative and summing to one).
    """
    from diffbio.solvers import QPOptions, solve_qp

    if vertices.dim() != 3 or vertices.shape[-1] != 3:
        raise ShapeError(f"vertices must be (F, V, 3), got {tuple(vertices.shape)}")
    F, V = vertices.shape[:2]
    if keypoints.shape != (F, len(names), 3):
        raise ShapeError(
            f"keypoints must be (F={F}, K={len(names)}, 3), got {tuple(keypoints.shape)}"
        )
    if torch.isnan(vertices).any() or torch.isnan(keypoints).any():
        raise DiffbioError("paired data for the regressor must not contain NaN")
    verts = vertices.detach().to(torch.float64)
    kps = keypoints.detach().to(torch.float64)
    n = min(candidates, V)
    mean_dist = torch.stack(
        [(verts - kps[:, k : k + 1]).norm(dim=-1).mean(0) for k in range(kps.shape[1])]
    )  # (K, V)
    cand = mean_dist.topk(n, dim=-1, largest=False).indices  # (K, n)
    # Residual per keypoint is sum_i w_i (p_i - x) (valid because 1'w = 1).
    B = verts[:, cand, :] - kps.unsqueeze(-2)  # (F, K, n, 3)
    B = B.permute(1, 0, 3, 2).reshape(kps.shape[1], F * 3, n)  # (K, 3F, n)
    H = B.transpose(-1, -2) @ B
    scale = torch.diagonal(H, dim1=-2, dim2=-1).mean(-1).clamp_min(1e-30)
    H = H + (ridge * scale)[:, None, None] * torch.eye(n, dtype=H.dtype)
    H = H / scale[:, None, None]  # same minimiser, better conditioned
    zeros = torch.zeros(kps.shape[1], n, dtype=H.dtype)
    ones = (torch.ones(1, n, dtype=H.dtype), torch.ones(1, dtype=H.dtype))
    opts = QPOptions(max_iter=200)
    w = solve_qp(H, zeros, *ones, l=torch.zeros(n, dtype=H.dtype), options=opts).x
    if torch.isnan(w).any():
        raise DiffbioError("the regressor fit did not converge (QP not solved)")
    # Sparsify: drop small weights, then re-solve on the kept support (no renormalisation
    # error), as a non-negative least-squares active set would.
    support = w >= prune * w.amax(-1, keepdim=True)
    upper = torch.where(support, torch.full_like(w, torch.inf), torch.zeros_like(w))
    w = solve_qp(H, zeros, *ones, l=torch.zeros(n, dtype=H.dtype), u=upper, options=opts).x
    if torch.isnan(w).any():
        raise DiffbioError("the regressor fit did not converge (QP not solved)")
    w = torch.where(support, w.clamp_min(0.0), torch.zeros_like(w))
    w = w / w.sum(-1, keepdim=True)
    keep = int((w > 0).sum(-1).max())
    order = w.argsort(-1, descending=True)[:, :keep]
    return JointRegressor(
        names=tuple(names),
        index=cand.gather(1, order),
        weights=w.gather(1, order),
        num_vertices=V,
        kind=kind,
    )
