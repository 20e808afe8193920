"""``diffbio smpl-fit PARAMS.npz --body-model FILE [--regressor REG.npz] --out DIR``.

Reads a sequence of SMPL(-X) parameters (``betas (B,) or (T, B)``, ``body_pose (T, P)``,
``global_orient (T, 3)``, ``transl (T, 3)``; SMPL-X also ``jaw_pose``, ``leye_pose``,
``reye_pose``, ``left_hand_pose``, ``right_hand_pose``, ``expression`` where present),
poses the body model, regresses this project's keypoints (a learned regressor, or smplx's
joints mapped by :data:`diffbio.smpl.SMPL_JOINT_KEYPOINTS`), fits the default model's
coordinates and segment scales, and writes ``<stem>.mot`` (OpenSim coordinate columns,
degrees), ``<stem>_scales.xml`` (an OpenSim ScaleSet) and ``<stem>_keypoints.trc``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from diffbio._errors import DiffbioError, FileFormatError

_PARAMS = ("betas", "body_pose", "global_orient", "transl")
_SMPLX_EXTRA = (
    "jaw_pose",
    "leye_pose",
    "reye_pose",
    "left_hand_pose",
    "right_hand_pose",
    "expression",
)


def register(sub) -> None:
    p = sub.add_parser(
        "smpl-fit", help="model kinematics and scales from an SMPL / SMPL-X sequence"
    )
    p.add_argument("params", help="SMPL(-X) parameters (.npz: betas, body_pose, ...)")
    p.add_argument("--body-model", required=True, help="SMPL .pkl/.npz or SMPL-X .npz file")
    p.add_argument("--kind", choices=("smpl", "smplx"), help="default: from the file name")
    p.add_argument("--gender", default="neutral")
    p.add_argument("--regressor", help="a JointRegressor .npz (default: smplx joints)")
    p.add_argument("--frame-rate", type=float, help="[Hz]; default: the file's, else 30")
    p.add_argument("--height", type=float, default=1.75, help="default model height [m]")
    p.add_argument("--mass", type=float, default=75.0, help="default model mass [kg]")
    p.add_argument("--no-scale", action="store_true", help="coordinates only, unit scales")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=run)


def _read_params(path: Path, extra_names) -> tuple[dict[str, np.ndarray], float | None]:
    if not path.is_file():
        raise FileNotFoundError(f"parameter file not found: {path}")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a format error
        raise FileFormatError(path, f"not an .npz file: {exc}") from exc
    with data:
        missing = [k for k in _PARAMS if k not in data.files]
        if missing:
            raise FileFormatError(
                path, f"missing arrays {missing} (has {sorted(data.files)})", column=missing[0]
            )
        out = {k: np.asarray(data[k], dtype=np.float64) for k in _PARAMS}
        out |= {k: np.asarray(data[k], dtype=np.float64) for k in extra_names if k in data.files}
        rate = None
        for key in ("mocap_framerate", "frame_rate", "fps"):
            if key in data.files:
                rate = float(data[key])
    T = out["global_orient"].shape[0] if out["global_orient"].ndim == 2 else -1
    for k, v in out.items():
        if k == "betas":
            if v.ndim not in (1, 2):
                raise FileFormatError(
                    path, f"betas must be (B,) or (T, B), got {v.shape}", column=k
                )
        elif v.ndim < 2 or v.shape[0] != T:
            raise FileFormatError(
                path, f"{k} must have T = {T} frames like global_orient, got {v.shape}", column=k
            )
    if T < 1 or out["global_orient"].shape[-1] != 3:
        raise FileFormatError(path, "global_orient must be (T, 3)", column="global_orient")
    return out, rate


def run(args) -> int:
    from tqdm import tqdm

    from diffbio.fitting import write_scale_set
    from diffbio.io import Storage, write_storage, write_trc
    from diffbio.model import default_model
    from diffbio.smpl import (
        SMPL_JOINT_KEYPOINTS,
        JointRegressor,
        body_model_vertices,
        fit_smpl_sequence,
        load_body_model,
    )

    body = load_body_model(args.body_model, args.kind, gender=args.gender)
    extra = _SMPLX_EXTRA if body.kind == "smplx" else ()
    params, rate = _read_params(Path(args.params), extra)
    rate = args.frame_rate or rate or 30.0
    if rate <= 0:
        raise DiffbioError(f"frame rate must be positive, got {rate}")
    reg = JointRegressor.load(args.regressor) if args.regressor else None
    if reg is not None and reg.num_vertices != body.num_vertices:
        raise DiffbioError(
            f"{args.regressor}: regressor is for {reg.num_vertices} vertices, the body model "
            f"{args.body_model} has {body.num_vertices}"
        )
    tensors = {k: torch.from_numpy(v) for k, v in params.items()}
    T = tensors["global_orient"].shape[0]
    with tqdm(total=T, desc="body model", unit="frame") as bar:
        out = body_model_vertices(
            body,
            tensors.pop("betas"),
            tensors.pop("body_pose"),
            tensors.pop("global_orient"),
            tensors.pop("transl"),
            progress=bar.update,
            **tensors,
        )
    if reg is not None:
        kp, names = reg(out.vertices), reg.names
    else:
        idx = [body.joint_names.index(j) for j in SMPL_JOINT_KEYPOINTS]
        kp, names = out.joints[:, idx], tuple(SMPL_JOINT_KEYPOINTS.values())
    model = default_model(args.height, args.mass)
    print(f"fitting {model.num_coordinates} coordinates to {len(names)} keypoints, {T} frames")
    fit = fit_smpl_sequence(model, kp, names, scale=not args.no_scale)
    outdir = Path(args.out)
    outdir.mkdir(parents=True, exist_ok=True)
    stem = Path(args.params).stem
    time = np.arange(T) / rate
    q = fit.q.numpy().copy()
    rot = np.array(model.rotational_mask)
    q[:, rot] = np.rad2deg(q[:, rot])
    mot = write_storage(
        outdir / f"{stem}.mot",
        Storage.from_arrays(time, model.coordinate_names, q, in_degrees=True, name="Coordinates"),
    )
    scales = write_scale_set(outdir / f"{stem}_scales.xml", model, fit.scales)
    trc = write_trc(outdir / f"{stem}_keypoints.trc", time, names, fit.keypoints.numpy())
    rms = fit.ik.marker_error_rms.numpy() * 1000
    print(f"keypoint RMS error: mean {rms.mean():.3g} mm, max {rms.max():.3g} mm")
    print(f"wrote {mot}, {scales} and {trc}")
    return 0
