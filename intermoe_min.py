"""intermoe_min: a compact, teachable implementation of InterMoE (AAAI 2026), text -> two-person 3D motion.

This file holds the paper's model and how it trains, in the order data flows through it (each section's notebook):

   1. Motion representation: SMPL's 22 joints, InterHuman's 262-value features, canonical frame,
      mirroring and person swap (notebook 01).
   2. Records and the dataset: InterSynth (the intersynth package) and InterHuman (intermoe_tools) (01).
   3. Causal-Skeletal VAE: one person's (T, 262) motion <-> (T/4, 448) latents, causal in time (02).
   4. Text encoder: a caption -> a sentence embedding (03).
   5. Latent diffusion: cosine schedule, x0 prediction, DDIM with classifier-free guidance (03).
   6. Cooperative denoiser: 6a building blocks (AdaLN, attention) (04), 6b the Synergistic
      Router (05), 6c the InterMoE block: Dynamic Temporal Selection and its bias rule (05, 06),
      6d the Cooperative Denoiser: two weight-sharing people talking by cross-attention (04).
   7. Training machinery: bf16 autocast, AdamW and its schedule, one step, one resumable loop (07).
   8. InterMoE, the whole model (sampling; save and load: files.Checkpointable), its presets (07).
   9. The two training stages: `train_vae`, the latent cache, `train_denoiser` (07).

Beyond the paper, intermoe_tools plugs into the model's places (`InterMoE.sample`'s guide and finish, `train_denoiser`'s
extra_loss; intermoe_tools.pipeline fills them). Of it, this file imports only leaves that import nothing of ours
but each other: captions (mirrored and swapped), checks (of arguments), devices, ema, files (checkpoints) and vocab
(words to ids). Pictures, evaluation, the ablation and the command line live there too and import this file. Run as
a script, it hands over to the command line before it defines anything, so the model loads once.
Sources: the InterMoE paper (arXiv 2511.13488) and InterHuman's format as InterGen (IJCV 2024) reads it.
Facts follow the paper; where the authors' code differs, a comment says so. Nothing here is copied.
"""
from __future__ import annotations

if __name__ == "__main__":  # python intermoe_min.py ...: the command line, which imports this file as intermoe_min
    from intermoe_tools.cli import main

    raise SystemExit(main())

import contextlib
import math
import os
import time
import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from intermoe_tools.captions import caption_initiator, mirror_caption, swap_caption
from intermoe_tools.checks import MAX_SEED, check_int, sample_args, warn_beyond_scene
from intermoe_tools.devices import default_workers, pick_device, rank_world
from intermoe_tools.ema import EMA
from intermoe_tools.files import (Checkpointable, CheckpointError, load_checkpoint, resume_training, rng_state,
                                   save_checkpoint, tensor_digest)
from intermoe_tools.vocab import Vocab


# =====================================================================================================
# 1. The motion representation
# =====================================================================================================
JOINT_NAMES = [  # SMPL's first 22 joints, in SMPL's (and InterHuman's) order
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle", "right_ankle",
    "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist"]
SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19]
N_JOINTS = 22
FPS = 30
MIN_FRAMES, MAX_FRAMES = 15, 300  # InterHuman's clip-length bounds at 30 fps

LEFT_JOINTS = [1, 4, 7, 10, 13, 16, 18, 20]  # mirroring swaps each with its right twin
RIGHT_JOINTS = [2, 5, 8, 11, 14, 17, 19, 21]
MIRROR_JOINT_PERM = [dict(zip(LEFT_JOINTS + RIGHT_JOINTS, RIGHT_JOINTS + LEFT_JOINTS)).get(j, j) for j in range(N_JOINTS)]

L_HIP, R_HIP, L_SHOULDER, R_SHOULDER = 1, 2, 16, 17  # the joints that say where a person faces
FOOT_JOINTS = [7, 10, 8, 11]  # contact order in the feature: left ankle, left foot, right ankle, right foot
CONTACT_VEL_THRESHOLD = 0.001  # squared displacement per frame (m^2), InterGen's value
CONTACT_HEIGHT_THRESHOLD = [0.12, 0.05, 0.12, 0.05]  # metres above the floor, per FOOT_JOINTS entry

FEAT_DIM = 262  # InterHuman's feature of one person at one frame
FEATURE_SLICES = {
    "positions": slice(0, 66),     # 22 joints x 3, global (canonical frame), metres
    "velocities": slice(66, 132),  # 22 joints x 3, pos[t+1] - pos[t]
    "rotations": slice(132, 258),  # 21 non-root joints x 6D local rotation
    "contacts": slice(258, 262),   # 4 foot-contact bits, in FOOT_JOINTS order
}


# ---- rotations: the 6D representation (Zhou et al. 2019) -------------------------------------------
# Our 6D vector is the rotation matrix's first two columns read row by row, [R00, R01, R10, R11, R20, R21].
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
    return np.stack([x, y, np.cross(x, y)], axis=-1)


def axis_angle_matrix(axis, angle) -> np.ndarray:
    """Rodrigues: rotation matrices (..., 3, 3) about unit `axis` (..., 3) by `angle` (...) radians."""
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis, axis=-1, keepdims=True)
    axis, angle = np.broadcast_arrays(axis, np.asarray(angle, dtype=np.float64)[..., None])
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
    """local_rot (T, 22, 3, 3) relative to each parent (joint 0: global), root_pos (T, 3), offsets (22, 3)
    rest-pose offset from the parent -> (T, 22, 3) joint positions; bone lengths are |offsets[j]|."""
    T = local_rot.shape[0]
    glob_rot = np.empty_like(local_rot)
    pos = np.empty((T, N_JOINTS, 3), dtype=local_rot.dtype)
    glob_rot[:, 0], pos[:, 0] = local_rot[:, 0], root_pos
    for j in range(1, N_JOINTS):
        p = SMPL_PARENTS[j]
        glob_rot[:, j] = glob_rot[:, p] @ local_rot[:, j]
        pos[:, j] = pos[:, p] + np.einsum("tij,j->ti", glob_rot[:, p], offsets[j])
    return pos


REST_OFFSETS = np.array([  # a ~1.66 m T-pose facing +Z, left at +X, each joint's offset from its parent (m): the
    # rest skeleton InterSynth's bodies (data/) and intermoe_tools.bodies start from
    [0, 0, 0], [.06, -.09, -.01], [-.06, -.09, -.01], [0, .11, -.03], [.035, -.38, .005], [-.035, -.38, .005],
    [0, .135, .03], [-.01, -.4, -.04], [.01, -.4, -.04], [0, .055, 0], [.02, -.055, .125], [-.02, -.055, .125],
    [0, .21, -.03], [.075, .11, -.02], [-.075, .11, -.02], [0, .09, .05], [.12, .045, -.015], [-.12, .045, -.015],
    [.26, -.015, -.02], [-.26, -.015, -.02], [.25, .01, -.005], [-.25, .01, -.005]])


# ---- canonicalisation (InterGen's process_motion_np, tr3e/InterGen utils/utils.py) -----------------
def facing_yaw(joints: np.ndarray):
    """Yaw (radians about +Y) a person faces, from (..., 22, 3) joints (one frame's: a float): forward = up x (left
    -> right). InterGen uses the hips only; we average hips and shoulders (its face_joint_indx lists both): steadier."""
    j = np.asarray(joints)
    across = (j[..., R_HIP, :] - j[..., L_HIP, :]) + (j[..., R_SHOULDER, :] - j[..., L_SHOULDER, :])  # (..., 3)
    yaw = np.arctan2(across[..., 2].astype(np.float64), -across[..., 0].astype(np.float64))  # up x across: (z, 0, -x)
    return float(yaw) if yaw.ndim == 0 else yaw


def canonicalise(joints: np.ndarray) -> np.ndarray:
    """(T, 22, 3) or (2, T, 22, 3) -> the same in person 1's canonical frame: each person on its own floor
    (lowest point y = 0), person 1's root at x = z = 0 facing +Z at frame 0, person 2 moved with it.
    InterGen canonicalises each person alone and re-expresses person 2; one rigid move is the same motion."""
    single = joints.ndim == 3
    j = np.array(joints[None] if single else joints, dtype=np.float64)  # (P, T, 22, 3)
    j[..., 1] -= j[..., 1].min(axis=(1, 2))[:, None, None]  # each person on its own floor
    j -= j[0, 0, 0] * np.array([1.0, 0.0, 1.0])  # person 1's root at x = z = 0 at frame 0
    j = j @ yaw_matrix(-facing_yaw(j[0, 0])).T  # person 1's frame-0 facing onto +Z
    return (j[0] if single else j).astype(np.float32)


# ---- the 262-value feature ---------------------------------------------------------------------------
def foot_contacts(joints: np.ndarray) -> np.ndarray:
    """(T, 22, 3) -> (T-1, 4) contact bits of FOOT_JOINTS, InterGen's rule: slow and low (the thresholds)."""
    feet = joints[:, FOOT_JOINTS]  # (T, 4, 3)
    slow = ((feet[1:] - feet[:-1]) ** 2).sum(-1) < CONTACT_VEL_THRESHOLD  # (T-1, 4)
    low = feet[:-1, :, 1] < np.array(CONTACT_HEIGHT_THRESHOLD)
    return (slow & low).astype(np.float32)


def features_from_joints(joints: np.ndarray, rot6d: np.ndarray | None = None,
                         canonical: bool = True) -> np.ndarray:
    """Joints (T, 22, 3) or (2, T, 22, 3) (metres, Y up, 30 fps) and local rotations (T, 21, 6) or
    (2, T, 21, 6) -> (T-1, 262) or (2, T-1, 262) features; the last frame is dropped (no velocity).
    rot6d=None (position-only data) fills the rotations with the identity; canonical=False: already is."""
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


# ---- mirroring and person swap (data augmentation, as InterGen's datasets/interhuman.py) ------------
# Mirroring reflects x -> -x and swaps left and right joints; the caption's left/right and clockwise must
# swap too (mirror_caption), or the augmented data teaches the model the wrong hand; a person swap swaps
# 'the first person' and 'the second' (swap_caption). Both are intermoe_tools.captions'.
_MIRROR = np.diag([-1.0, 1.0, 1.0])


def mirror_joints(joints: np.ndarray) -> np.ndarray:
    """(..., 22, 3) -> the same motion reflected left/right."""
    return (joints * np.array([-1.0, 1.0, 1.0], dtype=joints.dtype))[..., MIRROR_JOINT_PERM, :]


def mirror_rot6d(rot6d: np.ndarray) -> np.ndarray:
    """(..., 21, 6) local rotations -> mirrored: R -> M R M, M = diag(-1, 1, 1), then left and right swap
    (the same as InterGen's hard-coded sign flips, whatever the 6D layout)."""
    R = _MIRROR @ matrix_from_rot6d(np.asarray(rot6d, dtype=np.float64)) @ _MIRROR  # (..., 21, 3, 3)
    perm = [p - 1 for p in MIRROR_JOINT_PERM[1:]]  # non-root joints, indices shifted by one
    return rot6d_from_matrix(R)[..., perm, :].astype(np.asarray(rot6d).dtype)


# ---- normalisation -----------------------------------------------------------------------------------
class Normalizer:
    """(x - mean) / std with one (262,) mean and std shared by both people (InterGen's choice), on numpy
    arrays or torch tensors (..., 262)."""

    STD_FLOOR = 1e-2  # features that barely move (e.g. a joint that never bends) would otherwise blow up

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.maximum(np.asarray(std, dtype=np.float32), self.STD_FLOOR)
        if self.mean.shape != (FEAT_DIM,) or self.std.shape != (FEAT_DIM,):
            raise ValueError(f"Normalizer: mean and std must have shape ({FEAT_DIM},), "
                             f"got {self.mean.shape} and {self.std.shape}")

    @classmethod
    def fit(cls, features) -> "Normalizer":
        """Statistics of (..., 262) arrays from any iterable, one array in memory at a time, merged by
        Chan et al.'s (1979) update (as exact as numpy on the concatenation):
            mean = mean_a + d n_b / n,   M2 = M2_a + M2_b + d^2 n_a n_b / n,   d = mean_b - mean_a."""
        n, mean, m2 = 0, np.zeros(FEAT_DIM), np.zeros(FEAT_DIM)
        for f in features:
            x = np.asarray(f, dtype=np.float64).reshape(-1, FEAT_DIM)  # (frames, 262)
            if len(x) == 0:
                continue
            n_b, mean_b = len(x), x.mean(0)
            d = mean_b - mean
            m2 += ((x - mean_b) ** 2).sum(0) + d ** 2 * (n * n_b / (n + n_b))
            mean += d * (n_b / (n + n_b))
            n += n_b
        if n == 0:
            raise ValueError("Normalizer.fit: no feature frames to take statistics of")
        return cls(mean, np.sqrt(m2 / n))

    def _stats(self, x):  # numpy arrays, or tensors on x's device and dtype
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

    def state_dict(self) -> dict:  # plain lists of floats: checkpoints load with weights_only=True
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_state_dict(cls, d) -> "Normalizer":
        return cls(np.asarray(d["mean"]), np.asarray(d["std"]))


# =====================================================================================================
# 2. Records and the dataset
# =====================================================================================================
# A *record* is one interaction before any processing, whatever its source:
#   {"id": str, "joints": (2, T, 22, 3) float32 metres Y up, "rot6d": (2, T, 21, 6) float32 or None,
#    "captions": [str, ...], "meta": dict (InterSynth's ground truth; empty for InterHuman)}
# The intersynth package (data/intersynth/) generates them; intermoe_tools/interhuman.py reads InterHuman's
# files into them. Both import this module; it imports neither.
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
    r = None if rec.get("rot6d") is None else np.asarray(rec["rot6d"])
    if r is not None and r.shape != j.shape[:2] + (N_JOINTS - 1, 6):
        raise DataError(f"{where}: rot6d must have shape {j.shape[:2] + (N_JOINTS - 1, 6)}, got {r.shape}")
    if r is not None and not np.isfinite(r).all():
        raise DataError(f"{where}: rot6d contains NaN or inf")
    if not [c for c in rec.get("captions") or [] if isinstance(c, str) and c.strip()]:
        raise DataError(f"{where}: no caption")


def _pick_caption(captions: list[str], rng, train: bool, swap: bool, mirror: bool) -> str:
    """One of a clip's captions (a random one when training), rewritten to follow a swap and a mirror."""
    caps = [c for c in captions if c.strip()]
    caption = caps[int(rng.integers(len(caps)))] if train else caps[0]
    caption = swap_caption(caption) if swap else caption
    return mirror_caption(caption) if mirror else caption


class InteractionDataset(torch.utils.data.Dataset):
    """Records as the model sees them: a fetch swaps the people (p = swap_prob) and mirrors (p = mirror_prob,
    caption included), canonicalises, computes the (2, T-1, 262) features, normalises, crops to max_frames
    (a random window when training) and picks a caption. Bad records are left out with a warning."""

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
            warnings.warn(f"InteractionDataset: left out {len(self.errors)} bad clips:\n  " + "\n  ".join(self.errors[:20]))
        if not good:
            raise DataError("InteractionDataset: no usable clip" + (f"; first error: {self.errors[0]}" if self.errors else ""))
        self.records, self.normalizer, self.train, self.max_frames = good, normalizer, train, max_frames
        self.swap_prob = swap_prob if train else 0.0
        self.mirror_prob = mirror_prob if train else 0.0
        # With a seed, a fetch draws from its own generator keyed by (seed, epoch, index): the same item in
        # the same epoch is augmented alike whatever order, worker or resumed run fetches it.
        self.seed, self.epoch, self._rng = seed, 0, np.random.default_rng()

    def __len__(self):
        return len(self.records)

    def features(self, i: int, swap: bool = False, mirror: bool = False) -> np.ndarray:
        """Un-normalised (2, T-1, 262) features of record i, with the chosen augmentation."""
        rec = self.records[i]
        joints, rot = rec["joints"], rec.get("rot6d")
        if swap:
            joints, rot = joints[::-1], None if rot is None else rot[::-1]
        if mirror:
            joints, rot = mirror_joints(joints), None if rot is None else mirror_rot6d(rot)
        return features_from_joints(joints, rot)

    def fit_normalizer(self) -> Normalizer:
        """Statistics of every record as recorded and mirrored (mirroring negates some rotation components;
        without the mirrors a value constant in the data would blow up when normalised), one clip at a time."""
        return Normalizer.fit(f for i in range(len(self)) for f in (self.features(i), self.features(i, mirror=True)))

    def __getitem__(self, i: int) -> dict:
        rng = self._rng if self.seed is None else np.random.default_rng([self.seed, self.epoch, i])
        swap, mirror = bool(rng.random() < self.swap_prob), bool(rng.random() < self.mirror_prob)
        feats = self.features(i, swap, mirror)  # (2, T-1, 262)
        if feats.shape[1] > self.max_frames:
            start = int(rng.integers(0, feats.shape[1] - self.max_frames + 1)) if self.train else 0
            feats = feats[:, start:start + self.max_frames]
        if self.normalizer is not None:
            feats = self.normalizer.normalise(feats)
        return {"motion": torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32)),
                "length": feats.shape[1], "caption": _pick_caption(self.records[i]["captions"], rng, self.train,
                                                                   swap, mirror),
                "id": self.records[i]["id"], "swapped": swap, "mirrored": mirror}


def collate(batch: list[dict]) -> dict:
    """Dataset items' "motion" (2, T_i, 262) or stage 2's "latent" (2, T_i', C) -> zero-padded (B, 2, T, ...),
    mask (B, T) bool (True = real frame), lengths (B,), captions, ids. Motion's T is a multiple of 4 (the VAE)."""
    key = "motion" if "motion" in batch[0] else "latent"
    lengths = torch.tensor([b["length"] for b in batch])
    multiple = 4 if key == "motion" else 1
    T = int(math.ceil(int(lengths.max()) / multiple) * multiple)
    x = torch.zeros(len(batch), 2, T, batch[0][key].shape[-1])
    for k, b in enumerate(batch):
        x[k, :, :b["length"]] = b[key]
    mask = torch.arange(T)[None, :] < lengths[:, None]  # (B, T)
    return {key: x, "mask": mask, "lengths": lengths,
            "captions": [b["caption"] for b in batch], "ids": [b["id"] for b in batch]}


# =====================================================================================================
# 3. The Causal-Skeletal VAE (paper, Method)
# =====================================================================================================
# One person's motion (T, 262) <-> latents (T/4, 448): a skeletal graph convolution mixes neighbouring joints,
# a causal convolution mixes frames, and neither ever looks into the future.
#
#   (B, T, 262) --split per joint--> (B, T, 22, 13) --per-joint MLP--> (B, T, 22, C)
#     --[res ST blocks on the 22-joint graph]--> pool 22 joints -> 12 parts, T -> T/2
#     --[res ST blocks on the 12-part graph]---> pool 12 parts  ->  7 parts, T/2 -> T/4
#     --per-part mu/logvar head--> z: (B, T/4, 7, C) = (B, T/4, 448) at C = 64
#   and the decoder walks back up the same ladder (unpool, upsample time by repetition, blocks).
#
# Causal: latent frame k sees only input frames < 4(k+1); decoded frame t only latent frames <= t // 4.

# ---- 3.1 The skeleton at three resolutions: 22 joints -> 12 parts -> 7 parts -------------------------
# Each coarse node is a chain of finer ones (every node in one group): pooling averages a group, unpooling copies
# it back. Our grouping (the authors' also pools 22 -> 12 -> 7); the pelvis, the trajectory, stays alone.
PARTS_12 = {  # part name: SMPL joint indices (JOINT_NAMES order); chest is spine3, where neck and collars meet
    "pelvis": [0], "left_thigh": [1, 4], "left_foot": [7, 10], "right_thigh": [2, 5], "right_foot": [8, 11],
    "spine": [3, 6], "chest": [9], "head": [12, 15], "left_shoulder": [13, 16], "left_forearm": [18, 20],
    "right_shoulder": [14, 17], "right_forearm": [19, 21]}
PARTS_7 = {"pelvis": [0], "left_leg": [1, 2], "right_leg": [3, 4], "torso": [5, 6], "head": [7],  # PARTS_12 indices
           "left_arm": [8, 9], "right_arm": [10, 11]}


def group_membership(groups: dict, n_in: int) -> torch.Tensor:
    """(n_out, n_in) 0/1 matrix: M[g, j] = 1 iff node j belongs to group g."""
    M = torch.zeros(len(groups), n_in)
    for g, members in enumerate(groups.values()):
        M[g, members] = 1.0
    assert (M.sum(0) == 1).all(), "the groups must partition the nodes"
    return M


def coarsen_adjacency(A: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
    """The quotient graph (n_out, n_out): groups are neighbours iff an edge joins their members, (M A M^T) > 0."""
    return ((M @ A @ M.T) > 0).float()


A_JOINTS = torch.eye(N_JOINTS)                        # (22, 22) the SMPL tree, self loops included
for _j, _p in enumerate(SMPL_PARENTS[1:], start=1):
    A_JOINTS[_j, _p] = A_JOINTS[_p, _j] = 1.0
M_12 = group_membership(PARTS_12, N_JOINTS)           # (12, 22)
M_7 = group_membership(PARTS_7, len(PARTS_12))        # (7, 12)
A_12 = coarsen_adjacency(A_JOINTS, M_12)              # (12, 12)
A_7 = coarsen_adjacency(A_12, M_7)                    # (7, 7)


# ---- 3.2 Per-joint tokens: the 262 feature cut into 22 joint tokens of 13 values --------------------
JOINT_TOKEN_DIM = 13  # position 3 + 6D local rotation 6 + velocity 3 + contact 1 (0 off the feet)


def features_to_joint_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, T, 262) -> (B, T, 22, 13) joint tokens [pos 3, rot6d 6, vel 3, contact 1]; the root's rotation
    and the non-foot joints' contact slots are zeros."""
    B, T, D = x.shape
    assert D == FEAT_DIM, f"expected (B, T, {FEAT_DIM}) features, got {tuple(x.shape)}"
    pos = x[..., FEATURE_SLICES["positions"]].reshape(B, T, N_JOINTS, 3)        # (B, T, 22, 3)
    vel = x[..., FEATURE_SLICES["velocities"]].reshape(B, T, N_JOINTS, 3)       # (B, T, 22, 3)
    rot = x[..., FEATURE_SLICES["rotations"]].reshape(B, T, N_JOINTS - 1, 6)    # (B, T, 21, 6)
    rot = torch.cat([rot.new_zeros(B, T, 1, 6), rot], dim=2)                    # (B, T, 22, 6)
    contact = x.new_zeros(B, T, N_JOINTS, 1)                                     # (B, T, 22, 1)
    contact[:, :, FOOT_JOINTS, 0] = x[..., FEATURE_SLICES["contacts"]]
    return torch.cat([pos, rot, vel, contact], dim=-1)                          # (B, T, 22, 13)


def joint_tokens_to_features(tok: torch.Tensor) -> torch.Tensor:
    """(B, T, 22, 13) -> (B, T, 262), the inverse (the slots the feature has no place for are dropped)."""
    B, T = tok.shape[:2]
    pos = tok[..., 0:3].reshape(B, T, N_JOINTS * 3)                  # (B, T, 66)
    rot = tok[:, :, 1:, 3:9].reshape(B, T, (N_JOINTS - 1) * 6)      # (B, T, 126), root dropped
    vel = tok[..., 9:12].reshape(B, T, N_JOINTS * 3)                 # (B, T, 66)
    contact = tok[:, :, FOOT_JOINTS, 12]                             # (B, T, 4)
    return torch.cat([pos, vel, rot, contact], dim=-1)               # (B, T, 262), FEATURE_SLICES order


class PerNodeLinear(nn.Module):
    """A Linear with its own weights per node: (..., N, d_in) -> (..., N, d_out), one einsum for all N."""

    def __init__(self, n_nodes: int, d_in: int, d_out: int):
        super().__init__()
        bound = d_in ** -0.5  # nn.Linear's default initialisation range
        self.weight = nn.Parameter(torch.empty(n_nodes, d_in, d_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_nodes, d_out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("...ni,nio->...no", x, self.weight) + self.bias


def per_node_mlp(n_nodes: int, d_in: int, d_hidden: int, d_out: int) -> nn.Sequential:
    """Linear -> SiLU -> Linear, separate weights per node: (..., N, d_in) -> (..., N, d_out)."""
    return nn.Sequential(PerNodeLinear(n_nodes, d_in, d_hidden), nn.SiLU(), PerNodeLinear(n_nodes, d_hidden, d_out))


# ---- 3.3 Spatio-temporal convolution: graph conv over joints + causal conv over time ----------------
class CausalSTConv(nn.Module):
    """One spatio-temporal convolution on tokens (B, T, N, C) over an N-node graph with adjacency A:
        out = W1 x + (A W2 x) / deg  +  causal temporal conv (frame t sees frames t-2, t-1, t only)
    The temporal conv is a Conv2d over (time, node index) with 3 taps along the node axis, as in the authors'
    code: the node axis is the index order, not the skeleton (neighbours are the graph conv's job)."""

    def __init__(self, adjacency: torch.Tensor, dim: int, kernel_size: int = 3):
        super().__init__()
        self.register_buffer("adj_norm", adjacency / adjacency.sum(1, keepdim=True))  # A / deg, (N, N)
        self.w1 = nn.Linear(dim, dim)
        self.w2 = nn.Linear(dim, dim)
        self.time_pad = kernel_size - 1  # all the padding goes in front: causal
        self.temporal = nn.Conv2d(dim, dim, (kernel_size, 3), padding=(0, 1))  # (time, node index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The docstring's formula, W1 folded into the conv's tap on the current frame and node (one product fewer:
        # docs/speed.md), W2's bias taken out of A / deg (its rows sum to 1); tests/test_vae.py checks it.
        kj = self.temporal.weight.shape[-1]
        weight = self.temporal.weight.clone()                 # (C_out, C_in, 3 frames, kj nodes)
        weight[:, :, -1, kj // 2] += self.w1.weight           # kernel row -1 = the current frame (causal pad)
        bias = self.temporal.bias + self.w1.bias + self.w2.bias
        h = F.pad(x, (0, 0, 0, 0, self.time_pad, 0))          # (B, T + 2, N, C): 2 frames in front, none after
        h = h.permute(0, 3, 1, 2)                             # (B, C, T + 2, N) view for conv2d
        out = F.conv2d(h, weight, bias, padding=(0, kj // 2)).permute(0, 2, 3, 1)  # (B, T, N, C)
        return out + torch.einsum("nm,btmc->btnc", self.adj_norm, F.linear(x, self.w2.weight))  # + A W2 x / deg


class ResSTBlock(nn.Module):
    """x + Dropout(STConv(SiLU(STConv(SiLU(x))))): the residual unit of both encoder and decoder."""

    def __init__(self, adjacency: torch.Tensor, dim: int, dropout: float):
        super().__init__()
        self.conv1, self.conv2 = CausalSTConv(adjacency, dim), CausalSTConv(adjacency, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, N, C) -> (B, T, N, C)
        return x + self.dropout(self.conv2(F.silu(self.conv1(F.silu(x)))))


class STPool(nn.Module):
    """(B, T, N_in, C) -> (B, T/2, N_out, C): each group's mean, then frames 2k and 2k+1 averaged (causal:
    output frame k sees nothing after input frame 2k+1)."""

    def __init__(self, membership: torch.Tensor):
        super().__init__()
        self.register_buffer("pool", membership / membership.sum(1, keepdim=True))  # (N_out, N_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.einsum("on,btnc->btoc", self.pool, x)  # (B, T, N_out, C)
        B, T, N, C = x.shape
        return x.reshape(B, T // 2, 2, N, C).mean(2)       # (B, T/2, N_out, C)


class STUnpool(nn.Module):
    """(B, T, N_out, C) -> (B, 2T, N_in, C): each member gets its group's token, every frame twice (causal)."""

    def __init__(self, membership: torch.Tensor):
        super().__init__()
        self.register_buffer("unpool", membership.T.clone())  # (N_in, N_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.einsum("no,btoc->btnc", self.unpool, x)  # (B, T, N_in, C)
        return x.repeat_interleave(2, dim=1)                 # (B, 2T, N_in, C)


# ---- 3.4 The VAE -----------------------------------------------------------------------------------
@dataclass
class VAEConfig:
    width: int = 64            # channels of every joint/part token; the latent is 7 parts x width (448)
    n_blocks: int = 2          # residual ST blocks per level (the authors' config: 1 + 1)
    dropout: float = 0.1       # inside each residual block (authors' value); off in eval mode
    hidden: int = 64           # hidden width of the per-joint input/output MLPs (paper: 13 -> 64 -> 64)

    @property
    def latent_dim(self) -> int:
        return len(PARTS_7) * self.width  # 7 x 64 = 448 per latent frame


class CausalSkeletalVAE(nn.Module):
    """Causal-Skeletal VAE: one person's normalised features (B, T, 262) <-> latents (B, ceil(T/4), 448).
    Both people share it: encode them stacked along the batch."""

    downsample = 4  # 2 levels, time / 2 each

    def __init__(self, cfg: VAEConfig = VAEConfig()):
        super().__init__()
        self.cfg = cfg
        C = cfg.width

        def blocks(A):  # one level: n_blocks residual ST blocks on the graph A
            return nn.Sequential(*[ResSTBlock(A, C, cfg.dropout) for _ in range(cfg.n_blocks)])

        # encoder: joints -> 12 parts -> 7 parts
        self.joint_in = per_node_mlp(N_JOINTS, JOINT_TOKEN_DIM, cfg.hidden, C)
        self.enc_joints, self.pool1 = blocks(A_JOINTS), STPool(M_12)
        self.enc_parts, self.pool2 = blocks(A_12), STPool(M_7)
        self.to_dist = PerNodeLinear(len(PARTS_7), C, 2 * C)  # per part: mu and logvar
        # decoder: the mirror image, 7 parts -> 12 parts -> joints
        self.unpool2, self.dec_parts = STUnpool(M_7), blocks(A_12)
        self.unpool1, self.dec_joints = STUnpool(M_12), blocks(A_JOINTS)
        self.joint_out = per_node_mlp(N_JOINTS, C, cfg.hidden, JOINT_TOKEN_DIM)

    def encode_dist(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, 262) -> mu, logvar, each (B, ceil(T/4), 448). A T not divisible by 4 is padded by
        repeating the last frame (after the clip: causality keeps the earlier latents unchanged)."""
        B, T, _ = x.shape
        pad = -T % self.downsample
        if pad:
            x = torch.cat([x, x[:, -1:].expand(B, pad, x.shape[-1])], dim=1)  # (B, T + pad, 262)
        h = self.joint_in(features_to_joint_tokens(x))  # (B, T', 22, C)
        h = self.pool1(self.enc_joints(h))               # (B, T'/2, 12, C)
        h = self.pool2(self.enc_parts(h))                # (B, T'/4, 7, C)
        mu, logvar = self.to_dist(h).chunk(2, dim=-1)    # 2 x (B, T'/4, 7, C)
        logvar = logvar.clamp(-20.0, 10.0)               # exp(logvar) in the KL cannot overflow after a bad step
        return mu.flatten(2), logvar.flatten(2)          # 2 x (B, T'/4, 7 * C)

    def encode(self, x: torch.Tensor, sample: bool = False) -> torch.Tensor:
        """x (B, T, 262) -> z (B, ceil(T/4), 448): the posterior mean, or a sample if sample=True."""
        mu, logvar = self.encode_dist(x)
        return reparameterize(mu, logvar) if sample else mu

    def decode(self, z: torch.Tensor, T: int | None = None) -> torch.Tensor:
        """z (B, Tz, 448) -> (B, T, 262) normalised features; T (at most 4 Tz, default 4 Tz) crops the end."""
        B, Tz, _ = z.shape
        assert T is None or T <= self.downsample * Tz, f"{Tz} latent frames decode to at most {4 * Tz} frames"
        h = z.reshape(B, Tz, len(PARTS_7), self.cfg.width)  # (B, Tz, 7, C)
        h = self.dec_parts(self.unpool2(h))                  # (B, 2 Tz, 12, C)
        h = self.dec_joints(self.unpool1(h))                 # (B, 4 Tz, 22, C)
        out = joint_tokens_to_features(self.joint_out(h))    # (B, 4 Tz, 262)
        return out if T is None else out[:, :T]

    def forward(self, x: torch.Tensor, sample: bool | None = None):
        """x (B, T, 262) -> (recon (B, T, 262), mu, logvar); z is sampled in training mode unless `sample`."""
        mu, logvar = self.encode_dist(x)
        z = reparameterize(mu, logvar) if (self.training if sample is None else sample) else mu
        return self.decode(z, x.shape[1]), mu, logvar


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """z = mu + sigma * eps, eps ~ N(0, I) (Kingma & Welling 2014)."""
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


# ---- 3.5 The VAE loss (paper, Method: recon 1.0 + position 0.5 + velocity 0.5 + rotation 0.5 + KL 0.02) ------
VAE_LOSS_WEIGHTS = {"recon": 1.0, "pos": 0.5, "vel": 0.5, "rot": 0.5, "kl": 0.02}


def _masked_mean(err: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of err (B, T, F) over the valid frames' elements; mask (B, T) bool or None."""
    if mask is None:
        return err.mean()
    m = mask[..., None].to(err.dtype)                 # (B, T, 1)
    return (err * m).sum() / (m.sum() * err.shape[-1]).clamp(min=1)


def vae_loss(recon, x, mu, logvar, mean, std, mask=None, weights=None):
    """-> (total, {term: float}). recon, x (B, T, 262) normalised; mu, logvar (B, ceil(T/4), 448); mean,
    std (262,) to measure positions, velocities, rotations in real units; mask (B, T) bool (a latent frame
    counts for the KL if any of its 4 frames is valid); weights overrides VAE_LOSS_WEIGHTS. Each term is MSE."""
    w = {**VAE_LOSS_WEIGHTS, **(weights or {})}
    recon_real, x_real = recon * std + mean, x * std + mean  # (B, T, 262) de-normalised
    terms = {"recon": _masked_mean((recon - x) ** 2, mask)}
    for name, part in (("pos", "positions"), ("vel", "velocities"), ("rot", "rotations")):
        s = FEATURE_SLICES[part]
        terms[name] = _masked_mean((recon_real[..., s] - x_real[..., s]) ** 2, mask)
    kl = 0.5 * (mu ** 2 + logvar.exp() - logvar - 1.0)  # KL(N(mu, sigma) || N(0, I)) per element
    latent_mask = None
    if mask is not None:  # a latent frame counts if any of its 4 frames is real
        padded = F.pad(mask, (0, 4 * mu.shape[1] - mask.shape[1]))  # (B, 4 Tz)
        latent_mask = padded.reshape(mask.shape[0], mu.shape[1], 4).any(-1)  # (B, Tz)
    terms["kl"] = _masked_mean(kl, latent_mask)
    total = sum(w[k] * v for k, v in terms.items())
    return total, {"total": total.item(), **{k: v.item() for k, v in terms.items()}}


# =====================================================================================================
# 4. The text encoder
# =====================================================================================================
# The paper: frozen CLIP ViT-L/14, a trainable 2-layer transformer, its end-of-text feature through a Linear
# (as InterGen's). CLIP cannot be downloaded here, so we learn that shape from scratch (words -> embeddings +
# positions -> transformer -> <eos> -> Linear); a pretrained encoder plugs in: TextEncoder(..., pretrained=fn).
# Words become ids by a word-level vocabulary of the training captions (intermoe_tools.vocab.Vocab, where CLIP has its
# byte-pair tokenizer).
def sinusoidal_embedding(pos: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(...) positions or diffusion steps -> (..., dim) [sin | cos] halves at frequencies max_period^(-i / half),
    i = 0 .. half - 1 (Vaswani et al. 2017, section 3.5)."""
    assert dim % 2 == 0, "sinusoidal_embedding needs an even dim"
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=pos.device, dtype=torch.float32) / half)
    angles = pos.to(torch.float32)[..., None] * freqs  # (..., half)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)  # (..., dim)


@dataclass
class TextConfig:
    d_model: int = 256       # token width of the small transformer (CLIP-L has 768; we learn from scratch)
    n_layers: int = 2        # transformer layers, as the trainable part of InterGen's text encoder
    n_heads: int = 4         # attention heads (d_model / n_heads = 64 per head)
    dropout: float = 0.1     # in the transformer layers
    max_len: int = 64        # longest caption in tokens incl. <eos>; InterHuman captions are far shorter
    d_cond: int = 768        # sentence embedding width = the denoiser's width (paper: 768)


class TextEncoder(nn.Module):
    """B captions -> sentence embedding (B, d_cond), token features (B, L, d_model), mask (B, L):
    ids -> embedding + positions -> transformer -> LayerNorm -> <eos> feature -> Linear. `pretrained`: a frozen
    callable list[str] -> (B, d_in) replaces the transformer (a trainable Linear makes its <eos> feature; it is
    neither trained nor saved here, and `vocab` may be None)."""

    def __init__(self, vocab: Vocab | None, cfg: TextConfig = TextConfig(), pretrained=None):
        super().__init__()
        self.vocab, self.cfg = vocab, cfg
        object.__setattr__(self, "pretrained", pretrained)  # a plain attribute, not a submodule: not ours to save
        if pretrained is None:
            assert vocab is not None, "without a pretrained encoder the vocabulary is needed"
            self.embed = nn.Embedding(len(vocab), cfg.d_model, padding_idx=0)
            pe = sinusoidal_embedding(torch.arange(cfg.max_len), cfg.d_model)  # (max_len, d_model)
            self.register_buffer("positions", pe, persistent=False)
            layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, 4 * cfg.d_model, cfg.dropout,
                                               activation="gelu", batch_first=True, norm_first=True)
            self.transformer = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        else:
            with torch.no_grad():
                d_in = pretrained([""]).shape[-1]
            self.from_pretrained = nn.Linear(d_in, cfg.d_model)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.to_cond = nn.Linear(cfg.d_model, cfg.d_cond)

    def forward(self, texts: list[str]):
        """B captions ("" = no caption) -> cond (B, d_cond), tokens (B, L, d_model), mask (B, L) bool."""
        device = self.to_cond.weight.device
        if self.pretrained is not None:
            with torch.no_grad():  # frozen: no gradient ever reaches the pretrained weights
                emb = self.pretrained(list(texts))                   # (B, d_in)
            eos = self.norm(self.from_pretrained(emb.to(device=device, dtype=self.to_cond.weight.dtype)))  # (B, d_model)
            return self.to_cond(eos), eos[:, None], torch.ones(len(texts), 1, dtype=torch.bool, device=device)
        ids, mask = self.vocab.encode(texts, self.cfg.max_len)      # (B, L), (B, L)
        ids, mask = ids.to(device), mask.to(device)
        h = self.embed(ids) + self.positions[:ids.shape[1]]          # (B, L, d_model)
        h = self.norm(self.transformer(h, src_key_padding_mask=~mask))  # (B, L, d_model)
        eos = h[torch.arange(len(ids), device=device), mask.sum(1) - 1]  # (B, d_model): each row's <eos>
        return self.to_cond(eos), h, mask


# =====================================================================================================
# 5. Latent diffusion: cosine schedule, x0 prediction, DDIM with classifier-free guidance
# =====================================================================================================
def cosine_alpha_bar(n_steps: int, s: float = 0.008) -> np.ndarray:
    """alpha_bar for t = 0..n-1 (the noise level after step t), float64: the cosine schedule (Nichol &
    Dhariwal 2021, eq. 17) f(t) = cos^2((t/n + s) / (1 + s) * pi/2), alpha_bar = f(t)/f(0), betas <= 0.999."""
    t = np.arange(n_steps + 1, dtype=np.float64) / n_steps
    f = np.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    betas = np.clip(1 - f[1:] / f[:-1], 0, 0.999)
    return np.cumprod(1 - betas)


class Diffusion(nn.Module):
    """Gaussian diffusion on latents predicting x0, as InterGen (models/gaussian_diffusion.py) and InterMoE do;
    the schedule is float32 buffers (computed in float64), so `.to(device)` moves it."""

    def __init__(self, n_steps: int = 1000):
        super().__init__()
        self.n_steps = n_steps
        ab = cosine_alpha_bar(n_steps)
        self.register_buffer("sqrt_ab", torch.tensor(np.sqrt(ab), dtype=torch.float32))
        self.register_buffer("sqrt_1m_ab", torch.tensor(np.sqrt(1 - ab), dtype=torch.float32))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Forward process q(x_t | x_0) = N(sqrt(ab_t) x0, (1 - ab_t) I) (DDPM eq. 4); t (B,)."""
        shape = (-1,) + (1,) * (x0.dim() - 1)  # (B,) -> (B, 1, ..., 1)
        return self.sqrt_ab[t].view(shape) * x0 + self.sqrt_1m_ab[t].view(shape) * noise

    def loss(self, x0_pred: torch.Tensor, x0: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """MSE of x0 (B, P, T', C) over valid frames, mask (B, T') bool."""
        m = mask[:, None, :, None].to(x0.dtype)  # (B, 1, T', 1)
        err = ((x0_pred.float() - x0.float()) ** 2) * m
        return err.sum() / (m.sum() * x0.shape[1] * x0.shape[-1]).clamp(min=1)

    def ddim_timesteps(self, steps: int) -> list[int]:
        """`steps` evenly spaced timesteps from n-1 down to 0."""
        if not 1 <= steps <= self.n_steps:
            raise ValueError(f"sampling steps must be in 1..{self.n_steps}, got {steps}")
        return sorted({int(round(v)) for v in np.linspace(0, self.n_steps - 1, steps)}, reverse=True)

    def ddim_step(self, x_t: torch.Tensor, x0_pred: torch.Tensor, t: int, t_prev: int) -> torch.Tensor:
        """Deterministic DDIM (Song et al. 2021, eq. 12, sigma = 0): the noise the x0 prediction implies,
        re-applied to x0 at level t_prev (t_prev < 0: x0 itself)."""
        if t_prev < 0:
            return x0_pred
        eps = (x_t - self.sqrt_ab[t] * x0_pred) / self.sqrt_1m_ab[t]
        return self.sqrt_ab[t_prev] * x0_pred + self.sqrt_1m_ab[t_prev] * eps

    @torch.no_grad()
    def sample(self, denoise_fn, shape, steps: int = 50, generator: torch.Generator | None = None,
               device=None, progress: bool = False) -> torch.Tensor:
        """DDIM from pure noise; denoise_fn(x_t, t (B,) long) -> x0. The starting noise, drawn from
        `generator`, is the only randomness."""
        x = torch.randn(shape, generator=generator, device=generator.device if generator is not None else device)
        x = x if device is None else x.to(device)  # a CPU generator's noise, then on the model's device
        from tqdm.auto import tqdm
        ts = self.ddim_timesteps(steps)
        for i, t in enumerate(tqdm(ts, desc="DDIM", leave=False, disable=not progress)):
            x0 = denoise_fn(x, torch.full((shape[0],), t, device=x.device, dtype=torch.long))
            x = self.ddim_step(x, x0, t, ts[i + 1] if i + 1 < len(ts) else -1)
        return x


# =====================================================================================================
# 6a. The cooperative denoiser's building blocks: timestep embedding, AdaLN, attention
# =====================================================================================================
class TimestepEmbedding(nn.Module):
    """Diffusion step t (B,) -> (B, d): sinusoids, then Linear, SiLU, Linear (as InterGen and MDM)."""

    def __init__(self, d: int):
        super().__init__()
        self.d = d
        self.mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(sinusoidal_embedding(t, self.d).to(self.mlp[0].weight.dtype))


class AdaLN(nn.Module):
    """AdaLN(h, emb) = LN(h) * (1 + scale) + shift, (scale, shift) = Linear(SiLU(emb)): h (B, T, d), emb
    (B, d_cond). The Linear starts at zero, so every AdaLN starts as a plain LayerNorm (DiT's adaLN-zero)."""

    def __init__(self, d: int, d_cond: int):
        super().__init__()
        self.norm = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.to_scale_shift = nn.Linear(d_cond, 2 * d)
        nn.init.zeros_(self.to_scale_shift.weight)
        nn.init.zeros_(self.to_scale_shift.bias)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.to_scale_shift(F.silu(emb)).chunk(2, dim=-1)  # (B, d) each
        return self.norm(h) * (1 + scale[:, None]) + shift[:, None]


def attend(q, k, v, key_mask, dropout_p: float = 0.0) -> torch.Tensor:
    """Multi-head attention: q (B, H, Tq, c), k, v (B, H, Tk, c), key_mask (B, Tk) True on real frames ->
    (B, Tq, H * c). An all-zero key and value are appended (the authors' add_zero_attn=True): a query may
    attend to "nothing", and a row whose keys are all padding gives 0."""
    k, v = F.pad(k, (0, 0, 0, 1)), F.pad(v, (0, 0, 0, 1))  # (B, H, Tk + 1, c): the zero key and value
    attn_mask = F.pad(key_mask, (0, 1), value=True)[:, None, None, :]  # (B, 1, 1, Tk + 1), over heads, queries
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)  # (B, H, Tq, c)
    return rearrange(out, "b h t c -> b t (h c)")  # (B, Tq, d)


class SelfAttention(nn.Module):
    """h (B, T, d), emb, mask (B, T) -> the update to add to h: AdaLN, then attention over one's own frames."""

    def __init__(self, d: int, n_heads: int, d_cond: int, dropout: float):
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.norm, self.qkv, self.proj = AdaLN(d, d_cond), nn.Linear(d, 3 * d), nn.Linear(d, d)

    def forward(self, h, emb, mask):
        q, k, v = rearrange(self.qkv(self.norm(h, emb)), "b t (three h c) -> three b h t c",
                            three=3, h=self.n_heads)  # (B, H, T, c) each
        return self.proj(attend(q, k, v, mask, self.dropout if self.training else 0.0))


class CrossAttention(nn.Module):
    """h, other (B, T, d), emb, mask (B, T) of the partner's frames -> the update to h: queries from one
    person, keys and values from the other, each through its own AdaLN."""

    def __init__(self, d: int, n_heads: int, d_cond: int, dropout: float):
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.norm_q, self.norm_kv = AdaLN(d, d_cond), AdaLN(d, d_cond)  # own person, the partner
        self.q, self.kv, self.proj = nn.Linear(d, d), nn.Linear(d, 2 * d), nn.Linear(d, d)

    def forward(self, h, other, emb, mask):
        q = rearrange(self.q(self.norm_q(h, emb)), "b t (h c) -> b h t c", h=self.n_heads)  # (B, H, T, c)
        k, v = rearrange(self.kv(self.norm_kv(other, emb)), "b t (two h c) -> two b h t c",
                         two=2, h=self.n_heads)  # (B, H, T, c) each
        return self.proj(attend(q, k, v, mask, self.dropout if self.training else 0.0))


# =====================================================================================================
# 6b. The Synergistic Router
# =====================================================================================================
ROUTER_MODES = ("synergistic", "motion", "text")


class SynergisticRouter(nn.Module):
    """The Synergistic Router (paper, eq. for R_comb): routing logits (N, T, E) per token and expert,
        R_comb = alpha * R_motion + (1 - alpha) * R_text,  R_motion = h W_m (per frame),  R_text = emb W_t
    h (N, T, d) the residual stream before AdaLN, emb (N, d_cond) the whole condition (timestep + text, as the
    authors' code). alpha = 0.5 fixed (paper); learn_alpha: sigmoid(a), a learnt. Modes 'motion', 'text' alone
    are ablations. The authors' code adds the two logits without alpha: same ranking, a sharper softmax."""

    def __init__(self, d: int, d_cond: int, n_experts: int, mode: str = "synergistic",
                 alpha: float = 0.5, learn_alpha: bool = False):
        super().__init__()
        if mode not in ROUTER_MODES:
            raise ValueError(f"router mode {mode!r} not in {ROUTER_MODES}")
        self.mode = mode
        # only the weights a mode uses exist (DDP refuses parameters that get no gradient)
        self.w_motion = nn.Linear(d, n_experts, bias=False) if mode != "text" else None
        self.w_text = nn.Linear(d_cond, n_experts, bias=False) if mode != "motion" else None
        for lin in (self.w_motion, self.w_text):
            if lin is not None:
                nn.init.normal_(lin.weight, std=0.01)  # small: routing starts close to uniform
        self.learn_alpha = learn_alpha and mode == "synergistic"
        if self.learn_alpha:
            self.alpha_logit = nn.Parameter(torch.tensor(math.log(alpha / (1 - alpha))))
        else:
            self.register_buffer("alpha_value", torch.tensor(float(alpha)), persistent=False)

    @property
    def alpha(self) -> torch.Tensor:
        return torch.sigmoid(self.alpha_logit) if self.learn_alpha else self.alpha_value

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """h (N, T, d), emb (N, d_cond) -> R_comb (N, T, E), in float32 (or float64) with autocast off: the
        gate compares sigmoid(R) with a bias moved by steps of 1e-3, finer than bfloat16 resolves near 0.5."""
        dtype = torch.promote_types(h.dtype, torch.float32)
        with torch.autocast(h.device.type, enabled=False):
            r_motion = F.linear(h.to(dtype), self.w_motion.weight.to(dtype)) if self.w_motion is not None else None
            r_text = F.linear(emb.to(dtype), self.w_text.weight.to(dtype))[:, None] if self.w_text is not None else None
            if self.mode == "motion":
                return r_motion
            if self.mode == "text":
                return r_text.expand(-1, h.shape[1], -1)  # (N, T, E)
            alpha = self.alpha.to(dtype)
            return alpha * r_motion + (1 - alpha) * r_text  # (N, T, E)


# =====================================================================================================
# 6c. The InterMoE block: SwiGLU experts, Dynamic Temporal Selection and the bias rule
# =====================================================================================================
BIAS_EPS = 1e-4  # the biases are clamped to [-1 + BIAS_EPS, -BIAS_EPS], strictly inside (-1, 0)


class SwiGLU(nn.Module):
    """One expert, (..., d) -> (..., d): W_down (SiLU(W_gate x) * W_up x), no biases (Shazeer 2020)."""

    def __init__(self, d: int, d_hidden: int):
        super().__init__()
        self.gate = nn.Linear(d, d_hidden, bias=False)
        self.up = nn.Linear(d, d_hidden, bias=False)
        self.down = nn.Linear(d_hidden, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


@dataclass
class MoEConfig:
    """The InterMoE block's own settings (its width and condition width come from the denoiser)."""
    n_experts: int = 8             # E, the paper's value
    d_expert: int = 1024           # SwiGLU hidden size of each expert (paper: 768 -> 1024 -> 768)
    capacity: float = 1.0          # expected experts per token: k = capacity * S / E tokens per expert
    router_mode: str = "synergistic"  # 'synergistic' | 'motion' | 'text' (router ablations)
    alpha: float = 0.5             # R_comb = alpha * R_motion + (1 - alpha) * R_text, paper: 0.5 fixed
    learn_alpha: bool = False      # True: alpha = sigmoid(learnable a), starting at `alpha`
    routing: str = "batch"         # 'batch': one token pool for the whole batch (paper) | 'sample' (ablation)
    selection: str = "dynamic"     # 'dynamic': sigmoid(R) + b_e > 0 (paper) | 'topk': fixed top-k (ablation)
    bias_init: float = -0.5        # b_e at the start, the paper's value
    bias_step: float = 1e-3        # b_e -= bias_step * sign(count_e - k) per update, the authors' value
    d_shared: int = 0              # >0: a SwiGLU this wide for every real token (DeepSeekMoE's; not the paper's)

    def __post_init__(self):
        if self.routing not in ("batch", "sample"):
            raise ValueError(f"routing must be 'batch' or 'sample', not {self.routing!r}")
        if self.selection not in ("dynamic", "topk"):
            raise ValueError(f"selection must be 'dynamic' or 'topk', not {self.selection!r}")
        if self.d_shared < 0:
            raise ValueError(f"d_shared must be 0 (no shared expert) or a positive width, not {self.d_shared}")
        if self.selection == "topk":
            if self.routing == "sample":
                raise ValueError("top-k is token choice: each token picks alone, there is no pool to make "
                                 "per-sample; use routing='batch' (it only sets how the biases are counted)")
            if self.capacity != int(self.capacity) or not 1 <= self.capacity <= self.n_experts:
                raise ValueError("selection='topk' needs an integer capacity in [1, n_experts]")


class InterMoEBlock(nn.Module):
    """The InterMoE block (paper, Method): Synergistic Router + Dynamic Temporal Selection + E SwiGLU experts.
        M[s, e] = sigmoid(R_comb[s, e]) + b_e;  expert e takes real token s iff M[s, e] > 0
        y_s = sum over the experts s selected of softmax_e(R_comb[s])_e * Expert_e(AdaLN(h_s, emb))
    forward: h (N, T, d), emb (N, d_cond), mask (N, T) -> y (N, T, d), zero where no expert takes a token.
    The pool is every real frame of both people of the batch (the authors' code pools each person apart).
    Bias rule after each optimiser step: b_e -= bias_step * sign(count_e - k), k = capacity * S / E, then
    clamped inside (-1, 0) as the paper says (the authors' code does not clamp; it updates at the next forward).
    Ablations: routing='sample' (expert choice per sample, no bias), selection='topk' (notebooks 05, 06, 09);
    d_shared > 0 adds a shared expert: y_s += Shared(AdaLN(h_s, emb)) on every real token, ungated."""

    def __init__(self, d: int, d_cond: int, cfg: MoEConfig):
        super().__init__()
        self.cfg, self.n_experts = cfg, cfg.n_experts
        self.norm = AdaLN(d, d_cond)
        self.router = SynergisticRouter(d, d_cond, cfg.n_experts, cfg.router_mode, cfg.alpha, cfg.learn_alpha)
        self.experts = nn.ModuleList(SwiGLU(d, cfg.d_expert) for _ in range(cfg.n_experts))
        self.shared = SwiGLU(d, cfg.d_shared) if cfg.d_shared else None
        self.register_buffer("expert_bias", torch.full((cfg.n_experts,), float(cfg.bias_init)))
        self._tally: torch.Tensor | None = None  # counts per expert, then S, since the last bias update
        self.last_selection = self.last_counts = self.last_tokens = None  # the last forward's, for notebooks:
        # (N, T, E) bool, (E,) and 0-d tensors (not ints: reading them would wait for the device)

    def route(self, h, emb, mask, n_persons: int = 1):
        """h (N, T, d), emb (N, d_cond), mask (N, T) bool, rows person-major ([person a of samples 0..B-1;
        person b ...]) -> R_comb, selection (bool), weights = softmax over experts, each (N, T, E). Pure."""
        cfg = self.cfg
        logits = self.router(h, emb)  # (N, T, E)
        prob = torch.sigmoid(logits)  # (N, T, E)
        if cfg.selection == "topk":  # the bias only balances
            top = (prob + self.expert_bias.to(prob.dtype)).topk(int(cfg.capacity), dim=-1).indices  # (N, T, c)
            sel = torch.zeros_like(prob, dtype=torch.bool).scatter_(-1, top, True)  # (N, T, E)
        elif cfg.routing == "batch":
            sel = prob + self.expert_bias.to(prob.dtype) > 0  # (N, T, E): M[s, e] > 0
        else:  # per-sample expert choice: expert e takes the k_i best real tokens of sample i
            pooled = rearrange(prob.masked_fill(~mask[..., None], -1.0), "(p b) t e -> b (p t) e",
                               p=n_persons)  # (B, P*T, E): a sample's two people in one pool
            order = pooled.argsort(dim=1, descending=True, stable=True)  # (B, P*T, E)
            positions = torch.arange(order.shape[1], device=order.device)[None, :, None].expand_as(order)
            ranks = torch.empty_like(order).scatter_(1, order, positions)  # (B, P*T, E): 0 = best in sample
            n_valid = rearrange(mask, "(p b) t -> b (p t)", p=n_persons).sum(1)  # (B,) S_i
            k_i = torch.round(cfg.capacity * n_valid / self.n_experts).clamp(max=n_valid)  # (B,)
            sel = rearrange(ranks < k_i[:, None, None], "b (p t) e -> (p b) t e", p=n_persons)  # (N, T, E)
        return logits, sel & mask[..., None], torch.softmax(logits, dim=-1)  # padding frames select nothing

    def forward(self, h, emb, mask=None, n_persons: int = 1):
        """h (N, T, d), emb (N, d_cond), mask (N, T) bool or None -> y (N, T, d): route, dispatch, combine."""
        N, T, D = h.shape
        mask = torch.ones(N, T, dtype=torch.bool, device=h.device) if mask is None else mask
        _, sel, weights = self.route(h, emb, mask, n_persons)
        x = rearrange(self.norm(h, emb), "n t d -> (n t) d")  # (S_all, D): all N*T token slots
        sel_es = rearrange(sel, "n t e -> e (n t)")  # (E, S_all)
        # Every selected (expert, token) pair, expert by expert (nonzero's row-major order), cut into one run each.
        token_idx = sel_es.nonzero()[:, 1]  # (K,)
        gate = rearrange(weights, "n t e -> e (n t)")[sel_es]  # (K,): each pair's softmax weight, same order
        counts = sel_es.sum(1)  # (E,)
        sizes = counts.tolist()  # one device sync per layer, for the slab sizes
        slabs = x.index_select(0, token_idx).split(sizes)  # E slabs (n_e, D), gathered in one call
        y = torch.zeros_like(x)  # (S_all, D)
        for expert, slab, idx, g in zip(self.experts, slabs, token_idx.split(sizes), gate.split(sizes)):
            # each expert on its own tokens only; on an empty slab too, so every parameter stays in the graph
            y.index_add_(0, idx, (expert(slab) * g[:, None]).to(y.dtype))  # scatter back, weighted
        if self.shared is not None:  # every real token, ungated; padding stays zero
            real = rearrange(mask, "n t -> (n t)").nonzero()[:, 0]  # (S,)
            y.index_add_(0, real, self.shared(x.index_select(0, real)).to(y.dtype))
        with torch.no_grad():  # the last routing (tensors: no device sync), and the training tally
            S = mask.sum()
            self.last_selection, self.last_counts, self.last_tokens = sel.detach(), counts.detach(), S
            if self.training and self.cfg.routing == "batch":  # the per-sample ablation has no bias
                tally = torch.cat([counts, S[None]]).long()  # (E + 1,) int64: exact, and MPS has no float64
                self._tally = tally if self._tally is None else self._tally + tally
        return rearrange(y, "(n t) d -> n t d", n=N)  # (N, T, D)

    @torch.no_grad()
    def apply_tally(self, tally: torch.Tensor) -> None:
        """The bias rule on a tally (E + 1,) of counts and S: b_e -= step * sign(count_e - k), then clamp."""
        self._tally = None
        if self.cfg.routing != "batch":
            return
        counts, S = tally[:-1], tally[-1]
        # sign(count_e - k) as sign(E * count_e - capacity * S): exact in integers for an integer capacity
        capacity = int(self.cfg.capacity) if self.cfg.capacity == int(self.cfg.capacity) else self.cfg.capacity
        step = self.cfg.bias_step * torch.sign(self.n_experts * counts - capacity * S).float()  # (E,)
        self.expert_bias.sub_(step.to(self.expert_bias.dtype)).clamp_(-1 + BIAS_EPS, -BIAS_EPS)

    def stats(self) -> dict:
        """The last forward's routing (empty before the first): counts (E,), tokens S, target k, selections
        per token (1.0 is the capacity-1 target), biases, selection (N, T, E)."""
        if self.last_tokens is None:
            return {}
        S = int(self.last_tokens)
        return dict(counts=self.last_counts, tokens=S, target=self.cfg.capacity * S / self.n_experts,
                    experts_per_token=float(self.last_counts.sum()) / max(S, 1),
                    bias=self.expert_bias.detach().clone(), selection=self.last_selection)


@torch.no_grad()
def update_biases(blocks: list) -> None:
    """The bias rule of these blocks, once per optimiser step: their tallies all-reduced in one call under
    torch.distributed (every rank calls this, so their biases stay equal), then each block's `apply_tally`.
    Only the sign of count_e - k matters, so a forward counted twice (checkpointing) changes nothing."""
    if not blocks:
        return
    zeros = lambda b: torch.zeros(b.n_experts + 1, dtype=torch.long, device=b.expert_bias.device)  # noqa: E731
    tally = torch.stack([zeros(b) if b._tally is None else b._tally for b in blocks])  # (L, E + 1)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tally)
    for b, row in zip(blocks, tally):
        b.apply_tally(row)


class AdaLNFFN(nn.Module):
    """The baseline (the ablation's InterGen + CS-VAE row): AdaLN and one dense SwiGLU where the InterMoE block
    would be, with its call signature (mask and n_persons unused)."""

    def __init__(self, d: int, d_cond: int, d_hidden: int):
        super().__init__()
        self.norm = AdaLN(d, d_cond)
        self.ffn = SwiGLU(d, d_hidden)

    def forward(self, h, emb, mask=None, n_persons: int = 1):
        return self.ffn(self.norm(h, emb))


# =====================================================================================================
# 6d. The Cooperative Denoiser
# =====================================================================================================
@dataclass
class DenoiserConfig:
    """Sizes and switches of the Cooperative MoE Denoiser. Defaults are the paper's (229.15 M parameters)."""
    d_latent: int = 448            # VAE latent per frame: 7 body-part tokens x 64
    d_text: int = 768              # sentence embedding from the text encoder (CLIP ViT-L/14 width in the paper)
    width: int = 768               # d, the transformer width; also the width of the condition emb
    n_layers: int = 8              # the paper's 8 cooperative layers
    n_heads: int = 8               # attention heads (96 channels each at width 768)
    dropout: float = 0.1           # on the attention weights, as the authors' code
    ffn_type: str = "moe"          # 'moe': InterMoE block | 'ffn': one dense AdaLN SwiGLU (ablation baseline)
    d_ffn: int = 1024              # hidden size of the 'ffn' baseline: one expert's size, same compute per token
    moe: MoEConfig = field(default_factory=MoEConfig)  # the InterMoE block's switches (router, routing, ...)

    def __post_init__(self):
        if self.ffn_type not in ("moe", "ffn"):
            raise ValueError(f"ffn_type must be 'moe' or 'ffn', not {self.ffn_type!r}")
        if self.width % self.n_heads:
            raise ValueError("width must be a multiple of n_heads")


class CooperativeBlock(nn.Module):
    """One layer, for one person with the partner as context: h, other (N, T, d), emb (N, d), mask (N, T) ->
    h += SelfAttn(AdaLN(h)); h += CrossAttn(AdaLN(h), AdaLN(other)); h += InterMoEBlock(h) (or the FFN)."""

    def __init__(self, cfg: DenoiserConfig):
        super().__init__()
        d = cfg.width
        self.self_attn = SelfAttention(d, cfg.n_heads, d, cfg.dropout)
        self.cross_attn = CrossAttention(d, cfg.n_heads, d, cfg.dropout)
        self.ffn = InterMoEBlock(d, d, cfg.moe) if cfg.ffn_type == "moe" else AdaLNFFN(d, d, cfg.d_ffn)

    def forward(self, h, other, emb, mask, n_persons: int = 1):
        h = h + self.self_attn(h, emb, mask)
        h = h + self.cross_attn(h, other, emb, mask)
        return h + self.ffn(h, emb, mask, n_persons)


class CooperativeDenoiser(nn.Module):
    """The Cooperative MoE Denoiser (paper): two weight-sharing denoisers, one per person, talking through
    cross-attention; each predicts its person's clean latent from the noisy one.
        layer i:  h_a <- block(h_a, h_b),  h_b <- block(h_b, h_a)   (both from the previous layer's states)
    Both people run stacked along the batch [a; b], so one InterMoE call pools every token of the batch and
    swapping the people swaps the outputs exactly. The authors' layout (229.15 M parameters at paper size)."""

    def __init__(self, cfg: DenoiserConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg if cfg is not None else DenoiserConfig()
        d = cfg.width
        self.inp = nn.Linear(cfg.d_latent, d)
        self.time_embed = TimestepEmbedding(d)
        self.text_proj = nn.Linear(cfg.d_text, d)
        self.blocks = nn.ModuleList(CooperativeBlock(cfg) for _ in range(cfg.n_layers))
        self.out = nn.Linear(d, cfg.d_latent)
        nn.init.zeros_(self.out.weight)  # starts by predicting x0 = 0
        nn.init.zeros_(self.out.bias)

    def condition(self, t: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        """emb = timestep embedding + projected text: t (B,), text_emb (B, d_text) -> (B, d)."""
        return self.time_embed(t) + self.text_proj(text_emb)

    def forward(self, x_a, x_b, t, text_emb, mask=None, text_emb_b=None, role_a=None, role_b=None):
        """Noisy latents x_a, x_b (B, T', d_latent), steps t (B,), text_emb (B, d_text), mask (B, T') bool (None:
        all real) -> predicted clean latents (out_a, out_b), each (B, T', d_latent). Beyond the paper (see
        InterMoEConfig): text_emb_b, person b's own view of the caption (None: both read text_emb); role_a,
        role_b (B, width) vectors added to every input frame. Swapping a's inputs with b's swaps the outputs."""
        B, T, _ = x_a.shape
        if mask is None:
            mask = torch.ones(B, T, dtype=torch.bool, device=x_a.device)
        if text_emb_b is None:
            emb = self.condition(t, text_emb).repeat(2, 1)  # (2B, d): the same condition for both people
        else:
            emb = self.condition(t.repeat(2), torch.cat([text_emb, text_emb_b]))  # (2B, d): [a's view; b's view]
        mask2 = mask.repeat(2, 1)  # (2B, T)
        x = torch.cat([x_a, x_b], dim=0)  # (2B, T, d_latent): [person a; person b]
        h = self.inp(x) + sinusoidal_embedding(torch.arange(T, device=x.device), self.cfg.width).to(x.dtype)  # (2B, T, d)
        if role_a is not None:
            h = h + torch.cat([role_a, role_b])[:, None].to(h.dtype)  # (2B, 1, d): one vector per person
        for block in self.blocks:
            other = torch.cat([h[B:], h[:B]], dim=0)  # (2B, T, d): row i holds its partner's state
            h = block(h, other, emb, mask2, n_persons=2)
        out = self.out(h)  # (2B, T, d_latent)
        return out[:B], out[B:]

    def moe_blocks(self) -> list[InterMoEBlock]:
        """The InterMoE block of every layer (empty for ffn_type='ffn')."""
        return [blk.ffn for blk in self.blocks if isinstance(blk.ffn, InterMoEBlock)]

    def update_biases(self) -> None:
        """Every layer's bias rule (`update_biases`); once per optimiser step, after backward."""
        update_biases(self.moe_blocks())

    def moe_stats(self) -> list[dict]:
        """Per layer, the last forward's routing (InterMoEBlock.stats)."""
        return [m.stats() for m in self.moe_blocks()]


# =====================================================================================================
# 7. Training machinery: bf16, schedule, optimiser, resumable checkpoints, one step, one loop (the device and
#    torchrun's processes: intermoe_tools.devices)
# =====================================================================================================
def autocast(device: torch.device):
    """bf16 autocast on a CUDA GPU with bf16 (weights and optimiser stay fp32); float32 elsewhere (and on
    T4 or V100, which have no bf16 tensor cores)."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def warmup_cosine(step: int, warmup: int, total: int, min_ratio: float = 0.05) -> float:
    """Learning-rate multiplier: linear warm-up over `warmup` steps, then cosine decay to `min_ratio`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(params: list, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW (the paper's), fused (one pass over every parameter) on CPU and CUDA; the loop elsewhere (MPS)."""
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused)


# ---- the training loop ----------------------------------------------------------------------------------
BUCKET_SPAN = 32  # batches sorted together by length when bucketing: short clips meet short clips


def batches(dataset, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1,
            lengths: list | None = None) -> list:
    """One epoch's batches of dataset indices: a permutation fixed by (seed, epoch), cut to whole batches for
    every rank and split across ranks (equal steps everywhere; a resumed run skips exactly what it did).
    lengths (one per item): length buckets. Each run of BUCKET_SPAN batches of the permutation is sorted by
    length before it is cut, and the batches are shuffled, so a batch pads little and every item still comes
    once per epoch."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    per_rank = len(dataset) // (batch_size * world) * batch_size
    order = torch.randperm(len(dataset), generator=g).tolist()[:per_rank * world][rank::world]
    if lengths is not None:
        span = BUCKET_SPAN * batch_size
        order = [i for k in range(0, per_rank, span) for i in sorted(order[k:k + span], key=lambda i: lengths[i])]
    out = [order[k:k + batch_size] for k in range(0, per_rank, batch_size)]
    return [out[i] for i in torch.randperm(len(out), generator=g).tolist()] if lengths is not None else out


def train_step(model, loss_fn, batch, device, opt, sched, params: list, grad_clip: float, after=None,
               marks: list | None = None):
    """One optimiser step of `train_loop` -> (loss, logs): loss_fn(model, batch, device) under `autocast`,
    backward, gradient value clipping (the paper's setup), AdamW, the schedule, then after() (the EMA and the MoE
    bias rule). A loss that is not finite raises FloatingPointError before anything changes. marks (a list) gets
    time.perf_counter() after the forward and after the backward: where a step's time goes (benchmarks/)."""
    with autocast(device):
        loss, logs = loss_fn(model, batch, device)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"the loss became {loss.item()}")
    if marks is not None:
        marks.append(time.perf_counter())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if marks is not None:
        marks.append(time.perf_counter())
    if grad_clip:
        torch.nn.utils.clip_grad_value_(params, grad_clip)
    opt.step()
    sched.step()
    if after is not None:
        after()
    return loss, logs


def train_loop(module, loss_fn, dataset, collate_fn, *, steps: int, batch_size: int, lr: float,
               weight_decay: float, warmup: int, grad_clip: float, ckpt_path: str | None,
               ckpt_every: int, seed: int, kind: str, extra_state=None, after_step=None,
               device=None, log_every: int = 10, progress: bool = True, params=None,
               workers: int = 0, ema_decay: float = 0.0, bucket: bool = False) -> list[dict]:
    """One loop for both stages -> the loss history. loss_fn(module, batch, device) -> (loss, logs); after_step(step)
    runs after each optimiser step (the MoE bias rule); extra_state() adds to checkpoints. Resumes from `ckpt_path`
    exactly (`resume_training`; the history's 'seconds' continue); stops on a NaN loss with the last checkpoint
    intact. `dataset` may be a function that builds it, called only if steps are left; `workers` DataLoader
    processes give the same batches. ema_decay > 0: an `EMA` of the trained parameters, which the module holds
    when the loop returns. bucket: length-bucketed batches (`batches`), by the dataset's `lengths`."""
    rank, world = rank_world()
    device = torch.device(device) if device is not None else pick_device()
    module.to(device)
    params = [p for p in (params if params is not None else module.parameters()) if p.requires_grad]
    opt = make_optimizer(params, lr, weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, warmup, steps))
    ids = {id(p) for p in params}
    named = [(n, p) for n, p in module.named_parameters() if id(p) in ids]  # the trained ones, by name
    ema = EMA(named, ema_decay) if ema_decay else None
    model = module
    if world > 1:  # every parameter gets a gradient every step (see InterMoEBlock): no search for unused ones
        model = torch.nn.parallel.DistributedDataParallel(
            module, device_ids=[device.index] if device.type == "cuda" else None)
    step, history, spent, t0 = 0, [], 0.0, time.time()  # spent: seconds of training before this run
    torch.manual_seed(seed + rank)  # seeds the accelerator's generator too
    if ckpt_path and os.path.isfile(ckpt_path):
        step, history, spent = resume_training(ckpt_path, kind, seed, module, opt, sched, ema, device, rank)
        if rank == 0:
            print(f"loaded finished {kind} from {ckpt_path} ({step} steps)" if step >= steps
                  else f"resumed {kind} from {ckpt_path} at step {step}")

    def checkpoint():
        rngs = [rng_state(device)]
        if world > 1:
            rngs = [None] * world
            dist.all_gather_object(rngs, {k: v.cpu() for k, v in rng_state(device).items()})
        if rank == 0 and ckpt_path:
            save_checkpoint(ckpt_path, {"kind": kind, "model": module.state_dict(), "optimizer": opt.state_dict(),
                                        "scheduler": sched.state_dict(), "step": step, "history": history,
                                        "seed": seed, "rng": rngs, "seconds": spent + time.time() - t0,
                                        **(extra_state() if extra_state else {}),
                                        **({"ema": ema.state_dict()} if ema is not None else {})})

    def finish():  # the module ends holding the averaged weights, what sampling uses
        if ema is not None:
            module.load_state_dict(ema.shadow, strict=False)
        return history

    if step >= steps:  # finished: nothing to train, so no data to prepare
        return finish()
    dataset = dataset() if callable(dataset) else dataset
    per_epoch = len(dataset) // (batch_size * world)
    if per_epoch == 0:
        raise ValueError(f"{kind}: {len(dataset)} clips are too few for batches of {batch_size} x {world} ranks")
    bar = None
    if progress and rank == 0:
        from tqdm.auto import tqdm
        bar = tqdm(total=steps, initial=step, desc=f"train {kind}")
    def after():  # after each optimiser step: the EMA, then the caller's after_step (the MoE bias rule)
        if ema is not None:
            ema.update(named)
        if after_step is not None:
            after_step(step)

    model.train()
    while step < steps:
        epoch, skip = divmod(step, per_epoch)
        dataset.epoch = epoch  # set before the workers start: they take a copy of the dataset
        todo = batches(dataset, batch_size, seed, epoch, rank, world, dataset.lengths if bucket else None)[skip:]
        # its own generator: a DataLoader otherwise seeds its workers from the global random state, which a
        # resumed run (one more loader) would leave elsewhere
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=todo, collate_fn=collate_fn,
                                             num_workers=workers, pin_memory=device.type == "cuda",
                                             generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        for batch in loader:
            try:
                loss, logs = train_step(model, loss_fn, batch, device, opt, sched, params, grad_clip, after)
            except FloatingPointError as e:
                where = f"; the last good checkpoint at {ckpt_path} is intact" if ckpt_path and os.path.isfile(ckpt_path) else ""
                raise FloatingPointError(f"{kind}: {e} at step {step}{where}. "
                                         f"Try a lower learning rate (now {sched.get_last_lr()[0]:.2e}).") from None
            step += 1
            if step % log_every == 0 or step == steps:
                history.append({"step": step, "loss": loss.item(), "lr": sched.get_last_lr()[0],
                                "seconds": round(spent + time.time() - t0, 2), **{k2: float(v) for k2, v in logs.items()}})
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.4f}")
            if ckpt_path and (step % ckpt_every == 0 or step == steps):
                checkpoint()
            if step >= steps:
                break
    if bar is not None:
        bar.close()
    return finish()


# =====================================================================================================
# 8. InterMoE: text -> two-person motion, the whole model, and its presets
# =====================================================================================================
@dataclass
class InterMoEConfig:
    """Everything one run needs: the three networks' sizes, diffusion and both training stages."""
    vae: VAEConfig = field(default_factory=VAEConfig)
    text: TextConfig = field(default_factory=TextConfig)
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    diffusion_steps: int = 1000     # cosine schedule, the paper's 1000 steps
    sample_steps: int = 50          # DDIM steps at sampling time (paper: 50)
    guidance: float = 3.5           # classifier-free guidance weight s: s * cond + (1 - s) * uncond
    physics: float = 0.05           # beyond the paper: physics guidance's scale after DDIM (intermoe_tools.physics)
    cond_drop: float = 0.1          # share of training captions replaced by "" (to learn the unconditional)
    # Beyond the paper (docs/paper.md; False, False is the paper's shared condition):
    egocentric_text: bool = True    # person b reads swap_caption(caption): 'the first person' always means "me"
    role_embedding: bool = True     # a learnt vector per person: its view names it first, the partner, no one
    # ... and in stage 2's training (off here, the paper's; the lab preset's choice is measured in docs/results.md):
    ema_decay: float = 0.0          # > 0: sample with an EMA of the stage-2 weights (`EMA`), not the last ones
    bucket: bool = False            # length-bucketed stage-2 batches (`batches`): less padding per step
    geo_weight: float = 0.0         # x InterGen's losses on the decoded motion (intermoe_tools.motion_losses)
    pen_weight: float = 0.0         # x the interpenetration of the people's capsules in it
    geo_t_max: int = 700            # both count at noise steps t <= geo_t_max only (InterGen's T_bar)
    geo_clips: int = 8              # at most this many clips a batch are decoded for them (the decoder's cost)
    # stage 1: the VAE (paper: 64-frame windows, AdamW 2e-4, wd 2e-5, batch 256, ~30k steps)
    vae_steps: int = 30_000
    vae_batch: int = 128            # clips per batch; each gives two people, so 256 sequences
    vae_lr: float = 2e-4
    vae_window: int = 64            # frames per training window
    vae_weights: dict = field(default_factory=dict)  # VAE_LOSS_WEIGHTS changed for this run (e.g. {"kl": 1e-4})
    shipped_vae: bool = False       # `train` starts from SHIPPED_VAE instead of training stage 1 (data seed 0 only)
    vae_from: str = ""              # where the model's VAE came from, as `train` recorded it ("": trained with it)
    # stage 2: the denoiser + text encoder (paper: AdamW 1e-4, wd 2e-5, batch 64 x 2 GPUs)
    steps: int = 100_000
    batch: int = 64
    lr: float = 1e-4
    weight_decay: float = 2e-5
    warmup: int = 1000
    grad_clip: float = 1.0          # gradient *value* clip, as the paper's setup
    max_frames: int = MAX_FRAMES - 1  # longest training clip in feature frames
    n_clips: int | None = None      # InterSynth clips to generate for this preset (None: the default set)
    ckpt_every: int = 1000          # steps between checkpoints (one file per stage, overwritten)

    def __post_init__(self):
        if self.vae.latent_dim != self.denoiser.d_latent:
            raise ValueError(f"the VAE's latent ({self.vae.latent_dim}) must match the denoiser's "
                             f"d_latent ({self.denoiser.d_latent})")
        if self.text.d_cond != self.denoiser.d_text:
            raise ValueError(f"text d_cond ({self.text.d_cond}) must match denoiser d_text ({self.denoiser.d_text})")


# Keyword literals per preset (as minGPT's model_type table). nano: the tests' size. lab: a CPU course lab
# (docs/speed.md), without dropout (its masks cost CPU time, and 2500 steps do not overfit); its stage 1 is the shipped VAE
# (SHIPPED_VAE, made by this recipe: a KL weight of 1e-4, not the paper's 0.02, so the latents keep the detail a
# hand or a planted foot needs; docs/results.md, "The VAE"). paper: the paper's sizes and schedule (a 229 M-parameter
# denoiser), for a GPU.
PRESETS = {
    "nano": dict(vae=dict(width=8, hidden=16), text=dict(d_model=32, n_heads=2, d_cond=32),
                 denoiser=dict(width=32, n_layers=2, n_heads=2, d_ffn=32, moe=dict(n_experts=4, d_expert=32)),
                 vae_steps=30, vae_batch=8, vae_lr=2e-3, steps=30, batch=8, lr=1e-3, warmup=5, n_clips=48,
                 max_frames=64, ckpt_every=10),
    "lab": dict(vae=dict(width=32, hidden=32, n_blocks=1, dropout=0.0), vae_weights={"kl": 1e-4}, shipped_vae=True,
                text=dict(d_model=128, n_heads=2, d_cond=192, dropout=0.0),
                denoiser=dict(width=192, n_layers=4, n_heads=4, d_ffn=256, dropout=0.0, moe=dict(d_expert=256)),
                vae_steps=3500, vae_batch=32, vae_lr=1e-3, steps=2500, batch=32, lr=4e-4, warmup=100,
                max_frames=160, ckpt_every=200),
    "paper": dict(text=dict(d_model=768, n_heads=8, d_cond=768)),
    # the ablation study's model (results/ablation_mini.*): lab's VAE, a smaller denoiser and the paper's dropout, so
    # 6 variants x 3 seeds run in about an hour on 2 cores; without role vectors, as results/ablation_mini.* ran
    "ablation": dict(vae=dict(width=32, hidden=32, n_blocks=1), text=dict(d_model=128, n_heads=2, d_cond=128),
                     denoiser=dict(width=128, n_layers=3, n_heads=4, d_ffn=176, moe=dict(d_expert=176)),
                     vae_steps=1000, vae_batch=32, vae_lr=1e-3, steps=300, batch=32, lr=4e-4, warmup=100,
                     max_frames=160, ckpt_every=200, role_embedding=False),
}


def preset(name: str, **overrides) -> InterMoEConfig:
    """The configuration PRESETS names; overrides replace top-level fields, e.g. preset('lab', steps=500)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: choose one of {list(PRESETS)}")
    p = dict(PRESETS[name])
    vae, text = VAEConfig(**p.pop("vae", {})), TextConfig(**p.pop("text", {}))
    den = dict(p.pop("denoiser", {}))
    moe = MoEConfig(**den.pop("moe", {}))
    den = DenoiserConfig(d_latent=vae.latent_dim, d_text=text.d_cond, moe=moe, **den)
    return replace(InterMoEConfig(vae=vae, text=text, denoiser=den, **p), **overrides)


def _config_from_dict(d: dict) -> InterMoEConfig:
    """Inverse of dataclasses.asdict(cfg): the configuration a checkpoint stores as plain values."""
    d, den = dict(d), dict(d["denoiser"])
    den["moe"] = MoEConfig(**den["moe"])
    return InterMoEConfig(**{**d, "vae": VAEConfig(**d["vae"]), "text": TextConfig(**d["text"]),
                             "denoiser": DenoiserConfig(**den)})


class InterMoE(Checkpointable, nn.Module):
    """Text -> two-person motion, the paper's whole pipeline: the Causal-Skeletal VAE (one person at a time;
    frozen in stage 2), the text encoder, the Cooperative Denoiser and the diffusion. Diffusion runs on scaled
    latents: each latent channel less `latent_mean`, over `latent_scale` (its mean and std over the training set,
    measured before stage 2: `measure_latent_stats`), so every channel it sees has zero mean and unit variance."""

    KINDS = ("intermoe", "denoiser")  # save's whole model, or train_denoiser's checkpoint (it holds the same)
    STORED = {"vocab": Vocab, "normalizer": Normalizer}  # what travels with the weights (Checkpointable)
    config_from_dict = staticmethod(_config_from_dict)

    def __init__(self, cfg: InterMoEConfig, vocab: Vocab, normalizer: Normalizer):
        super().__init__()
        self.cfg, self.vocab, self.normalizer = cfg, vocab, normalizer
        self.vae = CausalSkeletalVAE(cfg.vae)
        self.text = TextEncoder(vocab, cfg.text)
        self.denoiser = CooperativeDenoiser(cfg.denoiser)
        self.diffusion = Diffusion(cfg.diffusion_steps)
        if cfg.role_embedding:  # 0: I am named first, 1: the partner is, 2: neither is named by index
            self.role_embed = nn.Embedding(3, cfg.denoiser.width)
            nn.init.normal_(self.role_embed.weight, std=2 ** -0.5)  # the scale of the frame positions it joins
        self.register_buffer("latent_mean", torch.zeros(cfg.vae.latent_dim))  # (C,) per latent channel
        self.register_buffer("latent_scale", torch.ones(cfg.vae.latent_dim))  # (C,)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """A checkpoint with one global latent std and no mean (the shipped model's) loads as that std in every
        channel, mean 0."""
        scale = state_dict.get(prefix + "latent_scale")
        if scale is not None and scale.dim() == 0:
            state_dict[prefix + "latent_scale"] = scale.expand_as(self.latent_scale).clone()
            state_dict.setdefault(prefix + "latent_mean", torch.zeros_like(self.latent_mean))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def scale_latents(self, z: torch.Tensor) -> torch.Tensor:
        """VAE latents (..., C) -> the scaled latents diffusion runs on (zero mean, unit variance per channel)."""
        return (z - self.latent_mean) / self.latent_scale

    def unscale_latents(self, z: torch.Tensor) -> torch.Tensor:
        """Scaled latents (..., C) -> VAE latents: `scale_latents` undone."""
        return z * self.latent_scale + self.latent_mean

    def set_latent_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Set the per-channel mean and std (C,) that `scale_latents` removes (`measure_latent_stats` measures)."""
        self.latent_mean.copy_(mean)
        self.latent_scale.copy_(std)

    # ---- motion <-> latents ------------------------------------------------------------------------
    @torch.no_grad()
    def encode_motion(self, motion: torch.Tensor) -> torch.Tensor:
        """(B, 2, T, 262) normalised features -> (B, 2, T/4, d_latent) scaled latents (the VAE's mean)."""
        B, P, T, F = motion.shape
        z = self.vae.encode(motion.reshape(B * P, T, F))  # (2B, T/4, d_latent)
        return self.scale_latents(z.reshape(B, P, *z.shape[1:]))

    def decode_latents(self, z: torch.Tensor, T: int) -> torch.Tensor:
        """(B, 2, T', d_latent) scaled latents -> (B, 2, T, 262) de-normalised features (differentiable: stage
        2's decoded-motion losses train through it; wrap it in torch.no_grad() to only look)."""
        B, P, Tz, C = z.shape
        dtype = next(self.vae.parameters()).dtype  # bf16 for a model cast with .to(torch.bfloat16)
        feats = self.vae.decode(self.unscale_latents(z).to(dtype).reshape(B * P, Tz, C), T).float()  # (2B, T, 262)
        return self.normalizer.denormalise(feats.reshape(B, P, T, FEAT_DIM))

    @staticmethod
    def latent_mask(mask: torch.Tensor) -> torch.Tensor:
        """(B, T) frame mask -> (B, T/4) latent mask: latent frame k is real if frame 4k is."""
        return mask[:, ::4]

    def stage2_parameters(self) -> list:
        """What stage 2 trains: everything but the frozen VAE (text encoder, role vectors, denoiser)."""
        return [p for name, p in self.named_parameters() if not name.startswith("vae.")]

    # ---- text: each person's condition and role ----------------------------------------------------
    @property
    def reads_roles(self) -> bool:
        """Does each person get its own view of the caption (so a role-naming caption assigns the slots)?"""
        return self.cfg.egocentric_text or self.cfg.role_embedding

    def encode_captions(self, captions: list[str]):
        """B captions -> (person a's condition (B, d_cond), person b's or None when both read the same), one
        text-encoder call over the distinct texts (a third of a training batch repeats: "" and unswapped)."""
        captions = list(captions)
        texts = captions + [swap_caption(c) for c in captions] if self.cfg.egocentric_text else captions
        first = {}
        for t in texts:
            first.setdefault(t, len(first))
        emb = self.text(list(first))[0]  # (U, d_cond), U distinct texts
        emb = emb[torch.tensor([first[t] for t in texts], device=emb.device)]  # (B or 2B, d_cond)
        return (emb[:len(captions)], emb[len(captions):]) if self.cfg.egocentric_text else (emb, None)

    def roles(self, captions: list[str]):
        """B captions -> role vectors (B, width) of person a and of person b (whose view is swap_caption),
        or (None, None) without role_embedding; a role is caption_initiator of one's own view, 2 for None."""
        if not self.cfg.role_embedding:
            return None, None
        ids = [2 if (i := caption_initiator(c)) is None else i
               for c in list(captions) + [swap_caption(c) for c in captions]]
        vecs = self.role_embed(torch.tensor(ids, device=self.role_embed.weight.device))  # (2B, width)
        return vecs[:len(captions)], vecs[len(captions):]

    # ---- training: the diffusion loss (stage 2) -------------------------------------------------------
    def forward(self, z0: torch.Tensor, zmask: torch.Tensor, captions: list[str], extra_loss=None):
        """Stage 2's loss on clean scaled latents z0 (B, 2, T', C), zmask (B, T') bool, B captions -> (loss, logs):
        the x0 MSE (paper). cond_drop of the captions become "" (to learn the unconditional, for guidance).
        extra_loss(model, pred, z0, zmask, t) -> (loss, logs): a term added on the prediction pred (B, 2, T', C)
        (e.g. intermoe_tools.motion_losses.decoded_motion_loss, on the motion it decodes to)."""
        B = z0.shape[0]
        if self.training and self.cfg.cond_drop > 0:
            drop = (torch.rand(B) < self.cfg.cond_drop).tolist()
            captions = ["" if d else c for c, d in zip(captions, drop)]
        t = torch.randint(0, self.diffusion.n_steps, (B,), device=z0.device)
        x_t = self.diffusion.q_sample(z0, t, torch.randn_like(z0))
        (text_a, text_b), (role_a, role_b) = self.encode_captions(captions), self.roles(captions)
        out_a, out_b = self.denoiser(x_t[:, 0], x_t[:, 1], t, text_a, zmask, text_b, role_a, role_b)
        pred = torch.stack([out_a, out_b], 1)  # (B, 2, T', C)
        loss = self.diffusion.loss(pred, z0, zmask)
        if extra_loss is None:
            return loss, {}
        extra, terms = extra_loss(self, pred, z0, zmask, t)
        return loss + extra, terms

    # ---- sampling ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, prompts, lengths, seed: int | None = None, steps: int | None = None,
               guidance: float | None = None, return_features: bool = False, progress: bool = False,
               guide=None, finish=None):
        """B prompts, lengths (one int or B, 15..300 frames at 30 fps) -> joints (B, 2, T, 22, 3), metres, Y up,
        T = max(lengths), each clip holding its last pose past its length (return_features: also (B, 2, T, 262)).
        `seed` makes it reproducible; steps and guidance s default to the config's. The paper's sampler: DDIM with
        classifier-free guidance, s * cond + (1 - s) * uncond, both halves in one batched forward, then the
        decoder. Two places for what goes beyond it (intermoe_tools.pipeline.sample fills both):
        guide(model, z, frame_mask, prompts) -> z moves DDIM's final latent z (B, 2, Tz, C) (physics guidance);
        finish(features) -> features makes each clip's decoded (2, n, 262) numpy features into bodies.
        A sample with a joint beyond checks.PLAUSIBLE_SCENE metres (a far too strong guidance, say) is warned about."""
        prompts, lengths, seed, steps, s = sample_args(
            prompts, lengths, seed, steps, guidance, frames=(MIN_FRAMES, MAX_FRAMES), max_steps=self.diffusion.n_steps,
            default_steps=self.cfg.sample_steps, default_guidance=self.cfg.guidance)
        was_training = self.training
        self.eval()
        device = self.latent_scale.device
        B, T = len(prompts), max(lengths)
        Tz = math.ceil(T / 4)
        frame_mask = torch.arange(4 * Tz, device=device)[None] < torch.tensor(lengths, device=device)[:, None]
        mask2 = self.latent_mask(frame_mask).repeat(2, 1)  # (2B, Tz): conditional rows, then unconditional
        cond_a, cond_b = self.encode_captions(prompts + [""] * B)  # (2B, d_cond) each (cond_b may be None)
        role_a, role_b = self.roles(prompts + [""] * B)  # (2B, width) each, or None
        dtype = next(self.denoiser.parameters()).dtype  # bf16 for a model cast with .to(torch.bfloat16)

        def denoise(x, t):  # x (B, 2, Tz, C) float32 -> guided x0 prediction (B, 2, Tz, C) float32
            x2 = x.to(dtype).repeat(2, 1, 1, 1)  # (2B, 2, Tz, C)
            a, b = self.denoiser(x2[:, 0], x2[:, 1], t.repeat(2), cond_a, mask2, cond_b, role_a, role_b)
            x0 = torch.stack([a, b], 1).float()  # (2B, 2, Tz, C)
            return s * x0[:B] + (1 - s) * x0[B:]  # the sampler's arithmetic stays in float32

        g = torch.Generator(device="cpu").manual_seed(seed) if seed is not None else None
        z = self.diffusion.sample(denoise, (B, 2, Tz, self.cfg.denoiser.d_latent), steps=steps, generator=g,
                                  device=device, progress=progress)
        if guide is not None:
            z = guide(self, z, frame_mask, prompts)
        feats = self.decode_latents(z, T)  # (B, 2, T, 262)
        if finish is not None:  # each clip on its own frames
            feats = feats.cpu().numpy()
            for k, n in enumerate(lengths):
                feats[k, :, :n] = finish(feats[k, :, :n])
            feats = torch.from_numpy(feats).to(device)
        for k, n in enumerate(lengths):  # hold the last real pose past each clip's end
            feats[k, :, n:] = feats[k, :, n - 1:n]
        self.train(was_training)
        joints = joints_from_features(feats)
        warn_beyond_scene(joints, f"guidance {s}, this model's default {self.cfg.guidance}")
        return (joints, feats) if return_features else joints


PRETRAINED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models", "intermoe_lab.pt")
SHIPPED_VAE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models", "vae_lab.pt")  # lab's stage 1


def vae_model(path: str | None = None, device=None) -> InterMoE:
    """A model around a stage-1 checkpoint (`train_vae`'s; default SHIPPED_VAE): its VAE, normaliser, vocabulary and
    configuration, an untrained denoiser. For looking at the VAE (intermoe_tools.pipeline.reconstruct), or to train stage 2 on."""
    state = load_checkpoint(path or SHIPPED_VAE, "vae")
    model = InterMoE(_config_from_dict(state["config"]), Vocab.from_state_dict(state["vocab"]),
                     Normalizer.from_state_dict(state["normalizer"]))
    model.vae.load_state_dict(state["model"])
    return model.to(device or pick_device()).eval()


def pretrained(device=None, path: str | None = None) -> InterMoE:
    """The trained model this repository ships (PRETRAINED, models/intermoe_lab.pt: the lab preset's recipe
    trained longer than a lab run; docs/results.md), loaded offline, ready to `sample`."""
    path = path or PRETRAINED
    if not os.path.isfile(path):
        raise FileNotFoundError(f"the shipped model {path} is missing: a clone of the repository holds it (as a "
                                f"plain file); or train one with python intermoe_min.py train --preset lab --out DIR")
    return InterMoE.load(path, device)


# =====================================================================================================
# 9. The two training stages
# =====================================================================================================
def _vae_loss_fn(normalizer: Normalizer, weights: dict | None = None):
    mean, std = torch.from_numpy(normalizer.mean), torch.from_numpy(normalizer.std)

    def loss_fn(vae, batch, device):
        x = batch["motion"].to(device)  # (B, 2, T, 262)
        B, P, T, F = x.shape
        x = x.reshape(B * P, T, F)  # (2B, T, 262): both people, one at a time
        mask = batch["mask"].to(device).repeat_interleave(P, 0)  # (2B, T)
        recon, mu, logvar = vae(x)
        loss, logs = vae_loss(recon, x, mu, logvar, mean.to(device), std.to(device), mask, weights)
        return loss, {k: v for k, v in logs.items() if k != "total"}
    return loss_fn


def _denoiser_loss_fn(model: InterMoE, extra_loss=None):
    def loss_fn(m, batch, dev):  # m: the model, or DistributedDataParallel around it
        z0 = model.scale_latents(batch["latent"].to(dev))  # (B, 2, T', C) unit-variance latents
        return m(z0, batch["mask"].to(dev), batch["captions"], extra_loss)
    return loss_fn


def train_vae(model: InterMoE, records: list[dict], steps: int | None = None, ckpt_path: str | None = None,
              seed: int = 0, device=None, progress: bool = True, ckpt_every: int | None = None) -> list[dict]:
    """Stage 1: model.vae on random `vae_window`-frame windows of both people; resumable from ckpt_path."""
    cfg = model.cfg
    device = torch.device(device) if device is not None else pick_device()
    data = InteractionDataset(records, model.normalizer, train=True, max_frames=cfg.vae_window, seed=seed)
    steps = cfg.vae_steps if steps is None else steps  # steps=0 means no training, not the default
    return train_loop(model.vae, _vae_loss_fn(model.normalizer, cfg.vae_weights), data, collate, steps=steps,
                      batch_size=cfg.vae_batch, lr=cfg.vae_lr, weight_decay=cfg.weight_decay,
                      warmup=max(1, steps // 20), grad_clip=cfg.grad_clip,
                      ckpt_path=ckpt_path, ckpt_every=ckpt_every or cfg.ckpt_every, seed=seed, kind="vae",
                      extra_state=model.checkpoint_state, device=device, progress=progress,
                      workers=default_workers(device))


@torch.no_grad()
def measure_latent_stats(model: InterMoE, records: list[dict], n: int = 256,
                         device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean and std (C,) of each channel of the VAE's latents over (up to) n training clips: stage 2 scales
    latents by them (`InterMoE.set_latent_stats`). Per channel, not one global std: a VAE with a weak KL term
    leaves channels off zero by several stds (the shipped VAE's means reach 6.8, its stds 0.4-2.0), which one
    global std would leave in the data, and squeeze the part that varies, far below the diffusion's noise."""
    device = device or next(model.parameters()).device
    data = InteractionDataset(records[:n], model.normalizer, train=False, max_frames=model.cfg.max_frames)
    model.vae.eval()
    zs = []
    for i in range(0, len(data), 32):
        batch = collate([data[j] for j in range(i, min(i + 32, len(data)))])
        z = model.vae.encode(batch["motion"].to(device).flatten(0, 1))  # (2B, T', C)
        zs.append(z[model.latent_mask(batch["mask"].to(device)).repeat_interleave(2, 0)])  # (N, C)
    z = torch.cat(zs)  # (N, C)
    return z.mean(0), z.std(0).clamp_min(1e-4)


def vae_fingerprint(weights) -> str:
    """A short hash of a VAE's weights: a module, or a state_dict with or without the 'vae.' prefix."""
    sd = weights.state_dict() if isinstance(weights, nn.Module) else weights
    if any(k.startswith("vae.") for k in sd):  # a whole model's state_dict: its VAE part
        sd = {k.removeprefix("vae."): v for k, v in sd.items() if k.startswith("vae.")}
    return tensor_digest(sd)[:16]


class LatentDataset(torch.utils.data.Dataset):
    """Stage 2's data: every clip encoded once, whole, by the frozen VAE in its four variants (as recorded,
    swapped, mirrored, both), float16, unscaled. A fetch picks a variant, a caption to match and (training) a
    window of max_frames / 4 latent frames; mid-clip windows keep their history (the encoder is causal)."""

    def __init__(self, model: "InterMoE", records: list[dict], train: bool = True, max_frames: int | None = None,
                 seed: int | None = None, batch_size: int = 8, progress: bool = False):
        base = InteractionDataset(records, model.normalizer, train=False, max_frames=MAX_FRAMES)
        self.records, self.train, self.seed, self.epoch = base.records, train, seed, 0
        self.max_latent = (max_frames or model.cfg.max_frames) // 4
        self.variants = [(False, False), (True, False), (False, True), (True, True)] if train else [(False, False)]
        self.latents = [[None] * len(self.variants) for _ in self.records]  # [clip][variant] -> (2, T', C)
        # longest first, a few a batch: each batch's activations fit in the memory the one before freed
        jobs = sorted(((i, v) for i in range(len(self.records)) for v in range(len(self.variants))),
                      key=lambda iv: -self.records[iv[0]]["joints"].shape[1])
        from tqdm.auto import tqdm
        model.vae.eval()
        for k in tqdm(range(0, len(jobs), batch_size), desc="encode latents", leave=False, disable=not progress):
            chunk = jobs[k:k + batch_size]
            feats = [base.features(i, *self.variants[v]) for i, v in chunk]  # each (2, T_i, 262)
            batch = collate([{"motion": torch.from_numpy(model.normalizer.normalise(f).astype(np.float32)),
                              "length": f.shape[1], "caption": "", "id": ""} for f in feats])
            with torch.no_grad():
                z = model.vae.encode(batch["motion"].to(model.latent_scale.device).flatten(0, 1)).cpu()  # (2b, T', C)
            z = z.unflatten(0, (-1, 2))  # (b, 2, T'max, C)
            for row, ((i, v), n) in enumerate(zip(chunk, batch["lengths"].tolist())):
                self.latents[i][v] = z[row, :, :math.ceil(n / 4)].half()  # (2, ceil(T_i / 4), C)
        self.lengths = [min(z[0].shape[1], self.max_latent) for z in self.latents]  # each fetch's, for buckets
        self._rng = np.random.default_rng()

    def __len__(self):
        return len(self.records)

    def __getitem__(self, i: int) -> dict:
        rng = self._rng if self.seed is None else np.random.default_rng([self.seed, self.epoch, i])
        v = int(rng.integers(len(self.variants))) if self.train else 0
        z = self.latents[i][v]  # (2, T', C)
        if z.shape[1] > self.max_latent:
            start = int(rng.integers(0, z.shape[1] - self.max_latent + 1)) if self.train else 0
            z = z[:, start:start + self.max_latent]
        return {"latent": z.float(), "length": z.shape[1], "id": self.records[i]["id"],
                "caption": _pick_caption(self.records[i]["captions"], rng, self.train, *self.variants[v])}


def train_denoiser(model: InterMoE, records: list[dict], steps: int | None = None, ckpt_path: str | None = None,
                   seed: int = 0, device=None, progress: bool = True, ckpt_every: int | None = None,
                   latents: "LatentDataset | None" = None, extra_loss=None) -> list[dict]:
    """Stage 2: the text encoder and denoiser on the frozen VAE's cached latents; resumable, but only on the
    VAE it started with. `latents`: a LatentDataset of this VAE and these records, to share between runs.
    extra_loss: `InterMoE.forward`'s term beyond the x0 MSE (intermoe_tools.pipeline.train_denoiser sets it)."""
    cfg = model.cfg
    device = torch.device(device) if device is not None else pick_device()
    model.to(device)
    if ckpt_path and os.path.isfile(ckpt_path):  # its denoiser learned its VAE's latents: the same VAE only
        old, new = vae_fingerprint(load_checkpoint(ckpt_path, "denoiser")["model"]), vae_fingerprint(model.vae)
        if old != new:
            raise CheckpointError(
                f"{ckpt_path} was trained on another VAE (weights {old}) than this run's (weights {new}): stage 1 "
                f"has changed since (trained further, or another vae.pt). Its denoiser cannot be resumed on this "
                f"VAE. Delete {ckpt_path} to train stage 2 afresh on the new VAE, or use another output folder.")
    else:
        model.set_latent_stats(*measure_latent_stats(model, records, device=device))
    model.vae.requires_grad_(False)
    model.vae.eval()

    def data():  # built by train_loop only if there are steps left to train
        cache = latents or LatentDataset(model, records, train=True, max_frames=cfg.max_frames, progress=progress)
        cache.seed = seed  # fetches are keyed by (seed, epoch, clip): this run's augmentations and crops
        return cache

    steps = cfg.steps if steps is None else steps  # steps=0 means no training, not the default
    return train_loop(model, _denoiser_loss_fn(model, extra_loss), data, collate, steps=steps, batch_size=cfg.batch, lr=cfg.lr,
                      weight_decay=cfg.weight_decay, warmup=cfg.warmup, grad_clip=cfg.grad_clip,
                      ckpt_path=ckpt_path, ckpt_every=ckpt_every or cfg.ckpt_every, seed=seed, kind="denoiser",
                      extra_state=model.checkpoint_state, after_step=lambda s: model.denoiser.update_biases(),
                      device=device, progress=progress, params=model.stage2_parameters(),
                      ema_decay=cfg.ema_decay, bucket=cfg.bucket)


def build_model(cfg: InterMoEConfig, records: list[dict], seed: int = 0) -> InterMoE:
    """A fresh model for these training records: the vocabulary of their captions (mirrored and swapped
    too), the normaliser of their features, the weights drawn from `seed` (the caller's random state kept)."""
    check_int(seed, "seed", 0, MAX_SEED)
    vocab, normalizer = Vocab.for_records(records), InteractionDataset(records, train=False).fit_normalizer()
    with torch.random.fork_rng(devices=[]):  # restores the CPU generator afterwards; no other is touched
        torch.default_generator.manual_seed(seed)  # weights are initialised on the CPU
        return InterMoE(cfg, vocab, normalizer)

