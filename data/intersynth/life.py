"""Idle life: nobody is ever exactly still. Breathing, sway, weight shifts and drift go on top of every
task before solving."""
import numpy as np
from scipy.ndimage import gaussian_filter1d

from .body import FPS, Body
from .solve import Plan
from .timing import left2, window


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
