"""intermoe_min: a compact, teachable implementation of InterMoE (AAAI 2026).

InterMoE generates two-person 3D interactions from text. This file holds the whole thing, in the order
data flows through it:

  1. The motion representation: the SMPL 22-joint skeleton, InterHuman's 262-value per-frame features,
     InterGen's canonicalisation, mirroring and person swapping.
  2. The dataset: InterHuman's on-disk layout and the generated InterSynth data, one loader for both.
  3. Looking at motion: matplotlib animations and filmstrips.

Sources: the InterMoE paper (arXiv 2511.13488), the InterHuman data format as InterGen (Liang et al.,
IJCV 2024) loads it. Facts follow the paper; where the authors' code differs, a comment says so.
Everything here is written from those descriptions, not copied.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field

import numpy as np
import torch

# =====================================================================================================
# 1. The motion representation
# =====================================================================================================

# SMPL's first 22 joints, in SMPL's order (InterHuman keeps this order).
JOINT_NAMES = [
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck",
    "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist",
]
SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19]
N_JOINTS = 22
FPS = 30
MIN_FRAMES, MAX_FRAMES = 15, 300  # InterHuman's clip-length bounds at 30 fps

# Left/right pairs: mirroring swaps these.
LEFT_JOINTS = [1, 4, 7, 10, 13, 16, 18, 20]
RIGHT_JOINTS = [2, 5, 8, 11, 14, 17, 19, 21]
MIRROR_JOINT_PERM = list(range(N_JOINTS))
for _l, _r in zip(LEFT_JOINTS, RIGHT_JOINTS):
    MIRROR_JOINT_PERM[_l], MIRROR_JOINT_PERM[_r] = _r, _l

# Joints used for facing (hips and shoulders) and foot contact (ankle, toe per side).
L_HIP, R_HIP, L_SHOULDER, R_SHOULDER = 1, 2, 16, 17
FOOT_JOINTS = [7, 10, 8, 11]  # contact order in the feature: left ankle, left foot, right ankle, right foot
CONTACT_VEL_THRESHOLD = 0.001  # squared displacement per frame (m^2), InterGen's value
CONTACT_HEIGHT_THRESHOLD = [0.12, 0.05, 0.12, 0.05]  # ankle higher off the floor than the toe

# The 262-value InterHuman feature of one person at one frame, a named slice per part.
FEAT_DIM = 262
FEATURE_SLICES = {
    "positions": slice(0, 66),     # 22 joints x 3, global (canonical frame), metres
    "velocities": slice(66, 132),  # 22 joints x 3, pos[t+1] - pos[t]
    "rotations": slice(132, 258),  # 21 non-root joints x 6D local rotation
    "contacts": slice(258, 262),   # 4 foot-contact bits, in FOOT_JOINTS order
}


# ---- rotations: the 6D representation (Zhou et al. 2019) -------------------------------------------
# Our 6D vector is the first two columns of the rotation matrix, read row by row:
# [R00, R01, R10, R11, R20, R21]. Mirroring is done through matrices (M R M), so it is right whatever
# the layout; InterGen's hard-coded sign flips match this layout.

def rot6d_from_matrix(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 6)."""
    return R[..., :, :2].reshape(*R.shape[:-2], 6)


def matrix_from_rot6d(d6: np.ndarray) -> np.ndarray:
    """(..., 6) -> (..., 3, 3) by Gram-Schmidt on the two stored columns."""
    cols = d6.reshape(*d6.shape[:-1], 3, 2)
    a, b = cols[..., 0], cols[..., 1]
    x = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b - (x * b).sum(-1, keepdims=True) * x
    y = b / np.linalg.norm(b, axis=-1, keepdims=True)
    z = np.cross(x, y)
    return np.stack([x, y, z], axis=-1)


def axis_angle_matrix(axis, angle) -> np.ndarray:
    """Rodrigues: rotation matrices (..., 3, 3) about unit `axis` (..., 3) by `angle` (...) radians."""
    axis = np.asarray(axis, dtype=np.float64)
    angle = np.asarray(angle, dtype=np.float64)
    axis = axis / np.linalg.norm(axis, axis=-1, keepdims=True)
    axis, angle = np.broadcast_arrays(axis, angle[..., None])
    angle = angle[..., 0]
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    c, s, C = np.cos(angle), np.sin(angle), 1 - np.cos(angle)
    R = np.stack([
        c + x * x * C, x * y * C - z * s, x * z * C + y * s,
        y * x * C + z * s, c + y * y * C, y * z * C - x * s,
        z * x * C - y * s, z * y * C + x * s, c + z * z * C,
    ], axis=-1)
    return R.reshape(*angle.shape, 3, 3)


def yaw_matrix(angle) -> np.ndarray:
    """Rotation about +Y (up) by `angle` radians: (..., 3, 3)."""
    return axis_angle_matrix(np.array([0.0, 1.0, 0.0]), angle)


def forward_kinematics(local_rot: np.ndarray, root_pos: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Joint positions from local rotations.

    local_rot: (T, 22, 3, 3) rotation of each joint relative to its parent (joint 0: global root rotation)
    root_pos:  (T, 3) pelvis position
    offsets:   (22, 3) rest-pose offset of each joint from its parent (offsets[0] unused)
    returns    (T, 22, 3) global joint positions. Bone lengths are |offsets[j]|, constant by construction.
    """
    T = local_rot.shape[0]
    glob_rot = np.empty_like(local_rot)
    pos = np.empty((T, N_JOINTS, 3), dtype=local_rot.dtype)
    glob_rot[:, 0], pos[:, 0] = local_rot[:, 0], root_pos
    for j in range(1, N_JOINTS):
        p = SMPL_PARENTS[j]
        glob_rot[:, j] = glob_rot[:, p] @ local_rot[:, j]
        pos[:, j] = pos[:, p] + np.einsum("tij,j->ti", glob_rot[:, p], offsets[j])
    return pos


# ---- canonicalisation (InterGen's, REFERENCE section 2) --------------------------------------------

def facing_yaw(joints_frame: np.ndarray) -> float:
    """Yaw angle (radians about +Y) a person faces at one frame, from (22, 3) joint positions.

    'Across' runs from the left hip/shoulder to the right ones; forward = up x across. InterGen's code
    uses the hips only; we average hips and shoulders (REFERENCE names both), which is steadier when the
    pelvis twists. The facing of a person standing in the rest pose (left side at +X) is +Z, yaw 0.
    """
    across = (joints_frame[R_HIP] - joints_frame[L_HIP]) + (joints_frame[R_SHOULDER] - joints_frame[L_SHOULDER])
    forward = np.cross(np.array([0.0, 1.0, 0.0]), across)
    return float(np.arctan2(forward[0], forward[2]))


def canonicalise(joints: np.ndarray) -> np.ndarray:
    """Put one or two people in the canonical frame of the first one (InterGen's processing).

    joints: (T, 22, 3) one person, or (2, T, 22, 3) two people; metres, Y up.
    Each person is put on the floor (its own lowest point over the clip at y = 0, as InterGen does), then
    both are moved so that person 1's root starts at the origin (x, z) and rotated about Y so that person 1
    faces +Z at frame 0. Person 2 keeps its place relative to person 1. InterGen gets the same result by
    canonicalising each person alone and re-expressing person 2 through a relative yaw and offset; one rigid
    transform for both is the same motion and is easier to read.
    """
    single = joints.ndim == 3
    j = np.array(joints[None] if single else joints, dtype=np.float64)  # (P, T, 22, 3)
    j[..., 1] -= j[..., 1].min(axis=(1, 2))[:, None, None]  # each person on its own floor
    j -= j[0, 0, 0] * np.array([1.0, 0.0, 1.0])  # person 1's root at x = z = 0 at frame 0
    R = yaw_matrix(-facing_yaw(j[0, 0]))  # rotate person 1's frame-0 facing onto +Z
    j = j @ R.T
    return (j[0] if single else j).astype(np.float32)


# ---- the 262-value feature ---------------------------------------------------------------------------

def foot_contacts(joints: np.ndarray) -> np.ndarray:
    """(T, 22, 3) -> (T-1, 4) contact bits for FOOT_JOINTS: slow (squared displacement per frame below
    CONTACT_VEL_THRESHOLD) and low (below CONTACT_HEIGHT_THRESHOLD), InterGen's rule."""
    feet = joints[:, FOOT_JOINTS]  # (T, 4, 3)
    slow = ((feet[1:] - feet[:-1]) ** 2).sum(-1) < CONTACT_VEL_THRESHOLD  # (T-1, 4)
    low = feet[:-1, :, 1] < np.array(CONTACT_HEIGHT_THRESHOLD)
    return (slow & low).astype(np.float32)


def features_from_joints(joints: np.ndarray, rot6d: np.ndarray | None = None,
                         canonical: bool = True) -> np.ndarray:
    """Joint positions (+ local rotations) -> InterHuman's 262-value features.

    joints: (T, 22, 3) or (2, T, 22, 3), metres, Y up, 30 fps.
    rot6d:  (T, 21, 6) or (2, T, 21, 6) local rotations of joints 1..21 (our 6D layout), or None for
            position-only data: the rotation slots then hold the identity rotation (say so in your results).
    canonical: canonicalise first (see `canonicalise`); pass False if `joints` already is.
    returns (T-1, 262) or (2, T-1, 262) float32: the last frame is dropped, as its velocity is unknown.
    """
    joints = np.asarray(joints)
    if joints.ndim not in (3, 4) or joints.shape[-2:] != (N_JOINTS, 3) or joints.shape[-3] < 2:
        raise ValueError(f"features_from_joints: expected joints of shape (T, 22, 3) or (2, T, 22, 3) "
                         f"with T >= 2, got {joints.shape}")
    if rot6d is None:
        rot6d = np.broadcast_to(rot6d_from_matrix(np.eye(3)), joints.shape[:-2] + (N_JOINTS - 1, 6))
    elif rot6d.shape != joints.shape[:-2] + (N_JOINTS - 1, 6):
        raise ValueError(f"features_from_joints: rot6d shape {rot6d.shape} does not match joints "
                         f"{joints.shape}; expected {joints.shape[:-2] + (N_JOINTS - 1, 6)}")
    if canonical:
        joints = canonicalise(joints)
    if joints.ndim == 4:  # two people: each one's feature in the shared (person 1's) frame
        return np.stack([features_from_joints(j, r, canonical=False) for j, r in zip(joints, rot6d)])
    T = joints.shape[0]
    pos = joints[:-1].reshape(T - 1, -1)  # (T-1, 66)
    vel = (joints[1:] - joints[:-1]).reshape(T - 1, -1)  # (T-1, 66)
    rot = np.asarray(rot6d[:-1]).reshape(T - 1, -1)  # (T-1, 126)
    return np.concatenate([pos, vel, rot, foot_contacts(joints)], axis=-1).astype(np.float32)


def joints_from_features(features):
    """(..., 262) features -> (..., 22, 3) joint positions (numpy or torch, whichever comes in)."""
    pos = features[..., FEATURE_SLICES["positions"]]
    return pos.reshape(*pos.shape[:-1], N_JOINTS, 3)


# ---- mirroring and person swap (data augmentation, REFERENCE section 2) ----------------------------
# Mirroring reflects x -> -x and swaps every left joint with its right twin; the caption's left/right
# and clockwise/counterclockwise must swap too, or the augmented data teaches the model the wrong hand.
_MIRROR = np.diag([-1.0, 1.0, 1.0])
_CONTACT_MIRROR_PERM = [2, 3, 0, 1]  # (l_ankle, l_foot, r_ankle, r_foot) -> (r_ankle, r_foot, l_ankle, l_foot)


def mirror_joints(joints: np.ndarray) -> np.ndarray:
    """(..., 22, 3) -> the same motion reflected left/right."""
    return (joints * np.array([-1.0, 1.0, 1.0], dtype=joints.dtype))[..., MIRROR_JOINT_PERM, :]


def mirror_rot6d(rot6d: np.ndarray) -> np.ndarray:
    """(..., 21, 6) local rotations of joints 1..21 -> mirrored: R -> M R M with M = diag(-1, 1, 1), then
    left and right joints swap places (the same as InterGen's sign flips for our 6D layout)."""
    R = _MIRROR @ matrix_from_rot6d(np.asarray(rot6d, dtype=np.float64)) @ _MIRROR  # (..., 21, 3, 3)
    perm = [p - 1 for p in MIRROR_JOINT_PERM[1:]]  # non-root joints, indices shifted by one
    return rot6d_from_matrix(R)[..., perm, :].astype(np.asarray(rot6d).dtype)


def mirror_features(features: np.ndarray) -> np.ndarray:
    """(..., 262) canonical features -> mirrored features. Mirroring keeps the +Z facing and the origin,
    so the result is exactly the feature of the mirrored joints."""
    f = np.asarray(features)
    lead = f.shape[:-1]
    S = FEATURE_SLICES
    pos = mirror_joints(f[..., S["positions"]].reshape(*lead, N_JOINTS, 3)).reshape(*lead, -1)
    vel = mirror_joints(f[..., S["velocities"]].reshape(*lead, N_JOINTS, 3)).reshape(*lead, -1)
    rot = mirror_rot6d(f[..., S["rotations"]].reshape(*lead, N_JOINTS - 1, 6)).reshape(*lead, -1)
    con = f[..., S["contacts"]][..., _CONTACT_MIRROR_PERM]
    return np.concatenate([pos, vel, rot, con], axis=-1).astype(f.dtype)


def _swap_words(text: str, pairs: list[tuple[str, str]]) -> str:
    """Swap each word of a pair for the other in one pass, keeping capitalisation."""
    table = {}
    for a, b in pairs:
        table[a], table[b] = b, a
    pattern = re.compile(r"\b(" + "|".join(sorted(map(re.escape, table), key=len, reverse=True)) + r")\b",
                         re.IGNORECASE)

    def repl(m):
        word = m.group(0)
        new = table[word.lower()]
        if word.isupper() and len(word) > 1:
            return new.upper()
        return new[0].upper() + new[1:] if word[0].isupper() else new
    return pattern.sub(repl, text)


_MIRROR_WORDS = [("left", "right"), ("leftward", "rightward"), ("leftwards", "rightwards"),
                 ("lefthand", "righthand"), ("left-hand", "right-hand"), ("left-handed", "right-handed"),
                 ("clockwise", "counterclockwise"), ("counter-clockwise", "anti-clockwise")]


def mirror_caption(text: str) -> str:
    """Swap left/right and clockwise/counterclockwise in a caption.

    'clockwise' <-> 'counterclockwise' is an exact swap, so mirroring twice gives the caption back. The
    rarer spellings 'anticlockwise', 'counter-clockwise', 'anti-clockwise' all mean counterclockwise: they
    become 'clockwise' ('anticlockwise') or each other (the hyphenated pair), always with the right meaning.
    """
    text = _swap_words(text, _MIRROR_WORDS)
    return re.sub(r"\banticlockwise\b", "clockwise", text, flags=re.IGNORECASE)


def swap_caption(text: str) -> str:
    """Captions that name 'the first person' / 'the second person' follow a person swap."""
    return _swap_words(text, [("first person", "second person"), ("person 1", "person 2"),
                              ("person one", "person two")])


# ---- normalisation -----------------------------------------------------------------------------------

class Normalizer:
    """One mean/std vector (262,) shared by both people (InterGen's choice), applied as (x - mean) / std.

    Works on numpy arrays and torch tensors of shape (..., 262)."""

    STD_FLOOR = 1e-3  # features that barely move (e.g. an always-zero slot) would otherwise blow up

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.maximum(np.asarray(std, dtype=np.float32), self.STD_FLOOR)
        if self.mean.shape != (FEAT_DIM,) or self.std.shape != (FEAT_DIM,):
            raise ValueError(f"Normalizer: mean and std must have shape ({FEAT_DIM},), "
                             f"got {self.mean.shape} and {self.std.shape}")

    @classmethod
    def fit(cls, features) -> "Normalizer":
        """Statistics over a list of (..., 262) feature arrays (every frame of every person counts once)."""
        flat = np.concatenate([np.asarray(f, dtype=np.float64).reshape(-1, FEAT_DIM) for f in features])
        return cls(flat.mean(0), flat.std(0))

    def _stats(self, x):
        if isinstance(x, torch.Tensor):
            return (torch.as_tensor(self.mean, device=x.device, dtype=x.dtype),
                    torch.as_tensor(self.std, device=x.device, dtype=x.dtype))
        return self.mean, self.std

    def normalise(self, x):
        mean, std = self._stats(x)
        return (x - mean) / std

    def denormalise(self, x):
        mean, std = self._stats(x)
        return x * std + mean

    def state_dict(self) -> dict:
        return {"mean": self.mean.copy(), "std": self.std.copy()}

    @classmethod
    def from_state_dict(cls, d) -> "Normalizer":
        return cls(np.asarray(d["mean"]), np.asarray(d["std"]))


# =====================================================================================================
# 2. The dataset: InterHuman's on-disk layout and InterSynth, one loader for both
# =====================================================================================================
# A *record* is one interaction before any processing, whatever its source:
#   {"id": str, "joints": (2, T, 22, 3) float32 metres Y up, "rot6d": (2, T, 21, 6) float32 or None,
#    "captions": [str, ...], "meta": dict (InterSynth's ground truth; empty for InterHuman)}
# `load_interhuman` reads InterHuman's files into records; `data/intersynth.py` generates them.

class DataError(ValueError):
    """A clip that cannot be used, with the file or clip it came from in the message."""


def check_record(rec: dict, where: str | None = None) -> None:
    """Raise DataError naming the clip if a record cannot be trained on."""
    where = where or rec.get("id", "?")
    j = np.asarray(rec.get("joints"))
    if j.ndim != 4 or j.shape[0] != 2 or j.shape[2:] != (N_JOINTS, 3):
        raise DataError(f"{where}: joints must have shape (2, T, 22, 3), got {j.shape}")
    if j.shape[1] < MIN_FRAMES:
        raise DataError(f"{where}: too short ({j.shape[1]} frames; at least {MIN_FRAMES} are needed)")
    if not np.isfinite(j).all():
        raise DataError(f"{where}: joints contain NaN or inf")
    r = rec.get("rot6d")
    if r is not None:
        r = np.asarray(r)
        if r.shape != j.shape[:2] + (N_JOINTS - 1, 6):
            raise DataError(f"{where}: rot6d must have shape {j.shape[:2] + (N_JOINTS - 1, 6)}, got {r.shape}")
        if not np.isfinite(r).all():
            raise DataError(f"{where}: rot6d contains NaN or inf")
    caps = [c for c in rec.get("captions") or [] if isinstance(c, str) and c.strip()]
    if not caps:
        raise DataError(f"{where}: no caption")


def _zup_to_yup(p: np.ndarray) -> np.ndarray:
    """InterHuman stores Z up; (x, y, z) -> (x, z, -y) makes Y up (InterGen's fixed rotation)."""
    return np.stack([p[..., 0], p[..., 2], -p[..., 1]], axis=-1)


def _yup_to_zup(p: np.ndarray) -> np.ndarray:
    """Inverse of `_zup_to_yup`, for writing files in InterHuman's raw layout."""
    return np.stack([p[..., 0], -p[..., 2], p[..., 1]], axis=-1)


INTERHUMAN_RAW_DIM = 492  # 62 joint positions x 3, then 51 local 6D rotations
_RAW_POS, _RAW_ROT = slice(0, 66), slice(186, 312)  # the 22 body joints and their 21 rotations


def load_interhuman(root: str, split: str = "train", strict: bool = False):
    """Read InterHuman's layout into records.

    root/motions_processed/person{1,2}/<id>.npy  raw (T, 492) per person
    root/annots/<id>.txt                          captions, one a line
    root/{train,val,test}.txt                     ids of each split; root/ignore_list.txt (optional) ids to skip
    Returns (records, errors): clips that cannot be used are left out and described in `errors`, one line
    naming the file each; a warning summarises them. With strict=True the first bad clip raises instead.
    """
    split_file = os.path.join(root, f"{split}.txt")
    if not os.path.isfile(split_file):
        raise FileNotFoundError(f"load_interhuman: no split list {split_file}")
    ignore = set()
    if os.path.isfile(os.path.join(root, "ignore_list.txt")):
        ignore = set(open(os.path.join(root, "ignore_list.txt")).read().split())
    ids = [i for i in open(split_file).read().split() if i not in ignore]
    records, errors = [], []
    for clip_id in ids:
        try:
            records.append(_read_interhuman_clip(root, clip_id))
        except (DataError, OSError, ValueError) as e:
            if strict:
                raise
            errors.append(str(e))
    if errors:
        import warnings
        warnings.warn(f"load_interhuman: skipped {len(errors)} of {len(ids)} clips:\n  " + "\n  ".join(errors[:20]))
    if not records:
        raise DataError(f"load_interhuman: no usable clip in {split_file}" + (f"; first error: {errors[0]}" if errors else ""))
    return records, errors


def _read_interhuman_clip(root: str, clip_id: str) -> dict:
    people, rots = [], []
    for p in ("person1", "person2"):
        path = os.path.join(root, "motions_processed", p, f"{clip_id}.npy")
        raw = np.load(path).astype(np.float32)
        if raw.ndim != 2 or raw.shape[1] != INTERHUMAN_RAW_DIM:
            raise DataError(f"{path}: expected shape (T, {INTERHUMAN_RAW_DIM}), got {raw.shape}")
        if not np.isfinite(raw).all():
            raise DataError(f"{path}: contains NaN or inf")
        people.append(_zup_to_yup(raw[:, _RAW_POS].reshape(-1, N_JOINTS, 3)))
        # Local rotations are relative to the parent joint; InterGen leaves them as stored.
        rots.append(raw[:, _RAW_ROT].reshape(-1, N_JOINTS - 1, 6))
    if people[0].shape[0] != people[1].shape[0]:
        raise DataError(f"{clip_id}: person1 has {people[0].shape[0]} frames, person2 {people[1].shape[0]}")
    annot = os.path.join(root, "annots", f"{clip_id}.txt")
    if not os.path.isfile(annot):
        raise DataError(f"{annot}: caption file missing")
    captions = [line.strip() for line in open(annot, encoding="utf-8") if line.strip()]
    rec = {"id": clip_id, "joints": np.stack(people), "rot6d": np.stack(rots), "captions": captions, "meta": {}}
    check_record(rec, where=os.path.join(root, "motions_processed", "person*", f"{clip_id}.npy")
                 if captions else annot)
    return rec


def write_interhuman_clip(root: str, clip_id: str, joints: np.ndarray, rot6d: np.ndarray | None,
                          captions: list[str]) -> None:
    """Write one interaction in InterHuman's raw layout (for tests, and to export InterSynth clips)."""
    T = joints.shape[1]
    for k, p in enumerate(("person1", "person2")):
        os.makedirs(os.path.join(root, "motions_processed", p), exist_ok=True)
        raw = np.zeros((T, INTERHUMAN_RAW_DIM), dtype=np.float32)
        raw[:, _RAW_POS] = _yup_to_zup(joints[k]).reshape(T, -1)
        if rot6d is not None:
            raw[:, _RAW_ROT] = rot6d[k].reshape(T, -1)
        np.save(os.path.join(root, "motions_processed", p, f"{clip_id}.npy"), raw)
    os.makedirs(os.path.join(root, "annots"), exist_ok=True)
    with open(os.path.join(root, "annots", f"{clip_id}.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(captions) + "\n")


class InteractionDataset(torch.utils.data.Dataset):
    """Two-person interactions as the model sees them.

    Each fetch takes one record, optionally swaps who is person 1 (p = swap_prob) and mirrors left/right
    (p = mirror_prob, caption included), canonicalises to person 1's frame, computes the (2, T-1, 262)
    features, normalises them, crops to `max_frames` (a random window when training) and picks one of the
    captions at random. Bad records are left out with a warning that names them (see `check_record`).
    Use `collate` (below) in the DataLoader to pad a batch and build its mask.
    """

    def __init__(self, records: list[dict], normalizer: Normalizer | None = None, train: bool = True,
                 swap_prob: float = 0.5, mirror_prob: float = 0.5, max_frames: int = MAX_FRAMES - 1,
                 seed: int | None = None):
        good, self.errors = [], []
        for rec in records:
            try:
                check_record(rec)
                good.append(rec)
            except DataError as e:
                self.errors.append(str(e))
        if self.errors:
            import warnings
            warnings.warn(f"InteractionDataset: left out {len(self.errors)} bad clips:\n  " + "\n  ".join(self.errors[:20]))
        if not good:
            raise DataError("InteractionDataset: no usable clip" + (f"; first error: {self.errors[0]}" if self.errors else ""))
        self.records = good
        self.normalizer = normalizer
        self.train = train
        self.swap_prob = swap_prob if train else 0.0
        self.mirror_prob = mirror_prob if train else 0.0
        self.max_frames = max_frames
        # With a seed, every fetch draws from its own generator keyed by (seed, epoch, index): the same
        # item in the same epoch is augmented the same way whatever order, worker or resumed run fetches it.
        self.seed, self.epoch = seed, 0
        self._rng = np.random.default_rng()

    def __len__(self):
        return len(self.records)

    def features(self, i: int, swap: bool = False, mirror: bool = False) -> np.ndarray:
        """Un-normalised (2, T-1, 262) features of record i, with the chosen augmentation."""
        rec = self.records[i]
        joints, rot = rec["joints"], rec.get("rot6d")
        if swap:
            joints = joints[::-1]
            rot = None if rot is None else rot[::-1]
        if mirror:
            joints = mirror_joints(joints)
            rot = None if rot is None else mirror_rot6d(rot)
        return features_from_joints(joints, rot)

    def fit_normalizer(self) -> Normalizer:
        """Statistics of the un-augmented features of every record (train split)."""
        return Normalizer.fit(self.features(i) for i in range(len(self)))

    def __getitem__(self, i: int) -> dict:
        rec = self.records[i]
        rng = self._rng if self.seed is None else np.random.default_rng([self.seed, self.epoch, i])
        swap = bool(rng.random() < self.swap_prob)
        mirror = bool(rng.random() < self.mirror_prob)
        feats = self.features(i, swap, mirror)  # (2, T-1, 262)
        if feats.shape[1] > self.max_frames:
            start = int(rng.integers(0, feats.shape[1] - self.max_frames + 1)) if self.train else 0
            feats = feats[:, start:start + self.max_frames]
        if self.normalizer is not None:
            feats = self.normalizer.normalise(feats)
        caps = [c for c in rec["captions"] if c.strip()]
        caption = caps[int(rng.integers(len(caps)))] if self.train else caps[0]
        if swap:
            caption = swap_caption(caption)
        if mirror:
            caption = mirror_caption(caption)
        return {"motion": torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32)),
                "length": feats.shape[1], "caption": caption, "id": rec["id"],
                "swapped": swap, "mirrored": mirror}


def collate(batch: list[dict], multiple: int = 4) -> dict:
    """Pad a list of dataset items into a batch.

    returns motion (B, 2, T, 262) zero-padded, mask (B, T) bool (True = real frame), lengths (B,),
    captions, ids. T is the longest length rounded up to `multiple` (the VAE downsamples time by 4).
    """
    lengths = torch.tensor([b["length"] for b in batch])
    T = int(math.ceil(int(lengths.max()) / multiple) * multiple)
    motion = torch.zeros(len(batch), 2, T, FEAT_DIM)
    for k, b in enumerate(batch):
        motion[k, :, :b["length"]] = b["motion"]
    mask = torch.arange(T)[None, :] < lengths[:, None]  # (B, T)
    return {"motion": motion, "mask": mask, "lengths": lengths,
            "captions": [b["caption"] for b in batch], "ids": [b["id"] for b in batch]}
