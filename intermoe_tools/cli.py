"""intermoe_tools.cli: the command line.

    python intermoe_min.py {demo, train, train-vae, sample, evaluate, ablate} ...
    intermoe {demo, train, train-vae, sample, evaluate, ablate} ...      (the same, installed by pip)
    python -m intermoe_tools.cli ...                                      (the same)

`main` parses the arguments, takes the folder's lock and runs the command; each command's work lives in the
module of its job (runs, evaluation, ablation, viz, export).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import sys
import time
import warnings

import torch

import intermoe_min as im
from intermoe_tools import pipeline
from intermoe_tools.devices import init_distributed, pick_device, rank_world
from intermoe_tools.files import WriteError, atomic_write
from intermoe_tools.viz import _filmstrips_writer, _gif_writer
from intermoe_tools.export import _bvh_writers, _write_text
from intermoe_tools.evaluation import run_evaluation
from intermoe_tools.runs import _stage_paths, check_vae, FolderInUse, run_lock, run_training
from intermoe_tools.ablation import (ablation_markdown, ABLATION_METRICS, ablation_preset, ABLATIONS, LEVER_METRICS,
                                     run_ablation)


# intermoe_min.py, run as a script, calls `main` (the model file itself imports nothing of this file).

DEMO_PROMPTS = [
    "two people shake hands with their right hands",
    "one person punches and the other dodges",
    "the two people circle each other clockwise",
    "one person waves from afar and the other waves back",
]


class _ShowDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows each option's default, where it has one."""

    def _get_help_string(self, action):
        return action.help if action.default in (None, False) else super()._get_help_string(action)


def _parser() -> argparse.ArgumentParser:
    prog = "intermoe" if os.path.basename(sys.argv[0]) == "intermoe" else "python intermoe_min.py"  # as it was called
    p = argparse.ArgumentParser(prog=prog, description=im.__doc__.splitlines()[0])
    common = argparse.ArgumentParser(add_help=False)  # options every command takes
    common.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's, one per core, the "
                        "fastest on an idle machine; on a machine other jobs share, use 1)")
    common.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = p.add_subparsers(dest="cmd", required=True)

    def add(name, helptext):  # p.commands[name]: the command's own parser, for its errors
        p.commands[name] = sub.add_parser(name, parents=[common], help=helptext, formatter_class=_ShowDefaults)
        return p.commands[name]
    p.commands = {}
    d = add("demo", "generate data, train both stages, sample prompts to GIFs")
    d.add_argument("--preset", default="lab", choices=list(im.PRESETS), help="the model's sizes and schedule (im.PRESETS)")
    d.add_argument("--quick", action="store_true", help="a short run (minutes) to check everything works")
    d.add_argument("--out", help="run folder (default runs/demo, or runs/demo-quick with --quick)")
    d.add_argument("--seed", type=int, default=0, help="data, initial weights, training and samples")
    for name, helptext in (("train-vae", "stage 1 only"), ("train", "both stages (stage 1 is skipped when done)")):
        s = add(name, helptext)
        s.add_argument("--preset", default="lab", choices=list(im.PRESETS),
                       help="the model's sizes and schedule (im.PRESETS)")
        s.add_argument("--out", required=True, help="run folder: vae.pt, denoiser.pt, model.pt, log.json")
        s.add_argument("--vae-steps", type=int, help="stage-1 steps (default: the preset's; with lab, its shipped VAE)")
        s.add_argument("--steps", type=int, help="stage-2 denoiser steps (default: the preset's)")
        s.add_argument("--seed", type=int, default=0, help="data, initial weights and training")
    s = add("sample", "generate from a trained model")
    s.add_argument("--ckpt", help="model.pt written by train or demo (default: the shipped model, im.pretrained())")
    s.add_argument("--prompt", action="append", required=True, help="repeat for several")
    s.add_argument("--length", type=int, default=120, help=f"frames at 30 fps ({im.MIN_FRAMES}..{im.MAX_FRAMES})")
    s.add_argument("--seed", type=int, default=0, help="the starting noise")
    s.add_argument("--physics", type=float, help="physics guidance scale (default: the model's; 0: off, the paper's "
                   "sampler): pushes overlapping bodies apart and, when the prompt asks for touch, a hand to the partner")
    s.add_argument("--out", default=os.path.join("runs", "samples"), help="folder for the GIFs (sample_0.gif, ...)")
    s.add_argument("--strip", help="also write one PNG with a filmstrip of every prompt, one row each")
    s.add_argument("--bvh", action="store_true", help="also write each sample as two BVH files (one per person, "
                   "for Blender and other tools) next to its GIF: sample_0_p1.bvh, sample_0_p2.bvh, ...")
    e = add("evaluate", "the results table of a trained model (evaluator and role classifier trained once, "
                        "cached in runs/evaluator)")
    e.add_argument("--ckpt", required=True, help="model.pt written by train or demo")
    e.add_argument("--repeats", type=int, default=5, help="fresh generations of the test set (InterGen: 20)")
    e.add_argument("--mm", type=int, nargs=2, default=[20, 10], metavar=("CAPTIONS", "GENERATIONS"),
                   help="MultiModality: captions x generations each (InterGen: 100 30)")
    e.add_argument("--out", help="where evaluation.md and .json go (default: the checkpoint's folder; the "
                   "repository's published table: --out results)")
    a = add("ablate", "the paper's ablation table (the default: in miniature, about an hour)")
    a.add_argument("--work", default=os.path.join("runs", "ablation"), help="cache of models and runs (resumable)")
    a.add_argument("--out", help="where ablation.md and ablation.json go (default: --work; the repository's "
                   "published table: --out results)")
    a.add_argument("--vae", help="a trained vae.pt of the lab preset to share (default: train one)")
    a.add_argument("--steps", type=int, help="denoiser steps per run (default: the study's 300)")
    a.add_argument("--variants", nargs="+", metavar="NAME",
                   help="default: the paper's variants; any of: " + "; ".join(f"'{n}'" for n in ABLATIONS))
    a.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one run per variant and seed")
    a.add_argument("--repeats", type=int, default=2, help="fresh generations of the test batch per run")
    a.add_argument("--test-clips", type=int, default=96, help="test clips each run is judged on (0: the whole split)")
    a.add_argument("--smoke", action="store_true", help="a tiny study (seconds) to check the pipeline")
    a.add_argument("--cached-only", action="store_true",
                   help="train no run: write the report from the runs finished so far (a long study's progress; "
                        "give the study's own arguments)")
    a.add_argument("--preset", default="ablation", choices=list(im.PRESETS), help="the model every variant changes")
    a.add_argument("--report", default="ablation", choices=["ablation", "levers"],
                   help="the page's name and columns: the paper's ablation, or the lever screen")
    return p


def _check_args(p: argparse.ArgumentParser, args) -> None:
    """Refuse bad values before anything slow (loading a model, generating data) starts."""
    p = p.commands[args.cmd]  # errors show the command's own usage line
    def positive(name, low=1):
        v = getattr(args, name, None)
        if v is not None and v < low:
            p.error(f"--{name.replace('_', '-')} must be at least {low}, got {v}")
    positive("threads")
    for seed in [args.seed] if hasattr(args, "seed") else getattr(args, "seeds", []):
        if not 0 <= seed <= im.MAX_SEED:
            p.error(f"--{'seed' if hasattr(args, 'seed') else 'seeds'} must be between 0 and 2**63 - 1, got {seed}")
    for name in ("repeats", "vae_steps", "steps", "test_clips"):
        positive(name, 0 if name.endswith("steps") or name == "test_clips" else 1)
    if args.cmd == "ablate" and args.variants:
        unknown = [v for v in args.variants if v not in ABLATIONS]
        if unknown:
            p.error(f"--variants: unknown {unknown}; choose from {list(ABLATIONS)}")
    if args.cmd == "evaluate" and min(args.mm) < 1:
        p.error(f"--mm takes two counts of at least 1, got {args.mm[0]} {args.mm[1]}")
    if args.cmd == "sample":
        if not im.MIN_FRAMES <= args.length <= im.MAX_FRAMES:
            p.error(f"--length must be between {im.MIN_FRAMES} and {im.MAX_FRAMES} frames (30 fps), got {args.length}")
        if any(not prompt.strip() for prompt in args.prompt):
            p.error("--prompt must not be empty")
        if args.physics is not None and not (math.isfinite(args.physics) and args.physics >= 0):
            p.error(f"--physics must be a number >= 0 (0: off), got {args.physics}")
    for name in ("ckpt", "vae"):
        path = getattr(args, name, None)
        if path is not None and os.path.isdir(path):
            p.error(f"--{name}: {path} is a folder; pass the checkpoint in it"
                    + (f", e.g. {os.path.join(path, 'model.pt')}" if name == "ckpt" else ""))
        if path is not None and not os.path.isfile(path):
            p.error(f"--{name}: no file {path}")
    for name in ("out", "work"):  # folders a command writes into
        if getattr(args, name, None) is not None:
            _check_writable(p, f"--{name}", args.__dict__[name], folder=True)
    if getattr(args, "strip", None) is not None:
        _check_writable(p, "--strip", args.strip, folder=False)
        from PIL import Image
        Image.init()
        kinds = {ext for ext, kind in Image.registered_extensions().items() if kind in Image.SAVE}
        if os.path.splitext(args.strip)[1].lower() not in kinds:
            p.error(f"--strip: {args.strip} has no picture extension Pillow writes (.png, .jpg, ...): e.g. "
                    f"{os.path.splitext(args.strip)[0]}.png")
    try:
        pick_device()  # $INTERMOE_DEVICE, if set, names a device that is there
    except ValueError as e:
        p.error(str(e))
    if args.cmd == "ablate" and args.vae:
        study = "--smoke (--preset nano)" if args.smoke else f"--preset {args.preset}"
        try:
            check_vae(args.vae, ablation_preset(args.smoke, args.preset), study)
        except im.CheckpointError as e:
            p.error(f"--vae: {e}")


def _check_writable(p, arg: str, path: str, folder: bool) -> None:
    """A path a command will write (a folder, or a file when folder is False): refused now, naming `arg`, if it is a
    file where a folder is needed (or the reverse), lies under a file, or its nearest existing folder cannot be
    written."""
    if folder and os.path.isfile(path):
        p.error(f"{arg}: {path} is a file, not a folder; pass a folder")
    if not folder and os.path.isdir(path):
        p.error(f"{arg}: {path} is a folder; pass a file name, e.g. {os.path.join(path, 'strip.png')}")
    above = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(above):
        above = os.path.dirname(above)
    if not os.path.isdir(above):
        p.error(f"{arg}: {os.path.relpath(above) if not os.path.isabs(path) else above} is a file, not a folder; "
                f"pass a path under a folder")
    if not os.access(above, os.W_OK | os.X_OK):
        p.error(f"{arg}: {above} cannot be written (no permission there); pass another path")


def main(argv=None):
    p = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = p.parse_args(argv)
    prog = p.prog if os.environ.get("WORLD_SIZE", "1") == "1" else \
        f"torchrun --nproc_per_node {os.environ.get('LOCAL_WORLD_SIZE', os.environ['WORLD_SIZE'])} intermoe_min.py"
    args.command = f"{prog} " + shlex.join(argv)  # the command again: resumes, names a lock's holder
    _check_args(p, args)
    if args.threads:
        torch.set_num_threads(args.threads)
    shown = warnings.formatwarning
    if not args.debug:  # a warning is a line for the user (e.g. words the model does not know), not a traceback
        warnings.formatwarning = lambda message, *rest, **kw: f"warning: {message}\n"
    try:
        _run(args)
    except KeyboardInterrupt:  # Ctrl-C: one line, what was kept and how to go on
        if args.debug:
            raise
        from tqdm import tqdm
        for bar in list(getattr(tqdm, "_instances", [])):  # ended now, not drawn again after the message
            bar.close()
        if rank_world()[0] == 0:  # under torchrun: once, not once per process
            print(f"interrupted: {_after_interrupt(args)}", file=sys.stderr)
        raise SystemExit(130) from None
    except (ValueError, TypeError, OSError, FloatingPointError, im.CheckpointError, im.DataError, FolderInUse) as e:
        if args.debug:
            raise
        ours = isinstance(e, (im.CheckpointError, im.DataError, WriteError, FolderInUse))  # say all there is
        hint = "" if ours else "\n(run again with --debug to see where it happened)"
        print(f"error: {e}{hint}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        warnings.formatwarning = shown  # main() may be called in-process (tests, notebooks)


def _after_interrupt(args) -> str:
    """What an interrupted command kept, and the command that goes on from there."""
    if args.cmd == "sample":
        return f"no sample was written; {args.out} holds the earlier samples as they were"
    if args.cmd in ("evaluate", "ablate"):
        return f"finished parts are cached; the same command goes on from them: {args.command}"
    paths = _stage_paths(_run_folder(args))
    last = [paths[k] for k in ("denoiser", "vae") if os.path.isfile(paths[k])]
    return (f"the last checkpoint is {last[0]}; the same command resumes from it: {args.command}" if last else
            f"before the first checkpoint; the same command starts again: {args.command}")


def _run_folder(args) -> str:
    """The folder a command works in (and locks)."""
    if args.cmd == "demo":  # a quick run keeps its own folder: resuming a full run from it would mix the two
        return args.out or os.path.join("runs", "demo-quick" if args.quick else "demo")
    if args.cmd == "evaluate":
        return args.out or os.path.dirname(os.path.abspath(args.ckpt))
    return args.work if args.cmd == "ablate" else args.out


def _run(args) -> None:
    if int(os.environ.get("RANK", 0)):  # a torchrun rank other than the first: rank 0 holds the folder
        return _command(args)
    with run_lock(_run_folder(args), "--work" if args.cmd == "ablate" else "--out", args.command):
        return _command(args)


def _command(args) -> None:
    out = _run_folder(args)
    if args.cmd == "evaluate":
        res = run_evaluation(im.InterMoE.load(args.ckpt), out=out, repeats=args.repeats,
                             mm_captions=args.mm[0], mm_repeats=args.mm[1])
        print(open(os.path.join(out, "evaluation.md")).read())
        print(f"done in {res['seconds']['total']} s; {os.path.join(out, 'evaluation.json')}")
        return
    if args.cmd == "ablate":
        res = run_ablation(out=args.out, work=args.work, variants=args.variants, seeds=tuple(args.seeds),
                           steps=args.steps, vae_ckpt=args.vae, repeats=args.repeats, smoke=args.smoke,
                           preset_name=args.preset, report=args.report, n_test=args.test_clips,
                           cached_only=args.cached_only)
        print(ablation_markdown(res, LEVER_METRICS if args.report == "levers" else ABLATION_METRICS))
        print(f"written to {os.path.join(args.out or args.work, args.report + '.md')} and {args.report}.json")
        return
    if args.cmd == "sample":
        return _sample(args)
    rank, _ = init_distributed()  # (0, 1) unless launched by torchrun
    cfg = im.preset(args.preset)
    vae_steps, steps = (args.vae_steps, args.steps) if args.cmd != "demo" else (None, None)
    if args.cmd == "demo" and args.quick:  # a tenth of the steps; stage 1 stays the shipped VAE where the preset has one
        vae_steps, steps = None if cfg.shipped_vae else max(1, cfg.vae_steps // 10), max(1, cfg.steps // 10)
    t0 = time.time()
    stages = ("vae",) if args.cmd == "train-vae" else ("vae", "denoiser")
    model, log = run_training(cfg, out, vae_steps, steps, args.seed, stages, name=args.preset)
    if rank != 0:
        return
    files, writers = [], []
    if args.cmd == "demo":
        t = time.time()
        joints = pipeline.sample(model, DEMO_PROMPTS, 150, seed=args.seed, progress=True).cpu().numpy()
        log["sample_seconds"] = round(time.time() - t, 2)
        files = [os.path.join(out, f"demo_{k}.gif") for k in range(len(DEMO_PROMPTS))]
        writers = [_gif_writer(joints[k], caption=c, stride=2) for k, c in enumerate(DEMO_PROMPTS)]
        log["gifs"], log["prompts"] = files, DEMO_PROMPTS
    # seconds across resumes: this command's, and the training that runs it resumed did before it
    log["total_seconds"] = round(time.time() - t0 + log.pop("earlier_seconds"), 1)
    log["preset"], log["device"], log["threads"] = args.preset, str(pick_device()), torch.get_num_threads()
    log_path = _stage_paths(out)["log"]
    atomic_write(files + [log_path], writers + [lambda p: _write_text(p, json.dumps(log, indent=1))])
    print(f"done: {log['total_seconds']} s of work in {out} (its training, resumes included); model {_stage_paths(out)['model']}, log {log_path}"
          + (f", GIFs {', '.join(log['gifs'])}" if args.cmd == "demo" else ""))


SAMPLE_FILE = re.compile(r"sample_\d+(\.gif|_p[12]\.bvh)$")  # the files `sample` writes into its --out folder


def _sample(args) -> None:
    """The `sample` command: every file of its samples (GIFs, BVH pairs, the strip) written as one unit; files of
    earlier samples in --out that this run does not replace are removed, so the folder holds one run's samples."""
    model = im.InterMoE.load(args.ckpt) if args.ckpt else im.pretrained()
    if not args.ckpt:
        print(f"no --ckpt: sampling the shipped model, {im.PRETRAINED} (docs/results.md)")
    joints = pipeline.sample(model, args.prompt, args.length, seed=args.seed, progress=True,
                             physics=args.physics).cpu().numpy()
    files, writers = [], []
    for k, prompt in enumerate(args.prompt):
        files.append(os.path.join(args.out, f"sample_{k}.gif"))
        writers.append(_gif_writer(joints[k], caption=prompt))
        if args.bvh:
            names, write = _bvh_writers(joints[k], os.path.join(args.out, f"sample_{k}.bvh"))
            files, writers = files + names, writers + write
    if args.strip:
        files.append(args.strip)
        writers.append(_filmstrips_writer(joints, args.prompt))
    atomic_write(files, writers)
    ours = {os.path.basename(f) for f in files}
    older = sorted(f for f in os.listdir(args.out) if SAMPLE_FILE.match(f) and f not in ours)
    for f in older:
        os.remove(os.path.join(args.out, f))
    print("wrote", ", ".join(files) + (f"; removed {len(older)} file(s) of earlier samples" if older else ""))


if __name__ == "__main__":  # python -m intermoe_tools.cli ...
    raise SystemExit(main())
