"""Old code against new in one process: the `lab` training steps and the MoE layer's ratios of two versions.

    python benchmarks/bench_compare.py --old main             # a git revision against the working tree
    python benchmarks/bench_compare.py --old main --quick     # fewer rounds (a smoke run, not a verdict)

Machines are shared and their speed drifts, so comparing runs made at different times says little. Here both
versions of intermoe_min.py live in one process (the old one read with `git show REV:intermoe_min.py`), build
the same `lab` model from the same InterSynth clips and seed, and take turns:

1. Training steps as bench_train.py times them (its VAEStep and DenoiserStep, so forward, backward, value
   clip, AdamW, schedule and the MoE bias rule), on the same pre-collated batches: stage 2 on the latent cache,
   stage 1 on 64-frame windows. Each round runs every (version, stage) pair once on every batch, in an order
   shuffled per round; the figure is the median step time, and new / old the ratio of medians.
2. bench_moe.py's ratios at the `lab` width (d 192, experts 192 -> 256 -> 192): moe / (ffn x experts per
   token), forward and forward + backward, alternating old and new `bench()` calls.

Ratios below 1.05 mean "within 5 % or faster". Only the module changes: the batches, the benchmark code and
the thread count are the same for both.
"""
import argparse
import copy
import importlib.util
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "tests")]
import intermoe_min as new  # noqa: E402
import intersynth  # noqa: E402
import bench_moe  # noqa: E402
import bench_train  # noqa: E402


def load_revision(rev: str):
    """intermoe_min.py as it was at git revision `rev`, imported under the name intermoe_old."""
    src = subprocess.run(["git", "show", f"{rev}:intermoe_min.py"], cwd=ROOT, capture_output=True, text=True)
    if src.returncode:
        sys.exit(f"--old {rev}: {src.stderr.strip()}")
    path = Path(tempfile.mkdtemp()) / "intermoe_old.py"
    path.write_text(src.stdout)
    spec = importlib.util.spec_from_file_location("intermoe_old", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["intermoe_old"] = module
    spec.loader.exec_module(module)
    return module


def steps_for(im, records, vae_batches=None, latent_batches=None):
    """bench_train's two step timers for a `lab` model built by module `im`, and the batches (made once, by the
    first version, the new one: its collate also pads latents; then shared)."""
    bench_train.im = im  # the step classes call im.* (optimiser, schedule, loss)
    cfg = im.preset("lab")
    model = im.build_model(cfg, records, seed=0)
    if latent_batches is None:
        latent_batches, _ = bench_train.make_batches(bench_train.latent_data(model, records, cfg), im.collate,
                                                     cfg.batch, 4)
        vae_batches, _ = bench_train.make_batches(bench_train.vae_data(records, model.normalizer, cfg), im.collate,
                                                  cfg.vae_batch, 4)
    vae = bench_train.VAEStep(copy.deepcopy(model.vae), model.normalizer, cfg)  # its own: stage 2 freezes model.vae
    den = bench_train.DenoiserStep(model, cfg)
    den.calibrate(latent_batches, 2)  # about one expert per token, as after training
    return {"stage 1": vae, "stage 2": den}, vae_batches, latent_batches


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old", required=True, help="the git revision to compare the working tree with")
    parser.add_argument("--quick", action="store_true", help="2 rounds instead of 10, 8 MoE rounds instead of 40")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--clips", type=int, default=64, help="InterSynth training clips for the batches")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
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
            bench_train.im = versions[v]
            times[v, s] += [timers[v][s](b)["step"] for b in batches[s]]
    for s in batches:
        old, cur = statistics.median(times["old", s]), statistics.median(times["new", s])
        print(f"{s} step: old {old:.3f} s, new {cur:.3f} s (medians of {len(times['new', s])}): new / old {cur / old:.3f}")

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
