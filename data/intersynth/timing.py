"""Timing helpers, all vectorised over frames: minimum-jerk ramps (smooth in position, velocity and
acceleration), directions on the floor, rotations, and the clip's floor frame (`Scene`)."""
import numpy as np


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


def unit(v, eps=1e-9):
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), eps)


def rot(axis: int, angle) -> np.ndarray:
    """Rotation matrices (..., 3, 3) about coordinate axis 0 (X), 1 (Y) or 2 (Z)."""
    a = np.asarray(angle, dtype=float)
    c, s = np.cos(a), np.sin(a)
    R = np.zeros(a.shape + (3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]  # the plane the rotation turns (right-handed)
    R[..., axis, axis] = 1.0
    R[..., i, i], R[..., j, j] = c, c
    R[..., i, j], R[..., j, i] = -s, s
    return R


class Scene:
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
