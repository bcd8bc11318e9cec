"""How physical InterSynth's clips are and how they move, measured:

    python -m intermoe_tools.synth_report [--n N] [--seed S]   # python -m intersynth's summary, then both reports

Foot sliding, floor penetration, torso overlap and segment distances are the physics measures of
intermoe_tools.evaluation, so these reports and the evaluation of generated motion measure the same thing; that is
why they live here, on the tools side, and not in the intersynth package (which imports only intermoe_min and the
leaf intermoe_tools.checks)."""
import numpy as np
from scipy.ndimage import gaussian_filter1d

import intermoe_min as im
from intermoe_tools import evaluation as ev
from intersynth.body import (ARMS, FPS, HEAD, LEGS, NECK, PELVIS, SHOULDER, SHOULDER_RADIUS, SPINE, TOE, TORSO_JOINTS,
                             TORSO_RADIUS, WRIST)
from intersynth.timing import left2


def contact_distances(clip) -> dict:
    """Per contact tuple: hand-to-hand (or foot-to-hand) joint distance, or a hand's gap to a body surface.

    Body surfaces: the torso capsule (pelvis -> neck, radius TORSO_RADIUS) for torso joints, a sphere of
    SHOULDER_RADIUS around a shoulder joint. Returns {'limb': array, 'body': array} in metres."""
    J = clip["joints"]
    limb, body = [], []
    for f, pa, ja, pb, jb in clip["meta"]["contacts"]:
        x = J[pa, f, ja].astype(np.float64)
        if jb in TORSO_JOINTS:
            axis = ev.segment_distance(x[None], x[None], J[pb, f, PELVIS][None].astype(np.float64),
                                       J[pb, f, NECK][None].astype(np.float64))[0]
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
    bone_max, slide, floor, limb, body, overlap, min_d, speeds = 0.0, [], 0.0, [], [], 0, np.inf, []
    accel, feet_d = 0.0, np.inf
    parents = np.array(im.SMPL_PARENTS[1:])
    for c in clips:
        J = c["joints"].astype(np.float64)                                   # (2, T, 22, 3)
        lengths = np.linalg.norm(J[:, :, 1:] - J[:, :, parents], axis=-1)  # (2, T, 21)
        bone_max = max(bone_max, float((lengths.std(1) / lengths.mean(1)).max()))
        floor = max(floor, float(ev.floor_penetration(J).max()))
        if J.shape[1] > 1:
            slide.append(ev.foot_sliding(J))
            step = np.linalg.norm(J[:, 1:] - J[:, :-1], axis=-1)             # (2, T-1, 22)
            speeds.append(step.max(-1).ravel())
        if J.shape[1] > 2:
            acc = np.linalg.norm(J[:, 2:] - 2 * J[:, 1:-1] + J[:, :-2], axis=-1)  # (2, T-2, 22)
            accel = max(accel, float(acc.max()))
        F = im.FOOT_JOINTS
        feet_d = min(feet_d, float(np.linalg.norm(J[0][:, F, None] - J[1][:, None, F], axis=-1).min()))
        overlap += int((ev.interpenetration(J) > 0).sum())
        dist = ev.segment_distance(J[0, :, PELVIS], J[0, :, NECK], J[1, :, PELVIS], J[1, :, NECK])
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


def flexion(J, a, b, c):
    """Angle (degrees) between bones a->b and b->c of joints (..., 22, 3): 0 = straight."""
    u, v = J[..., b, :] - J[..., a, :], J[..., c, :] - J[..., b, :]
    cos = (u * v).sum(-1) / np.maximum(np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1), 1e-9)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def runs_of(mask):
    """(start, end) of each run of True in a 1-D boolean array, end exclusive."""
    d = np.diff(np.r_[0, mask.astype(int), 0])
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def person_motion(J: np.ndarray, height: float) -> dict:
    """How one person (T, 22, 3) moves, the measures `motion_report` pools: arrays per frame, per gait
    cycle or per walking stretch."""
    J = np.asarray(J, dtype=np.float64)
    T = len(J)
    step = np.linalg.norm(np.diff(J, axis=0), axis=-1)                           # (T-1, 22) m per frame
    jerk = np.linalg.norm(np.diff(J, 3, axis=0), axis=-1).mean(-1) * FPS ** 3    # (T-3,) m/s^3, joint mean
    pelvis_v = np.linalg.norm(np.diff(J[:, PELVIS, [0, 2]], axis=0), axis=-1) * FPS   # (T-1,) horizontal m/s
    walking = gaussian_filter1d(pelvis_v, 5.0, mode="nearest") > WALK_SPEED if T > 1 else np.zeros(0, bool)
    knee = np.concatenate([flexion(J, *LEGS[0]), flexion(J, *LEGS[1])])
    walk_knee = np.concatenate([flexion(J[:-1][walking], *LEGS[0]), flexion(J[:-1][walking], *LEGS[1])])
    elbow = np.concatenate([flexion(J, *ARMS[0][1:]), flexion(J, *ARMS[1][1:])])
    bob, strides = [], []
    for s, e in runs_of(walking):
        if e - s < FPS:  # a stretch of at least a second
            continue
        for toe in TOE:  # a full gait cycle: from one plant of a foot to its next
            v = np.linalg.norm(np.diff(J[s:e, toe, [0, 2]], axis=0), axis=-1) * FPS
            plants = [s + a for a, b in runs_of((v < 0.1) & (J[s:e - 1, toe, 1] < 0.06)) if b - a >= 5]  # stances
            for a, b in zip(plants, plants[1:]):
                strides.append((np.linalg.norm(J[b, toe, [0, 2]] - J[a, toe, [0, 2]]) / height, pelvis_v[a:b].mean()))
                y = J[a:b + 1, PELVIS, 1]
                y = y - np.linspace(y[0], y[-1], len(y))  # the cycle's pelvis height, its drift taken out
                bob.append(y.max() - y.min())
    ankles = J[:, LEGS[0][2]] - J[:, LEGS[1][2]]  # left ankle from the right one
    lateral = np.einsum("ti,ti->t", ankles[:, [0, 2]], left2(im.facing_yaw(J)))  # each frame's facing
    return dict(frozen=step.max(-1) < FROZEN_M, still=step.max(-1) < 1e-6, jerk=jerk, knee=knee,
                trunk_frozen=step[:, [PELVIS, *SPINE, NECK, HEAD]].max(-1) < FROZEN_M, crossed=lateral < 0,
                walk_knee=walk_knee, elbow=elbow, wrist_speed=step[:, list(WRIST)].ravel() * FPS,
                pelvis_speed=pelvis_v, bob=np.array(bob), stride=np.array([x for x, _ in strides]),
                stride_normal=np.array([x for x, v in strides if v >= NORMAL_WALK]),
                slide=ev.foot_sliding(J[None]), walk_frames=int(walking.sum()))


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


def main(argv=None):
    """`python -m intersynth`'s clips and summary (the same arguments), then the physics and motion reports."""
    from intersynth.__main__ import main as make_clips
    clips = make_clips(argv, prog="python -m intermoe_tools.synth_report")
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


if __name__ == "__main__":
    main()
