"""How well does the 'lab' preset use a CPU? Training steps against the matmul peak, sampling time, memory.

    python benchmarks/bench_train.py            # the full run: also encodes the lab preset's whole training split
    python benchmarks/bench_train.py --quick    # fewer repeats, shorter calibration, latent cache on a subset
    python benchmarks/bench_train.py --threads 1
    python benchmarks/bench_train.py --profile  # also torch.profiler's top operators

(The run prints how long it took; the measured figures are in docs/speed.md.)

Everything is the `lab` preset (im.preset('lab')), built with im.build_model on InterSynth training clips,
untrained weights (the time of a step does not depend on what the weights are, only on how many experts the
router picks). In one run it measures:

0. Stage 2's one-off costs before its first step, as train_denoiser pays them: measuring the latent statistics
   (im.measure_latent_stats) and building the latent cache (im.LatentDataset: every clip encoded whole by
   the frozen VAE encoder in its 4 (swap, mirror) variants). Timed once each, in seconds and seconds per
   training clip: on the benchmark's own clips always, and on the lab preset's whole training split (all
   of InterSynth's train clips) in a full run; --quick measures only the subset and says so.
1. Training steps, as im.train_loop does them: forward, backward, gradient value clipping, AdamW, the LR
   schedule and (stage 2) the MoE bias update; pre-collated batches of the preset's size, made as
   train_loop makes them (seeded dataset, im.batches order, the stage's collate function). Stage 1:
   vae_batch clips of vae_window frames (InteractionDataset, im.collate). Stage 2: batch clips' cached
   latents, windows of up to max_frames / 4 latent frames (LatentDataset, im.collate), divided by
   scale_latents inside the step as train_denoiser's loss_fn does: no VAE encoder runs in a stage-2 step.
   Time per step (best of repeats), the step's model FLOPs counted analytically (`*_terms` below) and
   FLOP/s as a share of the fp32 matmul throughput measured in the same run (the faster of a 2048^3 and a
   1024^3 torch.matmul, same thread count, before each step so both see the same background load; the
   peak is the best of them all). Data loading (dataset fetches + collate, done serially inside
   train_loop) is timed apart and folded into a second steps/s figure. Stage 2 again with and without
   length buckets (mean seconds over alternating steps), and the whole lab run's time per stage estimated
   from these step times.
2. DDIM-50 sampling with classifier-free guidance for 8 interactions of 180 frames (6 s), text encoding and
   VAE decoding included (model.sample). Untrained, the zero-initialised output layer is given small random
   weights and every InterMoE block's bias is set so that ~1 expert per token is selected (see below).
3. Peak memory of a stage-2 step, of a stage-1 step and of one sampling run, each in a fresh subprocess.

Expert biases. An untrained block has router logits near 0, so sigmoid ~ 0.5 against the initial bias -0.5
selects about half of the 8 experts; after a few hundred steps the bias rule has brought this down to ~1 per
token (capacity 1). To time what training and sampling cost at that point, each block's bias b_e is set to
minus the (1 - capacity / E) quantile of its expert's sigmoid(R) over real tokens of the same kind of input
(training batches; or the sampler's own forwards over the DDIM steps), layer by layer, three passes (a
bias changes what later layers see). Stage-2 steps keep applying the bias rule, as train_loop does.

Model FLOPs: 2*M*N*K per matrix product, counted from the config and the actual shapes: every padded slot
in the dense layers (the hardware computes them), the experts only on the (token, expert) pairs the router
selected in that very step (padding never selects). Counted: Linear layers, per-node MLPs, the VAE's graph
convolutions (W2 and the fixed adjacency / pooling matrices; W1 is folded into the temporal conv's
current-frame tap, so it is no product of its own) and temporal Conv2d (full 3 x 3 window per
output), attention QK^T and AV (with the extra zero key), AdaLN and router projections. Backward =
2 x forward per product (input and weight gradients), 1 x where one operand needs no gradient (the layer
that reads the data; the fixed graph matrices); no recomputation. Not counted: element-wise work (norms,
activations, softmax, loss, AdamW, folding W1 into the conv weight). torch's FlopCounterMode is run on one
step of each stage as a cross-check.

Memory: each measurement in a fresh subprocess: build the model, prepare the inputs, then reset the kernel's
resident-size high-water mark (write 5 to /proc/self/clear_refs) and read it back (VmHWM, the figure
ru_maxrss reports) after the work; printed as the peak over the process's resident size just before the
work, and the absolute peak. (ru_maxrss itself is useless in a subprocess: see measure_peak.) Stage 2's
subprocess first builds the latent cache of the benchmark's clips (its own peak is printed too), hands the
encoder's freed memory back (malloc_trim), then measures the steps: their "before" holds that cache.

Figures are noisy on a shared machine: compare ratios from one run, not times across runs. On a busy machine
torch's OpenMP threads (libgomp, spin-waiting by default) can make every multi-threaded figure 5-50x worse:
run with OMP_WAIT_POLICY=PASSIVE (set before Python starts; the header says what was in force) or --threads 1.
On an idle machine PASSIVE costs instead (its threads sleep between the many small operators): compare
like with like.
"""
import argparse
import copy
import inspect
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root
import intermoe_min as im  # noqa: E402
import intersynth  # noqa: E402

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


# ---- the model and its inputs ---------------------------------------------------------------------------
def setup(n_clips: int):
    """The lab preset built on InterSynth training clips; seeded, so every process gets the same weights."""
    records = intersynth.load_split("train", n_clips=n_clips)
    cfg = im.preset(PRESET)
    model = im.build_model(cfg, records, seed=0)
    return cfg, records, model


def vae_data(records, normalizer, cfg):
    """Stage 1's dataset, as train_vae makes it (seed 0)."""
    return im.InteractionDataset(records, normalizer, train=True, max_frames=cfg.vae_window, seed=0)


def latent_data(model, records, cfg):
    """Stage 2's dataset, as train_denoiser makes it (seed 0): the latent cache of these clips."""
    return im.LatentDataset(model, records, train=True, max_frames=cfg.max_frames, seed=0)


def make_batches(data, collate_fn, batch_size: int, n: int, lengths=None):
    """n batches as train_loop makes them from the seeded dataset `data` (its epoch set, im.batches order,
    with length buckets if `lengths` are given, collate_fn), and the seconds each took to fetch and collate
    (train_loop does this serially, between steps)."""
    out, seconds, epoch = [], [], 0
    while len(out) < n:
        data.epoch = epoch
        t0 = time.perf_counter()
        for idx in im.batches(data, batch_size, 0, epoch, lengths=lengths):
            out.append(collate_fn([data[i] for i in idx]))
            seconds.append(time.perf_counter() - t0)
            if len(out) == n:
                break
            t0 = time.perf_counter()
        epoch += 1
    return out, seconds


def sample_prompts(records) -> list:
    return [r["captions"][0] for r in records[:SAMPLE_N]]


@torch.no_grad()
def calibrate_biases(moes, run, passes: int = 3) -> None:
    """Set each block's b_e so that ~capacity experts per token pass the gate on the tokens `run()` feeds.

    b_e = -quantile(sigmoid(R_e), 1 - capacity / E) over the real tokens each block saw; repeated `passes`
    times, as a bias changes what the later layers see. Leaves no training tally behind.
    """
    moes = [m for m in moes if m.cfg.routing == "batch" and m.cfg.selection == "dynamic"]
    seen = {id(m): [] for m in moes}

    def hook(m, args, kwargs, out):
        h, emb = args[0], args[1] if len(args) > 1 else kwargs["emb"]
        mask = args[2] if len(args) > 2 else kwargs.get("mask")
        p = torch.sigmoid(m.router(h, emb).float())  # (N, T, E)
        seen[id(m)].append(p[mask] if mask is not None else p.flatten(0, 1))

    handles = [m.register_forward_hook(hook, with_kwargs=True) for m in moes]
    try:
        for _ in range(passes):
            for m in moes:
                seen[id(m)].clear()
            run()
            for m in moes:
                p = torch.cat(seen[id(m)])  # (S, E)
                q = torch.quantile(p, 1 - m.cfg.capacity / m.n_experts, dim=0)  # (E,)
                m.expert_bias.copy_((-q).clamp(-1 + im.BIAS_EPS, -im.BIAS_EPS))
    finally:
        for h in handles:
            h.remove()
        for m in moes:
            m._tally = None


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


# ---- the two training steps, as train_loop runs them -------------------------------------------------------
def timed_update(loss, opt, sched, params, grad_clip, after=None) -> tuple[float, float]:
    """train_loop's update after the forward: backward, value clip, AdamW, schedule, then `after()` (the MoE
    bias rule). Returns the perf_counter times when backward ended and when the update ended."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    t_backward = time.perf_counter()
    torch.nn.utils.clip_grad_value_(params, grad_clip)
    opt.step()
    sched.step()
    if after is not None:
        after()
    return t_backward, time.perf_counter()


class VAEStep:
    """Stage 1 (train_vae): the VAE loss on both people of a batch, backward, value clip, AdamW, schedule."""

    def __init__(self, vae, normalizer, cfg):
        self.vae, self.cfg = vae, cfg
        self.params = [p for p in vae.parameters() if p.requires_grad]
        self.opt = im.make_optimizer(self.params, cfg.vae_lr, cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: im.warmup_cosine(s, max(1, cfg.vae_steps // 20), cfg.vae_steps))
        self.loss_fn = im._vae_loss_fn(normalizer)

    def flops(self, batch):
        B, P, T, _ = batch["motion"].shape
        return {"VAE enc+dec": vae_terms(self.cfg.vae, B * P, T)}

    def __call__(self, batch) -> dict:
        t0 = time.perf_counter()
        self.vae.train()
        loss, _ = self.loss_fn(self.vae, batch, torch.device("cpu"))
        if not torch.isfinite(loss):
            raise FloatingPointError("VAE loss is not finite")
        t1 = time.perf_counter()
        t2, t3 = timed_update(loss, self.opt, self.sched, self.params, self.cfg.grad_clip)
        return {"step": t3 - t0, "forward": t1 - t0, "backward": t2 - t1, "clip+AdamW": t3 - t2}


class DenoiserStep:
    """Stage 2 (train_denoiser) on a collate batch of latents: the cached unscaled latents divided by
    scale_latents (train_denoiser's loss_fn), diffusion loss through text encoder and denoiser, backward, value
    clip, AdamW, schedule, MoE bias update. No VAE runs here: its latents were cached before the first step.
    Remembers each step's expert selections."""

    def __init__(self, model, cfg):
        self.model, self.cfg = model, cfg
        model.vae.requires_grad_(False)
        model.vae.eval()
        self.params = [p for p in model.stage2_parameters() if p.requires_grad]
        self.opt = im.make_optimizer(self.params, cfg.lr, cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: im.warmup_cosine(s, cfg.warmup, cfg.steps))
        self.moes = model.denoiser.moe_blocks()
        self.text_mask = torch.ones(0, 0, dtype=torch.bool)  # (captions, tokens) the text encoder really ran on
        model.text.register_forward_hook(lambda m, a, o: setattr(self, "text_mask", o[2]))
        self.selections = []

    def flops(self, batch):
        """Model FLOP terms of the step that just ran on `batch` (its selections and caption length)."""
        c = self.cfg
        B, P, Tz, _ = batch["latent"].shape
        return {"denoiser": denoiser_terms(c.denoiser, B, Tz, self.selections),
                "text encoder": text_terms(c.text, *self.text_mask.shape)}

    def useful_flops(self, batch) -> int:
        """The step's FLOPs without the padded slots: each clip at its own length, each distinct caption at
        its own token count, experts as counted (padding never selects)."""
        c = self.cfg
        dense = [denoiser_terms(c.denoiser, 1, int(n), [0] * c.denoiser.n_layers) for n in batch["lengths"]]
        experts = [(k * 3 * 2 * c.denoiser.width * c.denoiser.moe.d_expert, 2) for k in self.selections]
        text = [text_terms(c.text, 1, int(n)) for n in self.text_mask.sum(1)]
        return total(sum(dense, []) + experts + sum(text, []), train=True)

    @staticmethod
    def real_tokens(batch) -> int:
        return 2 * int(batch["mask"].sum())  # the mask is already per latent frame

    def loss(self, batch):
        """train_denoiser's loss_fn (on the CPU: train_loop's autocast is a no-op there)."""
        m = self.model
        z0 = m.scale_latents(batch["latent"])  # (B, 2, T', C) unit-variance latents
        return m(z0, batch["mask"], batch["captions"])

    def __call__(self, batch) -> dict:
        m = self.model
        t0 = time.perf_counter()
        m.train()  # train_loop's model.train(); the frozen VAE is not run
        loss, _ = self.loss(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError("diffusion loss is not finite")
        t1 = time.perf_counter()
        self.selections = [int(b.last_counts.sum()) for b in self.moes]
        self.last_batch = batch
        t2, t3 = timed_update(loss, self.opt, self.sched, self.params, self.cfg.grad_clip,
                              after=m.denoiser.update_biases)
        return {"step": t3 - t0, "forward": t1 - t0, "backward": t2 - t1, "clip+AdamW+bias": t3 - t2}

    def calibrate(self, batches, passes: int):
        def run():
            self.model.train()
            for b in batches:
                self.loss(b)
        calibrate_biases(self.moes, run, passes)


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
    calibrate_biases(model.denoiser.moe_blocks(),
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


# ---- memory, in fresh subprocesses ------------------------------------------------------------------------
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_memory import _status_kb  # noqa: E402  (one reader of /proc/self/status)


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak RSS (VmHWM) to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def _trim_heap() -> None:
    """Hand the heap's free pages back to the kernel (glibc malloc_trim), so a resident size measured next
    is what is held, not what was freed. A no-op elsewhere."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def measure_peak(fn) -> dict:
    """Peak resident memory while fn() runs, and the resident size just before it (MiB).

    The kernel's high-water mark is reset first and read back as VmHWM. ru_maxrss is not used as it is:
    after fork + exec Linux keeps the parent's resident size as the child's ru_maxrss floor (this
    benchmark's parent holds ~1.5 GiB), and clear_refs does not lower that floor. Without clear_refs
    (not Linux), the figure is ru_maxrss after fn() (then only an upper bound).
    """
    import gc
    gc.collect()
    before = _status_kb("VmRSS")
    exact = before is not None and _reset_peak()
    fn()
    peak = _status_kb("VmHWM") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    before = before if before is not None else 0
    return {"delta_mib": (peak - before) / 1024, "peak_mib": peak / 1024, "before_mib": before / 1024,
            "exact": exact}


def child(kind: str, state_path: str, n_clips: int) -> dict:
    """One memory measurement in this fresh process: 'train' (stage 2), 'vae' (stage 1) or 'sample'."""
    cfg, records, model = setup(n_clips)
    state = torch.load(state_path, weights_only=True)
    if kind == "sample":
        model.load_state_dict(state)
        prompts = sample_prompts(records)
        return measure_peak(lambda: model.sample(prompts, SAMPLE_FRAMES, seed=0))
    if kind == "vae":
        batches, _ = make_batches(vae_data(records, model.normalizer, cfg), im.collate, cfg.vae_batch, 3)
        step = VAEStep(model.vae, model.normalizer, cfg)
    else:
        model.load_state_dict(state)  # the calibrated biases and latent statistics
        out = {}
        cache = measure_peak(lambda: out.setdefault("data", latent_data(model, records, cfg)))
        _trim_heap()  # the encoder's freed activations would otherwise hide the step's own need
        batches, _ = make_batches(out.pop("data"), im.collate, cfg.batch, 3)
        step = DenoiserStep(model, cfg)
    first = measure_peak(lambda: step(batches[0]))  # AdamW's state and the gradients are allocated here
    later = [measure_peak(lambda: step(b)) for b in (batches[1], batches[2], batches[0])]
    peak = max(m["peak_mib"] for m in later)  # steady state: the previous step's gradients still held
    res = {"first_delta_mib": first["delta_mib"], "delta_mib": peak - first["before_mib"],
           "peak_mib": max(first["peak_mib"], peak), "before_mib": first["before_mib"], "exact": first["exact"]}
    if kind == "train":
        res["cache"] = cache
    return res


def run_child(kind: str, state_path: str, args) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", kind, "--state", state_path,
           "--threads", str(torch.get_num_threads()), "--clips", str(args.clips)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"memory subprocess '{kind}' failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


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
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and a shorter calibration")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0: torch's default); 1 is steadier on a busy shared machine")
    parser.add_argument("--profile", action="store_true", help="print torch.profiler's top operators too")
    parser.add_argument("--clips", type=int, default=N_CLIPS, help="InterSynth clips to generate/load")
    parser.add_argument("--child", choices=["train", "vae", "sample"], help=argparse.SUPPRESS)
    parser.add_argument("--state", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(child(args.child, args.state, args.clips)))
        return

    repeats = 3 if args.quick else 8
    passes = 2 if args.quick else 3
    t_start = time.perf_counter()
    cfg, records, model = setup(args.clips)
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

    tmp = tempfile.mkdtemp(prefix="bench_train_")
    vae_step = VAEStep(vae_model, model.normalizer, cfg)
    den_step = DenoiserStep(model, cfg)
    den_step.calibrate(den_batches[:2], passes)
    torch.save(model.state_dict(), os.path.join(tmp, "train.pt"))  # calibrated biases, for the subprocess

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
    vae_count = total(sum(vae_step.flops(vae_batches[0]).values(), []), train=True)
    den_check = flop_counter_check(den_step, den_batches[0])
    den_count = total(sum(den_step.flops(den_batches[0]).values(), []), train=True)
    vae_step(vae_batches[1])
    den_step(den_batches[1])

    # interleaved: a matmul before each step
    runs = {"vae": [], "den": []}  # (step phases, step FLOPs, matmul seconds just before)
    for r in range(repeats):
        for name, step, batches in (("vae", vae_step, vae_batches), ("den", den_step, den_batches)):
            b = batches[r % len(batches)]
            t_mm = matmul_rate()
            ph = step(b)
            fl = step.flops(b)
            ph["useful"] = step.useful_flops(b) / total(sum(fl.values(), []), train=True) \
                if hasattr(step, "useful_flops") else 1.0  # share of the counted FLOPs on real slots
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
    real = den_step.real_tokens(den_step.last_batch)
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
    torch.save(model.state_dict(), os.path.join(tmp, "sample.pt"))
    model.sample(prompts, SAMPLE_FRAMES, seed=0, steps=3)  # warm-up
    counter = MoECounter(model.denoiser.moe_blocks())
    text_shapes = []
    hnd = model.text.register_forward_hook(lambda m, a, o: text_shapes.append(tuple(o[1].shape[:2])))
    times = []
    for _ in range(1 if args.quick else 2):
        counter.pairs = counter.tokens = counter.calls = 0
        t0 = time.perf_counter()
        model.sample(prompts, SAMPLE_FRAMES, seed=0)
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
        profile("sampling, 10 DDIM steps", lambda: model.sample(prompts, SAMPLE_FRAMES, seed=0, steps=10))

    # ---- memory
    try:
        mem = {"train": run_child("train", os.path.join(tmp, "train.pt"), args),
               "vae": run_child("vae", os.path.join(tmp, "train.pt"), args),
               "sample": run_child("sample", os.path.join(tmp, "sample.pt"), args)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    how = ("fresh subprocess each; VmHWM after the work, reset before it by /proc/self/clear_refs"
           if mem["train"]["exact"] else "fresh subprocess each; ru_maxrss, an upper bound")
    print(f"\n== peak memory ({how})")
    for k, label in (("train", "stage 2 step"), ("vae", "stage 1 step")):
        m = mem[k]
        print(f"   {label}: first step +{m['first_delta_mib']:.0f} MiB, steps 2-4 +{m['delta_mib']:.0f} MiB "
              f"over the process before training ({m['before_mib']:.0f} MiB: torch, data, model); "
              f"absolute peak {m['peak_mib']:.0f} MiB")
    c = mem["train"]["cache"]
    print(f"   stage 2's latent cache build ({len(records)} clips, once, before the steps): "
          f"+{c['delta_mib']:.0f} MiB, absolute peak {c['peak_mib']:.0f} MiB")
    m = mem["sample"]
    print(f"   sampling: +{m['delta_mib']:.0f} MiB over the process before it ({m['before_mib']:.0f} MiB); "
          f"absolute peak {m['peak_mib']:.0f} MiB")

    # ---- verdicts
    try:
        import psutil
        ram = psutil.virtual_memory().total / 2 ** 30
    except ImportError:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    print("\nverdicts")
    print(f"   1. stage-2 step at {den_share:.0%} of the matmul peak (stage 1: {vae_share:.0%}): "
          f"{'MET' if den_share >= TARGET_SHARE else 'MISSED'} (target >= {TARGET_SHARE:.0%})")
    print(f"   2. DDIM-50 sampling, 8 x 180 frames: {s_best:.2f} s, peak +{mem['sample']['delta_mib']:.0f} MiB: "
          f"{'MET' if s_best < TARGET_SAMPLE_S else 'MISSED'} (target < {TARGET_SAMPLE_S:.0f} s)")
    tr = mem["train"]
    print(f"   3. stage-2 step peak +{tr['delta_mib']:.0f} MiB (absolute {tr['peak_mib']:.0f} MiB) = "
          f"{tr['peak_mib'] / 1024 / ram:.1%} of this machine's {ram:.0f} GiB: "
          f"{'fits a laptop (< 4 GiB absolute)' if tr['peak_mib'] < 4096 else 'over 4 GiB'}")
    print(f"(bench took {time.perf_counter() - t_start:.0f} s)")


if __name__ == "__main__":
    main()
