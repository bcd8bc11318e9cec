"""Evaluation and the ablation study (intermoe_tools/evaluation.py, ablation.py): each metric on inputs with a known answer, the evaluator and role classifier
end to end at nano size, physics on constructed joints, clear errors."""
import json
import math

import numpy as np
import pytest
import scipy.linalg
import torch

import intermoe_min as im
from intermoe_tools.physics import CAPSULES
import intersynth
from intermoe_tools import evaluation as ev, ablation
from helpers import REST_OFFSETS, make_record

NANO = ev.EvaluatorConfig(d_model=32, n_layers=1, n_heads=2, d_embed=16, steps=20, batch=8, warmup=2)


@pytest.fixture(scope="module")
def synth():
    """56 InterSynth clips (4 of each type), generated in well under a second."""
    return intersynth.generate(56, seed=0, workers=1)


@pytest.fixture(scope="module")
def nano_evaluator(synth):
    torch.manual_seed(0)
    return ev.Evaluator(NANO, im.Vocab.for_records(synth), im.InteractionDataset(synth, train=False).fit_normalizer()).eval()


def gaussian_with_stats(mu, cov, n, seed):
    """n samples whose sample mean and covariance (N - 1) are exactly mu and cov."""
    x = np.random.default_rng(seed).normal(size=(n, len(mu)))
    x -= x.mean(0)
    x = x @ np.linalg.inv(np.linalg.cholesky(np.cov(x, rowvar=False))).T  # sample covariance now I
    return mu + x @ np.linalg.cholesky(cov).T


# ---- FID ------------------------------------------------------------------------------------------------

def test_fid_of_identical_sets_is_zero():
    a = np.random.default_rng(0).normal(size=(200, 16))
    assert ev.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert ev.frechet_distance(a, a[::-1]) == pytest.approx(0.0, abs=1e-8)  # order does not matter


def test_fid_matches_scipy_sqrtm_on_gaussians_with_known_covariance():
    rng = np.random.default_rng(1)
    D = 8
    A, B = rng.normal(size=(D, D)), rng.normal(size=(D, D))
    cov1, cov2 = A @ A.T + 0.1 * np.eye(D), B @ B.T + 0.1 * np.eye(D)
    mu1, mu2 = rng.normal(size=D), rng.normal(size=D)
    want = ((mu1 - mu2) ** 2).sum() + np.trace(cov1 + cov2 - 2 * scipy.linalg.sqrtm(cov1 @ cov2).real)
    assert ev.frechet_distance_from_stats(mu1, cov1, mu2, cov2) == pytest.approx(want, rel=1e-8)
    a, b = gaussian_with_stats(mu1, cov1, 500, 2), gaussian_with_stats(mu2, cov2, 300, 3)  # from samples too
    assert ev.frechet_distance(a, b) == pytest.approx(want, rel=1e-6)


def test_fid_closed_form_for_isotropic_gaussians_and_singular_covariances():
    D, s1, s2 = 6, 0.5, 2.0
    mu1, mu2 = np.zeros(D), np.full(D, 0.3)
    a = gaussian_with_stats(mu1, s1 ** 2 * np.eye(D), 400, 0)
    b = gaussian_with_stats(mu2, s2 ** 2 * np.eye(D), 400, 1)
    assert ev.frechet_distance(a, b) == pytest.approx(((mu1 - mu2) ** 2).sum() + D * (s1 - s2) ** 2, rel=1e-6)
    # fewer samples than dimensions: a rank-deficient covariance is fine, and equal ones cancel exactly
    few = np.random.default_rng(2).normal(size=(5, 32))
    assert ev.frechet_distance(few, few + 1.0) == pytest.approx(32.0, rel=1e-6)


# ---- retrieval, distances, diversity ---------------------------------------------------------------------

def test_perfect_retrieval_gives_r_precision_one_and_a_shuffled_pairing_about_chance():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(960, 16))
    assert np.allclose(ev.r_precision(e, e, batch=96), 1.0)
    assert ev.mm_dist(e, e) == 0.0
    shuffled = ev.r_precision(e, e[rng.permutation(960)], batch=96, top_k=3)
    assert np.allclose(shuffled, np.array([1, 2, 3]) / 96, atol=0.02)
    assert shuffled[0] <= shuffled[1] <= shuffled[2]


def test_r_precision_drops_the_last_incomplete_batch_and_mm_dist_is_the_pair_distance():
    e = np.eye(100)
    assert np.allclose(ev.r_precision(e, e, batch=96), 1.0)  # 96 pairs scored, 4 left out, still 1
    assert ev.mm_dist(e, e + np.full(100, 0.2)) == pytest.approx(0.2 * 10)  # |(0.2, ..., 0.2)| in 100-D


def test_diversity_and_multimodality_known_answers():
    simplex = ev.EMBED_SCALE * np.eye(10)  # every pair of rows is 6 * sqrt(2) apart
    assert ev.diversity(simplex, 300) == pytest.approx(6 * math.sqrt(2))
    assert ev.diversity(np.ones((5, 3)), 50) == 0.0
    groups = np.stack([simplex, np.zeros((10, 10))])  # one caption varies, the other never does
    assert ev.multimodality(groups, 10) == pytest.approx(3 * math.sqrt(2))


def test_mean_ci_is_interGens_interval():
    m, ci = ev.mean_ci([1.0, 2.0, 3.0, 4.0, float("nan")])
    assert m == 2.5 and ci == pytest.approx(1.96 * np.std([1, 2, 3, 4]) / 2)
    assert math.isnan(ev.mean_ci([1.0])[1])


# ---- identity ---------------------------------------------------------------------------------------------

def test_asymmetric_types_exist_and_captions_name_the_initiator_first(synth):
    assert set(ev.ASYMMETRIC_TYPES) < set(intersynth.INTERACTION_TYPES)
    for r in synth:
        named = [im.caption_initiator(c) for c in r["captions"] if im.caption_initiator(c) is not None]
        assert named == [r["meta"]["initiator"]], r["captions"]  # exactly one caption names roles, correctly
        swapped = [im.caption_initiator(im.swap_caption(c)) for c in r["captions"]]
        assert [1 - r["meta"]["initiator"]] == [s for s in swapped if s is not None]


def test_role_scores():
    assert ev.role_scores([0.9, 0.1, 0.5], [0, 1, 0]) == {"role accuracy": 2 / 3, "role swap rate": 0.0}
    assert ev.role_scores([0.1, 0.9], [0, 1]) == {"role accuracy": 0.0, "role swap rate": 1.0}


def test_role_classifier_finds_the_initiator_in_real_clips_and_not_in_swapped_ones(synth, nano_evaluator):
    """A few seconds of training on the asymmetric clips, checked on the same clips: this tests the labels and the swap
    handling, not how well the classifier generalises (the lab run reports that on the test split)."""
    clips = synth
    cfg = ev.EvaluatorConfig(d_model=32, n_layers=1, n_heads=2, batch=16, steps=60, lr=3e-3, warmup=5, patch=8)
    clf, report = ev.train_role_classifier(clips, clips, cfg=cfg, progress=False,
                                           normalizer=nano_evaluator.normalizer)  # the same clips' statistics
    assert report["role clips"] == sum(ev.is_asymmetric(c) for c in clips) >= 20  # 28 of the 56
    assert report["role accuracy (real)"] >= 0.8 and report["role swap rate (real)"] <= 0.1, report
    assert report["role accuracy (swapped)"] <= 0.1 and report["role swap rate (swapped)"] >= 0.6, report
    # judged against the captions that name roles, as generated clips are
    asym = [c for c in clips if ev.is_asymmetric(c)]
    data = im.InteractionDataset(asym, train=False)
    feats = [data.features(i) for i in range(len(data))]
    caps = [next(c for c in r["captions"] if im.caption_initiator(c) is not None) for r in data.records]
    by_caption = ev.role_accuracy(clf, feats, caps)
    assert by_caption["role accuracy"] == report["role accuracy (real)"] and by_caption["role clips"] == len(asym)
    assert ev.role_accuracy(clf, feats[:2], ["one person punches the other"] * 2)["role clips"] == 0


def test_person_difference_ignores_place_and_facing_and_the_gap_sees_two_copies_of_one_person():
    rec = make_record(T=30, seed=0)
    J = rec["joints"]
    moved = J.copy()
    moved[1] = (J[1] @ im.yaw_matrix(1.1).T) + np.array([3.0, 0.0, -2.0])  # person 2 elsewhere, turned
    assert ev.person_difference(moved) == pytest.approx(ev.person_difference(J), rel=1e-5)
    twins = np.stack([J[0], J[0] @ im.yaw_matrix(0.7).T + 1.0])
    assert ev.person_difference(twins) == pytest.approx(0.0, abs=1e-6)
    gap = ev.homogenisation_gap([J], [twins])
    assert gap == pytest.approx(100 * ev.person_difference(J), rel=1e-6) and gap > 1.0
    assert ev.homogenisation_gap([J], [J]) == 0.0


# ---- physics ---------------------------------------------------------------------------------------------

def standing(T=20, x=0.0, y=0.0, z=0.0):
    """(T, 22, 3): the rest pose (upright torso, arms out), its lowest joint at height y, pelvis at (x, z)."""
    p = im.forward_kinematics(np.broadcast_to(np.eye(3), (1, 22, 3, 3)), np.zeros((1, 3)), REST_OFFSETS)[0]
    return np.repeat((p + np.array([x, y - p[:, 1].min(), z]))[None], T, 0)


def test_foot_sliding_at_a_known_speed_and_floor_penetration_at_a_known_depth():
    T = 20
    walk = standing(T)
    walk[:, :, 0] += 0.02 * np.arange(T)[:, None]  # the whole body glides 2 cm per frame: feet low, "slow"
    assert np.allclose(ev.foot_sliding(walk), 0.02)
    assert len(ev.foot_sliding(walk)) > 0
    assert np.allclose(ev.foot_sliding(standing(T)), 0.0)
    sunk = standing(T, y=-0.05)
    assert np.allclose(ev.floor_penetration(sunk), 0.05) and np.allclose(ev.floor_penetration(standing(T)), 0.0)
    both = np.stack([walk, sunk])
    m = ev.physics_metrics([both])
    assert m["floor penetration (cm)"] == pytest.approx(2.5)  # half the frames (one of two people) 5 cm deep
    assert m["foot sliding (cm/frame)"] == pytest.approx(2.0 * len(ev.foot_sliding(walk)) /
                                                         (len(ev.foot_sliding(walk)) + len(ev.foot_sliding(sunk))))


def test_interpenetration_and_hand_contact_on_constructed_bodies():
    a, b = standing(10), standing(10, z=0.2)  # one behind the other, torso axes 20 cm apart: 4 cm overlap
    assert np.allclose(ev.interpenetration(np.stack([a, b])), 2 * ev.TORSO_RADIUS - 0.2)
    side = standing(10, x=0.45)  # beside: torsos apart, but the partner's upper arm reaches into a's torso
    r_arm = next(r for j0, j1, r in CAPSULES if (j0, j1) == (17, 19))  # right shoulder -> elbow
    arm_gap = ev.segment_distance(a[:, 0], a[:, 12], side[:, 17], side[:, 19])  # 1 cm
    assert np.allclose(ev.interpenetration(np.stack([a, side])), ev.TORSO_RADIUS + r_arm - arm_gap)
    assert (ev.interpenetration(np.stack([a, side])) > 0).all()
    far = np.stack([a, standing(10, x=1.0)])
    assert np.allclose(ev.interpenetration(far), 0.0)
    m = ev.physics_metrics([np.stack([a, b]), far])
    assert m["interpenetration (% frames)"] == pytest.approx(50.0)
    assert m["interpenetration depth (cm)"] == pytest.approx(4.0)
    # a wrist of person 1 held 3 cm from person 2's right wrist, on frames 4..5 only
    touch = far.copy()
    touch[0, 4:6, 21] = touch[1, 4:6, 21] + np.array([0.0, 0.03, 0.0])
    d = ev.hand_distance(touch)
    assert d.shape == (2, 10) and np.allclose(d[:, 4:6], 0.03)
    rec = {"captions": ["two people shake hands"], "meta": {"contacts": [(5, 0, 21, 1, 21)]}}
    w = ev.touch_window(rec)
    assert w.start == 0 and w.stop >= 10
    assert ev.physics_metrics([touch], [w])["hand contact (cm)"] == pytest.approx(3.0)
    assert ev.touch_window({"captions": ["two people hug"], "meta": {}}) == slice(None)
    assert ev.touch_window({"captions": ["one person waves"], "meta": {}}) is None
    assert ev.touch_window({"captions": ["two people hug"], "meta": {"contacts": []}}) is None


# ---- the evaluator ----------------------------------------------------------------------------------------

def test_evaluator_embeddings_have_the_documented_shape_and_scale(nano_evaluator, synth):
    data = im.InteractionDataset(synth[:3], train=False)
    batch = im.collate([data[i] for i in range(3)])
    m = nano_evaluator.encode_motion(batch["motion"], batch["lengths"])
    t = nano_evaluator.encode_text(batch["captions"])
    assert m.shape == t.shape == (3, NANO.d_embed)
    assert torch.allclose(m.norm(dim=-1), torch.full((3,), ev.EMBED_SCALE))
    # padding does not change a clip's embedding
    alone = nano_evaluator.encode_motion(batch["motion"][:1, :, :int(batch["lengths"][0])], batch["lengths"][:1])
    assert torch.allclose(alone, m[:1], atol=1e-4)


def test_evaluator_trains_caches_and_round_trips_through_a_checkpoint(tmp_path, synth):
    path = str(tmp_path / "evaluator.pt")
    e, report = ev.train_evaluator(synth, synth[:24], cfg=NANO, ckpt_path=path, progress=False)
    assert report["history"][-1]["step"] == NANO.steps and report["clips"] == 24
    assert {"R-Precision top-1", "R-Precision top-3", "MM-Dist"} <= set(report)
    again, report2 = ev.train_evaluator(synth, cfg=NANO, ckpt_path=path, progress=False)  # cached: no training
    assert report2["history"] == report["history"]
    loaded = ev.Evaluator.load(path, device="cpu")
    data = im.InteractionDataset(synth[:4], train=False)
    feats = [data.features(i) for i in range(4)]
    assert np.allclose(ev.embed_motions(e, feats), ev.embed_motions(loaded, feats), atol=1e-5)
    assert np.allclose(ev.embed_texts(e, ["two people hug"]), ev.embed_texts(loaded, ["two people hug"]), atol=1e-5)
    with pytest.raises(im.CheckpointError, match="'evaluator' checkpoint, expected 'role_classifier'"):
        ev.RoleClassifier.load(path)


def test_bad_inputs_are_rejected_with_a_clear_message(nano_evaluator):
    with pytest.raises(ValueError, match=r"expected features of shape \(B, 2, T, 262\)"):
        nano_evaluator.encode_motion(torch.zeros(2, 30, 262), [30, 30])  # one person's layout
    with pytest.raises(ValueError, match="expected 2 lengths in 1..30"):
        nano_evaluator.encode_motion(torch.zeros(2, 2, 30, 262), [30, 31])
    with pytest.raises(ValueError, match="longer than this encoder reads"):
        nano_evaluator.encode_motion(torch.zeros(1, 2, 301, 262), [301])
    with pytest.raises(ValueError, match="same width"):
        ev.frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match=r"finite \(N, D\) array"):
        ev.frechet_distance(np.zeros(5), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="must pair up"):
        ev.r_precision(np.zeros((5, 3)), np.zeros((4, 3)))
    with pytest.raises(im.DataError, match="no clip of an asymmetric type"):
        ev.train_role_classifier([make_record()], progress=False)


# ---- evaluate ---------------------------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:.*not in the vocabulary")  # the nano model knows only 8 clips' words
def test_evaluate_real_row_and_a_nano_model(synth, nano_evaluator):
    test, reference = synth[:16], synth[16:40]
    real = ev.evaluate(None, test, nano_evaluator, reference=reference, repeats=2, batch=8, progress=False)
    assert list(real) == ev.METRICS
    assert all(len(v) == 2 for v in real.values())
    assert real["FID"][0] > 0 and real["homogenisation gap (cm)"][0] == 0.0
    assert math.isnan(real["MultiModality"][0]) and math.isnan(real["role accuracy"][0])  # no model, no classifier
    assert real["floor penetration (cm)"][0] == 0.0  # canonicalised real clips stand on the floor
    torch.manual_seed(0)
    model = im.build_model(im.preset("nano", sample_steps=2), synth[:8])
    clf = ev.RoleClassifier(NANO, nano_evaluator.normalizer).eval()
    gen = ev.evaluate(model, test, nano_evaluator, clf, repeats=2, batch=8, mm_captions=2, mm_repeats=3,
                      progress=False)
    for k in ("FID", "R-Precision top-1", "MM-Dist", "Diversity", "MultiModality", "homogenisation gap (cm)",
              "foot sliding (cm/frame)", "hand contact (cm)"):
        assert np.isfinite(gen[k][0]), k
    assert 0 <= gen["role accuracy"][0] + gen["role swap rate"][0] <= 1


@pytest.mark.filterwarnings("ignore:.*not in the vocabulary")
def test_an_interrupted_evaluation_resumes_from_its_last_repeat_to_the_same_numbers(synth, nano_evaluator, tmp_path,
                                                                                    monkeypatch):
    test = synth[:8]
    torch.manual_seed(0)
    model = im.build_model(im.preset("nano", sample_steps=2), synth[:8])
    kw = dict(repeats=2, batch=8, mm_captions=0, progress=False)
    whole = ev.evaluate(model, test, nano_evaluator, **kw)
    keep, calls, generate, kill_at = str(tmp_path / "repeats.json"), [], ev.generate_features, [2]

    def killed(*a, **k):  # each repeat generates once: killed in repeat kill_at
        calls.append(1)
        if len(calls) == kill_at[0]:
            raise RuntimeError("killed")
        return generate(*a, **k)
    monkeypatch.setattr(ev, "generate_features", killed)
    with pytest.raises(RuntimeError, match="killed"):
        ev.evaluate(model, test, nano_evaluator, resume=keep, **kw)
    assert len(json.load(open(keep))["repeats"]) == 1  # the finished repeat was kept
    calls.clear()
    kill_at[0] = None
    resumed = ev.evaluate(model, test, nano_evaluator, resume=keep, **kw)
    assert len(calls) == 1  # only the second repeat generated again
    assert json.dumps(resumed) == json.dumps(whole)  # bit for bit, NaNs included
    assert json.load(open(keep))["seconds"] > 0
    calls.clear()
    kill_at[0] = 1
    with torch.no_grad():
        next(model.denoiser.parameters()).add_(1.0)
    with pytest.raises(RuntimeError, match="killed"):  # other weights: not this evaluation's file, started over
        ev.evaluate(model, test, nano_evaluator, resume=keep, **kw)


def test_generated_clips_are_put_reference_person_first(record):
    """A symmetric denoiser fills its two output slots in random order; reference_first restores the
    dataset's convention (person 1 starts at the origin facing +Z), and leaves real clips as they are."""
    feats = im.InteractionDataset([record], train=False).features(0)  # (2, T, 262), canonical
    assert ev.reference_first(feats) is feats
    assert np.array_equal(ev.reference_first(feats[::-1].copy()), feats)


def test_the_interval_over_seeds_is_students_t():
    m, ci = ev.mean_ci([1.0, 2.0, 3.0], student_t=True)
    assert m == 2.0 and abs(ci - 4.303 * 1.0 / math.sqrt(3)) < 1e-9
    assert math.isnan(ev.mean_ci([1.0], student_t=True)[1])


def test_a_paired_difference_is_seed_by_seed_over_the_shared_seeds_only():
    def run(variant, seed, fid):
        return {"variant": variant, "seed": seed, "train seconds": 1.0, "metrics": {"FID": [fid, 0.0]}}
    study = {"runs": [run("full InterMoE", 0, 5.0), run("full InterMoE", 1, 9.0), run("full InterMoE", 2, 1.0),
                      run("FFN baseline", 0, 6.0), run("FFN baseline", 1, 11.0), run("fixed top-k", 3, 0.0)]}
    d, ci = ablation.paired_difference(study, "FFN baseline")  # seeds 0 and 1: +1, +2 (seed 2 has no partner)
    assert d == 1.5 and abs(ci - 12.706 * np.std([1.0, 2.0], ddof=1) / math.sqrt(2)) < 1e-9
    assert ablation.paired_difference(study, "fixed top-k") is None       # no seed shared with the full model
    assert ablation.paired_difference(study, "per-sample routing") is None  # not in the study
    assert ablation.paired_difference(study, "FFN baseline", "R-Precision top-1") is None  # never measured
    with pytest.raises(ValueError, match="metric must be one of"):
        ablation.plot_budget({"s": study}, metric="Diversity")


# ---- the experts' load ---------------------------------------------------------------------------------

def test_expert_load_counts_what_the_router_selects(synth):
    """Fixed top-1 selection picks exactly one expert per real token, at every noise level and every frame
    around the key event; with the paper's dynamic selection the shares still add up to experts per token."""
    cfg = im.preset("nano", sample_steps=10)
    for name in ("fixed top-k", "full InterMoE", "shared expert"):
        torch.manual_seed(0)
        model = im.build_model(ablation.ablation_config(cfg, name), synth)
        load = ablation.expert_load(model, synth, n=4, t_bins=5, around=3)
        assert load["target"] == model.cfg.denoiser.moe.capacity and load["shared expert"] == (name == "shared expert")
        share = np.array(load["share"])  # (layers, experts)
        assert share.shape == (cfg.denoiser.n_layers, cfg.denoiser.moe.n_experts)
        assert np.allclose(share.sum(1), load["experts per token"], atol=1e-5)
        assert load["key event clips"] == 4 and len(load["offsets"]) == 7
        if name == "fixed top-k":
            assert np.allclose(load["experts per token"], 1.0)
            assert np.allclose(load["by t"], 1.0) and np.allclose(load["around key event"], 1.0)
        else:  # an untrained block selects about half its experts (sigmoid ~ 0.5 against the bias -0.5)
            assert 0.1 < np.mean(load["experts per token"]) < cfg.denoiser.moe.n_experts


def test_expert_load_refuses_a_model_without_experts(synth):
    model = im.build_model(ablation.ablation_config(im.preset("nano"), "FFN baseline"), synth)
    with pytest.raises(ValueError, match="no MoE blocks"):
        ablation.expert_load(model, synth, n=2)


def test_the_learnable_alpha_variant_learns_the_routers_mix(synth):
    cfg = ablation.ablation_config(im.preset("nano"), "learnable alpha")
    assert cfg.denoiser.moe.learn_alpha and not im.preset("nano").denoiser.moe.learn_alpha
    model = im.build_model(cfg, synth)
    routers = [b.router for b in model.denoiser.moe_blocks()]
    assert routers and all(r.alpha_logit.requires_grad and abs(float(r.alpha) - 0.5) < 1e-6 for r in routers)
    with torch.no_grad():
        routers[0].alpha_logit.fill_(math.log(3))  # sigmoid: 0.75
    assert ablation.learnt_alpha(model) == [0.75] + [0.5] * (len(routers) - 1)  # what a run's record keeps
    assert ablation.learnt_alpha(im.build_model(im.preset("nano"), synth)) is None  # fixed alpha: nothing learnt


def test_the_dense_control_has_the_moes_parameters_and_the_baseline_its_compute_per_token():
    """The FFN baseline is one expert wide (the MoE's compute per token at capacity 1); the control "FFN, MoE's
    parameters" is all the experts wide, so it has the MoE's parameter count but for the routers' few weights."""
    count = lambda name: sum(p.numel() for p in im.CooperativeDenoiser(  # noqa: E731
        ablation.ablation_config(im.preset("lab"), name).denoiser).parameters())
    moe, base, wide = count("full InterMoE"), count("FFN baseline"), count("FFN, MoE's parameters")
    cfg = im.preset("lab").denoiser
    assert base < 0.5 * moe and abs(wide - moe) / moe < 0.01
    assert moe - wide == cfg.n_layers * cfg.moe.n_experts * (cfg.width + cfg.width)  # motion and text router weights


def test_the_shared_expert_variant_spends_the_full_models_compute_per_token(synth):
    """Half an expert's width shared by every real token, plus half an expert per token routed: one expert's
    compute per token, as full InterMoE at the paper's capacity of 1; the bias rule aims the routed experts at the
    halved target, and every real token of both people reaches the shared expert."""
    full = ablation.ablation_config(im.preset("nano"), "full InterMoE").denoiser.moe
    moe = ablation.ablation_config(im.preset("nano"), "shared expert").denoiser.moe
    assert moe.d_shared + moe.capacity * moe.d_expert == full.capacity * full.d_expert and full.d_shared == 0
    model = im.build_model(ablation.ablation_config(im.preset("nano"), "shared expert"), synth)
    rows = []
    for b in model.denoiser.moe_blocks():
        b.shared.register_forward_hook(lambda mod, args, out: rows.append(args[0].shape[0]))
    batch = im.collate([im.InteractionDataset(synth, model.normalizer, train=False)[i] for i in range(2)])
    zmask = model.latent_mask(batch["mask"])
    model(model.encode_motion(batch["motion"]), zmask, batch["captions"])
    assert rows == [2 * int(zmask.sum())] * len(model.denoiser.moe_blocks())  # both people's real tokens
    stats = model.denoiser.moe_stats()[0]
    assert stats["target"] == pytest.approx(0.5 * stats["tokens"] / moe.n_experts)  # k = capacity S / E


def test_the_equal_wall_time_control_trains_as_many_more_steps_as_its_step_is_faster(tmp_path):
    """The FFN baseline at full InterMoE's training time: its steps are the study's steps x the measured ratio of the
    two step times, measured once and kept in the work folder, so an interrupted study resumes with the same steps;
    the report and --cached-only accept its own step count."""
    kw = dict(work=str(tmp_path), smoke=True, seeds=(0,), repeats=1, n_test=4, progress=False,
              variants=["FFN, MoE's wall time"])  # its reference is timed, not trained
    results = ablation.run_ablation(**kw)
    wall = json.load(open(tmp_path / "wall_time.json"))["FFN, MoE's wall time"]
    assert wall["reference"] == "full InterMoE" and wall["ratio"] > 0
    [run] = results["runs"]
    assert run["steps"] == wall["steps"] == round(results["steps"] * wall["ratio"])
    assert "training time of full InterMoE" in ablation.ablation_markdown(results)
    again = ablation.run_ablation(**kw, cached_only=True)
    assert [r["steps"] for r in again["runs"]] == [r["steps"] for r in results["runs"]]


def test_a_study_folder_refuses_a_study_of_other_settings(tmp_path):
    """The real row and every cached run of a work folder were made with its settings: another preset, --test-clips
    or --repeats in the same folder would mix studies, so it is refused before anything loads, naming each."""
    (tmp_path / "study.json").write_text(json.dumps({"preset": "nano (smoke)", "steps": 6, "test clips": 96,
                                                     "repeats": 2}))
    with pytest.raises(ValueError, match=r"other settings: .*repeats 2 \(now 3\).*another --work"):
        ablation.run_ablation(work=str(tmp_path), smoke=True, repeats=3, progress=False)
