"""The whole model: sampling, training stages, resume, data parallel, clear errors."""
import dataclasses
import os
import shutil

import numpy as np
import pytest
import torch

import intermoe_min as im
from intermoe_tools import files, runs
from helpers import make_record


@pytest.fixture(scope="module")
def records():
    return [make_record(T=36 + (i % 5) * 4, seed=i, clip_id=str(i)) for i in range(16)]


def nano_model(records, **kw):
    torch.manual_seed(0)
    return im.build_model(im.preset("nano", **kw), records)


def test_sampling_is_deterministic_for_a_seed_and_has_the_documented_shape(records):
    m = nano_model(records)
    torch.nn.init.normal_(m.denoiser.out.weight, std=0.1)  # untrained, the zero-initialised output ignores the noise
    a = m.sample(["one person waves", "two people hug"], [40, 23], seed=3, steps=5)
    b = m.sample(["one person waves", "two people hug"], [40, 23], seed=3, steps=5)
    c = m.sample(["one person waves", "two people hug"], [40, 23], seed=4, steps=5)
    assert a.shape == (2, 2, 40, 22, 3)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a[1, :, 23:], a[1, :, 22:23].expand(2, 17, 22, 3))  # past its length: last pose held


def test_latents_are_scaled_per_channel_to_zero_mean_and_unit_variance(records):
    m = nano_model(records)
    with torch.no_grad():  # a VAE whose channels sit far from zero and at different spreads, as a weak KL leaves them
        mu_bias = m.vae.to_dist.bias[:, : m.vae.to_dist.bias.shape[1] // 2]  # (7, C): the mean's half
        mu_bias.copy_(torch.linspace(-5, 5, mu_bias.numel()).reshape(mu_bias.shape))
    mean, std = im.measure_latent_stats(m, records, device="cpu")
    m.set_latent_stats(mean, std)
    batch = im.collate([im.InteractionDataset(records, m.normalizer, train=False)[i] for i in range(8)])
    z = m.encode_motion(batch["motion"])  # (8, 2, T', C) scaled
    z = z.transpose(1, 2)[m.latent_mask(batch["mask"])]  # (N, 2, C) real latent frames
    assert z.mean((0, 1)).abs().max() < 0.2 and (z.std((0, 1)) - 1).abs().max() < 0.2  # every channel
    assert torch.allclose(m.unscale_latents(m.scale_latents(mean + std)), mean + std, atol=1e-5)
    with torch.no_grad():  # decoding the scaled latents gives the VAE's own decoding of its latents back
        raw = m.vae.encode(batch["motion"].flatten(0, 1))  # (16, T', C)
        T = batch["motion"].shape[2]
        direct = m.normalizer.denormalise(m.vae.decode(raw, T).unflatten(0, (8, 2)))
    assert torch.allclose(m.decode_latents(m.encode_motion(batch["motion"]), T), direct, atol=1e-4)


def test_a_model_saved_with_one_global_latent_std_loads_with_it_in_every_channel(records, tmp_path):
    m = nano_model(records)
    m.set_latent_stats(torch.zeros(m.latent_mean.shape), torch.full(m.latent_scale.shape, 0.7))
    m.save(str(tmp_path / "new.pt"))
    state = im.load_checkpoint(str(tmp_path / "new.pt"))
    del state["model"]["latent_mean"]  # as models saved before the per-channel statistics hold it
    state["model"]["latent_scale"] = torch.tensor(0.7)
    im.save_checkpoint(str(tmp_path / "old.pt"), state)
    old = im.InterMoE.load(str(tmp_path / "old.pt"), "cpu")
    assert torch.equal(old.latent_scale, m.latent_scale) and not old.latent_mean.any()
    torch.nn.init.normal_(m.denoiser.out.weight, std=0.1)
    old.denoiser.out.weight.data.copy_(m.denoiser.out.weight)
    assert torch.equal(m.sample(["two people hug"], 24, seed=0, steps=3), old.sample(["two people hug"], 24, seed=0, steps=3))


def test_bad_prompts_and_lengths_are_rejected_clearly(records):
    m = nano_model(records)
    with pytest.raises(TypeError, match="list of strings"):
        m.sample([3], 40)
    with pytest.raises(TypeError, match="list of strings"):
        m.sample([], 40)
    with pytest.raises(ValueError, match="between 15 and 300"):
        m.sample(["wave"], 400)
    with pytest.raises(ValueError, match="2 prompts but 1 lengths"):
        m.sample(["wave", "hug"], [40])
    with pytest.warns(UserWarning, match="zzyzx"):
        m.sample(["zzyzx the other"], 20, seed=0, steps=2)


@pytest.mark.parametrize("kw, error, message", [
    (dict(lengths=40.0), TypeError, r"lengths must be a whole number.*40\.0 \(float\)"),
    (dict(lengths="40"), TypeError, r"lengths must be a whole number.*'40' \(str\)"),
    (dict(lengths=[True]), TypeError, r"lengths must be a whole number.*True \(bool\)"),
    (dict(lengths=torch.tensor(40.0)), TypeError, "lengths must be a whole number"),
    (dict(guidance=float("nan")), ValueError, "guidance must be a finite number"),
    (dict(guidance="3"), ValueError, "guidance must be a finite number"),
    (dict(steps=0), ValueError, "steps must be between 1 and 30"),
    (dict(steps=2.5), TypeError, "steps must be a whole number"),
    (dict(seed=1.5), TypeError, "seed must be a whole number"),
    (dict(seed="0"), TypeError, "seed must be a whole number"),
])
def test_bad_sampling_arguments_are_named_in_the_error(records, kw, error, message):
    m = nano_model(records, diffusion_steps=30)
    with pytest.raises(error, match=message):
        m.sample(["two people hug"], **{"lengths": 20, "steps": 2, **kw})


def test_integer_lengths_of_any_integer_type_are_accepted_and_long_captions_warned(records):
    m = nano_model(records)
    ref = m.sample(["two people hug"], 20, seed=np.int64(0), steps=2)
    for n in (np.int64(20), torch.tensor(20), [np.int32(20)], torch.tensor([20]), np.array([20]), range(20, 21)):
        assert torch.equal(m.sample(["two people hug"], n, seed=0, steps=2), ref)
    with pytest.warns(UserWarning, match="cut to its first 63"):
        m.sample([" ".join(["wave"] * 70)], 20, seed=0, steps=2)


def test_a_model_cast_to_bfloat16_samples(records):
    m = nano_model(records)
    torch.nn.init.normal_(m.denoiser.out.weight, std=0.1)
    # the paper's sampler (physics guidance's Adam steps move each latent by the step size whatever the gradient's
    # scale, so bf16's rounding may send them elsewhere; the guidance is tested in test_bodies.py)
    ref = m.sample(["two people hug"], 20, seed=0, steps=3)
    low = m.to(torch.bfloat16).sample(["two people hug"], 20, seed=0, steps=3)
    assert low.dtype == torch.float32 and (low - ref).abs().max() < 0.05  # metres


def test_the_initial_weights_follow_the_seed_and_leave_the_callers_random_state_alone(records):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    if torch.cuda.is_available():  # a GPU's generator is not touched either (weights start on the CPU)
        cuda_before = torch.cuda.get_rng_state()
    a, b, c = (im.build_model(im.preset("nano"), records, seed=s).state_dict() for s in (0, 0, 1))
    assert torch.equal(torch.get_rng_state(), before)
    assert not torch.cuda.is_available() or torch.equal(torch.cuda.get_rng_state(), cuda_before)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_bad_checkpoints_are_rejected_clearly(tmp_path, records):
    with pytest.raises(im.CheckpointError, match="no checkpoint"):
        im.InterMoE.load(str(tmp_path / "missing.pt"))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(im.CheckpointError, match="not a readable checkpoint"):
        im.InterMoE.load(str(junk))
    m = nano_model(records)
    im.save_checkpoint(str(tmp_path / "vae.pt"), {"kind": "vae", "model": m.vae.state_dict()})
    with pytest.raises(im.CheckpointError, match="'vae' checkpoint"):
        im.InterMoE.load(str(tmp_path / "vae.pt"))
    im.save_checkpoint(str(tmp_path / "bare.pt"), {"kind": "intermoe", "model": m.state_dict()})
    with pytest.raises(im.CheckpointError, match="without its config, vocab, normalizer"):
        im.InterMoE.load(str(tmp_path / "bare.pt"))
    m.save(str(tmp_path / "old.pt"))
    state = torch.load(tmp_path / "old.pt", weights_only=True)
    torch.save({k: v for k, v in state.items() if k != "format"}, tmp_path / "old.pt")  # as earlier versions wrote
    with pytest.raises(im.CheckpointError, match="earlier version of intermoe_min.*train it again"):
        im.InterMoE.load(str(tmp_path / "old.pt"))
    state["config"]["vae"]["joint_kernel"] = 3  # a switch this version no longer has
    torch.save(state, tmp_path / "old.pt")
    with pytest.raises(im.CheckpointError, match="configuration this version cannot build.*joint_kernel"):
        im.InterMoE.load(str(tmp_path / "old.pt"))


class Payload:
    """Stands for any pickled object: unpickling one can run code (its __reduce__ decides what)."""


def test_a_checkpoint_holding_a_pickled_object_is_refused(tmp_path, records):
    m = nano_model(records)
    m.save(str(tmp_path / "good.pt"))
    state = torch.load(tmp_path / "good.pt", weights_only=True)  # everything we save is plain
    state["extra"] = Payload()
    torch.save(state, tmp_path / "evil.pt")
    with pytest.raises(im.CheckpointError, match=r"pickled Python objects \(.*Payload\).*can run any code"):
        im.InterMoE.load(str(tmp_path / "evil.pt"))


def test_a_full_disk_keeps_the_last_checkpoint_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = str(tmp_path / "vae.pt")
    im.save_checkpoint(path, {"kind": "vae", "step": 1})
    real_save = torch.save

    def disk_fills_up(obj, f):
        real_save(obj, f)  # part of the file was written ...
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0")  # ... then torch's
    monkeypatch.setattr(torch, "save", disk_fills_up)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: type("Usage", (), {"free": 0})())
    with pytest.raises(im.CheckpointError, match=r"the disk is full.*last good checkpoint at .*vae.pt is intact"):
        im.save_checkpoint(path, {"kind": "vae", "step": 2})
    assert os.listdir(tmp_path) == ["vae.pt"]
    assert im.load_checkpoint(path)["step"] == 1
    monkeypatch.setattr(shutil, "disk_usage", lambda p: type("Usage", (), {"free": 10 * 2 ** 30})())
    with pytest.raises(im.CheckpointError) as e:  # another write error is not called a full disk
        im.save_checkpoint(path, {"kind": "vae", "step": 2})
    assert "disk is full" not in str(e.value) and "enforce fail" in str(e.value)

    def interrupted(obj, f):
        real_save(obj, f)
        raise KeyboardInterrupt  # Ctrl-C in the middle of a save
    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        im.save_checkpoint(path, {"kind": "vae", "step": 3})
    assert os.listdir(tmp_path) == ["vae.pt"] and im.load_checkpoint(path)["step"] == 1


def test_the_suite_and_anyone_who_asks_get_the_device_they_name(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on a GPU machine
    monkeypatch.setenv("INTERMOE_DEVICE", "cpu")  # what the root conftest sets for the whole suite
    assert im.pick_device().type == "cpu"
    monkeypatch.delenv("INTERMOE_DEVICE")
    assert im.pick_device().type == "cuda"
    assert im.pick_device("cpu").type == "cpu"


def test_every_rank_gets_the_same_number_of_whole_batches():
    data = list(range(10))
    for world, batch in ((3, 1), (3, 2), (4, 2), (2, 3)):
        per_rank = [im.batches(data, batch, seed=0, epoch=1, rank=r, world=world) for r in range(world)]
        assert {len(b) for b in per_rank} == {len(data) // (batch * world)}
        seen = [i for b in per_rank for bb in b for i in bb]
        assert len(seen) == len(set(seen))  # no clip twice in one epoch


def test_an_accelerators_random_state_is_saved_and_restored(monkeypatch):
    """Simulated on the CPU: the CUDA generator's state goes into the checkpoint and comes back from it."""
    cuda_state = {"now": torch.tensor([1, 2, 3], dtype=torch.uint8)}
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device=None: cuda_state["now"].clone())
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, device=None: cuda_state.update(now=s.clone()))
    saved = files.rng_state(torch.device("cuda", 0))
    assert set(saved) == {"cpu", "cuda"}
    cuda_state["now"] = torch.tensor([9, 9], dtype=torch.uint8)
    files.set_rng_state(saved, torch.device("cuda", 0))
    assert torch.equal(cuda_state["now"], torch.tensor([1, 2, 3], dtype=torch.uint8))


def test_loader_workers_give_the_same_training(records):
    """On a GPU, stage 1 prepares its features in worker processes; the batches must not change."""
    runs = []
    for workers in (0, 2):
        m = nano_model(records)
        data = im.InteractionDataset(records, m.normalizer, max_frames=32, seed=0)
        runs.append(im.train_loop(m.vae, im._vae_loss_fn(m.normalizer), data, im.collate, steps=4, batch_size=4,
                                  lr=1e-3, weight_decay=0, warmup=1, grad_clip=1.0, ckpt_path=None, ckpt_every=10,
                                  seed=0, kind="vae", progress=False, log_every=1, workers=workers))
    assert [h["loss"] for h in runs[0]] == [h["loss"] for h in runs[1]]


def test_save_and_load_give_the_same_samples(tmp_path, records):
    m = nano_model(records)
    im.train_denoiser(m, records, steps=3, progress=False)
    m.save(str(tmp_path / "m.pt"))
    m2 = im.InterMoE.load(str(tmp_path / "m.pt"), device="cpu")
    torch.testing.assert_close(m.sample(["wave"], 20, seed=1, steps=3), m2.sample(["wave"], 20, seed=1, steps=3))


def test_both_stages_lower_their_losses_on_a_tiny_set(records):
    m = nano_model(records, vae_lr=3e-3, lr=2e-3)
    few = records[:8]
    h1 = im.train_vae(m, few, steps=80, progress=False)
    assert h1[-1]["loss"] < 0.8 * h1[0]["loss"], (h1[0], h1[-1])
    h2 = im.train_denoiser(m, few, steps=40, progress=False)
    first, last = np.mean([h["loss"] for h in h2[:1]]), np.mean([h["loss"] for h in h2[-1:]])
    assert last < first, (first, last)


LEVERS = dict(ema_decay=0.99, bucket=True, geo_weight=1.0, pen_weight=1.0, geo_t_max=999, geo_clips=3)


@pytest.mark.parametrize("levers", [{}, LEVERS], ids=["paper", "every-lever"])
def test_resume_continues_exactly_as_if_never_stopped(tmp_path, records, monkeypatch, levers):
    nano_model = lambda recs: globals()["nano_model"](recs, **levers)  # noqa: E731
    straight = nano_model(records)
    im.train_denoiser(straight, records, steps=6, ckpt_path=str(tmp_path / "a.pt"), ckpt_every=3, progress=False)

    interrupted = nano_model(records)
    calls = {"n": 0}
    real_update = interrupted.denoiser.update_biases

    def crash_after_four():
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt  # as if the laptop lid closed during step 5
        real_update()
    monkeypatch.setattr(interrupted.denoiser, "update_biases", crash_after_four)
    with pytest.raises(KeyboardInterrupt):
        im.train_denoiser(interrupted, records, steps=6, ckpt_path=str(tmp_path / "b.pt"), ckpt_every=3, progress=False)
    assert im.load_checkpoint(str(tmp_path / "b.pt"))["step"] == 3

    resumed = nano_model(records)
    resumed.vae.load_state_dict(interrupted.vae.state_dict())
    im.train_denoiser(resumed, records, steps=6, ckpt_path=str(tmp_path / "b.pt"), ckpt_every=3, progress=False)
    for (k, v), (_, w) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(v, w), k


def test_a_nan_loss_stops_with_a_clear_message_and_keeps_the_last_checkpoint(tmp_path, records):
    m = nano_model(records)
    data = im.InteractionDataset(records, m.normalizer, max_frames=32, seed=0)
    step = {"n": 0}

    def loss_fn(model, batch, device):
        step["n"] += 1
        out = model.vae(batch["motion"][:, 0])[0].pow(2).mean()
        return (out * float("nan") if step["n"] == 3 else out), {}
    path = str(tmp_path / "v.pt")
    with pytest.raises(FloatingPointError, match=r"nan at step 2.*last good checkpoint"):
        im.train_loop(m, loss_fn, data, im.collate, steps=5, batch_size=4, lr=1e-3, weight_decay=0, warmup=1,
                      grad_clip=1.0, ckpt_path=path, ckpt_every=1, seed=0, kind="test", progress=False)
    assert im.load_checkpoint(path, "test")["step"] == 2


def _ddp_worker(rank, world, init_file, out_dir, records):
    import torch.distributed as dist
    torch.set_num_threads(1)
    from datetime import timedelta
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=60))  # a stuck rank fails the test instead of hanging it
    m = nano_model(records)
    ddp, asked = torch.nn.parallel.DistributedDataParallel, []

    def recording_ddp(module, *args, **kw):  # what train_loop asks DDP for
        asked.append(kw.get("find_unused_parameters", False))
        return ddp(module, *args, **kw)
    torch.nn.parallel.DistributedDataParallel = recording_ddp
    try:
        im.train_denoiser(m, records, steps=4, progress=False, device="cpu", ckpt_path=os.path.join(out_dir, "den.pt"),
                          ckpt_every=2)  # a checkpoint gathers every rank's random state
    finally:
        torch.nn.parallel.DistributedDataParallel = ddp
    torch.save({**m.state_dict(), "find_unused_parameters": torch.tensor(asked)}, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


def test_two_process_gloo_training_keeps_ranks_identical(tmp_path, records):
    torch.multiprocessing.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path), records), nprocs=2)
    a, b = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    # every parameter gets a gradient every step (an expert runs even on no token), so DDP is not asked to
    # search the graph for unused ones, which costs a pass each step; were one unused, DDP would raise
    assert a.pop("find_unused_parameters").tolist() == [False] == b.pop("find_unused_parameters").tolist()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    state = im.load_checkpoint(str(tmp_path / "den.pt"), "denoiser")
    assert state["step"] == 4 and len(state["rng"]) == 2  # one random state per rank, to resume each exactly
    untrained = nano_model(records).state_dict()
    assert any(not torch.equal(a[k], untrained[k]) for k in a if "denoiser" in k)  # it did train
    biases = [k for k in a if "expert_bias" in k]
    assert biases  # the comparison above covered the per-expert biases ...
    assert any(not torch.equal(a[k], untrained[k]) for k in biases)  # ... and they moved (the same on both ranks)


def test_a_caption_that_names_roles_reaches_the_two_people_differently(records):
    m = nano_model(records).eval()
    caps = ["the first person waves to the second person", "two people hug"]
    a, b = m.encode_captions(caps)
    assert not torch.allclose(a[0], b[0])  # 'first' means 'me' for each of them
    assert torch.equal(a[1], b[1])  # no roles named: the same condition
    m.cfg.egocentric_text, m.cfg.role_embedding = False, False
    a, b = m.encode_captions(caps)
    assert b is None


def test_each_person_gets_the_role_vector_of_where_its_view_names_it(records):
    """role_embedding: 'I am named first' (0), 'the partner is' (1), 'no one is named by index' (2), read from
    each person's own view of the caption; the vectors reach the denoiser's input frames."""
    m = nano_model(records).eval()
    caps = ["Person 2 pushes person 1.", "the first person waves to the second person", "two people hug"]
    role_a, role_b = m.roles(caps)
    W = m.role_embed.weight
    torch.testing.assert_close(role_a, W[[1, 0, 2]])
    torch.testing.assert_close(role_b, W[[0, 1, 2]])
    assert [im.caption_initiator(c) for c in caps] == [1, 0, None]
    torch.nn.init.normal_(m.denoiser.out.weight, std=0.1)  # untrained, the zero output layer would hide them
    with_roles = m.sample(caps[1:2], 16, seed=0)
    m.cfg.role_embedding = False
    assert m.roles(caps) == (None, None)
    without = m.sample(caps[1:2], 16, seed=0)
    assert not torch.allclose(with_roles, without)  # the role vectors change what is generated


def test_stage_2_trains_every_parameter_outside_the_vae(records):
    """The text encoder, the role vectors and the denoiser all learn in stage 2; the VAE stays frozen.
    (The role vectors start at zero: only a gradient step can move them.)"""
    m = nano_model(records)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    im.train_denoiser(m, records, steps=3, progress=False, device="cpu")
    trained = dict(m.named_parameters())
    moved = {k for k, p in trained.items() if not torch.equal(p.detach(), before[k])}
    assert moved == {k for k in trained if not k.startswith("vae.")}
    assert "role_embed.weight" in moved


def test_a_configuration_survives_its_plain_values():
    for name in ("nano", "lab", "paper"):
        cfg = im.preset(name)
        assert im._config_from_dict(dataclasses.asdict(cfg)) == cfg


@pytest.mark.parametrize("gib, bf16, expected", [(15, False, "lab"), (16, True, "lab"), (32, False, "lab"),
                                                (80, True, "paper")])
def test_a_notebook_on_a_gpu_gets_a_preset_that_fits_it(monkeypatch, gib, bf16, expected):
    """Simulated on the CPU: a 16 GB card, or one without bf16 (T4, V100), trains 'lab'; a large bf16 card trains
    the paper's sizes on a budget of minutes, not the paper's days."""
    props = type("Props", (), {"name": "a GPU", "total_memory": gib * 2 ** 30})()
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: props)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16)
    name, overrides, why = runs.choose_preset("cuda")
    assert name == expected and "a GPU" in why
    cfg = im.preset(name, **overrides)
    assert cfg.steps <= 5000 and cfg.vae_steps <= 2000 if name == "paper" else cfg == im.preset("lab")
    assert runs.choose_preset("cpu")[0] == "lab"
    assert isinstance(im.autocast(torch.device("cuda")), __import__("contextlib").nullcontext) != bf16


def flip_a_byte_of_a_tensor(path):
    """Flips one byte inside the stored data of the checkpoint's largest tensor (the zip's entries are stored,
    not compressed: the file stays a readable zip and a loadable checkpoint)."""
    import zipfile
    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    with open(path, "r+b") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = int.from_bytes(f.read(2), "little"), int.from_bytes(f.read(2), "little")
        at = info.header_offset + 30 + name_len + extra_len + info.file_size // 2
        f.seek(at)
        byte = f.read(1)[0]
        f.seek(at)
        f.write(bytes([byte ^ 0x40]))


def test_flipped_bytes_in_a_checkpoint_are_named_at_load(records, tmp_path):
    path = str(tmp_path / "model.pt")
    nano_model(records).save(path)
    flip_a_byte_of_a_tensor(path)
    with pytest.raises(im.CheckpointError, match="model.pt is damaged.*train it again or restore it"):
        im.InterMoE.load(path)


def test_sampling_warns_when_a_sample_leaves_any_plausible_scene(records):
    m = nano_model(records)
    torch.nn.init.normal_(m.denoiser.out.weight, std=0.1)
    with pytest.warns(UserWarning, match=r"beyond 50 m"):
        m.sample(["one person waves"], 20, seed=0, steps=3, guidance=1e6)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a sample within the scene: no warning
        m.sample(["one person waves"], 20, seed=0, steps=3)
