"""Forward kinematics with the tree composition in one NVIDIA Warp kernel.

The joint functions (splines, linear and constant axes) and the scaling of offsets are
evaluated in torch with the reference path's own helpers (:func:`joint_transforms`,
:func:`_scaled_inputs`); one Warp kernel then composes the tree, one thread per sample of
the flattened batch, looping over the joints in parent-before-child order::

    X_G_c = X_G_p * X_pF * X_FM(q) * inv(X_cM)

Body poses are stored with one extra leading slot (index 0 = ground, identity) so that
the kernel needs no branch for ground-parented joints. The kernel is generic over the
scalar type (``float32`` / ``float64`` overloads) and runs on the device of ``q`` (CPU
or CUDA). Its gradient is Warp's adjoint of the same kernel, launched with
``adjoint=True`` on freshly allocated gradient buffers (torch's incoming gradients are
copied in, never aliased).
"""

from __future__ import annotations

from typing import Any

import torch
import warp as wp
from torch import Tensor

from diffbio._errors import DiffbioError
from diffbio._shapes import broadcast_shapes
from diffbio.kinematics._fk import (
    BodyPoses,
    _check_q,
    _check_scales,
    _scaled_inputs,
    joint_transforms,
)
from diffbio.kinematics._tree import kinematic_tree
from diffbio.model import Model

__all__ = ["forward_kinematics_warp"]


@wp.kernel
def _compose_tree(
    parent: wp.array(dtype=int),
    child: wp.array(dtype=int),
    R_pF: wp.array(dtype=Any),
    R_cM: wp.array(dtype=Any),
    R_FM: wp.array2d(dtype=Any),
    p_FM: wp.array2d(dtype=Any),
    t_pF: wp.array2d(dtype=Any),
    t_cM: wp.array2d(dtype=Any),
    R_body: wp.array2d(dtype=Any),
    p_body: wp.array2d(dtype=Any),
    centers: wp.array2d(dtype=Any),
):
    """One thread per sample ``n``: bodies ``1..NB`` of ``R_body/p_body[n]`` (slot 0 is
    ground and preset by the caller) and joint centres ``centers[n, j]``. ``parent`` and
    ``child`` are body slots (body index + 1)."""
    n = wp.tid()
    for j in range(parent.shape[0]):
        pi = parent[j]
        R_Gp = R_body[n, pi]
        p_Gp = p_body[n, pi]
        R_GF = R_Gp @ R_pF[j]
        p_GF = p_Gp + R_Gp @ t_pF[n, j]
        R_GM = R_GF @ R_FM[n, j]
        p_GM = p_GF + R_GF @ p_FM[n, j]
        R_Gc = R_GM @ wp.transpose(R_cM[j])
        p_Gc = p_GM - R_Gc @ t_cM[n, j]
        ci = child[j]
        R_body[n, ci] = R_Gc
        p_body[n, ci] = p_Gc
        centers[n, j] = p_GM


def _overload(mat, vec) -> wp.Kernel:
    arr, arr2 = wp.array, wp.array2d
    types = [arr(dtype=int), arr(dtype=int), arr(dtype=mat), arr(dtype=mat)]
    types += [arr2(dtype=t) for t in (mat, vec, vec, vec, mat, vec, vec)]
    return wp.overload(_compose_tree, types)


# torch dtype -> (Warp matrix type, vector type, concrete kernel); both compiled together
_WP_TYPES = {
    torch.float32: (wp.mat33f, wp.vec3f, _overload(wp.mat33f, wp.vec3f)),
    torch.float64: (wp.mat33d, wp.vec3d, _overload(wp.mat33d, wp.vec3d)),
}


def _wp_types(dtype: torch.dtype):
    try:
        return _WP_TYPES[dtype]
    except KeyError:
        raise DiffbioError(
            f"forward_kinematics_warp supports float32 and float64 q, not {dtype}"
        ) from None


_ARG_NAMES = (
    "parent",
    "child",
    "R_pF",
    "R_cM",
    "R_FM",
    "p_FM",
    "t_pF",
    "t_cM",
    "R_body",
    "p_body",
    "centers",
)


def _desc(t: Tensor, dtype) -> Any:
    """A Warp array descriptor viewing the contiguous tensor ``t`` (no gradient attached)."""
    return wp.from_torch(t, dtype=dtype, requires_grad=False, return_ctype=True)


def _launch(tensors: dict[str, Tensor], grads: dict[str, Tensor] | None, n: int) -> None:
    """Launch the kernel (``grads is None``) or its adjoint on ``n`` samples."""
    wp.init()  # no-op once initialised
    mat, vec, kernel = _wp_types(tensors["R_FM"].dtype)
    kinds = dict(
        zip(
            _ARG_NAMES,
            (wp.int32, wp.int32, mat, mat, mat, vec, vec, vec, mat, vec, vec),
            strict=True,
        )
    )
    names = _ARG_NAMES
    arrays = [_desc(tensors[k], kinds[k]) for k in names]
    device = wp.device_from_torch(tensors["R_FM"].device)
    stream = wp.stream_from_torch(tensors["R_FM"].device) if device.is_cuda else None
    adj = None
    if grads is not None:
        adj = [_desc(grads[k], kinds[k]) if k in grads else None for k in names]
    wp.launch(
        kernel,
        dim=n,
        inputs=arrays[:8],
        outputs=arrays[8:],
        adj_inputs=adj[:8] if adj else [],
        adj_outputs=adj[8:] if adj else [],
        adjoint=grads is not None,
        device=device,
        stream=stream,
        record_tape=False,
    )


class _ComposeTree(torch.autograd.Function):
    """``(R_FM, p_FM, t_pF, t_cM)`` of shapes ``(N, J, 3, 3), (N, J, 3) x 3`` ->
    ``R_GB (N, NB, 3, 3)``, ``p_GB (N, NB, 3)``, ``joint centres (N, J, 3)``."""

    @staticmethod
    def forward(ctx, R_FM, p_FM, t_pF, t_cM, parent, child, R_pF, R_cM, nb):  # noqa: D102
        N, J = R_FM.shape[:2]
        R_body = torch.zeros(N, nb + 1, 3, 3, dtype=R_FM.dtype, device=R_FM.device)
        R_body[:, 0] = torch.eye(3, dtype=R_FM.dtype, device=R_FM.device)
        p_body = torch.zeros(N, nb + 1, 3, dtype=R_FM.dtype, device=R_FM.device)
        centers = torch.zeros(N, J, 3, dtype=R_FM.dtype, device=R_FM.device)
        args = (parent, child, R_pF, R_cM, R_FM, p_FM, t_pF, t_cM, R_body, p_body, centers)
        tensors = dict(zip(_ARG_NAMES, args, strict=True))
        if N > 0:
            _launch(tensors, None, N)
        ctx.save_for_backward(*tensors.values())
        return R_body[:, 1:], p_body[:, 1:], centers

    @staticmethod
    def backward(ctx, gR, gp, gc):  # noqa: D102
        t = dict(zip(_ARG_NAMES, ctx.saved_tensors, strict=True))
        R_FM = t["R_FM"]
        # fresh gradient buffers; torch's incoming gradients are copied in, never aliased
        adj_R = torch.zeros_like(t["R_body"])
        adj_R[:, 1:] = gR
        adj_p = torch.zeros_like(t["p_body"])
        adj_p[:, 1:] = gp
        grads = {
            "R_FM": torch.zeros_like(R_FM),
            "p_FM": torch.zeros_like(t["p_FM"]),
            "t_pF": torch.zeros_like(t["t_pF"]),
            "t_cM": torch.zeros_like(t["t_cM"]),
            "R_body": adj_R,
            "p_body": adj_p,
            "centers": gc.clone(memory_format=torch.contiguous_format),
        }
        if R_FM.shape[0] > 0:
            _launch(t, grads, R_FM.shape[0])
        return (
            grads["R_FM"],
            grads["p_FM"],
            grads["t_pF"],
            grads["t_cM"],
            None,
            None,
            None,
            None,
            None,
        )


def _flat(x: Tensor, lead: torch.Size, tail: tuple[int, ...]) -> Tensor:
    return x.expand(*lead, *tail).reshape(-1, *tail).contiguous()


def forward_kinematics_warp(model: Model, q: Tensor, scales: Tensor | None = None) -> BodyPoses:
    """Body poses from coordinates, the tree composed by a Warp kernel.

    Same contract and result as :func:`~diffbio.kinematics.forward_kinematics`, and
    differentiable with respect to ``q`` and ``scales`` (Warp's adjoint).

    Args:
        model: the model.
        q: ``(..., Q) [rad or m]`` coordinates in ``model.coordinate_names`` order, float32
            or float64, on the CPU or a CUDA device (the kernel runs where ``q`` is).
        scales: optional ``(..., NB, 3)`` segment scale factors (broadcast against ``q``'s
            leading dimensions); ``None`` means the model as loaded.
    Returns:
        :class:`BodyPoses`: ``rotation (..., NB, 3, 3)``, ``translation (..., NB, 3) [m]``,
        ``joint_centers (..., J, 3) [m]``.
    """
    _check_q(model, q)
    _wp_types(q.dtype)
    if scales is not None:
        _check_scales(model, scales)
        scales = scales.to(q.dtype)
    tree = kinematic_tree(model, q.dtype, q.device)
    R_FM, tvals = joint_transforms(tree, q)
    t_pF, t_cM, p_FM = _scaled_inputs(tree, tvals, scales)
    lead = broadcast_shapes(q.shape[:-1], p_FM.shape[:-2], t_pF.shape[:-2])
    J, nb = tree.parent.shape[0], model.num_bodies
    slots = _slots(model, tree)
    R_GB, p_GB, centers = _ComposeTree.apply(
        _flat(R_FM, lead, (J, 3, 3)),
        _flat(p_FM, lead, (J, 3)),
        _flat(t_pF, lead, (J, 3)),
        _flat(t_cM, lead, (J, 3)),
        slots[0],
        slots[1],
        tree.R_pF.contiguous(),
        tree.R_cM.contiguous(),
        nb,
    )
    return BodyPoses(
        R_GB.reshape(*lead, nb, 3, 3),
        p_GB.reshape(*lead, nb, 3),
        centers.reshape(*lead, J, 3),
    )


def _slots(model: Model, tree) -> tuple[Tensor, Tensor]:
    """Parent and child body slots (body index + 1, ground = 0) as int32, cached."""
    key = ("warp_fk_slots", tree.parent.device)
    cached = model._cache.get(key)
    if cached is None:
        cached = (
            (tree.parent + 1).to(torch.int32).contiguous(),
            (tree.child + 1).to(torch.int32).contiguous(),
        )
        model._cache[key] = cached
    return cached
