"""The model as the command line, the evaluation and the notebooks run it: the paper's InterMoE with this
package plugged into the places it offers. `sample` adds physics guidance (intermoe_tools.physics, scale
cfg.physics) and bodies (intermoe_tools.bodies) to `InterMoE.sample`; `train_denoiser` adds the losses on the
decoded motion (intermoe_tools.motion_losses) where the config turns them on; `reconstruct` is the VAE's encoding
and decoding of a clip (the "VAE ceiling"), as bodies. `InterMoE.sample` alone is the paper's sampler: DDIM with
classifier-free guidance, then the decoder.
"""
from __future__ import annotations

import math

import numpy as np

import intermoe_min as im
from intermoe_tools import bodies as _bodies, motion_losses, physics as _physics


def sample(model: im.InterMoE, prompts, lengths, seed: int | None = None, steps: int | None = None,
           guidance: float | None = None, return_features: bool = False, progress: bool = False,
           physics: float | None = None, bodies: bool = True):
    """`InterMoE.sample` (the same arguments and result) with the final latent moved by physics guidance of scale
    `physics` (default the model's cfg.physics; 0: off, the paper's sampler) and, with bodies, every person made a
    rigid skeleton with planted feet (`bodies_from_features`; False: the decoder's raw joints)."""
    physics = model.cfg.physics if physics is None else physics
    if isinstance(physics, bool) or not isinstance(physics, (int, float, np.number)) \
            or not math.isfinite(physics) or physics < 0:
        raise ValueError(f"physics must be a number >= 0 (0 = no physics guidance; this model's default is "
                         f"{model.cfg.physics}), got {physics!r}")
    return model.sample(prompts, lengths, seed=seed, steps=steps, guidance=guidance, return_features=return_features,
                        progress=progress, guide=_physics.guide(float(physics)),
                        finish=_bodies.bodies_from_features if bodies else None)


def train_denoiser(model: im.InterMoE, records: list[dict], **kw) -> list[dict]:
    """`im.train_denoiser` with the losses on the decoded motion its config asks for (geo_weight, pen_weight:
    `motion_losses.decoded_motion_loss`); every preset leaves them off."""
    return im.train_denoiser(model, records, extra_loss=motion_losses.extra_loss(model.cfg), **kw)


reconstruct = _bodies.reconstruct  # the VAE's reconstruction of a clip, as bodies unless bodies=False
