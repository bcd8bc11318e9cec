# =====================================================================================================
# Causal-Skeletal VAE
# =====================================================================================================
# (Work in progress: this file becomes the sections "Causal-Skeletal VAE" and "Text encoder" of
#  intermoe_min.py. The import block below goes away when it is pasted there.)
#
# The VAE turns one person's motion, a (T, 262) feature per frame, into a short sequence of latent
# frames (T/4, 448); the diffusion model works in that latent space. Paper, Method, "Causal-Skeletal
# VAE": skeletal graph convolution mixes neighbouring joints, causal convolution mixes frames, and
# neither ever looks into the future. Data flow (REFERENCE 1.1):
#
#   (B, T, 262) --split per joint--> (B, T, 22, 13) --per-joint MLP--> (B, T, 22, C)
#     --[res ST blocks on the 22-joint graph]--> pool 22 joints -> 12 parts, T -> T/2
#     --[res ST blocks on the 12-part graph]---> pool 12 parts  ->  7 parts, T/2 -> T/4
#     --per-part mu/logvar head--> z: (B, T/4, 7, C) = (B, T/4, 448) at C = 64
#   and the decoder walks back up the same ladder (unpool, upsample time by repetition, blocks).
#
# Causal means: latent frame k sees only input frames < 4(k+1), and decoded frame t sees only latent
# frames <= t // 4. That lets the motion be encoded and decoded as a stream, 4 frames at a time.
import math
import re
import warnings
from collections import Counter
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from intermoe_min import FEAT_DIM, FEATURE_SLICES, FOOT_JOINTS, N_JOINTS, SMPL_PARENTS

# ---- 1. The skeleton at three resolutions: 22 joints -> 12 parts -> 7 parts -------------------------
# Each coarse node is a group of finer nodes: a short chain along the SMPL tree. Both levels are
# partitions (every node in exactly one group), so pooling is a plain average over a group, unpooling
# copies a group's token back to each member, and the coarse graph is the quotient of the fine one.
# Our own grouping, in the spirit of the authors' (their code also pools 22 -> 12 -> 7 by averaging).
# The pelvis keeps a token of its own at every level: it carries the global trajectory.
PARTS_12 = {  # part name: SMPL joint indices (JOINT_NAMES order)
    "pelvis": [0],
    "left_thigh": [1, 4],             # left hip, left knee
    "left_foot": [7, 10],             # left ankle, left foot (both contact joints)
    "right_thigh": [2, 5],
    "right_foot": [8, 11],
    "spine": [3, 6],                  # spine1, spine2
    "chest": [9],                     # spine3: the hub where neck and collars meet
    "head": [12, 15],                 # neck, head
    "left_shoulder": [13, 16],        # left collar, left shoulder
    "left_forearm": [18, 20],         # left elbow, left wrist
    "right_shoulder": [14, 17],
    "right_forearm": [19, 21],
}
PARTS_7 = {  # part name: indices into PARTS_12
    "pelvis": [0],
    "left_leg": [1, 2],
    "right_leg": [3, 4],
    "torso": [5, 6],                  # spine + chest
    "head": [7],
    "left_arm": [8, 9],
    "right_arm": [10, 11],
}


def skeleton_adjacency() -> torch.Tensor:
    """(22, 22) adjacency of the SMPL tree, with self loops (every joint is its own neighbour)."""
    A = torch.eye(N_JOINTS)
    for j, p in enumerate(SMPL_PARENTS):
        if p >= 0:
            A[j, p] = A[p, j] = 1.0
    return A


def group_membership(groups: dict, n_in: int) -> torch.Tensor:
    """(n_out, n_in) 0/1 matrix: M[g, j] = 1 iff node j belongs to group g."""
    M = torch.zeros(len(groups), n_in)
    for g, members in enumerate(groups.values()):
        M[g, members] = 1.0
    assert (M.sum(0) == 1).all(), "the groups must partition the nodes"
    return M


def coarsen_adjacency(A: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
    """Quotient graph: groups g, h are neighbours iff some edge joins a member of g to one of h.

    A: (n_in, n_in) fine adjacency with self loops, M: (n_out, n_in) membership -> (n_out, n_out),
    self loops included. (M A M^T)[g, h] counts the fine edges between the members of g and h.
    """
    return ((M @ A @ M.T) > 0).float()


def pool_matrix(M: torch.Tensor) -> torch.Tensor:
    """Averaging matrix (n_out, n_in): a group's token is the mean of its members' tokens."""
    return M / M.sum(1, keepdim=True)


def unpool_matrix(M: torch.Tensor) -> torch.Tensor:
    """The transposed map (n_in, n_out): each node gets a copy of its group's token."""
    return M.T.clone()


# Built once from the tree and the groups. Both coarse graphs come out as trees:
#   12 parts: pelvis - {left_thigh - left_foot, right_thigh - right_foot, spine - chest},
#             chest - {head, left_shoulder - left_forearm, right_shoulder - right_forearm}
#    7 parts: pelvis - {left_leg, right_leg, torso}, torso - {head, left_arm, right_arm}
A_JOINTS = skeleton_adjacency()                       # (22, 22)
M_12 = group_membership(PARTS_12, N_JOINTS)           # (12, 22)
M_7 = group_membership(PARTS_7, len(PARTS_12))        # (7, 12)
A_12 = coarsen_adjacency(A_JOINTS, M_12)              # (12, 12)
A_7 = coarsen_adjacency(A_12, M_7)                    # (7, 7)


# ---- 2. Per-joint tokens: the 262 feature cut into 22 joint tokens of 13 values --------------------
JOINT_TOKEN_DIM = 13  # position 3 + 6D local rotation 6 + velocity 3 + contact 1 (0 off the feet)


def features_to_joint_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, T, 262) features -> (B, T, 22, 13) joint tokens [pos 3, rot6d 6, vel 3, contact 1].

    The root (pelvis) has no local rotation in the feature: its rotation slot is zeros. Only the four
    foot joints (FOOT_JOINTS) carry a contact bit; the other joints' contact slot is zero.
    """
    B, T, D = x.shape
    assert D == FEAT_DIM, f"expected (B, T, {FEAT_DIM}) features, got {tuple(x.shape)}"
    pos = x[..., FEATURE_SLICES["positions"]].reshape(B, T, N_JOINTS, 3)        # (B, T, 22, 3)
    vel = x[..., FEATURE_SLICES["velocities"]].reshape(B, T, N_JOINTS, 3)       # (B, T, 22, 3)
    rot = x[..., FEATURE_SLICES["rotations"]].reshape(B, T, N_JOINTS - 1, 6)    # (B, T, 21, 6)
    rot = torch.cat([rot.new_zeros(B, T, 1, 6), rot], dim=2)                    # (B, T, 22, 6)
    contact = x.new_zeros(B, T, N_JOINTS, 1)                                     # (B, T, 22, 1)
    contact[:, :, FOOT_JOINTS, 0] = x[..., FEATURE_SLICES["contacts"]]
    return torch.cat([pos, rot, vel, contact], dim=-1)                          # (B, T, 22, 13)


def joint_tokens_to_features(tok: torch.Tensor) -> torch.Tensor:
    """(B, T, 22, 13) joint tokens -> (B, T, 262) features; the inverse of features_to_joint_tokens.

    The root's rotation slot and the non-foot contact slots are dropped (the feature has no place for them).
    """
    B, T = tok.shape[:2]
    pos = tok[..., 0:3].reshape(B, T, N_JOINTS * 3)                  # (B, T, 66)
    rot = tok[:, :, 1:, 3:9].reshape(B, T, (N_JOINTS - 1) * 6)      # (B, T, 126), root dropped
    vel = tok[..., 9:12].reshape(B, T, N_JOINTS * 3)                 # (B, T, 66)
    contact = tok[:, :, FOOT_JOINTS, 12]                             # (B, T, 4)
    return torch.cat([pos, vel, rot, contact], dim=-1)               # (B, T, 262), FEATURE_SLICES order


class PerNodeLinear(nn.Module):
    """A Linear layer with its own weights for each of N nodes (joints or parts).

    (..., N, d_in) -> (..., N, d_out) with weight (N, d_in, d_out): one einsum instead of N Linears.
    """

    def __init__(self, n_nodes: int, d_in: int, d_out: int):
        super().__init__()
        bound = d_in ** -0.5  # nn.Linear's default initialisation range
        self.weight = nn.Parameter(torch.empty(n_nodes, d_in, d_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_nodes, d_out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("...ni,nio->...no", x, self.weight) + self.bias


class PerNodeMLP(nn.Sequential):
    """Linear -> SiLU -> Linear, separate weights per node: (..., N, d_in) -> (..., N, d_out)."""

    def __init__(self, n_nodes: int, d_in: int, d_hidden: int, d_out: int):
        super().__init__(PerNodeLinear(n_nodes, d_in, d_hidden), nn.SiLU(),
                         PerNodeLinear(n_nodes, d_hidden, d_out))


# ---- 3. Spatio-temporal convolution: graph conv over joints + causal conv over time ----------------
class CausalSTConv(nn.Module):
    """One spatio-temporal convolution on tokens (B, T, N, C) over an N-node graph.

    out = W1 x + (A W2 x) / deg                       skeletal graph conv (A with self loops)
        + causal temporal conv, kernel 3 in time       frame t sees frames t-2, t-1, t only

    The temporal conv is a Conv2d over (time, node index) with `joint_kernel` taps along the node axis,
    as in the authors' code (its 3x3 conv is where most of the ~1.0 M parameters sit). The node axis is
    the index order, not the skeleton: true neighbours are the graph conv's job. joint_kernel=1 makes
    it a purely temporal conv shared by all nodes.
    """

    def __init__(self, adjacency: torch.Tensor, dim: int, kernel_size: int = 3, joint_kernel: int = 3):
        super().__init__()
        self.register_buffer("adj_norm", adjacency / adjacency.sum(1, keepdim=True))  # A / deg, (N, N)
        self.w1 = nn.Linear(dim, dim)
        self.w2 = nn.Linear(dim, dim)
        self.time_pad = kernel_size - 1  # all the padding goes in front: causal
        self.temporal = nn.Conv2d(dim, dim, (kernel_size, joint_kernel), padding=(0, joint_kernel // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        graph = self.w1(x) + torch.einsum("nm,btmc->btnc", self.adj_norm, self.w2(x))  # (B, T, N, C)
        h = x.permute(0, 3, 1, 2)                       # (B, C, T, N) for Conv2d
        h = F.pad(h, (0, 0, self.time_pad, 0))          # (B, C, T + 2, N): 2 frames in front, none after
        temporal = self.temporal(h).permute(0, 2, 3, 1)  # (B, T, N, C)
        return graph + temporal


class ResSTBlock(nn.Module):
    """x + Dropout(STConv(SiLU(STConv(SiLU(x))))): the residual unit of both encoder and decoder."""

    def __init__(self, adjacency: torch.Tensor, dim: int, joint_kernel: int, dropout: float):
        super().__init__()
        self.conv1 = CausalSTConv(adjacency, dim, joint_kernel=joint_kernel)
        self.conv2 = CausalSTConv(adjacency, dim, joint_kernel=joint_kernel)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, N, C) -> (B, T, N, C)
        h = self.conv1(F.silu(x))
        h = self.conv2(F.silu(h))
        return x + self.dropout(h)


class STPool(nn.Module):
    """Pool nodes with a fixed averaging matrix and halve time: (B, T, N_in, C) -> (B, T/2, N_out, C).

    Time pooling averages frames 2k and 2k+1, so output frame k sees nothing after input frame 2k+1.
    """

    def __init__(self, membership: torch.Tensor):
        super().__init__()
        self.register_buffer("pool", pool_matrix(membership))  # (N_out, N_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.einsum("on,btnc->btoc", self.pool, x)  # (B, T, N_out, C)
        B, T, N, C = x.shape
        return x.reshape(B, T // 2, 2, N, C).mean(2)       # (B, T/2, N_out, C)


class STUnpool(nn.Module):
    """Unpool with the transposed map and double time by repetition: (B, T, N_out, C) -> (B, 2T, N_in, C).

    Repetition keeps it causal: output frames 2k and 2k+1 are both copies of input frame k.
    """

    def __init__(self, membership: torch.Tensor):
        super().__init__()
        self.register_buffer("unpool", unpool_matrix(membership))  # (N_in, N_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.einsum("no,btoc->btnc", self.unpool, x)  # (B, T, N_in, C)
        return x.repeat_interleave(2, dim=1)                 # (B, 2T, N_in, C)


# ---- 4. The VAE -----------------------------------------------------------------------------------
@dataclass
class VAEConfig:
    width: int = 64            # channels of every joint/part token; the latent is 7 parts x width (448)
    n_blocks: int = 2          # residual ST blocks per level (the authors' config: 1 + 1)
    joint_kernel: int = 3      # taps of the temporal conv along the node axis (authors: 3; 1 = time only)
    dropout: float = 0.1       # inside each residual block (authors' value); off in eval mode
    hidden: int = 64           # hidden width of the per-joint input/output MLPs (paper: 13 -> 64 -> 64)

    @property
    def latent_dim(self) -> int:
        return len(PARTS_7) * self.width  # 7 x 64 = 448 per latent frame


class CausalSkeletalVAE(nn.Module):
    """Causal-Skeletal VAE (paper, Method; REFERENCE 1.1): one person, (B, T, 262) <-> (B, ceil(T/4), 448).

    Weights are shared by both persons: encode them one at a time (or stacked along the batch).
    Inputs and outputs are normalised features (feature - mean) / std.
    """

    downsample = 4  # 2 levels, time / 2 each

    def __init__(self, cfg: VAEConfig = VAEConfig()):
        super().__init__()
        self.cfg = cfg
        C = cfg.width

        def blocks(A):  # one level: n_blocks residual ST blocks on the graph A
            return nn.Sequential(*[ResSTBlock(A, C, cfg.joint_kernel, cfg.dropout) for _ in range(cfg.n_blocks)])

        # encoder: joints -> 12 parts -> 7 parts
        self.joint_in = PerNodeMLP(N_JOINTS, JOINT_TOKEN_DIM, cfg.hidden, C)
        self.enc_joints, self.pool1 = blocks(A_JOINTS), STPool(M_12)
        self.enc_parts, self.pool2 = blocks(A_12), STPool(M_7)
        self.to_dist = PerNodeLinear(len(PARTS_7), C, 2 * C)  # per part: mu and logvar
        # decoder: the mirror image, 7 parts -> 12 parts -> joints
        self.unpool2, self.dec_parts = STUnpool(M_7), blocks(A_12)
        self.unpool1, self.dec_joints = STUnpool(M_12), blocks(A_JOINTS)
        self.joint_out = PerNodeMLP(N_JOINTS, C, cfg.hidden, JOINT_TOKEN_DIM)

    def encode_dist(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, 262) -> mu, logvar, each (B, ceil(T/4), 448).

        T not divisible by 4: the last frame is repeated at the end (padding after the clip keeps
        causality), so the last latent frame summarises a partial block.
        """
        B, T, _ = x.shape
        pad = -T % self.downsample
        if pad:
            x = torch.cat([x, x[:, -1:].expand(B, pad, x.shape[-1])], dim=1)  # (B, T + pad, 262)
        h = self.joint_in(features_to_joint_tokens(x))  # (B, T', 22, C)
        h = self.pool1(self.enc_joints(h))               # (B, T'/2, 12, C)
        h = self.pool2(self.enc_parts(h))                # (B, T'/4, 7, C)
        mu, logvar = self.to_dist(h).chunk(2, dim=-1)    # 2 x (B, T'/4, 7, C)
        return mu.flatten(2), logvar.flatten(2)          # 2 x (B, T'/4, 7 * C)

    def encode(self, x: torch.Tensor, sample: bool = False) -> torch.Tensor:
        """x (B, T, 262) -> z (B, ceil(T/4), 448): the posterior mean, or a sample if sample=True."""
        mu, logvar = self.encode_dist(x)
        return reparameterize(mu, logvar) if sample else mu

    def decode(self, z: torch.Tensor, T: int | None = None) -> torch.Tensor:
        """z (B, Tz, 448) -> (B, T, 262) normalised features; T (at most 4 Tz, default 4 Tz) crops the end."""
        B, Tz, _ = z.shape
        assert T is None or T <= self.downsample * Tz, f"{Tz} latent frames decode to at most {4 * Tz} frames"
        h = z.reshape(B, Tz, len(PARTS_7), self.cfg.width)  # (B, Tz, 7, C)
        h = self.dec_parts(self.unpool2(h))                  # (B, 2 Tz, 12, C)
        h = self.dec_joints(self.unpool1(h))                 # (B, 4 Tz, 22, C)
        out = joint_tokens_to_features(self.joint_out(h))    # (B, 4 Tz, 262)
        return out if T is None else out[:, :T]

    def forward(self, x: torch.Tensor, sample: bool | None = None):
        """x (B, T, 262) -> (recon (B, T, 262), mu, logvar (B, ceil(T/4), 448)).

        Samples z in training mode and uses the mean in eval mode unless `sample` says otherwise.
        """
        mu, logvar = self.encode_dist(x)
        sample = self.training if sample is None else sample
        z = reparameterize(mu, logvar) if sample else mu
        return self.decode(z, x.shape[1]), mu, logvar


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """z = mu + sigma * eps, eps ~ N(0, I): the VAE's reparameterisation trick (Kingma & Welling 2014)."""
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


# ---- 5. The VAE loss (REFERENCE 1.1: recon 1.0 + position 0.5 + velocity 0.5 + rotation 0.5 + KL 0.02)
VAE_LOSS_WEIGHTS = {"recon": 1.0, "pos": 0.5, "vel": 0.5, "rot": 0.5, "kl": 0.02}


def _masked_mean(err: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of err (B, T, F) over all elements of the valid frames; mask (B, T) bool or None."""
    if mask is None:
        return err.mean()
    m = mask[..., None].to(err.dtype)                 # (B, T, 1)
    return (err * m).sum() / (m.sum() * err.shape[-1]).clamp(min=1)


def vae_loss(recon, x, mu, logvar, mean, std, mask=None, weights=None):
    """Weighted VAE loss -> (total, {term: float}).

    recon, x:    (B, T, 262) normalised features (decoded and target)
    mu, logvar:  (B, ceil(T/4), 448) the posterior
    mean, std:   (262,) normalisation statistics, to measure position/velocity/rotation in real units
    mask:        (B, T) bool, True on valid frames; padded frames then count for nothing.
                 A latent frame counts for the KL term if any of its 4 frames is valid.
    weights:     overrides for VAE_LOSS_WEIGHTS, e.g. {"kl": 0.0}
    Each term is a mean over elements (MSE), as in the authors' setup.
    """
    w = {**VAE_LOSS_WEIGHTS, **(weights or {})}
    recon_real, x_real = recon * std + mean, x * std + mean  # (B, T, 262) de-normalised
    terms = {"recon": _masked_mean((recon - x) ** 2, mask)}
    for name, part in (("pos", "positions"), ("vel", "velocities"), ("rot", "rotations")):
        s = FEATURE_SLICES[part]
        terms[name] = _masked_mean((recon_real[..., s] - x_real[..., s]) ** 2, mask)
    kl = 0.5 * (mu ** 2 + logvar.exp() - logvar - 1.0)  # KL(N(mu, sigma) || N(0, I)) per element
    latent_mask = None
    if mask is not None:
        B, T = mask.shape
        Tz = mu.shape[1]
        padded = F.pad(mask, (0, 4 * Tz - T), value=False)     # (B, 4 Tz)
        latent_mask = padded.reshape(B, Tz, 4).any(-1)          # (B, Tz)
    terms["kl"] = _masked_mean(kl, latent_mask)
    total = sum(w[k] * v for k, v in terms.items())
    return total, {"total": total.item(), **{k: v.item() for k, v in terms.items()}}


# =====================================================================================================
# Text encoder
# =====================================================================================================
# InterGen and InterMoE read the caption with a frozen CLIP ViT-L/14 text tower, then a trainable
# 2-layer transformer; the end-of-text token's feature goes through a Linear and is added to the
# diffusion timestep embedding (REFERENCE 1.2). CLIP's weights cannot be downloaded here, so by default
# we learn a small text encoder from scratch on the training captions, built the same way: words ->
# embeddings + positions -> transformer -> end-of-text token -> Linear. A lab that has a pretrained
# sentence encoder can plug it in instead (TextEncoder(..., pretrained=fn)), frozen, with a trainable
# Linear on top.
class Vocab:
    """Word-level vocabulary built from training captions.

    Tokens are lower-cased words and single punctuation marks ("A man's hand." -> a man ' s hand .).
    Three special tokens: <pad> = 0 (padding), <unk> = 1 (any word not seen in training),
    <eos> = 2 (end of text: closes every caption, and its feature becomes the sentence embedding).
    The empty caption "" (classifier-free guidance's "no text") is just [<eos>].
    """

    PAD, UNK, EOS = "<pad>", "<unk>", "<eos>"
    _token_re = re.compile(r"\w+|[^\w\s]")  # a run of word characters, or one punctuation mark

    def __init__(self, itos: list[str]):
        assert itos[:3] == [self.PAD, self.UNK, self.EOS], "special tokens must come first"
        self.itos = list(itos)                            # id -> token
        self.stoi = {t: i for i, t in enumerate(itos)}    # token -> id
        self._warned: set[str] = set()                   # unknown words already reported

    @classmethod
    def tokenize(cls, text: str) -> list[str]:
        return cls._token_re.findall(text.lower())

    @classmethod
    def build(cls, captions, min_count: int = 1) -> "Vocab":
        """Vocabulary of every token seen at least min_count times; most frequent first, ties A-Z."""
        counts = Counter(t for c in captions for t in cls.tokenize(c))
        words = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
        return cls([cls.PAD, cls.UNK, cls.EOS] + words)

    def __len__(self) -> int:
        return len(self.itos)

    def unknown_words(self, texts) -> list[str]:
        """Sorted words of `texts` that are not in the vocabulary (they would become <unk>)."""
        return sorted({t for text in texts for t in self.tokenize(text) if t not in self.stoi})

    def encode(self, texts, max_len: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """Captions -> (ids (B, L) long, mask (B, L) bool, True on real tokens incl. <eos>).

        L = the longest caption + 1, at most max_len; longer captions are cut so that <eos> always fits.
        Unknown words map to <unk>; the first time a word is met, a warning names it.
        """
        texts = list(texts)
        new = [w for w in self.unknown_words(texts) if w not in self._warned]
        if new:
            self._warned.update(new)
            warnings.warn(f"{len(new)} word(s) not in the vocabulary, read as {self.UNK}: {new}",
                          stacklevel=2)
        unk = self.stoi[self.UNK]
        rows = [[self.stoi.get(t, unk) for t in self.tokenize(text)][: max_len - 1] + [self.stoi[self.EOS]]
                for text in texts]
        L = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), L, dtype=torch.long)  # (B, L), <pad> = 0
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
        return ids, ids != 0

    def decode(self, ids) -> str:
        """ids (L,) -> the tokens joined by spaces, up to <eos> (for checking, not for printing prose)."""
        out = []
        for i in ids.tolist():
            if self.itos[i] in (self.EOS, self.PAD):
                break
            out.append(self.itos[i])
        return " ".join(out)

    def state_dict(self) -> dict:
        """Everything needed to rebuild the vocabulary: store it in the model checkpoint."""
        return {"itos": list(self.itos)}

    @classmethod
    def from_state_dict(cls, state: dict) -> "Vocab":
        return cls(state["itos"])


def sinusoidal_positions(n: int, dim: int) -> torch.Tensor:
    """(n, dim) fixed sinusoidal position codes (Vaswani et al. 2017, Sec. 3.5)."""
    pos = torch.arange(n, dtype=torch.float64)[:, None]                                      # (n, 1)
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # (dim/2,)
    pe = torch.zeros(n, dim, dtype=torch.float64)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
    return pe.float()


@dataclass
class TextConfig:
    d_model: int = 256       # token width of the small transformer (CLIP-L has 768; we learn from scratch)
    n_layers: int = 2        # transformer layers, as the trainable part of InterGen's text encoder
    n_heads: int = 4         # attention heads (d_model / n_heads = 64 per head)
    dropout: float = 0.1     # in the transformer layers
    max_len: int = 64        # longest caption in tokens incl. <eos>; InterHuman captions are far shorter
    d_cond: int = 768        # sentence embedding width = the denoiser's width (paper: 768)


class TextEncoder(nn.Module):
    """Captions -> (sentence embedding (B, d_cond), token features (B, L, d_model), mask (B, L)).

    Own path (default): ids -> token embedding + sinusoidal positions -> transformer encoder (padding
    masked out) -> LayerNorm -> the <eos> token's feature -> Linear -> sentence embedding.

    Pretrained path: `pretrained` is any callable list[str] -> Tensor (B, d_in), e.g. a sentence-transformer
    or CLIP's pooled text feature. It is called without gradients and kept out of this module's
    parameters and state_dict (its weights are neither trained nor saved here); a trainable Linear
    (d_in -> d_model) turns its output into the "<eos> feature", and the same LayerNorm -> Linear head gives
    the sentence embedding. The small transformer is skipped: `vocab` may be None, and the token features
    are that single projected vector (B, 1, d_model). d_in is read from one call on [""] at construction.

        enc = TextEncoder(None, TextConfig(), pretrained=my_frozen_sentence_encoder)
        cond, tokens, mask = enc(["two people shake hands", ""])
    """

    def __init__(self, vocab: Vocab | None, cfg: TextConfig = TextConfig(), pretrained=None):
        super().__init__()
        self.vocab, self.cfg = vocab, cfg
        # plain attribute lookup, not nn.Module registration: frozen, not ours to save
        object.__setattr__(self, "pretrained", pretrained)
        if pretrained is None:
            assert vocab is not None, "without a pretrained encoder the vocabulary is needed"
            self.embed = nn.Embedding(len(vocab), cfg.d_model, padding_idx=0)
            pe = sinusoidal_positions(cfg.max_len, cfg.d_model)                 # (max_len, d_model)
            self.register_buffer("positions", pe, persistent=False)
            layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, 4 * cfg.d_model, cfg.dropout,
                                               activation="gelu", batch_first=True, norm_first=True)
            self.transformer = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        else:
            with torch.no_grad():
                d_in = pretrained([""]).shape[-1]
            self.from_pretrained = nn.Linear(d_in, cfg.d_model)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.to_cond = nn.Linear(cfg.d_model, cfg.d_cond)

    def forward(self, texts: list[str]):
        """B captions ("" = no caption) -> cond (B, d_cond), tokens (B, L, d_model), mask (B, L) bool."""
        device = self.to_cond.weight.device
        if self.pretrained is not None:
            with torch.no_grad():  # frozen: no gradient ever reaches the pretrained weights
                emb = self.pretrained(list(texts))                           # (B, d_in)
            emb = emb.to(device=device, dtype=self.to_cond.weight.dtype)
            eos = self.norm(self.from_pretrained(emb))               # (B, d_model)
            tokens = eos[:, None]                                    # (B, 1, d_model)
            mask = torch.ones(len(texts), 1, dtype=torch.bool, device=device)
            return self.to_cond(eos), tokens, mask
        ids, mask = self.vocab.encode(texts, self.cfg.max_len)      # (B, L), (B, L)
        ids, mask = ids.to(device), mask.to(device)
        L = ids.shape[1]
        h = self.embed(ids) + self.positions[:L]                     # (B, L, d_model)
        h = self.norm(self.transformer(h, src_key_padding_mask=~mask))  # (B, L, d_model)
        last = mask.sum(1) - 1                                       # (B,) index of <eos> in each row
        eos = h[torch.arange(len(ids), device=device), last]         # (B, d_model)
        return self.to_cond(eos), h, mask
