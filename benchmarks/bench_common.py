"""What the benchmarks share: the `lab` model and its batches as train_loop makes them, and the two training steps
as train_loop runs them (im.train_step), timed by phase. bench_train, bench_memory and bench_compare import it;
they do not import each other."""
import argparse
import time

import torch

import intermoe_min as im
import intersynth

CPU = torch.device("cpu")


def arg_parser(doc: str, quick: str, clips: int | None = None) -> argparse.ArgumentParser:
    """The arguments the benchmarks share: --quick (what it cuts: `quick`), --threads and, given a default, --clips."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0: torch's default); 1 is steadier on a busy shared machine")
    if clips is not None:
        parser.add_argument("--clips", type=int, default=clips, help="InterSynth training clips for the batches")
    return parser


def parse_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """The parser's arguments, with torch's threads set to --threads (0 leaves torch's default)."""
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    return args



def dense_reference(moe, h, emb, mask=None, n_persons: int = 1):
    """InterMoEBlock's output the slow way: every expert on every token, then weighted by the selection
    (zero where not selected). moe(h, emb, mask) must equal it; costs E dense FFNs, records nothing."""
    N, T, D = h.shape
    if mask is None:
        mask = torch.ones(N, T, dtype=torch.bool, device=h.device)
    with torch.no_grad():
        _, sel, weights = moe.route(h, emb, mask, n_persons)
        x = moe.norm(h, emb)  # (N, T, D)
        all_out = torch.stack([expert(x) for expert in moe.experts], dim=-2)  # (N, T, E, D)
        w = (weights * sel).to(all_out.dtype)  # (N, T, E)
        y = (w[..., None] * all_out).sum(dim=-2)  # (N, T, D)
        return y if moe.shared is None else y + moe.shared(x) * mask[..., None].to(y.dtype)  # the shared expert

def setup(n_clips: int, preset: str = "lab"):
    """The preset built on InterSynth training clips; seeded, so every process gets the same weights."""
    records = intersynth.load_split("train", n_clips=n_clips)
    cfg = im.preset(preset)
    return cfg, records, im.build_model(cfg, records, seed=0)


def vae_data(records, normalizer, cfg, im=im):
    """Stage 1's dataset, as train_vae makes it (seed 0)."""
    return im.InteractionDataset(records, normalizer, train=True, max_frames=cfg.vae_window, seed=0)


def latent_data(model, records, cfg, im=im):
    """Stage 2's dataset, as train_denoiser makes it (seed 0): the latent cache of these clips."""
    return im.LatentDataset(model, records, train=True, max_frames=cfg.max_frames, seed=0)


def make_batches(data, collate_fn, batch_size: int, n: int, lengths=None, im=im):
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


class Step:
    """One training step as train_loop runs it: im.train_step (forward, backward, gradient value clip, AdamW, the
    schedule, then `after`) with the stage's optimiser and schedule, on the CPU. Called on a batch -> seconds of the
    step and of its phases."""

    def __init__(self, module, loss_fn, params, lr, warmup, steps, cfg, after=None, update="clip+AdamW", im=im):
        self.im, self.module, self.loss_fn, self.after, self.update = im, module, loss_fn, after, update
        self.params, self.grad_clip = [p for p in params if p.requires_grad], cfg.grad_clip
        self.opt = im.make_optimizer(self.params, lr, cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: im.warmup_cosine(s, warmup, steps))

    def loss(self, batch):
        return self.loss_fn(self.module, batch, CPU)

    def __call__(self, batch) -> dict:
        marks = [time.perf_counter()]
        self.module.train()  # train_loop's model.train() (stage 2's frozen VAE is not run)
        self.im.train_step(self.module, self.loss_fn, batch, CPU, self.opt, self.sched, self.params, self.grad_clip,
                           self.after, marks)
        t0, t1, t2, t3 = marks + [time.perf_counter()]
        return {"step": t3 - t0, "forward": t1 - t0, "backward": t2 - t1, self.update: t3 - t2}


class VAEStep(Step):
    """Stage 1 (train_vae): the VAE loss on both people of a batch."""

    def __init__(self, vae, normalizer, cfg, im=im):
        warmup = max(1, cfg.vae_steps // 20)
        super().__init__(vae, im._vae_loss_fn(normalizer, cfg.vae_weights), vae.parameters(), cfg.vae_lr, warmup,
                         cfg.vae_steps, cfg, im=im)
        self.cfg = cfg


class DenoiserStep(Step):
    """Stage 2 (train_denoiser) on a collate batch of cached latents (scaled in the loss, as train_denoiser's):
    the diffusion loss through text encoder and denoiser, then the MoE bias rule. No VAE runs here. Remembers each
    step's (token, expert) pairs per layer and the captions' token mask the text encoder ran on."""

    def __init__(self, model, cfg, im=im):
        model.vae.requires_grad_(False)
        model.vae.eval()
        super().__init__(model, im._denoiser_loss_fn(model), model.stage2_parameters(), cfg.lr, cfg.warmup,
                         cfg.steps, cfg, after=model.denoiser.update_biases, update="clip+AdamW+bias", im=im)
        self.model, self.cfg, self.moes, self.selections = model, cfg, model.denoiser.moe_blocks(), []
        self.text_mask = torch.ones(0, 0, dtype=torch.bool)  # (captions, tokens) the text encoder really ran on
        model.text.register_forward_hook(lambda m, a, o: setattr(self, "text_mask", o[2]))

    def __call__(self, batch) -> dict:
        out = super().__call__(batch)
        self.selections, self.last_batch = [int(b.last_counts.sum()) for b in self.moes], batch
        return out

    def calibrate(self, batches, passes: int):
        def run():
            self.model.train()
            for b in batches:
                self.loss(b)
        calibrate_biases(self.moes, run, passes)


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
