"""intermoe_tools.runs: training a run into its folder.

`run_training` (the `train` and `demo` commands: both stages into one folder, resumable; stage 1 may be the shipped
VAE: `start_from_shipped_vae`), the checks of a run
folder's checkpoints against the run asked for, `choose_preset` (what a notebook trains on a device), and
`run_lock`: one command at a time in a folder.
"""
from __future__ import annotations

import contextlib
import os
import shlex
import socket
import time
from dataclasses import replace

import torch

import intermoe_min as im
import intersynth
from intermoe_tools import pipeline
from intermoe_tools.devices import rank_world
from intermoe_tools.files import process_alive, remove_stale_temps


def shipped_vae_config(cfg: im.InterMoEConfig, ckpt_path: str) -> im.InterMoEConfig:
    """cfg with stage 1 done by the shipped VAE (or the copy of it ckpt_path already holds): vae_steps its steps,
    vae_from saying where it came from."""
    done = im.load_checkpoint(ckpt_path if os.path.isfile(ckpt_path) else im.SHIPPED_VAE, "vae")["step"]
    return replace(cfg, vae_steps=done,
                   vae_from=f"the shipped VAE, models/{os.path.basename(im.SHIPPED_VAE)} ({done} steps)")


def start_from_shipped_vae(model: im.InterMoE, ckpt_path: str) -> int:
    """Stage 1 done by the shipped VAE: im.SHIPPED_VAE copied to ckpt_path (a finished `train_vae` checkpoint, so
    `train_vae` finds it and returns) unless a VAE is there already, and model.normalizer set to the one that VAE
    learnt with -> its steps."""
    state = im.load_checkpoint(ckpt_path if os.path.isfile(ckpt_path) else im.SHIPPED_VAE, "vae")
    if not os.path.isfile(ckpt_path):
        im.save_checkpoint(ckpt_path, state)
    model.normalizer = im.Normalizer.from_state_dict(state["normalizer"])
    return state["step"]


def choose_preset(device) -> tuple[str, dict, str]:
    """What a notebook trains on `device` -> (preset name, overrides, why): `paper` sizes on a CUDA GPU with
    bf16 and 24 GiB (training takes 14-17 GiB), cut to a lab's steps; `lab` everywhere else."""
    device = torch.device(device)
    if device.type != "cuda":
        return "lab", {}, f"the lab preset on {device.type.upper()}"
    props = torch.cuda.get_device_properties(device)
    gib, bf16 = props.total_memory / 2 ** 30, torch.cuda.is_bf16_supported(including_emulation=False)
    if gib >= 24 and bf16:
        return "paper", dict(vae_steps=2000, steps=5000, warmup=250), \
            (f"paper sizes on {props.name} ({gib:.0f} GiB, bf16), cut to 2,000 + 5,000 steps; the paper's "
             f"schedule is 30,000 + 100,000: im.preset('paper')")
    return "lab", {}, (f"the lab preset on {props.name} ({gib:.0f} GiB{', bf16' if bf16 else ', no bf16'}): "
                       f"paper sizes need 24 GiB and bf16")


def _stage_paths(out: str) -> dict:
    """The files of a run folder: one checkpoint per stage, the whole model and the log."""
    return {"vae": os.path.join(out, "vae.pt"), "denoiser": os.path.join(out, "denoiser.pt"),
            "model": os.path.join(out, "model.pt"), "log": os.path.join(out, "log.json")}


def _fits(weights: dict, cfg, part: str) -> bool:
    """Whether a checkpoint's weights hold the VAE (part 'vae') or the denoiser ('denoiser') of cfg's sizes: their
    shapes against the network built on the meta device (no memory, no time)."""
    with torch.device("meta"):
        net = im.CausalSkeletalVAE(cfg.vae) if part == "vae" else im.CooperativeDenoiser(cfg.denoiser)
    prefix = f"{part}." if any(k.startswith(f"{part}.") for k in weights) else ""
    held = {k[len(prefix):]: tuple(v.shape) for k, v in weights.items() if k.startswith(prefix)}
    return held == {k: tuple(v.shape) for k, v in net.state_dict().items()}


def _presets_of(held: dict) -> list:
    """The presets whose sizes every checkpoint in held ({part: checkpoint}) has."""
    return [n for n in im.PRESETS if all(_fits(state["model"], im.preset(n), part) for part, state in held.items())]


def check_vae(path: str, cfg, study: str) -> dict:
    """The stage-1 checkpoint at path, refused (CheckpointError) unless its VAE has cfg's sizes; study names cfg."""
    state = im.load_checkpoint(path, "vae")
    if not _fits(state["model"], cfg, "vae"):
        names = _presets_of({"vae": state})
        raise im.CheckpointError(f"{path} holds a VAE of {'--preset ' + ' or '.join(names) if names else 'no preset'}"
                                 f"'s size, not of {study}'s: pass a vae.pt trained with {study}, or none to train one")
    return state


def _check_run_folder(out: str, cfg, name: str | None) -> None:
    """Before anything loads, a run folder's checkpoints against the run asked for (cfg, of preset `name`): of its
    sizes; trained no further than it asks (a model is never relabelled with fewer steps than it has); stage 1 not
    trained further under a begun stage 2. Each refusal says the command that resumes the folder's own run."""
    paths = _stage_paths(out)
    held = {part: im.load_checkpoint(paths[part], part) for part in ("vae", "denoiser") if os.path.isfile(paths[part])}
    if not held:
        return
    done = {part: state["step"] for part, state in held.items()}
    theirs = held["denoiser" if "denoiser" in held else "vae"]["config"]  # the run's own targets, as it recorded them
    names = _presets_of(held)
    own = name if name in names else (names or [None])[0]
    resume = "python intermoe_min.py train" + (f" --preset {own}" if own else "") + f" --out {shlex.quote(out)}" + \
        ("" if theirs.get("vae_from", "").startswith("the shipped VAE") else f" --vae-steps {theirs['vae_steps']}") + \
        f" --steps {theirs['steps']}" + (f" --seed {held_seed}" if (held_seed := next(iter(held.values())).get("seed", 0))
                                          else "")
    if not all(_fits(state["model"], cfg, part) for part, state in held.items()):
        raise im.CheckpointError(
            f"{out} holds a run of {'--preset ' + ' or '.join(names) if names else 'sizes no preset has'} "
            f"({', '.join(paths[p] for p in held)}), not of {f'--preset {name}' if name else 'this configuration'}: "
            f"resume it with {resume}, or pass another --out")
    for part, flag, want in (("vae", "--vae-steps", cfg.vae_steps), ("denoiser", "--steps", cfg.steps)):
        if done.get(part, 0) > want:
            raise im.CheckpointError(
                f"{paths[part]} was trained for {done[part]} steps, more than the {want} asked ({flag} {want}): the "
                f"run stays as it was. Resume or extend it with {resume} (or more steps), or pass another --out")
    if "denoiser" in held:  # stage 2 has begun: stage 1 must not change the VAE under it
        if "vae" not in held:
            raise im.CheckpointError(f"{paths['denoiser']} was trained on the VAE in {paths['vae']}, which is gone: "
                                     f"a new one would not be the same. Delete {paths['denoiser']} too, or use "
                                     f"another output folder.")
        if done["vae"] < cfg.vae_steps:
            raise im.CheckpointError(
                f"{paths['denoiser']} was trained on the VAE in {paths['vae']} ({done['vae']} steps); training stage 1 "
                f"to {cfg.vae_steps} steps would change that VAE under it. Delete {paths['denoiser']} to train stage 2 "
                f"afresh on a longer-trained VAE, keep the VAE as it is (--vae-steps {done['vae']}), or use another "
                f"output folder.")


def _stage_seconds(history: list, t0: float, own: bool = True) -> float:
    """A stage's training seconds, summed over every run that trained it (its history's last 'seconds', which the
    checkpoints carry across resumes); this run's own time where that is more, or where own is False."""
    return round(max(time.time() - t0, history[-1]["seconds"] if own and history else 0.0), 1)


def run_training(cfg, out: str, vae_steps=None, steps=None, seed: int = 0, stages=("vae", "denoiser"),
                 name: str | None = None):
    """The `train` command: the stages into the folder `out` -> (model, log of losses and timings). Run it
    again after an interruption and it resumes; a folder of another preset (name: this run's, for messages), one
    trained for more steps than asked, or stage 1 trained further under a begun stage 2 are refused before
    anything loads. Under torchrun every rank trains; rank 0 generates the data first and writes the files."""
    rank, world = rank_world()
    paths = _stage_paths(out)
    # the model records the steps it is trained for (its schedule's length), not the preset's defaults
    cfg = replace(cfg, **{k: v for k, v in (("vae_steps", vae_steps), ("steps", steps)) if v is not None})
    shipped = cfg.shipped_vae and vae_steps is None and seed == 0  # stage 1: the VAE that ships
    if shipped:
        cfg = shipped_vae_config(cfg, paths["vae"])
    elif cfg.shipped_vae:
        cfg = replace(cfg, vae_from=f"trained in {out} ({cfg.vae_steps} steps)")
    _check_run_folder(out, cfg, name)
    os.makedirs(out, exist_ok=True)
    log = {}
    if shipped:
        print(f"stage 1: {cfg.vae_from}; train --vae-steps N trains one")
    t = time.time()
    if rank == 0:  # one process writes the data cache; the others read it afterwards
        train = intersynth.load_split("train", cfg.n_clips, seed)
    if world > 1:
        torch.distributed.barrier()
    if rank != 0:
        train = intersynth.load_split("train", cfg.n_clips, seed)
    log["data_seconds"] = round(time.time() - t, 2)
    log["train_clips"] = len(train)
    model = im.build_model(cfg, train, seed)  # a resumed run rebuilds the same vocabulary, normaliser and weights
    if shipped and rank == 0:
        start_from_shipped_vae(model, paths["vae"])
    if world > 1:
        torch.distributed.barrier()
    if os.path.isfile(paths["vae"]):  # features are normalised as the VAE learnt them (the shipped VAE's own)
        model.normalizer = im.Normalizer.from_state_dict(im.load_checkpoint(paths["vae"], "vae")["normalizer"])
    t = time.time()
    log["vae_history"] = im.train_vae(model, train, steps=vae_steps, ckpt_path=paths["vae"], seed=seed)
    log["vae_seconds"] = _stage_seconds(log["vae_history"], t, own=not shipped)
    log["earlier_seconds"] = round(log["vae_seconds"] - (time.time() - t), 1)  # training in runs this one resumed
    if "denoiser" in stages:
        t = time.time()
        log["denoiser_history"] = pipeline.train_denoiser(model, train, steps=steps, ckpt_path=paths["denoiser"], seed=seed)
        log["denoiser_seconds"] = _stage_seconds(log["denoiser_history"], t)
        log["earlier_seconds"] = round(log["earlier_seconds"] + log["denoiser_seconds"] - (time.time() - t), 1)
        if rank == 0:
            model.save(paths["model"])
    return model, log


# ---- one run in a folder at a time ----------------------------------------------------------------------------
LOCK_FILE = ".lock"  # in a folder a command works in: "pid host command" of the process that holds it


class FolderInUse(RuntimeError):
    """A folder that another running command holds (`run_lock`)."""


@contextlib.contextmanager
def run_lock(folder: str, arg: str = "--out", command: str = "python intermoe_min.py"):
    """Holds `folder` for this process while the block runs: a lock file created only if there is none (O_EXCL),
    holding this process's id, host and command, removed at the end. Another command on the folder is refused
    (FolderInUse, naming the process that holds it and `arg`, the option that chose the folder); a lock whose
    process is gone (killed) is taken over with a notice. Then the temporary files of killed writes are removed."""
    os.makedirs(folder, exist_ok=True)
    path, host = os.path.join(folder, LOCK_FILE), socket.gethostname()
    me = f"{os.getpid()} {host} {command}\n"
    with _folder_mutex(folder):  # one command at a time reads, takes over and writes the lock
        _take_lock(folder, path, host, me, arg)
    removed = remove_stale_temps(folder)
    if removed:
        print(f"{folder}: removed {len(removed)} temporary file(s) of a killed run: {', '.join(removed)}")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            with open(path, encoding="utf-8") as f:
                mine = f.read() == me
            if mine:
                os.remove(path)


@contextlib.contextmanager
def _folder_mutex(folder: str):
    """An OS lock on the folder itself (flock, released when the process ends, however it ends) around the
    check-and-take of `run_lock`, so two commands that find the same stale lock cannot both take it over. Where
    there is no flock (Windows), the O_EXCL create alone refuses a live holder."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _take_lock(folder: str, path: str, host: str, me: str, arg: str) -> None:
    """`run_lock`'s lock file created and written (a stale one removed first), or FolderInUse."""
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            try:
                with open(path, encoding="utf-8") as f:
                    pid, their_host, their_command = (f.read().strip().split(" ", 2) + ["", "", ""])[:3]
                age = time.time() - os.path.getmtime(path)
            except FileNotFoundError:  # its holder just let it go
                continue
            gone = their_host == host and pid.isdigit() and not process_alive(int(pid)) or not pid and age > 10
            if not gone:
                where = f"process {pid}" + ("" if their_host == host else f" on {their_host}") if pid else "a starting run"
                raise FolderInUse(f"{folder} is in use by {where} ({their_command or 'its command'}): wait for it to "
                                  f"end, or pass another {arg} (if no such run is going on, delete {path})")
            print(f"{folder}: taking over the lock of process {pid or '?'} ({their_command}), which is no longer running")
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(me)
