"""Files written whole, and checkpoints: `atomic_write` (a reader sees the old file or the new one, never part of
one), the temporary files a killed writer leaves (`remove_stale_temps`), and `save_checkpoint` / `load_checkpoint`
(a format number and a checksum of the tensors, read with weights_only=True), `Checkpointable` (save and load of a
network with its configuration), and what a resumable training checkpoint keeps (`rng_state`, `resume_training`).

It imports only intermoe_tools.devices (a leaf too), so intermoe_min imports it: every checkpoint the model writes
goes through it, and none of it is the paper's.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import pickle
import re
import shutil
import time
import zipfile
from dataclasses import asdict

import torch

from intermoe_tools.devices import pick_device


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable, damaged or of the wrong kind."""


class WriteError(OSError):
    """A file that could not be written whole (a full disk, a folder that cannot be written); it was left as it was."""


# Bumped when saved weights would mean something else (2: sinusoids as [sin | cos] halves, not interleaved).
CHECKPOINT_FORMAT = 2
TEMP_NAME = re.compile(r"\.tmp(\d+)(\.\w+)?$")  # `temp_path`'s names: the writing process's id, then the extension


def temp_path(path: str) -> str:
    """Where `atomic_write` writes `path` first: beside it, named by this process, with its extension (Pillow and
    matplotlib choose the format by it). vae.pt -> vae.tmp1234.pt."""
    root, ext = os.path.splitext(os.fspath(path))
    return f"{root}.tmp{os.getpid()}{ext}"


def atomic_write(paths, write, what: str = "file"):
    """write(temp) fills a temporary file (`temp_path`) for `paths`, or, for a list of paths, write (a list of
    functions, one a path, called in order) fills one each; then each temporary file replaces its path by a rename.
    A reader sees the old file or the new one, never part of one, and the files of one call come from that call: a
    failure or Ctrl-C before the renames removes every temporary file and leaves every path as it was. A write that
    fails raises WriteError naming the file (and, when the disk is full, its free space). Returns paths."""
    one = isinstance(paths, (str, os.PathLike))
    paths, writes = ([os.fspath(paths)], [write]) if one else ([os.fspath(p) for p in paths], list(write))
    temps, path, renamed = [temp_path(p) for p in paths], paths[0], []
    try:
        for path, temp, fill in zip(paths, temps, writes):
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            fill(temp)
        for path, temp in zip(paths, temps):
            os.replace(temp, path)
            renamed.append(path)
    except BaseException as e:  # a failed write (torch says 'enforce fail ...'), or Ctrl-C mid-write
        folder = os.path.dirname(os.path.abspath(path))
        free = shutil.disk_usage(folder).free if os.path.isdir(folder) else 0  # while partial files take space
        for temp in temps:
            with contextlib.suppress(OSError):
                os.remove(temp)
        if not isinstance(e, (OSError, RuntimeError)):
            raise
        kept = f"{', '.join(renamed)} already replaced, the rest as they were" if renamed else \
            "every file there is as it was" if not one else \
            f"the last good {what} at {path} is intact" if os.path.isfile(path) else f"no {what} was left there"
        if getattr(e, "errno", None) == errno.ENOSPC or free < 64 * 2 ** 20:
            raise WriteError(f"could not write the {what} {path}: the disk is full ({free / 2 ** 20:.0f} MiB free in "
                             f"{folder}); {kept}. Free some space (or pass another output folder) and run the same "
                             f"command again.") from e
        raise WriteError(f"could not write the {what} {path} ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''}); {kept}.") from e
    return paths[0] if one else paths


def process_alive(pid: int) -> bool:
    """Whether process `pid` is running on this machine."""
    if os.name == "nt":  # os.kill would end it
        import ctypes
        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        code = ctypes.c_ulong()
        alive = bool(handle) and ctypes.windll.kernel32.GetExitCodeProcess(handle, ctypes.byref(code)) \
            and code.value == 259  # STILL_ACTIVE
        if handle:
            ctypes.windll.kernel32.CloseHandle(handle)
        return bool(alive)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


STALE_TEMP_S = 600  # seconds since its last write after which a dead process's temporary file is swept


def remove_stale_temps(folder: str) -> list:
    """Removes the temporary files (`temp_path`'s, and name.ext.tmpPID) that writers killed mid-write left in
    `folder`; a file of a process still running here is kept, and so is any file younger than STALE_TEMP_S (its
    writer may be on another machine sharing the folder, whose process ids this one cannot see). -> the names."""
    gone = []
    for name in os.listdir(folder) if os.path.isdir(folder) else []:
        m, file = TEMP_NAME.search(name), os.path.join(folder, name)
        if m and os.path.isfile(file) and not process_alive(int(m.group(1))) \
                and time.time() - os.path.getmtime(file) > STALE_TEMP_S:
            with contextlib.suppress(OSError):
                os.remove(os.path.join(folder, name))
                gone.append(name)
    return gone


def tensor_digest(state) -> str:
    """sha256 of every tensor in a state (a state_dict, or nested dicts and lists), each with its place in it, in
    sorted order: a checkpoint's checksum (the entry 'checksum' itself left out) and `vae_fingerprint`."""
    h = hashlib.sha256()

    def walk(x, name):
        if isinstance(x, torch.Tensor):
            h.update(name.encode())
            h.update(x.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
        elif isinstance(x, dict):
            for k in sorted(x, key=str):
                if not (k == "checksum" and not name):
                    walk(x[k], f"{name}/{k}" if name else str(k))
        elif isinstance(x, (list, tuple)):
            for i, v in enumerate(x):
                walk(v, f"{name}/{i}")
    walk(state, "")
    return h.hexdigest()


def save_checkpoint(path: str, state: dict) -> None:
    """`atomic_write` of `state` with the format number and a checksum of its tensors (`tensor_digest`): an
    interrupted or failed save (a full disk) leaves the previous checkpoint whole and no temporary file."""
    state = {**state, "format": CHECKPOINT_FORMAT}
    state["checksum"] = tensor_digest(state)
    try:
        atomic_write(path, lambda tmp: torch.save(state, tmp), what="checkpoint")
    except WriteError as e:
        raise CheckpointError(str(e)) from e.__cause__


def load_checkpoint(path: str, kind: str | None = None) -> dict:
    """A checkpoint `save_checkpoint` wrote, or a clear CheckpointError. Only tensors and plain values are
    read (weights_only=True): a .pt file from elsewhere cannot run code here."""
    if not os.path.isfile(path):
        raise CheckpointError(f"no checkpoint at {path}")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive
        raise CheckpointError(f"{path} is not a readable checkpoint (not a file torch.save writes)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))  # a pickled Python object
        raise CheckpointError(
            f"{path} holds pickled Python objects ({found.group(1) if found else 'not only tensors and plain values'}), "
            f"and intermoe_min does not load such files: unpickling them can run any code. It was not written "
            f"by this version of intermoe_min (earlier versions stored numpy arrays: delete such a file and train "
            f"it again; a cached evaluator in runs/evaluator is retrained by itself once deleted).") from e
    except Exception as e:  # truncated or not a torch file
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(state, dict) or "kind" not in state:
        raise CheckpointError(f"{path} was not written by intermoe_min (no 'kind' entry)")
    if state.get("format") != CHECKPOINT_FORMAT:  # loadable, but its weights would be read another way
        raise CheckpointError(f"{path} was written by an earlier version of intermoe_min (checkpoint format "
                              f"{state.get('format', 1)}, this version reads {CHECKPOINT_FORMAT}): train it again (a "
                              f"cached evaluator in runs/evaluator is retrained by itself once deleted)")
    if "checksum" in state and tensor_digest(state) != state["checksum"]:  # checkpoints written before have none
        raise CheckpointError(f"{path} is damaged (its tensors no longer match the checksum saved with them): train "
                              f"it again or restore it from a copy")
    if kind is not None and state["kind"] != kind:
        raise CheckpointError(f"{path} holds a '{state['kind']}' checkpoint, expected '{kind}'")
    return state


# ---- the random state a resumable checkpoint stores -------------------------------------------------------
def rng_state(device: torch.device) -> dict:
    """This process's random state (timesteps, noise, dropout): the CPU generator's and the accelerator's."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    elif device.type == "mps":
        state["mps"] = torch.mps.get_rng_state()
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    """`rng_state`'s state restored: a resumed run draws what the interrupted one would have."""
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
    elif device.type == "mps" and "mps" in state:
        torch.mps.set_rng_state(state["mps"])


# ---- a network saved with what rebuilds it -----------------------------------------------------------------
class Checkpointable:
    """save(path) and cls.load(path) for a network built as cls(cfg, **parts) (InterMoE, and the evaluation
    networks): its configuration (a dataclass) and the parts STORED names (part -> its class, which has state_dict()
    and from_state_dict()) travel with the weights, as plain values."""
    KINDS: tuple = ()  # checkpoint kinds `load` takes; `save` writes the first
    STORED: dict = {}

    @staticmethod
    def config_from_dict(d: dict):  # each class: its configuration from the plain values asdict() gave
        raise NotImplementedError

    def checkpoint_state(self) -> dict:
        return {"config": asdict(self.cfg), **{name: getattr(self, name).state_dict() for name in self.STORED}}

    def save(self, path: str, half: bool = False) -> None:
        """half: parameters stored as float16 (half the file; `load` gives float32 back), buffers as they are."""
        weights = self.state_dict()
        if half:
            params = {n for n, _ in self.named_parameters()}
            weights = {n: v.half() if n in params and v.is_floating_point() else v for n, v in weights.items()}
        save_checkpoint(path, {"kind": self.KINDS[0], "model": weights, **self.checkpoint_state()})

    @classmethod
    def load(cls, path: str, device=None):
        """The network a checkpoint of `save` (or of its training) holds, in eval mode on `device`."""
        state = load_checkpoint(path)
        if state["kind"] not in cls.KINDS:
            raise CheckpointError(f"{path} holds a '{state['kind']}' checkpoint, expected "
                                  + " or ".join(f"'{k}'" for k in cls.KINDS))
        missing = [k for k in ("model", "config", *cls.STORED) if k not in state]
        if missing:
            raise CheckpointError(f"{path} is a '{state['kind']}' checkpoint without its {', '.join(missing)}: "
                                  f"it cannot rebuild a {cls.__name__} (was it written by its save or training?)")
        try:
            cfg = cls.config_from_dict(state["config"])
        except TypeError as e:  # a field this version does not know, or lacks
            raise CheckpointError(f"{path} holds a configuration this version cannot build ({e}): train again") from e
        net = cls(cfg, **{name: part.from_state_dict(state[name]) for name, part in cls.STORED.items()})
        try:
            net.load_state_dict(state["model"])
            if "ema" in state:  # a training checkpoint: its averaged weights, what sampling uses
                net.load_state_dict(state["ema"]["shadow"], strict=False)
        except RuntimeError as e:
            raise CheckpointError(f"{path} does not match its own configuration: {e}") from e
        return net.to(device or pick_device()).eval()


def resume_training(path: str, kind: str, seed: int, module, opt, sched, ema, device, rank: int = 0):
    """A training run picked up where its checkpoint at `path` stopped -> (step, history, seconds trained): the
    module's weights, the optimiser, the schedule, the EMA (None: the run keeps none) and this rank's random state
    restored. Refused, in a line naming what differs, if it was trained with another seed (its data order and
    augmentations were drawn from it), by another configuration, or with(out) an EMA unlike this run."""
    state = load_checkpoint(path, kind)
    if state["seed"] != seed:
        raise CheckpointError(f"{path} was trained with seed {state['seed']}, this run asks for seed "
                              f"{seed}: resume it with seed {state['seed']}, or use another output folder")
    try:
        module.load_state_dict(state["model"])
    except RuntimeError as e:  # a checkpoint of another configuration: say so, not a wall of shapes
        raise CheckpointError(f"{path} was written by a model of another configuration; use another "
                              f"path or delete it to start afresh ({str(e).splitlines()[0]})") from e
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    if ema is not None:
        if "ema" not in state:
            raise CheckpointError(f"{path} was trained without an EMA of its weights; resume it without "
                                  f"ema_decay, or use another output folder")
        ema.load_state_dict(state["ema"])
    set_rng_state(state["rng"][rank] if rank < len(state["rng"]) else state["rng"][0], device)
    return state["step"], state["history"], state.get("seconds", 0.0)
