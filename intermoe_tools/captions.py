"""Captions rewritten to follow an augmentation, and the role a caption gives each person.

`mirror_caption` swaps left and right (a mirrored clip's caption, as InterGen's datasets/interhuman.py mirrors its
text), `swap_caption` the first and second person (a clip whose people are swapped; beyond the paper, each person
also reads the caption from its own side: InterMoEConfig.egocentric_text), and `caption_initiator` says which
person a caption names first (the role vectors, InterMoEConfig.role_embedding). It imports nothing of this
project's, so intermoe_min imports it (and offers its functions as its own: im.mirror_caption).
"""
from __future__ import annotations

import re


def _swap_words(text: str, pairs: list[tuple[str, str]]) -> str:
    """Swap each word of a pair for the other in one pass, keeping capitalisation."""
    table = {}
    for a, b in pairs:
        table[a], table[b] = b, a
    pattern = re.compile(r"\b(" + "|".join(sorted(map(re.escape, table), key=len, reverse=True)) + r")\b",
                         re.IGNORECASE)

    def repl(m):
        word, new = m.group(0), table[m.group(0).lower()]
        if word.isupper() and len(word) > 1:
            return new.upper()
        return new[0].upper() + new[1:] if word[0].isupper() else new
    return pattern.sub(repl, text)


_MIRROR_WORDS = [("left", "right"), ("leftward", "rightward"), ("leftwards", "rightwards"),
                 ("lefthand", "righthand"), ("left-hand", "right-hand"), ("left-handed", "right-handed"),
                 ("clockwise", "counterclockwise"), ("counter-clockwise", "anti-clockwise")]


def mirror_caption(text: str) -> str:
    """Swap left/right and clockwise/counterclockwise in a caption; twice gives it back. 'anticlockwise'
    becomes 'clockwise', the hyphenated spellings each other: the meaning always flips."""
    return re.sub(r"\banticlockwise\b", "clockwise", _swap_words(text, _MIRROR_WORDS), flags=re.IGNORECASE)


def swap_caption(text: str) -> str:
    """Captions that name 'the first person' / 'the second person' follow a person swap."""
    return _swap_words(text, [("first person", "second person"), ("person 1", "person 2"),
                              ("person one", "person two")])


_ROLE_RE = re.compile(r"\b(?:(first|second) person|person (1|2|one|two))\b", re.IGNORECASE)


def caption_initiator(caption: str) -> int | None:
    """0 if a caption names 'the first person' ('person 1', 'person one') before the second, 1 if the
    second first, None if it names neither: in InterSynth the person named first initiates."""
    m = _ROLE_RE.search(caption)
    return None if m is None else 0 if (m.group(1) or m.group(2)).lower() in ("first", "1", "one") else 1
