"""Where training runs, beyond the paper: the device (`pick_device`: CUDA, Apple's MPS or the CPU), torchrun's
process group (`init_distributed`, `rank_world`) and the DataLoader's worker processes. It imports nothing of this
project's, so intermoe_min's training machinery uses it.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def pick_device(prefer: str | None = None) -> torch.device:
    """`prefer`, else $INTERMOE_DEVICE (the tests set cpu; any case), else CUDA, then Apple's MPS, then the CPU. A
    device asked for that is not there is refused, in one line naming where it was asked for."""
    asked = prefer or os.environ.get("INTERMOE_DEVICE")
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if not asked:
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps else "cpu")
    where = f"INTERMOE_DEVICE={asked}" if not prefer else f"device {asked!r}"
    try:
        device = torch.device(str(asked).strip().lower())
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"{where} is not a device: use cpu, cuda (or cuda:N) or mps")
    if device.type == "cuda" and not (torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()):
        raise ValueError(f"{where}, but torch sees no CUDA GPU{'' if device.index is None else f' {device.index}'} "
                         f"here (a CPU build of torch, or no driver): use cpu")
    if device.type == "mps" and not mps:
        raise ValueError(f"{where}, but Apple's MPS is not available here: use cpu")
    return device


def init_distributed() -> tuple[int, int]:
    """Join the process group torchrun describes (gloo on CPU, NCCL on GPUs) -> (rank, world size);
    (0, 1) when not launched by torchrun."""
    if not (dist.is_available() and dist.is_initialized()) and "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    return rank_world()


def rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def default_workers(device: torch.device) -> int:
    """Stage 1's DataLoader processes: none off CUDA (they would take the model's cores); on CUDA a few per
    process, so features are made while the GPU computes."""
    if device.type != "cuda":
        return 0
    per_process = (os.cpu_count() or 2) // int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    return max(0, min(4, per_process - 1))
