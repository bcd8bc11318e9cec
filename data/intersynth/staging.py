"""What the interaction builders share: where hands meet and where they land on a body, guards and kicks,
the approach that brings two people together, and `Cast`, the context every builder starts from."""
from dataclasses import dataclass, field

import numpy as np

from .body import FPS, HAND_CLEARANCE, HAND_GAP, HEAD, HIP, NECK, PELVIS, SHOULDER, SIDE, TOE, TORSO_RADIUS, UP
from .solve import Plan
from .timing import Scene, keyframes, ramp, unit


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
    u = unit((Sb - Sa) * np.array([1.0, 0.0, 1.0]))
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
    pel, neck = tor["pos"][:, PELVIS], tor["pos"][:, NECK]
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
    head, b = tor["pos"][:, HEAD], tor["body"]
    s = b.height / 1.7
    base = head + 0.27 * s * tor["fwd"] - 0.16 * s * UP
    bob = 0.015 * s * np.sin(2 * np.pi * 1.6 * b.tempo * np.arange(tor["T"])[:, None] / FPS + np.array([0.0, 1.5]))
    return np.stack([base + SIDE[k] * 0.11 * s * tor["left"] + bob[:, k, None] * UP for k in (0, 1)], 1)


def guard_up(plan, tor, w):
    """Fists up (`guard_targets`), elbows down and out, as much as w (T,) says."""
    plan.hand_target[:] = guard_targets(tor)
    plan.hand_w[:] = w[:, None]
    plan.elbow_pole = np.stack([unit(-0.8 * UP + 0.5 * SIDE[j] * tor["left"] - 0.2 * tor["fwd"]) for j in (0, 1)], 1)


def kick_reach(bA, bB):
    """A front kick of A's on B's block: the block's height and reach in front of B (B's hands sit in front
    of the belly, or lower if A is much shorter: a kick stays at most a little above A's own hip), how far
    B's hands fall short of it standing upright (B bends and crouches to make it up), and the pelvis-to-pelvis
    distance at which A's toes just reach it. Returns (block_y, block_fwd, short, d)."""
    hipA_y = bA.pelvis_y + bA.offsets[HIP[0], 1]
    block_y = min(bB.pelvis_y + 0.2 * bB.height / 1.7, hipA_y + 0.25)
    block_fwd = 0.3 * bB.height / 1.7
    short = max(0.0, bB.shoulder_y - np.sqrt((0.9 * bB.arm) ** 2 - block_fwd ** 2) - block_y)
    R = 0.92 * (bA.leg + np.linalg.norm(bA.offsets[TOE[0]]))
    return block_y, block_fwd, short, float(np.sqrt(max(R * R - (block_y - hipA_y) ** 2, 0.2)) + block_fwd)


def block_the_kick(pA, pB, tB, bB, t, kb, block_y, block_fwd, w):
    """B's hands go to the block as much as w (T,) says; A's kick (pA.kick) aims where B's hand kb is at impact."""
    base = tB["root"] * np.array([1, 0, 1]) + block_y * UP + block_fwd * tB["fwd"]
    block = np.stack([clamp_reach(tB["pos"][:, SHOULDER[j]], base + SIDE[j] * 0.05 * tB["left"], bB.arm, 0.97)
                      for j in (0, 1)], 1)                    # where B's hands can really get to
    bw = w[:, None, None]
    pB.hand_target[:] = pB.hand_target + (block - pB.hand_target) * bw
    pB.elbow_pole = pB.elbow_pole + (np.stack([unit(SIDE[j] * tB["left"] - 0.3 * UP) for j in (0, 1)], 1)
                                     - pB.elbow_pole) * bw
    k2, k3 = pA.kick["times"][2:4]
    pA.kick["toe"] = (block[:, kb] + (HAND_GAP - 0.005) * tB["fwd"])[np.clip(t, k2, k3)]


def clamp_reach(S, target, L, frac=0.96):
    """Move target toward shoulder S so it lies within frac * L of it."""
    d = target - S
    n = np.linalg.norm(d, axis=-1, keepdims=True)
    return S + d * np.minimum(1.0, frac * L / np.maximum(n, 1e-9))


@dataclass
class Built:
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


def two_plans(sc, t, ap, latB=0.0, yawA=0.0, yawB=np.pi):
    """Plans for A walking along the scene's +z axis toward B (who may step forward too)."""
    zA = keyframes(t, [ap["t0"], ap["t1"]], np.array(ap["zA"]))
    zB = keyframes(t, [ap["t0"] + (ap["t1"] - ap["t0"]) // 4, ap["t1"]], np.array(ap["zB"]))
    T = len(t)
    pA = Plan(root_xz=sc.p(np.zeros(T), zA), yaw=np.full(T, sc.yaw(yawA)))
    pB = Plan(root_xz=sc.p(np.full(T, latB), zB), yaw=np.full(T, sc.yaw(yawB)))
    return pA, pB


def look_pitch(b_self, b_other, dist):
    """Head nod to look at the other's face from `dist` metres (positive = looking down)."""
    return float(np.clip(0.8 * np.arctan2(b_self.height - b_other.height, max(dist, 0.3)), -0.35, 0.35))


class Cast:
    """Who acts in a clip, the context every builder starts from: the clip's rng, the two bodies, the
    initiator `ini` and the tempo (a stretch of every duration). A is the initiator (person `ini`), B the other;
    bA, bB their bodies. The rng is drawn from in the order the builder asks, so a builder calls `scene()`
    and `side()` where its draws belong."""

    def __init__(self, rng: np.random.Generator, bodies: list, ini: int, tempo: float):
        self.rng, self.bodies, self.ini, self.tempo = rng, bodies, ini, tempo
        self.A, self.B = ini, 1 - ini
        self.bA, self.bB = bodies[self.A], bodies[self.B]

    def sec(self, x) -> int:
        """Seconds -> frames at 30 fps, stretched by the clip's tempo."""
        return max(1, int(round(x * FPS * self.tempo)))

    def scene(self) -> Scene:
        """The clip's floor frame (a random origin and heading)."""
        return Scene(self.rng)

    def side(self, p_right: float) -> int:
        """A hand or foot index: 1 (right) with probability p_right, else 0 (left)."""
        return 1 if self.rng.random() < p_right else 0

    def order(self, pA, pB) -> list:
        """Plans indexed by person: the initiator A is person `ini`."""
        return [pA, pB] if self.ini == 0 else [pB, pA]

    def meet(self, T: int, sc, ap, t_turn: int, latB: float = 0.0):
        """A walks to B (`two_plans` of the `approach` ap) over frames t = 0..T-1 -> (t, plan A, plan B, away): B
        sometimes starts turned away and faces A by t_turn (`turned_away`)."""
        t = np.arange(T)
        pA, pB = two_plans(sc, t, ap, latB=latB)
        return t, pA, pB, self.turned_away(t, pB, sc, max(t_turn, 0))

    def approach(self, d_final, p_walk=0.75, p_both=0.3, t_start=(0, 20)):
        """A (initiator) walks toward B until they are d_final apart; sometimes B walks to meet A.

        Returns scene z coordinates of A and B before/after and the walk's frame window."""
        extra = float(self.rng.uniform(0.5, 2.2)) if self.rng.random() < p_walk else 0.0
        share_b = float(self.rng.uniform(0.3, 0.5)) if extra > 0 and self.rng.random() < p_both else 0.0
        v = self.rng.uniform(0.55, 0.8)               # mean speed, m/s (minimum-jerk peak is 1.9x this)
        t0 = int(self.rng.integers(*t_start))
        t1 = t0 + (int(round(extra / v * FPS * self.tempo)) if extra > 0 else 0)
        zA = (0.0, extra * (1 - share_b))
        zB = (extra + d_final, extra * (1 - share_b) + d_final)
        return dict(t0=t0, t1=t1, zA=zA, zB=zB, walked=extra > 0, both=share_b > 0)

    def turned_away(self, t, plan, sc, t_turn_end, p_away=0.25):
        """Sometimes B starts facing elsewhere and turns to A just before t_turn_end. Returns True if so."""
        if self.rng.random() >= p_away or t_turn_end < self.sec(0.8):
            return False
        off = self.rng.choice([-1, 1]) * self.rng.uniform(0.8, 2.4)
        t1 = t_turn_end
        t0 = max(0, t1 - self.sec(self.rng.uniform(0.6, 1.0)))
        plan.yaw = plan.yaw + off * (1 - ramp(t, t0, t1))
        return True
