"""An exponential moving average of a model's weights, beyond the paper: stage 2 samples with it where the config
asks (InterMoEConfig.ema_decay; 0 in every preset). It imports nothing of this project's, so intermoe_min's
train_loop uses it.
"""
from __future__ import annotations

import torch


class EMA:
    """An exponential moving average of parameters, the weights a diffusion model samples with (DDPM, Ho et
    al. 2020): shadow <- d shadow + (1 - d) weights after every step, d = min(decay, (1 + k) / (10 + k)) at
    update k (TensorFlow's ExponentialMovingAverage warm-up), so a short run's average does not lag behind."""

    def __init__(self, named_params, decay: float):
        self.decay, self.updates = decay, 0
        self.shadow = {n: p.detach().clone() for n, p in named_params}

    def rate(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, named_params) -> None:
        d, named = self.rate(), list(named_params)
        # shadow + (1 - d) (p - shadow), every tensor in one call (as torch.optim.swa_utils does)
        torch._foreach_lerp_([self.shadow[n] for n, _ in named], [p.detach() for _, p in named], 1 - d)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.decay, self.updates = state["decay"], state["updates"]
        for n, v in state["shadow"].items():
            self.shadow[n].copy_(v)
