"""Physics guidance, beyond the paper: after DDIM, the final latent moves down the gradient of `physics_loss`
taken through the frozen decoder only (as MoLA's guidance does for motion latents, Uchida et al. 2024, but on the
final latent, where the decoded motion is sharp): torsos that overlap the partner are pushed out (the capsules
of `capsule_overlap`), and when the caption asks for touch (TOUCH_RE) the hand that comes closest to the partner
is pulled to HAND_REACH. Where nothing is wrong the gradient is 0 and the latent stays exactly as DDIM left it.
`guide(scale)` is what `InterMoE.sample(..., guide=)` takes; the model's config holds the scale (cfg.physics).
The capsules are also stage 2's capsule loss (intermoe_tools.motion_losses) and the evaluation's measure.
"""
from __future__ import annotations

import re

import numpy as np
import torch

from intermoe_min import joints_from_features

PHYSICS_STEPS = 10      # Adam steps on the unit-variance latent, each of size cfg.physics (the scale; 0: off)
HAND_REACH = 0.03       # metres from a wrist to the partner's nearest joint that count as touching
WRISTS = (20, 21)
TOUCH_RE = re.compile(r"\b(shak\w* (?:\w+ )?hands?|handshake|hug\w*|embrac\w*|high[- ]?fives?|push\w*|shov\w*|"
                      r"pats?|taps?|touch\w*|(?:hold\w*|take|takes|taking|grab\w*) (?:\w+ )?hands?|grab\w*|pull\w*|tug\w*|"
                      r"clap\w*|gives?|hands? (?:over|an?)|pass\w*|offers?|kicks?|blocks?)\b", re.IGNORECASE)  # captions that ask for touch


def physics_loss(joints: torch.Tensor, mask: torch.Tensor, touch: torch.Tensor) -> torch.Tensor:
    """Both people's joints (B, 2, T, 22, 3), frame mask (B, T) bool, touch (B,) bool -> (B,) what physics guidance
    lowers: the squared overlap of the capsules summed over frames, plus, where touch, the squared distance
    beyond HAND_REACH of the closest any wrist comes to the partner's joints."""
    m = mask.to(joints.dtype)
    pen = (capsule_overlap(joints).square().sum(-1) * m).sum(1)                      # (B,)
    wrists, partner = joints[..., WRISTS, :], joints.flip(1)                          # (B, 2, T, 2, 3), (B, 2, T, 22, 3)
    d = (wrists[..., :, None, :] - partner[..., None, :, :]).norm(dim=-1).amin((-1, -2))  # (B, 2, T)
    reach = (d + 1e3 * (1 - m[:, None])).amin((1, 2))                                 # (B,) over real frames
    return pen + touch.to(joints.dtype) * (reach - HAND_REACH).clamp(min=0).square()


# (joint, joint, radius m): a torso (pelvis -> neck) and the limbs that must not enter a partner's torso.
# Only pairs with a torso count: hands, forearms and heads touch a partner in hugs, pats and handshakes, and
# InterSynth's hugging arms and legs come closer than any limb radius; no InterSynth clip overlaps these.
CAPSULES = [(0, 12, 0.12), (16, 18, 0.05), (17, 19, 0.05), (1, 4, 0.07), (2, 5, 0.07), (4, 7, 0.05), (5, 8, 0.05)]


def segment_distance(p1, q1, p2, q2) -> torch.Tensor:
    """Shortest distance between segments p1-q1 and p2-q2, (..., 3) tensors that broadcast -> (...) (their
    closest points, Ericson, Real-Time Collision Detection, 5.1.9). A segment may be a point (p == q). Numpy
    arrays in (the evaluation's measures): computed in float64, a numpy array out."""
    if not isinstance(p1, torch.Tensor):
        return segment_distance(*(torch.as_tensor(np.asarray(v, dtype=np.float64)) for v in (p1, q1, p2, q2))).numpy()
    d1, d2, r = q1 - p1, q2 - p2, p1 - p2
    a, e = (d1 * d1).sum(-1).clamp(min=1e-12), (d2 * d2).sum(-1).clamp(min=1e-12)
    b, c, f = (d1 * d2).sum(-1), (d1 * r).sum(-1), (d2 * r).sum(-1)
    den = a * e - b * b
    s = torch.where(den > 1e-12, ((b * f - c * e) / den.clamp(min=1e-12)).clamp(0, 1), torch.zeros_like(den))
    t = (b * s + f) / e
    s = torch.where(t < 0, (-c / a).clamp(0, 1), torch.where(t > 1, ((b - c) / a).clamp(0, 1), s))
    t = t.clamp(0, 1)
    gap = (p1 + d1 * s[..., None]) - (p2 + d2 * t[..., None])
    return (gap.square().sum(-1) + 1e-12).sqrt()  # the epsilon keeps the gradient finite at contact


def capsule_overlap(joints: torch.Tensor) -> torch.Tensor:
    """(..., 2, T, 22, 3) both people's joints -> (..., T, pairs) how deep each capsule pair that holds a torso
    overlaps (m, 0 when apart): the sum of the radii minus the distance between the axes."""
    (j0, j1, rt), limbs = CAPSULES[0], CAPSULES[1:]
    depth = []
    for me, other in ((0, 1), (1, 0)):  # my torso against the partner's torso (once) and limbs
        mine, theirs = joints[..., me, :, :, :], joints[..., other, :, :, :]  # (..., T, 22, 3)
        for a, b, r in CAPSULES if me == 0 else limbs:
            d = segment_distance(mine[..., j0, :], mine[..., j1, :], theirs[..., a, :], theirs[..., b, :])
            depth.append((rt + r - d).clamp(min=0))  # (..., T)
    return torch.stack(depth, -1)



def physics_guidance(model, z: torch.Tensor, frame_mask: torch.Tensor, touch: torch.Tensor, step: float,
                     n_steps: int = PHYSICS_STEPS) -> torch.Tensor:
    """Scaled latents z (B, 2, Tz, C) of `model`, frame mask (B, 4 Tz), touch (B,) bool -> z moved by n_steps Adam
    steps of size `step` down `physics_loss` of its decoding, the gradient through the frozen decoder only."""
    z = z.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=step)
    with torch.enable_grad():
        for _ in range(n_steps):
            joints = joints_from_features(model.decode_latents(z, z.shape[2] * 4))  # (B, 2, 4 Tz, 22, 3)
            loss = physics_loss(joints, frame_mask, touch).sum()
            if loss.item() == 0:  # nothing to fix
                break
            z.grad, = torch.autograd.grad(loss, z)  # the latent's only: the VAE's weights stay untouched
            opt.step()
    return z.detach()


def guide(scale: float):
    """-> InterMoE.sample's `guide(model, z, frame_mask, prompts)`: `physics_guidance` of size `scale`, reaching
    for touch where a prompt asks for it (TOUCH_RE); None for scale 0 (the paper's sampler)."""
    if not scale:
        return None

    def physics(model, z, frame_mask, prompts):
        touch = torch.tensor([bool(TOUCH_RE.search(p)) for p in prompts], device=z.device)
        return physics_guidance(model, z, frame_mask, touch, scale)
    return physics
