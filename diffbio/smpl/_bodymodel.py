"""SMPL / SMPL-X body models through smplx's own loader, evaluated in batches.

The model files (``SMPL_*.pkl``, ``SMPLX_*.npz`` or ``.pkl``) are licensed by the
Max Planck Institute and are not shipped: the user points :func:`load_body_model` at their
copy. Loading goes through ``smplx.SMPL`` / ``smplx.SMPLX`` (for an SMPL ``.npz``, smplx's
documented ``data_struct`` argument), so the arrays read are exactly smplx's: ``v_template,
shapedirs, posedirs, J_regressor, weights, kintree_table, f`` and, for SMPL-X, also
``hands_componentsl/r, hands_meanl/r, lmk_faces_idx, lmk_bary_coords``.
"""

from __future__ import annotations

import contextlib
import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from diffbio._errors import DiffbioError, FileFormatError, ShapeError

__all__ = [
    "BodyModel",
    "BodyModelOutput",
    "body_joint_names",
    "body_model_vertices",
    "load_body_model",
]

_REQUIRED = {
    "smpl": ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f"),
    "smplx": (
        "v_template",
        "shapedirs",
        "posedirs",
        "J_regressor",
        "weights",
        "kintree_table",
        "f",
        "hands_componentsl",
        "hands_componentsr",
        "hands_meanl",
        "hands_meanr",
        "lmk_faces_idx",
        "lmk_bary_coords",
    ),
}
_BODY = (
    "pelvis left_hip right_hip spine1 left_knee right_knee spine2 left_ankle right_ankle "
    "spine3 left_foot right_foot neck left_collar right_collar head left_shoulder "
    "right_shoulder left_elbow right_elbow left_wrist right_wrist"
).split()
_FINGERS = [f"{f}{i}" for f in ("index", "middle", "pinky", "ring", "thumb") for i in (1, 2, 3)]
_EXTRA = (
    "nose right_eye left_eye right_ear left_ear left_big_toe left_small_toe left_heel "
    "right_big_toe right_small_toe right_heel"
).split()
_TIPS = [
    f"{s}_{f}" for s in ("left", "right") for f in ("thumb", "index", "middle", "ring", "pinky")
]


def body_joint_names(kind: str) -> tuple[str, ...]:
    """Names of the joints smplx returns for ``kind`` (``'smpl'``: 24 skeleton joints, then
    5 face, 6 foot and 10 fingertip vertices; ``'smplx'``: 55 skeleton joints and the same
    21 vertex joints; smplx then appends SMPL-X's face landmarks, see
    :attr:`BodyModel.joint_names`)."""
    if kind == "smpl":
        return (*_BODY, "left_hand", "right_hand", *_EXTRA, *_TIPS)
    if kind == "smplx":
        hands = [f"{s}_{f}" for s in ("left", "right") for f in _FINGERS]
        return (*_BODY, "jaw", "left_eye_smplhf", "right_eye_smplhf", *hands, *_EXTRA, *_TIPS)
    raise DiffbioError(f"unknown body model kind {kind!r} (expected 'smpl' or 'smplx')")


@dataclass(frozen=True, eq=False)
class BodyModel:
    """A loaded SMPL or SMPL-X model: ``module`` is the smplx ``nn.Module`` (its buffers
    in ``dtype``), ``kind`` ``'smpl'`` or ``'smplx'``, ``num_vertices`` V, ``num_betas``,
    ``num_body_pose`` the length of ``body_pose`` (69 SMPL, 63 SMPL-X) and ``path``."""

    module: torch.nn.Module
    kind: str
    path: Path
    num_vertices: int
    num_betas: int
    num_body_pose: int

    @property
    def joint_names(self) -> tuple[str, ...]:
        """Names of the joints of :attr:`BodyModelOutput.joints` (SMPL-X's face landmarks
        as ``landmark_<i>``)."""
        names = body_joint_names(self.kind)
        if self.kind == "smplx":
            names += tuple(f"landmark_{i}" for i in range(len(self.module.lmk_faces_idx)))
        return names


@dataclass(frozen=True)
class BodyModelOutput:
    """``vertices: (..., V, 3) [m]`` and smplx's ``joints: (..., J, 3) [m]`` in the body
    model's world frame (``transl`` applied)."""

    vertices: Tensor
    joints: Tensor


def load_body_model(
    path: str | Path,
    kind: str | None = None,
    *,
    gender: str = "neutral",
    num_betas: int = 10,
    dtype: torch.dtype = torch.float64,
) -> BodyModel:
    """Load an SMPL or SMPL-X model file through smplx.

    Args:
        path: the model file (SMPL ``.pkl`` or ``.npz``; SMPL-X ``.npz`` or ``.pkl``).
        kind: ``'smpl'`` or ``'smplx'``; None guesses from the file name (``SMPLX_*`` is
            SMPL-X, anything else SMPL).
        gender: recorded by smplx (the file itself fixes the body).
        num_betas: shape coefficients to use (smplx caps it at what the file holds).
        dtype: dtype of the model's buffers and of everything it returns.
    Raises:
        FileNotFoundError: no such file.
        FileFormatError: the file is not a body model smplx can read (names the missing
            array).
    """
    import smplx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"body model file not found: {path}")
    if kind is None:
        kind = "smplx" if path.name.lower().startswith("smplx") else "smpl"
    if kind not in _REQUIRED:
        raise DiffbioError(f"unknown body model kind {kind!r} (expected 'smpl' or 'smplx')")
    ext = path.suffix.lower().lstrip(".")
    if ext not in ("pkl", "npz"):
        raise FileFormatError(path, f"expected a .pkl or .npz body model file, got .{ext}")
    keys = _array_names(path, ext)
    missing = [k for k in _REQUIRED[kind] if k not in keys]
    if missing:
        raise FileFormatError(path, f"not an {kind.upper()} model file: missing arrays {missing}")
    quiet = io.StringIO()  # smplx prints a warning for files with 10 shape components
    try:
        with contextlib.redirect_stdout(quiet):
            if kind == "smplx":
                module = smplx.SMPLX(
                    str(path), ext=ext, gender=gender, num_betas=num_betas, dtype=dtype,
                    use_pca=False, flat_hand_mean=True,
                )  # fmt: skip
            elif ext == "pkl":
                module = smplx.SMPL(str(path), gender=gender, num_betas=num_betas, dtype=dtype)
            else:
                data = smplx.utils.Struct(**dict(np.load(path, allow_pickle=True)))
                module = smplx.SMPL(
                    str(path), data_struct=data, gender=gender, num_betas=num_betas, dtype=dtype
                )
    except (ValueError, IndexError, RuntimeError, AttributeError) as exc:
        raise FileFormatError(path, f"smplx cannot build an {kind.upper()} model: {exc}") from exc
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return BodyModel(
        module=module,
        kind=kind,
        path=path,
        num_vertices=int(module.v_template.shape[0]),
        num_betas=int(module.num_betas),
        num_body_pose=int(module.NUM_BODY_JOINTS * 3),
    )


def _array_names(path: Path, ext: str) -> set[str]:
    try:
        if ext == "npz":
            with np.load(path, allow_pickle=True) as data:
                return set(data.files)
        with open(path, "rb") as fh:
            data = pickle.load(fh, encoding="latin1")
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a format error
        raise FileFormatError(path, f"cannot read body model file: {exc}") from exc
    if not isinstance(data, dict):
        raise FileFormatError(path, "a body model .pkl must hold a dict of arrays")
    return set(data)


def body_model_vertices(
    body: BodyModel,
    betas: Tensor,
    body_pose: Tensor,
    global_orient: Tensor,
    transl: Tensor | None = None,
    *,
    chunk: int = 64,
    progress=None,
    **extra: Tensor,
) -> BodyModelOutput:
    """Posed vertices and joints of a body model (differentiable w.r.t. every parameter).

    Args:
        body: from :func:`load_body_model`.
        betas: ``(..., num_betas)`` shape coefficients; may omit the last leading dimension
            of the pose (one shape per sequence broadcasts over its frames).
        body_pose: ``(..., P) [rad]`` axis-angle of the body joints relative to their
            parents (P = 69 SMPL, 63 SMPL-X), or ``(..., P/3, 3)``.
        global_orient: ``(..., 3) [rad]`` axis-angle of the root.
        transl: ``(..., 3) [m]`` root translation; None is zero.
        chunk: frames evaluated at once (bounds memory: smplx builds a 4x4 matrix per
            vertex and frame).
        progress: optional callable ``progress(n)`` told after each chunk of ``n`` frames.
        extra: SMPL-X only: ``jaw_pose, leye_pose, reye_pose (..., 3)``,
            ``left_hand_pose, right_hand_pose (..., 45)`` [rad] (flat-hand mean) and
            ``expression (..., E)``; missing ones are zero.
    Returns:
        :class:`BodyModelOutput` with leading dimensions ``...``.
    """
    m = body.module
    dt = m.v_template.dtype
    P = body.num_body_pose
    if body_pose.shape[-2:] == (P // 3, 3):
        body_pose = body_pose.flatten(-2)
    if body_pose.shape[-1] != P:
        raise ShapeError(
            f"body_pose must be (..., {P}) for {body.kind}, got {tuple(body_pose.shape)}"
        )
    lead = body_pose.shape[:-1]
    if global_orient.shape != (*lead, 3):
        raise ShapeError(f"global_orient must be {(*lead, 3)}, got {tuple(global_orient.shape)}")
    if transl is None:
        transl = torch.zeros(*lead, 3, dtype=dt)
    if transl.shape != (*lead, 3):
        raise ShapeError(f"transl must be {(*lead, 3)}, got {tuple(transl.shape)}")
    nb = betas.shape[-1]
    if nb > body.num_betas:
        betas = betas[..., : body.num_betas]
    elif nb < body.num_betas:
        betas = torch.cat([betas, betas.new_zeros(*betas.shape[:-1], body.num_betas - nb)], -1)
    if betas.dim() == len(lead):  # one shape per sequence
        betas = betas.unsqueeze(-2)
    betas = betas.expand(*lead, body.num_betas)
    sizes = {"jaw_pose": 3, "leye_pose": 3, "reye_pose": 3, "left_hand_pose": 45}
    sizes |= {"right_hand_pose": 45, "expression": getattr(m, "num_expression_coeffs", 0)}
    unknown = set(extra) - (set(sizes) if body.kind == "smplx" else set())
    if unknown:
        raise DiffbioError(f"unknown {body.kind} parameters: {sorted(unknown)}")
    n = int(np.prod(lead)) if lead else 1
    flat = {
        "betas": betas.reshape(n, -1),
        "body_pose": body_pose.reshape(n, P),
        "global_orient": global_orient.reshape(n, 3),
        "transl": transl.reshape(n, 3),
    }
    if body.kind == "smplx":
        for k, d in sizes.items():
            v = extra.get(k)
            flat[k] = v.reshape(n, d) if v is not None else torch.zeros(n, d, dtype=dt)
    verts, joints = [], []
    for s in range(0, n, chunk):
        args = {k: v[s : s + chunk].to(dt) for k, v in flat.items()}
        m.batch_size = args["betas"].shape[0]  # smplx sizes its landmark buffers by this
        out = m(**args, return_verts=True)
        verts.append(out.vertices)
        joints.append(out.joints)
        if progress is not None:
            progress(args["betas"].shape[0])
    V = torch.cat(verts).reshape(*lead, body.num_vertices, 3)
    J = torch.cat(joints)
    return BodyModelOutput(vertices=V, joints=J.reshape(*lead, J.shape[-2], 3))
