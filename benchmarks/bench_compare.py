"""Old code against new in one process: the `lab` training steps and the MoE layer's ratios of two versions.

    python benchmarks/bench_compare.py --old main             # a git revision against the working tree
    python benchmarks/bench_compare.py --old main --quick     # fewer rounds (a smoke run, not a verdict)

Machines are shared and their speed drifts, so comparing runs made at different times says little. Here both
versions of intermoe_min.py live in one process (the old one read with `git show REV:intermoe_min.py`), build
the same `lab` model from the same InterSynth clips and seed, and take turns:

1. Training steps as the benchmarks time them (bench_common's VAEStep and DenoiserStep: im.train_step, so forward,
   backward, value clip, AdamW, schedule and the MoE bias rule), on the same pre-collated batches: stage 2 on the
   latent cache, stage 1 on 64-frame windows. Each round runs every (version, stage) pair once on every batch, in an
   order shuffled per round; the figure is the median step time, and new / old the ratio of medians. A revision
   older than im.train_step gets this tree's (the step's time is the model's forward and backward).
2. Sampling as the command line samples, from the shipped model (models/intermoe_lab.pt loaded by each version):
   4 prompts x 120 frames, DDIM-50, physics guidance and bodies (intermoe_tools.pipeline.sample where the version
   has the model's places for them, InterMoE.sample itself before), alternating old and new.
3. bench_moe.py's ratios at the `lab` width (d 192, experts 192 -> 256 -> 192): moe / (ffn x experts per
   token), forward and forward + backward, alternating old and new `bench()` calls.

Ratios below 1.05 mean "within 5 % or faster". Only the module changes: the batches, the benchmark code and
the thread count are the same for both.
"""
import copy
import importlib.util
import inspect
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
import intermoe_min as new  # noqa: E402
import intersynth  # noqa: E402
import bench_common  # noqa: E402
import bench_moe  # noqa: E402
from intermoe_tools import pipeline  # noqa: E402

SAMPLE_PROMPTS = ["two people shake hands", "one person pushes the other", "two people hug", "they dance together"]


def load_revision(rev: str):
    """intermoe_min.py as it was at git revision `rev`, imported under the name intermoe_old."""
    src = subprocess.run(["git", "show", f"{rev}:intermoe_min.py"], cwd=ROOT, capture_output=True, text=True)
    if src.returncode:
        sys.exit(f"--old {rev}: {src.stderr.strip()}")
    path = Path(tempfile.mkdtemp()) / "intermoe_old.py"
    path.write_text(src.stdout)
    spec = importlib.util.spec_from_file_location("intermoe_old", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["intermoe_old"] = module  # Python's recipe for importing a source file: dataclasses look it up
    spec.loader.exec_module(module)
    if not hasattr(module, "train_step"):  # older than im.train_step: the same step, from this tree
        module.train_step = new.train_step
        module._denoiser_loss_fn = lambda model, extra_loss=None: (lambda m, batch, dev: m(
            model.scale_latents(batch["latent"].to(dev)), batch["mask"].to(dev), batch["captions"]))
    return module


def sampler(im):
    """Sampling as the command line does it, with the shipped model as this version loads it -> a function of no
    arguments."""
    model = im.InterMoE.load(str(ROOT / "models" / "intermoe_lab.pt"), device="cpu")
    if "finish" in inspect.signature(im.InterMoE.sample).parameters:  # the model's places, filled by the tools
        return lambda: pipeline.sample(model, SAMPLE_PROMPTS, 120, seed=0)
    return lambda: model.sample(SAMPLE_PROMPTS, 120, seed=0)  # physics guidance and bodies inside


def steps_for(im, records, vae_batches=None, latent_batches=None):
    """bench_common's two step timers for a `lab` model built by module `im`, and the batches (made once, by the
    first version, the new one: its collate also pads latents; then shared)."""
    cfg = im.preset("lab")
    model = im.build_model(cfg, records, seed=0)
    if latent_batches is None:
        latent_batches, _ = bench_common.make_batches(bench_common.latent_data(model, records, cfg, im), im.collate,
                                                      cfg.batch, 4, im=im)
        vae_batches, _ = bench_common.make_batches(bench_common.vae_data(records, model.normalizer, cfg, im),
                                                   im.collate, cfg.vae_batch, 4, im=im)
    vae = bench_common.VAEStep(copy.deepcopy(model.vae), model.normalizer, cfg, im)  # its own: stage 2 freezes its VAE
    den = bench_common.DenoiserStep(model, cfg, im)
    den.calibrate(latent_batches, 2)  # about one expert per token, as after training
    return {"stage 1": vae, "stage 2": den}, vae_batches, latent_batches


def main():
    parser = bench_common.arg_parser(__doc__, "2 rounds instead of 10, 8 MoE rounds instead of 40", clips=64)
    parser.add_argument("--old", required=True, help="the git revision to compare the working tree with")
    args = bench_common.parse_args(parser)
    t0 = time.perf_counter()
    versions = {"new": new, "old": load_revision(args.old)}
    records = intersynth.load_split("train", n_clips=200)[:args.clips]
    timers, vb, lb = {}, None, None
    for name, im in versions.items():
        timers[name], vb, lb = steps_for(im, records, vb, lb)
    batches = {"stage 1": vb, "stage 2": lb}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; old = {args.old}, new = working tree; "
          f"lab preset, {len(records)} clips, 4 batches a stage")

    times = {(v, s): [] for v in versions for s in batches}
    n_rounds = 2 if args.quick else 10
    for r in range(n_rounds):
        order = list(times)
        random.Random(r).shuffle(order)
        for v, s in order:
            times[v, s] += [timers[v][s](b)["step"] for b in batches[s]]
    for s in batches:
        old, cur = statistics.median(times["old", s]), statistics.median(times["new", s])
        print(f"{s} step: old {old:.3f} s, new {cur:.3f} s (medians of {len(times['new', s])}): new / old {cur / old:.3f}")

    samplers = {v: sampler(im) for v, im in versions.items()}
    secs = {v: [] for v in versions}
    for r in range(2 if args.quick else 5):
        for v in (("old", "new") if r % 2 == 0 else ("new", "old")):
            t = time.perf_counter()
            samplers[v]()
            secs[v].append(time.perf_counter() - t)
    old, cur = statistics.median(secs["old"]), statistics.median(secs["new"])
    print(f"sampling, {len(SAMPLE_PROMPTS)} x 120 frames from the shipped model: old {old:.2f} s, new {cur:.2f} s "
          f"(medians of {len(secs['new'])}): new / old {cur / old:.3f}")

    moe_rounds = 8 if args.quick else 40
    ratios = {v: [] for v in versions}
    for rep in range(1 if args.quick else 3):
        for v in (("old", "new") if rep % 2 == 0 else ("new", "old")):
            for k in ("InterMoEBlock", "AdaLNFFN", "MoEConfig"):
                setattr(bench_moe, k, getattr(versions[v], k))
            ratios[v].append(bench_moe.bench(192, 256, 64, 75, moe_rounds)["ratio"])
    for k in ("forward", "fwd+bwd"):
        old, cur = (statistics.median(x[k] for x in ratios[v]) for v in ("old", "new"))
        print(f"MoE layer at d 192, moe / (ffn x experts per token), {k}: old {old:.2f}, new {cur:.2f} "
              f"(medians of {len(ratios['new'])} calls): new / old {cur / old:.3f}")
    print(f"(took {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
