"""Generated SMPL / SMPL-X model files (same arrays and layout as the licensed ones) whose
skeleton is the default diffbio model's, so that paired data are exact by construction.

Geometry (built in OpenSim ground at the default pose, then rotated into SMPL's frame with
``C``, root joint at the origin):

* joints: SMPL's 24 (SMPL-X: 55) joints, named and parented as in SMPL; the leg, pelvis and
  lumbar joints sit at the model's joint centres (SMPL ``*_foot`` at the subtalar joint),
  the shoulders at the acromion markers; neck, head, arms, jaw, eyes and fingers are
  free parts attached to the torso;
* vertices (the real counts, 6890 / 10475, so that smplx's fixed vertex indices for toes,
  heels, face and fingertips are valid): tubes around every bone with LBS weights from the
  distance to the bones (top 4, like SMPL); a ring of 8 rigidly skinned vertices around
  every joint, which ``J_regressor`` averages; a cluster of 7 rigidly skinned vertices
  around every diffbio keypoint (its centroid is the keypoint; the toe/heel clusters'
  centres are smplx's toe/heel vertex indices);
* ``shapedirs``: betas 0-5 are the exact (linear) vertex motion of uniform scaling of the
  pelvis, torso, femur, tibia, talus and calcn groups (``beta = scale - 1``), betas 6-9
  random smooth fields on the free parts; SMPL-X adds 10 expression fields on the head;
* ``posedirs``: random smooth fields around each joint, of size ``pose_blend`` [m] per unit
  of pose feature (0 makes the mesh exactly rigid per diffbio segment).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import scipy.sparse
import torch
from scipy.spatial.transform import Rotation

from diffbio.data import keypoint_names, keypoints
from diffbio.kinematics import forward_kinematics
from diffbio.model import Model

C = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])  # SMPL <- OpenSim
GROUPS = ("pelvis", "torso", "femur", "tibia", "talus", "calcn")
NUM_VERTS = {"smpl": 6890, "smplx": 10475}
SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
# SMPL joint -> diffbio body it moves rigidly with (None: a free part attached to the torso)
RIGID = {0: "pelvis", 1: "femur_l", 2: "femur_r", 3: "torso", 4: "tibia_l", 5: "tibia_r",
         6: "torso", 7: "talus_l", 8: "talus_r", 9: "torso", 10: "calcn_l", 11: "calcn_r",
         13: "torso", 14: "torso"}  # fmt: skip
BODY_JOINT = {"pelvis": 0, "femur_l": 1, "femur_r": 2, "torso": 3, "tibia_l": 4, "tibia_r": 5,
              "talus_l": 7, "talus_r": 8, "calcn_l": 10, "calcn_r": 11}  # fmt: skip
FOOT_VERTS = {  # smplx's vertex indices (vertex_ids.py) -> keypoint at that vertex
    "smpl": {3216: "LTOE", 3226: "LMT5", 3387: "LHEE", 6617: "RTOE", 6624: "RMT5", 6787: "RHEE"},
    "smplx": {5770: "LTOE", 5780: "LMT5", 8846: "LHEE", 8463: "RTOE", 8474: "RMT5", 8635: "RHEE"},
}


def group(body: str) -> str:
    return body[:-2] if body.endswith(("_r", "_l")) else body


def group_scales(model: Model, betas: np.ndarray) -> np.ndarray:
    """Segment scales ``(NB, 3)`` of betas 0-5 (``scale = 1 + beta``)."""
    s = np.ones((model.num_bodies, 3))
    for i, b in enumerate(model.body_names):
        s[i] = 1.0 + betas[GROUPS.index(group(b))]
    return s


def _rest(model: Model, scales: np.ndarray | None = None) -> np.ndarray:
    q = model.default_q().double()
    sc = None if scales is None else torch.tensor(scales)
    return forward_kinematics(model, q, sc).translation.numpy()  # rotations are identity


def _joints(model: Model, kind: str):
    """SMPL joint positions (OpenSim ground, rest), parents, owning diffbio body."""
    kp = dict(zip(keypoint_names(model), keypoints(model, model.default_q().double()).numpy()))
    lat = np.array([0.0, 0.0, 1.0])  # right
    J = {0: kp["ground_pelvis_jc"], 1: kp["hip_l_jc"], 2: kp["hip_r_jc"], 3: kp["back_jc"],
         4: kp["knee_l_jc"], 5: kp["knee_r_jc"], 7: kp["ankle_l_jc"], 8: kp["ankle_r_jc"],
         10: kp["subtalar_l_jc"], 11: kp["subtalar_r_jc"], 16: kp["LSHO"], 17: kp["RSHO"]}  # fmt: skip
    J[6] = kp["back_jc"] + [0.0, 0.14, 0.0]
    J[9] = kp["torso_com"]
    J[12] = 0.5 * (kp["C7"] + kp["CLAV"])
    J[13], J[14] = 0.5 * (kp["CLAV"] + kp["LSHO"]), 0.5 * (kp["CLAV"] + kp["RSHO"])
    J[15] = J[12] + [0.0, 0.12, 0.0]
    for side, s in ((0, -1.0), (1, 1.0)):
        J[18 + side] = J[16 + side] + s * 0.27 * lat
        J[20 + side] = J[18 + side] + s * 0.25 * lat
        if kind == "smpl":
            J[22 + side] = J[20 + side] + s * 0.08 * lat
    parents = list(SMPL_PARENTS)
    if kind == "smplx":
        parents = parents[:22] + [15, 15, 15]
        J[22] = J[15] + [0.06, -0.05, 0.0]
        J[23], J[24] = J[15] + [0.08, 0.03, -0.03], J[15] + [0.08, 0.03, 0.03]
        fwd = {"index": 0.03, "middle": 0.01, "pinky": -0.03, "ring": -0.01, "thumb": 0.05}
        for side, s, wrist in ((0, -1.0, 20), (1, 1.0, 21)):
            base = 25 + 15 * side
            for f, name in enumerate(("index", "middle", "pinky", "ring", "thumb")):
                for i in range(3):
                    j = base + 3 * f + i
                    parents.append(wrist if i == 0 else j - 1)
                    J[j] = J[wrist] + [fwd[name], 0.0, 0.0] + s * (0.08 + 0.025 * i) * lat
    pos = np.stack([J[j] for j in range(len(parents))])
    owner = [RIGID.get(j, "torso") for j in range(len(parents))]
    return pos, parents, owner


def make_body_model(
    model: Model, kind: str, path: str | Path, *, pose_blend: float = 0.0, seed: int = 0
) -> dict:
    """Write the model file (``.pkl`` for SMPL, ``.npz`` for SMPL-X) and return its arrays
    plus ``oracle`` (K, V) (the exact keypoint regressor: cluster centroids)."""
    rng = np.random.default_rng(seed)
    V = NUM_VERTS[kind]
    Jp, parents, owner = _joints(model, kind)
    NJ = len(parents)
    names = keypoint_names(model)
    kp_rest = keypoints(model, model.default_q().double()).numpy()
    kp_body = [_keypoint_body(model, n) for n in names]
    pos = np.zeros((V, 3))
    vbody = np.empty(V, dtype=object)
    W = np.zeros((V, NJ))
    free = np.zeros(V, bool)
    used = np.zeros(V, bool)
    # keypoint clusters (7 rigid vertices, centroid at the keypoint)
    oracle = np.zeros((len(names), V))
    foot = {v: k for v, k in FOOT_VERTS[kind].items()}
    centre_of = {k: v for v, k in foot.items()}
    offs = np.concatenate([np.zeros((1, 3)), 0.01 * np.concatenate([np.eye(3), -np.eye(3)])])
    nxt = 0

    def take(n, avoid):
        nonlocal nxt
        out = []
        while len(out) < n:
            if nxt not in avoid and not used[nxt]:
                out.append(nxt)
            nxt += 1
        return out

    reserved = set(foot)
    for k, n in enumerate(names):
        idx = [centre_of[n]] + take(6, reserved) if n in centre_of else take(7, reserved)
        for i, o in zip(idx, offs):
            pos[i], vbody[i], used[i] = kp_rest[k] + o, kp_body[k], True
            W[i, BODY_JOINT[kp_body[k]]] = 1.0
        oracle[k, idx] = 1.0 / 7.0
    # joint rings (8 rigid vertices, centroid at the joint) for J_regressor
    Jreg = np.zeros((NJ, V))
    ring = np.stack([[np.cos(a), np.sin(a), np.cos(2 * a) * 0.3] for a in np.arange(8) * np.pi / 4])
    ring = ring - ring.mean(0)
    for j in range(NJ):
        idx = take(8, reserved)
        pos[idx] = Jp[j] + 0.02 * ring
        vbody[idx], used[idx] = owner[j], True  # not "free": shape fields keep joints
        W[idx, j] = 1.0
        Jreg[j, idx] = 1.0 / 8.0
    # tubes around the bones
    rest_idx = np.nonzero(~used)[0]
    bones = [(j, c) for c, j in enumerate(parents) if j >= 0]
    bones += [(j, None) for j in range(NJ) if j not in parents]  # leaf blobs
    seg = rng.integers(len(bones), size=len(rest_idx))
    for i, b in zip(rest_idx, seg):
        j, c = bones[b]
        end = Jp[c] if c is not None else Jp[j] + rng.normal(0, 0.03, 3)
        t = rng.random()
        pos[i] = Jp[j] + t * (end - Jp[j]) + rng.normal(0, 0.04 if j < 16 else 0.02, 3)
        vbody[i], free[i] = owner[j], j not in RIGID
    d = np.stack([_dist_to_bone(pos[rest_idx], Jp[j], [Jp[c] for c in _children(parents, j)])
                  for j in range(NJ)], -1)  # fmt: skip
    w = np.exp(-((d / 0.05) ** 2)) + 1e-12
    w[w < np.sort(w, -1)[:, -4:-3]] = 0.0
    W[rest_idx] = w / w.sum(-1, keepdims=True)
    # rest positions as a function of the group scales (exactly linear)
    origins = {b: o for b, o in zip(model.body_names, _rest(model))}
    local = pos - np.stack([origins[b] for b in vbody])

    def verts(betas6):
        s = group_scales(model, betas6)
        o = dict(zip(model.body_names, _rest(model, s)))
        sb = dict(zip(model.body_names, s))
        return np.stack([o[b] for b in vbody]) + local * np.stack([sb[b] for b in vbody])

    root = origins["pelvis"]
    base = verts(np.zeros(6))
    shape = [verts(np.eye(6)[g]) - base for g in range(6)]
    for _ in range(4):
        shape.append(free[:, None] * _smooth(rng, base, 0.01))
    if kind == "smplx":
        head = (np.linalg.norm(base - Jp[15], axis=-1) < 0.12)[:, None]
        shape += [head * _smooth(rng, base, 0.005) for _ in range(10)]
    shapedirs = np.stack([(C @ s.T).T for s in shape], -1)
    P = (NJ - 1) * 9
    posedirs = np.zeros((V, 3, P), dtype=np.float32)
    if pose_blend > 0:
        for p in range(P):
            j = p // 9 + 1
            g = np.exp(-np.sum((base - Jp[j]) ** 2, -1) / (2 * 0.06**2))
            posedirs[:, :, p] = pose_blend * rng.normal() * g[:, None] * _unit(rng)
    v_template = (C @ (base - root).T).T
    data = {
        "v_template": v_template,
        "shapedirs": shapedirs,
        "posedirs": posedirs,
        "weights": W,
        "kintree_table": np.stack([np.array(parents) % 2**32, np.arange(NJ)]).astype(np.int64),
        "f": np.arange(V - V % 3, dtype=np.uint32).reshape(-1, 3),
        "J": Jreg @ v_template,
    }
    path = Path(path)
    if kind == "smpl":
        data["J_regressor"] = scipy.sparse.csc_matrix(Jreg)
        with open(path, "wb") as fh:
            pickle.dump(data, fh, protocol=2)
    else:
        comps = np.linalg.qr(rng.normal(size=(45, 45)))[0]
        data |= {
            "J_regressor": Jreg,
            "hands_componentsl": comps,
            "hands_componentsr": comps[::-1].copy(),
            "hands_meanl": 0.1 * rng.normal(size=45),
            "hands_meanr": 0.1 * rng.normal(size=45),
            "lmk_faces_idx": rng.integers(len(data["f"]), size=51),
            "lmk_bary_coords": rng.dirichlet(np.ones(3), size=51),
        }
        np.savez_compressed(path, **data)
    return {**data, "oracle": oracle, "names": names, "joints_os": Jp, "root": root}


def _keypoint_body(model: Model, name: str) -> str:
    if name.endswith("_jc"):
        return model.joint(name[:-3]).child_body
    if name.endswith("_com"):
        return name[:-4]
    return next(m.body for m in model.markers if m.name == name)


def _children(parents, j):
    return [c for c, p in enumerate(parents) if p == j]


def _dist_to_bone(x, a, ends):
    if not ends:
        return np.linalg.norm(x - a, axis=-1)
    out = []
    for b in ends:
        ab = b - a
        t = np.clip(((x - a) @ ab) / max(ab @ ab, 1e-12), 0, 1)
        out.append(np.linalg.norm(x - (a + t[:, None] * ab), axis=-1))
    return np.min(out, 0)


def _unit(rng):
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def _smooth(rng, x, amp):
    """A random smooth displacement field (sum of 6 Gaussian bumps) at points ``x``."""
    out = np.zeros_like(x)
    for c in x[rng.integers(len(x), size=6)]:
        out += amp * np.exp(-np.sum((x - c) ** 2, -1) / (2 * 0.15**2))[:, None] * _unit(rng)
    return out


def smpl_params(model: Model, kind: str, q: np.ndarray, betas: np.ndarray, rng, free_sd=0.3):
    """SMPL(-X) parameters posing the generated model like ``model`` at ``q: (T, Q)`` with
    the scales of ``betas`` (free parts: random local rotations of ``free_sd`` rad)."""
    T = q.shape[0]
    scales = group_scales(model, betas)
    poses = forward_kinematics(model, torch.tensor(q), torch.tensor(scales))
    Rb = poses.rotation.numpy()
    parents = _joints(model, kind)[1]
    NJ = 22 if kind == "smplx" else 24
    Rg = np.zeros((T, NJ, 3, 3))
    local = np.zeros((T, NJ, 3))
    for j in range(NJ):
        if j in RIGID:
            Rg[:, j] = C @ Rb[:, model.body_index(RIGID[j])] @ C.T
        else:
            Rj = Rotation.from_rotvec(rng.normal(0, free_sd, (T, 3))).as_matrix()
            Rg[:, j] = Rg[:, parents[j]] @ Rj
        if j > 0:
            rel = np.swapaxes(Rg[:, parents[j]], -1, -2) @ Rg[:, j]
            local[:, j] = Rotation.from_matrix(rel).as_rotvec()
    return {
        "betas": np.asarray(betas, dtype=np.float64),
        "global_orient": Rotation.from_matrix(Rg[:, 0]).as_rotvec(),
        "body_pose": local[:, 1:].reshape(T, -1),
        "transl": (C @ poses.translation.numpy()[:, 0].T).T,
        "scales": scales,
        "keypoints": np.einsum("ij,tkj->tki", C, keypoints(model, torch.tensor(q), torch.tensor(scales)).numpy()),
    }  # fmt: skip
