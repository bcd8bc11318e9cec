"""InterSynth: a procedurally generated two-person interaction dataset, made offline in under a minute.

InterHuman (the data InterMoE trains on) is gated, so this package makes its own. Every clip is two people
doing one of 20 interactions (handshake, high five, punch and dodge, push, hug, wave from afar, follow,
circling, bow, hand-over, tug of war, kick and block, point and look, shoulder pat, a dance holding hands,
a clapping game, a conversation with gestures, a handshake then walking off together, and the paper's
fencing and taekwondo sparring), with three InterHuman-style captions and ground truth the real data
lacks: who initiates, when the key event happens, which hand, which way round, and which joints touch on
which frames.

How a clip is made, file by file:

  body.py          each person: the SMPL 22-joint rest skeleton (Y up, metres, facing +Z, left side at +X)
                   scaled to a height of 1.50-1.95 m with proportions and a manner of their own; joints by name
  timing.py        minimum-jerk ramps (smooth in position, velocity, acceleration), floor directions, Scene
  gait.py          footsteps from a pelvis path: a planted foot stays exactly still in world space
  solve.py         trunk angles, two-bone IK and forward kinematics turn a Plan into joints and rotations
  life.py          idle life (breathing, sway, weight shifts, drift) on top of every task
  staging.py       what the builders share: meeting points, touching a body, guards, the approach, and
                   Cast, the context (rng, bodies, initiator, tempo) every builder starts from
  greetings.py, sparring.py, together.py   the interactions, one builder each
  interactions.py  the builders and key-frame names by interaction type
  captions.py      captions from templates with synonyms
  dataset.py       generating, caching and splitting the set
  __main__.py      the command line

The physics and motion reports measure with intermoe_tools.evaluation's functions, so they live on the tools side, in
intermoe_tools/synth_report.py: this package imports only intermoe_min and the leaf intermoe_tools.checks.

    python -m intersynth                          # generate + cache the default set (~25 s on 2 cores), summary
    python -m intermoe_tools.synth_report         # ... and measure the physics and how people move (per type too)
    python -m intermoe_tools.synth_report --n 140 # a fresh small set instead of the cached default

Conventions: yaw is a rotation about +Y; yaw 0 faces +Z and a positive yaw turns the person toward +X
(their left at rest). Seen from above (looking down -Y), a growing yaw or position angle turns
counterclockwise. Hand index 0 is left, 1 is right (body.WRIST, body.SHOULDER).

Everything here is written for this project, following SMPL's 22-joint layout and InterGen's data
conventions (tr3e/InterGen's datasets/interhuman.py and utils/utils.py); no code is taken from elsewhere.
"""
from .captions import heldout_template
from .dataset import (DEFAULT_N_CLIPS, check_n_clips, generate, load_all, load_split, make_clip, rebuild_joints,
                      split_of)
from .interactions import INTERACTION_TYPES, KEY_NAMES

__all__ = ["generate", "load_split", "load_all", "make_clip", "split_of", "DEFAULT_N_CLIPS", "check_n_clips",
           "rebuild_joints", "INTERACTION_TYPES", "KEY_NAMES", "heldout_template"]

