"""How much does the InterMoEBlock layer cost on CPU, against a dense FFN and against running every expert?

    python benchmarks/bench_moe.py            # about a minute on two laptop cores
    python benchmarks/bench_moe.py --quick    # a few seconds, fewer repeats
    python benchmarks/bench_moe.py --threads 1

For each size it builds one InterMoEBlock layer (8 experts, capacity 1, the paper's routing) and settles its
biases on the token stream first (the bias rule alone, no weight training), so the number of experts per
token is near its target of 1, as after training. Then, on the same tokens, it times (best of repeats, interleaved):

  moe    the InterMoEBlock layer: AdaLN, router, gate, sparse dispatch (routing included)
  ffn    one dense AdaLN SwiGLU FFN of an expert's size (the baseline's layer)
  dense  every expert on every token, masked by the same selection (`dense_reference`)

and prints  moe / (ffn x experts-per-token)  (the price of sparse dispatch per selected pair; target <= 1.2)
and  dense / moe  (what sparsity saves; target >= 4 with 8 experts, capacity 1).
Figures are noisy on a shared machine: compare ratios from one run, not times across runs.
"""
import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root
from intermoe_min import AdaLNFFN, InterMoEBlock, MoEConfig, dense_reference  # noqa: E402


def best_times(fns: dict, repeats: int, warmup: int = 2) -> dict:
    """Best-of-`repeats` wall time (seconds) of each function, the runs interleaved.

    Interleaving puts every contender under the same background load; the minimum is the least disturbed
    run (the advice of Python's timeit), steadier than a mean on a shared machine.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


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


def bench(d: int, d_expert: int, n_seq: int, T: int, repeats: int) -> None:
    torch.manual_seed(0)
    moe = InterMoEBlock(d, d, MoEConfig(n_experts=8, d_expert=d_expert, capacity=1.0))
    ffn = AdaLNFFN(d, d, d_expert)
    h = torch.randn(n_seq, T, d)  # (N, T, d): N sequences (people x samples), T latent frames
    emb = torch.randn(n_seq, d)
    settle_biases(moe, h, emb)
    moe.eval(), ffn.eval()

    with torch.no_grad():
        moe(h, emb)
        ept = moe.last_experts_per_token  # the selection is the same on every call (eval, same tokens)
        fwd = best_times({"moe": lambda: moe(h, emb), "ffn": lambda: ffn(h, emb),
                          "dense": lambda: dense_reference(moe, h, emb)}, repeats)
    t_moe, t_ffn, t_dense = fwd["moe"], fwd["ffn"], fwd["dense"]

    # Training step cost (forward + backward), MoE against the FFN.
    moe.train(), ffn.train()
    hg = h.clone().requires_grad_(True)

    def step(layer):
        layer(hg, emb).sum().backward()

    tr = best_times({"moe": lambda: step(moe), "ffn": lambda: step(ffn)}, max(3, repeats // 2))
    t_moe_tr, t_ffn_tr = tr["moe"], tr["ffn"]
    moe._tally = None  # the timing forwards were not training steps

    S = n_seq * T
    print(f"\n== d = {d}, expert {d} -> {d_expert} -> {d}, 8 experts, capacity 1; "
          f"{S} tokens ({n_seq} sequences x {T} frames)")
    print(f"   experts per token after settling: {ept:.3f}   counts: {moe.last_counts.tolist()}")
    print(f"   forward   moe {t_moe * 1e3:8.2f} ms   ffn {t_ffn * 1e3:8.2f} ms   "
          f"every expert on every token {t_dense * 1e3:8.2f} ms")
    print(f"   fwd+bwd   moe {t_moe_tr * 1e3:8.2f} ms   ffn {t_ffn_tr * 1e3:8.2f} ms")
    print(f"   moe / (ffn x experts per token):  forward {t_moe / (t_ffn * ept):.2f}   "
          f"fwd+bwd {t_moe_tr / (t_ffn_tr * ept):.2f}   (target <= 1.2)")
    print(f"   every expert on every token / moe:  forward {t_dense / t_moe:.2f}x   (target >= 4x)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and tokens")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0: torch's default); 1 is steadier on a busy shared machine")
    parser.add_argument("--samples", type=int, default=32, help="samples per batch (2 sequences each)")
    parser.add_argument("--frames", type=int, default=75, help="latent frames per sequence")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = 5 if args.quick else 15
    # Full run: a batch of 32 samples x 2 people x 75 latent frames (300 frames / 4) = 4800 tokens.
    n_seq, T = (16, 32) if args.quick else (args.samples * 2, args.frames)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{'quick' if args.quick else 'full'} run, best of {repeats} interleaved repeats")
    # the 'lab' preset's width and experts, two larger sizes (the 'paper' preset's is 768 -> 1024 -> 768)
    for d, d_expert in [(192, 256), (256, 352), (384, 512)]:
        bench(d, d_expert, n_seq, T, repeats)


if __name__ == "__main__":
    main()
