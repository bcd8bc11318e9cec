"""InterSynth: a procedurally generated two-person interaction dataset, made offline in seconds.

InterHuman (the data InterMoE trains on) is gated, so this file makes its own. Every clip is two people
doing one of 20 interactions (handshake, high five, punch and dodge, push, hug, wave from afar, follow,
circling, bow, hand-over, tug of war, kick and block, point and look, shoulder pat, a dance holding hands,
a clapping game, a conversation with gestures, a handshake then walking off together, and the paper's
fencing and taekwondo sparring), with three
InterHuman-style captions and ground truth the real data lacks: who initiates, when the key event
happens, which hand, which way round, and which joints touch on which frames.

How a clip is made, in the order of the sections below:

  1. Bodies. Each person gets the SMPL 22-joint rest skeleton (Y up, metres, facing +Z, left side at +X),
     scaled to a height of 1.50-1.95 m with per-person leg, arm, torso and shoulder proportions, and a
     manner of their own (posture, arm carriage and swing, how much and how fast they sway).
     The skeleton is fixed over the clip, so bone lengths never change.
  2. Timing helpers. Everything moves with minimum-jerk ramps (smooth in position, velocity, acceleration).
  3. Gait. A footstep planner turns a pelvis path into stance and swing phases: a planted foot stays
     exactly still in world space. Walking follows a cadence with a walker's step length; the heel rises
     before toe-off and strikes first with the toes up.
  4. Solving a person. Trunk angles give the spine rotations; analytic two-bone IK turns foot and hand
     targets into hip/knee/ankle and shoulder/elbow rotations; `intermoe_min.forward_kinematics` turns
     the local rotations into joint positions. Those same rotations are stored as 6D. Idle life
     (`add_life`: breathing, sway, weight shifts, drift) goes on top of every task before solving.
  5. The interactions, one builder each: where the two people stand, how they move, where hands go.
  6. Captions, from templates with synonyms.
  7. Generating, caching and splitting the dataset.
  8. Physics and motion reports: the measurements behind `python data/intersynth.py --check`.
  9. Command line.

Public API: `generate(n_clips, seed)` (the clip format is in its docstring), `load_split(split, n_clips,
seed, cache_dir)`, `DEFAULT_N_CLIPS`, `check_n_clips(n_clips)`, `physics_report(clips)`,
`motion_report(clips)`, `rebuild_joints(clip, person)`, `INTERACTION_TYPES`, `KEY_NAMES`,
`heldout_template(kind)`.

    python data/intersynth.py            # generate + cache the default set (~25 s on 2 cores), summary
    python data/intersynth.py --check    # ... and measure the physics and how people move (per type too)
    python data/intersynth.py --n 140 --check   # a fresh small set instead of the cached default

Conventions: yaw is a rotation about +Y; yaw 0 faces +Z and a positive yaw turns the person toward +X
(their left at rest). Seen from above (looking down -Y), a growing yaw or position angle turns
counterclockwise. Hand index 0 is left (wrist 20), 1 is right (wrist 21).

Everything here is written for this project, following SMPL's 22-joint layout and InterGen's data
conventions (tr3e/InterGen's datasets/interhuman.py and utils/utils.py); no code is taken from elsewhere.
"""
import argparse
import json
import os
import re
import sys
import time
import types
import zipfile
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter1d

# Make `python data/intersynth.py` work from any directory: the repo root holds intermoe_min.py.
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)
import intermoe_min as im  # noqa: E402  (intermoe_eval, for the measurements, is imported where they are)

FPS = im.FPS
UP = np.array([0.0, 1.0, 0.0])
HAND_NAMES = ("left", "right")
SIDE = np.array([1.0, -1.0])  # index 0 (left) lies toward the person's +left direction, 1 (right) away
WRIST, SHOULDER = (20, 21), (16, 17)
TORSO_JOINTS = (0, 3, 6, 9, 12)  # pelvis .. neck: the torso capsule's axis runs pelvis -> neck
TORSO_RADIUS = 0.12  # torso capsule radius (m) for contacts: intermoe_eval's interpenetration measure's (tested)
SHOULDER_RADIUS = 0.07  # a hand resting on a shoulder sits this far from the shoulder joint (m)
HAND_CLEARANCE = 0.03   # wrist to body surface when a hand touches a body: the palm lies in between (m)
HAND_GAP = 0.035        # wrist to wrist when two hands hold each other (m)

# =====================================================================================================
# 1. Bodies
# =====================================================================================================

# Rest-pose offset of each joint from its parent for a ~1.66 m person, symmetric, T-pose, facing +Z,
# left at +X. Values are rounded from the proportions of SMPL's neutral body.
REST_OFFSETS = im.REST_OFFSETS  # the SMPL-like T-pose (Y up, facing +Z, left at +X); a body scales it
REST_ANKLE_HEIGHT = 0.08  # ankle joint above the floor with the foot flat (toes then sit at 0.025 m)
REST_HEAD_TOP = 0.11      # crown of the head above the head joint


@dataclass
class Body:
    """One person's fixed skeleton (lengths in metres) and manner of moving."""
    offsets: np.ndarray  # (22, 3) rest offset of each joint from its parent
    ankle_h: float       # ankle height when the foot is flat on the floor
    height: float        # stature, floor to crown
    slouch: float = 0.0      # constant forward bend of the trunk, radians (negative: leans back, upright)
    head_down: float = 0.0   # constant head pitch, radians
    arm_relax: float = 0.96  # a relaxed hand hangs this share of the arm's length below the shoulder
    arm_out: float = 0.05    # ... and this far out to the side (m): arm carriage
    arm_swing: float = 0.5   # walking: hand swing per metre the opposite foot is ahead
    sway: float = 1.0        # how much this person fidgets and sways when idle
    tempo: float = 1.0       # how quickly (breathing and sway frequencies)

    def bone(self, j: int) -> float:
        return float(np.linalg.norm(self.offsets[j]))

    @property
    def leg(self) -> float:  # hip -> ankle, fully stretched
        return self.bone(4) + self.bone(7)

    @property
    def arm(self) -> float:  # shoulder -> wrist, fully stretched
        return self.bone(18) + self.bone(20)

    @property
    def pelvis_y(self) -> float:  # pelvis height standing, knees all but straight
        return self.ankle_h + 0.998 * self.leg - self.offsets[1, 1]

    @property
    def shoulder(self) -> np.ndarray:  # left shoulder relative to the pelvis in the rest pose (3,)
        return self.offsets[[3, 6, 9, 13, 16]].sum(0)

    @property
    def shoulder_y(self) -> float:  # standing shoulder height
        return self.pelvis_y + self.shoulder[1]

    @property
    def torso(self) -> float:  # pelvis -> shoulder height
        return self.shoulder[1]


def _stature(off: np.ndarray, ankle_h: float) -> float:
    """Floor-to-crown height of a rest skeleton standing straight."""
    legs = -(off[1, 1] + off[4, 1] + off[7, 1])
    trunk = off[[3, 6, 9, 12, 15], 1].sum()
    return ankle_h + legs + trunk + REST_HEAD_TOP * (off[15, 1] / REST_OFFSETS[15, 1])


def sample_body(rng: np.random.Generator) -> Body:
    """A random adult: height 1.50-1.95 m, legs/arms/torso/shoulder width each within +-6 %, and a manner of
    their own: upright or slouched, head carriage, arm carriage and swing, how much and how fast they sway."""
    height = float(np.clip(rng.normal(1.72, 0.10), 1.50, 1.95))
    f_leg, f_arm, f_torso, f_width = rng.uniform(0.94, 1.06, size=4)
    off = REST_OFFSETS.copy()
    off[[4, 5, 7, 8]] *= f_leg
    off[[18, 19, 20, 21]] *= f_arm
    off[[3, 6, 9, 12, 15]] *= f_torso
    off[[1, 2, 13, 14, 16, 17], 0] *= f_width
    s = height / _stature(off, REST_ANKLE_HEIGHT)  # one scale brings the stature to `height`
    return Body(offsets=off * s, ankle_h=REST_ANKLE_HEIGHT * s, height=height,
                slouch=float(np.clip(rng.normal(0.04, 0.05), -0.02, 0.15)), head_down=float(rng.uniform(-0.04, 0.12)),
                arm_relax=float(rng.uniform(0.93, 0.975)), arm_out=float(rng.uniform(0.03, 0.09)),
                arm_swing=float(rng.uniform(0.3, 0.65)), sway=float(rng.uniform(0.7, 1.4)),
                tempo=float(rng.uniform(0.8, 1.25)))


# =====================================================================================================
# 2. Timing helpers (all vectorised over frames)
# =====================================================================================================

def smoothstep(u):
    """Minimum-jerk 0 -> 1 on u in [0, 1]: zero velocity and acceleration at both ends."""
    u = np.clip(u, 0.0, 1.0)
    return u * u * u * (10.0 - 15.0 * u + 6.0 * u * u)


def ramp(t, t0, t1):
    """0 before frame t0, 1 after frame t1, a minimum-jerk transition in between."""
    if t1 <= t0:
        return (np.asarray(t) >= t0).astype(float)
    return smoothstep((np.asarray(t, dtype=float) - t0) / (t1 - t0))


def window(t, t0, t1, t2, t3):
    """Rises over [t0, t1], holds 1, falls over [t2, t3]."""
    return ramp(t, t0, t1) * (1.0 - ramp(t, t2, t3))


def keyframes(t, times, values):
    """Piecewise minimum-jerk path through `values` (K, ...) at frame `times` (K,), holding between.

    Before times[0] it holds values[0]; after times[-1], values[-1]. Returns (len(t), ...)."""
    values = np.asarray(values, dtype=float)
    out = np.broadcast_to(values[0], (len(t),) + values.shape[1:]).copy()
    for i in range(len(times) - 1):
        r = ramp(t, times[i], times[i + 1]).reshape((len(t),) + (1,) * (values.ndim - 1))
        out += (values[i + 1] - values[i]) * r
    return out


def wrap(a):
    """Angle(s) to (-pi, pi]."""
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi


def fwd2(yaw):
    """Facing direction on the floor, (..., 2) as (x, z)."""
    return np.stack([np.sin(yaw), np.cos(yaw)], -1)


def left2(yaw):
    """The person's left on the floor, (..., 2) as (x, z)."""
    return np.stack([np.cos(yaw), -np.sin(yaw)], -1)


def to3(xz, y=0.0):
    """(..., 2) floor vectors -> (..., 3) with height y."""
    xz = np.asarray(xz, dtype=float)
    return np.stack([xz[..., 0], np.broadcast_to(y, xz.shape[:-1]), xz[..., 1]], -1)


def yaw_to(src, dst):
    """Yaw that faces from floor point(s) src to dst, both (..., 2)."""
    d = np.asarray(dst) - np.asarray(src)
    return np.arctan2(d[..., 0], d[..., 1])


def _unit(v, eps=1e-9):
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), eps)


def _rot(axis: int, angle) -> np.ndarray:
    """Rotation matrices (..., 3, 3) about coordinate axis 0 (X), 1 (Y) or 2 (Z)."""
    a = np.asarray(angle, dtype=float)
    c, s = np.cos(a), np.sin(a)
    R = np.zeros(a.shape + (3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]  # the plane the rotation turns (right-handed)
    R[..., axis, axis] = 1.0
    R[..., i, i], R[..., j, j] = c, c
    R[..., i, j], R[..., j, i] = -s, s
    return R


class _Scene:
    """A floor frame for one clip: a random origin and heading, so clips are not canonicalised.

    Builders place people in scene coordinates (x_left, z_fwd) and get world positions back."""

    def __init__(self, rng):
        self.o = rng.uniform(-2.0, 2.0, size=2)
        self.h = float(rng.uniform(-np.pi, np.pi))

    def p(self, x_left, z_fwd):
        """Scene point(s) -> world floor point(s) (..., 2)."""
        x_left, z_fwd = np.asarray(x_left, dtype=float), np.asarray(z_fwd, dtype=float)
        return self.o + x_left[..., None] * left2(self.h) + z_fwd[..., None] * fwd2(self.h)

    def yaw(self, rel):
        return self.h + np.asarray(rel, dtype=float)


# =====================================================================================================
# 3. Gait: footsteps from a pelvis path
# =====================================================================================================

WALKING = 0.3  # pelvis speed (m/s) above which steps follow a walking cadence instead of drift


def step_length(v, leg):
    """A walker's step (half a gait cycle, m) at speed v (m/s) for a leg (hip to ankle) of `leg` m: 0.86 leg
    at 1.3 m/s (a gait cycle's stride of about 0.82 x stature), shorter when slower (step length grows about
    with the square root of speed)."""
    return 0.86 * leg * np.sqrt(np.clip(np.asarray(v, dtype=float) / 1.3, 0.05, 1.3))


def plan_steps(root_xz, yaw, body, swing=12, thr=0.12, lift=0.07, busy=None, toe_out=0.08):
    """Stance and swing phases for both feet, given where the pelvis goes.

    Each foot has a "home" spot beside the pelvis. A planted foot stays exactly where it is until it steps;
    one foot swings at a time. Standing, shuffling and turning: a foot steps once its home, 5 frames ahead,
    has drifted more than `thr` metres away (or the body has turned ~0.45 rad), in `swing` frames or fewer.
    Walking (pelvis faster than WALKING m/s, the way they face): steps follow a cadence, alternating feet, a
    step of `step_length(v)` each, swing 38 % of a gait cycle; the heel rises about the planted toes before
    toe-off, the foot swings with its toes pitched down and lands heel first with the toes up (then rolls
    flat about the still ankle), 0.42 of a step ahead of its home.
    root_xz (T, 2), yaw (T,) -> ankle targets (T, 2, 3) [left, right], foot yaw (T, 2), foot pitch (T, 2)
    (positive: toes down), in-swing mask (T, 2).
    `busy` = (t0, t1): no step may overlap these frames (used to keep the support foot still in a kick).
    """
    T = len(yaw)
    half_width = abs(body.offsets[1, 0]) + 0.03 * body.height / 1.7
    home = root_xz[:, None, :] + SIDE[None, :, None] * half_width * left2(yaw)[:, None, :]  # (T, 2, 2)
    home_yaw = yaw[:, None] + SIDE[None, :] * toe_out                                           # (T, 2)
    speed = np.r_[np.linalg.norm(np.diff(root_xz, axis=0), axis=1), 0.0] * FPS                  # (T,) m/s
    v_s = gaussian_filter1d(speed, 6.0, mode="nearest")                                          # (T,) smooth
    turn = np.r_[np.abs(wrap(np.diff(yaw))), 0.0] * FPS                                          # (T,) rad/s
    motion = gaussian_filter1d(np.r_[np.diff(root_xz, axis=0), np.zeros((1, 2))], 3.0, axis=0, mode="nearest")
    forward = (_unit(motion) * fwd2(yaw)).sum(-1) > 0.7  # (T,) going the way they face (not sideways, back)
    ahead = np.minimum(np.arange(T) + 5, T - 1)  # a foot reacts to where its home will be in 5 frames
    pos, fyaw = home[0].copy(), home_yaw[0].copy()
    steps = []  # (foot, t0, t1, p0, p1, yaw0, yaw1, walk speed or 0)
    t, last = 0, -1
    while t < T - 1:
        v = float(v_s[t:t + 10].max())
        if v > WALKING and forward[t] and last >= 0:  # walking: the other foot steps on the cadence
            k = 1 - last
            L = float(step_length(v, body.leg))
            cycle = 2 * L / v * FPS  # frames per gait cycle
            D = int(np.clip(round(0.38 * cycle), 9, 16))
            wait = max(0, round(0.5 * cycle) - D - 1)  # double support
            # a speeding walker steps sooner: the rear foot trails its home by no more than 0.9 of a step
            trail = np.linalg.norm(home[t:min(T, t + wait + 1), k] - pos[k], axis=-1)
            early = np.flatnonzero(trail > 0.9 * L)
            ts = t + (int(early[0]) if len(early) else wait)
        else:  # standing, shuffling, stepping sideways or back, turning: a foot steps once it has drifted
            err = (np.linalg.norm(home[ahead[t:]] - pos, axis=-1) / thr
                   + np.abs(wrap(home_yaw[ahead[t:]] - fyaw)) / 0.45)              # (T - t, 2)
            over = err.max(1) > 1.0
            if not over.any():
                break
            ts = t + int(np.argmax(over))
            # Shuffling and turning: at most ~0.28 m of travel (0.78 m leg) or ~0.9 rad of turn per swing.
            rate = max(speed[ts:ts + 15].max() / (0.28 * body.leg / 0.78), turn[ts:ts + 15].max() / 0.9, 1e-3)
            D = int(np.clip(np.floor(FPS / rate), 7, swing))
            e = err[ts - t]
            k = int(np.argmax(e))
            if k == last and e[1 - k] > 0.5:  # alternate feet when both want to move
                k = 1 - k
            v = float(v_s[ts:ts + 10].max())
        walk = v > WALKING and bool(forward[min(ts, T - 1)])  # a walker's step (heel-off, heel strike)
        if ts > T - 1 - D // 2:  # not enough frames left to finish a step
            break
        if busy is not None and ts <= busy[1] and ts + D >= busy[0]:
            t = busy[1] + 1
            continue
        t1 = ts + D
        land = min(T - 1, t1 + round(0.6 * D) + 1)  # shuffling: where home will be mid-way through the stance
        p1 = home[land, k].copy()
        if walk:  # walking: 0.42 of a step ahead of the hip at heel strike, the step of that speed
            a, b = max(0, min(t1, T - 2) - 2), min(T - 1, t1 + 2)
            heading = _unit(root_xz[b] - root_xz[a])
            p1 = home[min(t1, T - 1), k] + 0.42 * float(step_length(v_s[min(t1, T - 1)], body.leg)) * heading
        d = p1 - pos[k]
        max_step = (1.7 if walk else 0.9) * body.leg
        if np.linalg.norm(d) > max_step:
            p1 = pos[k] + d * max_step / np.linalg.norm(d)
        y1 = fyaw[k] + wrap(home_yaw[land, k] - fyaw[k])
        steps.append((k, ts, t1, pos[k].copy(), p1, fyaw[k], y1, v if walk else 0.0))
        pos[k], fyaw[k], last = p1, y1, k
        t = t1 + 1
    # Fill the time series: planted between steps; heel-off, a lifted arc and a heel strike around a swing.
    xz = np.repeat(home[:1], T, 0)               # (T, 2, 2) ankle on the floor
    fy = np.repeat(home_yaw[:1], T, 0)           # (T, 2)
    pitch = np.zeros((T, 2))
    y = np.full((T, 2), body.ankle_h)
    swinging = np.zeros((T, 2), dtype=bool)
    tt = np.arange(T)
    flat_from = [0, 0]  # first frame each foot is flat again after its last landing
    for k, t0, t1, p0, p1, y0, y1, v in steps:
        g = min(1.0, v / 1.3)  # how much of a walker's foot roll this step has
        p_off, p_strike = np.radians(50) * g, np.radians(14) * g  # the foot rolls over the toes at push-off
        toe = body.offsets[10 + k]
        A0 = to3(p0, body.ankle_h)
        H = min(round(12 * g), t0 - flat_from[k])  # heel-off frames before lift-off
        if H > 0:  # the heel rises about the planted toes
            seg = slice(t0 - H, t0)
            a = p_off * smoothstep((tt[seg] - (t0 - H) + 1) / H)  # reaches p_off on the frame before lift-off
            toe_w = A0 + _rot(1, y0) @ toe
            A = toe_w - np.einsum("tij,j->ti", _rot(1, np.full(H, y0)) @ _rot(0, a), toe)
            xz[seg, k], y[seg, k], pitch[seg, k] = A[:, [0, 2]], A[:, 1], a
        A_off = to3(p0, body.ankle_h) if H <= 0 else \
            (A0 + _rot(1, y0) @ toe) - _rot(1, y0) @ _rot(0, p_off) @ toe
        seg = slice(t0, min(t1, T - 1) + 1)
        u = (tt[seg] - t0) / (t1 - t0)
        sm = smoothstep(u)
        A1 = to3(p1, body.ankle_h)
        xz[seg, k] = A_off[[0, 2]] + (A1[[0, 2]] - A_off[[0, 2]]) * sm[:, None]
        bump = (lift + 0.05 * g) * 6.75 * u * (1 - u) ** 2  # peaks a third into the swing
        y[seg, k] = A_off[1] + (A1[1] - A_off[1]) * sm + bump
        fy[seg, k] = y0 + (y1 - y0) * sm
        pitch[seg, k] = (p_off if H > 0 else 0.0) + (-p_strike - (p_off if H > 0 else 0.0)) * sm
        swinging[seg, k] = (u > 0) & (u < 1)
        F = min(round(6 * g), T - 1 - t1)  # the foot rolls flat about the still ankle after the heel strike
        if F > 0:
            seg = slice(t1 + 1, t1 + 1 + F)
            pitch[seg, k] = -p_strike * (1 - smoothstep((tt[seg] - t1) / F))
        xz[t1 + 1:, k], fy[t1 + 1:, k], y[t1 + 1:, k] = p1, y1, body.ankle_h
        pitch[t1 + 1 + max(F, 0):, k] = 0.0
        flat_from[k] = t1 + 1 + max(F, 0)
    ankle = np.concatenate([xz[..., :1], y[..., None], xz[..., 1:]], -1)  # (T, 2, 3)
    return ankle, fy, pitch, swinging


# =====================================================================================================
# 4. Solving a person: trunk, two-bone IK, local rotations, forward kinematics
# =====================================================================================================

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
    return _unit(q)


def _frame(u, p):
    """Orthonormal frame (..., 3, 3) whose columns are u, the part of p across u, and their cross."""
    e1 = _unit(u)
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
    hip = np.einsum("tij,kj->tki", R0, body.offsets[[1, 2]])         # (T, 2, 3) hips for a pelvis at y=0
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
    R0 = _rot(1, plan.yaw + pelvis_turn) @ _rot(0, pelvis_pitch)           # (T, 3, 3) root rotation
    local = np.broadcast_to(np.eye(3), (T, im.N_JOINTS, 3, 3)).copy()       # (T, 22, 3, 3)
    local[:, 0] = R0
    R_spine = _rot(1, twist / 3) @ _rot(0, spine) @ _rot(2, -plan.lean / 3)
    for j in (3, 6, 9):
        local[:, j] = R_spine
    local[:, 12] = _rot(1, plan.head_yaw + 0.4 * pelvis_turn) @ _rot(0, plan.head_pitch)
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
    foot_rot = _rot(1, tor["foot_yaw"]) @ _rot(0, tor["foot_pitch"])  # (T, 2, 3, 3) feet: yaw, then toes down
    if plan.kick is not None:
        ankles, foot_rot = _apply_kick(plan, tor, ankles, foot_rot, t)
    # Legs: hip (1, 2) -> knee (4, 5) -> ankle (7, 8); toes (10, 11) follow the ankle rotation.
    for k, (hip, knee, ank) in enumerate([(1, 4, 7), (2, 5, 8)]):
        foot_fwd = foot_rot[:, k, :, 2]                      # where the toes point (T, 3)
        pole = _unit(foot_fwd + 0.3 * fwd + 0.8 * UP + 0.15 * SIDE[k] * left)  # knee over the toes
        H = pos[:, hip]
        K, A = two_bone_ik(H, ankles[:, k], body.bone(knee), body.bone(ank), pole)
        G_hip = _aim(K - H, pole, off[knee], z_axis)
        G_knee = _aim(A - K, pole, off[ank], z_axis)
        local[:, hip] = np.swapaxes(glob[:, 0], -1, -2) @ G_hip
        local[:, knee] = np.swapaxes(G_hip, -1, -2) @ G_knee
        local[:, ank] = np.swapaxes(G_knee, -1, -2) @ foot_rot[:, k]
    # Arms: shoulder (16, 17) -> elbow (18, 19) -> wrist (20, 21). Relaxed arms hang under the shoulder
    # and swing against the opposite leg; `hand_w` blends toward the task's wrist targets.
    fwd_off = np.einsum("tki,ti->tk", ankles - tor["root"][:, None], fwd)   # feet ahead of pelvis (T, 2)
    for k, (col, sh, el, wr) in enumerate([(13, 16, 18, 20), (14, 17, 19, 21)]):
        S = pos[:, sh]
        swing = np.clip(body.arm_swing * fwd_off[:, 1 - k], -0.22, 0.22)[:, None]  # against the opposite leg
        reach = body.arm_relax - 0.08 * np.maximum(swing, 0.0)  # elbows bent a little, more swinging forward
        relaxed = S - reach * body.arm * UP + (0.06 + swing) * fwd + body.arm_out * SIDE[k] * left + plan.arm_drift[:, k]
        via = plan.hand_via[:, k] if plan.hand_via is not None else fwd + 0.4 * SIDE[k] * left
        W = _blend_hand(S, relaxed, plan.hand_target[:, k] + plan.target_drift[:, k], plan.hand_w[:, k, None], via)
        if plan.elbow_pole is not None:
            pole = plan.elbow_pole[:, k]
        else:
            pole = _unit(-0.75 * fwd + 0.4 * SIDE[k] * left - 0.45 * UP)  # hanging: back; reaching: down
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
    across = _perp(_unit(via), _unit(chord))                                 # part of via across the arc
    mid = _unit(ua + ub + np.linalg.norm(chord, axis=-1, keepdims=True) * across)
    u = _unit((1 - w) ** 2 * ua + 2 * w * (1 - w) * mid + w * w * ub)
    return S + ((1 - w) * na + w * nb) * u


def _apply_kick(plan, tor, ankles, foot_rot, t):
    """Replace the kicking foot's path: planted -> chambered knee -> extended -> chambered -> planted."""
    kk = plan.kick
    k, (k0, k1, k2, k3, k4, k5) = kk["foot"], kk["times"]
    body, fwd = tor["body"], tor["fwd"]
    hip = tor["pos"][:, 1 + k]
    planted = ankles[:, k].copy()
    chamber = hip + 0.45 * body.leg * fwd - 0.55 * body.leg * UP
    pitch = kk["pitch"] * window(t, k0, k2, k3, k5)
    F = _rot(1, tor["foot_yaw"][:, k]) @ _rot(0, pitch)                     # (T, 3, 3)
    extended = kk["toe"] - F @ body.offsets[10 + k]                          # ankle that puts toes on target
    r = [ramp(t, a, b)[:, None] for a, b in ((k0, k1), (k1, k2), (k3, k4), (k4, k5))]
    path = planted + (chamber - planted) * r[0] + (extended - chamber) * r[1] \
        - (extended - chamber) * r[2] - (chamber - planted) * r[3]
    ankles[:, k] = path
    foot_rot[:, k] = F
    return ankles, foot_rot


# ---- idle life: nobody is ever exactly still -----------------------------------------------------------

def band_noise(rng, T: int, f_lo: float, f_hi: float, shape=(), n: int = 5) -> np.ndarray:
    """Smooth, seeded wandering (T, *shape) with unit RMS: a sum of n sinusoids of random frequency in
    [f_lo, f_hi] Hz, phase and weight. Band-limited, so it adds slow motion, never sensor-like jitter."""
    t = np.arange(T)[:, None] / FPS
    size = (n,) + tuple(shape)
    f, ph, a = rng.uniform(f_lo, f_hi, size), rng.uniform(0, 2 * np.pi, size), rng.normal(size=size)
    out = (a * np.sin(2 * np.pi * f * t.reshape((T, 1) + (1,) * len(shape)) + ph)).sum(1)  # (T, *shape)
    return out / np.sqrt(np.maximum((a * a).sum(0) / 2, 1e-9))


def add_life(plan: Plan, body: Body, rng, free=None) -> None:
    """What a person does besides the task, added to a builder's plan: the posture of their own (slouch, head
    carriage), breathing, slow postural sway of pelvis and trunk (about a centimetre), weight shifts from foot
    to foot every few seconds while standing, head and hand drift. The feet stay planted (a sway never
    reaches the step threshold); the hands drift only while relaxed (a task's hand target wins). `free`
    (T,) in [0.5, 1] damps the sway and weight shifts while the two touch, and stops a task's hand targets
    from drifting there."""
    T = len(plan.yaw)
    free = np.ones(T) if free is None else free
    sw, f = body.sway, body.tempo
    speed = np.r_[np.linalg.norm(np.diff(plan.root_xz, axis=0), axis=1), 0.0] * FPS
    standing = 1.0 - np.clip(gaussian_filter1d(speed, 6.0, mode="nearest") / 0.3, 0.0, 1.0)  # (T,) 1 = still
    t = np.arange(T) / FPS
    breath = np.sin(2 * np.pi * rng.uniform(0.2, 0.3) * f * t + rng.uniform(0, 2 * np.pi))
    plan.bend = plan.bend + body.slouch + 0.02 * breath + 0.02 * sw * band_noise(rng, T, 0.05 * f, 0.35 * f)
    plan.lean = plan.lean + 0.015 * sw * free * band_noise(rng, T, 0.05 * f, 0.35 * f)
    plan.twist = plan.twist + 0.03 * sw * free * band_noise(rng, T, 0.05 * f, 0.3 * f)
    plan.head_yaw = plan.head_yaw + 0.12 * band_noise(rng, T, 0.05 * f, 0.4 * f)
    plan.head_pitch = plan.head_pitch + body.head_down + 0.04 * band_noise(rng, T, 0.05 * f, 0.3 * f)
    # weight shifts: every 3-8 s the pelvis moves 2-4 cm over one foot for a while, then back
    shift, k = np.zeros(T), int(rng.integers(0, FPS * 3))
    while k < T:
        dur, hold = int(rng.uniform(0.6, 1.2) * FPS), int(rng.uniform(1.5, 5.0) * FPS / f)
        shift += rng.choice([-1.0, 1.0]) * rng.uniform(0.02, 0.04) * window(np.arange(T), k, k + dur,
                                                                            k + dur + hold, k + 2 * dur + hold)
        k += 2 * dur + hold + int(rng.uniform(0.5, 3.0) * FPS)
    sway = 0.008 * sw * band_noise(rng, T, 0.05 * f, 0.3 * f, (2,))  # (T, 2) postural sway on the floor
    calm = np.clip((free - 0.5) / 0.5, 0.0, 1.0)  # no weight shifts while touching: the contact holds them
    plan.root_xz = plan.root_xz + standing[:, None] * (free[:, None] * sway
                                                       + (calm * sw * shift)[:, None] * left2(plan.yaw))
    drift = 0.03 * sw * band_noise(rng, T, 0.1 * f, 0.5 * f, (2, 3))  # (T, 2, 3)
    plan.arm_drift = plan.arm_drift + drift
    plan.target_drift = plan.target_drift + 0.4 * np.clip(free - 0.5, 0, None)[:, None, None] / 0.5 * drift


# ---- geometry helpers the interaction builders share ------------------------------------------------

def meet_points(Sa, Sb, La, Lb, y, gap=HAND_GAP, reach=0.92):
    """Where two hands meet: a point between shoulders Sa, Sb (T, 3) that both arms (lengths La, Lb) reach.

    The point splits the shoulder-to-shoulder line in proportion to arm length and sits at height y (T,)
    when both can reach it there, else at the nearest height they both can. Returns the two wrist targets
    (T, 3) each, `gap` apart along the line between the people."""
    D = np.linalg.norm((Sb - Sa)[:, [0, 2]], axis=-1)                      # horizontal distance (T,)
    wa = La / (La + Lb)
    M = Sa + wa * (Sb - Sa)
    va = np.sqrt(np.maximum((reach * La) ** 2 - (wa * D) ** 2, 0))          # vertical room for each arm
    vb = np.sqrt(np.maximum((reach * Lb) ** 2 - ((1 - wa) * D) ** 2, 0))
    lo = np.maximum(Sa[:, 1] - va, Sb[:, 1] - vb)
    hi = np.minimum(Sa[:, 1] + va, Sb[:, 1] + vb)
    M[:, 1] = np.where(lo <= hi, np.clip(y, lo, hi), 0.5 * (lo + hi))
    u = _unit((Sb - Sa) * np.array([1.0, 0.0, 1.0]))
    return M - 0.5 * gap * u, M + 0.5 * gap * u


def meet_distance(bA, bB, drop, lateral, reach=0.88, lean_a=0.0, lean_b=0.0):
    """Pelvis-to-pelvis distance at which the two can join hands `drop` metres below their mean shoulder
    height, their shoulders `lateral` metres apart sideways, each leaning forward by the given angle."""
    y = 0.5 * (bA.shoulder_y + bB.shoulder_y) - drop
    ha = np.sqrt(max((reach * bA.arm) ** 2 - (bA.shoulder_y - y) ** 2, 0.01))
    hb = np.sqrt(max((reach * bB.arm) ** 2 - (bB.shoulder_y - y) ** 2, 0.01))
    D = ha + hb + bA.torso * np.sin(lean_a) + bB.torso * np.sin(lean_b)
    return float(np.sqrt(max(D * D - lateral * lateral, 0.09)))


def torso_axis_point(tor, y):
    """Point on a person's pelvis -> neck axis at height y (T,), clamped to the segment."""
    pel, neck = tor["pos"][:, 0], tor["pos"][:, 12]
    s = np.clip((y - pel[:, 1]) / np.maximum(neck[:, 1] - pel[:, 1], 1e-6), 0, 1)[:, None]
    return pel + s * (neck - pel)


def on_torso(tor, y, angle, clearance=HAND_CLEARANCE):
    """A point just outside someone's torso capsule at height y (T,), `angle` radians around from their
    front (positive toward their left; pi is the middle of the back)."""
    a = np.asarray(angle, dtype=float)[..., None] if np.ndim(angle) else angle
    radial = np.cos(a) * tor["fwd"] + np.sin(a) * tor["left"]
    return torso_axis_point(tor, y) + (TORSO_RADIUS + clearance) * radial


def reachable_on_torso(S, L, tor, ys, angles, frames, frac=0.95):
    """First (height, angle) candidate on someone's torso that shoulder S (T, 3) reaches (within frac * L)
    on all `frames`; falls back to the nearest candidate. ys: heights (T,) per candidate. Returns (T, 3)."""
    best, best_d = None, np.inf
    for y in ys:
        for a in angles:
            P = on_torso(tor, y, a)
            d = np.linalg.norm(P[frames] - S[frames], axis=-1).max() / L
            if d <= frac:
                return P
            if d < best_d:
                best, best_d = P, d
    return best


def guard_targets(tor):
    """Fists up in front of the chin, (T, 2, 3) for [left, right], bobbing a little as fighters' do."""
    head, b = tor["pos"][:, 15], tor["body"]
    s = b.height / 1.7
    base = head + 0.27 * s * tor["fwd"] - 0.16 * s * UP
    bob = 0.015 * s * np.sin(2 * np.pi * 1.6 * b.tempo * np.arange(tor["T"])[:, None] / FPS + np.array([0.0, 1.5]))
    return np.stack([base + SIDE[k] * 0.11 * s * tor["left"] + bob[:, k, None] * UP for k in (0, 1)], 1)


def _guard_up(plan, tor, w):
    """Fists up (`guard_targets`), elbows down and out, as much as w (T,) says."""
    plan.hand_target[:] = guard_targets(tor)
    plan.hand_w[:] = w[:, None]
    plan.elbow_pole = np.stack([_unit(-0.8 * UP + 0.5 * SIDE[j] * tor["left"] - 0.2 * tor["fwd"]) for j in (0, 1)], 1)


def _kick_reach(bA, bB):
    """A front kick of A's on B's block: the block's height and reach in front of B (B's hands sit in front
    of the belly, or lower if A is much shorter: a kick stays at most a little above A's own hip), how far
    B's hands fall short of it standing upright (B bends and crouches to make it up), and the pelvis-to-pelvis
    distance at which A's toes just reach it. Returns (block_y, block_fwd, short, d)."""
    hipA_y = bA.pelvis_y + bA.offsets[1, 1]
    block_y = min(bB.pelvis_y + 0.2 * bB.height / 1.7, hipA_y + 0.25)
    block_fwd = 0.3 * bB.height / 1.7
    short = max(0.0, bB.shoulder_y - np.sqrt((0.9 * bB.arm) ** 2 - block_fwd ** 2) - block_y)
    R = 0.92 * (bA.leg + np.linalg.norm(bA.offsets[10]))
    return block_y, block_fwd, short, float(np.sqrt(max(R * R - (block_y - hipA_y) ** 2, 0.2)) + block_fwd)


def _block_the_kick(pA, pB, tB, bB, t, kb, block_y, block_fwd, w):
    """B's hands go to the block as much as w (T,) says; A's kick (pA.kick) aims where B's hand kb is at impact."""
    base = tB["root"] * np.array([1, 0, 1]) + block_y * UP + block_fwd * tB["fwd"]
    block = np.stack([clamp_reach(tB["pos"][:, 16 + j], base + SIDE[j] * 0.05 * tB["left"], bB.arm, 0.97)
                      for j in (0, 1)], 1)                    # where B's hands can really get to
    bw = w[:, None, None]
    pB.hand_target[:] = pB.hand_target + (block - pB.hand_target) * bw
    pB.elbow_pole = pB.elbow_pole + (np.stack([_unit(SIDE[j] * tB["left"] - 0.3 * UP) for j in (0, 1)], 1)
                                     - pB.elbow_pole) * bw
    k2, k3 = pA.kick["times"][2:4]
    pA.kick["toe"] = (block[:, kb] + (HAND_GAP - 0.005) * tB["fwd"])[np.clip(t, k2, k3)]


def clamp_reach(S, target, L, frac=0.96):
    """Move target toward shoulder S so it lies within frac * L of it."""
    d = target - S
    n = np.linalg.norm(d, axis=-1, keepdims=True)
    return S + d * np.minimum(1.0, frac * L / np.maximum(n, 1e-9))


def _sec(x, tempo):
    """Seconds -> frames at 30 fps, stretched by the clip's tempo."""
    return max(1, int(round(x * FPS * tempo)))


@dataclass
class _Built:
    """What an interaction builder returns."""
    T: int
    plans: list               # [Plan for person 0, Plan for person 1]
    arms: callable            # arms(tors) fills the plans' hand targets once both trunks are solved
    key_frames: list
    contacts: list            # windows (t0, t1, person_a, joint_a, person_b, joint_b), inclusive
    hand: str = None
    direction: str = None
    flags: dict = field(default_factory=dict)  # facts the captions may mention
    extra: dict = field(default_factory=dict)  # extra metadata
    holds: list = field(default_factory=list)  # (t0, t1) windows of a grip on an object (a rope): held still too


def _approach(rng, d_final, tempo, p_walk=0.75, p_both=0.3, t_start=(0, 20)):
    """A (initiator) walks toward B until they are d_final apart; sometimes B walks to meet A.

    Returns scene z coordinates of A and B before/after and the walk's frame window."""
    extra = float(rng.uniform(0.5, 2.2)) if rng.random() < p_walk else 0.0
    share_b = float(rng.uniform(0.3, 0.5)) if extra > 0 and rng.random() < p_both else 0.0
    v = rng.uniform(0.55, 0.8)               # mean speed, m/s (minimum-jerk peak is 1.9x this)
    t0 = int(rng.integers(*t_start))
    t1 = t0 + (int(round(extra / v * FPS * tempo)) if extra > 0 else 0)
    zA = (0.0, extra * (1 - share_b))
    zB = (extra + d_final, extra * (1 - share_b) + d_final)
    return dict(t0=t0, t1=t1, zA=zA, zB=zB, walked=extra > 0, both=share_b > 0)


def _two_plans(sc, t, ap, latB=0.0, yawA=0.0, yawB=np.pi):
    """Plans for A walking along the scene's +z axis toward B (who may step forward too)."""
    zA = keyframes(t, [ap["t0"], ap["t1"]], np.array(ap["zA"]))
    zB = keyframes(t, [ap["t0"] + (ap["t1"] - ap["t0"]) // 4, ap["t1"]], np.array(ap["zB"]))
    T = len(t)
    pA = Plan(root_xz=sc.p(np.zeros(T), zA), yaw=np.full(T, sc.yaw(yawA)))
    pB = Plan(root_xz=sc.p(np.full(T, latB), zB), yaw=np.full(T, sc.yaw(yawB)))
    return pA, pB


def _look_pitch(b_self, b_other, dist):
    """Head nod to look at the other's face from `dist` metres (positive = looking down)."""
    return float(np.clip(0.8 * np.arctan2(b_self.height - b_other.height, max(dist, 0.3)), -0.35, 0.35))


def _maybe_turned_away(rng, t, plan, sc, t_turn_end, tempo, p_away=0.25):
    """Sometimes B starts facing elsewhere and turns to A just before t_turn_end. Returns True if so."""
    if rng.random() >= p_away or t_turn_end < _sec(0.8, tempo):
        return False
    off = rng.choice([-1, 1]) * rng.uniform(0.8, 2.4)
    t1 = t_turn_end
    t0 = max(0, t1 - _sec(rng.uniform(0.6, 1.0), tempo))
    plan.yaw = plan.yaw + off * (1 - ramp(t, t0, t1))
    return True


# =====================================================================================================
# 5. The interactions
# =====================================================================================================

def _handshake(rng, bodies, ini, tempo):
    A, B = ini, 1 - ini
    bA, bB = bodies[A], bodies[B]
    k = 1 if rng.random() < 0.75 else 0                     # shaking hand, same for both
    sc = _Scene(rng)
    drop, lean = rng.uniform(0.45, 0.6) * 0.5 * (bA.arm + bB.arm), rng.uniform(0.05, 0.15)
    d = meet_distance(bA, bB, drop, bA.shoulder[0] + bB.shoulder[0], 0.9, lean, lean)
    ap = _approach(rng, d, tempo)
    S = lambda x: _sec(x, tempo)  # noqa: E731
    t_meet = max(ap["t1"] + S(rng.uniform(0.1, 0.5)), S(0.9))
    tA_up = max(0, t_meet - S(rng.uniform(0.6, 1.0)))
    tB_up = t_meet - S(rng.uniform(0.35, 0.55))
    period, n = S(rng.uniform(0.35, 0.5)), int(rng.integers(2, 5))
    t_rel = t_meet + n * period
    t_down = t_rel + S(0.45)
    T = t_down + S(rng.uniform(0.2, 1.2))
    t = np.arange(T)
    pA, pB = _two_plans(sc, t, ap)
    away = _maybe_turned_away(rng, t, pB, sc, max(tB_up - 5, 0), tempo)
    for p, bs, bo in ((pA, bA, bB), (pB, bB, bA)):
        p.bend = lean * window(t, tA_up, t_meet, t_rel, t_down)
        p.head_pitch = np.full(T, _look_pitch(bs, bo, d))

    def arms(tors):
        tA, tB = tors[A], tors[B]
        y0 = 0.5 * (tA["pos"][:, 16 + k, 1] + tB["pos"][:, 16 + k, 1]) - drop
        pump = 0.045 * np.sin(2 * np.pi * (t - t_meet) / period) * window(t, t_meet, t_meet + 3,
                                                                              t_rel - 3, t_rel)
        Ma, Mb = meet_points(tA["pos"][:, 16 + k], tB["pos"][:, 16 + k], bA.arm, bB.arm, y0 + pump)
        pA.hand_target[:, k], pA.hand_w[:, k] = Ma, window(t, tA_up, t_meet, t_rel, t_down)
        pB.hand_target[:, k], pB.hand_w[:, k] = Mb, window(t, tB_up, t_meet, t_rel, t_down)

    return _Built(T, _order(ini, pA, pB), arms, [t_meet, t_rel],
                  [(t_meet, t_rel, A, 20 + k, B, 20 + k)], hand=HAND_NAMES[k],
                  flags=dict(walk=ap["walked"], both=ap["both"], away=away))


def _high_five(rng, bodies, ini, tempo):
    A, B = ini, 1 - ini
    bA, bB = bodies[A], bodies[B]
    k = 1 if rng.random() < 0.7 else 0
    sc = _Scene(rng)
    rise = rng.uniform(0.15, 0.28)                           # slap point above mean shoulder height
    d = meet_distance(bA, bB, -rise, bA.shoulder[0] + bB.shoulder[0], 0.88)
    ap = _approach(rng, d, tempo, p_both=0.4)
    S = lambda x: _sec(x, tempo)  # noqa: E731
    t_hit = max(ap["t1"] + S(rng.uniform(0.0, 0.4)), S(1.6))
    tA_up = max(0, t_hit - S(rng.uniform(1.0, 1.5)))
    tB_up = max(0, t_hit - S(rng.uniform(0.7, 0.9)))
    t_swing = t_hit - S(0.25)
    t_off = t_hit + S(0.35)
    t_down = t_off + S(rng.uniform(0.4, 0.7))
    T = t_down + S(rng.uniform(0.2, 1.0))
    t = np.arange(T)
    pA, pB = _two_plans(sc, t, ap)
    away = _maybe_turned_away(rng, t, pB, sc, max(tB_up - 5, 0), tempo)
    for p, bs, bo in ((pA, bA, bB), (pB, bB, bA)):
        p.head_pitch = np.full(T, _look_pitch(bs, bo, d) - 0.15)
        p.elbow_pole = np.broadcast_to(np.zeros(3), (T, 2, 3)).copy()

    def arms(tors):
        tA, tB = tors[A], tors[B]
        y = 0.5 * (tA["pos"][:, 16 + k, 1] + tB["pos"][:, 16 + k, 1]) + rise
        Ma, Mb = meet_points(tA["pos"][:, 16 + k], tB["pos"][:, 16 + k], bA.arm, bB.arm, y, gap=0.03)
        for p, tor, M, t_up, b in ((pA, tA, Ma, tA_up, bA), (pB, tB, Mb, tB_up, bB)):
            Sh = tor["pos"][:, 16 + k]
            s = b.arm / 0.51
            wind = Sh + s * (0.32 * UP + 0.12 * SIDE[k] * tor["left"] + 0.05 * tor["fwd"])  # hand raised
            hit = window(t, t_swing, t_hit, t_hit + 2, t_off)[:, None]
            p.hand_target[:, k] = wind + (M - wind) * hit
            p.hand_w[:, k] = window(t, t_up, t_up + S(0.6), t_off, t_down)
            p.elbow_pole[:, k] = _unit(SIDE[k] * tor["left"] - 0.6 * UP)
            p.elbow_pole[:, 1 - k] = _unit(-0.45 * tor["fwd"] - SIDE[k] * 0.7 * tor["left"] - 0.45 * UP)

    return _Built(T, _order(ini, pA, pB), arms, [t_hit], [(t_hit, t_hit + 2, A, 20 + k, B, 20 + k)],
                  hand=HAND_NAMES[k], flags=dict(walk=ap["walked"], both=ap["both"], away=away))


def _punch_dodge(rng, bodies, ini, tempo):
    A, B = ini, 1 - ini
    bA, bB = bodies[A], bodies[B]
    k = 1 if rng.random() < 0.65 else 0
    sc = _Scene(rng)
    S = lambda x: _sec(x, tempo)  # noqa: E731
    d0 = rng.uniform(0.95, 1.2)
    step = rng.uniform(0.15, 0.3)
    dodge = str(rng.choice(["back", "duck", "side"]))
    t_guard = int(rng.integers(0, 15))
    t_p0 = t_guard + S(rng.uniform(0.5, 1.8))
    t_hit = t_p0 + int(rng.integers(6, 9))                  # fist extends in ~0.2-0.3 s
    t_back = t_hit + int(rng.integers(8, 12))
    t_end_dodge = t_hit + S(rng.uniform(0.4, 0.7))
    T = t_end_dodge + S(rng.uniform(0.5, 1.2))
    t = np.arange(T)
    zA = keyframes(t, [t_p0 - 4, t_hit], [0.0, step])
    dz_b = {"back": 0.3, "duck": 0.05, "side": 0.05}[dodge]
    zB = d0 + dz_b * window(t, t_hit - 6, t_hit + 4, t_end_dodge, t_end_dodge + S(0.6))
    side_sign = float(rng.choice([-1, 1]))
    latB = (0.12 * side_sign * window(t, t_hit - 7, t_hit, t_end_dodge, t_end_dodge + S(0.5))
            if dodge == "side" else 0.0)
    pA = Plan(root_xz=sc.p(np.zeros(T), zA), yaw=np.full(T, sc.yaw(0.0)))
    pB = Plan(root_xz=sc.p(-latB * np.ones(T), zB), yaw=np.full(T, sc.yaw(np.pi)), swing=9)
    pA.twist = SIDE[1 - k] * 0.35 * window(t, t_p0 - 2, t_hit, t_hit + 2, t_back + 4)  # punching side fwd
    pA.bend = 0.1 * window(t, t_p0 - 2, t_hit, t_hit + 2, t_back + 4)
    dod = window(t, t_hit - 8, t_hit - 1, t_end_dodge, t_end_dodge + S(0.5))
    if dodge == "back":
        pB.bend = -0.35 * dod
    elif dodge == "duck":
        pB.crouch, pB.bend = 0.2 * bB.height / 1.7 * dod, 0.45 * dod
    else:
        pB.lean = side_sign * 0.35 * dod
        pB.head_yaw = -side_sign * 0.2 * dod
    for p in (pA, pB):
        p.elbow_pole = np.zeros((T, 2, 3))

    def arms(tors):
        tA, tB = tors[A], tors[B]
        guard_w = ramp(t, t_guard, t_guard + S(0.4))
        for p, tor in ((pA, tA), (pB, tB)):
            p.hand_target[:] = guard_targets(tor)
            p.hand_w[:] = guard_w[:, None]
            for j in (0, 1):
                p.elbow_pole[:, j] = _unit(-0.8 * UP + 0.5 * SIDE[j] * tor["left"] - 0.2 * tor["fwd"])
        Sh = tA["pos"][:, 16 + k]
        aim = tB["pos"][t_p0 - 1, 15]                        # B's head before the dodge starts
        punch = clamp_reach(Sh, np.broadcast_to(aim, Sh.shape), bA.arm, 0.97)
        ext = window(t, t_p0, t_hit, t_hit + 2, t_back)[:, None]
        pA.hand_target[:, k] = pA.hand_target[:, k] + (punch - pA.hand_target[:, k]) * ext

    return _Built(T, _order(ini, pA, pB), arms, [t_hit], [], hand=HAND_NAMES[k],
                  flags=dict(dodge=dodge))


def _push(rng, bodies, ini, tempo):
    A, B = ini, 1 - ini
    bA, bB = bodies[A], bodies[B]
    sc = _Scene(rng)
    S = lambda x: _sec(x, tempo)  # noqa: E731
    y_chest = min(bB.shoulder_y - 0.12, bA.shoulder_y - 0.12)   # where the hands land (standing heights)
    dy = bA.shoulder_y - y_chest
    reach_h = np.sqrt(max((0.7 * bA.arm) ** 2 - dy * dy, 0.04))
    d = reach_h + TORSO_RADIUS + HAND_CLEARANCE + 0.03
    ap = _approach(rng, d + 0.15, tempo, p_walk=0.6, p_both=0.0)
    t_push = max(ap["t1"] + S(rng.uniform(0.3, 0.8)), S(0.7) + 4)
    t_touch = t_push - 3
    back = rng.uniform(0.5, 0.9)
    t_stop = t_push + S(rng.uniform(0.9, 1.2))
    T = t_stop + S(rng.uniform(0.4, 1.2))
    t = np.arange(T)
    pA, pB = _two_plans(sc, t, ap)
    zA = keyframes(t, [ap["t0"], ap["t1"], t_touch - 6, t_push + 2], [ap["zA"][0], ap["zA"][1],
                                                                       ap["zA"][1], ap["zA"][1] + 0.15])
    pA.root_xz = sc.p(np.zeros(T), zA)
    zB = ap["zB"][1] + back * ramp(t, t_push - 1, t_stop)
    pB.root_xz = sc.p(np.zeros(T), zB)
    pB.swing, pB.step_thr = 9, 0.1
    pA.bend = 0.15 * window(t, t_touch - 8, t_push, t_push + 3, t_push + S(0.6))
    pB.bend = -0.3 * window(t, t_touch, t_push + 3, t_push + 4, t_push + S(0.45)) \
        + 0.12 * window(t, t_push + S(0.35), t_push + S(0.6), t_stop - 4, t_stop + S(0.3))
    pB.head_pitch = 0.25 * window(t, t_push, t_push + 4, t_push + 8, t_push + S(0.6))
    for p, bs, bo in ((pA, bA, bB), (pB, bB, bA)):
        p.head_pitch = p.head_pitch + _look_pitch(bs, bo, d)

    def arms(tors):
        tA, tB = tors[A], tors[B]
        chest = np.stack([on_torso(tB, np.full(T, y_chest + (tB["root"][:, 1] - bB.pelvis_y)), a)
                          for a in (-0.6, 0.6)], 1)  # B's right then left side of the chest (T, 2, 3)
        # A's left hand goes to B's right chest (they face each other), A's right to B's left. The hands
        # follow B's chest as B is thrown back, while A's arms relax (hand_w falls).
        pA.hand_target[:] = chest
        pA.hand_w[:] = window(t, t_touch - S(0.45), t_touch, t_push, t_push + S(0.5))[:, None]
        pA.elbow_pole = np.stack([_unit(-0.6 * UP + 0.6 * SIDE[j] * tA["left"] - 0.3 * tA["fwd"])
                                  for j in (0, 1)], 1)
        flail = np.stack([tB["pos"][:, 16 + j] + bB.arm * (0.55 * tB["fwd"] + 0.1 * UP
                                                          + 0.45 * SIDE[j] * tB["left"]) for j in (0, 1)], 1)
        pB.hand_target[:] = flail
        pB.hand_w[:] = window(t, t_push - 1, t_push + 10, t_push + S(0.6), t_stop + S(0.3))[:, None]

    contacts = [(t_touch, t_push, A, 20, B, 9), (t_touch, t_push, A, 21, B, 9)]
    return _Built(T, _order(ini, pA, pB), arms, [t_push, t_stop], contacts,
                  flags=dict(walk=ap["walked"]))


def _hug(rng, bodies, ini, tempo):
    A, B = ini, 1 - ini
    bA, bB = bodies[A], bodies[B]
    sc = _Scene(rng)
    S = lambda x: _sec(x, tempo)  # noqa: E731
    lat = float(rng.choice([-1, 1])) * rng.uniform(0.08, 0.13)  # hug a little off-centre, heads beside
    d = rng.uniform(0.27, 0.30)
    ap = _approach(rng, d, tempo, p_walk=0.8, p_both=0.35)
    t_wrap = max(ap["t1"] + S(rng.uniform(0.2, 0.5)), S(1.3))
    tA_open = max(0, t_wrap - S(rng.uniform(0.9, 1.3)))
    tB_open = max(0, t_wrap - S(rng.uniform(0.6, 0.9)))
    t_rel = t_wrap + S(rng.uniform(0.8, 2.0))
    t_apart = t_rel + S(0.5)
    step_back = rng.random() < 0.6
    T = t_apart + S(rng.uniform(0.4, 1.2))
    t = np.arange(T)
    pA, pB = _two_plans(sc, t, ap, latB=lat)
    away = _maybe_turned_away(rng, t, pB, sc, max(tB_open - 5, 0), tempo)
    if step_back:
        zB = keyframes(t, [ap["t0"], ap["t1"], t_rel, t_apart + S(0.4)],
                       [ap["zB"][0], ap["zB"][1], ap["zB"][1], ap["zB"][1] + 0.35])
        pB.root_xz = sc.p(np.full(T, lat), zB)
    sway_f = rng.uniform(0.4, 0.7)  # Hz
    sway = 0.07 * np.sin(2 * np.pi * sway_f * (t - t_wrap) / FPS) * window(t, t_wrap, t_wrap + S(0.4),
                                                                            t_rel - S(0.3), t_rel)
    over = int(rng.integers(2))  # which of A's arms goes over B's shoulder (the other goes under)
    rub_f = rng.uniform(0.8, 1.4)  # Hz
    for p, sgn in ((pA, 1.0), (pB, -1.0)):
        p.lean = sgn * sway
        p.head_yaw = -np.sign(lat) * sgn * 0.5 * window(t, t_wrap - 8, t_wrap, t_rel, t_apart)

    def arms(tors):
        tA, tB = tors[A], tors[B]
        for p, ts, to, b, t_open, first in ((pA, tA, tB, bA, tA_open, over), (pB, tB, tA, bB, tB_open, over)):
            opened = np.stack([ts["pos"][:, 16 + j] + b.arm * (0.55 * ts["fwd"] + 0.55 * SIDE[j] * ts["left"]
                                                              - 0.15 * UP) for j in (0, 1)], 1)
            tgt = np.empty((T, 2, 3))
            for j in (0, 1):
                # Around the back: the hand lands on the other's back on the same side of the world as
                # this arm, i.e. toward the other's opposite side (angles from the other's front). One arm
                # goes high, one low; if the back is out of reach, the hand settles further round the side.
                Sj = ts["pos"][:, 16 + j]
                top = to["pos"][:, 12, 1] - 0.08
                drops = (0.12, 0.2, 0.06) if j == first else (0.24, 0.3, 0.18)
                ys = [np.minimum(Sj[:, 1] - dr, top) for dr in drops]
                angles = [-SIDE[j] * a for a in (np.pi - 0.75, np.pi - 1.0, np.pi - 1.25, np.pi / 2)]
                tgt[:, j] = reachable_on_torso(Sj, b.arm, to, ys, angles, slice(t_wrap, t_rel + 1))
            wrap_in = ramp(t, t_wrap - S(0.35), t_wrap)[:, None, None]
            unwrap = ramp(t, t_rel, t_rel + S(0.3))[:, None, None]
            # the hands rub the other's back, up and down along it (the gap to the body stays)
            rub = 0.025 * np.sin(2 * np.pi * rub_f * (t[:, None] - t_wrap) / FPS + np.array([0.0, 2.0]))  # (T, 2)
            tgt = tgt + rub[..., None] * UP
            p.hand_target[:] = opened + (tgt - opened) * wrap_in * (1 - unwrap)
            p.hand_w[:] = window(t, t_open, t_open + S(0.45), t_rel + S(0.2), t_apart + S(0.3))[:, None]
            p.elbow_pole = np.stack([_unit(SIDE[j] * ts["left"] - 0.3 * UP - 0.2 * ts["fwd"]) for j in (0, 1)], 1)

    c0, c1 = t_wrap, t_rel
    contacts = [(c0, c1, A, 20, B, 9), (c0, c1, A, 21, B, 9), (c0, c1, B, 20, A, 9), (c0, c1, B, 21, A, 9)]
    return _Built(T, _order(ini, pA, pB), arms, [t_wrap, t_rel], contacts,
                  flags=dict(walk=ap["walked"], both=ap["both"], away=away))


def _wave(rng, bodies, ini, tempo):
    A, B = ini, 1 - ini
    bA, bB = bodies[A], bodies[B]
    k = 1 if rng.random() < 0.65 else 0
    kb = 1 if rng.random() < 0.65 else 0
    sc = _Scene(rng)
    S = lambda x: _sec(x, tempo)  # noqa: E731
    d = rng.uniform(3.0, 7.0)
    tA0 = int(rng.integers(5, 30))
    fA, nA = rng.uniform(1.3, 2.2), int(rng.integers(2, 5))
    tA1 = tA0 + S(0.6)
    tA2 = tA1 + int(round(nA / fA * FPS))
    turn = rng.random() < 0.45
    t_react = tA1 + S(rng.uniform(0.3, 0.8))
    t_turned = t_react + (S(rng.uniform(0.7, 1.1)) if turn else 0)
    tB1 = t_turned + S(0.6)
    fB, nB = rng.uniform(1.3, 2.2), int(rng.integers(2, 4))
    tB2 = tB1 + int(round(nB / fB * FPS))
    T = max(tA2, tB2) + S(rng.uniform(0.6, 1.0)) + S(rng.uniform(0.1, 0.6))
    t = np.arange(T)
    pA = Plan(root_xz=sc.p(np.zeros(T), np.zeros(T)), yaw=np.full(T, sc.yaw(0.0)))
    pB = Plan(root_xz=sc.p(np.zeros(T), np.full(T, d)), yaw=np.full(T, sc.yaw(np.pi)))
    if turn:
        off = float(rng.choice([-1, 1])) * rng.uniform(1.3, 2.8)
        pB.yaw = pB.yaw + off * (1 - ramp(t, t_react, t_turned))
    waves = ((pA, k, tA0, tA1, tA2, fA), (pB, kb, t_turned, tB1, tB2, fB))

    def arms(tors):
        for (p, j, t0, t1, t2, f), tor, b in zip(waves, (tors[A], tors[B]), (bA, bB)):
            s = b.arm / 0.51
            Sh = tor["pos"][:, 16 + j]
            out = SIDE[j] * tor["left"]
            osc = np.sin(2 * np.pi * f * (t - t1) / FPS) * window(t, t1, t1 + 4, t2 - 4, t2)
            p.hand_target[:, j] = Sh + s * (0.36 * UP + (0.2 + 0.12 * osc[:, None]) * out + 0.08 * tor["fwd"])
            p.hand_w[:, j] = window(t, t0, t1, t2, t2 + S(0.5))
            p.elbow_pole = np.stack([_unit(SIDE[i] * tor["left"] - 0.7 * UP) for i in (0, 1)], 1)

    return _Built(T, _order(ini, pA, pB), arms, [tA1, tB1], [], hand=HAND_NAMES[k],
                  flags=dict(turn=turn), extra=dict(distance=round(float(d), 2)))


def _follow(rng, bodies, ini, tempo):
    A, B = ini, 1 - ini
    sc = _Scene(rng)
    S = lambda x: _sec(x, tempo)  # noqa: E731
    length = rng.uniform(1.8, 3.6)
    gap = rng.uniform(1.0, 1.7)
    delay = S(rng.uniform(0.3, 0.9))
    k0, k1 = rng.uniform(-0.35, 0.35), rng.uniform(0.0, 0.3)
    wavelen, ph = rng.uniform(2.0, 5.0), rng.uniform(0, 2 * np.pi)
    # The leader's path, sampled every 1 cm of arc length from behind the follower's start.
    s_grid = np.arange(-gap - 0.2, length + 0.01, 0.01)
    curv = np.where(s_grid > 0, k0 + k1 * np.sin(2 * np.pi * s_grid / wavelen + ph), 0.0)
    heading = sc.h + np.cumsum(curv) * 0.01
    heading -= heading[np.searchsorted(s_grid, 0.0)] - sc.h
    xy = np.cumsum(fwd2(heading), 0) * 0.01
    xy += sc.o - xy[np.searchsorted(s_grid, 0.0)]
    v = rng.uniform(0.55, 0.8)
    tA0 = int(rng.integers(5, 25))
    dur = int(round(length / v * FPS * tempo))
    T = tA0 + dur + delay + S(rng.uniform(0.4, 1.0))
    t = np.arange(T)
    sA = length * ramp(t, tA0, tA0 + dur)
    sB = length * ramp(t - delay, tA0, tA0 + dur) - gap

    def along(s):
        xz = np.stack([np.interp(s, s_grid, xy[:, 0]), np.interp(s, s_grid, xy[:, 1])], -1)
        return xz, np.interp(s, s_grid, heading)

    (xa, ya), (xb, yb) = along(sA), along(sB)
    pA = Plan(root_xz=xa, yaw=ya)
    pB = Plan(root_xz=xb, yaw=yb)
    pB.head_pitch = np.full(T, _look_pitch(bodies[B], bodies[A], gap) * 0.5)
    turn = abs(k0) * length > 0.8
    walked = v / tempo                                       # the speed they really walk, m/s
    return _Built(T, _order(ini, pA, pB), lambda tors: None, [tA0, tA0 + delay, tA0 + dur], [],
                  flags=dict(turn=turn, slow=walked < 0.55, fast=walked > 0.75), extra=dict(gap=round(float(gap), 2)))


def _circle(rng, bodies, ini, tempo):
    A, B = ini, 1 - ini
    sc = _Scene(rng)
    S = lambda x: _sec(x, tempo)  # noqa: E731
    r = rng.uniform(0.7, 1.1)
    sgn = float(rng.choice([-1, 1]))                       # +1: counterclockwise seen from above
    sweep = rng.uniform(0.4, 1.0) * np.pi
    v = rng.uniform(0.4, 0.6)
    dur = int(round(r * sweep / v * FPS * tempo))
    dur = min(dur, 230)
    tA0 = int(rng.integers(5, 30))
    delay = S(rng.uniform(0.2, 0.6))
    T = tA0 + delay + dur + S(rng.uniform(0.3, 0.9))
    t = np.arange(T)
    C = sc.p(0.0, r)
    phi0 = sc.h + np.pi                                     # A starts at the scene origin
    phiA = phi0 + sgn * sweep * ramp(t, tA0, tA0 + dur)
    phiB = phi0 + np.pi + sgn * sweep * ramp(t, tA0 + delay, tA0 + delay + dur)
    xa, xb = C + r * fwd2(phiA), C + r * fwd2(phiB)
    pA = Plan(root_xz=xa, yaw=np.unwrap(yaw_to(xa, xb)), swing=10, step_thr=0.13)
    pB = Plan(root_xz=xb, yaw=np.unwrap(yaw_to(xb, xa)), swing=10, step_thr=0.13)
    guard = rng.random() < 0.5
    for p in (pA, pB):
        p.crouch = np.full(T, 0.06 if guard else 0.0)
        p.bend = np.full(T, 0.1 if guard else 0.0)

    def arms(tors):
        if not guard:
            return
        for p, tor in ((pA, tors[A]), (pB, tors[B])):
            _guard_up(p, tor, ramp(t, 0, S(0.4)))

    return _Built(T, _order(ini, pA, pB), arms, [tA0, tA0 + delay],
                  [], direction="counterclockwise" if sgn > 0 else "clockwise", flags=dict(guard=guard))


def _bow(rng, bodies, ini, tempo):
    A, B = ini, 1 - ini
    bA, bB = bodies[A], bodies[B]
    sc = _Scene(rng)
    S = lambda x: _sec(x, tempo)  # noqa: E731
    d = rng.uniform(1.1, 2.2)
    ap = _approach(rng, d, tempo, p_walk=0.35, p_both=0.0)
    ta0 = ap["t1"] + S(rng.uniform(0.1, 0.6))
    ta1 = ta0 + S(rng.uniform(0.6, 1.0))
    ta2 = ta1 + S(rng.uniform(0.3, 0.8))
    ta3 = ta2 + S(rng.uniform(0.6, 1.0))
    tb0 = ta1 + S(rng.uniform(-0.2, 0.6))
    tb1 = tb0 + S(rng.uniform(0.6, 1.0))
    tb2 = tb1 + S(rng.uniform(0.2, 0.6))
    tb3 = tb2 + S(rng.uniform(0.6, 1.0))
    T = max(ta3, tb3) + S(rng.uniform(0.2, 0.8))
    t = np.arange(T)
    pA, pB = _two_plans(sc, t, ap)
    away = _maybe_turned_away(rng, t, pB, sc, max(ta0 - 5, 0), tempo)
    bendA = rng.uniform(0.6, 1.1) * window(t, ta0, ta1, ta2, ta3)
    bendB = rng.uniform(0.5, 1.0) * window(t, tb0, tb1, tb2, tb3)
    for p, bend, bs, bo, sgn in ((pA, bendA, bA, bB, -1.0), (pB, bendB, bB, bA, 1.0)):
        p.bend, p.hip_share = bend, 0.55
        p.head_pitch = _look_pitch(bs, bo, d) + 0.3 * bend
        p.root_xz = p.root_xz + sgn * 0.1 * (bs.height / 1.7) * np.sin(bend)[:, None] * fwd2(sc.h)
    hand_on_chest = rng.random() < 0.35
    k = 1 if rng.random() < 0.75 else 0

    def arms(tors):
        if not hand_on_chest:
            return
        tA = tors[A]
        y = tA["pos"][:, 9, 1]
        chest = on_torso(tA, y, SIDE[1 - k] * 0.35, clearance=0.04)  # across to the other side of the chest
        pA.hand_target[:, k] = chest
        pA.hand_w[:, k] = window(t, ta0 - S(0.5), ta0, ta2, ta3 + S(0.3))
        pA.elbow_pole = np.stack([_unit(SIDE[j] * tA["left"] - 0.8 * UP) for j in (0, 1)], 1)

    return _Built(T, _order(ini, pA, pB), arms, [ta1, tb1], [],
                  hand=HAND_NAMES[k] if hand_on_chest else None,
                  flags=dict(walk=ap["walked"], chest=hand_on_chest, away=away))


def _handover(rng, bodies, ini, tempo):
    A, B = ini, 1 - ini
    bA, bB = bodies[A], bodies[B]
    k = 1 if rng.random() < 0.7 else 0                       # giver's hand
    kb = 1 if rng.random() < 0.7 else 0                      # receiver's hand
    sc = _Scene(rng)
    S = lambda x: _sec(x, tempo)  # noqa: E731
    drop = rng.uniform(0.5, 0.7) * 0.5 * (bA.arm + bB.arm)
    lateral = abs(SIDE[k] * bA.shoulder[0] + SIDE[kb] * bB.shoulder[0])
    d = meet_distance(bA, bB, drop, lateral, 0.9, 0.08, 0.08)
    ap = _approach(rng, d, tempo, p_walk=0.7, p_both=0.2)
    t_ext = max(0, ap["t1"] - S(rng.uniform(0.2, 0.5)))
    t_give = max(ap["t1"] + S(rng.uniform(0.3, 0.7)), S(0.8))
    tB_up = t_give - S(rng.uniform(0.4, 0.6))
    t_rel = t_give + S(rng.uniform(0.3, 0.6))
    t_done = t_rel + S(0.7)
    T = t_done + S(rng.uniform(0.3, 1.0))
    t = np.arange(T)
    pA, pB = _two_plans(sc, t, ap)
    away = _maybe_turned_away(rng, t, pB, sc, max(tB_up - 5, 0), tempo)
    for p, bs, bo in ((pA, bA, bB), (pB, bB, bA)):
        p.head_pitch = np.full(T, _look_pitch(bs, bo, d) + 0.2)
        p.bend = 0.08 * window(t, t_give - S(0.5), t_give, t_rel, t_done)

    def arms(tors):
        tA, tB = tors[A], tors[B]
        y = 0.5 * (tA["pos"][:, 16 + k, 1] + tB["pos"][:, 16 + kb, 1]) - drop
        Ma, Mb = meet_points(tA["pos"][:, 16 + k], tB["pos"][:, 16 + kb], bA.arm, bB.arm, y)
        carryA = tA["pos"][:, 16 + k] + bA.arm * (0.5 * tA["fwd"] - 0.65 * UP - 0.1 * SIDE[k] * tA["left"])
        carryB = tB["pos"][:, 16 + kb] + bB.arm * (0.5 * tB["fwd"] - 0.65 * UP - 0.1 * SIDE[kb] * tB["left"])
        pA.hand_target[:, k] = carryA + (Ma - carryA) * window(t, t_ext, t_give, t_rel, t_done)[:, None]
        pA.hand_w[:, k] = 1.0 - ramp(t, t_rel + S(0.2), t_done + S(0.2))
        pB.hand_target[:, kb] = Mb + (carryB - Mb) * ramp(t, t_rel, t_done)[:, None]
        pB.hand_w[:, kb] = ramp(t, tB_up, t_give)

    return _Built(T, _order(ini, pA, pB), arms, [t_give, t_rel], [(t_give, t_rel, A, 20 + k, B, 20 + kb)],
                  hand=HAND_NAMES[k], flags=dict(walk=ap["walked"], away=away))


def _tug(rng, bodies, ini, tempo):
    A, B = ini, 1 - ini
    bA, bB = bodies[A], bodies[B]
    sc = _Scene(rng)
    S = lambda x: _sec(x, tempo)  # noqa: E731
    lean = rng.uniform(0.2, 0.35)
    drop = 0.2
    rope = rng.random() < 0.5                                # both grip one rope (the paper's), else each other
    d = rng.uniform(1.8, 2.8) if rope else meet_distance(bA, bB, drop, 0.0, 0.93, -lean, -lean)
    ap = _approach(rng, d, tempo, p_walk=0.5, p_both=0.3)
    t_grip = max(ap["t1"] + S(rng.uniform(0.3, 0.6)), S(0.8))
    t_lean = t_grip + S(0.5)
    n_osc, per = 1 + int(rng.random() < 0.4), S(rng.uniform(0.8, 1.2))
    t_win0 = t_lean + n_osc * per
    pull = rng.uniform(0.5, 1.0)
    t_win1 = t_win0 + S(rng.uniform(1.1, 1.5))
    t_let = t_win1 + S(0.2)
    T = t_let + S(0.5) + S(rng.uniform(0.2, 0.8))
    t = np.arange(T)
    pA, pB = _two_plans(sc, t, ap, latB=float(rng.choice([-1, 1])) * 0.1)  # feet not in one line
    shift = -0.1 * np.sin(2 * np.pi * (t - t_lean) / per) * window(t, t_lean, t_lean + 6, t_win0 - 6, t_win0) \
        - pull * ramp(t, t_win0, t_win1)
    pA.root_xz = pA.root_xz + shift[:, None] * fwd2(sc.h)
    pB.root_xz = pB.root_xz + shift[:, None] * fwd2(sc.h)
    leanw = window(t, t_grip, t_lean, t_win1, t_let + S(0.4))
    pA.bend = -lean * leanw
    pB.bend = -lean * leanw * (1 - ramp(t, t_win0, t_win0 + S(0.4))) + 0.12 * window(
        t, t_win0, t_win0 + S(0.4), t_win1, t_let + S(0.4))
    pA.crouch = pB.crouch = 0.05 * leanw
    pB.swing, pB.step_thr = 10, 0.1

    front = int(rng.integers(2))                             # with a rope: the hand nearer the other person

    def arms(tors):
        tA, tB = tors[A], tors[B]
        if rope:  # both hands of both on one straight line between them, above the hips where arms reach it
            y = 0.5 * (tA["root"][:, 1] + tB["root"][:, 1]) + 0.2
            for p, tor, other, b in ((pA, tA, tB, bA), (pB, tB, tA, bB)):
                u = _unit((other["root"] - tor["root"]) * np.array([1.0, 0.0, 1.0]))
                for j in (0, 1):
                    on_line = tor["root"] * np.array([1.0, 0.0, 1.0]) + y[:, None] * UP \
                        + (0.3 if j == front else 0.12) * b.height / 1.7 * u
                    p.hand_target[:, j] = clamp_reach(tor["pos"][:, 16 + j], on_line, b.arm, 0.96)
        else:
            for j in (0, 1):  # A's left hand holds B's right hand and vice versa
                Sa, Sb = tA["pos"][:, 16 + j], tB["pos"][:, 17 - j]
                y = 0.5 * (Sa[:, 1] + Sb[:, 1]) - drop
                Ma, Mb = meet_points(Sa, Sb, bA.arm, bB.arm, y, reach=0.95)
                pA.hand_target[:, j], pB.hand_target[:, 1 - j] = Ma, Mb
        pA.hand_w[:] = pB.hand_w[:] = window(t, t_grip - S(0.5), t_grip, t_let, t_let + S(0.5))[:, None]
        for p, tor in ((pA, tA), (pB, tB)):
            p.elbow_pole = np.stack([_unit(SIDE[j] * tor["left"] - UP) for j in (0, 1)], 1)

    contacts = [] if rope else [(t_grip, t_let, A, 20, B, 21), (t_grip, t_let, A, 21, B, 20)]
    return _Built(T, _order(ini, pA, pB), arms, [t_grip, t_win0, t_win1], contacts,
                  flags=dict(walk=ap["walked"], rope=rope), extra=dict(rope=rope), holds=[(t_grip, t_let)] if rope else [])


def _kick_block(rng, bodies, ini, tempo):
    A, B = ini, 1 - ini
    bA, bB = bodies[A], bodies[B]
    k = 1 if rng.random() < 0.65 else 0                      # kicking leg
    kb = 1 - k                                               # B blocks with the hand on that side
    sc = _Scene(rng)
    S = lambda x: _sec(x, tempo)  # noqa: E731
    block_y, block_fwd, short, d = _kick_reach(bA, bB)
    d += 0.04
    t_guard = int(rng.integers(0, 15))
    k0 = t_guard + S(rng.uniform(0.5, 1.5))
    k1 = k0 + int(rng.integers(6, 9))
    k2 = k1 + int(rng.integers(6, 9))
    k3 = k2 + 2
    k4 = k3 + int(rng.integers(6, 8))
    k5 = k4 + int(rng.integers(6, 9))
    t_step = k3 + 2
    T = k5 + S(rng.uniform(0.5, 1.2))
    t = np.arange(T)
    pA = Plan(root_xz=sc.p(np.zeros(T), np.zeros(T)), yaw=np.full(T, sc.yaw(0.0)), busy=(k0 - 2, k5 + 2))
    back = rng.uniform(0.15, 0.35)
    pB = Plan(root_xz=sc.p(np.zeros(T), d + back * ramp(t, t_step, t_step + S(0.6))),
              yaw=np.full(T, sc.yaw(np.pi)), swing=10)
    pA.bend = -0.22 * window(t, k0, k2, k3, k5)
    duck = window(t, k1 - 4, k2, k3, k5 + S(0.3))
    pB.bend = (0.15 + min(0.4, 1.5 * short)) * duck
    pB.crouch = min(0.15, 0.6 * short) * duck
    pB.head_pitch = np.full(T, 0.3)
    pA.kick = dict(foot=k, times=(k0, k1, k2, k3, k4, k5), toe=None, pitch=-0.45)

    def arms(tors):
        tA, tB = tors[A], tors[B]
        for p, tor in ((pA, tA), (pB, tB)):
            _guard_up(p, tor, ramp(t, t_guard, t_guard + S(0.4)))
        _block_the_kick(pA, pB, tB, bB, t, kb, block_y, block_fwd, window(t, k1 - 4, k2, k3 + 2, k5 + S(0.3)))

    return _Built(T, _order(ini, pA, pB), arms, [k2], [(k2, k3, A, 10 + k, B, 20 + kb)],
                  hand=HAND_NAMES[k])


def _point_look(rng, bodies, ini, tempo):
    A = ini
    bA = bodies[A]
    k = 1 if rng.random() < 0.65 else 0
    sc = _Scene(rng)
    S = lambda x: _sec(x, tempo)  # noqa: E731
    beside = rng.random() < 0.5
    if beside:   # B stands beside A (on either side), facing the same way
        xb, zb, yb = float(rng.choice([-1, 1])) * rng.uniform(0.8, 1.2), rng.uniform(-0.3, 0.3), 0.0
    else:        # B faces A
        xb, zb, yb = rng.uniform(-0.3, 0.3), rng.uniform(1.2, 2.0), np.pi
    beta = SIDE[k] * rng.uniform(0.1, 1.5)                   # pointing direction, toward the hand's side
    dist = rng.uniform(3.0, 8.0)
    P_xz = sc.p(dist * np.sin(beta), dist * np.cos(beta))
    P = to3(P_xz, rng.uniform(0.0, 2.0))
    t0 = int(rng.integers(5, 30))
    t1 = t0 + S(rng.uniform(0.5, 0.8))
    t_react = t1 + S(rng.uniform(0.1, 0.4))
    t_look = t_react + S(rng.uniform(0.6, 1.0))
    t2 = max(t1, t_look) + S(rng.uniform(0.5, 1.2))
    t3 = t2 + S(0.6)
    T = t3 + S(rng.uniform(0.2, 0.8))
    t = np.arange(T)
    pA = Plan(root_xz=sc.p(np.zeros(T), np.zeros(T)), yaw=np.full(T, sc.yaw(0.0)))
    pB = Plan(root_xz=sc.p(np.full(T, xb), np.full(T, zb)), yaw=np.full(T, sc.yaw(yb)))
    relA = float(wrap(yaw_to(pA.root_xz[0], P_xz) - pA.yaw[0]))
    wA = window(t, t0, t1, t2, t3)
    pA.twist = np.clip(0.35 * relA, -0.4, 0.4) * wA
    pA.head_yaw = np.clip(relA - 0.35 * relA, -1.1, 1.1) * wA
    relB = float(wrap(yaw_to(pB.root_xz[0], P_xz) - pB.yaw[0]))
    body_turn = relB - np.clip(relB, -0.9, 0.9) * 0.8 if abs(relB) > 0.9 else 0.0
    wB = ramp(t, t_react, t_look)
    pB.yaw = pB.yaw + body_turn * wB
    pB.head_yaw = np.clip(relB - body_turn, -1.1, 1.1) * wB
    for p in (pA, pB):
        eye = p.root_xz[0]
        p.head_pitch = float(np.clip(np.arctan2(1.5 - P[1], np.linalg.norm(P_xz - eye)), -0.4, 0.4)) * (
            wA if p is pA else wB)

    def arms(tors):
        tA = tors[A]
        Sh = tA["pos"][:, 16 + k]
        aim = Sh + 0.97 * bA.arm * _unit(P - Sh)
        pA.hand_target[:, k], pA.hand_w[:, k] = aim, wA
        pA.elbow_pole = np.stack([_unit(SIDE[j] * tA["left"] - UP) for j in (0, 1)], 1)

    return _Built(T, _order(ini, pA, pB), arms, [t1, t_look], [], hand=HAND_NAMES[k],
                  flags=dict(beside=beside), extra=dict(target=[round(float(v), 3) for v in P]))


def _shoulder_pat(rng, bodies, ini, tempo):
    A, B = ini, 1 - ini
    bA, bB = bodies[A], bodies[B]
    sc = _Scene(rng)
    S = lambda x: _sec(x, tempo)  # noqa: E731
    side = float(rng.choice([-1, 1]))       # A approaches on B's left (+1) or right (-1) side
    k = 1 if side > 0 else 0                # ... and pats with the inner hand
    jb = 16 if side > 0 else 17             # ... on B's shoulder on that side
    # Can A reach the top of B's shoulder? If not (much shorter), A pats B's upper back instead.
    on_shoulder = bA.shoulder_y + 0.3 * bA.arm / 0.51 >= bB.shoulder_y + SHOULDER_RADIUS + 0.03
    lat = 0.45 * side
    dy = (bB.shoulder_y + (SHOULDER_RADIUS + 0.02 if on_shoulder else -0.15)) - bA.shoulder_y
    dlat = abs(bB.shoulder[0] - (0.45 - bA.shoulder[0]))
    behind = float(np.sqrt(max((0.86 * bA.arm) ** 2 - dy * dy - dlat * dlat, 0.25 ** 2)))
    extra = rng.uniform(0.5, 1.8)
    v = rng.uniform(0.45, 0.6)
    t0 = int(rng.integers(0, 20))
    t1 = t0 + int(round(extra / v * FPS * tempo))
    n, per = int(rng.integers(2, 4)), S(rng.uniform(0.3, 0.4))
    t_pat = t1 + S(rng.uniform(0.2, 0.4))
    t_pats_end = t_pat + (n - 1) * per
    t_off = t_pats_end + S(0.6)
    t_turn0 = t_off - S(rng.uniform(0.0, 0.2))
    t_turn1 = t_turn0 + S(rng.uniform(1.2, 1.6))
    T = max(t_off, t_turn1) + S(rng.uniform(0.3, 1.0))
    t = np.arange(T)
    zA = keyframes(t, [t0, t1], [-behind - extra, -behind])
    pA = Plan(root_xz=sc.p(np.full(T, lat), zA), yaw=np.full(T, sc.yaw(0.0)))
    pB = Plan(root_xz=sc.p(np.zeros(T), np.zeros(T)), yaw=np.full(T, sc.yaw(0.0)))
    pB.yaw = pB.yaw + side * np.pi * ramp(t, t_turn0, t_turn1)  # turns toward A's side
    pB.head_yaw = side * 0.5 * window(t, t_pat, t_turn0, t_turn0 + S(0.4), t_turn1)
    pats = [t_pat + i * per for i in range(n)]

    def arms(tors):
        tA, tB = tors[A], tors[B]
        if on_shoulder:
            spot = tB["pos"][:, jb] + (SHOULDER_RADIUS + 0.02) * UP
        else:
            y = tB["pos"][:, 12, 1] - 0.15
            spot = on_torso(tB, y, side * (np.pi - 0.5))
        bounce = sum(window(t, tp + 2, tp + per // 2, tp + per // 2, tp + per - 1) for tp in pats[:-1])
        spot = spot[np.minimum(t, t_pats_end + 2)]  # the hand leaves from where it last touched
        pA.hand_target[:, k] = spot + 0.07 * bounce[:, None] * UP
        pA.hand_w[:, k] = window(t, t1 - S(0.4), t_pat, t_pats_end + 2, t_off)
        # The elbow stays low and on A's own side; the hand rises beside B before coming down on B.
        pA.elbow_pole = np.stack([_unit(-SIDE[j] * 0.5 * tA["left"] - UP) for j in (0, 1)], 1)
        pA.hand_via = np.stack([_unit(tA["fwd"] - 0.4 * SIDE[j] * tA["left"]) for j in (0, 1)], 1)

    contacts = [(tp, tp + 1, A, 20 + k, B, jb if on_shoulder else 9) for tp in pats]
    return _Built(T, _order(ini, pA, pB), arms, [t_pat, t_turn1], contacts,
                  hand=HAND_NAMES[k], flags=dict(shoulder=on_shoulder))


# ---- interactions where both act all the time, chains of events, and the paper's own scenarios --------

def _hold_hands(tors, ia, ib, bA, bB, y):
    """Both hand pairs joined, A's hand j with B's hand 1 - j (they face each other): wrist targets, each
    pair `HAND_GAP` apart. Returns the A and B targets (T, 2, 3)."""
    tA, tB = tors[ia], tors[ib]
    ta, tb = np.empty((len(y), 2, 3)), np.empty((len(y), 2, 3))
    for j in (0, 1):
        ta[:, j], tb[:, 1 - j] = meet_points(tA["pos"][:, 16 + j], tB["pos"][:, 17 - j], bA.arm, bB.arm, y)
    return ta, tb


def _dance(rng, bodies, ini, tempo):
    """Holding both hands, the two sway to a beat and turn around each other, A leading."""
    A, B = ini, 1 - ini
    bA, bB = bodies[A], bodies[B]
    sc = _Scene(rng)
    S = lambda x: _sec(x, tempo)  # noqa: E731
    drop = rng.uniform(0.35, 0.5) * 0.5 * (bA.arm + bB.arm)
    d = max(0.7, meet_distance(bA, bB, drop, abs(bA.shoulder[0] - bB.shoulder[0]), 0.8))
    t_join = S(rng.uniform(0.4, 0.9))
    dur = S(rng.uniform(3.0, 6.0))
    t_rel = t_join + dur
    T = t_rel + S(rng.uniform(0.5, 1.0))
    t = np.arange(T)
    sgn = float(rng.choice([-1, 1]))                         # +1: counterclockwise seen from above
    turn = sgn * rng.uniform(0.5, 1.2) * 2 * np.pi * ramp(t, t_join + S(0.3), t_rel - S(0.3))
    beat = rng.uniform(0.45, 0.7) / tempo                    # Hz, one sway to each side per beat
    phase = 2 * np.pi * beat * (t - t_join) / FPS
    on = window(t, t_join - S(0.3), t_join + S(0.3), t_rel - S(0.4), t_rel)
    C = sc.p(0.0, d / 2)
    phi = sc.h + np.pi + turn                                # A starts at the scene origin
    side = 0.07 * np.sin(phase) * on                         # the pair sways sideways together
    xa = C + (d / 2) * fwd2(phi) + side[:, None] * left2(phi)
    xb = C - (d / 2) * fwd2(phi) + side[:, None] * left2(phi)
    pA = Plan(root_xz=xa, yaw=np.unwrap(yaw_to(xa, xb)), swing=10, step_thr=0.1)
    pB = Plan(root_xz=xb, yaw=np.unwrap(yaw_to(xb, xa)), swing=10, step_thr=0.1)
    for p, bs, bo, sg in ((pA, bA, bB, 1.0), (pB, bB, bA, -1.0)):
        p.crouch = 0.025 * (1 - np.cos(2 * phase)) * on      # a bounce on every beat
        p.lean = sg * 0.06 * np.sin(phase) * on
        p.head_pitch = np.full(T, _look_pitch(bs, bo, d))

    def arms(tors):
        y = 0.5 * (tors[A]["pos"][:, 16, 1] + tors[B]["pos"][:, 16, 1]) - drop
        pA.hand_target[:], pB.hand_target[:] = _hold_hands(tors, A, B, bA, bB, y)
        pA.hand_w[:] = window(t, t_join - S(0.8), t_join, t_rel, t_rel + S(0.4))[:, None]  # A reaches out first
        pB.hand_w[:] = window(t, t_join - S(0.4), t_join, t_rel, t_rel + S(0.4))[:, None]

    contacts = [(t_join, t_rel, A, 20, B, 21), (t_join, t_rel, A, 21, B, 20)]
    return _Built(T, _order(ini, pA, pB), arms, [t_join, t_rel], contacts,
                  direction="counterclockwise" if sgn > 0 else "clockwise")


def _clap_game(rng, bodies, ini, tempo):
    """A clapping game face to face: each beat a clap of one's own hands, then both hands against the
    partner's; A raises the hands first."""
    A, B = ini, 1 - ini
    bA, bB = bodies[A], bodies[B]
    sc = _Scene(rng)
    S = lambda x: _sec(x, tempo)  # noqa: E731
    drop = rng.uniform(0.3, 0.45) * 0.5 * (bA.arm + bB.arm)
    d = max(0.6, meet_distance(bA, bB, drop, abs(bA.shoulder[0] - bB.shoulder[0]), 0.72))
    ap = _approach(rng, d, tempo, p_walk=0.4, p_both=0.0)
    period = S(rng.uniform(0.5, 0.7)) // 2 * 2               # frames per beat: own clap, then the partner's
    n = int(rng.integers(3, 7))
    t_up_a = max(ap["t1"] + S(0.2), S(0.5))
    t_up_b = t_up_a + S(rng.uniform(0.15, 0.35))
    t0 = t_up_b + S(0.4)
    claps = [t0 + i * period + period // 2 for i in range(n)]  # partner claps; own claps half a beat before
    t_end = claps[-1] + period // 4                          # the hands drop from the last "ready" pose
    T = t_end + S(rng.uniform(0.6, 1.2))
    t = np.arange(T)
    pA, pB = _two_plans(sc, t, ap)
    for p, bs, bo in ((pA, bA, bB), (pB, bB, bA)):
        p.head_pitch = np.full(T, _look_pitch(bs, bo, d) + 0.1)

    def arms(tors):
        y = 0.5 * (tors[A]["pos"][:, 16, 1] + tors[B]["pos"][:, 16, 1]) - drop
        meet_a, meet_b = _hold_hands(tors, A, B, bA, bB, y)
        for p, tor, meet, t_up in ((pA, tors[A], meet_a, t_up_a), (pB, tors[B], meet_b, t_up_b)):
            # own clap: both hands together in front of the chest, at the height of the partner claps
            own = 0.5 * (meet[:, 0] + meet[:, 1]) - 0.45 * np.linalg.norm(meet[:, 0] - tor["pos"][:, 16], axis=-1,
                                                                            keepdims=True) * tor["fwd"]
            own = np.stack([own + 0.5 * HAND_GAP * SIDE[j] * tor["left"] for j in (0, 1)], 1)
            ready = np.stack([own[:, j] + 0.12 * SIDE[j] * tor["left"] for j in (0, 1)], 1)
            times, poses = [0], [ready]
            for c in claps:
                times += [c - period // 2, c - period // 4, c, c + period // 4]
                poses += [own, ready, meet, ready]
            idx = np.searchsorted(np.array(times), t, side="right") - 1      # the keyframe each frame follows
            nxt = np.minimum(idx + 1, len(times) - 1)
            t_a, t_b = np.array(times)[idx], np.array(times)[nxt]
            u = smoothstep(np.where(t_b > t_a, (t - t_a) / np.maximum(t_b - t_a, 1), 0.0))[:, None, None]
            P = np.stack(poses)                                                # (K, T, 2, 3)
            p.hand_target[:] = P[idx, t] + (P[nxt, t] - P[idx, t]) * u
            p.hand_w[:] = window(t, t_up, t_up + S(0.4), t_end, t_end + S(0.5))[:, None]
            p.elbow_pole = np.stack([_unit(-0.6 * UP + 0.6 * SIDE[j] * tor["left"]) for j in (0, 1)], 1)

    contacts = [(c, c, A, 20 + j, B, 21 - j) for c in claps for j in (0, 1)]
    return _Built(T, _order(ini, pA, pB), arms, [claps[0], claps[-1]], contacts,
                  flags=dict(walk=ap["walked"]), extra=dict(claps=n))


def _conversation(rng, bodies, ini, tempo):
    """Face to face, A talks with gestures while B listens and nods, then B answers, sometimes A again."""
    A, B = ini, 1 - ini
    bA, bB = bodies[A], bodies[B]
    sc = _Scene(rng)
    S = lambda x: _sec(x, tempo)  # noqa: E731
    d = rng.uniform(1.0, 1.5)
    ap = _approach(rng, d, tempo, p_walk=0.35, p_both=0.2)
    n_turns = int(rng.integers(2, 4))
    starts, t0 = [], max(ap["t1"] + S(0.3), S(0.4))
    for _ in range(n_turns):
        starts.append(t0)
        t0 += S(rng.uniform(1.5, 2.8)) + S(rng.uniform(0.2, 0.5))
    T = min(t0 + S(rng.uniform(0.3, 0.8)), im.MAX_FRAMES)
    t = np.arange(T)
    pA, pB = _two_plans(sc, t, ap)
    ends = [min(s2 - S(0.2), T - 1) for s2 in starts[1:]] + [T - S(0.3)]
    speaker = [(A if i % 2 == 0 else B) for i in range(n_turns)]
    k = 1 if rng.random() < 0.7 else 0                      # the hand that gestures most, the same for both
    talking = {}
    for p, bs, bo, who in ((pA, bA, bB, A), (pB, bB, bA, B)):
        talk = sum(window(t, s0, s0 + S(0.3), e0 - S(0.3), e0) for s0, e0, sp in zip(starts, ends, speaker)
                   if sp == who)
        listen = sum(window(t, s0, s0 + S(0.3), e0 - S(0.3), e0) for s0, e0, sp in zip(starts, ends, speaker)
                     if sp != who)
        nod = 0.12 * np.maximum(np.sin(2 * np.pi * rng.uniform(0.5, 0.9) * t / FPS), 0) ** 2
        p.head_pitch = np.full(T, _look_pitch(bs, bo, d)) + listen * nod
        p.head_yaw = talk * 0.1 * band_noise(rng, T, 0.2, 0.6)
        p.bend = 0.04 * talk
        talking[who] = talk

    def arms(tors):
        for p, tor, b, who in ((pA, tors[A], bA, A), (pB, tors[B], bB, B)):
            s = b.height / 1.7
            base = tor["pos"][:, 9] + 0.3 * s * tor["fwd"] - 0.12 * s * UP
            beats = 0.07 * s * band_noise(rng, T, 0.8, 2.0, (2, 3))                        # (T, 2, 3)
            hands = np.stack([base + (0.12 + 0.05 * j) * SIDE[j] * s * tor["left"] for j in (0, 1)], 1) + beats
            p.hand_target[:] = hands
            both = 0.5 + 0.5 * (rng.random() < 0.5)          # sometimes only the main hand talks
            p.hand_w[:] = talking[who][:, None] * np.array([both if j != k else 1.0 for j in (0, 1)])[None]
            p.elbow_pole = np.stack([_unit(-0.7 * UP + 0.5 * SIDE[j] * tor["left"] - 0.2 * tor["fwd"])
                                     for j in (0, 1)], 1)

    return _Built(T, _order(ini, pA, pB), arms, [starts[0], starts[1]], [], hand=HAND_NAMES[k],
                  flags=dict(walk=ap["walked"], again=n_turns > 2 and starts[2] < T - S(1.0)))


def _greet_walk(rng, bodies, ini, tempo):
    """A chain of events: A comes up, they shake hands, then turn and walk off together side by side."""
    A, B = ini, 1 - ini
    bA, bB = bodies[A], bodies[B]
    k = 1 if rng.random() < 0.8 else 0
    sc = _Scene(rng)
    S = lambda x: _sec(x, tempo)  # noqa: E731
    drop, lean = rng.uniform(0.45, 0.6) * 0.5 * (bA.arm + bB.arm), rng.uniform(0.05, 0.12)
    d = meet_distance(bA, bB, drop, bA.shoulder[0] + bB.shoulder[0], 0.9, lean, lean)
    ap = _approach(rng, d, tempo, p_walk=0.9, p_both=0.2)
    t_meet = max(ap["t1"] + S(rng.uniform(0.1, 0.4)), S(0.9))
    period, n = S(rng.uniform(0.35, 0.5)), int(rng.integers(2, 4))
    t_rel = t_meet + n * period
    t_turn = t_rel + S(0.4)
    t_go = t_turn + S(0.5)
    dist = rng.uniform(1.5, 3.0)
    t_stop = t_go + int(round(dist / rng.uniform(0.6, 0.8) * FPS * tempo))
    T = min(t_stop + S(rng.uniform(0.3, 0.8)), im.MAX_FRAMES)
    t = np.arange(T)
    pA, pB = _two_plans(sc, t, ap)
    way = float(rng.choice([-1, 1]))                         # they walk off along the scene's x axis
    gap = rng.uniform(0.55, 0.75)                            # side by side, closer than at the handshake
    mid = 0.5 * (ap["zA"][1] + ap["zB"][1])
    go, close = ramp(t, t_go, t_stop), ramp(t, t_turn, t_go + S(1.0))
    zA = keyframes(t, [ap["t0"], ap["t1"]], np.array(ap["zA"]))
    zB = keyframes(t, [ap["t0"] + (ap["t1"] - ap["t0"]) // 4, ap["t1"]], np.array(ap["zB"]))
    pA.root_xz = sc.p(way * dist * go, zA + (mid - gap / 2 - ap["zA"][1]) * close)
    pB.root_xz = sc.p(way * dist * go, zB + (mid + gap / 2 - ap["zB"][1]) * close)
    for p, rel in ((pA, 0.0), (pB, np.pi)):                 # both turn the short way to face where they go
        p.yaw = sc.yaw(rel) + wrap(way * np.pi / 2 - rel) * ramp(t, t_rel, t_go)
    for p, bs, bo in ((pA, bA, bB), (pB, bB, bA)):
        p.bend = lean * window(t, t_meet - S(0.4), t_meet, t_rel, t_rel + S(0.4))
        p.head_pitch = np.full(T, _look_pitch(bs, bo, d))
        p.head_yaw = 0.25 * (-1 if p is pA else 1) * way * window(t, t_go, t_go + S(0.5), T - S(0.6), T)

    def arms(tors):
        tA, tB = tors[A], tors[B]
        y0 = 0.5 * (tA["pos"][:, 16 + k, 1] + tB["pos"][:, 16 + k, 1]) - drop
        pump = 0.04 * np.sin(2 * np.pi * (t - t_meet) / period) * window(t, t_meet, t_meet + 3, t_rel - 3, t_rel)
        Ma, Mb = meet_points(tA["pos"][:, 16 + k], tB["pos"][:, 16 + k], bA.arm, bB.arm, y0 + pump)
        pA.hand_target[:, k], pA.hand_w[:, k] = Ma, window(t, t_meet - S(0.6), t_meet, t_rel, t_rel + S(0.4))
        pB.hand_target[:, k], pB.hand_w[:, k] = Mb, window(t, t_meet - S(0.4), t_meet, t_rel, t_rel + S(0.4))

    return _Built(T, _order(ini, pA, pB), arms, [t_meet, t_rel, t_go], [(t_meet, t_rel, A, 20 + k, B, 20 + k)],
                  hand=HAND_NAMES[k], flags=dict(walk=ap["walked"], both=ap["both"]))


def _fencing(rng, bodies, ini, tempo):
    """Fencing, the paper's scenario: both en garde side-on, A advances while B retreats, then A lunges at
    B's chest with the sword arm straight, B parries across, A recovers. The blades (not modelled) make
    up the distance between the hands: no joints touch."""
    A, B = ini, 1 - ini
    bA, bB = bodies[A], bodies[B]
    k = 1 if rng.random() < 0.8 else 0                      # the sword hand, the same for both
    sc = _Scene(rng)
    S = lambda x: _sec(x, tempo)  # noqa: E731
    d0 = rng.uniform(2.0, 2.5)
    side_on = (1.0 if k == 1 else -1.0) * rng.uniform(0.8, 1.1)  # the sword side turned toward the other
    n_adv, step, lunge = int(rng.integers(1, 3)), rng.uniform(0.25, 0.35), rng.uniform(0.45, 0.65)
    t_guard = S(rng.uniform(0.3, 0.6))
    tA, zA, zB = [0, t_guard], [0.0, 0.0], [d0, d0]
    for _ in range(n_adv):  # A advances a step, B retreats a step a moment later
        t0 = tA[-1] + S(rng.uniform(0.3, 0.6))
        tA += [t0, t0 + S(0.4)]
        zA += [zA[-1], zA[-1] + step]
        zB += [zB[-1], zB[-1] + step * rng.uniform(0.7, 1.0)]
    t_l0 = tA[-1] + S(rng.uniform(0.3, 0.7))
    t_l1 = t_l0 + S(0.3)                                     # lunge fully extended
    t_r0 = t_l1 + S(rng.uniform(0.25, 0.45))
    t_r1 = t_r0 + S(0.5)                                     # back en garde
    T = t_r1 + S(rng.uniform(0.4, 0.9))
    t = np.arange(T)
    za = keyframes(t, tA + [t_l0, t_l1, t_r0, t_r1], zA + [zA[-1], zA[-1] + lunge, zA[-1] + lunge, zA[-1]])
    zb = keyframes(t, [x + 4 for x in tA], zB)
    pA = Plan(root_xz=sc.p(np.zeros(T), za), yaw=np.full(T, sc.yaw(side_on)), swing=9, step_thr=0.1)
    pB = Plan(root_xz=sc.p(np.zeros(T), zb), yaw=np.full(T, sc.yaw(np.pi + side_on)), swing=9, step_thr=0.1)
    lunging = window(t, t_l0, t_l1, t_r0, t_r1)
    guard = ramp(t, 0, t_guard)
    for p, bs, bo in ((pA, bA, bB), (pB, bB, bA)):  # en garde the knees keep springing a little
        spring = 0.012 * (1 - np.cos(2 * np.pi * rng.uniform(1.0, 1.5) * t / FPS)) * (1 - lunging)
        p.crouch = 0.09 * guard + spring + (0.08 * lunging if p is pA else 0.0)
        p.head_yaw = np.full(T, -side_on)                    # looking at the opponent over the sword shoulder
        p.head_pitch = np.full(T, _look_pitch(bs, bo, d0))
    pA.bend = 0.12 * lunging
    pB.bend = -0.08 * lunging                                # B draws back from the point

    def arms(tors):
        for p, tor, b, other, attack in ((pA, tors[A], bA, tors[B], lunging), (pB, tors[B], bB, tors[A], np.zeros(T))):
            s = b.height / 1.7
            u = _unit((other["root"] - tor["root"]) * np.array([1.0, 0.0, 1.0]))   # toward the opponent
            Sw, Sb = tor["pos"][:, 16 + k], tor["pos"][:, 17 - k]
            en_garde = Sw + 0.55 * b.arm * u - 0.15 * s * UP
            thrust = Sw + 0.97 * b.arm * u - 0.04 * s * UP
            W = en_garde + (thrust - en_garde) * attack[:, None]
            f = 1.5 * b.tempo                                # the sword point circles a little, ready
            W = W + 0.02 * s * (np.sin(2 * np.pi * f * t / FPS)[:, None] * UP
                                + np.cos(2 * np.pi * f * t / FPS)[:, None] * tor["left"]) * (1 - attack[:, None])
            if p is pB:  # the parry: the sword hand sweeps across toward the inside and up as A lunges
                W = W + (0.15 * s * -SIDE[k] * tor["left"] + 0.06 * s * UP) * lunging[:, None]
            back_up = Sb + 0.25 * s * UP - 0.15 * s * u + 0.1 * s * SIDE[1 - k] * tor["left"]
            back_down = Sb - 0.6 * b.arm * UP - 0.4 * b.arm * u   # thrown back and down in the lunge
            Wb = back_up + (back_down - back_up) * attack[:, None]
            p.hand_target[:, k], p.hand_target[:, 1 - k] = W, Wb
            p.hand_w[:] = guard[:, None]
            p.elbow_pole = np.stack([_unit(-0.8 * UP + 0.4 * SIDE[j] * tor["left"]) for j in (0, 1)], 1)

    return _Built(T, _order(ini, pA, pB), arms, [t_l1, t_r1], [], hand=HAND_NAMES[k],
                  flags=dict(advance=n_adv > 0))


def _taekwondo(rng, bodies, ini, tempo):
    """Taekwondo sparring, the paper's scenario (up to 10 s): guards up, the two circle each other, A throws
    a kick that B blocks with the hands, and they circle on."""
    A, B = ini, 1 - ini
    bA, bB = bodies[A], bodies[B]
    k = 1 if rng.random() < 0.65 else 0                      # kicking leg
    kb = 1 - k                                               # B blocks with the hand on that side
    sc = _Scene(rng)
    S = lambda x: _sec(x, tempo)  # noqa: E731
    block_y, block_fwd, short, d = _kick_reach(bA, bB)
    d -= 0.02                                                # guard stance: a little closer than kick_block
    sgn = float(rng.choice([-1, 1]))                         # +1: counterclockwise seen from above
    v = rng.uniform(0.3, 0.5)                                # circling speed, m/s
    t_c0 = int(rng.integers(0, 10))
    c1 = S(rng.uniform(1.2, 3.0))
    k0 = t_c0 + c1 + 12                                      # both settle before the kick
    k1 = k0 + int(rng.integers(6, 9))
    k2 = k1 + int(rng.integers(6, 9))
    k3 = k2 + 2
    k4 = k3 + int(rng.integers(6, 8))
    k5 = k4 + int(rng.integers(6, 9))
    c2 = max(0, min(S(rng.uniform(1.0, 3.0)), im.MAX_FRAMES - 30 - (k5 + 12)))
    T = min(k5 + 12 + c2 + S(rng.uniform(0.2, 0.5)), im.MAX_FRAMES)
    t = np.arange(T)
    w = v / (d / 2) / FPS                                    # radians per frame
    phi = sc.h + np.pi + sgn * w * (np.clip(t - t_c0, 0, c1) + np.clip(t - (k5 + 12), 0, c2))
    phi = gaussian_filter1d(phi, 3.0, mode="nearest")        # start and stop like people, not machines
    C = sc.p(0.0, d / 2)
    xa, xb = C + (d / 2) * fwd2(phi), C - (d / 2) * fwd2(phi)
    pA = Plan(root_xz=xa, yaw=np.unwrap(yaw_to(xa, xb)), swing=10, step_thr=0.13, busy=(k0 - 2, k5 + 2))
    pB = Plan(root_xz=xb, yaw=np.unwrap(yaw_to(xb, xa)), swing=10, step_thr=0.13, busy=(k0 - 2, k3 + 2))
    duck = window(t, k1 - 4, k2, k3, k5 + S(0.3))
    pA.crouch, pA.bend = np.full(T, 0.06), 0.1 - 0.32 * window(t, k0, k2, k3, k5)
    pB.crouch = 0.06 + min(0.15, 0.6 * short) * duck
    pB.bend = 0.1 + (0.15 + min(0.4, 1.5 * short)) * duck
    pB.head_pitch = np.full(T, 0.25)
    pA.kick = dict(foot=k, times=(k0, k1, k2, k3, k4, k5), toe=None, pitch=-0.45)

    def arms(tors):
        tA, tB = tors[A], tors[B]
        for p, tor in ((pA, tA), (pB, tB)):
            _guard_up(p, tor, ramp(t, 0, S(0.4)))
        _block_the_kick(pA, pB, tB, bB, t, kb, block_y, block_fwd, window(t, k1 - 4, k2, k3 + 2, k5 + S(0.3)))

    return _Built(T, _order(ini, pA, pB), arms, [t_c0, k2], [(k2, k3, A, 10 + k, B, 20 + kb)],
                  hand=HAND_NAMES[k], direction="counterclockwise" if sgn > 0 else "clockwise")


def _order(ini, pA, pB):
    """Plans indexed by person: the initiator A is person `ini`."""
    return [pA, pB] if ini == 0 else [pB, pA]


# What each key frame of a type marks, in order (meta["key_names"] repeats them per clip).
KEY_NAMES = {
    "handshake": ["hands meet", "hands let go"],
    "high_five": ["hands slap"],
    "punch_dodge": ["punch fully extended"],
    "push": ["push", "pushed person stops"],
    "hug": ["arms wrapped", "arms let go"],
    "wave": ["initiator waves", "other waves back"],
    "follow": ["leader sets off", "follower sets off", "leader stops"],
    "circle": ["initiator starts circling", "other starts circling"],
    "bow": ["initiator bows lowest", "other bows lowest"],
    "handover": ["hands meet on the object", "giver lets go"],
    "tug_of_war": ["hands grip", "winner starts the final pull", "final pull ends"],
    "kick_block": ["kick meets the block"],
    "point_look": ["arm points", "other looks there"],
    "shoulder_pat": ["first pat", "other has turned around"],
    "dance": ["hands join", "hands let go"],
    "clap_game": ["first clap together", "last clap together"],
    "conversation": ["initiator starts talking", "other answers"],
    "greet_walk": ["hands meet", "hands let go", "they set off together"],
    "fencing": ["lunge fully extended", "attacker back en garde"],
    "taekwondo": ["circling starts", "kick meets the block"],
}

BUILDERS = {
    "handshake": _handshake, "high_five": _high_five, "punch_dodge": _punch_dodge, "push": _push,
    "hug": _hug, "wave": _wave, "follow": _follow, "circle": _circle, "bow": _bow,
    "handover": _handover, "tug_of_war": _tug, "kick_block": _kick_block, "point_look": _point_look,
    "shoulder_pat": _shoulder_pat, "dance": _dance, "clap_game": _clap_game, "conversation": _conversation,
    "greet_walk": _greet_walk, "fencing": _fencing, "taekwondo": _taekwondo,
}
INTERACTION_TYPES = list(BUILDERS)


# =====================================================================================================
# 6. Captions
# =====================================================================================================
# Three captions per clip in InterHuman's style. {a} is the initiator, {b} the other person; [x|y] picks
# one synonym. Two captions call them "one person" / "the other" (initiator named first); one calls them
# "the first person" (index 0) / "the second person" (index 1), so roles are recoverable from the text.
# Side words are exactly left/right and clockwise/counterclockwise: mirroring swaps those words, so no
# template may use "right" or "left" in any other sense. A (flag, template) pair is only used when the
# clip's flag is true ("!flag": false); None means always.

TEMPLATES = {
    "handshake": [
        ("slow", "{a} slowly holds out the {hand} hand and {b} [shakes|takes] it."),
        ("walk", "{a} [walks up to|approaches] {b} and [shakes their hand|shakes hands with them] "
                 "using the {hand} hand."),
        (None, "{a} [reaches out|holds out] the {hand} hand to {b}, who [grasps|takes] it, and they shake hands."),
        (None, "{a} offers {b} a {hand}-handed handshake and {b} [accepts|returns] it."),
        (None, "two people shake {hand} hands; {a} [reaches out first|starts the handshake] and {b} responds."),
        ("walk", "{a} [walks over to|comes up to] {b} and the two [greet each other with|exchange] "
                 "a {hand}-hand handshake."),
        ("away", "{a} comes over to {b}, who turns toward them, and they shake {hand} hands."),
    ],
    "high_five": [
        (None, "{a} raises the {hand} hand and {b} [gives them|answers with] a high five."),
        ("walk", "{a} [walks up to|approaches] {b} and they slap a {hand}-handed high five."),
        (None, "{a} [lifts|holds up] the {hand} hand for a high five, and {b} [slaps|hits] it."),
        (None, "two people high-five with their {hand} hands, {a} raising a hand first and {b} joining in."),
        (None, "{a} [starts|initiates] a {hand}-hand high five with {b}."),
        ("away", "{a} calls {b} over for a high five; {b} turns around and they slap {hand} hands."),
    ],
    "punch_dodge": [
        (None, "{a} throws a {hand}-handed punch at {b}, who [dodges|avoids] it by {dodge_ing}."),
        (None, "{a} punches at the face of {b} with the {hand} fist and {b} {dodge_verb}."),
        (None, "{a} [swings|throws] a {hand} punch, but {b} {dodge_verb}."),
        (None, "in a fighting stance, {a} attacks {b} with a {hand} jab and {b} {dodge_verb} to avoid it."),
        (None, "{a} tries to hit {b} with the {hand} hand; {b} [dodges|evades] the punch."),
    ],
    "push": [
        ("fast", "{a} suddenly shoves {b}, who stumbles back."),
        (None, "{a} pushes {b} [hard|forcefully] with both hands, and {b} stumbles backward."),
        ("walk", "{a} [walks up to|approaches] {b} and shoves them in the chest; {b} staggers back a few steps."),
        (None, "{a} shoves {b} away, making {b} [stumble|stagger] backward."),
        (None, "{a} pushes {b} in the chest and {b} [loses balance|is knocked back] and steps back."),
        (None, "with both hands, {a} pushes {b}, who [stumbles|staggers] back."),
    ],
    "hug": [
        ("fast", "{a} [eagerly|enthusiastically] hugs {b}, and {b} hugs back."),
        ("walk", "{a} [walks up to|approaches] {b} and [hugs them|gives them a hug]."),
        (None, "{a} opens their arms and {b} [embraces them|hugs them back]."),
        (None, "two people hug each other; {a} [reaches out first|starts the embrace] and {b} hugs back."),
        (None, "{a} wraps their arms around {b}, and {b} hugs back."),
        (None, "{a} and {b} [embrace|hug] warmly, swaying a little, then let go."),
        ("both", "{a} and {b} walk toward each other and hug."),
        ("away", "{a} comes up to {b}, who turns around, and they hug."),
    ],
    "wave": [
        ("fast", "{a} waves [eagerly|enthusiastically] at {b} with the {hand} hand, and {b} waves back."),
        (None, "{a} waves [at|to] {b} from [a distance|afar] with the {hand} hand, and {b} waves back."),
        (None, "standing far apart, {a} raises the {hand} hand and waves; {b} [waves back|returns the wave]."),
        ("turn", "{a} waves the {hand} hand to get the attention of {b}, who turns around and waves back."),
        (None, "{a} greets {b} from [far away|a distance] by waving the {hand} hand, and {b} answers with a wave."),
        (None, "{a} [waves|gives a wave] with their {hand} hand and {b} waves in return."),
    ],
    "follow": [
        ("slow", "{a} walks slowly ahead and {b} follows at the same unhurried pace."),
        ("fast", "{a} walks off briskly and {b} hurries after them."),
        (None, "{a} walks [ahead|forward] and {b} follows [behind them|a few steps behind]."),
        (None, "{a} leads the way while {b} [follows|walks after them]."),
        (None, "{a} [starts walking|sets off] and {b} [trails|follows] behind."),
        ("turn", "{a} walks along a curved path and {b} follows in their footsteps."),
        (None, "{a} walks [off|away], and shortly after {b} follows them."),
    ],
    "circle": [
        (None, "two people circle each other {dir}, {a} moving first and {b} following."),
        (None, "{a} and {b} walk around each other in a {dir} circle."),
        (None, "{a} starts to circle {dir} around {b}, and {b} [mirrors them|does the same], keeping their distance."),
        ("guard", "{a} and {b} [square up|face off] with fists raised and circle {dir}."),
        (None, "facing each other, {a} and {b} [step|move] sideways in a {dir} direction."),
        (None, "{a} [sidesteps|moves sideways] {dir} and {b} [follows suit|circles along], staying face to face."),
    ],
    "bow": [
        ("slow", "{a} bows slowly and deeply to {b}, and {b} bows back."),
        (None, "{a} bows to {b}, and {b} bows back."),
        (None, "{a} [bows|makes a bow] [politely|respectfully] and {b} [returns the bow|bows in return]."),
        ("chest", "{a} bows with the {hand} hand on their chest, and {b} bows back."),
        ("chest", "placing the {hand} hand on the chest, {a} bows to {b}, who [returns the bow|bows too]."),
        (None, "two people bow to each other, {a} first and then {b}."),
        ("walk", "{a} walks up to {b} and bows; {b} bows back."),
        ("away", "{a} waits for {b} to turn around, then bows, and {b} bows back."),
    ],
    "handover": [
        (None, "{a} hands an object to {b} with the {hand} hand."),
        ("walk", "{a} [walks up to|approaches] {b} and gives them something with the {hand} hand."),
        (None, "{a} passes {b} an item using the {hand} hand, and {b} takes it."),
        (None, "{a} [holds out|offers] something in the {hand} hand; {b} reaches out and takes it."),
        (None, "{a} gives {b} an object held in the {hand} hand, and {b} [accepts|receives] it."),
        ("away", "{a} gets the attention of {b}, who turns around, and hands them something with the {hand} hand."),
    ],
    "tug_of_war": [
        ("!rope", "{a} wins a tug of war against {b}, the two pulling on each other's hands."),
        ("!rope", "two people hold hands and pull against each other, and {a} drags {b} forward."),
        ("!rope", "{a} [grabs|takes] the hands of {b}; they lean back and tug until {b} is pulled off balance."),
        ("!rope", "holding hands, {a} pulls hard against {b} and drags them [along|forward]."),
        ("rope", "{a} and {b} play tug of war with a rope, both leaning back, and {a} pulls {b} over."),
        ("rope", "gripping one rope with both hands, {a} [outpulls|drags] {b} toward them."),
        ("rope", "{a} and {b} lean back and pull on a rope until {a} wins."),
        (None, "in a tug of war, {a} [outpulls|overpowers] {b}."),
    ],
    "kick_block": [
        (None, "{a} kicks at {b} with the {hand} leg, and {b} blocks it with their hands."),
        (None, "{a} throws a {hand}-leg kick at the stomach of {b}; {b} [blocks|stops] it and steps back."),
        (None, "{a} [launches|throws] a front kick with the {hand} foot, and {b} [blocks|guards against] it."),
        (None, "in a fighting stance, {a} kicks {b} with the {hand} leg while {b} defends with both arms."),
        (None, "{a} attacks with a {hand} kick and {b} [parries|blocks] it."),
    ],
    "point_look": [
        (None, "{a} points [at something|somewhere] [in the distance|far away] with the {hand} hand, "
               "and {b} looks [there|in that direction]."),
        (None, "{a} raises the {hand} arm to point, and {b} turns to look where they point."),
        (None, "{a} shows {b} something by pointing with the {hand} hand; {b} [turns their head|looks] that way."),
        (None, "{a} points with the {hand} index finger and {b} follows the gesture with their eyes."),
        ("beside", "{a} stands beside {b} and points [into the distance|ahead] with the {hand} hand, and {b} looks."),
    ],
    "shoulder_pat": [
        ("shoulder", "{a} walks up behind {b} and pats them on the shoulder with the {hand} hand; {b} turns around."),
        ("shoulder", "{a} taps {b} on the shoulder with the {hand} hand, and {b} turns to face them."),
        ("!shoulder", "{a} [walks up behind|approaches] {b} and pats their back with the {hand} hand; "
                      "{b} turns around."),
        ("!shoulder", "{a} gives {b} a pat on the back with the {hand} hand, and {b} looks round."),
        (None, "{a} [gets|catches] the attention of {b} with a pat of the {hand} hand, and {b} turns around."),
        (None, "{a} comes from behind and [pats|taps] {b} with the {hand} hand; {b} turns to look."),
    ],
    "dance": [
        (None, "{a} and {b} hold both hands and dance, turning {dir} together."),
        (None, "{a} takes both hands of {b} and they sway to the music, turning around each other {dir}."),
        (None, "two people dance face to face holding hands, {a} leading and {b} following, turning {dir}."),
        ("fast", "{a} and {b} dance [energetically|with enthusiasm], holding hands and spinning {dir}."),
        ("slow", "{a} and {b} dance slowly, holding hands and turning {dir}."),
        (None, "holding hands, {a} leads {b} in a little dance that turns {dir}."),
    ],
    "clap_game": [
        (None, "{a} and {b} play a clapping game, clapping their own hands and then each other's."),
        (None, "{a} starts a hand-clapping game with {b}: they clap, then slap both hands together."),
        (None, "facing each other, {a} and {b} clap in rhythm, meeting each other's palms on every beat."),
        ("fast", "{a} and {b} play a fast clapping game, [slapping|clapping] each other's hands."),
        ("walk", "{a} walks up to {b} and the two play a clapping game."),
        (None, "{a} raises both hands and {b} joins in a game of clapping hands together."),
    ],
    "conversation": [
        (None, "{a} talks to {b}, gesturing with the hands, and {b} [nods|listens] and then answers."),
        (None, "{a} and {b} have a conversation; {a} speaks first with lively gestures and {b} replies."),
        (None, "{a} explains something to {b} with the {hand} hand moving, and {b} nods before responding."),
        ("again", "{a} and {b} chat face to face, taking turns to speak and gesture."),
        ("walk", "{a} walks up to {b} and starts talking with gestures; {b} listens and answers."),
        (None, "standing face to face, {a} tells {b} something with hand gestures and {b} answers back."),
    ],
    "greet_walk": [
        (None, "{a} shakes hands with {b}, and then the two walk off together side by side."),
        ("walk", "{a} [walks up to|approaches] {b}, they shake {hand} hands and leave together."),
        (None, "{a} greets {b} with a {hand}-handed handshake, then they turn and walk away side by side."),
        (None, "after {a} and {b} shake hands, they walk off [together|next to each other]."),
        ("walk", "{a} comes up to {b}, shakes their hand, and they stroll off together."),
        (None, "{a} offers {b} a handshake; then both turn and walk away together, chatting."),
    ],
    "fencing": [
        (None, "{a} and {b} fence; {a} lunges with the sword in the {hand} hand and {b} parries."),
        ("advance", "{a} advances on {b}, who retreats, then {a} lunges and {b} parries the attack."),
        (None, "in a fencing bout, {a} attacks {b} with a lunge and {b} [parries|blocks] it."),
        (None, "{a} thrusts a sword at {b} with the {hand} hand, and {b} parries and leans back."),
        ("fast", "{a} quickly lunges at {b}, who parries just in time."),
        (None, "two fencers face off; {a} lunges forward and {b} parries, then {a} recovers."),
    ],
    "taekwondo": [
        (None, "{a} and {b} spar in taekwondo, circling {dir}; {a} kicks with the {hand} leg and {b} blocks."),
        (None, "in a sparring match, {a} and {b} circle each other {dir}, then {a} throws a {hand} kick that {b} blocks."),
        (None, "{a} and {b} move {dir} around each other with guards up until {a} kicks and {b} blocks."),
        (None, "two people spar: {a} attacks with a {hand}-leg kick and {b} blocks it with the hands."),
        (None, "{a} and {b} trade blows in a sparring bout: {a} kicks with the {hand} leg, {b} blocks it."),
        (None, "guards up, {a} and {b} circle {dir}; {a} kicks and {b} defends."),
    ],
}

_DODGE_WORDS = {  # dodge style -> (gerund phrases, verb phrases)
    "back": (["leaning back", "pulling back"], ["leans back out of reach", "pulls the head back"]),
    "duck": (["ducking", "crouching down"], ["ducks under it", "crouches under the punch"]),
    "side": (["slipping to the side", "leaning sideways"], ["sways to the side", "slips aside"]),
}


def _flag_ok(cond, flags):
    if cond is None:
        return True
    if cond.startswith("!"):
        return not flags.get(cond[1:], False)
    return bool(flags.get(cond, False))


def _render(template, rng, **kw):
    """Fill [x|y] synonyms and {names}; capitalise the first letter."""
    text = re.sub(r"\[([^\]]*)\]", lambda m: str(rng.choice(m.group(1).split("|"))), template)
    text = text.format(**kw)
    return text[0].upper() + text[1:]


def heldout_template(kind: str) -> str:
    """The template of `kind` no clip's captions use (its last): test clips carry one sentence from it in
    meta['unseen_captions'], a sentence no training clip ever had, to tell whether a text encoder generalises."""
    return TEMPLATES[kind][-1][1]


def make_captions(rng, kind, built, ini, test: bool = False) -> tuple:
    """Three different captions, one of them naming people by index ("the first/second person"), and the
    unseen-template captions: one from the held-out template for a test clip whose flags allow it, else none."""
    held = heldout_template(kind)
    cands = [tpl for cond, tpl in TEMPLATES[kind] if _flag_ok(cond, built.flags) and tpl != held]
    order = rng.permutation(len(cands))[:3]
    forms = ["one", "one", "index"]
    rng.shuffle(forms)
    kw = dict(hand=built.hand, dir=built.direction)
    if kind == "punch_dodge":
        ing, verb = _DODGE_WORDS[built.flags["dodge"]]
        kw.update(dodge_ing=str(rng.choice(ing)), dodge_verb=str(rng.choice(verb)))
    names = ("the first person", "the second person")
    out = []
    for form, i in zip(forms, order):
        if form == "one":
            a, b = str(rng.choice(["one person", "a person"])), str(rng.choice(["the other person", "the other"]))
        else:
            a, b = names[ini], names[1 - ini]
        out.append(_render(cands[i], rng, a=a, b=b, **kw))
    unseen = []
    if test and _flag_ok(TEMPLATES[kind][-1][0], built.flags):
        unseen.append(_render(held, rng, a=str(rng.choice(["one person", "a person"])), b="the other person", **kw))
    return out, unseen


# =====================================================================================================
# 7. Generating, caching, splitting
# =====================================================================================================

DEFAULT_N_CLIPS = 3000
CACHE_VERSION = 15          # bump when the generator changes, so stale caches are not reused
SPLITS = {"train": range(0, 8), "val": range(8, 9), "test": range(9, 10)}  # by clip index mod 10
SHORT_CLIP_PROB = 0.1      # share of clips cut short (15-60 frames) around a key event
CLIP_BYTES = 220 * 2 ** 10  # a clip's arrays in memory, measured with nbytes (the default set: ~640 MiB)
PEAK_FACTOR = 3            # generating and packing peaks at ~2.3-2.8x that (measured RSS); 3 to be safe


def _available_memory():
    """Bytes of memory free for use now (Linux's MemAvailable, else the free pages; within a container's
    cgroup limit, if it sets one), or None if unknown."""
    free = None
    try:
        with open("/proc/meminfo") as f:
            free = next((int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:")), None)
    except (OSError, ValueError, IndexError):
        pass
    if free is None:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):  # not on this platform: no memory check
            return None
    try:  # a container's limit (cgroup v2: Docker, notebook services) can be far below the machine's memory
        with open("/sys/fs/cgroup/memory.max") as f_max, open("/sys/fs/cgroup/memory.current") as f_now:
            limit = f_max.read().strip()
            if limit != "max":
                free = min(free, int(limit) - int(f_now.read()))
    except (OSError, ValueError):
        pass
    return free


def check_n_clips(n_clips, name: str = "n_clips", generating: bool = True) -> int:
    """`n_clips` as an int, or a TypeError / ValueError naming `name` that says what was expected: a whole
    number of clips, at least 1, and (when `generating`) few enough that generating them fits in memory."""
    n = im._check_int(n_clips, name, low=1)  # the library's check: integer types only, at least 1
    free, per_clip = _available_memory(), CLIP_BYTES * PEAK_FACTOR
    if generating and free is not None and n * per_clip > free:
        raise ValueError(f"{name}={n} is too many: generating them needs about {n * per_clip / 2 ** 30:.1f} GiB "
                         f"of memory ({per_clip // 2 ** 10} KiB a clip at peak) and {free / 2 ** 30:.1f} GiB "
                         f"is available, so at most about {free // per_clip} clips fit")
    return n


def clip_type(seed: int, i: int) -> str:
    """Interaction type of clip i: every block of 14 consecutive clips holds each type once."""
    n = len(INTERACTION_TYPES)
    perm = np.random.default_rng([seed, i // n, 7]).permutation(n)
    return INTERACTION_TYPES[perm[i % n]]


def split_of(i: int) -> str:
    """Deterministic 80/10/10 split by clip index."""
    return next(s for s, r in SPLITS.items() if i % 10 in r)


def make_clip(seed: int, i: int) -> dict:
    """Clip i of the dataset with this seed (independent of how many clips are generated)."""
    rng = np.random.default_rng([seed, i])
    kind = clip_type(seed, i)
    bodies = [sample_body(rng), sample_body(rng)]
    ini = int(rng.integers(2))
    tempo = float(rng.uniform(0.85, 1.2))
    built = BUILDERS[kind](rng, bodies, ini, tempo)
    built.flags.setdefault("slow", tempo > 1.12)  # captions say "slowly" only where the motion is slow
    built.flags.setdefault("fast", tempo < 0.9)
    touching = np.zeros(built.T)  # contact windows, widened by half a second: the two hold still there
    for t0, t1, *_ in built.contacts + built.holds:
        touching[max(0, t0 - FPS // 2):t1 + FPS // 2 + 1] = 1.0
    free = 1.0 - 0.5 * gaussian_filter1d(touching, 4.0, mode="nearest")  # touching: sway damped, not gone
    for p in (0, 1):
        add_life(built.plans[p], bodies[p], rng, free)
    tors = [solve_trunk(built.plans[p], bodies[p]) for p in (0, 1)]
    built.arms(tors)
    solved = [solve_limbs(tor) for tor in tors]
    joints = np.stack([s[0] for s in solved])                 # (2, T, 22, 3)
    local = np.stack([s[1] for s in solved])                  # (2, T, 22, 3, 3)
    # Crop: long clips to the 300-frame limit, a few to a short window around one key event.
    T = built.T
    s, e = 0, T
    if rng.random() < SHORT_CLIP_PROB:
        kf = int(rng.choice(built.key_frames))
        L = int(rng.integers(im.MIN_FRAMES, 61))
        s = int(np.clip(kf - rng.integers(0, L), 0, max(T - L, 0)))
        e = min(T, s + L)
    if e - s > im.MAX_FRAMES:
        s = int(np.clip(min(built.key_frames) - 30, 0, e - im.MAX_FRAMES))
        e = s + im.MAX_FRAMES
    joints, local = joints[:, s:e], local[:, s:e]
    contacts = [(f - s, pa, ja, pb, jb) for (t0, t1, pa, ja, pb, jb) in built.contacts
                for f in range(t0, t1 + 1) if s <= f < e]
    contacts.sort()
    keys = [(int(f - s), name) for f, name in zip(built.key_frames, KEY_NAMES[kind]) if s <= f < e]
    meta = dict(type=kind, initiator=ini, key_frames=[f for f, _ in keys], key_names=[n for _, n in keys],
                hand=built.hand, direction=built.direction, contacts=contacts,
                heights=[round(b.height, 3) for b in bodies], **built.extra,
                offsets=np.stack([b.offsets for b in bodies]).astype(np.float32),       # (2, 22, 3)
                root_rot6d=im.rot6d_from_matrix(local[:, :, 0]).astype(np.float32))     # (2, T, 6)
    captions, meta["unseen_captions"] = make_captions(rng, kind, built, ini, test=split_of(i) == "test")
    return dict(joints=joints.astype(np.float32),
                rot6d=im.rot6d_from_matrix(local[:, :, 1:]).astype(np.float32),        # (2, T, 21, 6)
                captions=captions, meta=meta, id=f"is{i:06d}")


def _make_range(args):
    seed, i0, i1 = args
    return [make_clip(seed, i) for i in range(i0, i1)]


def generate(n_clips: int, seed: int = 0, workers: int = None) -> list:
    """Generate clips 0..n_clips-1. Deterministic: same seed, same clips, whatever `workers` is, and clip i
    does not depend on n_clips. Uses 2 processes for 400 clips or more (workers=1 to stay in-process).

    Each clip is a dict:
      joints   (2, T, 22, 3) float32  world joint positions of person 0 and 1 (m, Y up, 30 fps, SMPL order)
      rot6d    (2, T, 21, 6) float32  local rotations of joints 1..21 relative to their parents, in
                                      intermoe_min.rot6d_from_matrix layout (the rotations that drove FK)
      captions list of 3 str          InterHuman-style; one names "the first/second person" (index 0/1)
      meta     dict                   type, initiator (0/1), key_frames, key_names, hand ('left'/'right'/None:
                                      the acting hand, or the kicking leg in kick_block), direction
                                      ('clockwise'/'counterclockwise'/None, seen from above), contacts
                                      [(frame, person_a, joint_a, person_b, joint_b)], heights (m),
                                      offsets (2, 22, 3) rest skeletons, root_rot6d (2, T, 6) global pelvis
                                      rotations; some types add distance / gap / target
      id       str                    "is000123"
    `rebuild_joints(clip, person)` turns rot6d + root_rot6d + offsets + pelvis path back into joints.
    A bad n_clips (not a whole number, under 1, or too many to fit in memory) raises before any work."""
    n_clips = check_n_clips(n_clips)
    if workers is None:
        workers = 2 if n_clips >= 400 else 1
    if workers <= 1:
        return _make_range((seed, 0, n_clips))
    import multiprocessing as mp
    # fork is quick and safe on Linux; elsewhere (macOS, Windows) start fresh interpreters, which import
    # this module by name: make sure they can find it even if it was loaded from its file.
    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    here = os.path.dirname(os.path.abspath(__file__))
    if "." not in __name__ and here not in sys.path:
        sys.path.append(here)
    bounds = np.linspace(0, n_clips, 8 * workers + 1).astype(int)
    jobs = [(seed, int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
    try:
        with ctx.Pool(workers) as pool:
            parts = pool.map(_make_range, jobs)
    except (OSError, RuntimeError, ImportError) as err:  # e.g. no process support in a sandbox
        print(f"intersynth: worker processes unavailable ({err}); generating in this process")
        return _make_range((seed, 0, n_clips))
    return [c for part in parts for c in part]


def _cache_file(cache_dir, n_clips, seed):
    cache_dir = cache_dir or os.path.join(_REPO, "data", "cache")
    return os.path.join(cache_dir, f"intersynth_v{CACHE_VERSION}_n{n_clips}_s{seed}.npz")


def pack_clips(clips: list) -> dict:
    """Move the clips' per-frame arrays into three flat buffers; each clip then holds views into them.

    One array kind at a time, so memory peaks at the clips plus one buffer. Returns the buffers."""
    kinds = (("joints", lambda c: c, "joints"), ("rot6d", lambda c: c, "rot6d"),
             ("root_rot6d", lambda c: c["meta"], "root_rot6d"))
    buffers = {}
    for name, holder, key in kinds:
        buf = np.concatenate([holder(c)[key].ravel() for c in clips])
        o = 0
        for c in clips:
            a = holder(c)[key]
            holder(c)[key] = buf[o:o + a.size].reshape(a.shape)  # the view replaces (and frees) the array
            o += a.size
        buffers[name] = buf
    return buffers


def save_clips(clips: list, path: str):
    """All clips in one plain .npz: arrays flattened and concatenated, text and metadata as JSON."""
    arrays = pack_clips(clips)
    info = [dict(id=c["id"], captions=c["captions"],
                 meta={k: v for k, v in c["meta"].items() if k not in ("offsets", "root_rot6d")}) for c in clips]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        np.savez(f, lengths=np.array([c["joints"].shape[1] for c in clips]),
                 offsets=np.stack([c["meta"]["offsets"] for c in clips]), info=np.array(json.dumps(info)),
                 **arrays)
    os.replace(tmp, path)  # atomic: a reader never sees a half-written file


def load_clips(path: str) -> list:
    """Inverse of save_clips. Clip arrays are views into a few big buffers (no copies).
    A file cut short or corrupted raises a ValueError that names it and says to delete it."""
    try:
        return _read_clips(path)
    except (ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: this InterSynth cache file is damaged ({type(err).__name__}: {err}); "
                         "delete it and it will be generated again") from err


def _read_clips(path: str) -> list:
    with np.load(path) as z:
        lengths, offsets, info = z["lengths"], z["offsets"], json.loads(str(z["info"]))
        joints, rot6d, root = z["joints"], z["rot6d"], z["root_rot6d"]
    clips, oj, orr, oroot = [], 0, 0, 0
    for n, T in enumerate(lengths):
        T = int(T)
        meta = info[n]["meta"]
        meta["contacts"] = [tuple(c) for c in meta["contacts"]]
        meta["offsets"] = offsets[n]
        meta["root_rot6d"] = root[oroot:oroot + 2 * T * 6].reshape(2, T, 6)
        clips.append(dict(joints=joints[oj:oj + 2 * T * 66].reshape(2, T, 22, 3),
                          rot6d=rot6d[orr:orr + 2 * T * 126].reshape(2, T, 21, 6),
                          captions=info[n]["captions"], meta=meta, id=info[n]["id"]))
        oj, orr, oroot = oj + 2 * T * 66, orr + 2 * T * 126, oroot + 2 * T * 6
    return clips


# path -> clips, so train/val/test calls in one process read the file once (kept across re-executions of
# this file, e.g. by intermoe_min.data_module("intersynth"), through the module registered at the bottom).
_LOADED = getattr(sys.modules.get(__name__), "_LOADED", {})


def _read_or_make(path: str, n_clips: int, seed: int, verbose=False) -> list:
    """The whole set from its cache file; generated and written there first if there is none."""
    if os.path.exists(path):
        return load_clips(path)
    print(f"InterSynth: generating {n_clips} clips once (the default 3000: under a minute on 2 cores), "
          f"then cached in {path}", flush=True)
    t0 = time.time()
    clips = generate(n_clips, seed)
    if verbose:
        print(f"generated {n_clips} clips in {time.time() - t0:.1f} s")
    save_clips(clips, path)  # also packs the clips into the same few buffers a load would give
    return clips


def load_all(n_clips: int = DEFAULT_N_CLIPS, seed: int = 0, cache_dir: str = None, verbose=False) -> list:
    """The whole set: from memory, else from the cache file, else generated and cached."""
    path = _cache_file(cache_dir, n_clips, seed)
    n_clips = check_n_clips(n_clips, generating=not os.path.exists(path))
    if path not in _LOADED:
        _LOADED[path] = _read_or_make(path, n_clips, seed, verbose)
    return _LOADED[path]


def load_split(split: str, n_clips: int = DEFAULT_N_CLIPS, seed: int = 0, cache_dir: str = None) -> list:
    """Clips of one split ('train', 'val', 'test'; 'all' for everything), generated once and cached
    under data/cache/ (or cache_dir) in one .npz keyed by n_clips and seed. A split is kept in memory in
    buffers of its own, so a training run holds its 80 % of the set, not the whole file."""
    if split == "all":
        return list(load_all(n_clips, seed, cache_dir))
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)} or 'all', not {split!r}")
    path = _cache_file(cache_dir, n_clips, seed)
    n_clips = check_n_clips(n_clips, generating=not os.path.exists(path))
    if (path, split) not in _LOADED:
        clips = _LOADED[path] if path in _LOADED else _read_or_make(path, n_clips, seed)
        mine = [dict(c, meta=dict(c["meta"])) for i, c in enumerate(clips) if split_of(i) == split]
        pack_clips(mine)  # copied into this split's own buffers: the whole set's can be freed
        _LOADED[path, split] = mine
    return list(_LOADED[path, split])


def nbytes(clips: list) -> int:
    """Memory held by the clips' arrays (joints, rot6d and the arrays in meta)."""
    return sum(c["joints"].nbytes + c["rot6d"].nbytes
               + sum(v.nbytes for v in c["meta"].values() if isinstance(v, np.ndarray)) for c in clips)


# =====================================================================================================
# 8. Physics and motion reports
# =====================================================================================================
# Foot sliding, floor penetration, torso overlap and segment distances are intermoe_eval's (section 2.4),
# so this report and the evaluation of generated motion measure the same thing.

def contact_distances(clip) -> dict:
    """Per contact tuple: hand-to-hand (or foot-to-hand) joint distance, or a hand's gap to a body surface.

    Body surfaces: the torso capsule (pelvis -> neck, radius TORSO_RADIUS) for torso joints, a sphere of
    SHOULDER_RADIUS around a shoulder joint. Returns {'limb': array, 'body': array} in metres."""
    import intermoe_eval as ie
    J = clip["joints"]
    limb, body = [], []
    for f, pa, ja, pb, jb in clip["meta"]["contacts"]:
        x = J[pa, f, ja].astype(np.float64)
        if jb in TORSO_JOINTS:
            axis = ie.segment_distance(x[None], x[None], J[pb, f, 0][None].astype(np.float64),
                                       J[pb, f, 12][None].astype(np.float64))[0]
            body.append(axis - TORSO_RADIUS)
        elif jb in SHOULDER:
            body.append(np.linalg.norm(x - J[pb, f, jb]) - SHOULDER_RADIUS)
        else:
            limb.append(np.linalg.norm(x - J[pb, f, jb]))
    return dict(limb=np.array(limb), body=np.array(body))


def physics_report(clips: list) -> dict:
    """Measure the physical plausibility of clips. All distances in the units named by the key.

    - bone_rel_std_max: worst relative std of a bone's length over a clip (constant skeleton -> ~1e-7)
    - foot_slide_cm_median / _mean / _p95 / _p99: horizontal per-frame displacement of feet in contact,
      contact as InterGen defines it (squared displacement < 0.001 m^2, height < 0.12 ankle / 0.05 toe);
      planted feet do not move at all, so the median is 0 and the tail comes from feet starting or
      ending a swing close to the floor
    - floor_penetration_cm: deepest joint below y = 0
    - hand_contact_cm_median / _max: joint distance for hand-hand (and foot-hand) contacts
    - body_contact_gap_cm_median / _max: |gap| between a touching hand and the other's body surface
    - torso_overlap_frames: frames where the torso capsules (pelvis -> neck, r = 0.12 m) intersect
    - min_torso_distance_m: smallest capsule-axis distance seen
    - min_feet_distance_cm: closest approach of one person's ankle/toe joints to the other's
    - max_joint_speed_ms, p99_joint_speed_ms, max_jump_cm: per-frame joint motion
    - max_joint_accel_ms2: largest second difference of a joint position (smoothness: no jumps)
    """
    import intermoe_eval as ie
    bone_max, slide, floor, limb, body, overlap, min_d, speeds = 0.0, [], 0.0, [], [], 0, np.inf, []
    accel, feet_d = 0.0, np.inf
    parents = np.array(im.SMPL_PARENTS[1:])
    for c in clips:
        J = c["joints"].astype(np.float64)                                   # (2, T, 22, 3)
        lengths = np.linalg.norm(J[:, :, 1:] - J[:, :, parents], axis=-1)  # (2, T, 21)
        bone_max = max(bone_max, float((lengths.std(1) / lengths.mean(1)).max()))
        floor = max(floor, float(ie.floor_penetration(J).max()))
        if J.shape[1] > 1:
            slide.append(ie.foot_sliding(J))
            step = np.linalg.norm(J[:, 1:] - J[:, :-1], axis=-1)             # (2, T-1, 22)
            speeds.append(step.max(-1).ravel())
        if J.shape[1] > 2:
            acc = np.linalg.norm(J[:, 2:] - 2 * J[:, 1:-1] + J[:, :-2], axis=-1)  # (2, T-2, 22)
            accel = max(accel, float(acc.max()))
        F = im.FOOT_JOINTS
        feet_d = min(feet_d, float(np.linalg.norm(J[0][:, F, None] - J[1][:, None, F], axis=-1).min()))
        overlap += int((ie.interpenetration(J) > 0).sum())
        dist = ie.segment_distance(J[0, :, 0], J[0, :, 12], J[1, :, 0], J[1, :, 12])
        min_d = min(min_d, float(dist.min()))
        cd = contact_distances(c)
        limb.append(cd["limb"])
        body.append(cd["body"])
    slide, limb, body = np.concatenate(slide), np.concatenate(limb), np.abs(np.concatenate(body))
    steps = np.concatenate(speeds)
    pct = lambda a, q: float(np.percentile(a, q)) if len(a) else float("nan")  # noqa: E731
    return dict(
        n_clips=len(clips), frames=int(sum(c["joints"].shape[1] for c in clips)),
        bone_rel_std_max=bone_max,
        foot_contact_frames=int(len(slide)),
        foot_slide_cm_median=100 * pct(slide, 50), foot_slide_cm_mean=100 * float(slide.mean()),
        foot_slide_cm_p95=100 * pct(slide, 95), foot_slide_cm_p99=100 * pct(slide, 99),
        floor_penetration_cm=100 * floor,
        hand_contact_cm_median=100 * pct(limb, 50), hand_contact_cm_max=100 * pct(limb, 100),
        body_contact_gap_cm_median=100 * pct(body, 50), body_contact_gap_cm_max=100 * pct(body, 100),
        n_contacts=int(len(limb) + len(body)),
        torso_overlap_frames=overlap, min_torso_distance_m=min_d, min_feet_distance_cm=100 * feet_d,
        max_joint_speed_ms=FPS * float(steps.max()), p99_joint_speed_ms=FPS * pct(steps, 99),
        max_jump_cm=100 * float(steps.max()), max_joint_accel_ms2=FPS * FPS * accel,
    )


FROZEN_M = 0.001        # a frame where no joint moves this far (1 mm) counts as frozen
WALK_SPEED = 0.6        # pelvis speed (m/s, smoothed over 0.5 s) above which a person counts as walking
NORMAL_WALK = 1.2       # a gait cycle this fast (m/s) is at an adult's normal walking speed (1.2-1.4 m/s)


def _flexion(J, a, b, c):
    """Angle (degrees) between bones a->b and b->c of joints (..., 22, 3): 0 = straight."""
    u, v = J[..., b, :] - J[..., a, :], J[..., c, :] - J[..., b, :]
    cos = (u * v).sum(-1) / np.maximum(np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1), 1e-9)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _runs(mask):
    """(start, end) of each run of True in a 1-D boolean array, end exclusive."""
    d = np.diff(np.r_[0, mask.astype(int), 0])
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def person_motion(J: np.ndarray, height: float) -> dict:
    """How one person (T, 22, 3) moves, the measures `motion_report` pools: arrays per frame, per gait
    cycle or per walking stretch."""
    import intermoe_eval as ie
    J = np.asarray(J, dtype=np.float64)
    T = len(J)
    step = np.linalg.norm(np.diff(J, axis=0), axis=-1)                           # (T-1, 22) m per frame
    jerk = np.linalg.norm(np.diff(J, 3, axis=0), axis=-1).mean(-1) * FPS ** 3    # (T-3,) m/s^3, joint mean
    pelvis_v = np.linalg.norm(np.diff(J[:, 0, [0, 2]], axis=0), axis=-1) * FPS   # (T-1,) horizontal m/s
    walking = gaussian_filter1d(pelvis_v, 5.0, mode="nearest") > WALK_SPEED if T > 1 else np.zeros(0, bool)
    knee = np.concatenate([_flexion(J, 1, 4, 7), _flexion(J, 2, 5, 8)])
    walk_knee = np.concatenate([_flexion(J[:-1][walking], 1, 4, 7), _flexion(J[:-1][walking], 2, 5, 8)])
    elbow = np.concatenate([_flexion(J, 16, 18, 20), _flexion(J, 17, 19, 21)])
    bob, strides = [], []
    for s, e in _runs(walking):
        if e - s < FPS:  # a stretch of at least a second
            continue
        for toe in (10, 11):  # a full gait cycle: from one plant of a foot to its next
            v = np.linalg.norm(np.diff(J[s:e, toe, [0, 2]], axis=0), axis=-1) * FPS
            plants = [s + a for a, b in _runs((v < 0.1) & (J[s:e - 1, toe, 1] < 0.06)) if b - a >= 5]  # stances
            for a, b in zip(plants, plants[1:]):
                strides.append((np.linalg.norm(J[b, toe, [0, 2]] - J[a, toe, [0, 2]]) / height, pelvis_v[a:b].mean()))
                y = J[a:b + 1, 0, 1]
                y = y - np.linspace(y[0], y[-1], len(y))  # the cycle's pelvis height, its drift taken out
                bob.append(y.max() - y.min())
    across = (J[:, im.R_HIP] - J[:, im.L_HIP]) + (J[:, im.R_SHOULDER] - J[:, im.L_SHOULDER])  # as im.facing_yaw, all frames
    facing = np.cross(UP, across)
    lateral = np.einsum("ti,ti->t", (J[:, 7] - J[:, 8])[:, [0, 2]], left2(np.arctan2(facing[:, 0], facing[:, 2])))
    return dict(frozen=step.max(-1) < FROZEN_M, still=step.max(-1) < 1e-6, jerk=jerk, knee=knee,
                trunk_frozen=step[:, [0, 3, 6, 9, 12, 15]].max(-1) < FROZEN_M, crossed=lateral < 0,
                walk_knee=walk_knee, elbow=elbow, wrist_speed=step[:, [20, 21]].ravel() * FPS,
                pelvis_speed=pelvis_v, bob=np.array(bob), stride=np.array([x for x, _ in strides]),
                stride_normal=np.array([x for x, v in strides if v >= NORMAL_WALK]),
                slide=ie.foot_sliding(J[None]), walk_frames=int(walking.sum()))


def motion_report(clips: list, by_type: bool = False) -> dict:
    """Does it move like people? These measures, pooled over every person of `clips` (the figures real
    motion capture gives are in docs/intersynth.md): frozen-frame share (no joint moves 1 mm), jerk,
    knee and elbow flexion, wrist and pelvis speed, pelvis bob (peak to peak in a gait cycle), stride over
    body height, all cycles and those at a normal walking speed, and the sliding of feet in contact.
    by_type: one report per interaction type, too."""
    parts = [person_motion(c["joints"][p], c["meta"]["heights"][p]) for c in clips for p in (0, 1)]
    cat = {k: np.concatenate([np.ravel(x[k]) for x in parts]) for k in parts[0] if k != "walk_frames"}
    pct = lambda k, q: float(np.percentile(cat[k], q)) if len(cat[k]) else float("nan")  # noqa: E731
    r = dict(n_clips=len(clips), frozen_pct=100 * float(cat["frozen"].mean()),
             still_pct=100 * float(cat["still"].mean()), trunk_frozen_pct=100 * float(cat["trunk_frozen"].mean()),
             feet_crossed_pct=100 * float(cat["crossed"].mean()),
             jerk_median=pct("jerk", 50), jerk_p90=pct("jerk", 90),
             knee_deg_p1=pct("knee", 1), knee_deg_p99=pct("knee", 99),
             walk_knee_deg_p1=pct("walk_knee", 1), walk_knee_deg_p99=pct("walk_knee", 99),
             elbow_deg_p1=pct("elbow", 1), elbow_deg_p99=pct("elbow", 99),
             wrist_speed_median=pct("wrist_speed", 50), wrist_speed_p90=pct("wrist_speed", 90),
             pelvis_speed_median=pct("pelvis_speed", 50), pelvis_speed_p90=pct("pelvis_speed", 90),
             walk_frames=int(sum(x["walk_frames"] for x in parts)),
             pelvis_bob_cm_median=100 * pct("bob", 50), stride_over_height_median=pct("stride", 50),
             stride_over_height_normal=pct("stride_normal", 50),
             slide_cm_median=100 * pct("slide", 50), slide_cm_p90=100 * pct("slide", 90))
    if by_type:
        kinds = sorted({c["meta"]["type"] for c in clips})
        r["by_type"] = {k: motion_report([c for c in clips if c["meta"]["type"] == k]) for k in kinds}
    return r


def rebuild_joints(clip, person: int) -> np.ndarray:
    """Joint positions (T, 22, 3) from a clip's stored rotations, root path and skeleton, via FK."""
    m = clip["meta"]
    local = np.concatenate([im.matrix_from_rot6d(m["root_rot6d"][person].astype(np.float64))[:, None],
                            im.matrix_from_rot6d(clip["rot6d"][person].astype(np.float64))], 1)  # (T, 22, 3, 3)
    return im.forward_kinematics(local, clip["joints"][person, :, 0].astype(np.float64),
                                 m["offsets"][person].astype(np.float64))


# =====================================================================================================
# 9. Command line
# =====================================================================================================

def _summary(clips, seconds):
    from collections import Counter
    types = Counter(c["meta"]["type"] for c in clips)
    splits = Counter(split_of(i) for i in range(len(clips)))
    lengths = np.array([c["joints"].shape[1] for c in clips])
    print(f"{len(clips)} clips, {lengths.sum()} frames ({lengths.sum() / FPS / 60:.1f} min), "
          f"length min/median/max {lengths.min()}/{int(np.median(lengths))}/{lengths.max()}, "
          f"{((lengths >= 60) & (lengths <= 200)).mean() * 100:.0f}% of clips 60-200 frames")
    print("per type:  " + ", ".join(f"{k} {v}" for k, v in sorted(types.items())))
    print("per split: " + ", ".join(f"{k} {splits[k]}" for k in SPLITS))
    print(f"time {seconds:.1f} s, arrays in memory {nbytes(clips) / 2 ** 20:.0f} MiB")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="measure physical plausibility")
    ap.add_argument("--n", type=int, default=None, help=f"number of clips (default {DEFAULT_N_CLIPS}, cached)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if not 0 <= args.seed < 2 ** 63:  # numpy's generators take seeds >= 0; the cache's name holds it as int64
        ap.error(f"--seed must be between 0 and 2**63 - 1, got {args.seed}")
    if args.n is not None:
        try:
            check_n_clips(args.n, name="--n")
        except ValueError as err:
            ap.error(str(err))  # prints usage and the message, exits with status 2
    t0 = time.time()
    if args.n is None:
        clips = load_all(DEFAULT_N_CLIPS, args.seed, verbose=True)
        print(f"cache: {_cache_file(None, DEFAULT_N_CLIPS, args.seed)}")
    else:
        clips = generate(args.n, args.seed)
    _summary(clips, time.time() - t0)
    if args.check:
        r = physics_report(clips)
        print("physics report:")
        for k, v in r.items():
            print(f"  {k:28s} {v:.4g}" if isinstance(v, float) else f"  {k:28s} {v}")
        m = motion_report(clips, by_type=True)
        print("motion report (does it move like people?):")
        for k, v in m.items():
            if k != "by_type":
                print(f"  {k:28s} {v:.4g}" if isinstance(v, float) else f"  {k:28s} {v}")
        cols = ("frozen_pct", "jerk_median", "knee_deg_p1", "elbow_deg_p1", "elbow_deg_p99", "wrist_speed_median",
                "pelvis_speed_p90", "slide_cm_p90")
        print(f"  {'type':14s}" + "".join(f"{c:>19s}" for c in cols))
        for kind, mk in m["by_type"].items():
            print(f"  {kind:14s}" + "".join(f"{mk[c]:19.3g}" for c in cols))


# Loaded from its file with importlib (as intermoe_min.data_module does), this module is not in
# sys.modules. Register it under its name, so worker processes can find `_make_range` by name and later
# loads reuse the in-memory cache. (A copy of the namespace: the functions and objects are the same.)
if __name__ != "__main__" and getattr(sys.modules.get(__name__), "_make_range", None) is not _make_range:
    _registered = types.ModuleType(__name__, __doc__)
    _registered.__dict__.update(globals())
    sys.modules[__name__] = _registered

if __name__ == "__main__":
    main()
