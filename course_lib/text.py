"""Character and word vocabularies with special tokens, and the encode/decode round trip."""
from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

import torch

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)  # ids 0, 1, 2, 3 in every vocabulary


class Vocab:
    """A token <-> id table. ``level="char"`` splits text into characters, ``"word"`` on spaces.

    Special tokens come first, so ``pad_id == 0`` everywhere in the course.
    """

    def __init__(self, tokens: Sequence[str], level: str = "char"):
        if level not in ("char", "word"):
            raise ValueError(f"level: expected 'char' or 'word', got {level!r}")
        self.level = level
        self.itos: list[str] = list(SPECIALS) + [t for t in tokens if t not in SPECIALS]
        if len(set(self.itos)) != len(self.itos):
            raise ValueError("tokens: expected unique tokens, got duplicates")
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = (self.stoi[s] for s in SPECIALS)

    @classmethod
    def build(cls, texts: Iterable[str] | str, level: str = "char", min_freq: int = 1) -> "Vocab":
        """Vocabulary of all tokens seen at least ``min_freq`` times, most frequent first (ties
        broken alphabetically, so the ids do not depend on the order of the texts)."""
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(min_freq, int) or min_freq < 1:
            raise ValueError(f"min_freq: expected a positive int, got {min_freq!r}")
        counts: Counter = Counter()
        for text in texts:
            counts.update(_split(text, level))
        tokens = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        return cls(tokens, level)

    def __len__(self) -> int:
        return len(self.itos)

    def tokenize(self, text: str) -> list[str]:
        return _split(text, self.level)

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Token ids of ``text``; unknown tokens map to ``unk_id``."""
        if not isinstance(text, str):
            raise TypeError(f"text: expected a str, got {type(text).__name__}")
        ids = [self.stoi.get(t, self.unk_id) for t in self.tokenize(text)]
        return ([self.bos_id] if add_bos else []) + ids + ([self.eos_id] if add_eos else [])

    def decode(self, ids: Sequence[int] | torch.Tensor, skip_special: bool = True) -> str:
        """Text of ``ids``; stops at the first eos and drops pad/bos when ``skip_special``."""
        if isinstance(ids, torch.Tensor):
            if ids.dim() != 1:
                raise ValueError(f"ids: expected a 1-D tensor, got shape {tuple(ids.shape)}")
            ids = ids.tolist()
        tokens = []
        for i in ids:
            if not 0 <= int(i) < len(self.itos):
                raise ValueError(f"ids: expected ids in [0, {len(self.itos)}), got {i}")
            if skip_special and i == self.eos_id:
                break
            if skip_special and i in (self.pad_id, self.bos_id):
                continue
            tokens.append(self.itos[i])
        return ("" if self.level == "char" else " ").join(tokens)


def _split(text: str, level: str) -> list[str]:
    return list(text) if level == "char" else text.split()
