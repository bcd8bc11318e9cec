"""Bodies from decoded features, beyond the paper: one rigid skeleton per person (`rigid_bodies`), the joints
smoothed in time first (`smooth_joints`), and the feet the decoder says are in contact planted by leg IK
(`plant_feet`); `bodies_from_features` does all three. `InterMoE.sample(..., finish=bodies_from_features)` and
`reconstruct` below apply it; intermoe_tools.pipeline.sample does so by default.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from intermoe_min import (FEATURE_SLICES, N_JOINTS, REST_OFFSETS, SMPL_PARENTS, axis_angle_matrix,
                          forward_kinematics, joints_from_features)


# ---- rigid bodies: one skeleton per person, posed by rotations --------------------------------------
# A decoder outputs 22 free points a frame, so its bones stretch. A body is a skeleton of fixed offsets posed
# by rotations (forward kinematics), which is also what a BVH file stores. `skeleton_rotations` solves the
# rotations from positions: a joint with one child turns the rest pose's bone onto the bone it has now by the
# shortest arc from where its parent already turned it; the pelvis and the chest (three children each) are
# turned by the frame of two directions (up the spine, across the hips or collars). Twist about a bone is not
# in the positions, so it is not solved. `rigid_bodies` poses each person's median offsets by those rotations.
END_SITES = {15: [0, .11, 0], 20: [.08, 0, 0], 21: [-.08, 0, 0], 10: [0, 0, .05], 11: [0, 0, .05]}  # leaf -> tip (m)
TWO_AXIS_FRAMES = {0: (3, (1, 2)), 9: (12, (13, 14))}  # joint: (child up the spine, (left, right) children across)
CHILDREN = [[c for c, p in enumerate(SMPL_PARENTS) if p == j] for j in range(N_JOINTS)]


def _two_axis_frame(a, b):
    """(..., 3) directions -> (..., 3, 3) rotation whose columns are a, the part of b across a, their cross
    (a degenerate pose, a of length 0 or b along a, still gives a rotation)."""
    na = np.linalg.norm(a, axis=-1, keepdims=True)
    e1 = np.where(na > 1e-9, a / np.maximum(na, 1e-9), np.array([0.0, 1.0, 0.0]))
    e2 = b - (e1 * b).sum(-1, keepdims=True) * e1
    n2 = np.linalg.norm(e2, axis=-1, keepdims=True)
    spare = np.cross(e1, np.eye(3)[np.argmin(np.abs(e1), axis=-1)])  # any direction across e1
    e2 = np.where(n2 > 1e-9, e2 / np.maximum(n2, 1e-9), spare / np.linalg.norm(spare, axis=-1, keepdims=True))
    return np.stack([e1, e2, np.cross(e1, e2)], -1)


def _shortest_arc(u, v):
    """(..., 3) unit vectors -> (..., 3, 3) the rotation taking u to v about u x v (identity when parallel)."""
    axis = np.cross(u, v)
    s, c = np.linalg.norm(axis, axis=-1), np.clip((u * v).sum(-1), -1.0, 1.0)
    across = np.cross(u, np.eye(3)[np.argmin(np.abs(u), axis=-1)])  # for u, v opposite: any axis across u
    axis = np.where(s[..., None] > 1e-9, axis / np.maximum(s, 1e-9)[..., None],
                    across / np.maximum(np.linalg.norm(across, axis=-1, keepdims=True), 1e-9))
    return axis_angle_matrix(axis, np.arctan2(s, c))


def skeleton_rotations(joints: np.ndarray, offsets: np.ndarray | None = None):
    """One person's joints (T, 22, 3) -> local rotations (T, 22, 3, 3) (joint 0: global) and rest offsets (22, 3),
    each child's place in its parent's frame (the median over the clip unless `offsets` are given).
    `forward_kinematics` of the two gives the joints back exactly when the clip is rigid. With `offsets`, each
    bone aims from where the rigid skeleton has put its joint at the joint's child, so errors do not add up
    down a limb."""
    J = np.asarray(joints, dtype=np.float64)
    T = len(J)
    G = np.empty((T, N_JOINTS, 3, 3))  # global rotations
    X = J.copy()  # where the skeleton puts each joint (with `offsets`: the rigid body, built from the root down)
    for j in range(N_JOINTS):  # parents come first in SMPL's order
        if j in TWO_AXIS_FRAMES:
            up, (l, r) = TWO_AXIS_FRAMES[j]
            now = _two_axis_frame(J[:, up] - X[:, j], J[:, l] - J[:, r])                      # (T, 3, 3)
            G[:, j] = now @ _two_axis_frame(REST_OFFSETS[up], REST_OFFSETS[l] - REST_OFFSETS[r]).T
        elif CHILDREN[j]:
            c, Gp = CHILDREN[j][0], G[:, SMPL_PARENTS[j]]
            was = np.einsum("tij,j->ti", Gp, REST_OFFSETS[c] / np.linalg.norm(REST_OFFSETS[c]))  # turned so far
            bone = J[:, c] - X[:, j]
            now = bone / np.maximum(np.linalg.norm(bone, axis=-1, keepdims=True), 1e-9)
            G[:, j] = _shortest_arc(was, now) @ Gp
        else:  # a hand, a foot or the head: nothing below it says how it turns
            G[:, j] = G[:, SMPL_PARENTS[j]]
        if offsets is not None:
            for c in CHILDREN[j]:
                X[:, c] = X[:, j] + np.einsum("tij,j->ti", G[:, j], offsets[c])
    local = G.copy()
    for j in range(1, N_JOINTS):
        local[:, j] = np.swapaxes(G[:, SMPL_PARENTS[j]], -1, -2) @ G[:, j]
    if offsets is None:
        offsets = np.zeros((N_JOINTS, 3))
        for j in range(1, N_JOINTS):
            p = SMPL_PARENTS[j]
            offsets[j] = np.median(np.einsum("tji,tj->ti", G[:, p], J[:, j] - J[:, p]), axis=0)
    return local, np.asarray(offsets, dtype=np.float64)


RIGID_FIT_STEPS = 30  # Adam steps of the least-squares fit that follows the aimed start


def _fit_rigid(joints: np.ndarray, local: np.ndarray, offsets: np.ndarray, steps: int) -> np.ndarray:
    """Least squares: one person's skeleton (global rotations of every joint with children in 6D, the pelvis
    path, one set of offsets) moved by Adam from a start (local, offsets) to the joints (T, 22, 3) it should
    pass through -> the fitted joints, rigid by construction (forward kinematics)."""
    target = torch.as_tensor(joints)                                      # (T, 22, 3) float64
    glob = [None] * N_JOINTS
    for j in range(N_JOINTS):
        glob[j] = local[:, j] if j == 0 else glob[SMPL_PARENTS[j]] @ local[:, j]
    movers = [j for j in range(N_JOINTS) if CHILDREN[j]]
    rot = torch.tensor(np.stack([glob[j][..., :2].reshape(len(joints), 6) for j in movers], 1), requires_grad=True)
    root = torch.tensor(joints[:, 0], requires_grad=True)                # (T, 3)
    off = torch.tensor(offsets, requires_grad=True)                        # (22, 3)
    opt = torch.optim.Adam([rot, root, off], lr=1e-2)

    def pose():
        a, b = rot[..., 0::2], rot[..., 1::2]                            # (T, J', 3) the two stored columns
        x = F.normalize(a, dim=-1)
        y = F.normalize(b - (x * b).sum(-1, keepdim=True) * x, dim=-1)
        G = dict(zip(movers, torch.stack([x, y, torch.cross(x, y, dim=-1)], -1).unbind(1)))  # j -> (T, 3, 3)
        X = [root] + [None] * (N_JOINTS - 1)
        for j in range(1, N_JOINTS):
            X[j] = X[SMPL_PARENTS[j]] + G[SMPL_PARENTS[j]] @ off[j]
        return torch.stack(X, 1)                                          # (T, 22, 3)
    with torch.enable_grad():
        for _ in range(steps):
            loss = (pose() - target).square().sum(-1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return pose().numpy()


def rigid_bodies(joints: np.ndarray, fit_steps: int = RIGID_FIT_STEPS) -> np.ndarray:
    """(..., T, 22, 3) joints -> the same posed on one rigid skeleton per person: started from each bone's median
    offset aimed at its child (`skeleton_rotations`), then fitted to all the joints by least squares
    (`_fit_rigid`, `fit_steps` steps; 0: the aimed start only). Every bone keeps one length over the clip."""
    J = np.asarray(joints, dtype=np.float64)
    out = []
    for person in J.reshape(-1, *J.shape[-3:]):  # (T, 22, 3) each
        local, offsets = skeleton_rotations(person, skeleton_rotations(person)[1])
        start = forward_kinematics(local, person[:, 0], offsets)
        if fit_steps and np.linalg.norm(start - person, axis=-1).mean() > 1e-4:  # not rigid already (0.1 mm)
            start = _fit_rigid(person, local, offsets, fit_steps)
        out.append(start)
    return np.stack(out).reshape(J.shape).astype(np.asarray(joints).dtype)


SMOOTH_SIGMA = 1.0  # frames: the std of the Gaussian that `smooth_joints` averages decoded joints over in time


def smooth_joints(joints: np.ndarray, sigma: float = SMOOTH_SIGMA) -> np.ndarray:
    """(..., T, 22, 3) -> the joints averaged over neighbouring frames with Gaussian weights of std `sigma` frames
    (the clip's ends held for the frames beyond them; sigma 0: unchanged). The decoder draws each frame with
    centimetres of independent error, a jitter 13x real motion's on the shipped VAE's reconstructions (second
    difference 3.3 against 0.25 cm/frame^2); one frame of smoothing brings it to 1.0 and the joints nearer the
    truth (MPJPE 5.3 -> 5.0 cm; 48 test clips)."""
    J = np.asarray(joints, dtype=np.float64)
    if sigma <= 0 or J.shape[-3] < 2:
        return np.array(joints)
    r = int(np.ceil(3 * sigma))
    w = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    w /= w.sum()                                                                   # (2r + 1,) weights
    pad = [(0, 0)] * (J.ndim - 3) + [(r, r), (0, 0), (0, 0)]
    P = np.pad(J, pad, mode="edge")                                                # (..., T + 2r, 22, 3)
    T = J.shape[-3]
    out = sum(w[i] * P[..., i:i + T, :, :] for i in range(2 * r + 1))              # (..., T, 22, 3)
    return out.astype(np.asarray(joints).dtype)


# ---- planted feet: the decoded contact bits, held by leg IK ----------------------------------------
LEGS = [(1, 4, 7, 10), (2, 5, 8, 11)]  # (hip, knee, ankle, toe), left then right
PLANT_BLEND = 4  # frames over which a foot lock fades in before a contact and out after it


def _lock_targets(p: np.ndarray, contact: np.ndarray, blend: int):
    """One joint's path p (T, 3) and contact bits (T,) -> (target (T, 3), weight (T,)): during each contact run the
    run's mean position (never below the floor), weighted 1, fading linearly to 0 over `blend` frames around it."""
    T = len(p)
    target, weight = p.copy(), np.zeros(T)
    edges = np.flatnonzero(np.diff(np.r_[0, contact.astype(int), 0]))  # starts and ends of the runs
    for s, e in zip(edges[::2], edges[1::2]):
        lock = p[s:e].mean(0)
        lock[1] = max(lock[1], 0.0)
        lo, hi = max(0, s - blend), min(T, e + blend)
        ramp = np.clip(np.minimum(np.arange(lo, hi) - (s - blend - 1), (e + blend) - np.arange(lo, hi)) / (blend + 1),
                       0, 1)  # 1 inside the run, linear outside
        take = ramp > weight[lo:hi]
        target[lo:hi][take], weight[lo:hi][take] = lock, ramp[take]
    return target, weight


def plant_feet(joints: np.ndarray, contacts: np.ndarray, blend: int = PLANT_BLEND) -> np.ndarray:
    """One person's rigid joints (T, 22, 3) and foot-contact bits (T, 4) in FOOT_JOINTS order -> the joints with
    every foot in contact held where it stands (InterMask cleans feet with IK the same way) and no foot below
    the floor: the ankle and toe go to their lock (`_lock_targets`), raised to y >= 0, and the knee follows by
    two-bone IK in the leg's own bending plane. Bone lengths are kept exactly; an ankle out of the leg's reach
    stops at full stretch."""
    J = np.array(joints, dtype=np.float64)
    bits = np.asarray(contacts) > 0.5
    for side, (hip, knee, ankle, toe) in enumerate(LEGS):
        a_tgt, a_w = _lock_targets(J[:, ankle], bits[:, 2 * side], blend)
        t_tgt, t_w = _lock_targets(J[:, toe], bits[:, 2 * side + 1], blend)
        h, k, a, t = J[:, hip], J[:, knee], J[:, ankle], J[:, toe]
        if not (a_w.any() or t_w.any() or (J[:, [ankle, toe], 1] < 0).any()):
            continue
        l1, l2, l3 = (np.linalg.norm(x - y, axis=-1).mean() for x, y in ((k, h), (a, k), (t, a)))
        goal = a + a_w[:, None] * (a_tgt - a)                                            # (T, 3) the new ankle
        goal[:, 1] = np.maximum(goal[:, 1], 0.0)
        d = goal - h
        dist = np.linalg.norm(d, axis=-1, keepdims=True)
        reach = np.clip(dist, abs(l1 - l2) + 1e-6, l1 + l2 - 1e-6)
        d_hat = d / np.maximum(dist, 1e-9)
        goal = h + d_hat * reach
        bend = (k - h) - ((k - h) * d_hat).sum(-1, keepdims=True) * d_hat               # the knee's side of the axis
        bend = bend / np.maximum(np.linalg.norm(bend, axis=-1, keepdims=True), 1e-9)
        x = (l1 ** 2 - l2 ** 2 + reach ** 2) / (2 * reach)                               # law of cosines
        knee_new = h + d_hat * x + bend * np.sqrt(np.maximum(l1 ** 2 - x ** 2, 0.0))
        toe_goal = goal + (t - a)                                                         # the foot moved with the ankle
        toe_goal += t_w[:, None] * (t_tgt - toe_goal)
        toe_goal[:, 1] = np.maximum(toe_goal[:, 1], 0.0)
        foot = toe_goal - goal
        foot = l3 * foot / np.maximum(np.linalg.norm(foot, axis=-1, keepdims=True), 1e-9)
        low = goal[:, 1] + foot[:, 1] < 0  # toes through the floor: turn the foot up until they rest on it
        flat = foot[low] * np.array([1.0, 0.0, 1.0])
        flat *= np.sqrt(np.maximum(l3 ** 2 - goal[low, 1:2] ** 2, 0)) / np.maximum(np.linalg.norm(flat, axis=-1,
                                                                                                  keepdims=True), 1e-9)
        foot[low] = flat - goal[low, 1:2] * np.array([0.0, 1.0, 0.0])
        act = (a_w > 0) | (t_w > 0) | (J[:, [ankle, toe], 1] < 0).any(-1)  # frames with something to do
        J[act, knee], J[act, ankle], J[act, toe] = knee_new[act], goal[act], goal[act] + foot[act]
    return J.astype(np.asarray(joints).dtype)


def bodies_from_features(features: np.ndarray) -> np.ndarray:
    """(..., T, 262) de-normalised features -> the same with rigid bodies (`rigid_bodies` of the joints smoothed in
    time, `smooth_joints`) whose decoded foot contacts are planted (`plant_feet`): positions and velocities
    rewritten, rotations and contact bits kept."""
    f = np.array(features, dtype=np.float32)
    flat = f.reshape(-1, *f.shape[-2:])  # (people, T, 262)
    for person in flat:
        J = plant_feet(rigid_bodies(smooth_joints(joints_from_features(person))),
                       person[:, FEATURE_SLICES["contacts"]])
        person[:, FEATURE_SLICES["positions"]] = J.reshape(len(J), -1)
        vel = np.concatenate([J[1:] - J[:-1], J[-1:] - J[-2:-1]]) if len(J) > 1 else np.zeros_like(J)
        person[:, FEATURE_SLICES["velocities"]] = vel.reshape(len(J), -1)
    return f


@torch.no_grad()
def reconstruct(model, features, bodies: bool = True) -> np.ndarray:
    """A clip's de-normalised features (2, T, 262) -> the model's VAE's decoding of its encoding (2, T, 262): what the
    decoder lets through (the "VAE ceiling"), as rigid bodies with planted feet (`bodies_from_features`) unless
    bodies=False."""
    was = model.vae.training
    model.vae.eval()
    x = torch.as_tensor(model.normalizer.normalise(np.asarray(features, dtype=np.float32)),
                        device=model.latent_scale.device)  # (2, T, 262): the two people as a batch
    out = model.normalizer.denormalise(model.vae.decode(model.vae.encode(x), x.shape[1]).float()).cpu().numpy()
    model.vae.train(was)
    return bodies_from_features(out) if bodies else out
