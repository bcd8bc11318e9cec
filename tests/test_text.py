"""Text encoder: vocabulary (tokens, unknown words, "", checkpoint round trip) and TextEncoder's two paths."""
import io
import warnings

import pytest
import torch
import torch.nn as nn

from intermoe_min import TextConfig, TextEncoder, Vocab

CAPTIONS = [
    "Two people shake hands.",
    "One person waves; the other waves back!",
    "A person pushes the other, who steps back.",
]
TINY = TextConfig(d_model=16, n_layers=1, n_heads=2, dropout=0.0, max_len=12, d_cond=24)


@pytest.fixture
def vocab():
    return Vocab.build(CAPTIONS)


def test_tokenize_and_build(vocab):
    assert Vocab.tokenize("A man's hand, raised!") == ["a", "man", "'", "s", "hand", ",", "raised", "!"]
    assert vocab.itos[:3] == ["<pad>", "<unk>", "<eos>"]
    counts = [sum(Vocab.tokenize(c).count(w) for c in CAPTIONS) for w in vocab.itos[3:]]
    assert counts == sorted(counts, reverse=True)  # most frequent first (ties in alphabetical order)
    assert Vocab.build(list(reversed(CAPTIONS))).itos == vocab.itos  # order of captions does not matter
    assert "shake" not in Vocab.build(CAPTIONS, min_count=2).stoi


def test_encode_pads_and_closes_with_eos(vocab):
    ids, mask = vocab.encode(["two people shake hands.", "one person waves"], max_len=12)
    assert ids.shape == mask.shape == (2, 6) and ids.dtype == torch.long and mask.dtype == torch.bool
    assert ids[0, 5] == ids[1, 3] == vocab.stoi["<eos>"]
    assert mask.sum(1).tolist() == [6, 4] and (ids[~mask] == 0).all()
    assert vocab.decode(ids[0]) == "two people shake hands ."
    # too long: cut, but <eos> always fits
    ids, mask = vocab.encode(["the other " * 20], max_len=8)
    assert ids.shape == (1, 8) and ids[0, -1] == vocab.stoi["<eos>"]


def test_empty_caption_is_just_eos(vocab):
    ids, mask = vocab.encode([""])
    assert ids.tolist() == [[vocab.stoi["<eos>"]]] and mask.all()


def test_unknown_words_are_reported_once_and_never_crash(vocab):
    texts = ["Two dragons shake hands", "the robot waves"]
    assert vocab.unknown_words(texts) == ["dragons", "robot"]
    with pytest.warns(UserWarning, match="dragons"):
        ids, _ = vocab.encode(texts)
    assert (ids == vocab.stoi["<unk>"]).sum() == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same words again: no second warning
        vocab.encode(texts)


def test_vocab_survives_a_checkpoint(vocab):
    buf = io.BytesIO()
    torch.save({"vocab": vocab.state_dict()}, buf)
    buf.seek(0)
    restored = Vocab.from_state_dict(torch.load(buf)["vocab"])
    assert restored.itos == vocab.itos
    texts = CAPTIONS + ["", "someone unknown"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for a, b in zip(vocab.encode(texts), restored.encode(texts)):
            assert torch.equal(a, b)


def test_text_encoder_shapes_and_padding_independence(vocab):
    torch.manual_seed(0)
    enc = TextEncoder(vocab, TINY).eval()
    texts = ["two people shake hands.", "", "one person waves; the other waves back!"]
    cond, tokens, mask = enc(texts)
    assert cond.shape == (3, 24) and tokens.shape == (3, 10, 16) and mask.shape == (3, 10)
    assert torch.isfinite(cond).all()
    # a caption's embedding does not depend on the padding its batch-mates force on it
    alone, _, _ = enc(texts[:1])
    assert torch.allclose(alone[0], cond[0], atol=1e-5)
    empty, _, _ = enc([""])
    assert torch.allclose(empty[0], cond[1], atol=1e-5)
    # different captions give different embeddings, and gradients reach the word embeddings
    assert not torch.allclose(cond[0], cond[2])
    enc.train()
    enc(texts)[0].pow(2).sum().backward()
    assert enc.embed.weight.grad.abs().sum() > 0


def test_pretrained_sentence_encoder_plugs_in():
    """How a lab with a pretrained sentence encoder (CLIP, a sentence-transformer, ...) uses it: any
    callable list[str] -> (B, d_in) tensor. Here a fake one: a fixed random projection of letter counts."""
    torch.manual_seed(0)
    frozen = nn.Linear(26, 10)  # stands in for the pretrained network's weights
    calls = []

    def fake_sentence_encoder(texts):
        calls.append(len(texts))
        counts = torch.zeros(len(texts), 26)
        for i, t in enumerate(texts):
            for ch in t.lower():
                if "a" <= ch <= "z":
                    counts[i, ord(ch) - 97] += 1
        return frozen(counts)  # (B, 10)

    enc = TextEncoder(None, TINY, pretrained=fake_sentence_encoder)  # no vocabulary needed
    cond, tokens, mask = enc(["two people shake hands", ""])
    assert cond.shape == (2, 24) and tokens.shape == (2, 1, 16) and mask.all()
    cond.pow(2).sum().backward()
    assert enc.from_pretrained.weight.grad is not None  # the Linear on top trains
    assert frozen.weight.grad is None                   # the pretrained encoder stays frozen
    names = [n for n, _ in enc.named_parameters()]
    assert not any(n.startswith("pretrained.") for n in names) and "from_pretrained.weight" in names
    assert not any(k.startswith("pretrained.") for k in enc.state_dict())  # not saved in our checkpoint
    assert sum(p.numel() for p in enc.parameters()) == (10 * 16 + 16) + 2 * 16 + (16 * 24 + 24)


class LengthEncoder(nn.Module):
    """A fake pretrained nn.Module: caption length -> a 5-vector."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(1, 5)

    def forward(self, texts):
        return self.proj(torch.tensor([[float(len(t))] for t in texts]))  # (B, 5)


def test_pretrained_module_is_not_registered():
    """An nn.Module passed as the pretrained encoder stays outside our parameters, state_dict and .train()."""
    torch.manual_seed(0)
    frozen = LengthEncoder().eval()
    enc = TextEncoder(None, TINY, pretrained=frozen)
    enc.train()
    assert not frozen.training
    assert sum(p.numel() for p in enc.parameters()) == (5 * 16 + 16) + 2 * 16 + (16 * 24 + 24)
    assert list(enc.state_dict()) == ["from_pretrained.weight", "from_pretrained.bias", "norm.weight",
                                      "norm.bias", "to_cond.weight", "to_cond.bias"]
    assert enc(["x", ""])[0].shape == (2, 24)
