"""Stage 2's levers beyond the paper: EMA weights, length buckets, losses on the decoded motion, capsules."""
import dataclasses
import json
import os

import numpy as np
import pytest
import torch

import intermoe_min as im
from intermoe_tools import motion_losses as ml, physics as tp, pipeline
import intersynth
from intermoe_tools import evaluation as ev, ablation, cli
from helpers import make_record


@pytest.fixture(scope="module")
def records():
    return [make_record(T=36 + (i % 5) * 8, seed=i, clip_id=str(i)) for i in range(16)]


def test_ema_follows_its_formula_with_the_warm_up():
    w = torch.nn.Parameter(torch.zeros(3))
    ema = im.EMA([("w", w)], decay=0.9)
    shadow = torch.zeros(3)
    for k in range(100):
        with torch.no_grad():
            w.add_(1.0)
        d = min(0.9, (1 + k) / (10 + k))
        assert ema.rate() == pytest.approx(d)
        shadow = d * shadow + (1 - d) * w.detach()
        ema.update([("w", w)])
        torch.testing.assert_close(ema.shadow["w"], shadow)
    assert ema.rate() == 0.9  # past the warm-up: the decay asked for
    again = im.EMA([("w", torch.nn.Parameter(torch.zeros(3)))], decay=0.5)
    again.load_state_dict(ema.state_dict())
    assert again.updates == 100 and again.decay == 0.9 and torch.equal(again.shadow["w"], ema.shadow["w"])


def test_a_model_trained_with_ema_samples_with_the_average(tmp_path, records):
    """The module holds the averaged weights after training, and loading the training checkpoint gives them."""
    m = im.build_model(im.preset("nano", ema_decay=0.9), records)
    im.train_denoiser(m, records, steps=4, ckpt_path=str(tmp_path / "d.pt"), progress=False)
    state = im.load_checkpoint(str(tmp_path / "d.pt"))
    raw, avg = state["model"], state["ema"]["shadow"]
    name = "denoiser.out.weight" if "denoiser.out.weight" in avg else next(iter(avg))
    assert not torch.equal(raw[name], avg[name])  # the last weights and their average differ
    assert torch.equal(m.state_dict()[name], avg[name])
    assert not any(k.startswith("vae.") for k in avg)  # the frozen VAE is not averaged
    loaded = im.InterMoE.load(str(tmp_path / "d.pt"), device="cpu")
    assert torch.equal(loaded.state_dict()[name], avg[name])


def test_length_buckets_keep_every_clip_once_and_pad_less():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 41, size=1000).tolist()
    data = list(range(1000))
    for world in (1, 2):
        seen = []
        for rank in range(world):
            plain = im.batches(data, 16, seed=3, epoch=2, rank=rank, world=world)
            bucketed = im.batches(data, 16, seed=3, epoch=2, rank=rank, world=world, lengths=lengths)
            assert len(plain) == len(bucketed) and all(len(b) == 16 for b in bucketed)
            assert sorted(i for b in plain for i in b) == sorted(i for b in bucketed for i in b)
            pad = lambda bs: sum(16 * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in bs)  # noqa
            assert pad(bucketed) < 0.25 * pad(plain), (pad(bucketed), pad(plain))
            seen += [i for b in bucketed for i in b]
        assert len(seen) == len(set(seen))  # no clip twice in an epoch, on any rank
    b1 = im.batches(data, 16, seed=3, epoch=2, lengths=lengths)
    assert b1 == im.batches(data, 16, seed=3, epoch=2, lengths=lengths)  # a resumed run gets the same order
    assert b1 != im.batches(data, 16, seed=3, epoch=3, lengths=lengths)  # and another epoch another


def test_the_decoded_losses_vanish_where_the_truth_is_predicted():
    rec = intersynth.load_split("train", 48)[0]
    J = torch.as_tensor(rec["joints"][:, :60], dtype=torch.float32)[None]  # (1, 2, 60, 22, 3)
    mask = torch.ones(1, 60, dtype=torch.bool)
    terms = ml.interaction_losses(J, J, mask)
    for k in ("dm", "ro", "vel", "bl", "pen"):
        assert float(terms[k]) < 1e-10, (k, float(terms[k]))
    moved = J.clone()
    moved[:, 1, :, :, 0] += 0.3  # person b a step to the side: the distance map and the turn notice
    moved[:, 0, :, 4] += 0.05  # a's left knee off its bones
    t2 = ml.interaction_losses(moved, J, mask)
    assert float(t2["dm"]) > 1e-3 and float(t2["bl"]) > 1e-4
    far = J.clone()
    far[:, 1, :, :, 0] += 5.0  # b walks 5 m away from a partner it should be near: standing apart costs
    assert float(ml.interaction_losses(far, J, mask)["dm"]) > 1.0
    padded = ml.interaction_losses(torch.cat([J, moved], 2), torch.cat([J, J], 2),
                                   torch.cat([mask, torch.zeros(1, 60, dtype=torch.bool)], 1))
    assert float(padded["bl"]) < 1e-10  # padding frames do not count


def test_no_intersynth_clip_overlaps_the_capsules():
    """Real (synthetic) interactions, hugs included, give the capsule loss and the measure nothing."""
    for split in ("train", "test"):
        for rec in intersynth.load_split(split)[:400]:
            depth = ev.interpenetration(rec["joints"])
            assert depth.max() == 0.0, (rec["id"], rec["meta"].get("type"), depth.max())


def test_capsule_overlap_is_pushed_apart_by_its_gradient():
    a = torch.as_tensor(intersynth.load_split("train", 48)[0]["joints"][0, :10], dtype=torch.float64)
    b = a.clone()
    b[..., 0] += 0.1  # the same person 10 cm to the side: deep overlap
    b = b.requires_grad_(True)
    opt = torch.optim.SGD([b], lr=1.0)
    first = None
    for _ in range(200):
        loss = tp.capsule_overlap(torch.stack([a, b])).square().sum()
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first > 0.1 and loss.item() < 1e-3 * first, (first, loss.item())


def test_the_decoded_motion_loss_falls_when_the_prediction_is_trained_through_the_frozen_decoder(records):
    m = im.build_model(im.preset("nano", geo_weight=1.0, pen_weight=10.0), records)
    m.vae.requires_grad_(False)
    batch = im.collate([im.InteractionDataset(records[:4], m.normalizer, train=False)[i] for i in range(4)])
    with torch.no_grad():
        z0 = m.vae.encode(batch["motion"].flatten(0, 1)).unflatten(0, (4, 2))  # (4, 2, T', C)
    zmask = m.latent_mask(batch["mask"])
    pred = (z0 + torch.randn_like(z0)).requires_grad_(True)
    opt = torch.optim.Adam([pred], lr=0.05)
    t = torch.zeros(4, dtype=torch.long)
    losses = []
    for _ in range(60):
        loss, terms = ml.decoded_motion_loss(m, pred, z0, zmask, t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert set(terms) == set(ml.GEO_WEIGHTS) | {"pen"}
    assert losses[-1] < 0.3 * losses[0], (losses[0], losses[-1])
    assert pred.grad is not None and all(p.grad is None for p in m.vae.parameters())
    late = torch.full((4,), 701, dtype=torch.long)  # noise steps past geo_t_max (700): no decoded loss
    loss, terms = ml.decoded_motion_loss(m, pred, z0, zmask, late)
    assert float(loss) == 0.0 and terms == {}


def test_each_lever_of_the_screen_changes_only_its_own_switches():
    base = ablation.ablation_config(im.preset("lab"), "full InterMoE")
    assert base == im.preset("lab")
    for name in ablation.LEVERS[1:] + ["length buckets"]:
        cfg = ablation.ablation_config(im.preset("lab"), name)
        changed = {k for k, v in dataclasses.asdict(cfg).items() if v != dataclasses.asdict(base)[k]}
        assert changed == set(ablation.ABLATIONS[name][1]), (name, changed)


def test_a_model_stored_in_half_precision_loads_as_float32_and_samples_alike(tmp_path, records, monkeypatch):
    m = im.build_model(im.preset("nano"), records)
    im.train_denoiser(m, records, steps=3, progress=False)
    m.save(str(tmp_path / "full.pt"))
    m.save(str(tmp_path / "half.pt"), half=True)
    assert (tmp_path / "half.pt").stat().st_size < 0.7 * (tmp_path / "full.pt").stat().st_size
    monkeypatch.setattr(im, "PRETRAINED", str(tmp_path / "half.pt"))
    h = im.pretrained(device="cpu")
    assert all(p.dtype == torch.float32 for p in h.parameters())
    assert torch.equal(h.latent_scale, m.latent_scale) and torch.equal(h.latent_mean, m.latent_mean)  # buffers keep their precision
    a, b = m.sample(["two people hug"], 24, seed=0, steps=4), h.sample(["two people hug"], 24, seed=0, steps=4)
    assert (a - b).abs().max() < 0.02  # metres
    monkeypatch.setattr(im, "PRETRAINED", str(tmp_path / "absent.pt"))
    with pytest.raises(FileNotFoundError, match="shipped model"):
        im.pretrained()


def test_sample_without_a_checkpoint_uses_the_shipped_model(tmp_path, records, monkeypatch):
    m = im.build_model(im.preset("nano"), records)
    m.save(str(tmp_path / "shipped.pt"), half=True)
    monkeypatch.setattr(im, "PRETRAINED", str(tmp_path / "shipped.pt"))
    cli.main(["sample", "--prompt", "two people shake hands", "--length", "30", "--out", str(tmp_path / "s")])
    assert (tmp_path / "s" / "sample_0.gif").stat().st_size > 0


def test_the_shipped_model_is_in_the_repository_and_makes_an_interaction():
    """models/intermoe_lab.pt: the lab preset's networks in float16, loaded as float32, sampling offline."""
    assert os.path.isfile(im.PRETRAINED), "the shipped model is missing from the repository"
    assert os.path.getsize(im.PRETRAINED) < 40 * 2 ** 20  # a shipped file under 40 MB
    m = im.pretrained(device="cpu")
    lab = im.preset("lab")
    # its VAE is the KL-0.02 lab VAE (dropout 0.1 in training), of the same shape as the shipped VAE
    assert (dataclasses.replace(m.cfg.vae, dropout=0.0), m.cfg.text, m.cfg.denoiser) == (lab.vae, lab.text, lab.denoiser)
    assert m.cfg.steps >= 4 * lab.steps  # trained at least 4x the lab budget's steps
    joints = pipeline.sample(m, ["two people shake hands"], 60, seed=0)
    assert joints.shape == (1, 2, 60, 22, 3) and torch.isfinite(joints).all()
    assert 1.2 < float(joints[0, :, :, 15, 1].mean()) < 2.0  # head height of a standing adult (joint 15: head)


def test_the_screen_reports_each_variants_paired_difference_from_the_first():
    def run(variant, seed, fid, pen):
        metrics = {k: [1.0, 0.0] for k in ev.METRICS}
        metrics["FID"], metrics["interpenetration (% frames)"] = [fid, 0.1], [pen, 1.0]
        return {"variant": variant, "seed": seed, "steps": 10, "final loss": 0.5, "metrics": metrics,
                "train seconds": 60.0, "eval seconds": 30.0}
    runs = [run("full InterMoE", 0, 5.0, 40.0), run("full InterMoE", 1, 7.0, 30.0),
            run("capsule loss", 0, 5.5, 10.0), run("capsule loss", 1, 7.3, 6.0)]
    summary = ablation._summarise(runs, ["full InterMoE", "capsule loss"])
    assert "paired" not in summary["full InterMoE"]
    diff = summary["capsule loss"]["paired"]
    assert diff["FID"][0] == pytest.approx(0.4) and diff["interpenetration (% frames)"][0] == pytest.approx(-27.0)
    assert diff["FID"][1] == pytest.approx(12.706 * np.std([0.5, 0.3], ddof=1) / np.sqrt(2), rel=1e-3)
    page = ablation.ablation_markdown({"seeds": [0, 1], "steps": 10, "repeats": 1, "runs": runs, "machine": "m",
                                 "real": {k: [0.0, 0.0] for k in ev.METRICS}, "summary": summary,
                                 "evaluator": {}}, ablation.LEVER_METRICS)
    assert "capsule loss minus" not in page and "minus full InterMoE" in page and "-27.000" in page
    assert "| capsule loss | 1 | 10 | 0.5000 | 1.0 | 0.5 |" in page  # every run: seed, steps, wall time
    assert "| capsule loss | 2 | 5.000" not in page and "| capsule loss | 2 | 6.400 ± " in page  # 2 seeds, FID mean
    for row in summary.values():  # a study written before a column existed still renders, the column "n/a"
        row.pop("role swap rate")
    old = ablation.ablation_markdown({"seeds": [0, 1], "steps": 10, "repeats": 1, "runs": runs, "machine": "m",
                                "real": {k: [0.0, 0.0] for k in ev.METRICS}, "summary": summary,
                                "evaluator": {}}, ablation.ABLATION_METRICS)
    assert "n/a" in old and "runs (seeds 0, 1), 10 denoiser steps" in old


def test_a_progress_report_refuses_an_empty_or_mislabelled_study_before_loading_anything(tmp_path):
    with pytest.raises(ValueError, match="no finished run"):
        ablation.run_ablation(work=str(tmp_path), cached_only=True, progress=False)
    with open(tmp_path / "full_intermoe_s0.json", "w") as f:
        json.dump({"variant": "full InterMoE", "seed": 0, "steps": 2500}, f)  # a lab-budget run
    with pytest.raises(ValueError, match=r"\[2500\] denoiser steps, not 300"):  # the default preset's 300
        ablation.run_ablation(work=str(tmp_path), cached_only=True, progress=False)


def test_the_shipped_vae_is_in_the_repository_and_is_the_lab_presets():
    """models/vae_lab.pt: a finished stage-1 checkpoint of the lab preset's VAE; with the model under 40 MB."""
    assert os.path.getsize(im.SHIPPED_VAE) + os.path.getsize(im.PRETRAINED) < 40 * 2 ** 20
    m = im.vae_model(device="cpu")
    assert m.cfg.vae == im.preset("lab").vae and im.load_checkpoint(im.SHIPPED_VAE, "vae")["step"] == m.cfg.vae_steps


def test_a_study_with_runs_cached_before_a_metric_existed_still_summarises():
    runs = [{"variant": v, "seed": 0, "steps": 10, "train seconds": 1.0,
             "metrics": {k: [1.0, 0.0] for k in ev.METRICS if not (old and k == "jitter (cm/frame^2)")}}
            for v, old in (("full InterMoE", True), ("FFN baseline", False))]
    summary = ablation._summarise(runs, ["full InterMoE", "FFN baseline"])
    assert "jitter (cm/frame^2)" not in summary["FFN baseline"] and "FID" in summary["FFN baseline"]["paired"]
