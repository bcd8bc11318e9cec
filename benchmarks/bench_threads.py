"""How many threads should the command line use by default? The `lab` steps and sampling at 1 and at 2 threads.

    python benchmarks/bench_threads.py            # 2 threads against 1, alternating rounds in one process
    python benchmarks/bench_threads.py --quick    # fewer rounds (a smoke run, not a verdict)

The two counts take turns round by round (torch.set_num_threads between rounds), so both see the same
background load, and each figure is the median over rounds. Run it on an idle machine: with other jobs on
the cores, torch's spinning OpenMP threads make 2 threads many times slower than 1, which is what `--threads 1`
is for, and not what the default should be chosen on. The figures in docs/speed.md's table come from here.
"""
import argparse
import copy
import time

import torch

import bench_train as bt  # (the lab model, its batches and its training steps)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2 rounds of 2 steps, 100 clips")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to compare")
    args = p.parse_args(argv)
    rounds, steps = (2, 2) if args.quick else (5, 4)
    t_start = time.time()
    cfg, records, model = bt.setup(100 if args.quick else bt.N_CLIPS)
    vae_step = bt.VAEStep(copy.deepcopy(model.vae), model.normalizer, cfg)  # stage 2 freezes model.vae
    vae_batches, _ = bt.make_batches(bt.vae_data(records, model.normalizer, cfg), bt.im.collate, cfg.vae_batch, steps)
    model.set_latent_stats(*bt.im.measure_latent_stats(model, records))
    den_step = bt.DenoiserStep(model, cfg)
    den_batches, _ = bt.make_batches(bt.latent_data(model, records, cfg), bt.im.collate, cfg.batch, steps)
    prompts = [r["captions"][0] for r in records[:8]]

    def sample():
        t0 = time.perf_counter()
        model.sample(prompts, 180, seed=0, steps=10 if args.quick else 50)
        return time.perf_counter() - t0

    work = {"stage-1 step": lambda: min(vae_step(b)["step"] for b in vae_batches),
            "stage-2 step": lambda: min(den_step(b)["step"] for b in den_batches),
            f"sampling 8 x 6 s, DDIM-{10 if args.quick else 50}": sample}
    times = {(name, n): [] for name in work for n in args.threads}
    for r in range(rounds):
        for n in (args.threads if r % 2 == 0 else args.threads[::-1]):  # alternate who goes first
            torch.set_num_threads(n)
            for name, run in work.items():
                times[name, n].append(run())
    med = {k: bt.median(v) for k, v in times.items()}
    print(f"torch {torch.__version__}, {rounds} alternating rounds, median seconds (best step of {steps} per round)")
    print(f"{'':34s}" + "".join(f"{n:>3d} thread(s) " for n in args.threads) + "  ratio")
    for name in work:
        row = [med[name, n] for n in args.threads]
        print(f"  {name:32s}" + "".join(f"{x:12.3f}  " for x in row) + f"  {row[0] / row[-1]:.2f}")
    print(f"done in {time.time() - t_start:.0f} s")
    return med


if __name__ == "__main__":
    main()
