"""Tests of the InterMoEBlock block: router formula, gate, sparse dispatch, bias rule, bias sync across ranks.

Tiny sizes throughout; each test runs in well under a few seconds on a laptop CPU.
"""
from pathlib import Path

import pytest
import torch

from bench_common import dense_reference  # benchmarks/ (pytest's pythonpath): the reference bench_moe times too
from intermoe_min import BIAS_EPS, InterMoEBlock, MoEConfig, SynergisticRouter, update_biases


def make_moe(d=16, d_cond=12, dtype=torch.float32, router_scale=1.0, seed=0, **cfg):
    """A small InterMoEBlock block; router_scale enlarges the router weights so sigmoid(R) spreads out."""
    torch.manual_seed(seed)
    cfg = {"n_experts": 4, "d_expert": 8, **cfg}
    moe = InterMoEBlock(d, d_cond, MoEConfig(**cfg)).to(dtype)
    with torch.no_grad():
        for p in moe.router.parameters():
            p.mul_(router_scale)
        for lin in (moe.norm.to_scale_shift,):  # a non-trivial AdaLN, so the test sees its effect
            lin.weight.normal_(std=0.1)
    return moe


def inputs(N=6, T=10, d=16, d_cond=12, dtype=torch.float32, seed=1, lengths=None):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(N, T, d, generator=g, dtype=dtype)
    emb = torch.randn(N, d_cond, generator=g, dtype=dtype)
    mask = torch.ones(N, T, dtype=torch.bool)
    for i, n in enumerate(lengths or []):
        mask[i, n:] = False
    return h, emb, mask


@pytest.mark.parametrize("bad, message", [(dict(routing="token"), "routing must be"),
                                          (dict(selection="top2"), "selection must be"),
                                          (dict(selection="topk", capacity=1.5), "integer capacity"),
                                          (dict(d_shared=-8), "d_shared must be")])
def test_a_bad_block_setting_is_refused_by_name(bad, message):
    with pytest.raises(ValueError, match=message):
        MoEConfig(**bad)


# ---- the Synergistic Router ------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["synergistic", "motion", "text"])
def test_router_matches_formula(mode):
    torch.manual_seed(0)
    router = SynergisticRouter(16, 12, 4, mode=mode)
    h, emb, _ = inputs()
    R = router(h, emb)  # (N, T, E)
    assert R.shape == (6, 10, 4)
    r_motion = h @ router.w_motion.weight.T if router.w_motion is not None else None  # (N, T, E)
    r_text = (emb @ router.w_text.weight.T)[:, None, :] if router.w_text is not None else None  # (N, 1, E)
    expected = {"motion": r_motion, "text": None if r_text is None else r_text.expand(-1, 10, -1),
                "synergistic": None if mode != "synergistic" else 0.5 * r_motion + 0.5 * r_text}[mode]
    torch.testing.assert_close(R, expected)
    # Only the weights a mode needs exist.
    assert (router.w_motion is None) == (mode == "text")
    assert (router.w_text is None) == (mode == "motion")


def test_router_learnable_alpha():
    torch.manual_seed(0)
    router = SynergisticRouter(16, 12, 4, learn_alpha=True)
    assert abs(router.alpha.item() - 0.5) < 1e-7  # starts at the paper's value
    with torch.no_grad():
        router.alpha_logit.fill_(1.3)
    h, emb, _ = inputs()
    a = torch.sigmoid(torch.tensor(1.3))
    expected = a * (h @ router.w_motion.weight.T) + (1 - a) * (emb @ router.w_text.weight.T)[:, None, :]
    R = router(h, emb)
    torch.testing.assert_close(R, expected)
    R.square().sum().backward()
    assert router.alpha_logit.grad is not None and router.alpha_logit.grad.abs() > 0


# ---- the bias rule -----------------------------------------------------------------------------------

def test_bias_rule_is_sign_of_count_minus_k():
    moe = make_moe(n_experts=4, bias_step=0.01)
    moe.train()
    # counts 10, 0, 5, 5 of S = 20 tokens, capacity 1: k = 5, so signs +1, -1, 0, 0.
    moe.apply_tally(torch.tensor([10.0, 0.0, 5.0, 5.0, 20.0], dtype=torch.float64))
    torch.testing.assert_close(moe.expert_bias, torch.tensor([-0.51, -0.49, -0.5, -0.5]))


def test_the_selection_tally_is_int64():
    """Apple's MPS has no float64: the tally of selections must be integers (exact, and all-reducible)."""
    moe = make_moe(router_scale=3.0)
    moe.train()
    h, emb, mask = inputs()
    moe(h, emb, mask)
    moe(h, emb, mask)
    tally = moe._tally.clone()
    assert tally.dtype == torch.int64
    assert int(tally[-1]) == 2 * int(mask.sum())  # S summed over both forwards
    before = moe.expert_bias.clone()
    update_biases([moe])
    k = moe.cfg.capacity * tally[-1] / moe.n_experts
    expected = (before - moe.cfg.bias_step * torch.sign(tally[:-1].float() - k)).clamp(-1 + BIAS_EPS, -BIAS_EPS)
    torch.testing.assert_close(moe.expert_bias, expected)


def test_bias_clamped_inside_open_interval():
    """An expert every token wants and one no token wants: their biases hit the clamps and stay inside (-1, 0)."""
    d = 16
    moe = make_moe(d=d, n_experts=4, bias_step=0.05)
    with torch.no_grad():
        moe.router.w_motion.weight[:, 0] = torch.tensor([30.0, -30.0, 0.0, 0.0])  # feature 0 is always 1 below
    moe.train()
    for _ in range(40):
        h, emb, _ = inputs(d=d)
        h[..., 0] = 1.0
        with torch.no_grad():
            moe(h, emb)
        update_biases([moe])
    b = moe.expert_bias
    assert torch.all(b > -1) and torch.all(b < 0)
    assert b[0].item() == pytest.approx(-1 + BIAS_EPS)  # always over its share: pushed down to the clamp
    assert b[1].item() == pytest.approx(-BIAS_EPS)      # never chosen: pushed up to the clamp


def test_eval_forward_does_not_move_biases():
    moe = make_moe()
    h, emb, mask = inputs()
    moe.eval()
    moe(h, emb, mask)
    update_biases([moe])
    assert torch.all(moe.expert_bias == -0.5)


@pytest.mark.parametrize("capacity", [1.0, 0.5])  # 0.5: the shared-expert variant's routed capacity
def test_counts_settle_near_target_on_stationary_stream(capacity):
    """A fixed token distribution that favours some experts: the bias rule alone (no weight training)
    brings every expert's selection count within 10% of k = capacity * S / E."""
    d, d_cond, E = 32, 16, 8
    moe = make_moe(d=d, d_cond=d_cond, n_experts=E, router_scale=3.0, bias_step=1e-3, capacity=capacity)
    moe.train()
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(d, generator=g)  # a fixed offset: makes the initial load uneven
    history = []
    for step in range(300):
        h = mean + torch.randn(16, 64, d, generator=g)  # (N, T, d): 1024 tokens a step
        emb = torch.randn(16, d_cond, generator=g)
        with torch.no_grad():
            moe(h, emb)
        history.append(moe.last_counts.double())
        update_biases([moe])
    k = capacity * 16 * 64 / E
    assert (history[0] - k).abs().max() > 2 * k, "the test stream should start far from balance"
    # A single step's count is noisy (whole samples share R_text); the sign rule settles the median
    # count on k; the mean lands above it by the counts' right skew (a few percent; more at capacity 0.5).
    last = torch.stack(history[-100:])  # (100, E) counts over the last 100 steps
    assert torch.all((last.median(0).values - k).abs() < 0.1 * k), (last.median(0).values, k)
    assert torch.all((last.mean(0) - k).abs() < 0.15 * k), (last.mean(0), k)
    assert torch.all(moe.expert_bias > -1) and torch.all(moe.expert_bias < 0)
    assert moe.expert_bias.std() > 1e-2, "the biases should have moved apart to balance the load"


# ---- selection and sparse dispatch --------------------------------------------------------------------

CASES = [
    dict(selection="dynamic", routing="batch"),
    dict(selection="dynamic", routing="sample"),
    dict(selection="topk", routing="batch", capacity=1),
    dict(selection="topk", routing="batch", capacity=2),
    dict(selection="dynamic", routing="batch", router_mode="text"),
    dict(selection="dynamic", routing="batch", d_shared=6),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_sparse_dispatch_equals_dense_reference(case):
    moe = make_moe(dtype=torch.float64, router_scale=40.0, **case)
    with torch.no_grad():
        moe.expert_bias.copy_(torch.tensor([-0.3, -0.5, -0.6, -0.7]))
    h, emb, mask = inputs(dtype=torch.float64, lengths=[10, 4, 7, 1, 10, 9])
    assert (moe.shared is not None) == bool(case.get("d_shared"))
    moe.eval()
    y = moe(h, emb, mask, n_persons=2)
    ref = dense_reference(moe, h, emb, mask, n_persons=2)
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
    sel = moe.last_selection  # (N, T, E)
    assert not sel[~mask].any(), "padding frames must select no expert"
    none = mask & ~sel.any(-1)  # real tokens with no expert: output exactly 0 (pass through on the residual)
    if moe.shared is None:
        assert torch.all(y[none] == 0)
    else:  # ... unless a shared expert takes every real token
        assert none.any() and torch.all(y[none].abs().sum(-1) > 0)
    assert torch.all(y[~mask] == 0)
    n_sel = sel.sum(-1)[mask]  # experts per real token
    if case["selection"] == "topk":
        assert torch.all(n_sel == case["capacity"])
    elif case.get("router_mode") != "text":  # dynamic: a token may take none, one or several experts
        assert (n_sel == 0).any() and (n_sel >= 2).any()


@pytest.mark.parametrize("threads", [1, 2])
def test_a_tokens_routing_weights_do_not_depend_on_where_it_sits(threads):
    """Swapping the people permutes the tokens; their gate weights must permute bit for bit, or the
    denoiser's exact person-swap symmetry breaks (a softmax whose rounding depended on a token's place,
    as torch's CPU softmax across a long row does for its last entries, would break it)."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        moe = make_moe(n_experts=8).eval()
        for B, T in [(3, 12), (3, 11), (1, 7), (5, 13), (32, 75)]:
            g = torch.Generator().manual_seed(B * 100 + T)
            logits = 3 * torch.randn(2 * B, T, 8, generator=g)  # (N, T, E) router output, given
            swap = lambda x: torch.cat([x[B:], x[:B]])  # noqa: E731
            mask = torch.ones(2 * B, T, dtype=torch.bool)
            outs = []
            for r in (logits, swap(logits)):
                moe.router.forward = lambda h, emb, r=r: r
                outs.append(moe.route(None, None, mask, n_persons=2))
            (_, sel, w), (_, sel_s, w_s) = outs
            assert torch.equal(swap(sel_s), sel) and torch.equal(swap(w_s), w), (B, T)
            torch.testing.assert_close(w, torch.softmax(logits, -1))
    finally:
        torch.set_num_threads(old)


def test_per_sample_routing_gives_each_sample_its_share():
    moe = make_moe(routing="sample", capacity=1.5, router_scale=10.0)
    lengths = [10, 4, 7, 2, 10, 9]  # rows 0-2 person a, rows 3-5 person b: samples (0, 3), (1, 4), (2, 5)
    h, emb, mask = inputs(lengths=lengths)
    moe(h, emb, mask, n_persons=2)
    sel = moe.last_selection  # (N, T, E)
    per_sample = sel[:3].sum(1) + sel[3:].sum(1)  # (B, E) selections per sample and expert
    S_i = torch.tensor([10 + 2, 4 + 10, 7 + 9])
    k_i = torch.round(1.5 * S_i / 4)
    assert torch.all(per_sample == k_i[:, None])


def test_rows_processed_per_expert_equal_selections():
    """The compute is sparse: expert e sees exactly the rows it selected, not all tokens."""
    moe = make_moe(router_scale=10.0)
    rows = [0] * moe.n_experts
    for e, expert in enumerate(moe.experts):
        expert.register_forward_hook(lambda mod, args, out, e=e: rows.__setitem__(e, rows[e] + args[0].shape[0]))
    h, emb, mask = inputs(lengths=[10, 3, 5, 8, 2, 10])
    moe(h, emb, mask)
    assert rows == moe.last_counts.tolist()
    assert sum(rows) == moe.last_counts.sum() < moe.n_experts * int(mask.sum())
    assert moe.stats()["experts_per_token"] == pytest.approx(sum(rows) / int(mask.sum()))


def test_backward_reaches_router_experts_and_alpha():
    moe = make_moe(learn_alpha=True, router_scale=10.0, d_shared=6)
    h, emb, mask = inputs(lengths=[10, 3, 5, 8, 2, 10])
    h.requires_grad_(True)
    moe(h, emb, mask).square().sum().backward()
    assert moe.router.w_motion.weight.grad.abs().sum() > 0
    assert moe.router.w_text.weight.grad.abs().sum() > 0
    assert moe.router.alpha_logit.grad is not None
    assert all(p.grad is not None for p in moe.experts.parameters())  # even an idle expert stays in the graph
    assert all(p.grad.abs().sum() > 0 for p in moe.shared.parameters())  # the shared expert learns from every token
    assert moe.expert_bias.grad is None


# ---- bias sync across data-parallel ranks --------------------------------------------------------------

def _dist_worker(rank, world, init_file, out_dir):
    """One rank: same weights, different data; update biases; save them and the signs it saw locally."""
    import torch.distributed as dist

    from intermoe_min import CooperativeDenoiser, DenoiserConfig

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(0)  # identical initial weights on both ranks
    moe = InterMoEBlock(16, 16, MoEConfig(n_experts=4, d_expert=8, bias_step=0.01)).train()
    net = CooperativeDenoiser(DenoiserConfig(d_latent=8, d_text=8, width=16, n_layers=2, n_heads=2,
                                             dropout=0.0, moe=MoEConfig(n_experts=4, d_expert=8))).train()
    g = torch.Generator().manual_seed(100 + rank)  # different data on each rank
    sign = 1.0 if rank == 0 else -1.0  # opposite data: the local decisions disagree
    local = []
    for _ in range(5):
        h = sign * (torch.randn(8, 12, 16, generator=g) + 1.0)
        with torch.no_grad():
            moe(h, sign * torch.ones(8, 16))
        tally = moe._tally.clone()
        local.append(torch.sign(tally[:-1] - tally[-1] / 4))
        update_biases([moe])
        x = sign * (torch.randn(3, 6, 8, generator=g) + 1.0)
        with torch.no_grad():
            net(x, -x, torch.tensor([1, 2, 3]), torch.randn(3, 8, generator=g))
        net.update_biases()
    torch.save({"moe": moe.expert_bias.clone(), "local": torch.stack(local),
                "net": torch.stack([m.expert_bias for m in net.moe_blocks()])}, Path(out_dir) / f"{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()


def test_bias_sync_across_ranks(tmp_path):
    import torch.multiprocessing as mp
    import torch.distributed as dist

    if not dist.is_available():
        pytest.skip("torch.distributed not available")
    mp.spawn(_dist_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"{r}.pt") for r in (0, 1))
    assert not torch.equal(r0["local"], r1["local"]), "the ranks' own counts should disagree"
    assert torch.equal(r0["moe"], r1["moe"])
    assert torch.equal(r0["net"], r1["net"])
    assert not torch.all(r0["moe"] == -0.5), "the biases should have moved"
