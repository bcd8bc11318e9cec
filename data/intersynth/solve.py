"""Solving a person: trunk angles give the spine rotations; analytic two-bone IK turns foot and hand targets
into hip/knee/ankle and shoulder/elbow rotations; `intermoe_min.forward_kinematics` turns the local
rotations into joint positions. Those same rotations are stored as 6D."""
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

import intermoe_min as im

from .body import ARMS, FPS, HIP, LEGS, NECK, PELVIS, SIDE, SPINE, TOE, UP, Body
from .gait import plan_steps
from .timing import rot, unit, fwd2, left2, ramp, to3, window


@dataclass
class Plan:
    """What one person does, as time series over T frames in world coordinates.

    Builders fill the trunk fields before solving; hand targets are filled afterwards (by the builder's
    `arms` function), once both trunks are known, because hands often go to the other person's body."""
    root_xz: np.ndarray                # (T, 2) pelvis position on the floor (x, z)
    yaw: np.ndarray                    # (T,) facing; 0 faces +Z, positive turns toward +X
    bend: np.ndarray = None            # (T,) trunk bend forward, radians (negative leans back)
    lean: np.ndarray = None            # (T,) trunk lean sideways, radians (positive toward own left)
    twist: np.ndarray = None           # (T,) chest turn, radians (positive toward own left)
    crouch: np.ndarray = None          # (T,) pelvis lowered by this much, metres
    head_yaw: np.ndarray = None        # (T,) head turn relative to the chest, radians
    head_pitch: np.ndarray = None      # (T,) head nod, radians (positive looks down)
    hip_share: float = 0.35            # share of the bend taken at the hips (the rest in the spine)
    swing: int = 12                    # frames per step
    step_thr: float = 0.12             # how far the body may drift from a planted foot before it steps
    lift: float = 0.07                 # swing foot clearance, metres
    busy: tuple = None                 # (t0, t1): frames during which no step may happen
    hand_target: np.ndarray = None     # (T, 2, 3) world target of the [left, right] wrist
    hand_w: np.ndarray = None          # (T, 2) 0 = relaxed arm, 1 = wrist on target
    elbow_pole: np.ndarray = None      # (T, 2, 3) where the elbows point (None: down, back and out)
    hand_via: np.ndarray = None        # (T, 2, 3) way a hand bulges between relaxed and target (None: front)
    arm_drift: np.ndarray = None       # (T, 2, 3) slow wandering of the relaxed hands (idle life), metres
    target_drift: np.ndarray = None    # (T, 2, 3) ... and of a task's hand targets, none while touching
    kick: dict = None                  # {'foot': k, 'times': 6 frames, 'toe': (T, 3), 'pitch': rad}

    def __post_init__(self):
        T = len(self.yaw)
        for name in ("bend", "lean", "twist", "crouch", "head_yaw", "head_pitch"):
            if getattr(self, name) is None:
                setattr(self, name, np.zeros(T))
        if self.hand_target is None:
            self.hand_target = np.zeros((T, 2, 3))
            self.hand_w = np.zeros((T, 2))
        if self.arm_drift is None:
            self.arm_drift = np.zeros((T, 2, 3))
        if self.target_drift is None:
            self.target_drift = np.zeros((T, 2, 3))


def _perp(p, u):
    """Unit part of p perpendicular to unit u (..., 3), with a fallback when p is parallel to u."""
    q = p - (p * u).sum(-1, keepdims=True) * u
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    alt = np.cross(u, np.array([0.0, 0.0, 1.0]) + 0.3 * np.array([1.0, 0.0, 0.0]))
    q = np.where(n > 1e-6, q, alt)
    return unit(q)


def _frame(u, p):
    """Orthonormal frame (..., 3, 3) whose columns are u, the part of p across u, and their cross."""
    e1 = unit(u)
    e2 = _perp(p, e1)
    return np.stack([e1, e2, np.cross(e1, e2)], -1)


def _aim(u, p, u_rest, p_rest):
    """Rotation taking rest direction u_rest to u while the rest 'pole' p_rest turns toward p."""
    return _frame(u, p) @ np.swapaxes(_frame(u_rest, p_rest), -1, -2)


def two_bone_ik(root, target, l1, l2, pole):
    """Analytic two-bone IK (hip-knee-ankle or shoulder-elbow-wrist).

    root, target, pole: (T, 3); l1, l2: bone lengths. The middle joint bends toward `pole`.
    Returns the middle joint (T, 3) and the end actually reached (T, 3): the target when it is within
    reach, else the nearest reachable point on the line toward it (law of cosines in the bend plane)."""
    d = target - root
    dist = np.linalg.norm(d, axis=-1, keepdims=True)
    u = d / np.maximum(dist, 1e-9)
    dist = np.clip(dist, abs(l1 - l2) + 1e-4, (l1 + l2) * (1 - 1e-4))
    cos_a = (l1 * l1 + dist * dist - l2 * l2) / (2 * l1 * dist)
    sin_a = np.sqrt(np.clip(1 - cos_a * cos_a, 0, 1))
    mid = root + l1 * (cos_a * u + sin_a * _perp(pole, u))
    return mid, root + u * dist


def fk_with_rotations(local, root_pos, offsets):
    """Like intermoe_min.forward_kinematics, but also returns global rotations (T, 22, 3, 3)."""
    T = len(local)
    glob = np.empty_like(local)
    pos = np.empty((T, im.N_JOINTS, 3))
    glob[:, 0], pos[:, 0] = local[:, 0], root_pos
    for j in range(1, im.N_JOINTS):
        p = im.SMPL_PARENTS[j]
        glob[:, j] = glob[:, p] @ local[:, j]
        pos[:, j] = pos[:, p] + glob[:, p] @ offsets[j]
    return pos, glob


def _pelvis_height(root_xz, R0, ankle, body, crouch):
    """Pelvis height per frame: standing height minus crouch, lowered wherever a foot would be out of reach.

    Standing, the knees are all but straight (the leg at 99.8 % of its length); walking, the stance leg
    vaults the pelvis over the foot, its knee a little bent at mid-stance, and the pelvis dips at double
    support (the pelvis bob). Smoothed (Gaussian) so it never jumps, and kept at or below the reachable height so planted
    feet are really reached by the leg IK."""
    hip = np.einsum("tij,kj->tki", R0, body.offsets[list(HIP)])      # (T, 2, 3) hips for a pelvis at y=0
    dh = np.linalg.norm(root_xz[:, None] + hip[..., [0, 2]] - ankle[..., [0, 2]], axis=-1)  # (T, 2)
    reach = 0.999 * body.leg
    dv = np.sqrt(np.maximum(reach * reach - dh * dh, 0.01 * reach * reach))
    h_max = (ankle[..., 1] + dv - hip[..., 1]).min(1)                 # (T,)
    speed = gaussian_filter1d(np.r_[np.linalg.norm(np.diff(root_xz, axis=0), axis=1), 0.0] * FPS, 6.0, mode="nearest")
    walk = np.clip((speed - 0.2) / 0.5, 0.0, 1.0)  # a walker's stance knee gives a little (~25 deg at mid-stance)
    h_nom = body.ankle_h + (0.998 - 0.03 * walk) * body.leg - hip[..., 1].mean(1) - crouch
    h = gaussian_filter1d(np.minimum(h_nom, h_max), 2.0, mode="nearest", truncate=3.0)
    return np.minimum(h, h_max)


def solve_trunk(plan: Plan, body: Body) -> dict:
    """Stage 1: feet, pelvis, spine and head for one person. Returns a dict used by the arms and stage 2."""
    T = len(plan.yaw)
    ankle, foot_yaw, foot_pitch, swinging = plan_steps(plan.root_xz, plan.yaw, body, plan.swing,
                                                       plan.step_thr, plan.lift, plan.busy)
    # Walking: the pelvis turns with the forward foot's hip ahead (left foot ahead: it turns right), the chest
    # counter-rotates and the head keeps looking ahead; the pelvis shifts over the stance foot.
    fo = np.einsum("tki,ti->tk", ankle - to3(plan.root_xz)[:, None], to3(fwd2(plan.yaw)))  # feet ahead (T, 2)
    pelvis_turn = np.clip(-0.14 * (fo[:, 0] - fo[:, 1]), -0.1, 0.1)                    # left foot ahead: right
    shift = 0.022 * gaussian_filter1d(swinging[:, 1].astype(float) - swinging[:, 0], 3.0, mode="nearest")
    root_xz = plan.root_xz + shift[:, None] * left2(plan.yaw)  # toward the stance foot
    twist = plan.twist - 1.4 * pelvis_turn                     # chest yaw = yaw + pelvis turn + twist
    pelvis_pitch = plan.hip_share * plan.bend
    spine = (plan.bend - pelvis_pitch) / 3.0
    R0 = rot(1, plan.yaw + pelvis_turn) @ rot(0, pelvis_pitch)           # (T, 3, 3) root rotation
    local = np.broadcast_to(np.eye(3), (T, im.N_JOINTS, 3, 3)).copy()       # (T, 22, 3, 3)
    local[:, PELVIS] = R0
    R_spine = rot(1, twist / 3) @ rot(0, spine) @ rot(2, -plan.lean / 3)
    for j in SPINE:
        local[:, j] = R_spine
    local[:, NECK] = rot(1, plan.head_yaw + 0.4 * pelvis_turn) @ rot(0, plan.head_pitch)
    y = _pelvis_height(root_xz, R0, ankle, body, plan.crouch)
    root = np.stack([root_xz[:, 0], y, root_xz[:, 1]], -1)                 # (T, 3)
    pos, glob = fk_with_rotations(local, root, body.offsets)
    chest_yaw = plan.yaw + pelvis_turn + twist
    return dict(plan=plan, body=body, local=local, pos=pos, glob=glob, root=root, ankle=ankle,
                foot_yaw=foot_yaw, foot_pitch=foot_pitch, swinging=swinging,
                fwd=to3(fwd2(chest_yaw)), left=to3(left2(chest_yaw)), T=T)


def solve_limbs(tor: dict):
    """Stage 2: legs and arms by two-bone IK, then forward kinematics.

    Returns joints (T, 22, 3) and local rotations (T, 22, 3, 3) (joint 0: global root rotation)."""
    plan, body, off = tor["plan"], tor["body"], tor["body"].offsets
    pos, glob, local = tor["pos"], tor["glob"], tor["local"].copy()
    T = tor["T"]
    t = np.arange(T)
    fwd, left = tor["fwd"], tor["left"]
    z_axis = np.array([0.0, 0.0, 1.0])
    ankles = tor["ankle"].copy()                            # (T, 2, 3)
    foot_rot = rot(1, tor["foot_yaw"]) @ rot(0, tor["foot_pitch"])  # (T, 2, 3, 3) feet: yaw, then toes down
    if plan.kick is not None:
        ankles, foot_rot = _apply_kick(plan, tor, ankles, foot_rot, t)
    # Legs: hip -> knee -> ankle; the toes follow the ankle rotation.
    for k, (hip, knee, ank) in enumerate(LEGS):
        foot_fwd = foot_rot[:, k, :, 2]                      # where the toes point (T, 3)
        pole = unit(foot_fwd + 0.3 * fwd + 0.8 * UP + 0.15 * SIDE[k] * left)  # knee over the toes
        H = pos[:, hip]
        K, A = two_bone_ik(H, ankles[:, k], body.bone(knee), body.bone(ank), pole)
        G_hip = _aim(K - H, pole, off[knee], z_axis)
        G_knee = _aim(A - K, pole, off[ank], z_axis)
        local[:, hip] = np.swapaxes(glob[:, PELVIS], -1, -2) @ G_hip
        local[:, knee] = np.swapaxes(G_hip, -1, -2) @ G_knee
        local[:, ank] = np.swapaxes(G_knee, -1, -2) @ foot_rot[:, k]
    # Arms: shoulder -> elbow -> wrist (under the collar). Relaxed arms hang under the shoulder
    # and swing against the opposite leg; `hand_w` blends toward the task's wrist targets.
    fwd_off = np.einsum("tki,ti->tk", ankles - tor["root"][:, None], fwd)   # feet ahead of pelvis (T, 2)
    for k, (col, sh, el, wr) in enumerate(ARMS):
        S = pos[:, sh]
        swing = np.clip(body.arm_swing * fwd_off[:, 1 - k], -0.22, 0.22)[:, None]  # against the opposite leg
        reach = body.arm_relax - 0.08 * np.maximum(swing, 0.0)  # elbows bent a little, more swinging forward
        relaxed = S - reach * body.arm * UP + (0.06 + swing) * fwd + body.arm_out * SIDE[k] * left + plan.arm_drift[:, k]
        via = plan.hand_via[:, k] if plan.hand_via is not None else fwd + 0.4 * SIDE[k] * left
        W = _blend_hand(S, relaxed, plan.hand_target[:, k] + plan.target_drift[:, k], plan.hand_w[:, k, None], via)
        if plan.elbow_pole is not None:
            pole = plan.elbow_pole[:, k]
        else:
            pole = unit(-0.75 * fwd + 0.4 * SIDE[k] * left - 0.45 * UP)  # hanging: back; reaching: down
        E, Wr = two_bone_ik(S, W, body.bone(el), body.bone(wr), pole)
        G_sh = _aim(E - S, pole, off[el], -z_axis)
        G_el = _aim(Wr - E, pole, off[wr], -z_axis)
        local[:, sh] = np.swapaxes(glob[:, col], -1, -2) @ G_sh
        local[:, el] = np.swapaxes(G_sh, -1, -2) @ G_el
    joints = im.forward_kinematics(local, tor["root"], off)
    return joints, local


def _blend_hand(S, a, b, w, via):
    """Wrist position between a (w = 0) and b (w = 1), both (T, 3), as seen from the shoulder S.

    Direction and distance from the shoulder are blended separately. The direction follows a quadratic
    Bezier curve on the unit sphere whose middle control point leans toward `via` (across the arc, more
    so the further apart the two directions are), so a hand going from hanging to raised passes in front
    of the body instead of straight through the shoulder (which would flip the elbow)."""
    ra, rb = a - S, b - S
    na, nb = np.linalg.norm(ra, axis=-1, keepdims=True), np.linalg.norm(rb, axis=-1, keepdims=True)
    ua, ub = ra / np.maximum(na, 1e-9), rb / np.maximum(nb, 1e-9)
    chord = ub - ua                                                          # (T, 3)
    across = _perp(unit(via), unit(chord))                                 # part of via across the arc
    mid = unit(ua + ub + np.linalg.norm(chord, axis=-1, keepdims=True) * across)
    u = unit((1 - w) ** 2 * ua + 2 * w * (1 - w) * mid + w * w * ub)
    return S + ((1 - w) * na + w * nb) * u


def _apply_kick(plan, tor, ankles, foot_rot, t):
    """Replace the kicking foot's path: planted -> chambered knee -> extended -> chambered -> planted."""
    kk = plan.kick
    k, (k0, k1, k2, k3, k4, k5) = kk["foot"], kk["times"]
    body, fwd = tor["body"], tor["fwd"]
    hip = tor["pos"][:, HIP[k]]
    planted = ankles[:, k].copy()
    chamber = hip + 0.45 * body.leg * fwd - 0.55 * body.leg * UP
    pitch = kk["pitch"] * window(t, k0, k2, k3, k5)
    F = rot(1, tor["foot_yaw"][:, k]) @ rot(0, pitch)                     # (T, 3, 3)
    extended = kk["toe"] - F @ body.offsets[TOE[k]]                          # ankle that puts toes on target
    r = [ramp(t, a, b)[:, None] for a, b in ((k0, k1), (k1, k2), (k3, k4), (k4, k5))]
    path = planted + (chamber - planted) * r[0] + (extended - chamber) * r[1] \
        - (extended - chamber) * r[2] - (chamber - planted) * r[3]
    ankles[:, k] = path
    foot_rot[:, k] = F
    return ankles, foot_rot
