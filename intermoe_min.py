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
