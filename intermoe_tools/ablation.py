"""intermoe_tools.ablation: the paper's ablation table in miniature.

`run_ablation` trains each variant of the InterMoE block on the same budget and judges it with the same
evaluator; `ablation_markdown` writes the table, `expert_load` measures the experts' load; `plot_summary` draws the
table, `plot_paired` and `paired_report` each variant against full InterMoE seed by seed, `plot_expert_load` the load.
"""
from __future__ import annotations

import os
import time
import warnings
from dataclasses import asdict, fields, replace

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

import intermoe_min as im
import intersynth
from intermoe_min import InterMoE, InterMoEConfig, LatentDataset, build_model, measure_latent_stats, preset, train_vae
from intermoe_tools import pipeline
from intermoe_tools.devices import pick_device
from intermoe_tools.files import atomic_write
from intermoe_tools.export import _write_text
from intermoe_tools.evaluation import (_fmt, _json_text, _machine, _read_json, _write_json, evaluate, mean_ci, METRICS,
                                       train_evaluator, train_role_classifier)
from intermoe_tools.runs import check_vae


# Every variant trains the same denoiser budget (steps, batch, data, seeds) on the same frozen VAE and is
# judged by the same evaluator; only the InterMoE block's switches differ. The paper's ablation table gives its
# rows (InterHuman, full-size models, PAPER_TRAINING); ours are InterSynth and minutes on a CPU, so compare
# the direction of each difference, not the values.

ABLATIONS = {  # name -> (the paper's row it stands for, changes to the denoiser config)
    "full InterMoE": ("Full InterMoE", {}),
    "FFN baseline": ("Baseline (InterGen + CS-VAE, FFN instead of MoE)", {"ffn_type": "ffn"}),
    # a control, not in the paper: the dense FFN as wide as all the experts together (the MoE's parameter count;
    # the baseline above has its compute per token)
    "FFN, MoE's parameters": (None, {"ffn_type": "ffn", "ffn_experts": "all"}),
    # ... and the baseline given full InterMoE's training time: as many more steps as its step is faster, measured
    # in the study's process (`wall_time_steps`)
    "FFN, MoE's wall time": (None, {"ffn_type": "ffn", "wall_time_of": "full InterMoE"}),
    "motion-only router": ("w/o motion & text router", {"router_mode": "motion"}),
    "text-only router": ("w/o motion & text router", {"router_mode": "text"}),
    "per-sample routing": ("w/o batch-level routing", {"routing": "sample"}),
    "fixed top-k": ("w/o dynamic selection (fixed top-k)", {"selection": "topk"}),
    # not in the paper: both people read the same caption, as the paper's denoiser does (egocentric_text,
    # role_embedding off)
    "shared caption": (None, {"egocentric_text": False, "role_embedding": False}),
    # not in the paper's table: its future work, the router's motion/text mix alpha learnt instead of 0.5
    "learnable alpha": (None, {"learn_alpha": True}),
    # a remedy from the field, not in the paper: DeepSeekMoE's shared expert beside the routed ones, at full
    # InterMoE's compute per token (the shared expert half an expert wide, the routed experts' capacity halved)
    "shared expert": (None, {"shared_expert": "half"}),
    # not in the paper: stage 2's training levers (InterMoEConfig; the lever screen of docs/results.md)
    "EMA": (None, {"ema_decay": 0.999}),
    "length buckets": (None, {"bucket": True}),
    "decoded losses": (None, {"geo_weight": 1.0}),
    "capsule loss": (None, {"pen_weight": 100.0}),
    "decoded + capsule": (None, {"geo_weight": 1.0, "pen_weight": 100.0}),
    "decoded + capsule, light": (None, {"geo_weight": 0.3, "pen_weight": 30.0}),
    # the second round: the same losses only where the x0 prediction is sharp (t <= 300, not InterGen's 700)
    "capsule loss, t <= 300": (None, {"pen_weight": 100.0, "geo_t_max": 300}),
    "decoded + capsule, t <= 300": (None, {"geo_weight": 1.0, "pen_weight": 100.0, "geo_t_max": 300}),
}
LEVERS = ["full InterMoE", "EMA", "decoded losses", "capsule loss", "decoded + capsule",  # the lever screen
          "capsule loss, t <= 300", "decoded + capsule, t <= 300"]
PAPER_VARIANTS = [name for name, (row, _) in ABLATIONS.items() if row]  # the study's default: the paper's rows
# The paper's training, as a budget: the authors' configs/intermoe-interhuman.yaml runs 1,000 epochs, and their
# datasets/interhuman.py adds every training clip's mirror image to the epoch; with the paper's batch of 64 on each
# of 2 GPUs, and about 80% of InterHuman's 7,779 clips in training (our estimate: the paper gives neither the
# split's size nor a step count), that is some 12 M clips seen, about 100k steps of 128.
PAPER_TRAINING = "1,000 epochs of InterHuman, about 100k steps of 128 (estimated)"
PAPER_CLIPS_SEEN = 1000 * 2 * round(0.8 * 7779)
PAPER_ABLATION = {  # the paper's ablation table: FID, R@1, MM-Dist on InterHuman
    "Baseline (InterGen + CS-VAE, FFN instead of MoE)": (5.251, 0.489, 3.771),
    "w/o motion & text router": (4.782, 0.503, 3.766),
    "w/o batch-level routing": (6.036, 0.492, 3.774),
    "w/o dynamic selection (fixed top-k)": (6.242, 0.498, 3.772),
    "Full InterMoE": (4.677, 0.512, 3.762),
}
LEVER_METRICS = ("FID", "R-Precision top-3", "MM-Dist", "role accuracy", "role swap rate", "foot sliding (cm/frame)",
                 "interpenetration (% frames)", "hand contact (cm)")  # the lever screen's columns
ABLATION_METRICS = ("FID", "R-Precision top-1", "R-Precision top-3", "MM-Dist", "Diversity", "role accuracy",
                    "role swap rate", "homogenisation gap (cm)", "interpenetration (% frames)")


def ablation_config(cfg: InterMoEConfig, name: str) -> InterMoEConfig:
    """cfg with the denoiser switches of ablation `name` (a key of ABLATIONS)."""
    if name not in ABLATIONS:
        raise ValueError(f"unknown ablation {name!r}; choose from {list(ABLATIONS)}")
    changes = {k: v for k, v in ABLATIONS[name][1].items() if k != "wall_time_of"}  # that one sets the steps
    own = {f.name for f in fields(InterMoEConfig)} - {"denoiser"}
    top = {k: changes.pop(k) for k in list(changes) if k in own}  # InterMoEConfig's; the rest the denoiser's
    cfg = replace(cfg, **top)
    den = cfg.denoiser
    if "ffn_type" in changes:  # one expert's size, or (ffn_experts "all") every expert's together
        width = den.moe.n_experts if changes.pop("ffn_experts", 1) == "all" else 1
        den = replace(den, ffn_type=changes.pop("ffn_type"), d_ffn=width * den.moe.d_expert)
    if changes.pop("shared_expert", None) == "half":  # half of each token's compute shared, half routed
        changes.update(d_shared=den.moe.d_expert // 2, capacity=den.moe.capacity / 2)
    return replace(cfg, denoiser=replace(den, moe=replace(den.moe, **changes)))


def ablation_preset(smoke: bool = False, name: str = "ablation") -> InterMoEConfig:
    """The study's model, preset(name); smoke: the nano preset, for tests and the notebook's quick run (10 DDIM
    steps, no physics guidance: its numbers test the plumbing, not InterMoE)."""
    return preset("nano", n_clips=96, steps=6, sample_steps=10, physics=0.0) if smoke else preset(name)


def _variant_model(cfg: InterMoEConfig, name: str, base: InterMoE, device) -> InterMoE:
    """A fresh model of variant `name` (weights from torch's generator) on the study's shared VAE, vocabulary,
    normaliser and latent scaling (`base`)."""
    model = InterMoE(ablation_config(cfg, name), base.vocab, base.normalizer).to(device)
    model.vae.load_state_dict(base.vae.state_dict())
    model.set_latent_stats(base.latent_mean, base.latent_scale)
    return model


def wall_time_steps(cfg: InterMoEConfig, name: str, steps: int, base: InterMoE, latents, device,
                    rounds: int = 5, per_round: int = 3) -> dict:
    """The steps that give variant `name` the training time `steps` steps of its reference (ABLATIONS' wall_time_of)
    take: both fresh models' training steps (im.train_step: forward, backward, AdamW, the bias rule) timed in turns
    on the same batches of the latent cache, rounds x per_round each, after one warm-up; the ratio of the medians
    -> {"ratio": reference / variant step time, "steps": round(steps x ratio), "reference": its name}."""
    ref = ABLATIONS[name][1]["wall_time_of"]
    batches = [im.collate([latents[i] for i in range(k * cfg.batch, (k + 1) * cfg.batch)]) for k in range(per_round)]
    steppers, times = {}, {ref: [], name: []}
    for variant in (ref, name):
        torch.manual_seed(0)
        model = _variant_model(cfg, variant, base, device)
        params = model.stage2_parameters()
        opt = im.make_optimizer(params, cfg.lr, cfg.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1.0)
        loss_fn = im._denoiser_loss_fn(model)

        def step(batch, model=model, params=params, opt=opt, sched=sched, loss_fn=loss_fn):
            im.train_step(model, loss_fn, batch, device, opt, sched, params, cfg.grad_clip,
                          after=model.denoiser.update_biases)
        step(batches[0])  # warm-up
        steppers[variant] = step
    for _ in range(rounds):
        for variant in (ref, name):
            t = time.perf_counter()
            for batch in batches:
                steppers[variant](batch)
            times[variant].append((time.perf_counter() - t) / len(batches))
    ratio = float(np.median(times[ref]) / np.median(times[name]))
    return {"reference": ref, "ratio": round(ratio, 4), "steps": int(round(steps * ratio))}


def learnt_alpha(model) -> list[float] | None:
    """Each layer's synergistic router's alpha after training, where it is learnt (learn_alpha); else None."""
    routers = [blk.router for blk in model.denoiser.moe_blocks() if blk.router.learn_alpha]
    return [round(r.alpha.item(), 4) for r in routers] or None


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name.lower()).strip("_")


@torch.no_grad()
def expert_load(model, records: list[dict], n: int = 32, seed: int = 0, t_bins: int = 10, around: int = 8) -> dict:
    """How the experts share the work while `model` generates for the first n `records` (each its first caption
    and its own length, DDIM with guidance, as `sample` runs): per MoE layer, the share of real tokens each
    expert takes (the shares sum to the experts per token); experts per token by noise step t (t_bins equal
    bins of the diffusion's steps); and experts per token by latent frame from the clip's first key event
    (meta['key_frames'], -around..around latent frames; clips without one count elsewhere only). Guidance's
    unconditional half counts in the shares and the noise curve, not around the key events."""
    blocks = model.denoiser.moe_blocks()
    if not blocks:
        raise ValueError("expert_load: this model has no MoE blocks (the FFN baseline has no experts to load)")
    recs = records[:n]
    B, L, E, A = len(recs), len(blocks), blocks[0].n_experts, 2 * around + 1
    lengths = [int(np.clip(r["joints"].shape[1], im.MIN_FRAMES, im.MAX_FRAMES)) for r in recs]
    Tz = -(-max(lengths) // 4)
    key = torch.tensor([min(r["meta"].get("key_frames") or [-10 ** 6]) // 4 for r in recs])  # (B,) latent frame
    offset = torch.arange(Tz)[None] - key[:, None] + around  # (B, Tz): 0..A-1 within reach of the key event
    real = torch.arange(Tz)[None] < torch.tensor([-(-n_ // 4) for n_ in lengths])[:, None]  # (B, Tz)
    near = F.one_hot(offset.clamp(0, A - 1), A).float() * ((offset >= 0) & (offset < A) & real)[..., None].float()
    counts, tokens = torch.zeros(L, E), torch.zeros(L)
    by_t, tok_t = torch.zeros(L, t_bins), torch.zeros(L, t_bins)
    by_key, tok_key = torch.zeros(L, A), torch.zeros(L, A)
    now = {}
    n_steps = model.diffusion.n_steps

    def on_denoiser(module, args):
        now["bin"] = min(int(args[2][0]) * t_bins // n_steps, t_bins - 1)  # args: x_a, x_b, t (2B,), ...

    def on_block(layer):
        def hook(module, args, out):
            sel = module.last_selection.cpu()  # (2 * 2B, Tz, E): rows person-major, conditional samples first
            picked, S = sel.sum((0, 1)).float(), float(module.last_tokens)
            counts[layer] += picked
            tokens[layer] += S
            by_t[layer, now["bin"]] += picked.sum()
            tok_t[layer, now["bin"]] += S
            per_frame = rearrange(sel, "(p b) t e -> b p t e", p=2)[:B].sum((1, 3)).float()  # (B, Tz), both people
            by_key[layer] += torch.einsum("bt,bta->a", per_frame, near)
            tok_key[layer] += 2 * near.sum((0, 1))
        return hook
    handles = [model.denoiser.register_forward_pre_hook(on_denoiser)]
    handles += [b.register_forward_hook(on_block(i)) for i, b in enumerate(blocks)]
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*not in the vocabulary")
            model.sample([r["captions"][0] for r in recs], lengths, seed=seed)
    finally:
        for h in handles:
            h.remove()
    edges = [round(k * n_steps / t_bins) for k in range(t_bins + 1)]
    return {"clips": B, "experts": E, "target": blocks[0].cfg.capacity,  # the routed experts per token aimed at
            "shared expert": bool(blocks[0].cfg.d_shared), "share": (counts / tokens[:, None]).tolist(),  # (L, E)
            "experts per token": (counts.sum(1) / tokens).tolist(),  # (L,)
            "t bins": edges, "by t": (by_t / tok_t).tolist(),  # (L, t_bins), NaN where no DDIM step fell
            "offsets": list(range(-around, around + 1)), "around key event": (by_key / tok_key).tolist(),  # (L, A)
            "key event clips": int((key >= 0).sum())}


def run_ablation(out: str | None = None, work: str = os.path.join("runs", "ablation"), variants=None,
                 seeds=(0, 1, 2), steps: int | None = None, vae_ckpt: str | None = None, repeats: int = 2,
                 n_test: int = 96, smoke: bool = False, progress: bool = True,
                 preset_name: str = "ablation", report: str = "ablation", cached_only: bool = False) -> dict:
    """Train and evaluate every ablation variant x seed; write {out}/{report}.md and {out}/{report}.json
    (out defaults to `work`; the repository's published table is results/, written only on request).
    preset_name: the model every variant changes; report "levers" writes the lever screen's page.

    Shared by all runs: the data, one VAE (trained into {work}/vae.pt, or read from vae_ckpt, e.g. the lab
    demo's runs/demo/vae.pt), its latent cache, the evaluator and the role classifier (trained once into
    runs/evaluator/, the ones `run_evaluation` uses; into {work} for the smoke study). Per run: a fresh text encoder + denoiser (initialised by the seed) trained for the same `steps`,
    then `evaluate` with `repeats` fresh generations of the first n_test test clips (0: all; MultiModality left
    out: 30 generations per caption would triple the study's time) and `expert_load` on 32 of them. Everything is cached in {work}: an interrupted study
    rerun with the same arguments picks up where it stopped. cached_only: train nothing, report the runs finished
    so far (a long study's progress). Returns the results dict written to JSON.
    """
    t_start = time.time()
    out = work if out is None else out
    cfg = ablation_preset(smoke, preset_name)
    steps = cfg.steps if steps is None else steps
    variants = PAPER_VARIANTS if variants is None else list(variants)
    vae_state = check_vae(vae_ckpt, cfg, "--smoke (--preset nano)" if smoke else f"--preset {preset_name}") \
        if vae_ckpt else None
    if cached_only:  # checked before anything loads or trains
        done = [_read_json(p) for p in (os.path.join(work, f"{_slug(n)}_s{s}.json") for n in variants for s in seeds)
                if os.path.isfile(p)]
        if not done:
            raise ValueError(f"--cached-only: no finished run in {work} for variants {variants} and seeds {list(seeds)}")
        other = sorted({r["steps"] for r in done if "wall_time_of" not in ABLATIONS[r["variant"]][1]} - {steps})
        if other:  # e.g. without the study's --preset or --steps: the report would mislabel its runs
            raise ValueError(f"runs in {work} were trained for {other} denoiser steps, not {steps}: pass the study's "
                             f"--preset / --steps")
    # what every cached run and the real row of {work} were made with: a study of other settings needs its own folder
    study = {"preset": "nano (smoke)" if smoke else preset_name, "steps": steps, "test clips": n_test, "repeats": repeats}
    study_path, wall_path = os.path.join(work, "study.json"), os.path.join(work, "wall_time.json")
    if os.path.isfile(study_path) and _read_json(study_path) != study:
        theirs = _read_json(study_path)
        differ = ", ".join(f"{k} {theirs.get(k)!r} (now {v!r})" for k, v in study.items() if theirs.get(k) != v)
        raise ValueError(f"{work} holds a study of other settings: {differ}; use another --work, or the same settings")
    os.makedirs(work, exist_ok=True)
    if not os.path.isfile(study_path):
        _write_json(study_path, study)
    os.makedirs(out, exist_ok=True)
    train, val, test = (intersynth.load_split(split, cfg.n_clips) for split in ("train", "val", "test"))
    base = build_model(cfg, train, seed=0)  # the shared VAE's initial weights: the same study every time
    if vae_state:
        base.vae.load_state_dict(vae_state["model"])
    else:
        train_vae(base, train, ckpt_path=os.path.join(work, "vae.pt"), progress=progress)
    device = pick_device()
    base.to(device).set_latent_stats(*measure_latent_stats(base, train, device=device))
    latents = []  # the shared latent cache, built when the first run that needs training starts

    def cache():
        if not latents:
            latents.append(LatentDataset(base, train, train=True, max_frames=cfg.max_frames, progress=progress))
        return latents[0]
    ev_dir = work if smoke else os.path.join("runs", "evaluator")  # the one `run_evaluation` uses too
    os.makedirs(ev_dir, exist_ok=True)
    evaluator, ev_report = train_evaluator(train, val, ckpt_path=os.path.join(ev_dir, "evaluator.pt"),
                                           normalizer=base.normalizer, progress=progress, **_smoke_eval(smoke))
    roles, role_report_ = train_role_classifier(train, val, ckpt_path=os.path.join(ev_dir, "roles.pt"),
                                                normalizer=base.normalizer, progress=progress, **_smoke_eval(smoke))
    test = test[:n_test] if n_test else test  # default one batch of 96: generation is most of a run's evaluation
    batch = min(96, len(test))
    eval_kw = dict(repeats=repeats, batch=batch, mm_captions=0, progress=progress)
    real_path = os.path.join(work, "real.json")
    if not os.path.isfile(real_path):
        real = evaluate(None, test, evaluator, roles, reference=val, resume=real_path[:-5] + ".repeats.json", **eval_kw)
        _write_json(real_path, real)
    real = _read_json(real_path)
    runs = []
    for name in variants:
        for seed in seeds:
            path = os.path.join(work, f"{_slug(name)}_s{seed}")
            if not os.path.isfile(path + ".json"):
                if cached_only:
                    continue  # not run yet
                run_steps = steps
                if "wall_time_of" in ABLATIONS[name][1]:  # measured once per study, kept in the work folder
                    wall = _read_json(wall_path) if os.path.isfile(wall_path) else {}
                    if name not in wall:
                        wall[name] = wall_time_steps(cfg, name, steps, base, cache(), device)
                        _write_json(wall_path, wall)
                    run_steps = wall[name]["steps"]
                torch.manual_seed(seed)  # this run's initial weights
                model = _variant_model(cfg, name, base, device)
                t = time.time()
                history = pipeline.train_denoiser(model, train, steps=run_steps, ckpt_path=path + ".pt", seed=seed,
                                                  device=device, progress=progress, latents=cache())
                # across resumes: the checkpoint keeps the seconds trained before (the history's last entry has them)
                train_seconds = round(history[-1]["seconds"] if history else time.time() - t, 1)
                metrics = evaluate(model, test, evaluator, roles, seed=seed, resume=path + ".repeats.json", **eval_kw)
                t = time.time() - _read_json(path + ".repeats.json")["seconds"]  # the evaluation's time across resumes
                load = expert_load(model, test, n=min(32, len(test)), seed=seed) if model.denoiser.moe_blocks() else None
                _write_json(path + ".json", {"variant": name, "seed": seed, "steps": run_steps, "checkpoint": path + ".pt",
                                             "final loss": history[-1]["loss"] if history else None,
                                             "train seconds": train_seconds,
                                             "eval seconds": round(time.time() - t, 1), "metrics": metrics,
                                             "load": load, "learnt alpha": learnt_alpha(model)})
            runs.append(_read_json(path + ".json"))
    results = {"config": asdict(cfg), "steps": steps, "seeds": list(seeds), "repeats": repeats, "test clips": len(test),
               "wall time": _read_json(wall_path) if os.path.isfile(wall_path) else {},
               "evaluator": {k: v for k, v in ev_report.items() if k != "history"},
               "role classifier": {k: v for k, v in role_report_.items() if k != "history"},
               "real": real, "runs": runs, "preset": preset_name,
               "summary": _summarise(runs, [n for n in variants if any(r["variant"] == n for r in runs)]),
               "seconds": round(time.time() - t_start, 1), "cached only": cached_only, "machine": _machine()}
    page = ablation_markdown(results, LEVER_METRICS if report == "levers" else ABLATION_METRICS)  # before any file
    atomic_write([os.path.join(out, f"{report}.json"), os.path.join(out, f"{report}.md")],  # one unit
                    [lambda p: _write_text(p, _json_text(results)), lambda p: _write_text(p, page)])
    return results


def _smoke_eval(smoke: bool) -> dict:
    return {"steps": 20, "batch": 16} if smoke else {}


def _summarise(runs: list[dict], variants: list[str]) -> dict:
    """Per variant and metric: the seeds' means combined into a mean with its Student-t interval; and for every
    variant after the first, "paired": its difference from the first variant seed by seed (the same seed
    gives both the same data order and noise), as a mean with its Student-t interval."""
    # the metrics every run measured (runs cached before a column existed lack it: the column reads n/a)
    out, metrics = {}, [k for k in METRICS if k != "MultiModality" and all(k in r["metrics"] for r in runs)]
    ref = {r["seed"]: r for r in runs if r["variant"] == variants[0]}
    for name in variants:
        mine = [r for r in runs if r["variant"] == name]
        out[name] = {k: mean_ci([r["metrics"][k][0] for r in mine], student_t=True) for k in metrics}
        out[name]["train seconds"] = float(np.mean([r["train seconds"] for r in mine]))
        loads = [r["load"] for r in mine if r.get("load")]
        if loads:  # the experts' load, mean over the seeds that measured it
            out[name]["load"] = {k: np.mean([ld[k] for ld in loads], 0).tolist()
                                 for k in ("share", "experts per token", "by t", "around key event")}
            out[name]["load"].update({k: loads[0][k] for k in ("t bins", "offsets")})
            out[name]["load"].update(target=loads[0].get("target", 1.0), shared=loads[0].get("shared expert", False))
        pairs = [(r, ref[r["seed"]]) for r in mine if r["seed"] in ref]
        if name != variants[0] and pairs:
            out[name]["paired"] = {k: mean_ci([r["metrics"][k][0] - f["metrics"][k][0] for r, f in pairs],
                                              student_t=True) for k in metrics}
    return out


def paired_difference(results: dict, variant: str, metric: str = "FID", reference: str = "full InterMoE"):
    """`variant` minus `reference` on `metric`, seed by seed over the seeds both ran in one study's results -> (mean,
    95% Student-t interval; nan with one shared seed), or None where the study cannot say: it lacks either
    variant, they share no seed, or its runs did not all measure `metric`."""
    seeds = [{r["seed"] for r in results["runs"] if r["variant"] == n} for n in (reference, variant)]
    if variant == reference or not seeds[0] & seeds[1]:
        return None
    paired = _summarise(results["runs"], [reference, variant])[variant]["paired"]
    return tuple(paired[metric]) if metric in paired else None


def ablation_markdown(results: dict, cols=ABLATION_METRICS) -> str:
    """The study as a Markdown page: our table (mean ± 95% interval over seeds), each variant's paired
    difference from the first, and the paper's table where a variant has a row in it."""
    levers = cols == LEVER_METRICS
    model = results.get("preset") or "ablation"  # a results file without a preset: the study's own
    clips = f" ({results['test clips']} clips)" if "test clips" in results else ""  # a results file may lack it
    seeds = ", ".join(str(s) for s in sorted({r["seed"] for r in results["runs"]}))
    n_seeds = {name: sum(r["variant"] == name for r in results["runs"]) for name in results["summary"]}
    nan = (float("nan"), float("nan"))  # a column a results file may lack
    lines = ["# " + ("Stage 2's training levers, screened" if levers else
                     f"Ablation study: InterMoE's switches on the `{model}` model, {results['steps']} denoiser steps a run"), "",
             f"InterSynth test split{clips}; {len(results['runs'])} runs (seeds {seeds}), "
             f"{results['steps']} denoiser steps each on one "
             f"shared VAE; each run evaluated on {results['repeats']} fresh generations; mean ± 95% interval over "
             f"seeds (Student's t, n - 1 degrees of freedom: 12.7 s / sqrt(2) for 2 seeds, 4.30 s / sqrt(3) for 3); the real row: mean ± 1.96 std / sqrt(repeats). The runs took {sum(r['train seconds'] + r['eval seconds'] for r in results['runs']) / 60:.0f}"
             f" min of training and evaluation on {results['machine']} (shared models and caches aside).", "",
             "| variant | seeds | " + " | ".join(cols) + " |", "|---" * (len(cols) + 2) + "|",
             "| real test clips (vs val) | | " + " | ".join(_fmt(results["real"][k]) for k in cols) + " |"]
    for name, row in results["summary"].items():
        lines.append(f"| {name} | {n_seeds[name]} | " + " | ".join(_fmt(row.get(k, nan)) for k in cols) + " |")
    first = next(iter(results["summary"]))
    paired = [(name, row["paired"]) for name, row in results["summary"].items() if "paired" in row]
    if paired:
        lines += ["", f"Each variant minus {first}, seed by seed (mean ± 95% Student-t interval over the seeds; an "
                  "interval that holds 0 separates nothing):", "",
                  "| variant | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        lines += [f"| {name} | " + " | ".join(_fmt(d.get(k, nan)) for k in cols) + " |" for name, d in paired]
    lines += ["", "Every run (wall time on the machine above, which other jobs may have shared):", "",
              "| variant | seed | denoiser steps | final loss | training (min) | evaluation (min) |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['variant']} | {r['seed']} | {r['steps']} | {r['final loss']:.4f} | {r['train seconds'] / 60:.1f} | "
              f"{r['eval seconds'] / 60:.1f} |" for r in results["runs"]]
    lines += [f"\n{name}: {w['steps']} steps, the training time of {w['reference']}'s {results['steps']} (its step took "
              f"{w['ratio']:.2f}x this variant's, both timed in turns in the study's process)"
              for name, w in results.get("wall time", {}).items() if name in results["summary"]]
    loads = [(name, row["load"]) for name, row in results["summary"].items() if "load" in row]
    if loads:
        lines += ["", "The experts' load while generating 32 test clips (mean over seeds; per layer, first to last): "
                  "experts per token; the busiest expert's share of the tokens over the mean share (1 = even); "
                  "experts per token at the noisiest tenth of the steps and the cleanest; and at the key event's "
                  "latent frame against 8 latent frames (32 frames) before it:", "",
                  "| variant | experts per token | busiest / mean share | at t >= 900 | at t < 100 | at the key event "
                  "| 8 latent frames before |", "|---|---|---|---|---|---|---|"]
        for name, ld in loads:
            share = np.array(ld["share"])
            by_t, key = np.array(ld["by t"]), np.array(ld["around key event"])
            cells = [share.sum(1), share.max(1) / share.mean(1), by_t[:, -1], by_t[:, 0],
                     key[:, ld["offsets"].index(0)], key[:, 0]]
            lines.append(f"| {name} | " + " | ".join(" / ".join(f"{v:.2f}" for v in c) for c in cells) + " |")
        lines += [f"\n{name}: routed experts only, whose target is {ld['target']:g} per token; every real token also "
                  "takes the shared expert" for name, ld in loads if ld.get("shared")]
    if levers:
        return "\n".join(lines + [""])
    lines += ["", "Beside the paper's ablation table (InterHuman, full-size models). Compare directions, not "
              "values: the data, the evaluator and the scale differ.", "",
              "| our variant | paper's row | FID: paper | ours | R@1: paper | ours | MM-Dist: paper | ours |",
              "|---|---|---|---|---|---|---|---|"]
    for name, mine in results["summary"].items():
        row = ABLATIONS[name][0]
        ours = [_fmt(mine.get(k, nan)) for k in ("FID", "R-Precision top-1", "MM-Dist")]
        paper = PAPER_ABLATION[row] if row else ("", "", "")
        cells = [f"{p} | {o}" for p, o in zip(paper, ours)]
        lines.append(f"| {name} | {row or '(not in the paper: ours)'} | " + " | ".join(cells) + " |")
    ev = results["evaluator"]
    lines += ["", "Evaluator's own retrieval on real val clips: " +
              ", ".join(f"{k} {v:.3f}" for k, v in ev.items() if k.startswith("R-Precision")) + ".", ""]
    return "\n".join(lines)


# ---- pictures of a study: paired differences, the experts' load ---------------------------------------------
PAIRED_SIGNS = {"FID": -1, "R-Precision top-1": +1, "R-Precision top-3": +1, "MM-Dist": -1, "role accuracy": +1,
                "role swap rate": -1, "interpenetration (% frames)": -1}  # +1: higher is better


def verdict(d: float, ci: float, sign: int) -> str:
    """A paired difference d (variant minus full InterMoE) with its 95% interval ci, read for a metric whose
    better direction is sign (+1: higher is better)."""
    if not np.isfinite(d):
        return "not measured"
    if not np.isfinite(ci):
        return "one seed: no interval"
    return "not separable" if abs(d) <= ci else ("better" if sign * d > 0 else "worse")


def _grid(n: int, cols: int, panel: tuple, **kw):
    """A figure of n panels in rows of `cols` (a notebook's width holds two or three readable panels), each
    panel (width, height) inches; the unused panels hidden. -> (figure, the n axes)."""
    import matplotlib.pyplot as plt
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(panel[0] * cols, panel[1] * rows), dpi=80, layout="constrained",
                             squeeze=False, **kw)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _paper_delta(name: str, metric: str) -> float | None:
    """The paper's difference (its row minus Full InterMoE) for this variant and metric, if its table has one."""
    col = {"FID": 0, "R-Precision top-1": 1, "MM-Dist": 2}.get(metric)
    row = ABLATIONS.get(name, (None,))[0]
    if col is None or not row or row not in PAPER_ABLATION:
        return None
    return PAPER_ABLATION[row][col] - PAPER_ABLATION["Full InterMoE"][col]


def plot_paired(results: dict, paired: dict, signs: dict = PAIRED_SIGNS, cols: int = 2):
    """Each variant minus full InterMoE, seed by seed, one panel per metric in rows of `cols`: the difference and
    its interval, green where it is better, red where worse, grey where the interval holds 0; right of a row, the
    direction the paper's ablation table gives for it (FID, R-Precision top-1, MM-Dist). paired: {variant: the
    summary's 'paired' entry}. Returns the Figure."""
    fig, axes = _grid(len(signs), cols, (4.6, 0.42 * len(paired) + 1.1))
    for ax, (metric, sign) in zip(axes, signs.items()):
        for y, (name, diff) in enumerate(paired.items()):
            d, ci = diff[metric]
            colour = {"better": "tab:green", "worse": "tab:red"}.get(verdict(d, ci, sign), "grey")
            ax.errorbar(d, y, xerr=ci if np.isfinite(ci) else None, fmt="o", capsize=4, color=colour)
            delta = _paper_delta(name, metric)
            if delta is not None:
                ax.annotate(f"paper: {'better' if sign * delta > 0 else 'worse'}", (1.01, y),
                            xycoords=("axes fraction", "data"), va="center", fontsize=8, color="dimgrey")
        ax.axvline(0, color="k", lw=0.8)
        ax.set_title(f"{metric} ({'higher' if sign > 0 else 'lower'} is better)", fontsize=10)
        ax.set_yticks(range(len(paired)), list(paired), fontsize=9)
        ax.set_ylim(len(paired) - 0.5, -0.5)  # the first variant on top
    fig.suptitle(f"each variant minus full InterMoE, seed by seed (95% Student-t interval; "
                 f"{results['steps']} denoiser steps a run)", fontsize=11)
    return fig


def plot_budget(studies: dict, variant: str = "FFN baseline", metric: str = "FID", reference: str = "full InterMoE"):
    """Does the sign turn with training? For each study ({label: its results dict}), `variant` minus `reference`
    on `metric`, seed by seed (`paired_difference`: the mean with its 95% Student-t interval; hollow: one shared
    seed), against the clips its runs trained on (denoiser steps x batch, log scale); for the full model as the
    reference, the paper's difference at its training (PAPER_CLIPS_SEEN, an estimate) beside them, a star.
    Above 0 on a lower-is-better metric: the reference is the better one. Studies that cannot say are left out.
    Returns the Figure."""
    if metric not in PAIRED_SIGNS:
        raise ValueError(f"metric must be one of {list(PAIRED_SIGNS)}, got {metric!r}")
    sign = PAIRED_SIGNS[metric]
    fig, (ax,) = _grid(1, 1, (7.5, 4.8))
    drawn = {label: (res, paired_difference(res, variant, metric, reference)) for label, res in studies.items()}
    drawn = {label: (res, diff) for label, (res, diff) in drawn.items() if diff is not None}
    seen = [res["steps"] * res["config"]["batch"] for res, _ in drawn.values()]
    for i, (label, (res, (d, ci))) in enumerate(drawn.items()):
        one = not np.isfinite(ci)
        dodge = 1.08 ** (seen[:i].count(seen[i]) - (seen.count(seen[i]) - 1) / 2)  # the same budget: side by side
        ax.errorbar(seen[i] * dodge, d, yerr=None if one else ci, fmt="o", capsize=4, color=f"C{i}",
                    mfc="white" if one else f"C{i}",
                    label=f"{label} ({res['steps']:,} steps of {res['config']['batch']})")
    delta = _paper_delta(variant, metric) if reference == "full InterMoE" else None
    if delta is not None:
        ax.plot(PAPER_CLIPS_SEEN, delta, "*", ms=14, color="k", label=f"the paper ({PAPER_TRAINING})")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("clips trained on (denoiser steps x batch)")
    better = "lower" if sign < 0 else "higher"
    ax.set_ylabel(f"{metric}: {variant} minus {reference}", fontsize=9)
    ax.set_title(f"{metric}, {better} is better: above 0, {reference if sign < 0 else variant} is the better one",
                 fontsize=10)
    fig.legend(fontsize=8, loc="outside lower center", ncols=1)
    return fig


def plot_summary(results: dict, metrics: dict, cols: int = 2):
    """Per metric ({metric: 'lower', 'higher' or 'closer to 0', what is better}), one panel in rows of `cols`: each
    variant's mean over seeds with its 95% interval (hollow: one seed, no interval) and the real clips' value as a
    dashed line. Returns the Figure."""
    names = list(results["summary"])
    fig, axes = _grid(len(metrics), cols, (4.6, 0.32 * len(names) + 1.3))
    for ax, (metric, better) in zip(axes, metrics.items()):
        mean, ci = np.array([results["summary"][n][metric] for n in names]).T
        one = ~np.isfinite(ci)  # one seed: no interval
        ax.errorbar(mean[~one], np.flatnonzero(~one), xerr=ci[~one], fmt="o", capsize=4, color="tab:blue")
        ax.plot(mean[one], np.flatnonzero(one), "o", mfc="white", mec="tab:blue")
        real = results["real"][metric][0]
        if np.isfinite(real):
            ax.axvline(real, color="g", ls="--", lw=1, label="real clips")
            ax.legend(fontsize=8, loc="lower right")
        ax.set_yticks(range(len(names)), names, fontsize=9)
        ax.set_ylim(len(names) - 0.5, -0.5)
        ax.set_title(f"{metric} ({better} is better)", fontsize=10)
    return fig


def paired_report(results: dict, paired: dict, signs: dict = PAIRED_SIGNS, reference: str = "full InterMoE") -> str:
    """The paired differences in words, each beside the paper's difference for the same row where the paper's
    ablation table has one (FID, R-Precision top-1, MM-Dist)."""
    lines = []
    for name, diff in paired.items():
        seeds = {r["seed"] for r in results["runs"] if r["variant"] == name}
        n_pairs = len(seeds & {r["seed"] for r in results["runs"] if r["variant"] == reference})
        lines.append(f"{name} ({n_pairs} seeds paired with {reference}):")
        for metric, sign in signs.items():
            d, ci = diff[metric]
            line = f"   {metric:28s} {d:+8.3f} ± {ci:6.3f}  ours: {verdict(d, ci, sign):22s}"
            delta = _paper_delta(name, metric)
            if delta is not None:
                line += f" paper: {delta:+.3f} ({'better' if sign * delta > 0 else 'worse'})"
            lines.append(line)
    return "\n".join(lines)


def plot_expert_load(loads: dict, cols: int = 3) -> tuple:
    """The experts' load of each variant ({variant: the summary's 'load' entry, from expert_load}): each expert's
    share of the tokens against the mean share, layer by layer, one panel per variant in rows of `cols`; and the
    experts a token gets (mean over layers), one line per variant, along the diffusion steps and around the key
    event. Returns the two Figures."""
    fig, axes = _grid(len(loads), cols, (3.2, 2.4))
    for ax, (name, ld) in zip(axes, loads.items()):
        share = np.array(ld["share"])  # (layers, experts): each expert's tokens / all real tokens
        rel = share / share.mean(1, keepdims=True)
        img = ax.imshow(rel, cmap="coolwarm", vmin=0, vmax=2, aspect="auto")
        for (i, j), v in np.ndenumerate(rel):
            ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=7)
        ax.set_xlabel("expert", fontsize=9)
        ax.set_ylabel("layer", fontsize=9)
        ax.set_yticks(range(len(share)), range(1, len(share) + 1))
        ax.set_title(name, fontsize=10)
    fig.colorbar(img, ax=axes, shrink=0.6, label="share / mean share")

    fig2, (by_t, by_key) = _grid(2, 2, (4.6, 3.2), sharey=True)
    for name, ld in loads.items():
        edges = np.array(ld["t bins"])
        by_t.plot((edges[:-1] + edges[1:]) / 2, np.nanmean(ld["by t"], 0), "o-", ms=3, label=name)
        by_key.plot(ld["offsets"], np.nanmean(ld["around key event"], 0), "o-", ms=3, label=name)
    by_t.set_xlabel("diffusion step t (1000: pure noise)", fontsize=9)
    by_key.set_xlabel("latent frames from the key event (1 = 4 frames)", fontsize=9)
    by_key.axvline(0, color="k", lw=0.8)
    by_t.set_ylabel("experts per token (mean over layers)", fontsize=9)
    for ax in (by_t, by_key):  # the bias rule's target: the capacity (the routed experts only)
        for target in {ld.get("target", 1.0) for ld in loads.values()}:
            ax.axhline(target, color="grey", ls=":", lw=1)
    by_t.legend(fontsize=8)
    return fig, fig2
