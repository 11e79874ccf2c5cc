"""Character and word vocabularies with special tokens, the encode/decode round trip, and a
byte-level byte-pair encoding (BPE, chapter 07)."""
from __future__ import annotations

import heapq
import json
import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import torch

from course_lib.utils import check_int

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


# ----------------------------------------------------------------------------------------------
# Byte-pair encoding (chapter 07), byte-level as in GPT-2
# ----------------------------------------------------------------------------------------------
# Text -> UTF-8 bytes (ids 0..255, so any Unicode string can be encoded and nothing is unknown).
# Training repeatedly merges the most frequent adjacent pair of ids into a new id (256, 257, ...).
# Merges never cross the boundary of a pre-token (a word with its leading space, a run of digits,
# of punctuation or of spaces), so pairs are counted once per distinct word, weighted by its count,
# and after a merge only the words that held the merged pair are recounted (incremental counting).
# GPT-2's split, with Python's ``re`` classes: [^\W\d_] letters, \d digits, the rest punctuation.
# Every character falls in some alternative, so the pieces join back to the text exactly.
BPE_SPLIT = re.compile(r"'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\w\s]|_)+|\s+(?!\S)|\s+")


def bpe_pretokenize(text: str) -> list[str]:
    """Split ``text`` into the pieces BPE merges inside; ``"".join(pieces) == text``."""
    if not isinstance(text, str):
        raise TypeError(f"text: expected a str, got {type(text).__name__}")
    return BPE_SPLIT.findall(text)


def _merge_pair(symbols: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """``symbols`` with every (left-to-right, non-overlapping) occurrence of ``pair`` replaced."""
    out, i, n = [], 0, len(symbols)
    while i < n:
        if i + 1 < n and symbols[i] == pair[0] and symbols[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


class BPE:
    """A byte-level byte-pair-encoding tokenizer.

    Ids 0..255 are the bytes; id ``256 + i`` is merge ``i`` (the concatenation of its pair's
    bytes); the ``specials`` (e.g. ``"<|endoftext|>"``, ``"[MASK]"``) come last and are never
    produced by :meth:`encode` from text (look their ids up with :meth:`special_id`).
    """

    def __init__(self, merges: Sequence[tuple[int, int]] = (), specials: Sequence[str] = ()):
        self.merges: list[tuple[int, int]] = []
        self.vocab: list[bytes] = [bytes([b]) for b in range(256)]  # id -> its bytes
        for i, pair in enumerate(merges):
            a, b = (int(x) for x in pair)
            if not (0 <= a < len(self.vocab) and 0 <= b < len(self.vocab)):
                raise ValueError(f"merges[{i}]: expected ids below {len(self.vocab)}, got {pair!r}")
            self.merges.append((a, b))
            self.vocab.append(self.vocab[a] + self.vocab[b])
        self.ranks = {pair: i for i, pair in enumerate(self.merges)}  # earlier merges apply first
        specials = list(specials)
        if len(set(specials)) != len(specials) or not all(isinstance(s, str) and s for s in specials):
            raise ValueError(f"specials: expected distinct non-empty strings, got {specials!r}")
        self.specials = {s: len(self.vocab) + i for i, s in enumerate(specials)}
        self._cache: dict[str, list[int]] = {}
        self.merge_counts: list[int] = []  # filled by train: the count of each pair when merged

    # --- training -----------------------------------------------------------------------------
    @classmethod
    def train(cls, text: str, vocab_size: int, specials: Sequence[str] = (),
              progress: bool = False) -> "BPE":
        """Learn ``vocab_size - 256 - len(specials)`` merges from ``text`` (fewer if the text runs
        out of pairs that occur at least twice). ``bpe.merge_counts[i]`` is how often merge i's
        pair occurred when it was chosen. Ties go to the smallest pair, so training is deterministic."""
        if not isinstance(text, str):
            raise TypeError(f"text: expected a str, got {type(text).__name__}")
        n_merges = check_int(vocab_size, "vocab_size", minimum=256 + len(specials)) - 256 - len(specials)
        word_counts = Counter(bpe_pretokenize(text))
        words = [list(w.encode("utf-8")) for w in word_counts]
        freqs = list(word_counts.values())
        pair_counts: Counter = Counter()
        where: dict[tuple[int, int], set[int]] = {}  # pair -> the words that contain it
        for w, (symbols, f) in enumerate(zip(words, freqs)):
            for pair in zip(symbols, symbols[1:]):
                pair_counts[pair] += f
                where.setdefault(pair, set()).add(w)
        heap = [(-c, pair) for pair, c in pair_counts.items()]  # lazy: stale entries are skipped
        heapq.heapify(heap)
        merges, counts = [], []
        bar = None
        if progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=n_merges, desc="BPE merges", leave=False)
        while len(merges) < n_merges and heap:
            neg, pair = heapq.heappop(heap)
            if pair_counts.get(pair, 0) != -neg:
                continue  # stale entry
            if -neg < 2:
                break  # merging a pair seen once compresses nothing worth a new id
            new_id = 256 + len(merges)
            merges.append(pair)
            counts.append(-neg)
            changed: set = set()
            for w in where.pop(pair, ()):
                old, f = words[w], freqs[w]
                for p in zip(old, old[1:]):
                    pair_counts[p] -= f
                    changed.add(p)
                new = _merge_pair(old, pair, new_id)
                words[w] = new
                for p in zip(new, new[1:]):
                    pair_counts[p] += f
                    where.setdefault(p, set()).add(w)
                    changed.add(p)
            for p in changed:
                c = pair_counts[p]
                if c > 0:
                    heapq.heappush(heap, (-c, p))
                else:
                    pair_counts.pop(p, None)
                    where.pop(p, None)
            pair_counts.pop(pair, None)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        bpe = cls(merges, specials)
        bpe.merge_counts = counts
        return bpe

    # --- encode / decode ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.vocab) + len(self.specials)

    def special_id(self, token: str) -> int:
        if token not in self.specials:
            raise KeyError(f"token: expected one of the specials {list(self.specials)}, got {token!r}")
        return self.specials[token]

    def _encode_piece(self, piece: str) -> list[int]:
        cached = self._cache.get(piece)
        if cached is not None:
            return cached
        symbols = list(piece.encode("utf-8"))
        while len(symbols) > 1:
            # the adjacent pair that was learned first is merged first, as in training
            pair = min(zip(symbols, symbols[1:]), key=lambda p: self.ranks.get(p, len(self.ranks)))
            if pair not in self.ranks:
                break
            symbols = _merge_pair(symbols, pair, 256 + self.ranks[pair])
        if len(self._cache) < 100_000:
            self._cache[piece] = symbols
        return symbols

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (any Unicode string; ``decode(encode(text)) == text``)."""
        ids: list[int] = []
        for piece in bpe_pretokenize(text):
            ids.extend(self._encode_piece(piece))
        return ids

    def decode(self, ids: Sequence[int] | torch.Tensor, skip_special: bool = False) -> str:
        """Text of ``ids``. Byte sequences that are not valid UTF-8 (a sampled id may cut a
        character in two) become U+FFFD. Specials are written out unless ``skip_special``."""
        if isinstance(ids, torch.Tensor):
            if ids.dim() != 1:
                raise ValueError(f"ids: expected a 1-D tensor, got shape {tuple(ids.shape)}")
            ids = ids.tolist()
        by_id = {i: s for s, i in self.specials.items()}
        parts, pending = [], bytearray()
        for i in ids:
            i = int(i)
            if 0 <= i < len(self.vocab):
                pending += self.vocab[i]
            elif i in by_id:
                parts.append(pending.decode("utf-8", errors="replace"))
                pending = bytearray()
                if not skip_special:
                    parts.append(by_id[i])
            else:
                raise ValueError(f"ids: expected ids in [0, {len(self)}), got {i}")
        parts.append(pending.decode("utf-8", errors="replace"))
        return "".join(parts)

    def token_str(self, i: int) -> str:
        """One token as readable text (``repr``-style escapes for partial UTF-8), for tables."""
        if int(i) in self.specials.values():
            return next(s for s, j in self.specials.items() if j == int(i))
        return self.vocab[int(i)].decode("utf-8", errors="backslashreplace")

    # --- save / load ----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the merges and specials as JSON; :meth:`load` reads them back."""
        path = Path(path)
        path.write_text(json.dumps({"format": "course_lib.text.BPE", "version": 1,
                                    "merges": [list(p) for p in self.merges],
                                    "specials": list(self.specials)}))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "BPE":
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict) or data.get("format") != "course_lib.text.BPE":
            raise ValueError(f"path: expected a file written by BPE.save, got {str(path)!r}")
        return cls([tuple(p) for p in data["merges"]], data["specials"])

