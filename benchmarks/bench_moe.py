"""How much does the InterMoEBlock layer cost on CPU, against a dense FFN and against running every expert?

    python benchmarks/bench_moe.py            # about three minutes on two laptop cores (4 sizes x 3 processes)
    python benchmarks/bench_moe.py --quick    # a few seconds: fewer rounds and tokens, one process
    python benchmarks/bench_moe.py --threads 1
    python benchmarks/bench_moe.py --keep-memory  # no page faults: the strict ratio (see below)

For each size it builds one InterMoEBlock layer (8 experts, capacity 1, the paper's routing) and settles its
biases on the token stream first (the bias rule alone, no weight training), so the number of experts per
token is near its target of 1, as after training. Then, on the same tokens, it times:

  moe    the InterMoEBlock layer: AdaLN, router, gate, sparse dispatch (routing included)
  ffn    one dense AdaLN SwiGLU FFN of an expert's size (the baseline's layer)
  dense  every expert on every token, masked by the same selection (`dense_reference`)

and prints  moe / (ffn x experts-per-token)  (the price of sparse dispatch per selected pair; target <= 1.2)
and  dense / moe  (what sparsity saves; target >= 4 with 8 experts, capacity 1).

Timing: rounds, each running every contender once in a fresh random order. Two ratios come out of them:
  paired  the median over rounds of (moe / ffn) within a round: the two calls ran back to back, so a slow
          phase of a shared machine (its speed here drifts by 30 % over seconds) slows both and cancels;
          the median drops the rounds where a burst hit only one side.
  best    (best moe) / (best ffn) over all rounds, the timeit habit, printed beside it.
Processes: each size is measured in --processes fresh processes (3 by default) and the median of their
paired ratios is the figure judged against the target; the range is printed with it. One process is not
enough: on this machine the paired ratio of the smallest size moved from 0.99 to 1.24 between processes,
more than it moves within one.
Page faults (--keep-memory): with glibc's default malloc, a freed tensor of a few MB often goes back to the
kernel and the next one of that size faults on each 4 KiB page it touches, ~1000-4000 faults per layer
call here. How many fall on each layer depends on what else the process allocated: measured together, the
MoE layer's allocations left the dense FFN paying most of them (its forward slowed from 9.5 to 12 ms),
which flatters the MoE. --keep-memory makes malloc keep freed memory, so nothing faults: the times are
steadier (at d 192 the three processes agreed within 5 %) and the ratio is the stricter one, that of compute
and memory traffic alone. Both are in docs/speed.md.
Figures are noisy on a shared machine: compare ratios from one run, not times across runs.
"""
import argparse
import ctypes
import ctypes.util
import json
import random
import statistics
import subprocess
import sys
import time

import torch

import bench_common
from bench_common import dense_reference  # every expert on every token (the tests' reference too)
from intermoe_min import AdaLNFFN, InterMoEBlock, MoEConfig


def rounds(fns: dict, n_rounds: int, warmup: int = 2, seed: int = 0) -> dict:
    """Wall times (seconds) of each function over `n_rounds` rounds: {name: [time in round 0, 1, ...]}.

    Every round runs each function once, in an order shuffled per round, so no contender always runs right
    after the same other one (and its cache state).
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    order, rng = list(fns), random.Random(seed)
    times = {name: [] for name in fns}
    for _ in range(n_rounds):
        rng.shuffle(order)
        for name in order:
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
    return times


def paired_ratio(num: list, den: list) -> float:
    """Median over rounds of num[i] / den[i]: the ratio within a round, where both saw the same load."""
    return statistics.median(a / b for a, b in zip(num, den))


@torch.no_grad()
def settle_biases(moe: InterMoEBlock, h, emb, steps: int = 300) -> None:
    """Run the bias rule on routing alone (cheap: no experts) until the load is balanced."""
    mask = torch.ones(h.shape[:2], dtype=torch.bool)
    step = moe.cfg.bias_step
    for i in range(steps):
        moe.cfg.bias_step = 1e-2 if i < steps // 2 else step  # coarse, then the real step
        _, sel, _ = moe.route(h, emb, mask)
        counts = sel.sum((0, 1)).double()  # (E,)
        moe.apply_tally(torch.cat([counts, counts.new_tensor([mask.sum()])]))
    moe.cfg.bias_step = step


def bench(d: int, d_expert: int, n_seq: int, T: int, n_rounds: int) -> dict:
    """Time one size in this process: the ratios of the module docstring and the times behind them."""
    torch.manual_seed(0)
    moe = InterMoEBlock(d, d, MoEConfig(n_experts=8, d_expert=d_expert, capacity=1.0))
    ffn = AdaLNFFN(d, d, d_expert)
    h = torch.randn(n_seq, T, d)  # (N, T, d): N sequences (people x samples), T latent frames
    emb = torch.randn(n_seq, d)
    settle_biases(moe, h, emb)
    moe.eval(), ffn.eval()

    with torch.no_grad():
        moe(h, emb)
        ept = moe.stats()["experts_per_token"]  # the selection is the same on every call (eval, same tokens)
        fwd = rounds({"moe": lambda: moe(h, emb), "ffn": lambda: ffn(h, emb)}, n_rounds)
        # Apart: the dense reference's (N, T, E, D) stack is a 30 MB allocation, whose coming and going
        # changes how the allocator serves the other two for the rest of the process.
        fwd["dense"] = rounds({"dense": lambda: dense_reference(moe, h, emb)}, max(3, n_rounds // 8))["dense"]

    # Training step cost (forward + backward), MoE against the FFN.
    moe.train(), ffn.train()
    hg = h.clone().requires_grad_(True)

    def step(layer):
        layer(hg, emb).sum().backward()

    tr = rounds({"moe": lambda: step(moe), "ffn": lambda: step(ffn)}, n_rounds)
    moe._tally = None  # the timing forwards were not training steps
    return dict(ept=ept, fwd=fwd, fwd_bwd=tr,
                ratio={k: paired_ratio(t["moe"], t["ffn"]) / ept for k, t in (("forward", fwd), ("fwd+bwd", tr))},
                best={k: min(t["moe"]) / (min(t["ffn"]) * ept) for k, t in (("forward", fwd), ("fwd+bwd", tr))},
                dense=min(fwd["dense"]) / min(fwd["moe"]))


def print_one(r: dict, tag: str = "") -> None:
    """One process's figures for one size."""
    ms = lambda ts: f"{min(ts) * 1e3:7.2f} / {statistics.median(ts) * 1e3:7.2f} ms"  # noqa: E731
    f, t = r["fwd"], r["fwd_bwd"]
    print(f"   {tag}experts per token {r['ept']:.3f}; best / median: forward moe {ms(f['moe'])}, ffn {ms(f['ffn'])},"
          f" every expert {ms(f['dense'])}; fwd+bwd moe {ms(t['moe'])}, ffn {ms(t['ffn'])}")
    print(f"   {' ' * len(tag)}moe / (ffn x experts per token): forward paired {r['ratio']['forward']:.2f} "
          f"(best-of {r['best']['forward']:.2f}), fwd+bwd paired {r['ratio']['fwd+bwd']:.2f} "
          f"(best-of {r['best']['fwd+bwd']:.2f}); every expert / moe {r['dense']:.1f}x")


def summarise(results: list, judge: bool = True) -> None:
    """The verdict for one size, over the processes that measured it (none for a --quick run: its 512
    tokens are too few, per-call costs dominate)."""
    verdict = lambda ok: ("MET" if ok else "NOT MET") if judge else "not judged (quick run)"  # noqa: E731
    for k in ("forward", "fwd+bwd"):
        xs = [r["ratio"][k] for r in results]
        mid = statistics.median(xs)
        print(f"   moe / (ffn x experts per token), {k:8s} {mid:.2f}  (median of {len(xs)} processes; "
              f"range {min(xs):.2f}-{max(xs):.2f})   target <= 1.2: {verdict(mid <= 1.2)}")
    dense = statistics.median(r["dense"] for r in results)
    print(f"   every expert on every token / moe, forward: {dense:.1f}x   target >= 4x: {verdict(dense >= 4)}")


def keep_freed_memory() -> None:
    """glibc only: serve allocations from the heap and never hand freed memory back to the kernel, so no
    tensor allocation page-faults (M_TRIM_THRESHOLD = -1, M_MMAP_THRESHOLD = -3 in malloc.h)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    if not (libc.mallopt(-1, 1 << 30) and libc.mallopt(-3, 1 << 30)):
        sys.exit("--keep-memory needs glibc's mallopt")


def main():
    parser = bench_common.arg_parser(__doc__, "fewer rounds and tokens, one process")
    parser.add_argument("--processes", type=int, default=3,
                        help="fresh processes per size (their median is judged: see the docstring)")
    parser.add_argument("--samples", type=int, default=32, help="samples per batch (2 sequences each)")
    parser.add_argument("--frames", type=int, default=75, help="latent frames per sequence")
    parser.add_argument("--keep-memory", action="store_true",
                        help="glibc malloc keeps freed memory (no page faults on reuse): see keep_freed_memory")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # "d,d_expert,rounds": one size, JSON out
    args = bench_common.parse_args(parser)
    if args.keep_memory:
        keep_freed_memory()
    # Full run: a batch of 32 samples x 2 people x 75 latent frames (300 frames / 4) = 4800 tokens.
    n_seq, T = (16, 32) if args.quick else (args.samples * 2, args.frames)
    if args.child:
        d, d_expert, n_rounds = map(int, args.child.split(","))
        r = bench(d, d_expert, n_seq, T, n_rounds)
        print(json.dumps(r))
        return
    n_rounds, processes = (6, 1) if args.quick else (40, args.processes)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {'quick' if args.quick else 'full'} run: "
          f"{n_rounds} rounds in each of {processes} fresh process(es) per size")
    # the 'lab' preset's width and experts, two between, and the paper's (768 -> 1024 -> 768): the routing
    # and dispatch traffic grows with d, the experts' work with d x d_expert, so the small sizes are the hard
    # ones. The paper's size takes ~16x the lab's time per round: a quarter of the rounds.
    t0 = time.perf_counter()
    for d, d_expert in [(192, 256), (256, 352), (384, 512), (768, 1024)]:
        size_rounds = n_rounds if d < 768 else max(4, n_rounds // 4)
        print(f"\n== d = {d}, expert {d} -> {d_expert} -> {d}, 8 experts, capacity 1; {n_seq * T} tokens "
              f"({n_seq} sequences x {T} frames); {size_rounds} rounds per process")
        results = []
        for p in range(processes):
            cmd = [sys.executable, __file__, "--child", f"{d},{d_expert},{size_rounds}",
                   "--samples", str(args.samples), "--frames", str(args.frames)]
            cmd += ["--threads", str(torch.get_num_threads())] + (["--quick"] if args.quick else [])
            cmd += ["--keep-memory"] if args.keep_memory else []
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"child process failed:\n{out.stderr[-2000:]}")
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print_one(results[-1], f"process {p + 1}: ")
        summarise(results, judge=not args.quick)
    print(f"\n(bench took {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
