"""Work in progress: the InterMoE block and the Cooperative MoE Denoiser (to be pasted into intermoe_min.py).

Everything below is self-contained (torch, einops, math) and in data-flow order, so it can become the
denoiser sections of intermoe_min.py verbatim:

  a. Building blocks: sinusoidal embeddings, the timestep embedding, AdaLN, self/cross attention,
     the SwiGLU expert.
  b. The Synergistic Router: R_comb = alpha * R_motion + (1 - alpha) * R_text.
  c. The InterMoE block: Dynamic Temporal Selection (M = sigmoid(R_comb) + b_e > 0), batch-level token pool,
     sparse dispatch, the bias balancing rule, and the ablations (per-sample pool, fixed top-k, plain FFN).
  d. The Cooperative Denoiser: one set of weights for both people; self-attention, cross-attention to the
     partner, InterMoE block, in every layer.

Sources: the InterMoE paper (arXiv 2511.13488) for the router, the gate and the bias rule; the authors'
public code (Lighten001/InterMoE) for the sizes and the block layout the paper leaves out. Written from
those descriptions, not copied; where we differ from the authors' code a comment says so.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
import torch.distributed as dist
import torch.nn.functional as F
from einops import rearrange
from torch import nn

# =====================================================================================================
# a. Building blocks of the denoiser
# =====================================================================================================


def sinusoidal_embedding(pos: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Transformer sinusoids: (...) positions or diffusion timesteps -> (..., dim), [sin | cos] halves.

    Frequencies fall geometrically from 1 to 1/max_period (Vaswani et al. 2017, section 3.5).
    """
    assert dim % 2 == 0, "sinusoidal_embedding needs an even dim"
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=pos.device, dtype=torch.float32) / half)
    angles = pos.to(torch.float32)[..., None] * freqs  # (..., half)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)  # (..., dim)


class TimestepEmbedding(nn.Module):
    """Diffusion step t -> (B, d): sinusoids, then a 2-layer MLP (Linear, SiLU, Linear), as in InterGen/MDM."""

    def __init__(self, d: int):
        super().__init__()
        self.d = d
        self.mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """t: (B,) integer or float steps -> (B, d)."""
        w = self.mlp[0].weight
        return self.mlp(sinusoidal_embedding(t, self.d).to(w.dtype))


class AdaLN(nn.Module):
    """Adaptive LayerNorm: LayerNorm without affine, then a per-sample scale and shift from the condition.

    AdaLN(h, emb) = LN(h) * (1 + scale) + shift, with (scale, shift) = Linear(SiLU(emb)). The Linear is
    zero-initialised, so at the start every AdaLN is a plain LayerNorm (the DiT "adaLN-zero" trick).
    """

    def __init__(self, d: int, d_cond: int):
        super().__init__()
        self.norm = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.to_scale_shift = nn.Linear(d_cond, 2 * d)
        nn.init.zeros_(self.to_scale_shift.weight)
        nn.init.zeros_(self.to_scale_shift.bias)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """h: (B, T, d), emb: (B, d_cond) -> (B, T, d)."""
        scale, shift = self.to_scale_shift(F.silu(emb)).chunk(2, dim=-1)  # (B, d) each
        return self.norm(h) * (1 + scale[:, None]) + shift[:, None]


def attend(q, k, v, key_mask, dropout_p: float = 0.0, zero_attn: bool = True) -> torch.Tensor:
    """Multi-head attention core with a key padding mask.

    q: (B, H, Tq, c), k and v: (B, H, Tk, c), key_mask: (B, Tk) bool, True = a real frame.
    zero_attn appends one all-zero key/value (score 0, value 0), so a query may attend to "nothing";
    the authors' code has this (nn.MultiheadAttention's add_zero_attn=True). It also keeps every row
    of the softmax defined even if all keys are padding.
    Returns (B, Tq, H * c).
    """
    if zero_attn:
        k = F.pad(k, (0, 0, 0, 1))  # (B, H, Tk + 1, c)
        v = F.pad(v, (0, 0, 0, 1))  # (B, H, Tk + 1, c)
        key_mask = F.pad(key_mask, (0, 1), value=True)  # (B, Tk + 1)
    attn_mask = key_mask[:, None, None, :]  # (B, 1, 1, Tk): broadcast over heads and queries
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)  # (B, H, Tq, c)
    return rearrange(out, "b h t c -> b t (h c)")  # (B, Tq, d)


class SelfAttention(nn.Module):
    """AdaLN, then multi-head self-attention over one person's own frames."""

    def __init__(self, d: int, n_heads: int, d_cond: int, dropout: float, zero_attn: bool):
        super().__init__()
        self.n_heads, self.dropout, self.zero_attn = n_heads, dropout, zero_attn
        self.norm = AdaLN(d, d_cond)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, h, emb, mask):
        """h: (B, T, d), emb: (B, d_cond), mask: (B, T) bool -> (B, T, d), the update to add to h."""
        x = self.norm(h, emb)
        q, k, v = rearrange(self.qkv(x), "b t (three h c) -> three b h t c", three=3, h=self.n_heads)  # (B, H, T, c)
        p = self.dropout if self.training else 0.0
        return self.proj(attend(q, k, v, mask, p, self.zero_attn))


class CrossAttention(nn.Module):
    """AdaLN on both streams, then queries from one person, keys and values from the other person."""

    def __init__(self, d: int, n_heads: int, d_cond: int, dropout: float, zero_attn: bool):
        super().__init__()
        self.n_heads, self.dropout, self.zero_attn = n_heads, dropout, zero_attn
        self.norm_q = AdaLN(d, d_cond)   # own person
        self.norm_kv = AdaLN(d, d_cond)  # the partner
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, h, other, emb, mask):
        """h, other: (B, T, d), emb: (B, d_cond), mask: (B, T) bool (the partner's frames) -> (B, T, d)."""
        q = rearrange(self.q(self.norm_q(h, emb)), "b t (h c) -> b h t c", h=self.n_heads)  # (B, H, T, c)
        k, v = rearrange(self.kv(self.norm_kv(other, emb)), "b t (two h c) -> two b h t c",
                         two=2, h=self.n_heads)  # (B, H, T, c) each
        p = self.dropout if self.training else 0.0
        return self.proj(attend(q, k, v, mask, p, self.zero_attn))


class SwiGLU(nn.Module):
    """One expert: SwiGLU feed-forward d -> d_hidden -> d without biases (Shazeer 2020):
    Expert(x) = W_down (SiLU(W_gate x) * W_up x)."""

    def __init__(self, d: int, d_hidden: int):
        super().__init__()
        self.gate = nn.Linear(d, d_hidden, bias=False)
        self.up = nn.Linear(d, d_hidden, bias=False)
        self.down = nn.Linear(d_hidden, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., d) -> (..., d)."""
        return self.down(F.silu(self.gate(x)) * self.up(x))


# =====================================================================================================
# b. The Synergistic Router
# =====================================================================================================

ROUTER_MODES = ("synergistic", "motion", "text")


class SynergisticRouter(nn.Module):
    """Routing logits R_comb (N, T, E), one per token and expert.

    Paper (Synergistic Router): R_comb = alpha * R_motion + (1 - alpha) * R_text, where
      R_motion = h W_m  per token: h is the residual stream before AdaLN, so each person's own kinematics
               (and, through the attention layers, the partner's) choose experts frame by frame;
      R_text   = emb W_t per sample, broadcast over that sample's frames.
    alpha is 0.5 and fixed in the paper; learn_alpha=True makes it sigmoid(a) with a learnable a (init 0,
    so alpha starts at 0.5), the variant the paper lists as future work.
    Modes for the ablations: 'motion' (R_motion only) and 'text' (R_text only).

    Where the authors' code differs: it adds the two logits without alpha (R_motion + R_text, i.e. twice our
    alpha = 0.5 mix: the same ranking, a sharper softmax). Like theirs, our "text" logits see `emb`, the
    whole condition (timestep embedding + text embedding), so the text router can also route by noise
    level; the paper's name "text router" is kept.
    """

    def __init__(self, d: int, d_cond: int, n_experts: int, mode: str = "synergistic",
                 alpha: float = 0.5, learn_alpha: bool = False):
        super().__init__()
        if mode not in ROUTER_MODES:
            raise ValueError(f"router mode {mode!r} not in {ROUTER_MODES}")
        self.mode = mode
        # Only the weights a mode uses exist: no unused parameters (DDP would complain about them).
        self.w_motion = nn.Linear(d, n_experts, bias=False) if mode != "text" else None
        self.w_text = nn.Linear(d_cond, n_experts, bias=False) if mode != "motion" else None
        for lin in (self.w_motion, self.w_text):
            if lin is not None:
                nn.init.normal_(lin.weight, std=0.01)  # small: routing starts close to uniform
        self.learn_alpha = learn_alpha and mode == "synergistic"
        if self.learn_alpha:
            self.alpha_logit = nn.Parameter(torch.tensor(math.log(alpha / (1 - alpha))))
        else:
            self.register_buffer("alpha_value", torch.tensor(float(alpha)), persistent=False)

    @property
    def alpha(self) -> torch.Tensor:
        """The fusion weight alpha (a 0-d tensor)."""
        return torch.sigmoid(self.alpha_logit) if self.learn_alpha else self.alpha_value

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """h: (N, T, d) residual stream, emb: (N, d_cond) -> R_comb: (N, T, E).

        Computed in float32 (float64 if the input is) with autocast off: the gate compares sigmoid(R) with
        a bias moved by steps of 1e-3, finer than bfloat16 resolves near 0.5.
        """
        dtype = torch.promote_types(h.dtype, torch.float32)
        with torch.autocast(h.device.type, enabled=False):
            if self.mode == "text":
                r_text = F.linear(emb.to(dtype), self.w_text.weight.to(dtype))  # (N, E)
                return r_text[:, None, :].expand(-1, h.shape[1], -1)  # (N, T, E)
            r_motion = F.linear(h.to(dtype), self.w_motion.weight.to(dtype))  # (N, T, E)
            if self.mode == "motion":
                return r_motion
            r_text = F.linear(emb.to(dtype), self.w_text.weight.to(dtype))  # (N, E)
            alpha = self.alpha.to(dtype)
            return alpha * r_motion + (1 - alpha) * r_text[:, None, :]  # (N, T, E)


# =====================================================================================================
# c. The InterMoE block: Dynamic Temporal Selection
# =====================================================================================================

BIAS_EPS = 1e-4  # the biases are clamped to [-1 + BIAS_EPS, -BIAS_EPS], strictly inside (-1, 0)


@dataclass
class MoEConfig:
    """The InterMoE block's own settings (its width and condition width come from the denoiser)."""
    n_experts: int = 8             # E, the paper's value
    d_expert: int = 1024           # SwiGLU hidden size of each expert (paper: 768 -> 1024 -> 768)
    capacity: float = 1.0          # expected experts per token: k = capacity * S / E tokens per expert
    router_mode: str = "synergistic"  # 'synergistic' | 'motion' | 'text' (router ablations)
    alpha: float = 0.5             # R_comb = alpha * R_motion + (1 - alpha) * R_text, paper: 0.5 fixed
    learn_alpha: bool = False      # True: alpha = sigmoid(learnable a), starting at `alpha`
    routing: str = "batch"         # 'batch': one token pool for the whole batch (paper) | 'sample' (ablation)
    selection: str = "dynamic"     # 'dynamic': sigmoid(R) + b_e > 0 (paper) | 'topk': fixed top-k (ablation)
    bias_init: float = -0.5        # b_e at the start, the paper's value
    bias_step: float = 1e-3        # b_e -= bias_step * sign(count_e - k) per update, the authors' value

    def __post_init__(self):
        if self.routing not in ("batch", "sample"):
            raise ValueError(f"routing must be 'batch' or 'sample', not {self.routing!r}")
        if self.selection not in ("dynamic", "topk"):
            raise ValueError(f"selection must be 'dynamic' or 'topk', not {self.selection!r}")
        if self.selection == "topk":
            if self.routing == "sample":
                raise ValueError("top-k is token choice: each token picks alone, there is no pool to make "
                                 "per-sample; use routing='batch' (it only sets how the biases are counted)")
            if self.capacity != int(self.capacity) or not 1 <= self.capacity <= self.n_experts:
                raise ValueError("selection='topk' needs an integer capacity in [1, n_experts]")


class InterMoE(nn.Module):
    """The InterMoE block: Synergistic Router + Dynamic Temporal Selection + E SwiGLU experts.

    forward(h, emb, mask, n_persons) -> y, the update the caller adds to the residual stream h:
        y_s = sum over selected e of softmax_e(R_comb[s])_e * Expert_e(AdaLN(h_s, emb))      (paper)
    The softmax runs over all E experts and is not renormalised over the selected ones. A token that
    selects no expert gets y_s = 0: it passes through on the residual only.

    Selection (`selection`, `routing`):
      'dynamic' + 'batch' (paper): gate M[s, e] = sigmoid(R_comb[s, e]) + b_e; expert e takes token s iff
          M > 0 and s is a real frame. Each token goes to 0..E experts, each expert takes as many tokens as
          pass its gate. The pool is every real token the block sees in one call; the denoiser calls it
          once per layer with both people stacked, so the pool is all frames of both people of all samples
          (the paper's batch-level pool; the authors' code pools each person separately).
      'dynamic' + 'sample' (ablation "w/o batch-level routing"): each sample is its own pool with its
          own capacity k_i = round(capacity * S_i / E) per expert, S_i its real frames (both people):
          expert e takes the k_i tokens of sample i with the highest sigmoid(R_comb) (expert choice
          inside the sample, as DiffMoE's sample-level pool). A per-sample threshold is exactly what a
          per-sample bias would have to be, computed on the spot; it cannot persist across batches, so
          b_e is not used (or updated) in this mode. Every sample then gets the same compute per frame;
          the batch pool instead lets hard samples (or noise levels) take more experts than easy ones.
      'topk' (ablation "w/o dynamic selection"): each token takes exactly `capacity` experts, the ones
          with the largest M[s, e]. The bias b_e only shifts an expert's ranking and keeps the load
          balanced (as DeepSeek-V3's auxiliary-loss-free balancing); without it top-k collapses, and
          there is no auxiliary loss here.

    The bias b_e (buffer `expert_bias`, no gradient): a training forward adds its per-expert selection
    counts and its number of real tokens S to a running tally; `update_bias()` then applies
        b_e -= bias_step * sign(count_e - k),   k = capacity * S / E
    and clamps b_e to [-1 + BIAS_EPS, -BIAS_EPS] (the paper says b_e lies in (-1, 0); the authors' code
    does not clamp). Call it once per optimiser step, after the backward: the training loop owns the
    moment, several forwards (gradient accumulation) count as one pool, and evaluation forwards never
    move the biases. The authors instead apply the previous step's sign at the start of the next
    training forward. Under torch.distributed the tally is all-reduced first, so every rank takes the
    same decision from the global batch and the biases stay identical (the authors' ranks drift apart).
    A limit of a bias in (-1, 0): if more than k tokens have sigmoid(R) > 1 - BIAS_EPS for one expert,
    no bias can hold that expert back; only the router's training can.

    Sparse dispatch: each expert runs only on the rows it selected (gather, run, index_add back), so the
    cost grows with the number of selections, not with experts x tokens. Every expert runs even on an
    empty slab, which keeps all parameters in the graph (DDP needs no find_unused_parameters).
    On CUDA, index_add_ sums with atomics, so the last bits of y may vary from run to run.

    Stats of the last forward, for notebooks: last_selection (N, T, E) bool, last_counts (E,),
    last_tokens (S), last_experts_per_token; `stats()` returns them with the biases and the target k.
    """

    def __init__(self, d: int, d_cond: int, cfg: MoEConfig):
        super().__init__()
        self.cfg = cfg
        self.n_experts = cfg.n_experts
        self.norm = AdaLN(d, d_cond)
        self.router = SynergisticRouter(d, d_cond, cfg.n_experts, cfg.router_mode, cfg.alpha, cfg.learn_alpha)
        self.experts = nn.ModuleList(SwiGLU(d, cfg.d_expert) for _ in range(cfg.n_experts))
        self.register_buffer("expert_bias", torch.full((cfg.n_experts,), float(cfg.bias_init)))
        # Running tally since the last update_bias(): counts per expert, then S. Not saved with the model.
        self._tally: torch.Tensor | None = None
        self.last_selection = self.last_counts = self._last_S = None

    @property
    def uses_bias(self) -> bool:
        """Whether b_e takes part in selection (and is updated): not for the per-sample ablation."""
        return self.cfg.routing == "batch"

    # ---- routing ---------------------------------------------------------------------------------
    def route(self, h, emb, mask, n_persons: int = 1):
        """Who goes where. h: (N, T, d), emb: (N, d_cond), mask: (N, T) bool, N = n_persons * B with the
        rows person-major ([person a of samples 0..B-1; person b of samples 0..B-1]).

        Returns (logits, selection, weights): R_comb (N, T, E), selection (N, T, E) bool,
        weights = softmax over experts of R_comb (N, T, E). Pure: records nothing.
        """
        E, cfg = self.n_experts, self.cfg
        logits = self.router(h, emb)  # (N, T, E)
        prob = torch.sigmoid(logits)  # (N, T, E)
        valid = mask[..., None]  # (N, T, 1)
        if cfg.selection == "topk":
            gate = prob + self.expert_bias.to(prob.dtype)  # (N, T, E): M, the bias only for balance
            top = gate.topk(int(cfg.capacity), dim=-1).indices  # (N, T, c)
            sel = torch.zeros_like(gate, dtype=torch.bool).scatter_(-1, top, True)  # (N, T, E)
        elif cfg.routing == "batch":
            gate = prob + self.expert_bias.to(prob.dtype)  # (N, T, E): M[s, e] = sigmoid(R_comb) + b_e
            sel = gate > 0  # (N, T, E)
        else:  # per-sample expert choice: expert e takes the k_i best real tokens of sample i
            pooled = rearrange(prob.masked_fill(~valid, -1.0), "(p b) t e -> b (p t) e", p=n_persons)  # (B, P*T, E)
            order = pooled.argsort(dim=1, descending=True, stable=True)  # (B, P*T, E)
            positions = torch.arange(order.shape[1], device=order.device)[None, :, None].expand_as(order)
            ranks = torch.empty_like(order).scatter_(1, order, positions)  # (B, P*T, E): 0 = best in sample
            n_valid = rearrange(mask, "(p b) t -> b (p t)", p=n_persons).sum(1)  # (B,) S_i
            k_i = torch.round(cfg.capacity * n_valid / E).clamp(max=n_valid)  # (B,)
            sel = rearrange(ranks < k_i[:, None, None], "b (p t) e -> (p b) t e", p=n_persons)  # (N, T, E)
        sel = sel & valid  # padding frames select nothing
        weights = torch.softmax(logits, dim=-1)  # (N, T, E)
        return logits, sel, weights

    # ---- forward: route, dispatch sparsely, combine -----------------------------------------------
    def forward(self, h, emb, mask=None, n_persons: int = 1):
        """h: (N, T, d), emb: (N, d_cond), mask: (N, T) bool or None -> y: (N, T, d), zero where no expert."""
        N, T, D = h.shape
        if mask is None:
            mask = torch.ones(N, T, dtype=torch.bool, device=h.device)
        _, sel, weights = self.route(h, emb, mask, n_persons)
        x = rearrange(self.norm(h, emb), "n t d -> (n t) d")  # (S_all, D): all N*T token slots
        sel_flat = rearrange(sel, "n t e -> (n t) e")  # (S_all, E)
        # Every selected (expert, token) pair, sorted by expert, then cut into one run per expert.
        expert_idx, token_idx = sel_flat.T.nonzero(as_tuple=True)  # (K,), (K,)
        gate = rearrange(weights, "n t e -> (n t) e")[token_idx, expert_idx]  # (K,): softmax weight of each pair
        counts = sel_flat.sum(0)  # (E,)
        sizes = counts.tolist()  # one device sync per layer, for the slab sizes
        y = torch.zeros_like(x)  # (S_all, D)
        for expert, idx, g in zip(self.experts, token_idx.split(sizes), gate.split(sizes)):
            out = expert(x[idx])  # (n_e, D): the expert runs on its own tokens only
            y.index_add_(0, idx, (out * g[:, None].to(out.dtype)).to(y.dtype))  # scatter back, weighted
        self._record(sel, counts, mask)
        return rearrange(y, "(n t) d -> n t d", n=N)  # (N, T, D)

    # ---- bookkeeping: stats and the bias rule ------------------------------------------------------
    @torch.no_grad()
    def _record(self, sel, counts, mask):
        """Keep the last routing for stats (as tensors: no device sync) and add to the training tally."""
        S = mask.sum()
        self.last_selection, self.last_counts, self._last_S = sel.detach(), counts.detach(), S
        if self.training and self.uses_bias:
            tally = torch.cat([counts.to(torch.float64), S.to(torch.float64)[None]])  # (E + 1,)
            self._tally = tally if self._tally is None else self._tally + tally

    @property
    def last_tokens(self) -> int | None:
        """S, the number of real tokens in the last forward's pool."""
        return None if self._last_S is None else int(self._last_S)

    @property
    def last_experts_per_token(self) -> float:
        """Selections per real token in the last forward (1.0 on average is the capacity-1 target)."""
        return float("nan") if self._last_S is None else float(self.last_counts.sum()) / max(self.last_tokens, 1)

    def pending_tally(self) -> torch.Tensor:
        """Counts per expert and S summed since the last update, (E + 1,) float64 (zeros if none)."""
        if self._tally is None:
            return torch.zeros(self.n_experts + 1, dtype=torch.float64, device=self.expert_bias.device)
        return self._tally

    @torch.no_grad()
    def apply_tally(self, tally: torch.Tensor) -> None:
        """The bias rule on a (possibly all-reduced) tally: b_e -= step * sign(count_e - k), then clamp."""
        self._tally = None
        if not self.uses_bias:
            return
        counts, S = tally[:-1], tally[-1]
        k = self.cfg.capacity * S / self.n_experts  # expected selections per expert
        step = self.cfg.bias_step * torch.sign(counts - k)  # (E,), 0 where exactly on target
        self.expert_bias.sub_(step.to(self.expert_bias.dtype)).clamp_(-1 + BIAS_EPS, -BIAS_EPS)

    @torch.no_grad()
    def update_bias(self) -> None:
        """Apply the bias rule to the tally of the training forwards since the last call.

        Call after backward (once per optimiser step). With torch.distributed initialised, every rank must
        call it (it all-reduces the tally); the denoiser's update_biases() does all layers in one go.
        Only the sign of count_e - k matters and k grows with S, so a forward counted twice (activation
        checkpointing re-runs it) does not change the decision.
        """
        tally = self.pending_tally().clone()
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(tally)
        self.apply_tally(tally)

    def stats(self) -> dict:
        """Last forward's routing, for notebooks: counts (E,), tokens S, target k, experts per token, biases."""
        k = self.cfg.capacity * (self.last_tokens or 0) / self.n_experts
        return dict(counts=self.last_counts, tokens=self.last_tokens, target=k,
                    experts_per_token=self.last_experts_per_token, bias=self.expert_bias.detach().clone(),
                    selection=self.last_selection)


@torch.no_grad()
def dense_reference(moe: InterMoE, h, emb, mask=None, n_persons: int = 1) -> torch.Tensor:
    """For tests: the same output as moe(h, emb, mask) computed densely, every expert on every token,
    then masked by the selection. Costs E times a dense FFN; records nothing."""
    N, T, D = h.shape
    if mask is None:
        mask = torch.ones(N, T, dtype=torch.bool, device=h.device)
    _, sel, weights = moe.route(h, emb, mask, n_persons)
    x = moe.norm(h, emb)  # (N, T, D)
    all_out = torch.stack([expert(x) for expert in moe.experts], dim=-2)  # (N, T, E, D)
    w = (weights * sel).to(all_out.dtype)  # (N, T, E): zero where not selected
    return (w[..., None] * all_out).sum(dim=-2)  # (N, T, D)


class AdaLNFFN(nn.Module):
    """The baseline (InterGen + CS-VAE row of the ablation table): AdaLN and one dense SwiGLU FFN where the
    InterMoE block would be. Same call signature as InterMoE so the denoiser can swap them."""

    def __init__(self, d: int, d_cond: int, d_hidden: int):
        super().__init__()
        self.norm = AdaLN(d, d_cond)
        self.ffn = SwiGLU(d, d_hidden)

    def forward(self, h, emb, mask=None, n_persons: int = 1):
        """h: (N, T, d), emb: (N, d_cond) -> (N, T, d); mask and n_persons are unused."""
        return self.ffn(self.norm(h, emb))


# =====================================================================================================
# d. The Cooperative Denoiser
# =====================================================================================================


@dataclass
class DenoiserConfig:
    """Sizes and switches of the Cooperative MoE Denoiser. Defaults are the paper's (229.15 M parameters)."""
    d_latent: int = 448            # VAE latent per frame: 7 body-part tokens x 64
    d_text: int = 768              # sentence embedding from the text encoder (CLIP ViT-L/14 width in the paper)
    width: int = 768               # d, the transformer width; also the width of the condition emb
    n_layers: int = 8              # the paper's 8 cooperative layers
    n_heads: int = 8               # attention heads (96 channels each at width 768)
    dropout: float = 0.1           # on the attention weights, as the authors' code
    zero_attn: bool = True         # an extra all-zero key/value in attention (authors' add_zero_attn)
    ffn_type: str = "moe"          # 'moe': InterMoE block | 'ffn': one dense AdaLN SwiGLU (ablation baseline)
    d_ffn: int = 1024              # hidden size of the 'ffn' baseline: one expert's size, same compute per token
    moe: MoEConfig = field(default_factory=MoEConfig)  # the InterMoE block's switches (router, routing, ...)

    def __post_init__(self):
        if self.ffn_type not in ("moe", "ffn"):
            raise ValueError(f"ffn_type must be 'moe' or 'ffn', not {self.ffn_type!r}")
        if self.width % self.n_heads:
            raise ValueError("width must be a multiple of n_heads")


def denoiser_preset(name: str, **overrides) -> DenoiserConfig:
    """Named sizes: 'paper' (229 M, 8 x 768), 'lab' (one lab GPU, 384 wide), 'tiny' (laptop CPU).

    overrides replace DenoiserConfig fields, e.g. denoiser_preset('tiny', ffn_type='ffn').
    """
    presets = {
        "paper": DenoiserConfig(),
        "lab": DenoiserConfig(width=384, n_layers=6, n_heads=6, d_ffn=512, moe=MoEConfig(d_expert=512)),
        "tiny": DenoiserConfig(width=128, n_layers=4, n_heads=4, d_ffn=176, moe=MoEConfig(d_expert=176)),
    }
    return replace(presets[name], **overrides)


class CooperativeBlock(nn.Module):
    """One layer of the Cooperative Denoiser, applied to one person with the partner as context:
    h += SelfAttn(AdaLN(h)); h += CrossAttn(AdaLN(h), AdaLN(other)); h += InterMoE(h) (or the FFN)."""

    def __init__(self, cfg: DenoiserConfig):
        super().__init__()
        d = cfg.width
        self.self_attn = SelfAttention(d, cfg.n_heads, d, cfg.dropout, cfg.zero_attn)
        self.cross_attn = CrossAttention(d, cfg.n_heads, d, cfg.dropout, cfg.zero_attn)
        self.ffn = InterMoE(d, d, cfg.moe) if cfg.ffn_type == "moe" else AdaLNFFN(d, d, cfg.d_ffn)

    def forward(self, h, other, emb, mask, n_persons: int = 1):
        """h, other: (N, T, d), emb: (N, d), mask: (N, T) bool -> (N, T, d)."""
        h = h + self.self_attn(h, emb, mask)
        h = h + self.cross_attn(h, other, emb, mask)
        return h + self.ffn(h, emb, mask, n_persons)


class CooperativeDenoiser(nn.Module):
    """Two weight-sharing denoisers, one per person, talking through cross-attention (paper: Cooperative
    MoE Denoiser). Predicts each person's clean VAE latent from its noisy latent.

    Layer i, from the previous layer's states:  h_a <- block(h_a, h_b),  h_b <- block(h_b, h_a).
    Both people run through a block in one call, stacked along the batch ([a; b], person-major), so one
    InterMoE call sees every token of the batch (the paper's batch-level pool) and the model is exactly
    symmetric: swapping the people swaps the outputs.

    Layout matched to the authors' code (so the paper preset has their 229.15 M parameters): input Linear
    448 -> d; sinusoidal frame positions added; emb = TimestepMLP(sinusoids(t)) + Linear(text) (that text
    Linear d_text -> d belongs to the denoiser, as in InterGen and InterMoE); per block AdaLN self-attention
    (qkv + out projections, with biases), cross-attention with separate AdaLNs for queries and keys/values,
    InterMoE with its own AdaLN, two router matrices and 8 bias-free SwiGLU experts; final Linear d -> 448,
    zero-initialised (the untrained model predicts zeros).
    """

    def __init__(self, cfg: DenoiserConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg if cfg is not None else DenoiserConfig()
        d = cfg.width
        self.inp = nn.Linear(cfg.d_latent, d)
        self.time_embed = TimestepEmbedding(d)
        self.text_proj = nn.Linear(cfg.d_text, d)
        self.blocks = nn.ModuleList(CooperativeBlock(cfg) for _ in range(cfg.n_layers))
        self.out = nn.Linear(d, cfg.d_latent)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def condition(self, t: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        """emb = timestep embedding + projected text embedding. t: (B,), text_emb: (B, d_text) -> (B, d)."""
        return self.time_embed(t) + self.text_proj(text_emb)

    def forward(self, x_a, x_b, t, text_emb, mask=None):
        """x_a, x_b: (B, T', d_latent) noisy latents of the two people; t: (B,) diffusion steps;
        text_emb: (B, d_text); mask: (B, T') bool, True = real frame (None: all real).
        Returns (out_a, out_b), each (B, T', d_latent): the predicted clean latents (x0)."""
        B, T, _ = x_a.shape
        if mask is None:
            mask = torch.ones(B, T, dtype=torch.bool, device=x_a.device)
        emb = self.condition(t, text_emb).repeat(2, 1)  # (2B, d): the same condition for both people
        mask2 = mask.repeat(2, 1)  # (2B, T)
        x = torch.cat([x_a, x_b], dim=0)  # (2B, T, d_latent): [person a; person b]
        pos = sinusoidal_embedding(torch.arange(T, device=x.device), self.cfg.width)  # (T, d)
        h = self.inp(x) + pos.to(x.dtype)  # (2B, T, d)
        for block in self.blocks:
            other = torch.cat([h[B:], h[:B]], dim=0)  # (2B, T, d): row i holds its partner's state
            h = block(h, other, emb, mask2, n_persons=2)
        out = self.out(h)  # (2B, T, d_latent)
        return out[:B], out[B:]

    # ---- the MoE bias rule and stats, for the training loop and notebooks --------------------------
    def moe_blocks(self) -> list[InterMoE]:
        """The InterMoE block of every layer (empty for ffn_type='ffn')."""
        return [blk.ffn for blk in self.blocks if isinstance(blk.ffn, InterMoE)]

    @torch.no_grad()
    def update_biases(self) -> None:
        """Apply every layer's bias rule; call once per optimiser step, after backward.

        One all-reduce for all layers under torch.distributed (every rank must call this)."""
        moes = self.moe_blocks()
        if not moes:
            return
        tally = torch.stack([m.pending_tally() for m in moes])  # (L, E + 1)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(tally)
        for m, row in zip(moes, tally):
            m.apply_tally(row)

    def moe_stats(self) -> list[dict]:
        """Per layer, the last forward's routing: counts, tokens, target k, experts per token, biases."""
        return [m.stats() for m in self.moe_blocks()]
