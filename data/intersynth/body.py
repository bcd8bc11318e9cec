"""Bodies: each person's fixed skeleton (an SMPL-like rest pose scaled to a height and proportions of their own)
and manner of moving, and the names, directions and radii the rest of the generator shares."""
from dataclasses import dataclass

import numpy as np

import intermoe_min as im

FPS = im.FPS
UP = np.array([0.0, 1.0, 0.0])
HAND_NAMES = ("left", "right")
SIDE = np.array([1.0, -1.0])  # index 0 (left) lies toward the person's +left direction, 1 (right) away

# Joints by name (SMPL's order, im.JOINT_NAMES); pairs are (left, right), as hand indices are.
JOINT = {name: i for i, name in enumerate(im.JOINT_NAMES)}
PELVIS, SPINE3, NECK, HEAD = JOINT["pelvis"], JOINT["spine3"], JOINT["neck"], JOINT["head"]  # spine3: the chest
SPINE = (JOINT["spine1"], JOINT["spine2"], SPINE3)
HIP, KNEE, ANKLE, TOE, COLLAR, SHOULDER, ELBOW, WRIST = (  # TOE: SMPL's "foot" joints sit at the toes
    (JOINT[f"left_{n}"], JOINT[f"right_{n}"])
    for n in ("hip", "knee", "ankle", "foot", "collar", "shoulder", "elbow", "wrist"))
LEGS = [(HIP[k], KNEE[k], ANKLE[k]) for k in (0, 1)]                  # [left, right] chains, root first
ARMS = [(COLLAR[k], SHOULDER[k], ELBOW[k], WRIST[k]) for k in (0, 1)]
TORSO_JOINTS = (PELVIS, *SPINE, NECK)  # the torso capsule's axis runs pelvis -> neck
TORSO_RADIUS = 0.12  # torso capsule radius (m) for contacts: intermoe_eval's interpenetration measure's (tested)
SHOULDER_RADIUS = 0.07  # a hand resting on a shoulder sits this far from the shoulder joint (m)
HAND_CLEARANCE = 0.03   # wrist to body surface when a hand touches a body: the palm lies in between (m)
HAND_GAP = 0.035        # wrist to wrist when two hands hold each other (m)


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

    def bone(self, j: int) -> float:  # joint j's bone: from its parent to j
        return float(np.linalg.norm(self.offsets[j]))

    @property
    def leg(self) -> float:  # hip -> ankle, fully stretched
        return self.bone(KNEE[0]) + self.bone(ANKLE[0])

    @property
    def arm(self) -> float:  # shoulder -> wrist, fully stretched
        return self.bone(ELBOW[0]) + self.bone(WRIST[0])

    @property
    def pelvis_y(self) -> float:  # pelvis height standing, knees all but straight
        return self.ankle_h + 0.998 * self.leg - self.offsets[HIP[0], 1]

    @property
    def shoulder(self) -> np.ndarray:  # left shoulder relative to the pelvis in the rest pose (3,)
        return self.offsets[[*SPINE, COLLAR[0], SHOULDER[0]]].sum(0)

    @property
    def shoulder_y(self) -> float:  # standing shoulder height
        return self.pelvis_y + self.shoulder[1]

    @property
    def torso(self) -> float:  # pelvis -> shoulder height
        return self.shoulder[1]


def _stature(off: np.ndarray, ankle_h: float) -> float:
    """Floor-to-crown height of a rest skeleton standing straight."""
    legs = -(off[HIP[0], 1] + off[KNEE[0], 1] + off[ANKLE[0], 1])
    trunk = off[[*SPINE, NECK, HEAD], 1].sum()
    return ankle_h + legs + trunk + REST_HEAD_TOP * (off[HEAD, 1] / REST_OFFSETS[HEAD, 1])


def sample_body(rng: np.random.Generator) -> Body:
    """A random adult: height 1.50-1.95 m, legs/arms/torso/shoulder width each within +-6 %, and a manner of
    their own: upright or slouched, head carriage, arm carriage and swing, how much and how fast they sway."""
    height = float(np.clip(rng.normal(1.72, 0.10), 1.50, 1.95))
    f_leg, f_arm, f_torso, f_width = rng.uniform(0.94, 1.06, size=4)
    off = REST_OFFSETS.copy()
    off[[*KNEE, *ANKLE]] *= f_leg
    off[[*ELBOW, *WRIST]] *= f_arm
    off[[*SPINE, NECK, HEAD]] *= f_torso
    off[[*HIP, *COLLAR, *SHOULDER], 0] *= f_width
    s = height / _stature(off, REST_ANKLE_HEIGHT)  # one scale brings the stature to `height`
    return Body(offsets=off * s, ankle_h=REST_ANKLE_HEIGHT * s, height=height,
                slouch=float(np.clip(rng.normal(0.04, 0.05), -0.02, 0.15)), head_down=float(rng.uniform(-0.04, 0.12)),
                arm_relax=float(rng.uniform(0.93, 0.975)), arm_out=float(rng.uniform(0.03, 0.09)),
                arm_swing=float(rng.uniform(0.3, 0.65)), sway=float(rng.uniform(0.7, 1.4)),
                tempo=float(rng.uniform(0.8, 1.25)))
