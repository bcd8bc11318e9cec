"""Gait: a footstep planner turns a pelvis path into stance and swing phases. A planted foot stays exactly
still in world space; walking follows a cadence with a walker's step length; the heel rises before toe-off
and strikes first with the toes up."""
import numpy as np
from scipy.ndimage import gaussian_filter1d

from .body import FPS, HIP, SIDE, TOE
from .timing import rot, unit, left2, fwd2, smoothstep, to3, wrap

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
    half_width = abs(body.offsets[HIP[0], 0]) + 0.03 * body.height / 1.7
    home = root_xz[:, None, :] + SIDE[None, :, None] * half_width * left2(yaw)[:, None, :]  # (T, 2, 2)
    home_yaw = yaw[:, None] + SIDE[None, :] * toe_out                                           # (T, 2)
    speed = np.r_[np.linalg.norm(np.diff(root_xz, axis=0), axis=1), 0.0] * FPS                  # (T,) m/s
    v_s = gaussian_filter1d(speed, 6.0, mode="nearest")                                          # (T,) smooth
    turn = np.r_[np.abs(wrap(np.diff(yaw))), 0.0] * FPS                                          # (T,) rad/s
    motion = gaussian_filter1d(np.r_[np.diff(root_xz, axis=0), np.zeros((1, 2))], 3.0, axis=0, mode="nearest")
    forward = (unit(motion) * fwd2(yaw)).sum(-1) > 0.7  # (T,) going the way they face (not sideways, back)
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
            heading = unit(root_xz[b] - root_xz[a])
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
        toe = body.offsets[TOE[k]]
        A0 = to3(p0, body.ankle_h)
        H = min(round(12 * g), t0 - flat_from[k])  # heel-off frames before lift-off
        if H > 0:  # the heel rises about the planted toes
            seg = slice(t0 - H, t0)
            a = p_off * smoothstep((tt[seg] - (t0 - H) + 1) / H)  # reaches p_off on the frame before lift-off
            toe_w = A0 + rot(1, y0) @ toe
            A = toe_w - np.einsum("tij,j->ti", rot(1, np.full(H, y0)) @ rot(0, a), toe)
            xz[seg, k], y[seg, k], pitch[seg, k] = A[:, [0, 2]], A[:, 1], a
        A_off = to3(p0, body.ankle_h) if H <= 0 else \
            (A0 + rot(1, y0) @ toe) - rot(1, y0) @ rot(0, p_off) @ toe
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
