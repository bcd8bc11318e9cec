"""Arguments a user passes to the library, checked before anything runs: whole numbers in range (`check_int`) and
`InterMoE.sample`'s arguments (`sample_args`), each refused in one line naming the argument, and samples that leave
any plausible scene (`warn_beyond_scene`). It imports nothing of
this project's, so intermoe_min imports it.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch

MAX_SEED = 2 ** 63 - 1  # seeds are non-negative (numpy's generators refuse negative ones) and fit in int64
PLAUSIBLE_SCENE = 50  # metres from the origin that no joint of a sample of two people interacting goes beyond


def check_int(value, name: str, low: int | None = None, high: int | None = None) -> int:
    """`value` as an int if it is a whole number (int, numpy integer, 0-d integer tensor) in [low, high];
    otherwise an error naming `name` and what was expected."""
    if isinstance(value, torch.Tensor) and value.ndim == 0 and not value.is_floating_point() \
            and value.dtype != torch.bool:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a whole number (int), got {value!r} ({type(value).__name__})")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"between {low} and {high}" if low is not None and high is not None else \
            f"at least {low}" if low is not None else f"at most {high}"
        raise ValueError(f"{name} must be {bounds}, got {value}")
    return int(value)


def sample_args(prompts, lengths, seed, steps, guidance, *, frames: tuple[int, int], max_steps: int,
                default_steps: int, default_guidance: float):
    """`InterMoE.sample`'s arguments checked and normalised -> (prompts list, lengths list, seed, steps, guidance):
    one prompt or a list; one length for all or one each, within `frames` (lo, hi); steps 1..max_steps; a finite
    guidance; None takes the model's default."""
    prompts = [prompts] if isinstance(prompts, str) else prompts
    if not isinstance(prompts, (list, tuple)) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise TypeError("prompts must be a non-empty list of strings")
    if isinstance(lengths, (torch.Tensor, np.ndarray, range)):
        lengths = list(lengths) if isinstance(lengths, range) else lengths.tolist()  # 0-d: one number
    lengths = list(lengths) if isinstance(lengths, (list, tuple)) else [lengths] * len(prompts)
    lengths = [check_int(n, "lengths", *frames) for n in lengths]
    if len(lengths) != len(prompts):
        raise ValueError(f"got {len(prompts)} prompts but {len(lengths)} lengths")
    seed = None if seed is None else check_int(seed, "seed", 0, MAX_SEED)
    steps = default_steps if steps is None else check_int(steps, "steps", 1, max_steps)
    guidance = default_guidance if guidance is None else guidance
    if isinstance(guidance, torch.Tensor) and guidance.ndim == 0:
        guidance = guidance.item()
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float, np.number)) or not math.isfinite(guidance):
        raise ValueError(f"guidance must be a finite number (1 = no guidance; this model's default is "
                         f"{default_guidance}), got {guidance!r}")
    return list(prompts), lengths, seed, steps, float(guidance)


def warn_beyond_scene(joints: torch.Tensor, why: str) -> None:
    """Warn if any sample of joints (B, ...) has a joint beyond PLAUSIBLE_SCENE metres of the origin (or not finite);
    `why` names what to suspect (a far too strong guidance, say)."""
    far = joints.nan_to_num(nan=math.inf).abs().flatten(1).amax(1)  # (B,) metres from the origin
    if (far > PLAUSIBLE_SCENE).any():
        warnings.warn(f"{int((far > PLAUSIBLE_SCENE).sum())} of {len(far)} samples leave any plausible scene (a joint "
                      f"{far.max().item():.3g} m from the origin, beyond {PLAUSIBLE_SCENE} m; {why})", stacklevel=2)
