"""intermoe_tools.evaluation: judging the motion intermoe_min makes.

The evaluator (InterGen's protocol, tr3e/InterGen's tools/eval.py), InterGen's metrics, identity (roles,
homogenisation) and physics measures, `evaluate` (every metric, repeated with fresh generations) and
`run_evaluation` (the `evaluate` command's results table). Written for this project from the InterMoE and
InterGen papers' descriptions.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

import intermoe_min as im
import intersynth
from intermoe_min import (DataError, FEATURE_SLICES, FEAT_DIM, FOOT_JOINTS, InterMoE,
                          InteractionDataset, JOINT_NAMES, MAX_FRAMES, MIN_FRAMES, N_JOINTS, Normalizer, SMPL_PARENTS,
                          TextConfig, TextEncoder, Vocab, caption_initiator, collate, facing_yaw, foot_contacts,
                          joints_from_features, sinusoidal_embedding, train_loop, yaw_matrix)
from intermoe_tools import pipeline
from intermoe_tools.devices import pick_device
from intermoe_tools.files import Checkpointable, atomic_write, remove_stale_temps, tensor_digest
from intermoe_tools.physics import CAPSULES, TOUCH_RE, WRISTS, capsule_overlap, segment_distance
from intermoe_tools.export import _write_text


# The paper's claims are numbers, so the numbers must be reproducible (InterGen's tools/eval.py; docs/results.md):
#   2.1 The evaluator (InterGen's "InterCLIP"): a text encoder and a two-person motion encoder trained
#        contrastively on the training split. Every InterGen metric is a distance in its embedding space.
#   2.2 InterGen's metrics: FID, R-Precision, MM-Dist, Diversity, MultiModality, mean +- 95% interval.
#   2.3 Identity (new): does each person keep the role the caption gives it, and do the two people stay
#        different from each other? A role classifier trained on ground truth judges the first.
#   2.4 Physics: foot sliding, floor penetration, interpenetration of the two bodies, hand contact.
#   2.5 `evaluate(model, records, evaluator, ...)`: all of the above, repeated with fresh generations;
#        `evaluate(None, ...)` gives the real-vs-real row.
# Motion comes in as InterHuman features, (2, T, 262) per clip, de-normalised: what
# InteractionDataset.features returns and what InterMoE.sample(..., return_features=True) returns.

# ---- 2.1 The evaluator ------------------------------------------------------------------------------

EMBED_SCALE = 6.0  # InterGen's embeddings are unit vectors times a learnt scale (about 6 once trained, the
                   # learnt latent_scale of datasets/evaluator_models.py). We fix it at 6, so FID, MM-Dist, Diversity and MultiModality come
                   # out on InterGen's numeric scale. R-Precision does not depend on it.
MOTION_IN = FEATURE_SLICES["contacts"].start  # 258: a person's feature without its 4 foot-contact bits


@dataclass
class EvaluatorConfig:
    """Sizes and training of the evaluator; the role classifier (11.3) reuses the motion branch and this config."""
    d_model: int = 128     # token width of both transformers (InterGen: 768 text, 1024 motion; ours trains on a CPU)
    n_layers: int = 2      # transformer layers per branch (InterGen: 8)
    n_heads: int = 4       # attention heads, 32 channels each
    dropout: float = 0.1
    patch: int = 8         # frames per motion token: 300 frames -> 38 tokens. Nothing is dropped (8 frames of
                           # 2 x 258 values are concatenated into one token); 4 was no better for 2x the time
    d_embed: int = 64      # embedding width (InterGen: 512). FID estimates a d_embed x d_embed covariance
                           # from a few hundred test clips; a small embedding keeps that estimate meaningful
    max_frames: int = MAX_FRAMES  # longest motion it reads
    steps: int = 600       # training steps: ~2-3 min on one CPU thread (InterSynth's 2400 training clips)
    batch: int = 32        # pairs per InfoNCE batch: 31 negatives for every positive (64: no better, 2x slower)
    lr: float = 2e-3
    weight_decay: float = 1e-2
    warmup: int = 60


def _motion_input(features, lengths, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Check and convert a motion batch: features (B, 2, T, 262) numpy or torch, lengths (B,) in 1..T."""
    x = torch.as_tensor(features, dtype=torch.float32, device=device)
    if x.ndim != 4 or x.shape[1] != 2 or x.shape[-1] != FEAT_DIM:
        raise ValueError(f"expected features of shape (B, 2, T, {FEAT_DIM}): both people's de-normalised "
                         f"features, got {tuple(x.shape)}")
    n = torch.as_tensor(lengths, device=device).long().reshape(-1)
    if n.shape[0] != x.shape[0] or bool((n < 1).any()) or bool((n > x.shape[2]).any()):
        raise ValueError(f"expected {x.shape[0]} lengths in 1..{x.shape[2]} (frames of each clip), got {n.tolist()}")
    return x, n


class MotionEncoder(nn.Module):
    """Two people's motion -> one vector: InterGen's evaluator motion branch (datasets/evaluator_models.py).

    features (B, 2, T, 262) de-normalised, lengths (B,) -> (B, d_out). The features are normalised with
    the encoder's own statistics and lose the foot contacts (2 x 258 values per frame); every `patch`
    frames become one token (Linear); a learnable query token goes first, sinusoidal positions are added;
    a transformer (padding masked) -> LayerNorm -> the query token's feature -> Linear.
    """

    def __init__(self, cfg: EvaluatorConfig, normalizer: Normalizer, d_out: int):
        super().__init__()
        self.normalizer, self.patch, self.max_frames = normalizer, cfg.patch, cfg.max_frames
        self.embed = nn.Linear(cfg.patch * 2 * MOTION_IN, cfg.d_model)
        self.query = nn.Parameter(0.02 * torch.randn(cfg.d_model))
        n_tokens = 1 + math.ceil(cfg.max_frames / cfg.patch)
        self.register_buffer("positions", sinusoidal_embedding(torch.arange(n_tokens), cfg.d_model),
                             persistent=False)
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, 4 * cfg.d_model, cfg.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.out = nn.Linear(cfg.d_model, d_out)

    def forward(self, features, lengths) -> torch.Tensor:
        x, lengths = _motion_input(features, lengths, self.out.weight.device)
        B, P, T, _ = x.shape  # batch, people, frames, 262
        if T > self.max_frames:
            raise ValueError(f"motion of {T} frames is longer than this encoder reads ({self.max_frames})")
        k = self.patch
        N = math.ceil(T / k)  # tokens
        x = F.pad(x, (0, 0, 0, N * k - T))  # (B, 2, N*k, 262)
        mask = torch.arange(N * k, device=x.device)[None] < lengths[:, None]  # (B, N*k) real frames
        x = self.normalizer.normalise(x)[..., :MOTION_IN] * mask[:, None, :, None]  # (B, 2, N*k, 258), padding 0
        x = rearrange(x, "b p (n k) f -> b n (k p f)", k=k)  # (B, N, k*2*258): one token per k frames
        h = torch.cat([self.query.expand(B, 1, -1), self.embed(x)], 1) + self.positions[:N + 1]  # (B, 1+N, d)
        keep = torch.cat([torch.ones(B, 1, dtype=torch.bool, device=x.device), mask[:, ::k]], 1)  # (B, 1+N)
        h = self.norm(self.transformer(h, src_key_padding_mask=~keep))  # (B, 1+N, d)
        return self.out(h[:, 0])  # (B, d_out): the query token's feature


class Evaluator(Checkpointable, nn.Module):
    """InterGen's evaluator ("InterCLIP"): captions and two-person motions -> points of one embedding space.

    motion: MotionEncoder -> L2-normalised;  text: TextEncoder (intermoe_min section 4: words -> transformer -> <eos>
    token -> Linear) -> L2-normalised; both scaled by EMBED_SCALE. Trained with symmetric InfoNCE and a
    learnable temperature (CLIP, Radford et al. 2021); a matching caption and motion end up close.

        ev = Evaluator(EvaluatorConfig(), vocab, normalizer)
        t = ev.encode_text(["two people hug"])           # (1, d_embed)
        m = ev.encode_motion(features, lengths)          # (B, d_embed), features (B, 2, T, 262)
    """
    KINDS, STORED = ("evaluator",), {"vocab": Vocab, "normalizer": Normalizer}
    config_from_dict = staticmethod(lambda d: EvaluatorConfig(**d))

    def __init__(self, cfg: EvaluatorConfig, vocab: Vocab, normalizer: Normalizer):
        super().__init__()
        self.cfg, self.vocab, self.normalizer = cfg, vocab, normalizer
        self.motion = MotionEncoder(cfg, normalizer, cfg.d_embed)
        self.text = TextEncoder(vocab, TextConfig(d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads,
                                                  dropout=cfg.dropout, d_cond=cfg.d_embed))
        self.log_inv_temperature = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # CLIP's starting 0.07

    def forward(self, features, lengths, captions: list[str]):
        """Symmetric InfoNCE on B matching (motion, caption) pairs: cross-entropy of each motion against all
        B captions and of each caption against all B motions, the diagonal being right (CLIP, Fig. 3).
        Returns (loss, logs)."""
        m = F.normalize(self.motion(features, lengths), dim=-1)  # (B, d_embed)
        t = F.normalize(self.text(list(captions))[0], dim=-1)   # (B, d_embed)
        scale = self.log_inv_temperature.clamp(max=math.log(100.0)).exp()  # 1 / temperature, at most 100 (CLIP)
        logits = scale * m @ t.T  # (B, B) motion i against caption j
        target = torch.arange(len(logits), device=logits.device)
        loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
        return loss, {"acc": (logits.argmax(1) == target).float().mean(), "temperature": 1 / scale.detach()}

    @torch.no_grad()
    def encode_text(self, captions: list[str]) -> torch.Tensor:
        """B captions -> (B, d_embed) embeddings of norm EMBED_SCALE."""
        return EMBED_SCALE * F.normalize(self.text(list(captions))[0], dim=-1)

    @torch.no_grad()
    def encode_motion(self, features, lengths) -> torch.Tensor:
        """features (B, 2, T, 262) de-normalised, lengths (B,) -> (B, d_embed) embeddings of norm EMBED_SCALE."""
        return EMBED_SCALE * F.normalize(self.motion(features, lengths), dim=-1)


def _train(cls, build, loss_fn, data, collate_fn, steps, batch, seed, ckpt_path, progress, device):
    """Build an evaluation network (`build()`), or read it from ckpt_path, and train it with train_loop, which
    resumes an interrupted run and just reads a finished one. Returns (network in eval mode, loss history)."""
    if ckpt_path and os.path.isfile(ckpt_path):
        net = cls.load(ckpt_path, device="cpu").train()  # the checkpoint's config and statistics win
    else:
        torch.manual_seed(seed)
        net = build()
    cfg = net.cfg
    steps = cfg.steps if steps is None else steps
    history = train_loop(net, loss_fn, data, collate_fn, steps=steps,
                         batch_size=min(cfg.batch if batch is None else batch, len(data)), lr=cfg.lr,
                         weight_decay=cfg.weight_decay, warmup=max(1, min(cfg.warmup, steps // 10)), grad_clip=1.0,
                         ckpt_path=ckpt_path, ckpt_every=200, seed=seed, kind=cls.KINDS[0],
                         extra_state=net.checkpoint_state, device=device, progress=progress)
    return net.eval(), history


def train_evaluator(train_records: list[dict], val_records: list[dict] | None = None,
                    cfg: EvaluatorConfig | None = None, steps: int | None = None, batch: int | None = None,
                    seed: int = 0, ckpt_path: str | None = None, progress: bool = True, device=None,
                    normalizer: Normalizer | None = None):
    """Train the evaluator on ground-truth clips; returns (evaluator, report).

    Each step draws `batch` clips, each with one of its captions, person-swapped and mirrored at random with
    the caption following (InteractionDataset). With ckpt_path the run is cached: a finished checkpoint is
    just read, an interrupted one resumes (the checkpoint's own config, vocabulary and statistics win).
    report: 'seconds', 'history' (losses), and with val_records the evaluator's own retrieval accuracy on
    them (`retrieval_accuracy`), the real-data level generated clips are compared with.
    normalizer: statistics of the training clips' features, fitted here if not given (~30 s for 2400 clips);
    InterMoE's own (model.normalizer, built from the same clips) is the same thing.
    """
    t0 = time.time()
    data = InteractionDataset(train_records, train=True, seed=seed)  # no normaliser: features stay de-normalised

    def build():
        return Evaluator(cfg or EvaluatorConfig(), Vocab.for_records(data.records), normalizer or data.fit_normalizer())

    def loss_fn(net, b, dev):
        return net(b["motion"].to(dev), b["lengths"].to(dev), b["captions"])

    evaluator, history = _train(Evaluator, build, loss_fn, data, collate, steps, batch, seed, ckpt_path,
                                progress, device)
    report = {"seconds": round(time.time() - t0, 1), "history": history}
    if val_records:
        report.update(retrieval_accuracy(evaluator, val_records, seed=seed))
    return evaluator, report


# ---- 2.2 InterGen's metrics ---------------------------------------------------------------------------
# All on embeddings from Evaluator.encode_* (norm EMBED_SCALE = 6, InterGen's scale), numpy (N, D) arrays.

def _emb(x, name: str) -> np.ndarray:
    a = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    if a.ndim != 2 or not np.isfinite(a).all():
        raise ValueError(f"{name}: expected a finite (N, D) array of embeddings, got shape {a.shape}")
    return a


def frechet_distance_from_stats(mu1, cov1, mu2, cov2) -> float:
    """Frechet distance between N(mu1, S1) and N(mu2, S2) (Dowson & Landau 1982; FID, Heusel et al. 2017):

        d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^1/2)

    tr((S1 S2)^1/2) is computed as tr((S1^1/2 S2 S1^1/2)^1/2): S1 S2 and S1^1/2 S2 S1^1/2 are similar (same
    eigenvalues) and the second is symmetric positive semi-definite, so two symmetric eigendecompositions
    suffice, in float64. Nothing is inverted: a near-singular covariance (fewer samples than dimensions)
    simply has zero eigenvalues; negative round-off eigenvalues are clipped to 0, and so is the result.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    D = mu1.shape[0]
    if mu1.shape != (D,) or mu2.shape != (D,) or cov1.shape != (D, D) or cov2.shape != (D, D):
        raise ValueError(f"frechet_distance: means (D,) and covariances (D, D) must agree, got "
                         f"{mu1.shape}, {cov1.shape}, {mu2.shape}, {cov2.shape}")
    w, V = np.linalg.eigh(cov1)
    root1 = (V * np.sqrt(np.clip(w, 0, None))) @ V.T  # S1^1/2
    M = root1 @ cov2 @ root1
    tr_root = np.sqrt(np.clip(np.linalg.eigvalsh(0.5 * (M + M.T)), 0, None)).sum()  # tr((S1 S2)^1/2)
    return max(0.0, float(((mu1 - mu2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2 * tr_root))


def frechet_distance(feats_a, feats_b) -> float:
    """FID between two sets of embeddings, (N, D) and (M, D): each set's mean and covariance (N - 1 in the
    denominator, as InterGen's np.cov), then `frechet_distance_from_stats`. Identical sets give 0."""
    a, b = _emb(feats_a, "frechet_distance feats_a"), _emb(feats_b, "frechet_distance feats_b")
    if a.shape[1] != b.shape[1] or len(a) < 2 or len(b) < 2:
        raise ValueError(f"frechet_distance: need two sets of at least 2 embeddings of the same width, "
                         f"got {a.shape} and {b.shape}")
    return frechet_distance_from_stats(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, D), (M, D) -> (N, M) Euclidean distances."""
    return np.linalg.norm(a[:, None] - b[None], axis=-1)


def r_precision(text_emb, motion_emb, batch: int = 96, top_k: int = 3, rng=None) -> np.ndarray:
    """R-Precision top-1..top_k (InterGen's protocol): pairs (text i, motion i) are shuffled into batches of
    `batch`; within a batch each text ranks the batch's motions by Euclidean distance, and top-k is the share
    of texts whose own motion is among the k nearest. The last incomplete batch is left out (InterGen's
    loader drops it); fewer pairs than `batch` make one batch of all of them. Chance: k / batch.
    A motion exactly as close as the right one does not push it down (ties count for the text).
    Returns (top_k,) shares."""
    t, m = _emb(text_emb, "r_precision text_emb"), _emb(motion_emb, "r_precision motion_emb")
    if t.shape != m.shape:
        raise ValueError(f"r_precision: text and motion embeddings must pair up, got {t.shape} and {m.shape}")
    rng = rng if rng is not None else np.random.default_rng(0)
    order = rng.permutation(len(t))
    size = min(batch, len(t))
    hits = np.zeros(top_k)
    for s in range(0, len(t) - size + 1, size):
        idx = order[s:s + size]
        d = _distances(t[idx], m[idx])  # (size, size) text i to motion j
        closer = (d < d.diagonal()[:, None]).sum(1)  # (size,) motions nearer than the right one
        hits += (closer[:, None] < np.arange(1, top_k + 1)).sum(0)
    return hits / (len(t) // size * size)


def mm_dist(text_emb, motion_emb) -> float:
    """MM-Dist: mean Euclidean distance between each text and its own motion."""
    t, m = _emb(text_emb, "mm_dist text_emb"), _emb(motion_emb, "mm_dist motion_emb")
    if t.shape != m.shape:
        raise ValueError(f"mm_dist: text and motion embeddings must pair up, got {t.shape} and {m.shape}")
    return float(np.linalg.norm(t - m, axis=-1).mean())


def diversity(emb, n_pairs: int = 300, rng=None) -> float:
    """Diversity: mean distance between n_pairs random pairs of different embeddings (InterGen: 300 pairs).
    Unlike InterGen, a row is never paired with itself, so N equidistant points give exactly that distance."""
    e = _emb(emb, "diversity")
    if len(e) < 2:
        raise ValueError(f"diversity: need at least 2 embeddings, got {len(e)}")
    rng = rng if rng is not None else np.random.default_rng(0)
    i = rng.integers(len(e), size=n_pairs)
    j = (i + rng.integers(1, len(e), size=n_pairs)) % len(e)  # any other row
    return float(np.linalg.norm(e[i] - e[j], axis=-1).mean())


def multimodality(emb_groups, n_pairs: int = 10, rng=None) -> float:
    """MultiModality: (C, R, D) embeddings of R generations for each of C captions (InterGen: 100 x 30) ->
    the mean over captions of the diversity of its generations (InterGen: 10 pairs per caption)."""
    g = np.asarray(emb_groups, dtype=np.float64)
    if g.ndim != 3 or g.shape[1] < 2:
        raise ValueError(f"multimodality: expected (captions, generations >= 2, D) embeddings, got shape {g.shape}")
    rng = rng if rng is not None else np.random.default_rng(0)
    return float(np.mean([diversity(x, n_pairs, rng) for x in g]))


_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228]  # Student t, 97.5%, dof 1..10


def mean_ci(values, student_t: bool = False) -> tuple[float, float]:
    """(mean, 95% half-interval) of repeated measurements; NaNs (a repeat that could not measure) left out,
    fewer than two values give NaN. Default: InterGen's 1.96 std / sqrt(n) (std over n), to compare with
    published numbers. student_t=True, for a few seeds: t(n - 1) s / sqrt(n) with the sample std s (with 3
    seeds 4.30 s / sqrt(3): the 1.96 rule would claim an interval about 2.7 times too narrow)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return (float(v.mean()) if len(v) else float("nan")), float("nan")
    if not student_t:
        return float(v.mean()), float(1.96 * v.std() / np.sqrt(len(v)))
    t = _T975[len(v) - 2] if len(v) - 1 <= len(_T975) else 1.96
    return float(v.mean()), float(t * v.std(ddof=1) / math.sqrt(len(v)))


# ---- 2.3 Identity: roles and homogenisation -----------------------------------------------------------
# InterSynth records who initiates (meta['initiator']), and one caption of each clip names the people by
# index, initiator first ("the first person ... the second person"). So for a caption that names roles,
# a classifier trained on ground truth can tell whether a generated clip gives each person its role.
# Roles are only scored where the two people do different things. In the other types (handshake, high five,
# hug, wave, circle, bow, dance, clapping game, conversation, greet and walk) both do the same thing and the
# initiator merely starts a little earlier: a 15-60 frame crop (10% of clips) can show no difference at all.
ASYMMETRIC_TYPES = ("punch_dodge",   # one punches, the other dodges
                    "push",          # one pushes, the other stumbles back
                    "follow",        # one leads, the other follows
                    "handover",      # one gives, the other takes
                    "tug_of_war",    # one wins and drags the other
                    "kick_block",    # one kicks, the other blocks
                    "point_look",    # one points, the other looks
                    "shoulder_pat",  # one pats, the other turns round
                    "fencing",       # one lunges, the other parries
                    "taekwondo")     # one kicks, the other blocks
ROLE_CONFIDENCE = 0.75  # a clip counts for a role when the classifier gives it this probability or more


def is_asymmetric(record: dict) -> bool:
    meta = record.get("meta") or {}
    return meta.get("type") in ASYMMETRIC_TYPES and meta.get("initiator") in (0, 1)


class RoleClassifier(Checkpointable, nn.Module):
    """Which of the two people initiates? features (B, 2, T, 262) de-normalised, lengths (B,) -> logit (B,)
    of 'person 0 initiates'. The evaluator's motion branch with one output, trained on ground-truth clips
    of ASYMMETRIC_TYPES, swapped (the label flips) and mirrored (it does not) at random."""
    KINDS, STORED = ("role_classifier",), {"normalizer": Normalizer}
    config_from_dict = staticmethod(lambda d: EvaluatorConfig(**d))

    def __init__(self, cfg: EvaluatorConfig, normalizer: Normalizer):
        super().__init__()
        self.cfg, self.normalizer = cfg, normalizer
        self.motion = MotionEncoder(cfg, normalizer, 1)

    def forward(self, features, lengths) -> torch.Tensor:
        return self.motion(features, lengths)[:, 0]

    @torch.no_grad()
    def predict(self, features, lengths) -> torch.Tensor:
        """(B,) probability that person 0 is the initiator."""
        return torch.sigmoid(self(features, lengths))


def train_role_classifier(train_records: list[dict], val_records: list[dict] | None = None,
                          cfg: EvaluatorConfig | None = None, steps: int | None = None, batch: int | None = None,
                          seed: int = 0, ckpt_path: str | None = None, progress: bool = True, device=None,
                          normalizer: Normalizer | None = None):
    """Train the role classifier on the asymmetric clips of train_records; returns (classifier, report).
    Cached/resumed through ckpt_path, and `normalizer` reused, as in `train_evaluator`. report: 'seconds',
    'history', and with val_records `role_report` on them (real clips near 1, person-swapped ones near 0)."""
    t0 = time.time()
    asym = [r for r in train_records if is_asymmetric(r)]
    if not asym:
        raise DataError("train_role_classifier: no clip of an asymmetric type (ASYMMETRIC_TYPES) with "
                        "meta['initiator'] among the training records")
    data = InteractionDataset(asym, train=True, seed=seed)
    initiator = {r["id"]: int(r["meta"]["initiator"]) for r in data.records}

    def build():
        return RoleClassifier(cfg or EvaluatorConfig(), normalizer or data.fit_normalizer())

    def collate_roles(items):  # the label follows a person swap
        b = collate(items)
        b["first_initiates"] = torch.tensor([float((initiator[it["id"]] ^ it["swapped"]) == 0) for it in items])
        return b

    def loss_fn(net, b, dev):
        logit, target = net(b["motion"].to(dev), b["lengths"].to(dev)), b["first_initiates"].to(dev)
        acc = ((logit > 0).float() == target).float().mean()
        return F.binary_cross_entropy_with_logits(logit, target), {"acc": acc}

    clf, history = _train(RoleClassifier, build, loss_fn, data, collate_roles, steps, batch, seed, ckpt_path,
                          progress, device)
    report = {"seconds": round(time.time() - t0, 1), "history": history}
    if val_records:
        report.update(role_report(clf, val_records))
    return clf, report


def role_scores(p_first, initiator) -> dict:
    """p_first (N,): the classifier's P(person 0 initiates); initiator (N,): who should. Returns
    'role accuracy': share of clips where the right person gets the role with probability >= ROLE_CONFIDENCE;
    'role swap rate': share where the other one does. The rest are undecided. A generator that ignores
    roles scores accuracy = swap rate; real data scores near 1 and 0."""
    p, ini = np.asarray(p_first, np.float64), np.asarray(initiator)
    if len(p) == 0:
        return {"role accuracy": float("nan"), "role swap rate": float("nan")}
    p_right = np.where(ini == 0, p, 1 - p)  # probability given to the caption's initiator
    return {"role accuracy": float((p_right >= ROLE_CONFIDENCE).mean()),
            "role swap rate": float((p_right <= 1 - ROLE_CONFIDENCE).mean())}


def role_accuracy(role_classifier: RoleClassifier, features: list, captions: list[str], batch: int = 96) -> dict:
    """Role accuracy and role-swap rate (`role_scores`) of clips, judged against their captions: only
    captions that name roles count (`caption_initiator`). features: (2, T_i, 262) per clip (e.g. generated
    from those captions). Pass clips of ASYMMETRIC_TYPES only. Adds 'role clips': how many counted."""
    keep = [i for i, c in enumerate(captions) if caption_initiator(c) is not None]
    role_classifier.eval()
    p = _batched(role_classifier.predict, [features[i] for i in keep], batch) if keep else []
    return {**role_scores(p, [caption_initiator(captions[i]) for i in keep]), "role clips": len(keep)}


def role_report(role_classifier: RoleClassifier, records: list[dict], batch: int = 96) -> dict:
    """The classifier checked against InterSynth's metadata on the asymmetric clips of `records`, as recorded
    and with the two people swapped (the roles then disagree with meta['initiator'])."""
    data = InteractionDataset([r for r in records if is_asymmetric(r)], train=False)
    ini = [r["meta"]["initiator"] for r in data.records]
    role_classifier.eval()
    out = {"role clips": len(data)}
    for name, swap in (("real", False), ("swapped", True)):
        p = _batched(role_classifier.predict, [data.features(i, swap=swap) for i in range(len(data))], batch)
        out.update({f"{k} ({name})": v for k, v in role_scores(p, ini).items()})
    return out


def pose_descriptor(joints: np.ndarray) -> np.ndarray:
    """(..., T, 22, 3) -> (..., T, 22, 3): each frame's pose relative to the pelvis, turned about Y so that
    the person faces +Z (facing_yaw of that frame): where a person is and which way it looks drop out."""
    J = np.asarray(joints, dtype=np.float64)
    yaw = np.array([facing_yaw(f) for f in J.reshape(-1, N_JOINTS, 3)]).reshape(J.shape[:-2])  # (..., T)
    R = yaw_matrix(-yaw)  # (..., T, 3, 3) turns each frame's facing onto +Z
    return (J - J[..., :1, :]) @ np.swapaxes(R, -1, -2)


def person_difference(joints: np.ndarray) -> float:
    """(2, T, 22, 3) -> mean distance (m) between the two people's `pose_descriptor`s, joint by joint and
    frame by frame: how differently the two move at each moment."""
    d = pose_descriptor(joints)  # (2, T, 22, 3)
    return float(np.linalg.norm(d[0] - d[1], axis=-1).mean())


def homogenisation_gap(real_joints: list, generated_joints: list) -> float:
    """How much more alike the two generated people are than the two real people (cm): the mean
    `person_difference` of real clips minus that of generated clips. 0 when they differ as much as real
    people do; positive when the generator makes the two people converge; negative when they differ more
    than real people (e.g. one of them is noise)."""
    real = np.mean([person_difference(j) for j in real_joints])
    gen = np.mean([person_difference(j) for j in generated_joints])
    return float(100 * (real - gen))


# ---- 2.4 Physics ----------------------------------------------------------------------------------------
# General functions of joint positions (metres, Y up, floor at y = 0); InterSynth's physics report
# (intermoe_tools/synth_report.py) measures its own clips with the same functions.

TORSO_RADIUS = CAPSULES[0][2]  # the torso capsule's radius (m), pelvis -> neck
NECK = JOINT_NAMES.index("neck")
TOUCH_MARGIN = 30    # frames (1 s) either side of the recorded contacts in which a generated clip may touch


def foot_sliding(joints: np.ndarray) -> np.ndarray:
    """(..., T, 22, 3) -> horizontal displacement (m per frame) of every foot joint on every frame it is in
    contact (InterGen's rule, `foot_contacts`), flattened. A planted foot should not move: ideally all 0."""
    J = np.asarray(joints, dtype=np.float64)
    out = []
    for person in J.reshape(-1, *J.shape[-3:]):  # (T, 22, 3) each
        feet = person[:, FOOT_JOINTS]  # (T, 4, 3)
        step = np.linalg.norm(feet[1:, :, [0, 2]] - feet[:-1, :, [0, 2]], axis=-1)  # (T-1, 4)
        out.append(step[foot_contacts(person) > 0])
    return np.concatenate(out)


def floor_penetration(joints: np.ndarray) -> np.ndarray:
    """(..., T, 22, 3) -> (..., T) depth (m) of each frame's lowest joint below the floor y = 0 (0 above)."""
    return np.maximum(0.0, -np.asarray(joints, dtype=np.float64)[..., 1].min(-1))


def interpenetration(joints: np.ndarray) -> np.ndarray:
    """(2, T, 22, 3) -> (T,) how deep the two bodies overlap (m): the deepest overlap of a torso capsule with
    the partner's torso or limb capsules (CAPSULES, the ones stage 2's capsule loss uses), 0 when apart."""
    depth = capsule_overlap(torch.as_tensor(np.asarray(joints, dtype=np.float64)))  # (T, pairs)
    return depth.max(-1).values.numpy()


def hand_distance(joints: np.ndarray) -> np.ndarray:
    """(2, T, 22, 3) -> (2, T): for each person and frame, the distance (m) from its nearer wrist to the
    partner's body: the partner's nearest joint, or the surface of its torso capsule if that is nearer."""
    J = np.asarray(joints, dtype=np.float64)
    P, T = J.shape[:2]
    hands, other = J[:, :, WRISTS], J[::-1]  # (2, T, 2, 3) own wrists; (2, T, 22, 3) the partner
    to_joints = np.linalg.norm(hands[:, :, :, None] - other[:, :, None], axis=-1).min(-1)  # (2, T, 2)
    axis_a = np.broadcast_to(other[:, :, None, 0], hands.shape).reshape(-1, 3)  # (2*T*2, 3) partner pelvis
    axis_b = np.broadcast_to(other[:, :, None, NECK], hands.shape).reshape(-1, 3)  # partner neck
    flat = hands.reshape(-1, 3)
    to_torso = (segment_distance(flat, flat, axis_a, axis_b) - TORSO_RADIUS).reshape(P, T, 2)
    return np.minimum(to_joints, np.maximum(to_torso, 0.0)).min(-1)


def touch_window(record: dict) -> slice | None:
    """Frames in which the two people of this clip should touch: InterSynth's recorded contact frames
    +- TOUCH_MARGIN; for data without contact labels (no meta['contacts']), the whole clip if a caption
    speaks of touching (handshake, hug, push, pat, ...); else None."""
    meta = record.get("meta") or {}
    if "contacts" in meta:
        frames = [c[0] for c in meta["contacts"]]
        return slice(max(0, min(frames) - TOUCH_MARGIN), max(frames) + TOUCH_MARGIN + 1) if frames else None
    return slice(None) if any(TOUCH_RE.search(c) for c in record["captions"]) else None


def physics_metrics(joints: list, windows: list | None = None) -> dict:
    """The physics entries of the results table for a set of clips, each (2, T_i, 22, 3):
    foot sliding (cm/frame, over all foot contacts), floor penetration (cm, mean over frames and people),
    interpenetration (% of frames whose torsos overlap) and its depth (cm, mean over those frames), hand
    contact (cm: per clip with a touch window (`touch_window`), the closest a hand comes to the partner in
    it; mean over those clips), jitter (cm/frame^2: the second difference of every joint in time, mean over
    joints, frames and people; real motion's is a fraction of a centimetre)."""
    slide = np.concatenate([foot_sliding(j) for j in joints])
    floor = np.concatenate([floor_penetration(j).ravel() for j in joints])
    depth = np.concatenate([interpenetration(j) for j in joints])
    windows = windows if windows is not None else [None] * len(joints)
    jitter = np.concatenate([np.zeros(0)] + [np.linalg.norm(np.diff(np.asarray(j, dtype=np.float64), 2, axis=-3),
                                                            axis=-1).ravel() for j in joints if np.shape(j)[-3] > 2])
    touch = [d.min() for d in (hand_distance(j)[:, w] for j, w in zip(joints, windows) if w is not None) if d.size]
    nan = float("nan")
    return {"foot sliding (cm/frame)": 100 * float(slide.mean()) if len(slide) else nan,
            "floor penetration (cm)": 100 * float(floor.mean()),
            "interpenetration (% frames)": 100 * float((depth > 0).mean()),
            "interpenetration depth (cm)": 100 * float(depth[depth > 0].mean()) if (depth > 0).any() else 0.0,
            "hand contact (cm)": 100 * float(np.mean(touch)) if touch else nan,
            "jitter (cm/frame^2)": 100 * float(jitter.mean()) if len(jitter) else nan}


def bone_stretch(joints: np.ndarray) -> dict:
    """Clips' joints, a list of (2, T_i, 22, 3) -> how much bones change length within a clip: the std / median
    of each bone's length (mean over bones, people and clips) and (max - min) / median (median over them)."""
    ratio, span = [], []
    for j in joints:
        length = np.linalg.norm(np.asarray(j)[..., 1:, :] - np.asarray(j)[..., SMPL_PARENTS[1:], :], axis=-1)  # (2, T, 21)
        med = np.maximum(np.median(length, axis=1), 1e-9)  # (2, 21)
        ratio.append(length.std(1) / med)
        span.append((length.max(1) - length.min(1)) / med)
    return {"bone length std / median (%)": 100 * float(np.mean(ratio)),
            "bone length range / median (%)": 100 * float(np.median(np.concatenate(span)))}


def reconstruction_errors(joints: list, truth: list) -> dict:
    """Reconstructed and true clips, lists of (2, T_i, 22, 3) -> MPJPE (cm, every joint, person and frame), the
    wrists' and feet's, and the error of the pelvis-to-pelvis vector (cm): where the people stand to each other."""
    err = [np.linalg.norm(np.asarray(j) - t, axis=-1) for j, t in zip(joints, truth)]  # (2, T, 22) each
    vec = [np.linalg.norm((j[1, :, 0] - j[0, :, 0]) - (t[1, :, 0] - t[0, :, 0]), axis=-1) for j, t in zip(joints, truth)]
    return {"MPJPE (cm)": 100 * float(np.concatenate([e.ravel() for e in err]).mean()),
            "MPJPE wrists (cm)": 100 * float(np.concatenate([e[..., WRISTS].ravel() for e in err]).mean()),
            "MPJPE feet (cm)": 100 * float(np.concatenate([e[..., FOOT_JOINTS].ravel() for e in err]).mean()),
            "pelvis-to-pelvis error (cm)": 100 * float(np.concatenate(vec).mean())}


def vae_ceiling(model, records: list[dict], bodies: bool = True) -> dict:
    """What the model's VAE lets through: every test clip encoded and decoded (`pipeline.reconstruct`), against
    the clip itself -> `reconstruction_errors`, `bone_stretch` and `physics_metrics`, each real clip's own value
    beside it under "real ..." for the ratios (foot sliding and hand contact are judged against real motion)."""
    records, real = real_motions(records)
    truth = [joints_from_features(f) for f in real]
    recon = [joints_from_features(pipeline.reconstruct(model, f, bodies=bodies)) for f in real]
    windows = [touch_window(r) for r in records]
    out = {**reconstruction_errors(recon, truth), **bone_stretch(recon), **physics_metrics(recon, windows)}
    out.update({f"real {k}": v for k, v in physics_metrics(truth, windows).items()})
    return out


# ---- 2.5 evaluate: every metric, repeated with fresh generations ----------------------------------------

METRICS = ["FID", "R-Precision top-1", "R-Precision top-2", "R-Precision top-3", "MM-Dist", "Diversity",
           "MultiModality", "role accuracy", "role swap rate", "homogenisation gap (cm)",
           "foot sliding (cm/frame)", "floor penetration (cm)", "interpenetration (% frames)",
           "interpenetration depth (cm)", "hand contact (cm)", "jitter (cm/frame^2)"]  # the results table's columns


def _batched(fn, feats: list, batch: int = 96) -> np.ndarray:
    """fn(motion (b, 2, T, 262), lengths (b,)) -> (b, ...) applied to a list of (2, T_i, 262) arrays, `batch`
    at a time, clips of similar length together (less padding). Rows come back in input order."""
    order = np.argsort([f.shape[1] for f in feats], kind="stable")
    rows = [None] * len(feats)
    for s in range(0, len(order), batch):
        idx = order[s:s + batch]
        b = collate([{"motion": torch.as_tensor(np.asarray(feats[i], dtype=np.float32)), "length": feats[i].shape[1],
                      "caption": "", "id": ""} for i in idx])
        out = fn(b["motion"], b["lengths"]).cpu().numpy()
        for k, i in enumerate(idx):
            rows[i] = out[k]
    return np.stack(rows)


def embed_motions(evaluator: Evaluator, feats: list, batch: int = 96) -> np.ndarray:
    """(2, T_i, 262) de-normalised features per clip -> (N, d_embed) evaluator embeddings."""
    evaluator.eval()
    return _batched(evaluator.encode_motion, feats, batch)


def embed_texts(evaluator: Evaluator, captions: list[str], batch: int = 96) -> np.ndarray:
    """N captions -> (N, d_embed) evaluator embeddings."""
    evaluator.eval()
    return np.concatenate([evaluator.encode_text(captions[s:s + batch]).cpu().numpy()
                           for s in range(0, len(captions), batch)])


def real_motions(records: list[dict]) -> tuple[list[dict], list[np.ndarray]]:
    """(usable records, their (2, T-1, 262) features as recorded). Bad records are left out with a warning."""
    data = InteractionDataset(records, train=False)
    return data.records, [data.features(i) for i in range(len(data))]


def pick_captions(records: list[dict], rng) -> list[str]:
    """One of each clip's captions, at random (InterGen's test loader does the same)."""
    return [r["captions"][int(rng.integers(len(r["captions"])))] for r in records]


def retrieval_accuracy(evaluator: Evaluator, records: list[dict], batch: int = 96, seed: int = 0) -> dict:
    """The evaluator's own accuracy on ground truth: R-Precision top-1..3 and MM-Dist of the records' real
    motions against one of their captions each (a random one, seeded). Also 'distinct captions': a caption
    shared by several clips (templated data) caps top-1 below 1, which is fine but worth knowing."""
    records, feats = real_motions(records)
    captions = pick_captions(records, np.random.default_rng(seed))
    t, m = embed_texts(evaluator, captions, batch), embed_motions(evaluator, feats, batch)
    top = r_precision(t, m, batch, 3, np.random.default_rng(seed))
    return {**{f"R-Precision top-{k + 1}": float(top[k]) for k in range(3)}, "MM-Dist": mm_dist(t, m),
            "clips": len(records), "distinct captions": len(set(c.lower() for c in captions))}


def reference_first(feats: np.ndarray) -> np.ndarray:
    """(2, T, 262) features -> the same two people, ordered so that person 1 is the reference person.

    Why: the cooperative denoiser is exactly symmetric (swapping its inputs swaps its outputs) and the two
    starting noises are alike in distribution, so which output slot holds which person is a coin toss, for
    InterGen as for InterMoE. The representation itself says who person 1 is: the one whose frame-0 root is
    at the origin facing +Z (InteractionDataset canonicalises every clip so). A model that learnt the data
    puts one person there, and that one is "the first person" of the caption. So generated clips are put in
    that order before any metric: the person nearer the canonical start (root distance in metres plus
    1 - cos(facing yaw)) comes first. Real clips are already in it. Without this, the evaluator would see
    half the clips in an order it never saw in training. (`generate_features` keeps the slots when the
    model read the caption per person (`InterMoE.reads_roles`) and the caption names the roles: then the
    model was told which slot is the first person, and role accuracy measures whether it listened.)"""
    joints0 = joints_from_features(feats[:, :1])[:, 0]  # (2, 22, 3): both people at frame 0
    score = [np.hypot(j[0, 0], j[0, 2]) + 1 - math.cos(facing_yaw(j)) for j in joints0]
    return feats if score[0] <= score[1] else feats[::-1].copy()


@torch.no_grad()
def generate_features(model, captions: list[str], lengths: list[int], seed: int = 0, batch: int = 96) -> list:
    """model.sample for many captions, `batch` at a time, similar lengths together (less padding).
    Returns (2, n_i, 262) de-normalised features per caption, in order, the reference person first
    (`reference_first`) unless the caption assigned the slots (see there). A clip shorter than MIN_FRAMES (a 15-frame recording has 14 feature frames) is
    generated at MIN_FRAMES and cut."""
    order = np.argsort(lengths, kind="stable")
    out = [None] * len(captions)
    for c, s in enumerate(range(0, len(order), batch)):
        idx = order[s:s + batch]
        _, feats = pipeline.sample(model, [captions[i] for i in idx], [max(int(lengths[i]), MIN_FRAMES) for i in idx],
                                   seed=seed + c, return_features=True)  # feats (b, 2, T, 262)
        for k, i in enumerate(idx):
            f = feats[k, :, :int(lengths[i])].cpu().numpy()  # (2, n_i, 262)
            # a caption that names roles told a model that reads it per person which slot is which: keep its slots
            told = getattr(model, "reads_roles", False) and caption_initiator(captions[i]) is not None
            out[i] = f if told else reference_first(f)
    return out


def evaluate(model, records: list[dict], evaluator: Evaluator, role_classifier: RoleClassifier | None = None, *,
             reference: list[dict] | None = None, repeats: int = 20, batch: int = 96, mm_captions: int = 100,
             mm_repeats: int = 30, seed: int = 0, progress: bool = True, reconstruct: bool = False,
             resume: str | None = None) -> dict:
    """Every metric of the results table (METRICS), each as (mean, 95% half-interval) over `repeats` runs.

    model: an InterMoE, sampled as intermoe_tools.pipeline.sample does (physics guidance, bodies), or None for
           the real-vs-real row: the "generated" clips are then the real ones.
    reconstruct: the "VAE ceiling" row: the "generated" clips are the model's VAE's encodings and decodings of
           the real ones (intermoe_tools.pipeline.reconstruct, as bodies), the best its denoiser could do through this decoder.
    records: the test clips. Each run draws one caption per clip and generates a clip of the same length
           for it (`generate_features`, `batch` at a time); FID compares those with the real test clips,
           R-Precision and MM-Dist pair them with their captions (batches of `batch`; InterGen's: 96).
    reference: for the real row only, other real clips (e.g. the val split): its FID compares a random
           len(records) of them with the test clips, the floor finite samples give. Without it, NaN.
    MultiModality: mm_captions clips x mm_repeats generations each (NaN for the real row, or mm_captions=0).
    role_classifier: role accuracy / swap rate over clips of ASYMMETRIC_TYPES whose drawn caption names
           roles (about a third of them); without it, NaN.
    homogenisation gap: real minus generated `person_difference` (0 for the real row by definition).
    Physics: `physics_metrics` of the generated clips, hand contact in each test clip's touch window.
    resume: a JSON file that keeps every finished repeat's values (rewritten atomically after each). Called again
           with the same arguments, clips and weights (model, evaluator, role classifier), an interrupted
           evaluation skips the repeats the file holds and returns what one uninterrupted call would: repeat r
           draws only from its own generator (seed, r). A file of another evaluation is started over. Its
           "seconds": wall time over all calls.
    """
    from tqdm.auto import tqdm
    t0 = time.time()
    records, real = real_motions(records)
    lengths = [f.shape[1] for f in real]
    real_emb = embed_motions(evaluator, real, batch)
    real_joints = [joints_from_features(f) for f in real]
    windows = [touch_window(r) for r in records]
    asym = [i for i, r in enumerate(records) if is_asymmetric(r)]
    ref_emb = embed_motions(evaluator, real_motions(reference)[1], batch) if model is None and reference else None
    fixed = real if model is None else [pipeline.reconstruct(model, f) for f in real] if reconstruct else None  # not drawn
    fixed_emb = real_emb if model is None else embed_motions(evaluator, fixed, batch) if reconstruct else None
    # what the repeats depend on besides (seed, r): a resume file made with anything else is not this evaluation's
    clips = [[r.get("id"), r["captions"]] for r in records], lengths, [r.get("id") for r in reference or []]
    key = {"seed": seed, "batch": batch, "mm": [mm_captions, mm_repeats], "reconstruct": reconstruct,
           "clips": hashlib.sha256(json.dumps(clips, default=str).encode()).hexdigest()[:16],
           **{name: None if net is None else tensor_digest(net.state_dict())[:16]
              for name, net in (("model", model), ("evaluator", evaluator), ("role classifier", role_classifier))}}
    kept = _read_json(resume) if resume and os.path.isfile(resume) else {}
    same = kept.get("key") == key
    done = kept["repeats"][:repeats] if same else []  # one dict of METRICS per finished repeat
    before = kept["seconds"] if same else 0.0  # the earlier calls' time
    nan = float("nan")
    for r in tqdm(range(len(done), repeats), desc="evaluate", initial=len(done), total=repeats, disable=not progress):
        rng = np.random.default_rng([seed, r])
        captions = pick_captions(records, rng)
        gen_seed = int(rng.integers(2 ** 31))
        feats = fixed if fixed is not None else generate_features(model, captions, lengths, gen_seed, batch)
        emb = fixed_emb if fixed is not None else embed_motions(evaluator, feats, batch)
        text = embed_texts(evaluator, captions, batch)
        row = {}
        if model is not None:
            row["FID"] = frechet_distance(emb, real_emb)
        elif ref_emb is not None:
            row["FID"] = frechet_distance(ref_emb[rng.permutation(len(ref_emb))[:len(real_emb)]], real_emb)
        else:
            row["FID"] = nan
        top = r_precision(text, emb, batch, 3, rng)
        for k in range(3):
            row[f"R-Precision top-{k + 1}"] = top[k]
        row["MM-Dist"] = mm_dist(text, emb)
        row["Diversity"] = diversity(emb, 300, rng)
        row["MultiModality"] = nan
        if fixed is None and mm_captions > 0:
            pick = rng.choice(len(records), min(mm_captions, len(records)), replace=False)
            caps = [c for c in pick_captions([records[i] for i in pick], rng) for _ in range(mm_repeats)]
            mm_feats = generate_features(model, caps, [lengths[i] for i in pick for _ in range(mm_repeats)],
                                         gen_seed + 1_000_003, batch)
            row["MultiModality"] = multimodality(embed_motions(evaluator, mm_feats, batch).reshape(
                len(pick), mm_repeats, -1), 10, rng)
        row.update({"role accuracy": nan, "role swap rate": nan})
        if role_classifier is not None:
            row.update(role_accuracy(role_classifier, [feats[i] for i in asym], [captions[i] for i in asym], batch))
        joints = real_joints if model is None else [joints_from_features(f) for f in feats]
        row["homogenisation gap (cm)"] = 0.0 if model is None else homogenisation_gap(real_joints, joints)
        row.update(physics_metrics(joints, windows))
        done.append({k: float(row[k]) for k in METRICS})  # as JSON keeps them: a resumed call sums the same floats
        if resume:
            _write_json(resume, {"key": key, "repeats": done, "seconds": round(before + time.time() - t0, 1)})
    return {k: mean_ci([d[k] for d in done]) for k in METRICS}


def _json_text(obj) -> str:
    return json.dumps(obj, indent=1, default=float)


def _write_json(path: str, obj) -> None:
    atomic_write(path, lambda p: _write_text(p, _json_text(obj)))


def _read_json(path: str):
    with open(path) as f:
        return json.load(f)


def _machine() -> str:
    import platform
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, " \
           f"{torch.get_num_threads()} threads, device {pick_device()}"


def _fmt(mean_ci_pair, digits: int = 3) -> str:
    m, ci = mean_ci_pair
    if m != m:
        return "n/a"
    return f"{m:.{digits}f}" if ci != ci else f"{m:.{digits}f} ± {ci:.{digits}f}"  # no interval from one value


def run_evaluation(model: "InterMoE", out: str, work: str = os.path.join("runs", "evaluator"),
                   repeats: int = 5, mm_captions: int = 20, mm_repeats: int = 10, seed: int = 0,
                   progress: bool = True) -> dict:
    """The results table (docs/results.md) for one trained model: trains (or reads, from `work`) the evaluator and the
    role classifier on InterSynth's train split, then `evaluate`s the real test clips against the val clips
    and the model's generations for the test captions. Writes {out}/evaluation.md and .json (the command line
    passes the model's own folder; the repository's published table is results/, written only on request).

    Fewer repeats than InterGen's 20 x (100 captions x 30 for MultiModality): on a CPU a generated clip costs
    ~0.4 s, so the full protocol would take hours; the interval printed beside each mean says how much the
    smaller count costs in precision. Each row keeps its finished repeats in {out} until the table is written: an
    interrupted evaluation, run again, goes on from its last finished repeat."""
    t0 = time.time()
    n_clips = model.cfg.n_clips
    train, val, test = (intersynth.load_split(split, n_clips) for split in ("train", "val", "test"))
    os.makedirs(work, exist_ok=True)
    os.makedirs(out, exist_ok=True)
    remove_stale_temps(work)  # of a cached evaluator's save that was killed
    evaluator, ev_report = train_evaluator(train, val, ckpt_path=os.path.join(work, "evaluator.pt"),
                                           normalizer=model.normalizer, progress=progress)
    roles, role_rep = train_role_classifier(train, val, ckpt_path=os.path.join(work, "roles.pt"),
                                            normalizer=model.normalizer, progress=progress)
    keep = {row: os.path.join(out, f"evaluation.{row}.repeats.json") for row in ("real", "ceiling", "generated")}
    real = evaluate(None, test, evaluator, roles, reference=val, repeats=repeats, progress=progress, seed=seed,
                    resume=keep["real"])
    ceiling = evaluate(model, test, evaluator, roles, repeats=repeats, progress=progress, seed=seed, reconstruct=True,
                       resume=keep["ceiling"])
    gen = evaluate(model, test, evaluator, roles, repeats=repeats, mm_captions=mm_captions,
                   mm_repeats=mm_repeats, progress=progress, seed=seed, resume=keep["generated"])
    seconds = {row: _read_json(path)["seconds"] for row, path in keep.items()}  # over every call, if resumed
    vae = {"from": model.cfg.vae_from or "trained with this model", "weights": im.vae_fingerprint(model.vae)}
    results = {"real": real, "vae ceiling": ceiling, "generated": gen, "vae": vae, "physics guidance":
               model.cfg.physics, "repeats": repeats, "mm": [mm_captions, mm_repeats],
               "test clips": len(test), "evaluator": {k: v for k, v in ev_report.items() if k != "history"},
               "role classifier": {k: v for k, v in role_rep.items() if k != "history"},
               "seconds": {"real row": seconds["real"], "vae ceiling row": seconds["ceiling"],
                           "generated row": seconds["generated"], "total": round(time.time() - t0, 1)},  # total: this call
               "machine": _machine()}
    rows = [("real test clips (vs val)", real), ("VAE ceiling (test clips encoded, decoded)", ceiling),
            ("generated", gen)]
    md = ["| | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    md += [f"| {name} | " + " | ".join(_fmt(r[k]) for k in METRICS) + " |" for name, r in rows]
    md += ["", f"VAE: {vae['from']} (weights {vae['weights']}); physics guidance {model.cfg.physics}."]
    atomic_write([os.path.join(out, "evaluation.json"), os.path.join(out, "evaluation.md")],  # one unit
                    [lambda p: _write_text(p, _json_text(results)), lambda p: _write_text(p, "\n".join(md) + "\n")])
    for path in keep.values():  # the table holds them now
        os.remove(path)
    return results
