"""The words of captions as ids: `Vocab`, a word-level vocabulary of the training captions, the text encoder's
stand-in for CLIP's byte-pair tokenizer (the paper encodes text with a frozen CLIP ViT-L/14; nothing may be
downloaded here, so intermoe_min's TextEncoder learns from these ids). It imports only intermoe_tools.captions (a
leaf too), so intermoe_min imports it (and offers it as im.Vocab).
"""
from __future__ import annotations

import re
import warnings
from collections import Counter

import torch

from intermoe_tools.captions import mirror_caption, swap_caption


class Vocab:
    """Word-level vocabulary of the training captions: lower-cased words and single punctuation marks
    ("A man's hand." -> a man ' s hand .), after <pad> = 0, <unk> = 1 (unseen words) and <eos> = 2 (closes
    every caption; its feature is the sentence embedding). The empty caption "" is just [<eos>]."""

    PAD, UNK, EOS = "<pad>", "<unk>", "<eos>"
    _token_re = re.compile(r"\w+|[^\w\s]")  # a run of word characters, or one punctuation mark

    def __init__(self, itos: list[str]):
        assert itos[:3] == [self.PAD, self.UNK, self.EOS], "special tokens must come first"
        self.itos = list(itos)                            # id -> token
        self.stoi = {t: i for i, t in enumerate(itos)}    # token -> id
        self._warned: set = set()                        # unknown words and cut lengths reported already

    @classmethod
    def tokenize(cls, text: str) -> list[str]:
        return cls._token_re.findall(text.lower())

    @classmethod
    def build(cls, captions, min_count: int = 1) -> "Vocab":
        """Every token seen at least min_count times; most frequent first, ties A-Z."""
        counts = Counter(t for c in captions for t in cls.tokenize(c))
        words = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
        return cls([cls.PAD, cls.UNK, cls.EOS] + words)

    @classmethod
    def for_records(cls, records: list[dict]) -> "Vocab":
        """The vocabulary of these records' captions, swapped and mirrored too (mirroring brings 'right')."""
        captions = [c for r in records for c in r["captions"]]
        return cls.build(captions + [mirror_caption(swap_caption(c)) for c in captions])

    def __len__(self) -> int:
        return len(self.itos)

    def unknown_words(self, texts) -> list[str]:
        """Sorted words of `texts` the vocabulary does not have (they would become <unk>)."""
        return sorted({t for text in texts for t in self.tokenize(text) if t not in self.stoi})

    def encode(self, texts, max_len: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """Captions -> ids (B, L) long, mask (B, L) bool (True on real tokens, <eos> included), L the longest
        caption + 1, at most max_len (longer ones are cut so <eos> fits). Unknown words and cuts warn once."""
        texts = list(texts)
        new = [w for w in self.unknown_words(texts) if w not in self._warned]
        if new:
            self._warned.update(new)
            warnings.warn(f"{len(new)} word(s) not in the vocabulary, read as {self.UNK}: {new}", stacklevel=2)
        tokens = [self.tokenize(text) for text in texts]
        for n in sorted({len(toks) for toks in tokens if len(toks) > max_len - 1}):
            if ("cut", n, max_len) in self._warned:  # once per length: a caption's two views have the same one
                continue
            self._warned.add(("cut", n, max_len))
            warnings.warn(f"a caption of {n} tokens (words and punctuation) is cut to its first {max_len - 1}, "
                          f"all the text encoder reads: its last {n - max_len + 1} are ignored", stacklevel=2)
        unk = self.stoi[self.UNK]
        rows = [[self.stoi.get(t, unk) for t in toks][: max_len - 1] + [self.stoi[self.EOS]] for toks in tokens]
        ids = torch.zeros(len(rows), max(len(r) for r in rows), dtype=torch.long)  # (B, L), <pad> = 0
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
        return ids, ids != 0

    def decode(self, ids) -> str:
        """ids (L,) -> the tokens up to <eos>, joined by spaces (for checking, not for prose)."""
        words = [self.itos[i] for i in ids.tolist()]
        ends = [k for k, w in enumerate(words) if w in (self.EOS, self.PAD)]
        return " ".join(words[: ends[0] if ends else len(words)])

    def state_dict(self) -> dict:
        return {"itos": list(self.itos)}

    @classmethod
    def from_state_dict(cls, state: dict) -> "Vocab":
        return cls(state["itos"])
