"""Doing something together: following, circling, handing an object over, pointing and looking, a dance
holding hands, a clapping game and a conversation with gestures. One builder each, as in greetings.py."""
import numpy as np

import intermoe_min as im

from .body import FPS, HAND_GAP, HAND_NAMES, SHOULDER, SIDE, SPINE3, UP, WRIST
from .life import band_noise
from .solve import Plan
from .staging import Built, Cast, guard_up, look_pitch, meet_distance, meet_points, two_plans
from .timing import fwd2, left2, ramp, smoothstep, to3, unit, window, wrap, yaw_to


def follow(c: Cast) -> Built:
    sc = c.scene()
    length = c.rng.uniform(1.8, 3.6)
    gap = c.rng.uniform(1.0, 1.7)
    delay = c.sec(c.rng.uniform(0.3, 0.9))
    k0, k1 = c.rng.uniform(-0.35, 0.35), c.rng.uniform(0.0, 0.3)
    wavelen, ph = c.rng.uniform(2.0, 5.0), c.rng.uniform(0, 2 * np.pi)
    # The leader's path, sampled every 1 cm of arc length from behind the follower's start.
    s_grid = np.arange(-gap - 0.2, length + 0.01, 0.01)
    curv = np.where(s_grid > 0, k0 + k1 * np.sin(2 * np.pi * s_grid / wavelen + ph), 0.0)
    heading = sc.h + np.cumsum(curv) * 0.01
    heading -= heading[np.searchsorted(s_grid, 0.0)] - sc.h
    xy = np.cumsum(fwd2(heading), 0) * 0.01
    xy += sc.o - xy[np.searchsorted(s_grid, 0.0)]
    v = c.rng.uniform(0.55, 0.8)
    tA0 = int(c.rng.integers(5, 25))
    dur = int(round(length / v * FPS * c.tempo))
    T = tA0 + dur + delay + c.sec(c.rng.uniform(0.4, 1.0))
    t = np.arange(T)
    sA = length * ramp(t, tA0, tA0 + dur)
    sB = length * ramp(t - delay, tA0, tA0 + dur) - gap

    def along(s):
        xz = np.stack([np.interp(s, s_grid, xy[:, 0]), np.interp(s, s_grid, xy[:, 1])], -1)
        return xz, np.interp(s, s_grid, heading)

    (xa, ya), (xb, yb) = along(sA), along(sB)
    pA = Plan(root_xz=xa, yaw=ya)
    pB = Plan(root_xz=xb, yaw=yb)
    pB.head_pitch = np.full(T, look_pitch(c.bB, c.bA, gap) * 0.5)
    turn = abs(k0) * length > 0.8
    walked = v / c.tempo                                       # the speed they really walk, m/s
    return Built(T, c.order(pA, pB), lambda tors: None, [tA0, tA0 + delay, tA0 + dur], [],
                 flags=dict(turn=turn, slow=walked < 0.55, fast=walked > 0.75), extra=dict(gap=round(float(gap), 2)))


def circle(c: Cast) -> Built:
    sc = c.scene()
    r = c.rng.uniform(0.7, 1.1)
    sgn = float(c.rng.choice([-1, 1]))                       # +1: counterclockwise seen from above
    sweep = c.rng.uniform(0.4, 1.0) * np.pi
    v = c.rng.uniform(0.4, 0.6)
    dur = int(round(r * sweep / v * FPS * c.tempo))
    dur = min(dur, 230)
    tA0 = int(c.rng.integers(5, 30))
    delay = c.sec(c.rng.uniform(0.2, 0.6))
    T = tA0 + delay + dur + c.sec(c.rng.uniform(0.3, 0.9))
    t = np.arange(T)
    C = sc.p(0.0, r)
    phi0 = sc.h + np.pi                                     # A starts at the scene origin
    phiA = phi0 + sgn * sweep * ramp(t, tA0, tA0 + dur)
    phiB = phi0 + np.pi + sgn * sweep * ramp(t, tA0 + delay, tA0 + delay + dur)
    xa, xb = C + r * fwd2(phiA), C + r * fwd2(phiB)
    pA = Plan(root_xz=xa, yaw=np.unwrap(yaw_to(xa, xb)), swing=10, step_thr=0.13)
    pB = Plan(root_xz=xb, yaw=np.unwrap(yaw_to(xb, xa)), swing=10, step_thr=0.13)
    guard = c.rng.random() < 0.5
    for p in (pA, pB):
        p.crouch = np.full(T, 0.06 if guard else 0.0)
        p.bend = np.full(T, 0.1 if guard else 0.0)

    def arms(tors):
        if not guard:
            return
        for p, tor in ((pA, tors[c.A]), (pB, tors[c.B])):
            guard_up(p, tor, ramp(t, 0, c.sec(0.4)))

    return Built(T, c.order(pA, pB), arms, [tA0, tA0 + delay],
                 [], direction="counterclockwise" if sgn > 0 else "clockwise", flags=dict(guard=guard))


def handover(c: Cast) -> Built:
    k = c.side(0.7)   # giver's hand
    kb = c.side(0.7)  # receiver's hand
    sc = c.scene()
    drop = c.rng.uniform(0.5, 0.7) * 0.5 * (c.bA.arm + c.bB.arm)
    lateral = abs(SIDE[k] * c.bA.shoulder[0] + SIDE[kb] * c.bB.shoulder[0])
    d = meet_distance(c.bA, c.bB, drop, lateral, 0.9, 0.08, 0.08)
    ap = c.approach(d, p_walk=0.7, p_both=0.2)
    t_ext = max(0, ap["t1"] - c.sec(c.rng.uniform(0.2, 0.5)))
    t_give = max(ap["t1"] + c.sec(c.rng.uniform(0.3, 0.7)), c.sec(0.8))
    tB_up = t_give - c.sec(c.rng.uniform(0.4, 0.6))
    t_rel = t_give + c.sec(c.rng.uniform(0.3, 0.6))
    t_done = t_rel + c.sec(0.7)
    T = t_done + c.sec(c.rng.uniform(0.3, 1.0))
    t, pA, pB, away = c.meet(T, sc, ap, tB_up - 5)
    for p, bs, bo in ((pA, c.bA, c.bB), (pB, c.bB, c.bA)):
        p.head_pitch = np.full(T, look_pitch(bs, bo, d) + 0.2)
        p.bend = 0.08 * window(t, t_give - c.sec(0.5), t_give, t_rel, t_done)

    def arms(tors):
        tA, tB = tors[c.A], tors[c.B]
        y = 0.5 * (tA["pos"][:, SHOULDER[k], 1] + tB["pos"][:, SHOULDER[kb], 1]) - drop
        Ma, Mb = meet_points(tA["pos"][:, SHOULDER[k]], tB["pos"][:, SHOULDER[kb]], c.bA.arm, c.bB.arm, y)
        carryA = tA["pos"][:, SHOULDER[k]] + c.bA.arm * (0.5 * tA["fwd"] - 0.65 * UP - 0.1 * SIDE[k] * tA["left"])
        carryB = tB["pos"][:, SHOULDER[kb]] + c.bB.arm * (0.5 * tB["fwd"] - 0.65 * UP - 0.1 * SIDE[kb] * tB["left"])
        pA.hand_target[:, k] = carryA + (Ma - carryA) * window(t, t_ext, t_give, t_rel, t_done)[:, None]
        pA.hand_w[:, k] = 1.0 - ramp(t, t_rel + c.sec(0.2), t_done + c.sec(0.2))
        pB.hand_target[:, kb] = Mb + (carryB - Mb) * ramp(t, t_rel, t_done)[:, None]
        pB.hand_w[:, kb] = ramp(t, tB_up, t_give)

    return Built(T, c.order(pA, pB), arms, [t_give, t_rel], [(t_give, t_rel, c.A, WRIST[k], c.B, WRIST[kb])],
                 hand=HAND_NAMES[k], flags=dict(walk=ap["walked"], away=away))


def point_look(c: Cast) -> Built:
    k = c.side(0.65)
    sc = c.scene()
    beside = c.rng.random() < 0.5
    if beside:   # B stands beside A (on either side), facing the same way
        xb, zb, yb = float(c.rng.choice([-1, 1])) * c.rng.uniform(0.8, 1.2), c.rng.uniform(-0.3, 0.3), 0.0
    else:        # B faces A
        xb, zb, yb = c.rng.uniform(-0.3, 0.3), c.rng.uniform(1.2, 2.0), np.pi
    beta = SIDE[k] * c.rng.uniform(0.1, 1.5)                   # pointing direction, toward the hand's side
    dist = c.rng.uniform(3.0, 8.0)
    P_xz = sc.p(dist * np.sin(beta), dist * np.cos(beta))
    P = to3(P_xz, c.rng.uniform(0.0, 2.0))
    t0 = int(c.rng.integers(5, 30))
    t1 = t0 + c.sec(c.rng.uniform(0.5, 0.8))
    t_react = t1 + c.sec(c.rng.uniform(0.1, 0.4))
    t_look = t_react + c.sec(c.rng.uniform(0.6, 1.0))
    t2 = max(t1, t_look) + c.sec(c.rng.uniform(0.5, 1.2))
    t3 = t2 + c.sec(0.6)
    T = t3 + c.sec(c.rng.uniform(0.2, 0.8))
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
        tA = tors[c.A]
        Sh = tA["pos"][:, SHOULDER[k]]
        aim = Sh + 0.97 * c.bA.arm * unit(P - Sh)
        pA.hand_target[:, k], pA.hand_w[:, k] = aim, wA
        pA.elbow_pole = np.stack([unit(SIDE[j] * tA["left"] - UP) for j in (0, 1)], 1)

    return Built(T, c.order(pA, pB), arms, [t1, t_look], [], hand=HAND_NAMES[k],
                 flags=dict(beside=beside), extra=dict(target=[round(float(v), 3) for v in P]))


def hold_hands(tors, ia, ib, bA, bB, y):
    """Both hand pairs joined, A's hand j with B's hand 1 - j (they face each other): wrist targets, each
    pair `HAND_GAP` apart. Returns the A and B targets (T, 2, 3)."""
    tA, tB = tors[ia], tors[ib]
    ta, tb = np.empty((len(y), 2, 3)), np.empty((len(y), 2, 3))
    for j in (0, 1):
        ta[:, j], tb[:, 1 - j] = meet_points(tA["pos"][:, SHOULDER[j]], tB["pos"][:, SHOULDER[1 - j]],
                                             bA.arm, bB.arm, y)
    return ta, tb


def dance(c: Cast) -> Built:
    """Holding both hands, the two sway to a beat and turn around each other, A leading."""
    sc = c.scene()
    drop = c.rng.uniform(0.35, 0.5) * 0.5 * (c.bA.arm + c.bB.arm)
    d = max(0.7, meet_distance(c.bA, c.bB, drop, abs(c.bA.shoulder[0] - c.bB.shoulder[0]), 0.8))
    t_join = c.sec(c.rng.uniform(0.4, 0.9))
    dur = c.sec(c.rng.uniform(3.0, 6.0))
    t_rel = t_join + dur
    T = t_rel + c.sec(c.rng.uniform(0.5, 1.0))
    t = np.arange(T)
    sgn = float(c.rng.choice([-1, 1]))                         # +1: counterclockwise seen from above
    turn = sgn * c.rng.uniform(0.5, 1.2) * 2 * np.pi * ramp(t, t_join + c.sec(0.3), t_rel - c.sec(0.3))
    beat = c.rng.uniform(0.45, 0.7) / c.tempo                    # Hz, one sway to each side per beat
    phase = 2 * np.pi * beat * (t - t_join) / FPS
    on = window(t, t_join - c.sec(0.3), t_join + c.sec(0.3), t_rel - c.sec(0.4), t_rel)
    C = sc.p(0.0, d / 2)
    phi = sc.h + np.pi + turn                                # A starts at the scene origin
    side = 0.07 * np.sin(phase) * on                         # the pair sways sideways together
    xa = C + (d / 2) * fwd2(phi) + side[:, None] * left2(phi)
    xb = C - (d / 2) * fwd2(phi) + side[:, None] * left2(phi)
    pA = Plan(root_xz=xa, yaw=np.unwrap(yaw_to(xa, xb)), swing=10, step_thr=0.1)
    pB = Plan(root_xz=xb, yaw=np.unwrap(yaw_to(xb, xa)), swing=10, step_thr=0.1)
    for p, bs, bo, sg in ((pA, c.bA, c.bB, 1.0), (pB, c.bB, c.bA, -1.0)):
        p.crouch = 0.025 * (1 - np.cos(2 * phase)) * on      # a bounce on every beat
        p.lean = sg * 0.06 * np.sin(phase) * on
        p.head_pitch = np.full(T, look_pitch(bs, bo, d))

    def arms(tors):
        y = 0.5 * (tors[c.A]["pos"][:, SHOULDER[0], 1] + tors[c.B]["pos"][:, SHOULDER[0], 1]) - drop
        pA.hand_target[:], pB.hand_target[:] = hold_hands(tors, c.A, c.B, c.bA, c.bB, y)
        pA.hand_w[:] = window(t, t_join - c.sec(0.8), t_join, t_rel, t_rel + c.sec(0.4))[:, None]  # A reaches out first
        pB.hand_w[:] = window(t, t_join - c.sec(0.4), t_join, t_rel, t_rel + c.sec(0.4))[:, None]

    contacts = [(t_join, t_rel, c.A, WRIST[0], c.B, WRIST[1]), (t_join, t_rel, c.A, WRIST[1], c.B, WRIST[0])]
    return Built(T, c.order(pA, pB), arms, [t_join, t_rel], contacts,
                 direction="counterclockwise" if sgn > 0 else "clockwise")


def clap_game(c: Cast) -> Built:
    """A clapping game face to face: each beat a clap of one's own hands, then both hands against the
    partner's; A raises the hands first."""
    sc = c.scene()
    drop = c.rng.uniform(0.3, 0.45) * 0.5 * (c.bA.arm + c.bB.arm)
    d = max(0.6, meet_distance(c.bA, c.bB, drop, abs(c.bA.shoulder[0] - c.bB.shoulder[0]), 0.72))
    ap = c.approach(d, p_walk=0.4, p_both=0.0)
    period = c.sec(c.rng.uniform(0.5, 0.7)) // 2 * 2               # frames per beat: own clap, then the partner's
    n = int(c.rng.integers(3, 7))
    t_up_a = max(ap["t1"] + c.sec(0.2), c.sec(0.5))
    t_up_b = t_up_a + c.sec(c.rng.uniform(0.15, 0.35))
    t0 = t_up_b + c.sec(0.4)
    claps = [t0 + i * period + period // 2 for i in range(n)]  # partner claps; own claps half a beat before
    t_end = claps[-1] + period // 4                          # the hands drop from the last "ready" pose
    T = t_end + c.sec(c.rng.uniform(0.6, 1.2))
    t = np.arange(T)
    pA, pB = two_plans(sc, t, ap)
    for p, bs, bo in ((pA, c.bA, c.bB), (pB, c.bB, c.bA)):
        p.head_pitch = np.full(T, look_pitch(bs, bo, d) + 0.1)

    def arms(tors):
        y = 0.5 * (tors[c.A]["pos"][:, SHOULDER[0], 1] + tors[c.B]["pos"][:, SHOULDER[0], 1]) - drop
        meet_a, meet_b = hold_hands(tors, c.A, c.B, c.bA, c.bB, y)
        for p, tor, meet, t_up in ((pA, tors[c.A], meet_a, t_up_a), (pB, tors[c.B], meet_b, t_up_b)):
            # own clap: both hands together in front of the chest, at the height of the partner claps
            reach = np.linalg.norm(meet[:, 0] - tor["pos"][:, SHOULDER[0]], axis=-1, keepdims=True)
            own = 0.5 * (meet[:, 0] + meet[:, 1]) - 0.45 * reach * tor["fwd"]
            own = np.stack([own + 0.5 * HAND_GAP * SIDE[j] * tor["left"] for j in (0, 1)], 1)
            ready = np.stack([own[:, j] + 0.12 * SIDE[j] * tor["left"] for j in (0, 1)], 1)
            times, poses = [0], [ready]
            for tc in claps:
                times += [tc - period // 2, tc - period // 4, tc, tc + period // 4]
                poses += [own, ready, meet, ready]
            idx = np.searchsorted(np.array(times), t, side="right") - 1      # the keyframe each frame follows
            nxt = np.minimum(idx + 1, len(times) - 1)
            t_a, t_b = np.array(times)[idx], np.array(times)[nxt]
            u = smoothstep(np.where(t_b > t_a, (t - t_a) / np.maximum(t_b - t_a, 1), 0.0))[:, None, None]
            P = np.stack(poses)                                                # (K, T, 2, 3)
            p.hand_target[:] = P[idx, t] + (P[nxt, t] - P[idx, t]) * u
            p.hand_w[:] = window(t, t_up, t_up + c.sec(0.4), t_end, t_end + c.sec(0.5))[:, None]
            p.elbow_pole = np.stack([unit(-0.6 * UP + 0.6 * SIDE[j] * tor["left"]) for j in (0, 1)], 1)

    contacts = [(tc, tc, c.A, WRIST[j], c.B, WRIST[1 - j]) for tc in claps for j in (0, 1)]
    return Built(T, c.order(pA, pB), arms, [claps[0], claps[-1]], contacts,
                 flags=dict(walk=ap["walked"]), extra=dict(claps=n))


def conversation(c: Cast) -> Built:
    """Face to face, A talks with gestures while B listens and nods, then B answers, sometimes A again."""
    sc = c.scene()
    d = c.rng.uniform(1.0, 1.5)
    ap = c.approach(d, p_walk=0.35, p_both=0.2)
    n_turns = int(c.rng.integers(2, 4))
    starts, t0 = [], max(ap["t1"] + c.sec(0.3), c.sec(0.4))
    for _ in range(n_turns):
        starts.append(t0)
        t0 += c.sec(c.rng.uniform(1.5, 2.8)) + c.sec(c.rng.uniform(0.2, 0.5))
    T = min(t0 + c.sec(c.rng.uniform(0.3, 0.8)), im.MAX_FRAMES)
    t = np.arange(T)
    pA, pB = two_plans(sc, t, ap)
    ends = [min(s2 - c.sec(0.2), T - 1) for s2 in starts[1:]] + [T - c.sec(0.3)]
    speaker = [(c.A if i % 2 == 0 else c.B) for i in range(n_turns)]
    k = c.side(0.7)  # the hand that gestures most, the same for both
    talking = {}
    for p, bs, bo, who in ((pA, c.bA, c.bB, c.A), (pB, c.bB, c.bA, c.B)):
        talk = sum(window(t, s0, s0 + c.sec(0.3), e0 - c.sec(0.3), e0) for s0, e0, sp in zip(starts, ends, speaker)
                   if sp == who)
        listen = sum(window(t, s0, s0 + c.sec(0.3), e0 - c.sec(0.3), e0) for s0, e0, sp in zip(starts, ends, speaker)
                     if sp != who)
        nod = 0.12 * np.maximum(np.sin(2 * np.pi * c.rng.uniform(0.5, 0.9) * t / FPS), 0) ** 2
        p.head_pitch = np.full(T, look_pitch(bs, bo, d)) + listen * nod
        p.head_yaw = talk * 0.1 * band_noise(c.rng, T, 0.2, 0.6)
        p.bend = 0.04 * talk
        talking[who] = talk

    def arms(tors):
        for p, tor, b, who in ((pA, tors[c.A], c.bA, c.A), (pB, tors[c.B], c.bB, c.B)):
            s = b.height / 1.7
            base = tor["pos"][:, SPINE3] + 0.3 * s * tor["fwd"] - 0.12 * s * UP
            beats = 0.07 * s * band_noise(c.rng, T, 0.8, 2.0, (2, 3))                        # (T, 2, 3)
            hands = np.stack([base + (0.12 + 0.05 * j) * SIDE[j] * s * tor["left"] for j in (0, 1)], 1) + beats
            p.hand_target[:] = hands
            both = 0.5 + 0.5 * (c.rng.random() < 0.5)          # sometimes only the main hand talks
            p.hand_w[:] = talking[who][:, None] * np.array([both if j != k else 1.0 for j in (0, 1)])[None]
            p.elbow_pole = np.stack([unit(-0.7 * UP + 0.5 * SIDE[j] * tor["left"] - 0.2 * tor["fwd"])
                                     for j in (0, 1)], 1)

    return Built(T, c.order(pA, pB), arms, [starts[0], starts[1]], [], hand=HAND_NAMES[k],
                 flags=dict(walk=ap["walked"], again=n_turns > 2 and starts[2] < T - c.sec(1.0)))
