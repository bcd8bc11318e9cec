"""intermoe_tools.export: getting motion out.

`save_bvh` writes a person's motion as BVH (Blender and other tools); `save_interhuman` writes a clip in
InterHuman's raw layout (the files InterGen's loader reads).
"""
from __future__ import annotations

import numpy as np

import intermoe_min as im
from intermoe_min import FEAT_DIM, FPS, JOINT_NAMES, N_JOINTS, joints_from_features
from intermoe_tools.files import atomic_write
from intermoe_tools.bodies import CHILDREN, END_SITES, skeleton_rotations
from intermoe_tools import interhuman


# ---- 1b. Getting motion out: BVH for Blender and friends, InterHuman's raw layout ----------------------------
# BVH stores a skeleton (each joint's offset from its parent in a rest pose, a T-pose facing +Z) and, per frame,
# the root's position and every joint's rotation relative to its parent: `skeleton_rotations` (intermoe_tools.bodies) solves them
# from the positions. The model's output is already rigid (intermoe_tools.bodies.rigid_bodies), so the file gives it back exactly.


def _euler_zxy(R):
    """(..., 3, 3) -> degrees (z, x, y) with R = Rz(z) Rx(x) Ry(y), BVH's 'Zrotation Xrotation Yrotation'."""
    x = np.arcsin(np.clip(R[..., 2, 1], -1.0, 1.0))
    lock = np.sqrt(R[..., 0, 1] ** 2 + R[..., 1, 1] ** 2) < 1e-8     # x = +-90 deg: only z + -y is defined
    z = np.where(lock, np.arctan2(R[..., 1, 0], R[..., 0, 0]), np.arctan2(-R[..., 0, 1], R[..., 1, 1]))
    y = np.where(lock, 0.0, np.arctan2(-R[..., 2, 0], R[..., 2, 2]))
    return np.degrees(np.stack([z, x, y], -1))


def save_bvh(motion, path: str, fps: int = FPS) -> list:
    """Two people's joints (2, T, 22, 3) metres, or features (2, T, 262), -> one BVH file each, `path` with
    '_p1' / '_p2' before '.bvh', both written or neither (`atomic_write`); returns their paths. Centimetres,
    Y up, 'Zrotation Xrotation Yrotation'."""
    paths, writers = _bvh_writers(motion, path, fps)
    return atomic_write(paths, writers)


def _bvh_writers(motion, path: str, fps: int = FPS) -> tuple[list, list]:
    """save_bvh's file names and, for each, a function that writes its text to the path it is given."""
    J = np.asarray(motion, dtype=np.float64)
    if J.ndim == 3 and J.shape[-1] == FEAT_DIM:
        J = joints_from_features(J)
    if J.ndim == 4 and J.shape[0] != 2 or J.ndim not in (3, 4) or J.shape[-2:] != (N_JOINTS, 3) or J.shape[-3] < 2:
        raise ValueError(f"save_bvh: expected joints (2, T, 22, 3) or (T, 22, 3), or features (2, T, {FEAT_DIM}), "
                         f"with T >= 2 frames; got {np.shape(motion)}")
    if not np.isfinite(J).all():
        raise ValueError(f"save_bvh: the joints contain {int((~np.isfinite(J)).sum())} NaN or inf values; "
                         f"a BVH file cannot hold them")
    people = J if J.ndim == 4 else J[None]
    stem = path[:-4] if path.lower().endswith(".bvh") else path
    paths, writers = [], []
    for n, person in enumerate(people):
        local, offsets = skeleton_rotations(person)
        lines = ["HIERARCHY"]

        def write(j, depth):
            pad = "  " * depth
            lines.append(f"{pad}{'ROOT' if j == 0 else 'JOINT'} {JOINT_NAMES[j]}")
            lines.append(pad + "{")
            lines.append(f"{pad}  OFFSET {' '.join(f'{100 * v:.4f}' for v in (offsets[j] if j else np.zeros(3)))}")
            lines.append(f"{pad}  CHANNELS " + ("6 Xposition Yposition Zposition " if j == 0 else "3 ")
                         + "Zrotation Xrotation Yrotation")
            for c in CHILDREN[j]:
                write(c, depth + 1)
            if not CHILDREN[j]:  # the tip of the head, hand or toes, scaled to the person's own last bone
                tip = np.asarray(END_SITES[j]) * np.linalg.norm(offsets[j]) / np.linalg.norm(im.REST_OFFSETS[j])
                lines.extend([f"{pad}  End Site", pad + "  {", f"{pad}    OFFSET {' '.join(f'{100 * v:.4f}' for v in tip)}",
                              pad + "  }"])
            lines.append(pad + "}")
        write(0, 0)
        angles = _euler_zxy(local)                                          # (T, 22, 3)
        order = [j for j in _dfs_order()]
        rows = np.concatenate([100 * person[:, 0], angles[:, order].reshape(len(person), -1)], 1)
        lines += ["MOTION", f"Frames: {len(person)}", f"Frame Time: {1.0 / fps:.8f}"]
        lines += [" ".join(f"{v:.5f}" for v in row) for row in rows]
        paths.append(f"{stem}_p{n + 1}.bvh")
        writers.append(lambda p, text="\n".join(lines) + "\n": _write_text(p, text))
    return paths, writers


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _dfs_order(j: int = 0) -> list:
    """Joints in the order a BVH file lists them (depth first, children in SMPL order)."""
    return [j] + [k for c in CHILDREN[j] for k in _dfs_order(c)]


def save_interhuman(root: str, clip_id: str, joints, captions, split: str = "test", rot6d=None) -> str:
    """Two people's joints (2, T, 22, 3) and captions -> InterHuman's raw files under `root` (the layout
    intermoe_tools.interhuman.load_interhuman reads). rot6d (2, T, 21, 6): the local rotations, e.g. a
    clip's own; None: solved from the positions (`skeleton_rotations`, no twist). Adds clip_id to root/<split>.txt."""
    J = np.asarray(joints, dtype=np.float64)
    if J.ndim != 4 or J.shape[0] != 2 or J.shape[2:] != (N_JOINTS, 3):
        raise ValueError(f"save_interhuman: expected joints of shape (2, T, 22, 3), got {J.shape}")
    if rot6d is None:
        rot6d = np.stack([im.rot6d_from_matrix(skeleton_rotations(p)[0][:, 1:]) for p in J])  # (2, T, 21, 6)
    elif np.shape(rot6d) != J.shape[:2] + (N_JOINTS - 1, 6):
        raise ValueError(f"save_interhuman: rot6d must have shape {J.shape[:2] + (N_JOINTS - 1, 6)}, got {np.shape(rot6d)}")
    interhuman.save_clip(root, clip_id, J, rot6d, list(captions), split)
    return root
