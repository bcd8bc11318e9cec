"""How well does the 'lab' preset use a CPU? Training steps against the matmul peak, and sampling time.

    python benchmarks/bench_train.py            # the full run: also encodes the lab preset's whole training split
    python benchmarks/bench_train.py --quick    # fewer repeats, shorter calibration, latent cache on a subset
    python benchmarks/bench_train.py --threads 1
    python benchmarks/bench_train.py --profile  # also torch.profiler's top operators

(The run prints how long it took; the measured figures are in docs/speed.md; memory is bench_memory.py's.)

Everything is the `lab` preset built on InterSynth training clips, untrained weights (a step's time depends on how
many experts the router picks, not on the weights). It measures, in one run:

0. Stage 2's one-off costs before its first step, as train_denoiser pays them: the latent statistics
   (im.measure_latent_stats) and the latent cache (im.LatentDataset), on the benchmark's clips and, in a full
   run, on the lab preset's whole training split.
1. Training steps as train_loop runs them: im.train_step on batches made as train_loop makes them
   (bench_common). Time per step (best of repeats) and its phases, the step's model FLOPs counted analytically
   (`*_terms` below) as a share of the fp32 matmul throughput measured just before each step (the faster of a
   2048^3 and a 1024^3 product; the peak is the best of them all), data loading timed apart, stage 2 with and
   without length buckets, and the whole lab run's time per stage estimated from these.
2. DDIM-50 sampling with classifier-free guidance for 8 interactions of 180 frames, as the command line samples
   (intermoe_tools.pipeline.sample: physics guidance and bodies included).

Expert biases. An untrained block selects about half of its experts; training brings this to ~1 per token. So
each block's bias is set to minus the (1 - capacity / E) quantile of its experts' sigmoid(R) over the same kind
of input (bench_common.calibrate_biases), layer by layer, three passes; stage-2 steps keep applying the bias rule.

Model FLOPs: 2*M*N*K per matrix product, counted from the config and the actual shapes: every padded slot of the
dense layers, the experts only on the (token, expert) pairs the router selected in that very step. Backward = 2 x
forward per product, 1 x where one operand needs no gradient; element-wise work is not counted. torch's
FlopCounterMode is run on one step of each stage as a cross-check.

Figures are noisy on a shared machine: compare ratios from one run, not times across runs. On a busy machine
torch's OpenMP threads (spin-waiting by default) can make every multi-threaded figure 5-50x worse: run with
OMP_WAIT_POLICY=PASSIVE (the header says what was in force) or --threads 1.
"""
import copy
import inspect
import os
import time

import torch

import bench_common as common
from bench_common import im, intersynth, latent_data, make_batches, setup, vae_data
from intermoe_tools import pipeline

PRESET = "lab"
N_CLIPS = 200                      # InterSynth clips asked for (the train split keeps 80%)
SAMPLE_N, SAMPLE_FRAMES = 8, 180   # 8 interactions of 6 s at 30 fps
MATMUL_N = 2048                    # the reference product: (n x n) @ (n x n), fp32
TARGET_SHARE, TARGET_SAMPLE_S = 0.50, 5.0


# ---- model FLOPs, analytically --------------------------------------------------------------------------
# Each *_terms function returns a list of (forward FLOPs, backward multiple) per matrix product.

def mm(m, n, k) -> int:
    """FLOPs of an (m x k) @ (k x n) product: m n k multiply-adds."""
    return 2 * m * n * k


def vae_terms(v: im.VAEConfig, n: int, T: int, encoder: bool = True, decoder: bool = True) -> list:
    """The Causal-Skeletal VAE on n sequences of T frames (T a multiple of 4, as encode pads it)."""
    C, H, J, P12, P7 = v.width, v.hidden, im.N_JOINTS, len(im.PARTS_12), len(im.PARTS_7)
    kt, kj = 3, 3  # CausalSTConv's temporal kernel: 3 frames x 3 taps along the node axis
    D = im.JOINT_TOKEN_DIM

    def blocks(N, Tl):  # n_blocks ResSTBlocks = 2 CausalSTConvs each, on N nodes x Tl frames
        rows = n * Tl * N
        conv = [(mm(rows, C, C), 2),                     # w2 x (w1 is folded into the conv's current-frame tap)
                (2 * n * Tl * N * N * C, 1),             # A_norm @ (w2 x): a fixed (N, N) matrix
                (2 * rows * C * C * kt * kj, 2)]         # temporal Conv2d (+ w1), (3, 3) window
        return conv * (2 * v.n_blocks)

    t = []
    if encoder:
        t += [(mm(n * T * J, H, D), 1), (mm(n * T * J, C, H), 2)]           # joint_in (first: data, no grad)
        t += blocks(J, T) + [(2 * n * T * P12 * J * C, 1)]                 # 22-joint blocks, pool 22 -> 12
        t += blocks(P12, T // 2) + [(2 * n * (T // 2) * P7 * P12 * C, 1)]  # 12-part blocks, pool 12 -> 7
        t += [(mm(n * (T // 4) * P7, 2 * C, C), 2)]                         # to_dist: mu, logvar per part
    if decoder:
        t += [(2 * n * (T // 4) * P12 * P7 * C, 1)] + blocks(P12, T // 2)   # unpool 7 -> 12, part blocks
        t += [(2 * n * (T // 2) * J * P12 * C, 1)] + blocks(J, T)           # unpool 12 -> 22, joint blocks
        t += [(mm(n * T * J, H, C), 2), (mm(n * T * J, D, H), 2)]           # joint_out
    return t


def text_terms(c: im.TextConfig, B: int, L: int) -> list:
    """The own text encoder (nn.TransformerEncoder, 4x FFN) on B captions padded to L tokens."""
    d, S = c.d_model, B * L
    layer = [(mm(S, 3 * d, d) + mm(S, d, d) + mm(S, 4 * d, d) + mm(S, d, 4 * d), 2),  # in/out proj, FFN
             (2 * 2 * B * L * L * d, 2)]                                                 # QK^T and AV
    return layer * c.n_layers + [(mm(B, c.d_cond, d), 2)]                               # to_cond on <eos>


def denoiser_terms(c: im.DenoiserConfig, B: int, T: int, selections: list) -> list:
    """The Cooperative Denoiser on B samples (N = 2B person sequences) of T latent slots; `selections` is
    the measured number of (token, expert) pairs per layer."""
    d, N, E = c.width, 2 * B, c.moe.n_experts
    S = N * T
    Tk = T + 1  # attention's extra all-zero key
    t = [(mm(S, d, c.d_latent), 1),                            # inp (reads the noisy latent: no grad)
         (mm(B, d, d), 1), (mm(B, d, d), 2), (mm(B, d, c.d_text), 2)]  # timestep MLP, text projection
    for k in selections:
        t += [(4 * mm(N, 2 * d, d), 2),                                    # 4 AdaLN scale/shift projections
              (mm(S, 3 * d, d) + mm(S, d, d), 2),                          # self-attention qkv, out
              (mm(S, d, d) + mm(S, 2 * d, d) + mm(S, d, d), 2),            # cross-attention q, kv, out
              (2 * 2 * 2 * N * T * Tk * d, 2),                             # QK^T and AV, self and cross
              (mm(S, E, d) + mm(N, E, d), 2),                              # router: motion and text logits
              (k * 3 * 2 * d * c.moe.d_expert, 2)]                         # experts: gate, up, down per pair
    return t + [(mm(S, c.d_latent, d), 2)]                                 # out


def fwd(terms) -> int:
    return sum(f for f, _ in terms)


def total(terms, train: bool) -> int:
    return sum(f * (1 + (m if train else 0)) for f, m in terms)


# ---- timing -------------------------------------------------------------------------------------------
class Matmul:
    """The reference: one n^3 fp32 product into a preallocated output."""

    def __init__(self, n: int):
        g = torch.Generator().manual_seed(0)
        self.a, self.b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
        self.c = torch.empty(n, n)
        self.flops = 2 * n ** 3

    def __call__(self) -> float:
        t0 = time.perf_counter()
        torch.matmul(self.a, self.b, out=self.c)
        return time.perf_counter() - t0


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else 0.5 * (xs[len(xs) // 2 - 1] + xs[len(xs) // 2])


def sample_prompts(records) -> list:
    return [r["captions"][0] for r in records[:SAMPLE_N]]


class MoECounter:
    """Counts (token, expert) pairs and real tokens of every InterMoE block forward while installed."""

    def __init__(self, moes):
        self.moes, self.pairs, self.tokens, self.calls = moes, 0, 0, 0
        self.handles = [m.register_forward_hook(self._hook) for m in moes]

    def _hook(self, m, args, out):
        self.pairs += int(m.last_counts.sum())
        self.tokens += int(m.last_tokens)
        self.calls += 1

    def remove(self):
        for h in self.handles:
            h.remove()

    @property
    def per_token(self) -> float:
        return self.pairs / max(self.tokens, 1)


# ---- stage 2's step FLOPs, from what the step just ran (bench_common.DenoiserStep remembers it) ----------------
def denoiser_step_flops(step, batch):
    """Model FLOP terms of the step that just ran on `batch` (its selections and caption length)."""
    c = step.cfg
    B, P, Tz, _ = batch["latent"].shape
    return {"denoiser": denoiser_terms(c.denoiser, B, Tz, step.selections),
            "text encoder": text_terms(c.text, *step.text_mask.shape)}


def useful_flops(step, batch) -> int:
    """The step's FLOPs without the padded slots: each clip at its own length, each distinct caption at its own
    token count, experts as counted (padding never selects)."""
    c = step.cfg
    dense = [denoiser_terms(c.denoiser, 1, int(n), [0] * c.denoiser.n_layers) for n in batch["lengths"]]
    experts = [(k * 3 * 2 * c.denoiser.width * c.denoiser.moe.d_expert, 2) for k in step.selections]
    text = [text_terms(c.text, 1, int(n)) for n in step.text_mask.sum(1)]
    return total(sum(dense, []) + experts + sum(text, []), train=True)


def step_flops(step, batch):
    """Model FLOP terms of either stage's step that just ran on `batch`."""
    if isinstance(step, common.DenoiserStep):
        return denoiser_step_flops(step, batch)
    B, P, T, _ = batch["motion"].shape
    return {"VAE enc+dec": vae_terms(step.cfg.vae, B * P, T)}


def latent_cache_cost(model, records, cfg) -> dict:
    """Stage 2's one-off costs on these clips, as train_denoiser pays them before its first step: the
    latent statistics (measure_latent_stats) and the latent cache (LatentDataset). Seconds; the model is left unchanged."""
    mean, scale = model.latent_mean.clone(), model.latent_scale.clone()
    t0 = time.perf_counter()
    s = im.measure_latent_stats(model, records, device=torch.device("cpu"))
    t1 = time.perf_counter()
    data = latent_data(model, records, cfg)
    t2 = time.perf_counter()
    n_latents = sum(len(v) for v in data.latents)
    mib = sum(z.numel() * z.element_size() for v in data.latents for z in v) / 2 ** 20
    model.set_latent_stats(mean, scale)
    n_scale = inspect.signature(im.measure_latent_stats).parameters["n"].default  # clips it encodes, at most
    return {"clips": len(records), "scale_clips": min(len(records), n_scale), "scale_s": t1 - t0,
            "cache_s": t2 - t1, "encodes": n_latents, "cache_mib": mib, "latent_stats": s, "data": data}


def prepare_sampler(model, records, steps: int, passes: int):
    """Untrained model made representative: small random output layer, biases for ~1 expert per token."""
    torch.manual_seed(1)
    torch.nn.init.normal_(model.denoiser.out.weight, std=0.02)
    torch.nn.init.normal_(model.denoiser.out.bias, std=0.02)
    prompts = sample_prompts(records)
    common.calibrate_biases(model.denoiser.moe_blocks(),
                     lambda: model.sample(prompts, SAMPLE_FRAMES, seed=0, steps=steps), passes)
    return prompts


def sample_flops(model, text_shape: tuple, pairs: int, n_forwards: int) -> dict:
    c = model.cfg
    Tz = -(-SAMPLE_FRAMES // 4)
    dense = denoiser_terms(c.denoiser, 2 * SAMPLE_N, Tz, [0] * c.denoiser.n_layers)  # guided: 2 x 8 samples
    expert = pairs * 3 * 2 * c.denoiser.width * c.denoiser.moe.d_expert
    return {"denoiser (50 steps)": fwd(dense) * n_forwards + expert,
            "text encoder": fwd(text_terms(c.text, *text_shape)),  # the distinct views it really encoded
            "VAE decoder": fwd(vae_terms(c.vae, 2 * SAMPLE_N, 4 * Tz, encoder=False))}


# ---- profiling (--profile) -----------------------------------------------------------------------------------
def profile(title: str, fn, rows: int = 15) -> None:
    from torch.profiler import ProfilerActivity, profile as prof
    with prof(activities=[ProfilerActivity.CPU]) as p:
        fn()
    print(f"\n-- torch.profiler, {title}: top operators by self CPU time")
    print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=48))


def flop_counter_check(step, batch) -> float:
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc:
        step(batch)
    return fc.get_total_flops()


# ---- main ------------------------------------------------------------------------------------------------
def main():
    parser = common.arg_parser(__doc__, "fewer repeats and a shorter calibration", clips=N_CLIPS)
    parser.add_argument("--profile", action="store_true", help="print torch.profiler's top operators too")
    args = common.parse_args(parser)

    repeats = 3 if args.quick else 8
    passes = 2 if args.quick else 3
    t_start = time.perf_counter()
    cfg, records, model = setup(args.clips, PRESET)
    d = cfg.denoiser
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {'quick' if args.quick else 'full'} "
          f"run, best of {repeats} interleaved repeats; preset '{PRESET}': VAE width {cfg.vae.width}, "
          f"denoiser {d.n_layers} x {d.width} wide, {d.moe.n_experts} experts of {d.moe.d_expert}, "
          f"{len(records)} training clips")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    wait = os.environ.get("OMP_WAIT_POLICY")
    print(f"load average {load:.1f} on {os.cpu_count()} cores; OMP_WAIT_POLICY={wait or 'unset (OpenMP spins)'}"
          + ("\n  busy machine: spinning OpenMP threads wait for descheduled partners, 2 threads can be 10x"
             " slower than 1; run with OMP_WAIT_POLICY=PASSIVE or --threads 1"
             if load > os.cpu_count() - 0.5 and not wait and torch.get_num_threads() > 1 else ""))

    # stage 2's one-off costs (latent statistics, latent cache), timed once: on the benchmark's clips, whose cache
    # the stage-2 batches come from, and (full run) on the lab preset's whole training split
    cost = latent_cache_cost(model, records, cfg)
    model.set_latent_stats(*cost["latent_stats"])  # as train_denoiser does before building the cache
    lab_split = None
    if not args.quick:
        lab_records = intersynth.load_split("train", cfg.n_clips)
        lab_split = latent_cache_cost(model, lab_records, cfg)
        del lab_split["data"], lab_records
    print(f"\n== stage 2's one-off costs, before its first step (frozen VAE encoder, {torch.get_num_threads()} "
          f"threads; measured once each, not per step)")

    def one_off(c, what):
        print(f"   {what}: latent cache (LatentDataset, {c['encodes']} clip variants encoded, "
              f"{c['cache_mib']:.0f} MiB) {c['cache_s']:.1f} s = {c['cache_s'] / c['clips'] * 1e3:.0f} ms/clip; "
              f"latent statistics (measure_latent_stats, {c['scale_clips']} clips) {c['scale_s']:.1f} s")
    n_lab = cfg.n_clips or intersynth.DEFAULT_N_CLIPS  # InterSynth clips the lab preset asks for
    subset = args.clips < n_lab
    one_off(cost, f"benchmark's {cost['clips']} clips" + (" (a subset of the lab preset's training split)"
                                                          if subset else ""))
    if lab_split is not None:
        one_off(lab_split, f"lab preset's training split, all {lab_split['clips']} clips")
    else:
        print("   (--quick: measured on this subset only; a full run also measures the lab preset's whole split)")

    # inputs, as train_loop fetches them
    n_fetch = 4 if args.quick else 8  # batches fetched (for the data-loading time); the steps cycle through 3
    vae_batches, vae_data_s = make_batches(vae_data(records, model.normalizer, cfg), im.collate,
                                           cfg.vae_batch, n_fetch)
    den_cache = cost.pop("data")
    den_batches, den_data_s = make_batches(den_cache, im.collate, cfg.batch, n_fetch)
    vae_batches, den_batches = vae_batches[:3], den_batches[:3]
    vae_model = copy.deepcopy(model.vae)  # stage 1 trains its own copy; stage 2's stays frozen
    sampler_state = copy.deepcopy(model.state_dict())  # untouched weights for the sampling measurement

    vae_step = common.VAEStep(vae_model, model.normalizer, cfg)
    den_step = common.DenoiserStep(model, cfg)
    den_step.calibrate(den_batches[:2], passes)

    # warm-up (also the FlopCounterMode cross-check)
    mats = [Matmul(MATMUL_N), Matmul(MATMUL_N // 2)]
    for m_ in mats:
        m_()

    def matmul_rate() -> float:
        """FLOP/s of the reference products just now: the faster of 2048^3 and 1024^3 (the latter's operands
        stay in the shared L3 cache, so other processes' memory traffic disturbs it less)."""
        rates = [m_.flops / m_() for m_ in mats]
        for m_, r in zip(mats, rates):
            m_.best = max(getattr(m_, "best", 0.0), r)
        return max(rates)
    vae_check = flop_counter_check(vae_step, vae_batches[0])
    vae_count = total(sum(step_flops(vae_step, vae_batches[0]).values(), []), train=True)
    den_check = flop_counter_check(den_step, den_batches[0])
    den_count = total(sum(step_flops(den_step, den_batches[0]).values(), []), train=True)
    vae_step(vae_batches[1])
    den_step(den_batches[1])

    # interleaved: a matmul before each step
    runs = {"vae": [], "den": []}  # (step phases, step FLOPs, matmul seconds just before)
    for r in range(repeats):
        for name, step, batches in (("vae", vae_step, vae_batches), ("den", den_step, den_batches)):
            b = batches[r % len(batches)]
            t_mm = matmul_rate()
            ph = step(b)
            fl = step_flops(step, b)
            ph["useful"] = useful_flops(step, b) / total(sum(fl.values(), []), train=True) \
                if step is den_step else 1.0  # share of the counted FLOPs on real slots
            runs[name].append((ph, fl, t_mm))
    mm_rates = [r for rs in runs.values() for _, _, r in rs]
    peak = max(mm_rates)
    print(f"\nfp32 matmul peak {peak / 1e9:.1f} GFLOP/s (best of {len(mm_rates)}: {MATMUL_N}^3 "
          f"{mats[0].best / 1e9:.1f}, {MATMUL_N // 2}^3 {mats[1].best / 1e9:.1f}; median {median(mm_rates) / 1e9:.1f})")

    def summarise(name, data_s, train_label, batch):
        rs = runs[name]
        best = min(rs, key=lambda x: x[0]["step"])
        ph, fl, _ = best
        parts = {k: total(v, train=True) for k, v in fl.items()}
        flops = sum(parts.values())
        rate = flops / ph["step"]
        paired = median([total(sum(f.values(), []), True) / p["step"] / r for p, f, r in rs])
        print(f"\n== {train_label}: batch {shape(batch)}")
        print(f"   model GFLOP/step {flops / 1e9:7.2f}   ("
              + ", ".join(f"{k} {v / 1e9:.2f}" for k, v in parts.items()) + ")")
        print(f"   best step {ph['step']:.3f} s  = {1 / ph['step']:.2f} steps/s;  data fetch + collate "
              f"{median(data_s):.3f} s/batch -> {1 / (ph['step'] + median(data_s)):.2f} steps/s as train_loop runs")
        print(f"   {rate / 1e9:.1f} GFLOP/s = {rate / peak:.0%} of the matmul peak "
              f"(median of matmul-paired ratios {paired:.0%})")
        print("   time split of the best step: " + ", ".join(
            f"{k} {v * 1e3:.0f} ms ({v / ph['step']:.0%})" for k, v in ph.items() if k not in ("step", "useful")))
        if ph["useful"] < 1.0:
            print(f"   without the padded slots (each clip and caption at its own length): {ph['useful']:.0%} of "
                  f"those FLOPs, {ph['useful'] * rate / peak:.0%} of the matmul peak")
        return rate / peak, ph["step"], flops

    def shape(batch):
        if "latent" in batch:
            B, P, Tz, C = batch["latent"].shape
            return f"{B} clips x 2 people x {Tz} cached latent frames of {C} (no VAE in the step)"
        B, P, T, _ = batch["motion"].shape
        return f"{B} clips x 2 people x {T} frames"

    vae_share, _, _ = summarise("vae", vae_data_s, "stage 1, VAE step", vae_batches[0])
    print(f"   FlopCounterMode cross-check: {vae_check / 1e9:.2f} GFLOP vs counted {vae_count / 1e9:.2f}")
    den_share, den_s, den_flops = summarise("den", den_data_s, "stage 2, denoiser step", den_batches[0])
    print(f"   FlopCounterMode cross-check: {den_check / 1e9:.2f} GFLOP vs counted {den_count / 1e9:.2f}")
    real = 2 * int(den_step.last_batch["mask"].sum())  # real latent tokens: the mask is per latent frame
    print("   experts per token in the last step, per layer: "
          + ", ".join(f"{k / real:.2f}" for k in den_step.selections)
          + f"  ({real} real latent tokens of {2 * den_step.last_batch['mask'].numel()} slots)")

    # ---- length buckets (cfg.bucket): an epoch's batches differ in length by design, so the mean step over
    # many batches, not the best of three, is what an epoch costs; the two orders alternate step by step
    n_b = 8 if args.quick else 24
    plain, _ = make_batches(den_cache, im.collate, cfg.batch, n_b)
    bucketed, _ = make_batches(den_cache, im.collate, cfg.batch, n_b, lengths=den_cache.lengths)
    secs = {"plain": [], "bucketed": []}
    for b_plain, b_bucket in zip(plain, bucketed):
        for key, b in (("plain", b_plain), ("bucketed", b_bucket)):
            secs[key].append(den_step(b)["step"])
    print(f"\n== stage 2 with and without length buckets (im.batches(..., lengths=); mean of {n_b} alternating steps)")
    mean_s = {}
    for key, bs in (("plain", plain), ("bucketed", bucketed)):
        mean_s[key] = sum(secs[key]) / len(secs[key])
        pad = 1 - sum(b["mask"].float().mean().item() for b in bs) / len(bs)
        print(f"   {key:8s}: {mean_s[key]:.3f} s/step = {1 / mean_s[key]:.2f} steps/s, {pad:.1%} of latent frames padding")
    print(f"   bucketed / plain step time: {mean_s['bucketed'] / mean_s['plain']:.3f}")

    # ---- the whole lab run, estimated from this run's step times (the `train` command: stage 1, then stage 2's
    # one-off costs and its steps; evaluation and data generation not included)
    one = lab_split or cost
    vae_best = min(p["step"] for p, _, _ in runs["vae"])
    est1 = cfg.vae_steps * (vae_best + median(vae_data_s))
    print(f"\n== the lab run's wall time per stage, estimated ({cfg.vae_steps} VAE steps, {cfg.steps} denoiser steps"
          f"{'' if lab_split else '; one-off costs scaled from this subset'})")
    scale = 1.0 if lab_split else n_lab * 0.8 / one["clips"]  # the train split keeps 80% of the clips
    one_s = (one["cache_s"] + one["scale_s"]) * scale
    print(f"   stage 1: {est1 / 60:.1f} min")
    for key in ("plain", "bucketed"):
        est2 = one_s + cfg.steps * (mean_s[key] + median(den_data_s))
        print(f"   stage 2, {key}: {est2 / 60:.1f} min (latent cache {one_s / 60:.1f} min)  -> both stages "
              f"{(est1 + est2) / 60:.1f} min")

    # ---- sampling
    model.load_state_dict(sampler_state)
    model.eval()
    prompts = prepare_sampler(model, records, steps=5 if args.quick else 10, passes=passes)
    pipeline.sample(model, prompts, SAMPLE_FRAMES, seed=0, steps=3)  # warm-up
    counter = MoECounter(model.denoiser.moe_blocks())
    text_shapes = []
    hnd = model.text.register_forward_hook(lambda m, a, o: text_shapes.append(tuple(o[1].shape[:2])))
    times = []
    for _ in range(1 if args.quick else 2):
        counter.pairs = counter.tokens = counter.calls = 0
        t0 = time.perf_counter()
        pipeline.sample(model, prompts, SAMPLE_FRAMES, seed=0)
        times.append(time.perf_counter() - t0)
    counter.remove()
    hnd.remove()
    n_fwd = counter.calls // max(1, len(counter.moes))
    sfl = sample_flops(model, text_shapes[-1], counter.pairs, n_fwd)
    s_best = min(times)
    print(f"\n== DDIM-{cfg.sample_steps} sampling, guidance {cfg.guidance}: {SAMPLE_N} interactions x "
          f"{SAMPLE_FRAMES} frames (denoiser batch {2 * SAMPLE_N} x 2 people x {-(-SAMPLE_FRAMES // 4)} latents)")
    print(f"   wall time {s_best:.2f} s (best of {len(times)}), {n_fwd} denoiser forwards; "
          f"experts per token {counter.per_token:.2f}")
    print(f"   model GFLOP {sum(sfl.values()) / 1e9:.1f} (" + ", ".join(f"{k} {v / 1e9:.2f}" for k, v in sfl.items())
          + f") = {sum(sfl.values()) / s_best / 1e9:.1f} GFLOP/s = {sum(sfl.values()) / s_best / peak:.0%} of the matmul peak")

    if args.profile:
        profile("stage 2 step", lambda: den_step(den_batches[0]))
        profile("stage 1 step", lambda: vae_step(vae_batches[0]))
        profile("sampling, 10 DDIM steps", lambda: pipeline.sample(model, prompts, SAMPLE_FRAMES, seed=0, steps=10))

    print("\nverdicts")
    print(f"   1. stage-2 step at {den_share:.0%} of the matmul peak (stage 1: {vae_share:.0%}): "
          f"{'MET' if den_share >= TARGET_SHARE else 'MISSED'} (target >= {TARGET_SHARE:.0%})")
    print(f"   2. DDIM-50 sampling, 8 x 180 frames: {s_best:.2f} s: "
          f"{'MET' if s_best < TARGET_SAMPLE_S else 'MISSED'} (target < {TARGET_SAMPLE_S:.0f} s)")
    print("   (memory: python benchmarks/bench_memory.py)")
    print(f"(bench took {time.perf_counter() - t_start:.0f} s)")


if __name__ == "__main__":
    main()
