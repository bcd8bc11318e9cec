"""Bodies out of the model: rigid skeletons, planted feet, physics guidance, the VAE's body terms, BVH."""
import numpy as np
import pytest
import torch

import intermoe_min as im
from intermoe_tools import bodies as tb, physics as tp, pipeline
from intermoe_tools import export, evaluation as ev
from helpers import make_record, read_bvh_positions


@pytest.fixture(scope="module")
def records():
    return [make_record(T=36 + (i % 5) * 4, seed=i, clip_id=str(i)) for i in range(16)]


@pytest.fixture(scope="module")
def model(records):
    torch.manual_seed(0)
    m = im.build_model(im.preset("nano"), records)
    torch.nn.init.normal_(m.denoiser.out.weight, std=0.1)  # untrained, the zero-initialised output ignores the noise
    return m


def bone_lengths(joints):  # (..., 22, 3) -> (..., 21)
    return np.linalg.norm(joints[..., 1:, :] - joints[..., im.SMPL_PARENTS[1:], :], axis=-1)


def stretch(joints):  # (2, T, 22, 3) -> the largest std / median of a bone's length over the clip
    b = bone_lengths(np.asarray(joints, dtype=np.float64))
    return (b.std(-2) / np.median(b, -2)).max()


def test_rigid_bodies_keep_every_bone_and_give_a_rigid_clip_back(record):
    noisy = record["joints"] + np.random.default_rng(0).normal(0, 0.03, record["joints"].shape)
    rigid = tb.rigid_bodies(noisy)
    assert rigid.shape == noisy.shape and stretch(noisy) > 0.05 and stretch(rigid) < 1e-6
    error = lambda j: np.linalg.norm(j - record["joints"], axis=-1).mean()  # noqa: E731
    assert error(rigid) < error(noisy)                                          # nearer the truth, not further
    np.testing.assert_allclose(tb.rigid_bodies(rigid), rigid, atol=1e-5)         # rigid in, the same out
    np.testing.assert_allclose(tb.rigid_bodies(record["joints"]), record["joints"], atol=1e-5)


def test_every_sample_is_rigid_even_from_random_latents(model):
    joints = pipeline.sample(model, ["one person waves", "one person waves the other"], [40, 23], seed=0, steps=3).numpy()
    assert max(stretch(j) for j in joints) < 0.005
    raw = pipeline.sample(model, ["one person waves"], 40, seed=0, steps=3, bodies=False).numpy()
    assert stretch(raw[0]) > 0.05  # the decoder alone does not keep bones (so the test above can fail)
    with torch.no_grad():
        feats = model.decode_latents(torch.randn(1, 2, 10, model.cfg.denoiser.d_latent), 40).numpy()
    assert stretch(im.joints_from_features(tb.bodies_from_features(feats))[0]) < 0.005


def test_a_foot_in_contact_is_held_still_and_a_swinging_foot_is_left_alone(record):
    J = tb.rigid_bodies(record["joints"][0]).astype(np.float64)
    J[..., [0, 2]] -= J[:, :1, [0, 2]]                       # standing on the spot: the foot stays in reach
    J[..., 1] -= J[..., 1].min() - 0.01                      # on the floor
    J[..., 0] += np.linspace(0, 0.05, len(J))[:, None]      # the body drifts, so a planted foot would slide
    contacts = np.zeros((len(J), 4))
    contacts[10:25, 0] = contacts[10:25, 1] = 1               # the left foot is in contact on frames 10-24
    out = tb.plant_feet(J, contacts)
    held = out[10:25][:, [7, 10]]
    assert np.abs(held - held[:1]).max() < 1e-6                              # still while in contact
    np.testing.assert_allclose(out[:, [8, 11]], J[:, [8, 11]], atol=1e-9)   # the other foot: untouched
    far = list(range(0, 10 - tb.PLANT_BLEND)) + list(range(25 + tb.PLANT_BLEND, len(J)))
    np.testing.assert_allclose(out[far], J[far], atol=1e-9)                 # away from the contact: untouched
    for a, b in ((1, 4), (4, 7), (7, 10)):                                  # the leg keeps its bones
        np.testing.assert_allclose(np.linalg.norm(out[:, a] - out[:, b], axis=-1),
                                   np.linalg.norm(J[:, a] - J[:, b], axis=-1).mean(), atol=1e-6)
    assert (out[..., 1] >= -1e-9).all()


def apart_pair(gap):  # two people facing each other with `gap` metres between their pelvises, (2, T, 22, 3)
    rec = make_record(T=20, seed=3)
    J = np.stack([tb.rigid_bodies(rec["joints"][0])] * 2).astype(np.float64)
    J -= J[:, :, :1].mean(1, keepdims=True)
    J[1] = J[1] @ im.yaw_matrix(np.pi).T
    J[1, ..., 2] += gap
    return torch.tensor(J)


def test_physics_loss_is_zero_where_nothing_is_wrong_and_falls_under_its_gradient():
    mask, touch, no_touch = torch.ones(1, 20, dtype=torch.bool), torch.tensor([True]), torch.tensor([False])
    far = apart_pair(2.0)[None]
    assert tp.physics_loss(far, mask, no_touch).item() == 0  # apart, no touch asked
    assert tp.physics_loss(far, mask, touch).item() > 0       # touch asked, hands 1 m away
    for J, t in ((apart_pair(0.1)[None], no_touch), (far, touch)):  # overlapping; a hand to bring over
        J = J.clone().requires_grad_(True)
        before = tp.physics_loss(J, mask, t)
        after = tp.physics_loss(J - 0.05 * torch.autograd.grad(before.sum(), J)[0], mask, t)
        assert before.item() > 0 and after.item() < before.item()


def test_physics_guidance_separates_bodies_and_sampling_stays_reproducible(model):
    prompts = ["one person waves", "one person waves the other"]
    a = pipeline.sample(model, prompts, 32, seed=5, steps=4, physics=0.0)
    b = pipeline.sample(model, prompts, 32, seed=5, steps=4, physics=50.0)
    assert torch.equal(a, pipeline.sample(model, prompts, 32, seed=5, steps=4, physics=0.0))
    assert torch.equal(b, pipeline.sample(model, prompts, 32, seed=5, steps=4, physics=50.0))
    assert not torch.equal(a, b)
    with pytest.raises(ValueError, match="physics must be a number >= 0"):
        pipeline.sample(model, prompts, 32, seed=5, steps=4, physics=-1.0)


def test_the_models_sampler_is_the_papers_and_takes_the_tools_in_its_places(model):
    """InterMoE.sample alone: DDIM and the decoder; its guide and finish are what pipeline.sample fills."""
    prompts = ["one person waves", "two people shake hands"]
    raw = model.sample(prompts, [32, 20], seed=5, steps=4)
    assert torch.equal(raw, pipeline.sample(model, prompts, [32, 20], seed=5, steps=4, physics=0, bodies=False))
    full = model.sample(prompts, [32, 20], seed=5, steps=4, guide=tp.guide(50.0), finish=tb.bodies_from_features)
    assert torch.equal(full, pipeline.sample(model, prompts, [32, 20], seed=5, steps=4, physics=50.0))
    assert tp.guide(0) is None and not torch.equal(raw, full)


def test_a_samples_bvh_reads_back_within_a_centimetre_with_real_end_sites(model, tmp_path):
    joints = pipeline.sample(model, ["two people shake hands"], 40, seed=1, steps=3)[0].numpy()
    for person, path in zip(joints, export.save_bvh(joints, str(tmp_path / "s.bvh"))):
        names, P = read_bvh_positions(path)
        assert np.abs(P[:, [names.index(n) for n in im.JOINT_NAMES]] - person).max() < 0.01
        lines = open(path).read().splitlines()
        tips = [lines[i + 2].split()[1:] for i, line in enumerate(lines) if line.strip() == "End Site"]
        assert len(tips) == 5 and all(np.linalg.norm(np.array(t, dtype=float)) > 1 for t in tips)  # > 1 cm
    with pytest.raises(ValueError, match="NaN or inf"):
        bad = joints.copy()
        bad[0, 3, 5, 1] = np.nan
        export.save_bvh(bad, str(tmp_path / "bad.bvh"))


def test_the_vae_ceiling_measures_reconstructions_against_the_clips(model, records):
    row = ev.vae_ceiling(model, records[:3])
    assert row["MPJPE (cm)"] > 0 and row["bone length std / median (%)"] < 0.5
    assert row["real foot sliding (cm/frame)"] >= 0 and "pelvis-to-pelvis error (cm)" in row


def test_smoothing_removes_frame_to_frame_jitter_and_leaves_steady_motion_alone():
    rng = np.random.default_rng(0)
    t = np.arange(60)[:, None, None]
    walk = np.zeros((60, 22, 3)) + np.array([0.0, 1.0, 0.0]) + t * np.array([0.01, 0.0, 0.02])  # 1 and 2 cm/frame
    noisy = walk + rng.normal(0, 0.02, walk.shape)
    jitter = lambda J: np.linalg.norm(np.diff(J, 2, axis=0), axis=-1).mean()  # noqa: E731
    smooth = tb.smooth_joints(noisy)
    assert jitter(smooth) < 0.35 * jitter(noisy)
    assert np.abs(smooth - walk)[5:-5].mean() < np.abs(noisy - walk)[5:-5].mean()  # nearer the truth
    inner = tb.smooth_joints(walk)[5:-5]
    assert np.allclose(inner, walk[5:-5], atol=1e-9)  # a steady walk is kept (away from the held ends)
    assert np.array_equal(tb.smooth_joints(noisy, sigma=0), noisy)
    assert tb.smooth_joints(noisy[None]).shape == (1, 60, 22, 3)  # any leading axes
    assert ev.physics_metrics([np.stack([noisy, noisy])])["jitter (cm/frame^2)"] == pytest.approx(100 * jitter(noisy))
