"""Greetings and touches between two people: a handshake, a high five, a hug, waving from afar, bows, a
pat on the shoulder, and a handshake that ends in walking off together. One builder each: where the two
stand, how they move, where hands go (`Cast` gives the people, `Built` is what a builder returns)."""
import numpy as np

import intermoe_min as im

from .body import FPS, HAND_NAMES, NECK, SHOULDER, SHOULDER_RADIUS, SIDE, SPINE3, UP, WRIST
from .solve import Plan
from .staging import Built, Cast, look_pitch, meet_distance, meet_points, on_torso, reachable_on_torso, two_plans
from .timing import fwd2, keyframes, ramp, unit, window, wrap


def handshake(c: Cast) -> Built:
    k = c.side(0.75)  # shaking hand, same for both
    sc = c.scene()
    drop, lean = c.rng.uniform(0.45, 0.6) * 0.5 * (c.bA.arm + c.bB.arm), c.rng.uniform(0.05, 0.15)
    d = meet_distance(c.bA, c.bB, drop, c.bA.shoulder[0] + c.bB.shoulder[0], 0.9, lean, lean)
    ap = c.approach(d)
    t_meet = max(ap["t1"] + c.sec(c.rng.uniform(0.1, 0.5)), c.sec(0.9))
    tA_up = max(0, t_meet - c.sec(c.rng.uniform(0.6, 1.0)))
    tB_up = t_meet - c.sec(c.rng.uniform(0.35, 0.55))
    period, n = c.sec(c.rng.uniform(0.35, 0.5)), int(c.rng.integers(2, 5))
    t_rel = t_meet + n * period
    t_down = t_rel + c.sec(0.45)
    T = t_down + c.sec(c.rng.uniform(0.2, 1.2))
    t, pA, pB, away = c.meet(T, sc, ap, tB_up - 5)
    for p, bs, bo in ((pA, c.bA, c.bB), (pB, c.bB, c.bA)):
        p.bend = lean * window(t, tA_up, t_meet, t_rel, t_down)
        p.head_pitch = np.full(T, look_pitch(bs, bo, d))

    def arms(tors):
        tA, tB = tors[c.A], tors[c.B]
        y0 = 0.5 * (tA["pos"][:, SHOULDER[k], 1] + tB["pos"][:, SHOULDER[k], 1]) - drop
        pump = 0.045 * np.sin(2 * np.pi * (t - t_meet) / period) * window(t, t_meet, t_meet + 3,
                                                                              t_rel - 3, t_rel)
        Ma, Mb = meet_points(tA["pos"][:, SHOULDER[k]], tB["pos"][:, SHOULDER[k]], c.bA.arm, c.bB.arm, y0 + pump)
        pA.hand_target[:, k], pA.hand_w[:, k] = Ma, window(t, tA_up, t_meet, t_rel, t_down)
        pB.hand_target[:, k], pB.hand_w[:, k] = Mb, window(t, tB_up, t_meet, t_rel, t_down)

    return Built(T, c.order(pA, pB), arms, [t_meet, t_rel],
                 [(t_meet, t_rel, c.A, WRIST[k], c.B, WRIST[k])], hand=HAND_NAMES[k],
                 flags=dict(walk=ap["walked"], both=ap["both"], away=away))


def high_five(c: Cast) -> Built:
    k = c.side(0.7)
    sc = c.scene()
    rise = c.rng.uniform(0.15, 0.28)                           # slap point above mean shoulder height
    d = meet_distance(c.bA, c.bB, -rise, c.bA.shoulder[0] + c.bB.shoulder[0], 0.88)
    ap = c.approach(d, p_both=0.4)
    t_hit = max(ap["t1"] + c.sec(c.rng.uniform(0.0, 0.4)), c.sec(1.6))
    tA_up = max(0, t_hit - c.sec(c.rng.uniform(1.0, 1.5)))
    tB_up = max(0, t_hit - c.sec(c.rng.uniform(0.7, 0.9)))
    t_swing = t_hit - c.sec(0.25)
    t_off = t_hit + c.sec(0.35)
    t_down = t_off + c.sec(c.rng.uniform(0.4, 0.7))
    T = t_down + c.sec(c.rng.uniform(0.2, 1.0))
    t, pA, pB, away = c.meet(T, sc, ap, tB_up - 5)
    for p, bs, bo in ((pA, c.bA, c.bB), (pB, c.bB, c.bA)):
        p.head_pitch = np.full(T, look_pitch(bs, bo, d) - 0.15)
        p.elbow_pole = np.broadcast_to(np.zeros(3), (T, 2, 3)).copy()

    def arms(tors):
        tA, tB = tors[c.A], tors[c.B]
        y = 0.5 * (tA["pos"][:, SHOULDER[k], 1] + tB["pos"][:, SHOULDER[k], 1]) + rise
        Ma, Mb = meet_points(tA["pos"][:, SHOULDER[k]], tB["pos"][:, SHOULDER[k]], c.bA.arm, c.bB.arm, y, gap=0.03)
        for p, tor, M, t_up, b in ((pA, tA, Ma, tA_up, c.bA), (pB, tB, Mb, tB_up, c.bB)):
            Sh = tor["pos"][:, SHOULDER[k]]
            s = b.arm / 0.51
            wind = Sh + s * (0.32 * UP + 0.12 * SIDE[k] * tor["left"] + 0.05 * tor["fwd"])  # hand raised
            hit = window(t, t_swing, t_hit, t_hit + 2, t_off)[:, None]
            p.hand_target[:, k] = wind + (M - wind) * hit
            p.hand_w[:, k] = window(t, t_up, t_up + c.sec(0.6), t_off, t_down)
            p.elbow_pole[:, k] = unit(SIDE[k] * tor["left"] - 0.6 * UP)
            p.elbow_pole[:, 1 - k] = unit(-0.45 * tor["fwd"] - SIDE[k] * 0.7 * tor["left"] - 0.45 * UP)

    return Built(T, c.order(pA, pB), arms, [t_hit], [(t_hit, t_hit + 2, c.A, WRIST[k], c.B, WRIST[k])],
                 hand=HAND_NAMES[k], flags=dict(walk=ap["walked"], both=ap["both"], away=away))


def hug(c: Cast) -> Built:
    sc = c.scene()
    lat = float(c.rng.choice([-1, 1])) * c.rng.uniform(0.08, 0.13)  # hug a little off-centre, heads beside
    d = c.rng.uniform(0.27, 0.30)
    ap = c.approach(d, p_walk=0.8, p_both=0.35)
    t_wrap = max(ap["t1"] + c.sec(c.rng.uniform(0.2, 0.5)), c.sec(1.3))
    tA_open = max(0, t_wrap - c.sec(c.rng.uniform(0.9, 1.3)))
    tB_open = max(0, t_wrap - c.sec(c.rng.uniform(0.6, 0.9)))
    t_rel = t_wrap + c.sec(c.rng.uniform(0.8, 2.0))
    t_apart = t_rel + c.sec(0.5)
    step_back = c.rng.random() < 0.6
    T = t_apart + c.sec(c.rng.uniform(0.4, 1.2))
    t, pA, pB, away = c.meet(T, sc, ap, tB_open - 5, latB=lat)
    if step_back:
        zB = keyframes(t, [ap["t0"], ap["t1"], t_rel, t_apart + c.sec(0.4)],
                       [ap["zB"][0], ap["zB"][1], ap["zB"][1], ap["zB"][1] + 0.35])
        pB.root_xz = sc.p(np.full(T, lat), zB)
    sway_f = c.rng.uniform(0.4, 0.7)  # Hz
    sway = 0.07 * np.sin(2 * np.pi * sway_f * (t - t_wrap) / FPS) * window(t, t_wrap, t_wrap + c.sec(0.4),
                                                                            t_rel - c.sec(0.3), t_rel)
    over = int(c.rng.integers(2))  # which of A's arms goes over B's shoulder (the other goes under)
    rub_f = c.rng.uniform(0.8, 1.4)  # Hz
    for p, sgn in ((pA, 1.0), (pB, -1.0)):
        p.lean = sgn * sway
        p.head_yaw = -np.sign(lat) * sgn * 0.5 * window(t, t_wrap - 8, t_wrap, t_rel, t_apart)

    def arms(tors):
        tA, tB = tors[c.A], tors[c.B]
        for p, ts, to, b, t_open, first in ((pA, tA, tB, c.bA, tA_open, over), (pB, tB, tA, c.bB, tB_open, over)):
            opened = np.stack([ts["pos"][:, SHOULDER[j]] + b.arm * (0.55 * ts["fwd"] + 0.55 * SIDE[j] * ts["left"]
                                                              - 0.15 * UP) for j in (0, 1)], 1)
            tgt = np.empty((T, 2, 3))
            for j in (0, 1):
                # Around the back: the hand lands on the other's back on the same side of the world as
                # this arm, i.e. toward the other's opposite side (angles from the other's front). One arm
                # goes high, one low; if the back is out of reach, the hand settles further round the side.
                Sj = ts["pos"][:, SHOULDER[j]]
                top = to["pos"][:, NECK, 1] - 0.08
                drops = (0.12, 0.2, 0.06) if j == first else (0.24, 0.3, 0.18)
                ys = [np.minimum(Sj[:, 1] - dr, top) for dr in drops]
                angles = [-SIDE[j] * a for a in (np.pi - 0.75, np.pi - 1.0, np.pi - 1.25, np.pi / 2)]
                tgt[:, j] = reachable_on_torso(Sj, b.arm, to, ys, angles, slice(t_wrap, t_rel + 1))
            wrap_in = ramp(t, t_wrap - c.sec(0.35), t_wrap)[:, None, None]
            unwrap = ramp(t, t_rel, t_rel + c.sec(0.3))[:, None, None]
            # the hands rub the other's back, up and down along it (the gap to the body stays)
            rub = 0.025 * np.sin(2 * np.pi * rub_f * (t[:, None] - t_wrap) / FPS + np.array([0.0, 2.0]))  # (T, 2)
            tgt = tgt + rub[..., None] * UP
            p.hand_target[:] = opened + (tgt - opened) * wrap_in * (1 - unwrap)
            p.hand_w[:] = window(t, t_open, t_open + c.sec(0.45), t_rel + c.sec(0.2), t_apart + c.sec(0.3))[:, None]
            p.elbow_pole = np.stack([unit(SIDE[j] * ts["left"] - 0.3 * UP - 0.2 * ts["fwd"]) for j in (0, 1)], 1)

    c0, c1 = t_wrap, t_rel
    contacts = [(c0, c1, c.A, WRIST[0], c.B, SPINE3), (c0, c1, c.A, WRIST[1], c.B, SPINE3),
                (c0, c1, c.B, WRIST[0], c.A, SPINE3), (c0, c1, c.B, WRIST[1], c.A, SPINE3)]
    return Built(T, c.order(pA, pB), arms, [t_wrap, t_rel], contacts,
                 flags=dict(walk=ap["walked"], both=ap["both"], away=away))


def wave(c: Cast) -> Built:
    k = c.side(0.65)
    kb = c.side(0.65)
    sc = c.scene()
    d = c.rng.uniform(3.0, 7.0)
    tA0 = int(c.rng.integers(5, 30))
    fA, nA = c.rng.uniform(1.3, 2.2), int(c.rng.integers(2, 5))
    tA1 = tA0 + c.sec(0.6)
    tA2 = tA1 + int(round(nA / fA * FPS))
    turn = c.rng.random() < 0.45
    t_react = tA1 + c.sec(c.rng.uniform(0.3, 0.8))
    t_turned = t_react + (c.sec(c.rng.uniform(0.7, 1.1)) if turn else 0)
    tB1 = t_turned + c.sec(0.6)
    fB, nB = c.rng.uniform(1.3, 2.2), int(c.rng.integers(2, 4))
    tB2 = tB1 + int(round(nB / fB * FPS))
    T = max(tA2, tB2) + c.sec(c.rng.uniform(0.6, 1.0)) + c.sec(c.rng.uniform(0.1, 0.6))
    t = np.arange(T)
    pA = Plan(root_xz=sc.p(np.zeros(T), np.zeros(T)), yaw=np.full(T, sc.yaw(0.0)))
    pB = Plan(root_xz=sc.p(np.zeros(T), np.full(T, d)), yaw=np.full(T, sc.yaw(np.pi)))
    if turn:
        off = float(c.rng.choice([-1, 1])) * c.rng.uniform(1.3, 2.8)
        pB.yaw = pB.yaw + off * (1 - ramp(t, t_react, t_turned))
    waves = ((pA, k, tA0, tA1, tA2, fA), (pB, kb, t_turned, tB1, tB2, fB))

    def arms(tors):
        for (p, j, t0, t1, t2, f), tor, b in zip(waves, (tors[c.A], tors[c.B]), (c.bA, c.bB)):
            s = b.arm / 0.51
            Sh = tor["pos"][:, SHOULDER[j]]
            out = SIDE[j] * tor["left"]
            osc = np.sin(2 * np.pi * f * (t - t1) / FPS) * window(t, t1, t1 + 4, t2 - 4, t2)
            p.hand_target[:, j] = Sh + s * (0.36 * UP + (0.2 + 0.12 * osc[:, None]) * out + 0.08 * tor["fwd"])
            p.hand_w[:, j] = window(t, t0, t1, t2, t2 + c.sec(0.5))
            p.elbow_pole = np.stack([unit(SIDE[i] * tor["left"] - 0.7 * UP) for i in (0, 1)], 1)

    return Built(T, c.order(pA, pB), arms, [tA1, tB1], [], hand=HAND_NAMES[k],
                 flags=dict(turn=turn), extra=dict(distance=round(float(d), 2)))


def bow(c: Cast) -> Built:
    sc = c.scene()
    d = c.rng.uniform(1.1, 2.2)
    ap = c.approach(d, p_walk=0.35, p_both=0.0)
    ta0 = ap["t1"] + c.sec(c.rng.uniform(0.1, 0.6))
    ta1 = ta0 + c.sec(c.rng.uniform(0.6, 1.0))
    ta2 = ta1 + c.sec(c.rng.uniform(0.3, 0.8))
    ta3 = ta2 + c.sec(c.rng.uniform(0.6, 1.0))
    tb0 = ta1 + c.sec(c.rng.uniform(-0.2, 0.6))
    tb1 = tb0 + c.sec(c.rng.uniform(0.6, 1.0))
    tb2 = tb1 + c.sec(c.rng.uniform(0.2, 0.6))
    tb3 = tb2 + c.sec(c.rng.uniform(0.6, 1.0))
    T = max(ta3, tb3) + c.sec(c.rng.uniform(0.2, 0.8))
    t, pA, pB, away = c.meet(T, sc, ap, ta0 - 5)
    bendA = c.rng.uniform(0.6, 1.1) * window(t, ta0, ta1, ta2, ta3)
    bendB = c.rng.uniform(0.5, 1.0) * window(t, tb0, tb1, tb2, tb3)
    for p, bend, bs, bo, sgn in ((pA, bendA, c.bA, c.bB, -1.0), (pB, bendB, c.bB, c.bA, 1.0)):
        p.bend, p.hip_share = bend, 0.55
        p.head_pitch = look_pitch(bs, bo, d) + 0.3 * bend
        p.root_xz = p.root_xz + sgn * 0.1 * (bs.height / 1.7) * np.sin(bend)[:, None] * fwd2(sc.h)
    hand_on_chest = c.rng.random() < 0.35
    k = c.side(0.75)

    def arms(tors):
        if not hand_on_chest:
            return
        tA = tors[c.A]
        y = tA["pos"][:, SPINE3, 1]
        chest = on_torso(tA, y, SIDE[1 - k] * 0.35, clearance=0.04)  # across to the other side of the chest
        pA.hand_target[:, k] = chest
        pA.hand_w[:, k] = window(t, ta0 - c.sec(0.5), ta0, ta2, ta3 + c.sec(0.3))
        pA.elbow_pole = np.stack([unit(SIDE[j] * tA["left"] - 0.8 * UP) for j in (0, 1)], 1)

    return Built(T, c.order(pA, pB), arms, [ta1, tb1], [],
                 hand=HAND_NAMES[k] if hand_on_chest else None,
                 flags=dict(walk=ap["walked"], chest=hand_on_chest, away=away))


def shoulder_pat(c: Cast) -> Built:
    sc = c.scene()
    side = float(c.rng.choice([-1, 1]))       # A approaches on B's left (+1) or right (-1) side
    k = 1 if side > 0 else 0                # ... and pats with the inner hand
    jb = SHOULDER[0] if side > 0 else SHOULDER[1]             # ... on B's shoulder on that side
    # Can A reach the top of B's shoulder? If not (much shorter), A pats B's upper back instead.
    on_shoulder = c.bA.shoulder_y + 0.3 * c.bA.arm / 0.51 >= c.bB.shoulder_y + SHOULDER_RADIUS + 0.03
    lat = 0.45 * side
    dy = (c.bB.shoulder_y + (SHOULDER_RADIUS + 0.02 if on_shoulder else -0.15)) - c.bA.shoulder_y
    dlat = abs(c.bB.shoulder[0] - (0.45 - c.bA.shoulder[0]))
    behind = float(np.sqrt(max((0.86 * c.bA.arm) ** 2 - dy * dy - dlat * dlat, 0.25 ** 2)))
    extra = c.rng.uniform(0.5, 1.8)
    v = c.rng.uniform(0.45, 0.6)
    t0 = int(c.rng.integers(0, 20))
    t1 = t0 + int(round(extra / v * FPS * c.tempo))
    n, per = int(c.rng.integers(2, 4)), c.sec(c.rng.uniform(0.3, 0.4))
    t_pat = t1 + c.sec(c.rng.uniform(0.2, 0.4))
    t_pats_end = t_pat + (n - 1) * per
    t_off = t_pats_end + c.sec(0.6)
    t_turn0 = t_off - c.sec(c.rng.uniform(0.0, 0.2))
    t_turn1 = t_turn0 + c.sec(c.rng.uniform(1.2, 1.6))
    T = max(t_off, t_turn1) + c.sec(c.rng.uniform(0.3, 1.0))
    t = np.arange(T)
    zA = keyframes(t, [t0, t1], [-behind - extra, -behind])
    pA = Plan(root_xz=sc.p(np.full(T, lat), zA), yaw=np.full(T, sc.yaw(0.0)))
    pB = Plan(root_xz=sc.p(np.zeros(T), np.zeros(T)), yaw=np.full(T, sc.yaw(0.0)))
    pB.yaw = pB.yaw + side * np.pi * ramp(t, t_turn0, t_turn1)  # turns toward A's side
    pB.head_yaw = side * 0.5 * window(t, t_pat, t_turn0, t_turn0 + c.sec(0.4), t_turn1)
    pats = [t_pat + i * per for i in range(n)]

    def arms(tors):
        tA, tB = tors[c.A], tors[c.B]
        if on_shoulder:
            spot = tB["pos"][:, jb] + (SHOULDER_RADIUS + 0.02) * UP
        else:
            y = tB["pos"][:, NECK, 1] - 0.15
            spot = on_torso(tB, y, side * (np.pi - 0.5))
        bounce = sum(window(t, tp + 2, tp + per // 2, tp + per // 2, tp + per - 1) for tp in pats[:-1])
        spot = spot[np.minimum(t, t_pats_end + 2)]  # the hand leaves from where it last touched
        pA.hand_target[:, k] = spot + 0.07 * bounce[:, None] * UP
        pA.hand_w[:, k] = window(t, t1 - c.sec(0.4), t_pat, t_pats_end + 2, t_off)
        # The elbow stays low and on A's own side; the hand rises beside B before coming down on B.
        pA.elbow_pole = np.stack([unit(-SIDE[j] * 0.5 * tA["left"] - UP) for j in (0, 1)], 1)
        pA.hand_via = np.stack([unit(tA["fwd"] - 0.4 * SIDE[j] * tA["left"]) for j in (0, 1)], 1)

    contacts = [(tp, tp + 1, c.A, WRIST[k], c.B, jb if on_shoulder else SPINE3) for tp in pats]
    return Built(T, c.order(pA, pB), arms, [t_pat, t_turn1], contacts,
                 hand=HAND_NAMES[k], flags=dict(shoulder=on_shoulder))


def greet_walk(c: Cast) -> Built:
    """A chain of events: A comes up, they shake hands, then turn and walk off together side by side."""
    k = c.side(0.8)
    sc = c.scene()
    drop, lean = c.rng.uniform(0.45, 0.6) * 0.5 * (c.bA.arm + c.bB.arm), c.rng.uniform(0.05, 0.12)
    d = meet_distance(c.bA, c.bB, drop, c.bA.shoulder[0] + c.bB.shoulder[0], 0.9, lean, lean)
    ap = c.approach(d, p_walk=0.9, p_both=0.2)
    t_meet = max(ap["t1"] + c.sec(c.rng.uniform(0.1, 0.4)), c.sec(0.9))
    period, n = c.sec(c.rng.uniform(0.35, 0.5)), int(c.rng.integers(2, 4))
    t_rel = t_meet + n * period
    t_turn = t_rel + c.sec(0.4)
    t_go = t_turn + c.sec(0.5)
    dist = c.rng.uniform(1.5, 3.0)
    t_stop = t_go + int(round(dist / c.rng.uniform(0.6, 0.8) * FPS * c.tempo))
    T = min(t_stop + c.sec(c.rng.uniform(0.3, 0.8)), im.MAX_FRAMES)
    t = np.arange(T)
    pA, pB = two_plans(sc, t, ap)
    way = float(c.rng.choice([-1, 1]))                         # they walk off along the scene's x axis
    gap = c.rng.uniform(0.55, 0.75)                            # side by side, closer than at the handshake
    mid = 0.5 * (ap["zA"][1] + ap["zB"][1])
    go, close = ramp(t, t_go, t_stop), ramp(t, t_turn, t_go + c.sec(1.0))
    zA = keyframes(t, [ap["t0"], ap["t1"]], np.array(ap["zA"]))
    zB = keyframes(t, [ap["t0"] + (ap["t1"] - ap["t0"]) // 4, ap["t1"]], np.array(ap["zB"]))
    pA.root_xz = sc.p(way * dist * go, zA + (mid - gap / 2 - ap["zA"][1]) * close)
    pB.root_xz = sc.p(way * dist * go, zB + (mid + gap / 2 - ap["zB"][1]) * close)
    for p, rel in ((pA, 0.0), (pB, np.pi)):                 # both turn the short way to face where they go
        p.yaw = sc.yaw(rel) + wrap(way * np.pi / 2 - rel) * ramp(t, t_rel, t_go)
    for p, bs, bo in ((pA, c.bA, c.bB), (pB, c.bB, c.bA)):
        p.bend = lean * window(t, t_meet - c.sec(0.4), t_meet, t_rel, t_rel + c.sec(0.4))
        p.head_pitch = np.full(T, look_pitch(bs, bo, d))
        p.head_yaw = 0.25 * (-1 if p is pA else 1) * way * window(t, t_go, t_go + c.sec(0.5), T - c.sec(0.6), T)

    def arms(tors):
        tA, tB = tors[c.A], tors[c.B]
        y0 = 0.5 * (tA["pos"][:, SHOULDER[k], 1] + tB["pos"][:, SHOULDER[k], 1]) - drop
        pump = 0.04 * np.sin(2 * np.pi * (t - t_meet) / period) * window(t, t_meet, t_meet + 3, t_rel - 3, t_rel)
        Ma, Mb = meet_points(tA["pos"][:, SHOULDER[k]], tB["pos"][:, SHOULDER[k]], c.bA.arm, c.bB.arm, y0 + pump)
        pA.hand_target[:, k], pA.hand_w[:, k] = Ma, window(t, t_meet - c.sec(0.6), t_meet, t_rel, t_rel + c.sec(0.4))
        pB.hand_target[:, k], pB.hand_w[:, k] = Mb, window(t, t_meet - c.sec(0.4), t_meet, t_rel, t_rel + c.sec(0.4))

    return Built(T, c.order(pA, pB), arms, [t_meet, t_rel, t_go], [(t_meet, t_rel, c.A, WRIST[k], c.B, WRIST[k])],
                 hand=HAND_NAMES[k], flags=dict(walk=ap["walked"], both=ap["both"]))
