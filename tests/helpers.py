"""Shared test helpers: small, smooth, physically shaped two-person clips built with forward kinematics.

(A module with its own name, not conftest: spawned test processes must import it unambiguously.)"""
import numpy as np

import intermoe_min as im

# A rough adult rest pose (metres, Y up, facing +Z, left side at +X): offset of each joint from its parent.
REST_OFFSETS = np.array([
    [0, 0, 0], [0.08, -0.08, 0], [-0.08, -0.08, 0], [0, 0.1, 0], [0, -0.4, 0], [0, -0.4, 0],
    [0, 0.13, 0], [0, -0.4, 0], [0, -0.4, 0], [0, 0.05, 0], [0, -0.05, 0.12], [0, -0.05, 0.12],
    [0, 0.2, 0], [0.08, 0.12, 0], [-0.08, 0.12, 0], [0, 0.1, 0], [0.1, 0, 0], [-0.1, 0, 0],
    [0.26, 0, 0], [-0.26, 0, 0], [0.25, 0, 0], [-0.25, 0, 0],
], dtype=np.float64)


def make_person(T, rng, start=(0.0, 0.0), yaw=0.0):
    """(T, 22, 3) joints and (T, 21, 6) local rotations of one smoothly moving person."""
    t = np.linspace(0, 1, T)[:, None]
    freq = rng.uniform(0.5, 2.0, size=(1, 22))
    phase = rng.uniform(0, 2 * np.pi, size=(1, 22))
    amp = rng.uniform(0.05, 0.4, size=(1, 22))
    axes = rng.normal(size=(22, 3))
    angles = amp * np.sin(2 * np.pi * freq * t + phase)  # (T, 22)
    local = im.axis_angle_matrix(np.broadcast_to(axes, (T, 22, 3)), angles)  # (T, 22, 3, 3)
    local[:, 0] = im.yaw_matrix(yaw + 0.3 * np.sin(2 * np.pi * t[:, 0]))
    root = np.stack([start[0] + 0.5 * t[:, 0], 0.95 + 0.02 * np.sin(6 * t[:, 0]), start[1] + 0.2 * t[:, 0]], -1)
    joints = im.forward_kinematics(local, root, REST_OFFSETS)
    return joints.astype(np.float32), im.rot6d_from_matrix(local[:, 1:]).astype(np.float32)


def make_record(T=40, seed=0, clip_id="c0", captions=None):
    rng = np.random.default_rng(seed)
    j1, r1 = make_person(T, rng, start=(0.3, -0.2), yaw=0.4)
    j2, r2 = make_person(T, rng, start=(0.1, 1.2), yaw=0.4 + np.pi)
    return {"id": clip_id, "joints": np.stack([j1, j2]), "rot6d": np.stack([r1, r2]),
            "captions": captions or ["one person waves with the left hand while the other walks clockwise",
                                     "the first person waves, the second person circles clockwise",
                                     "a person raises the left hand; the other walks around them"],
            "meta": {}}


def mirror_features(features: np.ndarray) -> np.ndarray:
    """(..., 262) canonical features -> mirrored features, part by part (the library mirrors joints and
    rotations and recomputes the features; the tests check the two agree). Mirroring keeps the +Z facing and
    the origin, so the result is exactly the feature of the mirrored joints."""
    f = np.asarray(features)
    lead = f.shape[:-1]
    S = im.FEATURE_SLICES
    pos = im.mirror_joints(f[..., S["positions"]].reshape(*lead, im.N_JOINTS, 3)).reshape(*lead, -1)
    vel = im.mirror_joints(f[..., S["velocities"]].reshape(*lead, im.N_JOINTS, 3)).reshape(*lead, -1)
    rot = im.mirror_rot6d(f[..., S["rotations"]].reshape(*lead, im.N_JOINTS - 1, 6)).reshape(*lead, -1)
    con = f[..., S["contacts"]][..., [2, 3, 0, 1]]  # (l_ankle, l_foot, r_ankle, r_foot) -> (r_ankle, r_foot, ...)
    return np.concatenate([pos, vel, rot, con], axis=-1).astype(f.dtype)


def read_bvh_positions(path):
    """A small BVH reader, for the tests: joint names and their positions (T, J, 3) in metres by forward
    kinematics of the file's offsets (cm) and 'Zrotation Xrotation Yrotation' channels."""
    names, parents, offsets, stack, rows, in_motion = [], [], [], [], [], False
    for line in open(path).read().splitlines():
        tok = line.split()
        if not tok:
            continue
        if in_motion:
            if tok[0] not in ("Frames:", "Frame"):
                rows.append([float(v) for v in tok])
        elif tok[0] in ("ROOT", "JOINT"):
            names.append(tok[1])
            parents.append(stack[-1] if stack else -1)
            pending = len(names) - 1
        elif tok[0] == "End":
            pending = None
        elif tok[0] == "{":
            stack.append(pending)
        elif tok[0] == "}":
            stack.pop()
        elif tok[0] == "OFFSET" and pending is not None and len(offsets) < len(names):
            offsets.append([float(v) / 100 for v in tok[1:4]])
        elif tok[0] == "MOTION":
            in_motion = True
    rows = np.array(rows)
    T, J = len(rows), len(names)

    def rot(axis, deg):
        a = np.radians(deg)
        c, s = np.cos(a), np.sin(a)
        R = np.zeros(a.shape + (3, 3))
        i, j = [(1, 2), (2, 0), (0, 1)][axis]
        R[..., axis, axis], R[..., i, i], R[..., j, j], R[..., i, j], R[..., j, i] = 1, c, c, -s, s
        return R
    angles = rows[:, 3:].reshape(T, J, 3)
    local = rot(2, angles[..., 0]) @ rot(0, angles[..., 1]) @ rot(1, angles[..., 2])  # Rz Rx Ry
    G, P = np.empty((T, J, 3, 3)), np.empty((T, J, 3))
    for j in range(J):
        p = parents[j]
        if p < 0:
            G[:, j], P[:, j] = local[:, j], rows[:, :3] / 100
        else:
            G[:, j] = G[:, p] @ local[:, j]
            P[:, j] = P[:, p] + np.einsum("tij,j->ti", G[:, p], np.array(offsets[j]))
    return names, P
