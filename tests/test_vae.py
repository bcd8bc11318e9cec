"""Causal-Skeletal VAE: shapes, the skeleton graphs, exact causality, the loss and its mask, overfitting."""
import time

import numpy as np
import pytest
import torch

import intermoe_min as im
from intermoe_min import (A_7, A_12, M_7, M_12, PARTS_7, PARTS_12, CausalSkeletalVAE, VAEConfig,
                      features_to_joint_tokens, joint_tokens_to_features, vae_loss)

TINY = VAEConfig(width=16, hidden=16, n_blocks=1, dropout=0.0)  # ~50 k parameters, milliseconds a step


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_paper_size_has_about_one_million_parameters():
    n = n_params(CausalSkeletalVAE(VAEConfig()))
    print(f"paper-size VAE: {n / 1e6:.3f} M parameters")
    assert 0.95e6 < n < 1.05e6  # the paper's size: about 1.0 M parameters


def test_shapes_and_padding():
    torch.manual_seed(0)
    vae = CausalSkeletalVAE(VAEConfig(n_blocks=1)).eval()  # width 64: latent 7 x 64 = 448
    x = torch.randn(2, 64, 262)
    z = vae.encode(x)
    assert z.shape == (2, 16, 448)
    assert vae.decode(z).shape == (2, 64, 262)
    mu, logvar = vae.encode_dist(x)
    assert torch.equal(mu, z) and logvar.shape == z.shape
    assert not torch.equal(vae.encode(x, sample=True), z)
    # T not divisible by 4: padded at the end, cropped back
    x62 = x[:, :62]
    z62 = vae.encode(x62)
    assert z62.shape == (2, 16, 448)
    assert vae.decode(z62, 62).shape == (2, 62, 262)
    recon, mu, logvar = vae(x62)
    assert recon.shape == (2, 62, 262) and mu.shape == (2, 16, 448)
    # the first 15 latent frames only see frames < 60, which x and x62 share
    assert torch.allclose(z62[:, :15], z[:, :15], atol=1e-5)


def test_joint_tokens_round_trip():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 262)
    tok = features_to_joint_tokens(x)
    assert tok.shape == (2, 5, 22, 13)
    assert (tok[:, :, 0, 3:9] == 0).all()  # the root has no local rotation
    non_feet = [j for j in range(22) if j not in im.FOOT_JOINTS]
    assert (tok[:, :, non_feet, 12] == 0).all()
    assert torch.equal(tok[:, :, im.FOOT_JOINTS, 12], x[..., 258:262])
    assert torch.equal(joint_tokens_to_features(tok), x)


def test_st_conv_is_its_formula():
    """CausalSTConv folds W1 into the temporal conv's current-frame tap: the output is still
    W1 x + (A W2 x) / deg + the causal temporal conv, written out here the plain way."""
    torch.manual_seed(0)
    conv = im.CausalSTConv(A_12, 8).double()
    x = torch.randn(2, 9, 12, 8, dtype=torch.float64)  # (B, T, N, C)
    padded = torch.nn.functional.pad(x, (0, 0, 0, 0, 2, 0)).permute(0, 3, 1, 2)  # 2 frames in front only
    temporal = conv.temporal(padded).permute(0, 2, 3, 1)  # (B, T, N, C)
    A = A_12.double()
    graph = torch.einsum("nm,btmc->btnc", A / A.sum(1, keepdim=True), conv.w2(x))
    torch.testing.assert_close(conv(x), conv.w1(x) + graph + temporal, rtol=1e-6, atol=1e-6)  # A / deg: float32


def test_part_graphs_are_trees_over_partitions():
    assert M_12.shape == (12, 22) and M_7.shape == (7, 12)
    assert (M_12.sum(0) == 1).all() and (M_7.sum(0) == 1).all()  # every node in exactly one group
    for A, n in ((A_12, 12), (A_7, 7)):
        assert torch.equal(A, A.T) and (A.diagonal() == 1).all()
        assert (A.sum() - n) / 2 == n - 1  # a connected graph with n - 1 edges is a tree
        reach = torch.linalg.matrix_power(A, n) > 0
        assert reach.all()  # connected
    assert list(PARTS_12)[0] == list(PARTS_7)[0] == "pelvis"


def _causal_vae():
    torch.manual_seed(0)
    # two blocks per level: a receptive field long enough that a leak into the past would show
    return CausalSkeletalVAE(VAEConfig(width=8, hidden=8, n_blocks=2, dropout=0.0)).double().eval()


@pytest.mark.parametrize("T", [40, 38])
def test_encoder_and_decoder_are_exactly_causal(T):
    vae = _causal_vae()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, T, 262, generator=g, dtype=torch.float64)
    with torch.no_grad():
        z = vae.encode(x)
        y = vae.decode(z, T)
        for t in (1, 4, 13, 22, T - 1):
            x2 = x.clone()
            x2[:, t:] += torch.randn(1, T - t, 262, generator=g, dtype=torch.float64)
            z2 = vae.encode(x2)
            for k in range(z.shape[1]):
                if 4 * (k + 1) <= t:  # latent k has seen only frames < 4(k+1) <= t: untouched
                    assert torch.equal(z2[:, k], z[:, k]), (t, k)
            assert not torch.equal(z2[:, t // 4], z[:, t // 4])  # the latent holding frame t does change
            changed = [k for k in range(z.shape[1]) if not torch.equal(z2[:, k], z[:, k])]
            first = changed[0]
            y2 = vae.decode(z2, T)
            assert torch.equal(y2[:, : 4 * first], y[:, : 4 * first]), (t, first)
        # decoder alone: change latents from frame k on; decoded frames < 4k stay bit-identical
        for k in (1, 3, z.shape[1] - 1):
            z3 = z.clone()
            z3[:, k:] += 1.0
            y3 = vae.decode(z3, T)
            assert torch.equal(y3[:, : 4 * k], y[:, : 4 * k]), k
            assert not torch.equal(y3[:, 4 * k], y[:, 4 * k])


def _loss_inputs(seed=0, B=2, T=12):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, 262, generator=g)
    recon = torch.randn(B, T, 262, generator=g)
    mu = torch.randn(B, (T + 3) // 4, 448, generator=g)
    logvar = 0.1 * torch.randn(B, (T + 3) // 4, 448, generator=g)
    mean, std = torch.randn(262, generator=g), torch.rand(262, generator=g) + 0.5
    return recon, x, mu, logvar, mean, std


def test_loss_terms_and_mask():
    recon, x, mu, logvar, mean, std = _loss_inputs()
    total, parts = vae_loss(recon, x, mu, logvar, mean, std)
    assert set(parts) == {"total", "recon", "pos", "vel", "rot", "kl"}
    expected = parts["recon"] + 0.5 * (parts["pos"] + parts["vel"] + parts["rot"]) + 0.02 * parts["kl"]
    assert abs(total.item() - expected) < 1e-4
    assert torch.isclose(torch.tensor(parts["recon"]), ((recon - x) ** 2).mean())
    # an all-true mask is no mask at all
    full = torch.ones(2, 12, dtype=torch.bool)
    assert torch.isclose(vae_loss(recon, x, mu, logvar, mean, std, full)[0], total)
    # valid lengths 12 and 5: person 2's frames 5.. are padding (and its latent frames 2.. too)
    mask = torch.arange(12)[None] < torch.tensor([[12], [5]])
    masked, _ = vae_loss(recon, x, mu, logvar, mean, std, mask)
    recon2, x2, mu2, logvar2 = recon.clone(), x.clone(), mu.clone(), logvar.clone()
    recon2[1, 5:] += 100.0
    x2[1, 5:] -= 7.0
    mu2[1, 2:] += 50.0
    logvar2[1, 2:] -= 3.0
    assert torch.equal(vae_loss(recon2, x2, mu2, logvar2, mean, std, mask)[0], masked)
    assert not torch.isclose(vae_loss(recon2, x2, mu2, logvar2, mean, std)[0], total)
    # weights can be overridden by name
    no_kl, _ = vae_loss(recon, x, mu, logvar, mean, std, weights={"kl": 0.0})
    assert torch.isclose(no_kl, total - 0.02 * parts["kl"], atol=1e-4)


def test_loss_decreases():
    torch.manual_seed(0)
    vae = CausalSkeletalVAE(TINY)
    t = torch.linspace(0, 6.28, 16)[None, :, None]                     # (1, T, 1)
    x = torch.sin(t * torch.linspace(0.5, 2, 262) + torch.arange(2.0)[:, None, None])  # (2, T, 262) smooth
    mean, std = torch.zeros(262), torch.ones(262)
    opt = torch.optim.Adam(vae.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        recon, mu, logvar = vae(x)
        loss, _ = vae_loss(recon, x, mu, logvar, mean, std)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


# ---- overfitting a few real-looking clips -----------------------------------------------------------
# A rough adult rest pose (metres, Y up, facing +Z, left side at +X): offset of each joint from its parent.
REST_OFFSETS = np.array([
    [0, 0, 0], [0.08, -0.08, 0], [-0.08, -0.08, 0], [0, 0.1, 0], [0, -0.4, 0], [0, -0.4, 0],
    [0, 0.13, 0], [0, -0.4, 0], [0, -0.4, 0], [0, 0.05, 0], [0, -0.05, 0.12], [0, -0.05, 0.12],
    [0, 0.2, 0], [0.08, 0.12, 0], [-0.08, 0.12, 0], [0, 0.1, 0], [0.1, 0, 0], [-0.1, 0, 0],
    [0.26, 0, 0], [-0.26, 0, 0], [0.25, 0, 0], [-0.25, 0, 0],
])


def smooth_clip_features(T: int, seed: int) -> np.ndarray:
    """(T, 262) features of one person: every joint swings sinusoidally about its own axis, at 30 fps,
    while the root walks forward and turns a little. Forward kinematics keeps the bone lengths right."""
    rng = np.random.default_rng(seed)
    t = np.arange(T + 1)[:, None] / im.FPS                                       # (T+1, 1) seconds
    axes = rng.normal(size=(22, 3))
    angles = rng.uniform(0.1, 0.5, (1, 22)) * np.sin(2 * np.pi * rng.uniform(0.5, 1.5, (1, 22)) * t
                                                      + rng.uniform(0, 2 * np.pi, (1, 22)))  # (T+1, 22)
    local = im.axis_angle_matrix(np.broadcast_to(axes, (T + 1, 22, 3)), angles)  # (T+1, 22, 3, 3)
    local[:, 0] = im.yaw_matrix(0.5 * np.sin(2 * np.pi * 0.3 * t[:, 0]))
    root = np.stack([0.3 * t[:, 0], 0.95 + 0.03 * np.sin(2 * np.pi * t[:, 0]), 0.8 * t[:, 0]], -1)
    joints = im.forward_kinematics(local, root, REST_OFFSETS)                     # (T+1, 22, 3)
    return im.features_from_joints(joints, im.rot6d_from_matrix(local[:, 1:]))   # (T, 262)


def test_overfits_a_few_clips_to_under_2cm():
    """4 clips x 32 frames, 300 Adam steps at the tiny-ish size (width 32): ~10 s on one CPU core."""
    torch.manual_seed(0)
    feats = [smooth_clip_features(32, seed) for seed in range(4)]
    norm = im.Normalizer.fit(feats)
    x = torch.tensor(np.stack([norm.normalise(f) for f in feats]))              # (4, 32, 262)
    mean, std = torch.tensor(norm.mean), torch.tensor(norm.std)
    vae = CausalSkeletalVAE(VAEConfig(width=32, hidden=32, n_blocks=1, dropout=0.0))
    steps = 300
    opt = torch.optim.Adam(vae.parameters(), lr=4e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 4e-3, total_steps=steps, pct_start=0.1)
    start = time.perf_counter()
    for _ in range(steps):
        recon, mu, logvar = vae(x)
        loss, parts = vae_loss(recon, x, mu, logvar, mean, std)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    vae.eval()
    with torch.no_grad():
        decoded = norm.denormalise(vae.decode(vae.encode(x), x.shape[1]))       # (4, 32, 262) metres
    err = (im.joints_from_features(decoded) - im.joints_from_features(norm.denormalise(x))).norm(dim=-1)
    mpjpe_cm = 100 * err.mean().item()
    print(f"overfit: {steps} steps in {time.perf_counter() - start:.1f} s, "
          f"mean joint error {mpjpe_cm:.2f} cm, last loss {({k: round(v, 4) for k, v in parts.items()})}")
    assert mpjpe_cm < 2.0
