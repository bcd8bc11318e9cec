"""Contests: a punch dodged, a push, a tug of war, a kick blocked, and the paper's fencing and taekwondo
sparring. One builder each, as in greetings.py."""
import numpy as np
from scipy.ndimage import gaussian_filter1d

import intermoe_min as im

from .body import FPS, HAND_CLEARANCE, HAND_NAMES, HEAD, SHOULDER, SIDE, SPINE3, TOE, TORSO_RADIUS, UP, WRIST
from .solve import Plan
from .staging import (Built, Cast, block_the_kick, clamp_reach, guard_targets, guard_up, kick_reach, look_pitch,
                      meet_distance, meet_points, on_torso, two_plans)
from .timing import fwd2, keyframes, ramp, unit, window, yaw_to


def punch_dodge(c: Cast) -> Built:
    k = c.side(0.65)
    sc = c.scene()
    d0 = c.rng.uniform(0.95, 1.2)
    step = c.rng.uniform(0.15, 0.3)
    dodge = str(c.rng.choice(["back", "duck", "side"]))
    t_guard = int(c.rng.integers(0, 15))
    t_p0 = t_guard + c.sec(c.rng.uniform(0.5, 1.8))
    t_hit = t_p0 + int(c.rng.integers(6, 9))                  # fist extends in ~0.2-0.3 s
    t_back = t_hit + int(c.rng.integers(8, 12))
    t_end_dodge = t_hit + c.sec(c.rng.uniform(0.4, 0.7))
    T = t_end_dodge + c.sec(c.rng.uniform(0.5, 1.2))
    t = np.arange(T)
    zA = keyframes(t, [t_p0 - 4, t_hit], [0.0, step])
    dz_b = {"back": 0.3, "duck": 0.05, "side": 0.05}[dodge]
    zB = d0 + dz_b * window(t, t_hit - 6, t_hit + 4, t_end_dodge, t_end_dodge + c.sec(0.6))
    side_sign = float(c.rng.choice([-1, 1]))
    latB = (0.12 * side_sign * window(t, t_hit - 7, t_hit, t_end_dodge, t_end_dodge + c.sec(0.5))
            if dodge == "side" else 0.0)
    pA = Plan(root_xz=sc.p(np.zeros(T), zA), yaw=np.full(T, sc.yaw(0.0)))
    pB = Plan(root_xz=sc.p(-latB * np.ones(T), zB), yaw=np.full(T, sc.yaw(np.pi)), swing=9)
    pA.twist = SIDE[1 - k] * 0.35 * window(t, t_p0 - 2, t_hit, t_hit + 2, t_back + 4)  # punching side fwd
    pA.bend = 0.1 * window(t, t_p0 - 2, t_hit, t_hit + 2, t_back + 4)
    dod = window(t, t_hit - 8, t_hit - 1, t_end_dodge, t_end_dodge + c.sec(0.5))
    if dodge == "back":
        pB.bend = -0.35 * dod
    elif dodge == "duck":
        pB.crouch, pB.bend = 0.2 * c.bB.height / 1.7 * dod, 0.45 * dod
    else:
        pB.lean = side_sign * 0.35 * dod
        pB.head_yaw = -side_sign * 0.2 * dod
    for p in (pA, pB):
        p.elbow_pole = np.zeros((T, 2, 3))

    def arms(tors):
        tA, tB = tors[c.A], tors[c.B]
        guard_w = ramp(t, t_guard, t_guard + c.sec(0.4))
        for p, tor in ((pA, tA), (pB, tB)):
            p.hand_target[:] = guard_targets(tor)
            p.hand_w[:] = guard_w[:, None]
            for j in (0, 1):
                p.elbow_pole[:, j] = unit(-0.8 * UP + 0.5 * SIDE[j] * tor["left"] - 0.2 * tor["fwd"])
        Sh = tA["pos"][:, SHOULDER[k]]
        aim = tB["pos"][t_p0 - 1, HEAD]                        # B's head before the dodge starts
        punch = clamp_reach(Sh, np.broadcast_to(aim, Sh.shape), c.bA.arm, 0.97)
        ext = window(t, t_p0, t_hit, t_hit + 2, t_back)[:, None]
        pA.hand_target[:, k] = pA.hand_target[:, k] + (punch - pA.hand_target[:, k]) * ext

    return Built(T, c.order(pA, pB), arms, [t_hit], [], hand=HAND_NAMES[k],
                 flags=dict(dodge=dodge))


def push(c: Cast) -> Built:
    sc = c.scene()
    y_chest = min(c.bB.shoulder_y - 0.12, c.bA.shoulder_y - 0.12)   # where the hands land (standing heights)
    dy = c.bA.shoulder_y - y_chest
    reach_h = np.sqrt(max((0.7 * c.bA.arm) ** 2 - dy * dy, 0.04))
    d = reach_h + TORSO_RADIUS + HAND_CLEARANCE + 0.03
    ap = c.approach(d + 0.15, p_walk=0.6, p_both=0.0)
    t_push = max(ap["t1"] + c.sec(c.rng.uniform(0.3, 0.8)), c.sec(0.7) + 4)
    t_touch = t_push - 3
    back = c.rng.uniform(0.5, 0.9)
    t_stop = t_push + c.sec(c.rng.uniform(0.9, 1.2))
    T = t_stop + c.sec(c.rng.uniform(0.4, 1.2))
    t = np.arange(T)
    pA, pB = two_plans(sc, t, ap)
    zA = keyframes(t, [ap["t0"], ap["t1"], t_touch - 6, t_push + 2], [ap["zA"][0], ap["zA"][1],
                                                                       ap["zA"][1], ap["zA"][1] + 0.15])
    pA.root_xz = sc.p(np.zeros(T), zA)
    zB = ap["zB"][1] + back * ramp(t, t_push - 1, t_stop)
    pB.root_xz = sc.p(np.zeros(T), zB)
    pB.swing, pB.step_thr = 9, 0.1
    pA.bend = 0.15 * window(t, t_touch - 8, t_push, t_push + 3, t_push + c.sec(0.6))
    pB.bend = -0.3 * window(t, t_touch, t_push + 3, t_push + 4, t_push + c.sec(0.45)) \
        + 0.12 * window(t, t_push + c.sec(0.35), t_push + c.sec(0.6), t_stop - 4, t_stop + c.sec(0.3))
    pB.head_pitch = 0.25 * window(t, t_push, t_push + 4, t_push + 8, t_push + c.sec(0.6))
    for p, bs, bo in ((pA, c.bA, c.bB), (pB, c.bB, c.bA)):
        p.head_pitch = p.head_pitch + look_pitch(bs, bo, d)

    def arms(tors):
        tA, tB = tors[c.A], tors[c.B]
        chest = np.stack([on_torso(tB, np.full(T, y_chest + (tB["root"][:, 1] - c.bB.pelvis_y)), a)
                          for a in (-0.6, 0.6)], 1)  # B's right then left side of the chest (T, 2, 3)
        # A's left hand goes to B's right chest (they face each other), A's right to B's left. The hands
        # follow B's chest as B is thrown back, while A's arms relax (hand_w falls).
        pA.hand_target[:] = chest
        pA.hand_w[:] = window(t, t_touch - c.sec(0.45), t_touch, t_push, t_push + c.sec(0.5))[:, None]
        pA.elbow_pole = np.stack([unit(-0.6 * UP + 0.6 * SIDE[j] * tA["left"] - 0.3 * tA["fwd"])
                                  for j in (0, 1)], 1)
        flail = np.stack([tB["pos"][:, SHOULDER[j]] + c.bB.arm * (0.55 * tB["fwd"] + 0.1 * UP
                                                          + 0.45 * SIDE[j] * tB["left"]) for j in (0, 1)], 1)
        pB.hand_target[:] = flail
        pB.hand_w[:] = window(t, t_push - 1, t_push + 10, t_push + c.sec(0.6), t_stop + c.sec(0.3))[:, None]

    contacts = [(t_touch, t_push, c.A, WRIST[0], c.B, SPINE3), (t_touch, t_push, c.A, WRIST[1], c.B, SPINE3)]
    return Built(T, c.order(pA, pB), arms, [t_push, t_stop], contacts,
                 flags=dict(walk=ap["walked"]))


def tug(c: Cast) -> Built:
    sc = c.scene()
    lean = c.rng.uniform(0.2, 0.35)
    drop = 0.2
    rope = c.rng.random() < 0.5                                # both grip one rope (the paper's), else each other
    d = c.rng.uniform(1.8, 2.8) if rope else meet_distance(c.bA, c.bB, drop, 0.0, 0.93, -lean, -lean)
    ap = c.approach(d, p_walk=0.5, p_both=0.3)
    t_grip = max(ap["t1"] + c.sec(c.rng.uniform(0.3, 0.6)), c.sec(0.8))
    t_lean = t_grip + c.sec(0.5)
    n_osc, per = 1 + int(c.rng.random() < 0.4), c.sec(c.rng.uniform(0.8, 1.2))
    t_win0 = t_lean + n_osc * per
    pull = c.rng.uniform(0.5, 1.0)
    t_win1 = t_win0 + c.sec(c.rng.uniform(1.1, 1.5))
    t_let = t_win1 + c.sec(0.2)
    T = t_let + c.sec(0.5) + c.sec(c.rng.uniform(0.2, 0.8))
    t = np.arange(T)
    pA, pB = two_plans(sc, t, ap, latB=float(c.rng.choice([-1, 1])) * 0.1)  # feet not in one line
    shift = -0.1 * np.sin(2 * np.pi * (t - t_lean) / per) * window(t, t_lean, t_lean + 6, t_win0 - 6, t_win0) \
        - pull * ramp(t, t_win0, t_win1)
    pA.root_xz = pA.root_xz + shift[:, None] * fwd2(sc.h)
    pB.root_xz = pB.root_xz + shift[:, None] * fwd2(sc.h)
    leanw = window(t, t_grip, t_lean, t_win1, t_let + c.sec(0.4))
    pA.bend = -lean * leanw
    pB.bend = -lean * leanw * (1 - ramp(t, t_win0, t_win0 + c.sec(0.4))) + 0.12 * window(
        t, t_win0, t_win0 + c.sec(0.4), t_win1, t_let + c.sec(0.4))
    pA.crouch = pB.crouch = 0.05 * leanw
    pB.swing, pB.step_thr = 10, 0.1

    front = int(c.rng.integers(2))                             # with a rope: the hand nearer the other person

    def arms(tors):
        tA, tB = tors[c.A], tors[c.B]
        if rope:  # both hands of both on one straight line between them, above the hips where arms reach it
            y = 0.5 * (tA["root"][:, 1] + tB["root"][:, 1]) + 0.2
            for p, tor, other, b in ((pA, tA, tB, c.bA), (pB, tB, tA, c.bB)):
                u = unit((other["root"] - tor["root"]) * np.array([1.0, 0.0, 1.0]))
                for j in (0, 1):
                    on_line = tor["root"] * np.array([1.0, 0.0, 1.0]) + y[:, None] * UP \
                        + (0.3 if j == front else 0.12) * b.height / 1.7 * u
                    p.hand_target[:, j] = clamp_reach(tor["pos"][:, SHOULDER[j]], on_line, b.arm, 0.96)
        else:
            for j in (0, 1):  # A's left hand holds B's right hand and vice versa
                Sa, Sb = tA["pos"][:, SHOULDER[j]], tB["pos"][:, SHOULDER[1 - j]]
                y = 0.5 * (Sa[:, 1] + Sb[:, 1]) - drop
                Ma, Mb = meet_points(Sa, Sb, c.bA.arm, c.bB.arm, y, reach=0.95)
                pA.hand_target[:, j], pB.hand_target[:, 1 - j] = Ma, Mb
        pA.hand_w[:] = pB.hand_w[:] = window(t, t_grip - c.sec(0.5), t_grip, t_let, t_let + c.sec(0.5))[:, None]
        for p, tor in ((pA, tA), (pB, tB)):
            p.elbow_pole = np.stack([unit(SIDE[j] * tor["left"] - UP) for j in (0, 1)], 1)

    contacts = [] if rope else [(t_grip, t_let, c.A, WRIST[0], c.B, WRIST[1]),
                                (t_grip, t_let, c.A, WRIST[1], c.B, WRIST[0])]
    return Built(T, c.order(pA, pB), arms, [t_grip, t_win0, t_win1], contacts,
                 flags=dict(walk=ap["walked"], rope=rope), extra=dict(rope=rope),
                 holds=[(t_grip, t_let)] if rope else [])


def kick_block(c: Cast) -> Built:
    k = c.side(0.65)  # kicking leg
    kb = 1 - k        # B blocks with the hand on that side
    sc = c.scene()
    block_y, block_fwd, short, d = kick_reach(c.bA, c.bB)
    d += 0.04
    t_guard = int(c.rng.integers(0, 15))
    k0 = t_guard + c.sec(c.rng.uniform(0.5, 1.5))
    k1 = k0 + int(c.rng.integers(6, 9))
    k2 = k1 + int(c.rng.integers(6, 9))
    k3 = k2 + 2
    k4 = k3 + int(c.rng.integers(6, 8))
    k5 = k4 + int(c.rng.integers(6, 9))
    t_step = k3 + 2
    T = k5 + c.sec(c.rng.uniform(0.5, 1.2))
    t = np.arange(T)
    pA = Plan(root_xz=sc.p(np.zeros(T), np.zeros(T)), yaw=np.full(T, sc.yaw(0.0)), busy=(k0 - 2, k5 + 2))
    back = c.rng.uniform(0.15, 0.35)
    pB = Plan(root_xz=sc.p(np.zeros(T), d + back * ramp(t, t_step, t_step + c.sec(0.6))),
              yaw=np.full(T, sc.yaw(np.pi)), swing=10)
    pA.bend = -0.22 * window(t, k0, k2, k3, k5)
    duck = window(t, k1 - 4, k2, k3, k5 + c.sec(0.3))
    pB.bend = (0.15 + min(0.4, 1.5 * short)) * duck
    pB.crouch = min(0.15, 0.6 * short) * duck
    pB.head_pitch = np.full(T, 0.3)
    pA.kick = dict(foot=k, times=(k0, k1, k2, k3, k4, k5), toe=None, pitch=-0.45)

    def arms(tors):
        tA, tB = tors[c.A], tors[c.B]
        for p, tor in ((pA, tA), (pB, tB)):
            guard_up(p, tor, ramp(t, t_guard, t_guard + c.sec(0.4)))
        block_the_kick(pA, pB, tB, c.bB, t, kb, block_y, block_fwd, window(t, k1 - 4, k2, k3 + 2, k5 + c.sec(0.3)))

    return Built(T, c.order(pA, pB), arms, [k2], [(k2, k3, c.A, TOE[k], c.B, WRIST[kb])],
                 hand=HAND_NAMES[k])


def fencing(c: Cast) -> Built:
    """Fencing, the paper's scenario: both en garde side-on, A advances while B retreats, then A lunges at
    B's chest with the sword arm straight, B parries across, A recovers. The blades (not modelled) make
    up the distance between the hands: no joints touch."""
    k = c.side(0.8)  # the sword hand, the same for both
    sc = c.scene()
    d0 = c.rng.uniform(2.0, 2.5)
    side_on = (1.0 if k == 1 else -1.0) * c.rng.uniform(0.8, 1.1)  # the sword side turned toward the other
    n_adv, step, lunge = int(c.rng.integers(1, 3)), c.rng.uniform(0.25, 0.35), c.rng.uniform(0.45, 0.65)
    t_guard = c.sec(c.rng.uniform(0.3, 0.6))
    tA, zA, zB = [0, t_guard], [0.0, 0.0], [d0, d0]
    for _ in range(n_adv):  # A advances a step, B retreats a step a moment later
        t0 = tA[-1] + c.sec(c.rng.uniform(0.3, 0.6))
        tA += [t0, t0 + c.sec(0.4)]
        zA += [zA[-1], zA[-1] + step]
        zB += [zB[-1], zB[-1] + step * c.rng.uniform(0.7, 1.0)]
    t_l0 = tA[-1] + c.sec(c.rng.uniform(0.3, 0.7))
    t_l1 = t_l0 + c.sec(0.3)                                     # lunge fully extended
    t_r0 = t_l1 + c.sec(c.rng.uniform(0.25, 0.45))
    t_r1 = t_r0 + c.sec(0.5)                                     # back en garde
    T = t_r1 + c.sec(c.rng.uniform(0.4, 0.9))
    t = np.arange(T)
    za = keyframes(t, tA + [t_l0, t_l1, t_r0, t_r1], zA + [zA[-1], zA[-1] + lunge, zA[-1] + lunge, zA[-1]])
    zb = keyframes(t, [x + 4 for x in tA], zB)
    pA = Plan(root_xz=sc.p(np.zeros(T), za), yaw=np.full(T, sc.yaw(side_on)), swing=9, step_thr=0.1)
    pB = Plan(root_xz=sc.p(np.zeros(T), zb), yaw=np.full(T, sc.yaw(np.pi + side_on)), swing=9, step_thr=0.1)
    lunging = window(t, t_l0, t_l1, t_r0, t_r1)
    guard = ramp(t, 0, t_guard)
    for p, bs, bo in ((pA, c.bA, c.bB), (pB, c.bB, c.bA)):  # en garde the knees keep springing a little
        spring = 0.012 * (1 - np.cos(2 * np.pi * c.rng.uniform(1.0, 1.5) * t / FPS)) * (1 - lunging)
        p.crouch = 0.09 * guard + spring + (0.08 * lunging if p is pA else 0.0)
        p.head_yaw = np.full(T, -side_on)                    # looking at the opponent over the sword shoulder
        p.head_pitch = np.full(T, look_pitch(bs, bo, d0))
    pA.bend = 0.12 * lunging
    pB.bend = -0.08 * lunging                                # B draws back from the point

    def arms(tors):
        for p, tor, b, other, attack in ((pA, tors[c.A], c.bA, tors[c.B], lunging),
                                         (pB, tors[c.B], c.bB, tors[c.A], np.zeros(T))):
            s = b.height / 1.7
            u = unit((other["root"] - tor["root"]) * np.array([1.0, 0.0, 1.0]))   # toward the opponent
            Sw, Sb = tor["pos"][:, SHOULDER[k]], tor["pos"][:, SHOULDER[1 - k]]
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
            p.elbow_pole = np.stack([unit(-0.8 * UP + 0.4 * SIDE[j] * tor["left"]) for j in (0, 1)], 1)

    return Built(T, c.order(pA, pB), arms, [t_l1, t_r1], [], hand=HAND_NAMES[k],
                 flags=dict(advance=n_adv > 0))


def taekwondo(c: Cast) -> Built:
    """Taekwondo sparring, the paper's scenario (up to 10 s): guards up, the two circle each other, A throws
    a kick that B blocks with the hands, and they circle on."""
    k = c.side(0.65)  # kicking leg
    kb = 1 - k        # B blocks with the hand on that side
    sc = c.scene()
    block_y, block_fwd, short, d = kick_reach(c.bA, c.bB)
    d -= 0.02                                                # guard stance: a little closer than kick_block
    sgn = float(c.rng.choice([-1, 1]))                         # +1: counterclockwise seen from above
    v = c.rng.uniform(0.3, 0.5)                                # circling speed, m/s
    t_c0 = int(c.rng.integers(0, 10))
    c1 = c.sec(c.rng.uniform(1.2, 3.0))
    k0 = t_c0 + c1 + 12                                      # both settle before the kick
    k1 = k0 + int(c.rng.integers(6, 9))
    k2 = k1 + int(c.rng.integers(6, 9))
    k3 = k2 + 2
    k4 = k3 + int(c.rng.integers(6, 8))
    k5 = k4 + int(c.rng.integers(6, 9))
    c2 = max(0, min(c.sec(c.rng.uniform(1.0, 3.0)), im.MAX_FRAMES - 30 - (k5 + 12)))
    T = min(k5 + 12 + c2 + c.sec(c.rng.uniform(0.2, 0.5)), im.MAX_FRAMES)
    t = np.arange(T)
    w = v / (d / 2) / FPS                                    # radians per frame
    phi = sc.h + np.pi + sgn * w * (np.clip(t - t_c0, 0, c1) + np.clip(t - (k5 + 12), 0, c2))
    phi = gaussian_filter1d(phi, 3.0, mode="nearest")        # start and stop like people, not machines
    C = sc.p(0.0, d / 2)
    xa, xb = C + (d / 2) * fwd2(phi), C - (d / 2) * fwd2(phi)
    pA = Plan(root_xz=xa, yaw=np.unwrap(yaw_to(xa, xb)), swing=10, step_thr=0.13, busy=(k0 - 2, k5 + 2))
    pB = Plan(root_xz=xb, yaw=np.unwrap(yaw_to(xb, xa)), swing=10, step_thr=0.13, busy=(k0 - 2, k3 + 2))
    duck = window(t, k1 - 4, k2, k3, k5 + c.sec(0.3))
    pA.crouch, pA.bend = np.full(T, 0.06), 0.1 - 0.32 * window(t, k0, k2, k3, k5)
    pB.crouch = 0.06 + min(0.15, 0.6 * short) * duck
    pB.bend = 0.1 + (0.15 + min(0.4, 1.5 * short)) * duck
    pB.head_pitch = np.full(T, 0.25)
    pA.kick = dict(foot=k, times=(k0, k1, k2, k3, k4, k5), toe=None, pitch=-0.45)

    def arms(tors):
        tA, tB = tors[c.A], tors[c.B]
        for p, tor in ((pA, tA), (pB, tB)):
            guard_up(p, tor, ramp(t, 0, c.sec(0.4)))
        block_the_kick(pA, pB, tB, c.bB, t, kb, block_y, block_fwd, window(t, k1 - 4, k2, k3 + 2, k5 + c.sec(0.3)))

    return Built(T, c.order(pA, pB), arms, [t_c0, k2], [(k2, k3, c.A, TOE[k], c.B, WRIST[kb])],
                 hand=HAND_NAMES[k], direction="counterclockwise" if sgn > 0 else "clockwise")
