"""Stage 2's losses on the decoded motion, beyond the paper: InterGen's geometric and interaction terms and the
capsules' overlap on the motion the frozen VAE decodes from the denoiser's clean-latent prediction. The model's
config holds their weights (geo_weight, pen_weight, geo_t_max, geo_clips; 0 and 0 in every preset: the paper's
latent MSE alone); `extra_loss(cfg)` is what `train_denoiser(..., extra_loss=)` takes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from intermoe_min import (CONTACT_HEIGHT_THRESHOLD, CONTACT_VEL_THRESHOLD, FOOT_JOINTS, SMPL_PARENTS,
                          joints_from_features)
from intermoe_tools.physics import capsule_overlap

# ---- stage 2's losses on the decoded motion (beyond the paper) ------------------------------------------
# The paper's authors train the latent denoiser on latent MSE alone; InterGen's geometric and interaction
# terms (tr3e/InterGen models/losses.py) need joints, so here the predicted clean latents go through the frozen, differentiable
# VAE decoder. Neither InterGen nor InterMoE penalises two bodies passing through each other: the capsule
# term is ours, and the evaluation's interpenetration measure uses the same capsules.
GEO_WEIGHTS = {"dm": 3.0, "ja": 3.0, "ro": 0.01, "vel": 30.0, "bl": 10.0, "fc": 30.0}  # InterGen's weights
BONES = [(j, p) for j, p in enumerate(SMPL_PARENTS) if p >= 0]  # (joint, parent): 21 bones


def interaction_losses(pred: torch.Tensor, true: torch.Tensor, mask: torch.Tensor) -> dict:
    """InterGen's terms (models/losses.py) between predicted and true joints, both (B, 2, T, 22, 3), metres, Y up;
    mask (B, T) bool, the real frames -> {term: loss}: dm, the 22 x 22 distance map between the people (where
    the predicted or the true distance is under 1 m); ja, joint pairs closer than 10 cm in truth pulled together; ro, the
    people's relative facing; vel, bl and fc per person: velocities, bone lengths, and feet in contact on the
    prediction held still; pen, the capsules' squared overlap (`capsule_overlap`). Means over people and
    frames (InterGen sums the two people's terms). ro compares the relative turn as (cos, sin), where
    InterGen compares the y components of a quaternion: the same angle."""
    m = mask.to(pred.dtype)  # (B, T)
    m2 = m[:, 1:] * m[:, :-1]  # (B, T-1) frame pairs, for velocities

    def mean(err, w):  # err (B, T, ...) -> its mean over the weighted frames
        return (err.flatten(2).mean(-1) * w).sum() / w.sum().clamp(min=1)

    B, _, T, J, _ = pred.shape
    dist = torch.cdist(pred[:, 0].reshape(B * T, J, 3), pred[:, 1].reshape(B * T, J, 3)).reshape(B, T, J, J)
    true_dist = torch.cdist(true[:, 0].reshape(B * T, J, 3), true[:, 1].reshape(B * T, J, 3)).reshape(B, T, J, J)
    # dm counts where either distance is under 1 m. InterGen counts the predicted one only; measured here, the
    # lab model then learnt to stand apart (hand contact 57 cm against 10), where no distance is compared
    near = ((dist < 1) | (true_dist < 1)).detach()
    terms = {"dm": mean((dist - true_dist).square() * near, m),
             "ja": mean(dist.square() * (true_dist < 0.1), m)}

    def turn(j):  # (B, 2, T, 22, 3) -> (B, T, 2): cos, sin of the turn from A's facing to B's
        across = j[..., 2, :] - j[..., 1, :]  # right hip - left hip, (B, 2, T, 3)
        face = F.normalize(torch.stack([across[..., 2], -across[..., 0]], -1), dim=-1)  # up x across: (z, -x)
        fa, fb = face[:, 0], face[:, 1]  # (B, T, 2) as (x, z)
        return torch.stack([(fa * fb).sum(-1), fa[..., 1] * fb[..., 0] - fa[..., 0] * fb[..., 1]], -1)
    terms["ro"] = mean((turn(pred) - turn(true)).square(), m)
    vel, true_vel = pred[:, :, 1:] - pred[:, :, :-1], true[:, :, 1:] - true[:, :, :-1]  # (B, 2, T-1, 22, 3)
    terms["vel"] = mean((vel - true_vel).square().transpose(1, 2), m2)
    child, parent = [j for j, _ in BONES], [p for _, p in BONES]
    bone = lambda j: (j[..., child, :] - j[..., parent, :]).norm(dim=-1)  # noqa: E731  (B, 2, T, 21)
    terms["bl"] = mean((bone(pred) - bone(true)).square().transpose(1, 2), m)
    feet = vel[..., FOOT_JOINTS, :]  # (B, 2, T-1, 4, 3)
    height = pred[:, :, :-1, FOOT_JOINTS, 1]  # (B, 2, T-1, 4)
    planted = (feet.square().sum(-1) < CONTACT_VEL_THRESHOLD) & (height < torch.tensor(CONTACT_HEIGHT_THRESHOLD,
                                                                                        device=pred.device))
    terms["fc"] = mean((feet.square().sum(-1) * planted.detach()).transpose(1, 2), m2)
    terms["pen"] = mean(capsule_overlap(pred).square(), m)
    return terms


def decoded_motion_loss(model, pred: torch.Tensor, z0: torch.Tensor, zmask: torch.Tensor,
                        t: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """geo_weight x InterGen's terms (GEO_WEIGHTS) + pen_weight x the capsules' overlap, on the motion the
    frozen VAE decodes from predicted clean latents pred (B, 2, T', C), against the decoding of the true z0,
    for up to geo_clips clips of noise step t <= geo_t_max -> (loss, its terms for the log)."""
    cfg = model.cfg
    keep = (t <= cfg.geo_t_max).nonzero().flatten()[:cfg.geo_clips]
    if len(keep) == 0:
        return pred.sum() * 0, {}
    n = int(zmask[keep].sum(1).max())  # the longest kept clip's latent frames
    motion = model.decode_latents(pred[keep, :, :n].float(), 4 * n)  # (k, 2, 4n, 262), gradients flow back
    with torch.no_grad():
        target = model.decode_latents(z0[keep, :, :n].float(), 4 * n)
    terms = interaction_losses(joints_from_features(motion), joints_from_features(target),
                               zmask[keep, :n].repeat_interleave(4, 1))  # (k, 4n) frame mask
    loss = cfg.geo_weight * sum(w * terms[k] for k, w in GEO_WEIGHTS.items()) + cfg.pen_weight * terms["pen"]
    return loss, {k: v.detach() for k, v in terms.items()}


def extra_loss(cfg):
    """-> `train_denoiser`'s extra_loss for this config: `decoded_motion_loss` where geo_weight or pen_weight is
    on, else None (the paper's latent MSE alone)."""
    return decoded_motion_loss if cfg.geo_weight or cfg.pen_weight else None
