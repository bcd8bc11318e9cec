"""Tests of the Cooperative Denoiser: paper size, person symmetry, padding, ablation switches."""
from dataclasses import replace

import pytest
import torch

from intermoe_min import (
    CooperativeDenoiser, DenoiserConfig, MoEConfig, TimestepEmbedding, preset,
)


def tiny_config(**moe) -> DenoiserConfig:
    return DenoiserConfig(d_latent=12, d_text=10, width=32, n_layers=2, n_heads=4, d_ffn=24,
                          moe=MoEConfig(n_experts=4, d_expert=24, **moe))


def make_net(cfg, dtype=torch.float64, seed=0):
    """A tiny denoiser with a random (not zero) output layer and spread-out router logits, so the tests
    see every path: gates that open and close, outputs that depend on everything upstream."""
    torch.manual_seed(seed)
    net = CooperativeDenoiser(cfg).to(dtype)
    with torch.no_grad():
        net.out.weight.normal_(std=0.1)
        for name, p in net.named_parameters():
            if "router" in name and "alpha" not in name:
                p.mul_(20.0)
            if "to_scale_shift" in name:
                p.normal_(std=0.05)  # AdaLN is zero-initialised; make it do something here
    return net


def batch(cfg, B=3, T=8, dtype=torch.float64, lengths=(8, 5, 2), seed=1):
    g = torch.Generator().manual_seed(seed)
    x_a = torch.randn(B, T, cfg.d_latent, generator=g, dtype=dtype)
    x_b = torch.randn(B, T, cfg.d_latent, generator=g, dtype=dtype)
    t = torch.tensor([0, 400, 999])[:B]
    text = torch.randn(B, cfg.d_text, generator=g, dtype=dtype)
    mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]  # (B, T)
    return x_a, x_b, t, text, mask


VARIANTS = {
    "paper": {},
    "motion-router": dict(router_mode="motion"),
    "text-router": dict(router_mode="text"),
    "learn-alpha": dict(learn_alpha=True),
    "per-sample": dict(routing="sample"),
    "topk": dict(selection="topk"),
}


# ---- size ----------------------------------------------------------------------------------------------

def test_paper_parameter_count():
    """229.15 M for the denoiser alone, 150.99 M of it in experts (built on the meta device: no memory)."""
    with torch.device("meta"):
        net = CooperativeDenoiser(preset("paper").denoiser)
    total = sum(p.numel() for p in net.parameters())
    experts = sum(p.numel() for n, p in net.named_parameters() if ".experts." in n)
    assert experts == 8 * 8 * 3 * 768 * 1024
    assert abs(total - 229.15e6) < 0.02 * 229.15e6
    assert total == 229_150_144  # the authors' layout, matched exactly


def test_untrained_denoiser_predicts_zeros_and_shapes():
    cfg = DenoiserConfig(width=128, n_layers=4, n_heads=4, d_ffn=176, moe=MoEConfig(d_expert=176))
    net = CooperativeDenoiser(cfg)
    x_a, x_b, t, text, mask = batch(cfg, dtype=torch.float32)
    out_a, out_b = net(x_a, x_b, t, text, mask)
    assert out_a.shape == out_b.shape == (3, 8, cfg.d_latent)
    assert torch.all(out_a == 0) and torch.all(out_b == 0)  # zero-initialised final layer
    assert TimestepEmbedding(16)(torch.tensor([0, 999])).shape == (2, 16)


# ---- symmetry and padding --------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", list(VARIANTS) + ["ffn"])
def test_swapping_people_swaps_outputs(variant):
    cfg = replace(tiny_config(**VARIANTS.get(variant, {})), ffn_type="ffn" if variant == "ffn" else "moe")
    net = make_net(cfg).eval()
    x_a, x_b, t, text, mask = batch(cfg)
    out_a, out_b = net(x_a, x_b, t, text, mask)
    sel_ab = [s["selection"] for s in net.moe_stats()]
    out_b2, out_a2 = net(x_b, x_a, t, text, mask)
    sel_ba = [s["selection"] for s in net.moe_stats()]
    valid = mask[..., None]
    torch.testing.assert_close(out_a * valid, out_a2 * valid, rtol=0, atol=1e-12)
    torch.testing.assert_close(out_b * valid, out_b2 * valid, rtol=0, atol=1e-12)
    B = x_a.shape[0]
    for s1, s2 in zip(sel_ab, sel_ba):  # routing, exactly: rows [a; b] became [b; a]
        assert torch.equal(s1, torch.cat([s2[B:], s2[:B]]))


def test_each_person_reading_its_own_view_of_the_caption_keeps_the_swap_symmetry():
    """egocentric_text: person a reads text_a, person b text_b; role_embedding: each gets its own input vector.
    Swapping the people together with their views and vectors swaps the outputs exactly; different views, and
    different role vectors, change the outputs (the roles reach the slots)."""
    cfg = tiny_config()
    net = make_net(cfg).eval()
    x_a, x_b, t, text, mask = batch(cfg)
    text_b = torch.randn_like(text)
    role_a, role_b = torch.randn(2, x_a.shape[0], cfg.width)
    out_a, out_b = net(x_a, x_b, t, text, mask, text_b, role_a, role_b)
    out_b2, out_a2 = net(x_b, x_a, t, text_b, mask, text, role_b, role_a)
    valid = mask[..., None]
    torch.testing.assert_close(out_a * valid, out_a2 * valid, rtol=0, atol=1e-12)
    torch.testing.assert_close(out_b * valid, out_b2 * valid, rtol=0, atol=1e-12)
    views_a, _ = net(x_a, x_b, t, text, mask, text_b)  # the same views, no role vectors
    shared_a, _ = net(x_a, x_b, t, text, mask)
    assert not torch.allclose(shared_a * valid, views_a * valid)
    assert not torch.allclose(views_a * valid, out_a * valid)


def test_swap_symmetry_of_bias_updates_in_training():
    """Batch-level counts are sums over both people: the bias update does not see who is who."""
    cfg = replace(tiny_config(), dropout=0.0)
    biases = []
    for swap in (False, True):
        net = make_net(cfg).train()
        x_a, x_b, t, text, mask = batch(cfg)
        for _ in range(3):
            net(*((x_b, x_a) if swap else (x_a, x_b)), t, text, mask)
            net.update_biases()
        biases.append(torch.stack([m.expert_bias for m in net.moe_blocks()]))
    assert torch.equal(biases[0], biases[1])
    assert not torch.all(biases[0] == -0.5)


@pytest.mark.parametrize("variant", ["paper", "per-sample", "topk"])
def test_padding_does_not_change_real_frames(variant):
    cfg = tiny_config(**VARIANTS[variant])
    net = make_net(cfg).eval()
    x_a, x_b, t, text, mask = batch(cfg)
    out_a, out_b = net(x_a, x_b, t, text, mask)
    pad = ~mask[..., None]  # (B, T, 1)
    noise = torch.randn(x_a.shape, dtype=x_a.dtype) * 100
    out_a2, out_b2 = net(torch.where(pad, noise, x_a), torch.where(pad, -noise, x_b), t, text, mask)
    torch.testing.assert_close(out_a[mask], out_a2[mask], rtol=0, atol=1e-12)
    torch.testing.assert_close(out_b[mask], out_b2[mask], rtol=0, atol=1e-12)


# ---- every switch trains -------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", list(VARIANTS) + ["ffn"])
def test_ablation_switches_forward_backward(variant):
    cfg = replace(tiny_config(**VARIANTS.get(variant, {})), ffn_type="ffn" if variant == "ffn" else "moe")
    net = make_net(cfg, dtype=torch.float32).train()
    x_a, x_b, t, text, mask = batch(cfg, dtype=torch.float32)
    out_a, out_b = net(x_a, x_b, t, text, mask)
    loss = ((out_a - x_a).square() + (out_b - x_b).square())[mask].mean()  # an x0 loss on real frames
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), name
    net.update_biases()
    stats = net.moe_stats()
    if variant == "ffn":
        assert stats == []
    else:
        assert len(stats) == cfg.n_layers
        for s in stats:
            assert s["counts"].shape == (4,) and s["tokens"] == 2 * int(mask.sum())
            assert torch.all(s["bias"] > -1) and torch.all(s["bias"] < 0)
            if variant in ("per-sample",):
                assert torch.all(s["bias"] == -0.5)  # the per-sample pool does not use the biases
            else:
                assert not torch.all(s["bias"] == -0.5)


def test_attention_is_softmax_over_the_real_keys_and_one_zero_key():
    """attend() = softmax(q k^T / sqrt(c)) v over the real keys plus the authors' all-zero key and value,
    written out here: a padded tail is ignored, and a row of padding only attends to the zero key (gives 0)."""
    from intermoe_min import attend
    g = torch.Generator().manual_seed(0)
    B, H, T, c = 3, 2, 7, 5
    q, k, v = (torch.randn(B, H, T, c, generator=g, dtype=torch.float64) for _ in range(3))
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 4:] = False
    mask[2] = False
    scores = torch.cat([q @ k.transpose(-1, -2) / c ** 0.5, torch.zeros(B, H, T, 1, dtype=torch.float64)], -1)
    scores[..., :T] = scores[..., :T].masked_fill(~mask[:, None, None, :], float("-inf"))  # (B, H, T, T + 1)
    ref = torch.softmax(scores, -1)[..., :T] @ v  # the zero key's value adds nothing
    ours = attend(q, k, v, mask)  # (B, T, H * c)
    torch.testing.assert_close(ours, ref.transpose(1, 2).reshape(B, T, H * c), rtol=1e-10, atol=1e-12)
    assert torch.equal(ours[2], torch.zeros_like(ours[2]))
    torch.manual_seed(0)
    assert not torch.allclose(attend(q, k, v, mask, 0.5), ours)  # training-time dropout on the weights
