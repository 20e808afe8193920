"""Batched QP data with bounds split into finite values and masks, plus shared products."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class QPData:
    """One batch of problems, every tensor with leading dimension B.

    P: (B, n, n) dense, or (B, n) diagonal (``diag`` True). q: (B, n). A: (B, m, n).
    b: (B, m). l0, u0: (B, n) bounds with infinite entries replaced by 0; fl, fu: (B, n)
    1.0 where the bound is finite, else 0.0. G: (B, p, n). h: (B, p).

    ``vec``: where set, one (B, k) tensor whose column blocks the vector fields (and a
    diagonal P) are views of, so that :meth:`select` indexes it once for all of them.
    """

    P: torch.Tensor
    q: torch.Tensor
    A: torch.Tensor
    b: torch.Tensor
    l0: torch.Tensor
    u0: torch.Tensor
    fl: torch.Tensor
    fu: torch.Tensor
    G: torch.Tensor
    h: torch.Tensor
    vec: torch.Tensor | None = None

    @staticmethod
    def build(P, q, A, b, l, u, G, h) -> QPData:
        has = torch.isfinite(torch.cat([l, u], -1))
        lu0 = torch.where(has, torch.cat([l, u], -1), 0.0)
        parts = [q, lu0, has.to(q.dtype), b, h] + ([P] if P.dim() == 2 else [])
        return QPData._packed(torch.cat(parts, -1), P, A, G)

    @staticmethod
    def _packed(vec: torch.Tensor, P: torch.Tensor, A: torch.Tensor, G: torch.Tensor) -> QPData:
        n, m, p = A.shape[-1], A.shape[-2], G.shape[-2]
        o = 5 * n + m + p
        return QPData(
            P=vec[:, o:] if P.dim() == 2 else P,
            q=vec[:, :n],
            A=A,
            b=vec[:, 5 * n : 5 * n + m],
            l0=vec[:, n : 2 * n],
            u0=vec[:, 2 * n : 3 * n],
            fl=vec[:, 3 * n : 4 * n],
            fu=vec[:, 4 * n : 5 * n],
            G=G,
            h=vec[:, 5 * n + m : o],
            vec=vec,
        )

    @property
    def diag(self) -> bool:
        return self.P.dim() == 2

    @property
    def m(self) -> int:
        return self.A.shape[1]

    @property
    def p(self) -> int:
        return self.G.shape[1]

    def select(self, idx: torch.Tensor) -> QPData:
        """The sub-batch ``idx`` (a bool mask or an index tensor)."""
        if self.vec is not None:
            P = self.P if self.diag else self.P[idx]
            return QPData._packed(self.vec[idx], P, self.A[idx], self.G[idx])
        return QPData(*(getattr(self, f)[idx] for f in _FIELDS))

    def Pmv(self, v: torch.Tensor) -> torch.Tensor:
        """P v for v: (B, n)."""
        if self.diag:
            return self.P * v
        return (self.P @ v.unsqueeze(-1)).squeeze(-1)

    def Amv(self, v: torch.Tensor) -> torch.Tensor:
        return (self.A @ v.unsqueeze(-1)).squeeze(-1)

    def Atv(self, y: torch.Tensor) -> torch.Tensor:
        return (y.unsqueeze(-2) @ self.A).squeeze(-2)

    def Gmv(self, v: torch.Tensor) -> torch.Tensor:
        if self.G.shape[-2] == 0:
            return v.new_zeros(*v.shape[:-1], 0)
        return (self.G @ v.unsqueeze(-1)).squeeze(-1)

    def Gtv(self, z: torch.Tensor) -> torch.Tensor:
        if self.G.shape[-2] == 0:
            return z.new_zeros(*z.shape[:-1], self.G.shape[-1])
        return (z.unsqueeze(-2) @ self.G).squeeze(-2)

    def dense_P(self) -> torch.Tensor:
        return torch.diag_embed(self.P) if self.diag else self.P


_FIELDS = ("P", "q", "A", "b", "l0", "u0", "fl", "fu", "G", "h")


def inf_norm(v: torch.Tensor) -> torch.Tensor:
    """(B,) max-abs over the last dimension (0 for an empty dimension)."""
    if v.shape[-1] == 0:
        return v.new_zeros(v.shape[:-1])
    return v.abs().amax(-1)
