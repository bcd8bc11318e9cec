"""What do stage 2's training levers cost per step? The lab recipe against each lever, in one process.

    python benchmarks/bench_levers.py            # 24 interleaved rounds
    python benchmarks/bench_levers.py --quick    # 8 rounds
    python benchmarks/bench_levers.py --threads 1

The `lab` preset on InterSynth training clips (untrained weights: a step's time does not depend on them,
except through how many experts the router picks, which is the same for every variant here), one model per
variant with the same weights, the same latent cache. Each round runs one training step of every variant
in a shuffled order (im.train_step: forward, backward, AdamW, the bias rule, the EMA where it is on), each on its
own next batch as train_loop would make it (im.batches, with the length buckets where they are on). Printed
per variant: mean seconds per step over the rounds (the mean, not the best: bucketed batches differ in
length by design, so only their mean tells the epoch's time), the ratio to the lab recipe, the share of
padded latent frames in its batches, and steps per second. Compare ratios, not times, across machines.
"""
import time

import numpy as np
import torch

import bench_common
import intermoe_min as im
from intermoe_tools import motion_losses
import intersynth
from intermoe_tools import ablation

VARIANTS = ["full InterMoE", "length buckets", "EMA", "decoded losses", "capsule loss", "decoded + capsule"]


def after_step(model, ema, named):
    """What follows each stage-2 optimiser step: the MoE bias rule, then the EMA where it is on."""
    def after():
        model.denoiser.update_biases()
        if ema is not None:
            ema.update(named)
    return after


def main():
    args = bench_common.parse_args(bench_common.arg_parser(__doc__, "8 rounds instead of 24", clips=640))
    rounds = 8 if args.quick else 24
    t_start = time.perf_counter()
    records = intersynth.load_split("train")[:args.clips]
    base = im.build_model(im.preset("lab"), records, seed=0)
    base.set_latent_stats(*im.measure_latent_stats(base, records))
    cache = im.LatentDataset(base, records, train=True, max_frames=base.cfg.max_frames, seed=0)
    runs = {}
    for name in VARIANTS:
        cfg = ablation.ablation_config(base.cfg, name)
        m = im.InterMoE(cfg, base.vocab, base.normalizer)
        m.load_state_dict(base.state_dict())
        m.vae.requires_grad_(False)
        m.vae.eval()
        named = [(n, p) for n, p in m.named_parameters() if p.requires_grad]
        order = [idx for epoch in range(rounds // (len(cache) // cfg.batch) + 1)  # as many epochs as it takes
                 for idx in im.batches(cache, cfg.batch, 0, epoch, lengths=cache.lengths if cfg.bucket else None)]
        opt = im.make_optimizer([p for _, p in named], cfg.lr, 0.0)
        ema = im.EMA(named, cfg.ema_decay) if cfg.ema_decay else None
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1)  # a constant rate: the levers' cost alone
        runs[name] = {"model": m, "named": named, "opt": opt, "sched": sched,
                      "loss": im._denoiser_loss_fn(m, motion_losses.extra_loss(cfg)),  # as pipeline.train_denoiser
                      "after": after_step(m, ema, named),
                      "batches": [im.collate([cache[i] for i in idx]) for idx in order[:rounds]], "times": []}
    for r in range(rounds):
        for name in np.random.default_rng(r).permutation(VARIANTS):
            run = runs[name]
            m, batch = run["model"], run["batches"][r]
            t = time.perf_counter()
            im.train_step(m, run["loss"], batch, torch.device("cpu"), run["opt"], run["sched"],
                          [p for _, p in run["named"]], m.cfg.grad_clip, run["after"])
            run["times"].append(time.perf_counter() - t)
    ref = np.mean(runs["full InterMoE"]["times"][1:])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {rounds} interleaved rounds (the first "
          f"dropped), lab preset, batch {base.cfg.batch}, windows of {base.cfg.max_frames // 4} latent frames")
    print(f"{'variant':20s} {'s/step':>7s} {'ratio':>6s} {'padding':>8s} {'steps/s':>8s}")
    for name in VARIANTS:
        run = runs[name]
        sec = np.mean(run["times"][1:])
        pad = 1 - np.mean([b["mask"].float().mean().item() for b in run["batches"]])
        print(f"{name:20s} {sec:7.3f} {sec / ref:6.3f} {pad:8.1%} {1 / sec:8.2f}")
    print(f"(bench took {time.perf_counter() - t_start:.0f} s)")


if __name__ == "__main__":
    main()
