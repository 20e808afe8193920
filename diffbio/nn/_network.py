"""The biomechanics-aware video-to-kinematics network.

A frame feature encoder (per-view features of one frame to one compact frame feature) and a
spatio-temporal refinement module, a transformer U-Net over time (levels at full, half and
quarter frame rate; by default [2, 4, 6] transformer blocks, [1, 2, 4] heads and
[48, 96, 384] channels, after the reference design), with heads for per-frame coordinates
and per-sequence segment scales. ``NetConfig(sequence=False)`` is the frame-based ablation:
no temporal mixing at all.

Outputs: rotational coordinates of *free* joints (by default the pelvis orientation) as
unnormalised (cos, sin) pairs, all other coordinates as values denormalised by buffers set
from the training labels (:meth:`KinematicsNet.set_normalization`), and scales as ``1 +``
a bounded offset.

The free (cos, sin) pairs are offsets from the labels' circular mean direction (a buffer set
with the normalisation) and their output weights start ten times smaller than the others, so
an untrained network predicts the root orientation near the labels' mean, on the labels'
Euler branch. Without this, a random initial pelvis list beyond +-90 deg lands the root on
the other, equivalent triple (a + 180, 180 - b, c + 180) deg, where the branch-invariant
keypoint loss holds it: a local minimum the small angle terms cannot leave (seed 1 of the
CPU studies: half the frames flipped, 80 deg root error).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from diffbio._errors import ShapeError

__all__ = ["KinematicsNet", "NetConfig", "Prediction"]


@dataclass(frozen=True)
class NetConfig:
    """Network size. ``feature_dim`` F per frame; ``num_coordinates`` Q; ``num_bodies`` NB;
    ``free``: indices of free rotational coordinates (unit-circle outputs); ``channels``,
    ``depths``, ``heads``: per U-Net level; ``frame_hidden``: encoder width; ``sequence``:
    temporal refinement on (sequence-based) or off (frame-based); ``dropout``."""

    feature_dim: int
    num_coordinates: int
    num_bodies: int
    free: tuple[int, ...] = (0, 1, 2)
    channels: tuple[int, int, int] = (48, 96, 384)
    depths: tuple[int, int, int] = (2, 4, 6)
    heads: tuple[int, int, int] = (1, 2, 4)
    frame_hidden: int = 256
    seq_len: int = 64
    sequence: bool = True
    dropout: float = 0.1

    @staticmethod
    def full(feature_dim: int, num_coordinates: int, num_bodies: int, **kw) -> NetConfig:
        """The reference size (for a GPU)."""
        return NetConfig(feature_dim, num_coordinates, num_bodies, **kw)

    @staticmethod
    def small(feature_dim: int, num_coordinates: int, num_bodies: int, **kw) -> NetConfig:
        """A CPU size: [1, 1, 2] blocks, [1, 2, 4] heads, [24, 48, 96] channels."""
        base = dict(
            channels=(24, 48, 96), depths=(1, 1, 2), heads=(1, 2, 4), frame_hidden=128, dropout=0.05
        )
        base.update(kw)
        return NetConfig(feature_dim, num_coordinates, num_bodies, **base)


@dataclass(frozen=True)
class Prediction:
    """Network output: ``q: (B, T, Q) [rad or m]`` (free coordinates from ``atan2``);
    ``free_vec: (B, T, nfree, 2)`` unnormalised (cos, sin) of the free coordinates (the
    network's offsets plus the labels' mean direction);
    ``scales: (B, NB, 3)`` segment scales."""

    q: Tensor
    free_vec: Tensor
    scales: Tensor


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(
            dim, heads, 2 * dim, dropout, activation="gelu", batch_first=True, norm_first=True
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)


class _Level(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, dropout: float, max_len: int) -> None:
        super().__init__()
        self.pos = nn.Parameter(torch.zeros(1, max_len, dim))
        nn.init.normal_(self.pos, std=0.02)
        self.blocks = nn.Sequential(*[_Block(dim, heads, dropout) for _ in range(depth)])

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] > self.pos.shape[1]:
            raise ShapeError(f"sequence of {x.shape[1]} steps is longer than {self.pos.shape[1]}")
        return self.blocks(x + self.pos[:, : x.shape[1]])


class KinematicsNet(nn.Module):
    """Frame encoder + temporal transformer U-Net + coordinate and scale heads.

    ``forward(features: (B, T, F)) -> Prediction``; T must be divisible by 4 in the
    sequence-based mode.
    """

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        self.config = config
        c0, c1, c2 = config.channels
        F, Q, NB = config.feature_dim, config.num_coordinates, config.num_bodies
        h = config.frame_hidden
        self.encoder = nn.Sequential(
            nn.Linear(F, h),
            nn.GELU(),
            nn.LayerNorm(h),
            nn.Dropout(config.dropout),
            nn.Linear(h, c0),
        )
        L = config.seq_len
        if config.sequence:
            self.level0 = _Level(c0, config.depths[0], config.heads[0], config.dropout, L)
            self.down1 = nn.Linear(2 * c0, c1)
            self.level1 = _Level(c1, config.depths[1], config.heads[1], config.dropout, L // 2)
            self.down2 = nn.Linear(2 * c1, c2)
            self.level2 = _Level(c2, config.depths[2], config.heads[2], config.dropout, L // 4)
            self.up2 = nn.Linear(c2, 2 * c1)
            self.fuse1 = nn.Sequential(nn.LayerNorm(c1), nn.Linear(c1, c1), nn.GELU())
            self.up1 = nn.Linear(c1, 2 * c0)
            self.fuse0 = nn.Sequential(nn.LayerNorm(c0), nn.Linear(c0, c0), nn.GELU())
        else:
            self.frame_mlp = nn.Sequential(
                nn.LayerNorm(c0), nn.Linear(c0, 2 * c0), nn.GELU(), nn.Linear(2 * c0, c0)
            )
        free = torch.tensor(config.free, dtype=torch.long)
        other = torch.tensor([k for k in range(Q) if k not in config.free], dtype=torch.long)
        self.register_buffer("free_idx", free)
        self.register_buffer("other_idx", other)
        self.q_head = nn.Sequential(nn.LayerNorm(c0), nn.Linear(c0, len(other) + 2 * len(free)))
        with torch.no_grad():
            self.q_head[-1].weight[: 2 * len(free)] *= 0.1
            self.q_head[-1].bias[: 2 * len(free)] *= 0.1
        self.scale_head = nn.Sequential(
            nn.LayerNorm(c0), nn.Linear(c0, c0), nn.GELU(), nn.Linear(c0, NB * 3)
        )
        self.register_buffer("feat_mean", torch.zeros(F))
        self.register_buffer("feat_std", torch.ones(F))
        self.register_buffer("q_mean", torch.zeros(len(other)))
        self.register_buffer("q_std", torch.ones(len(other)))
        self.register_buffer("free_mean", torch.tensor([[1.0, 0.0]]).repeat(len(free), 1))

    def set_normalization(self, features: Tensor, q: Tensor) -> None:
        """Set the input and output normalisation from training data ``features (N, T, F)``
        and labels ``q (N, T, Q)``: feature and coordinate means and standard deviations, and
        the free coordinates' circular mean direction (unit (cos, sin), ``(nfree, 2)``)."""
        f = features.reshape(-1, features.shape[-1]).float()
        self.feat_mean.copy_(f.mean(0))
        self.feat_std.copy_(f.std(0).clamp_min(1e-3))
        qo = q.reshape(-1, q.shape[-1])[:, self.other_idx].float()
        self.q_mean.copy_(qo.mean(0))
        self.q_std.copy_(qo.std(0).clamp_min(1e-3))
        qf = q.reshape(-1, q.shape[-1])[:, self.free_idx].double()
        mean = torch.stack([qf.cos().mean(0), qf.sin().mean(0)], -1)
        mean = mean / mean.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        self.free_mean.copy_(
            torch.where(
                mean.norm(dim=-1, keepdim=True) > 0.5, mean, 0 * mean + mean.new_tensor([1.0, 0.0])
            )
        )

    def forward(self, features: Tensor) -> Prediction:
        if features.dim() != 3 or features.shape[-1] != self.config.feature_dim:
            raise ShapeError(
                f"features must have shape (B, T, F) with F = {self.config.feature_dim}; got {tuple(features.shape)}"
            )
        B, T, _ = features.shape
        x = self.encoder((features - self.feat_mean) / self.feat_std)
        if self.config.sequence:
            if T % 4:
                raise ShapeError(f"sequence length T = {T} must be divisible by 4")
            x0 = self.level0(x)
            x1 = self.level1(self.down1(x0.reshape(B, T // 2, -1)))
            x2 = self.level2(self.down2(x1.reshape(B, T // 4, -1)))
            y1 = x1 + self.fuse1(x1 + self.up2(x2).reshape(B, T // 2, -1))
            x = x0 + self.fuse0(x0 + self.up1(y1).reshape(B, T, -1))
        else:
            x = x + self.frame_mlp(x)
        out = self.q_head(x)
        nfree = self.free_idx.numel()
        free_vec = out[..., : 2 * nfree].reshape(B, T, nfree, 2) + self.free_mean
        other = out[..., 2 * nfree :] * self.q_std + self.q_mean
        q = torch.zeros(B, T, self.config.num_coordinates, dtype=out.dtype, device=out.device)
        q = q.index_copy(-1, self.other_idx, other)
        q = q.index_copy(-1, self.free_idx, torch.atan2(free_vec[..., 1], free_vec[..., 0]))
        s = self.scale_head(x.mean(1)).reshape(B, self.config.num_bodies, 3)
        return Prediction(q=q, free_vec=free_vec, scales=1.0 + 0.3 * torch.tanh(s))
