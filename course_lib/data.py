"""Offline data for the course: seeded generated tasks, a text corpus that ships with Python,
batching with padding and masks, and an optional checksummed download helper.

Nothing here touches the network unless you call :func:`download` and allow it.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator, Sequence

import torch

from .utils import fast_mode

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


def _generator(seed: int) -> torch.Generator:
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
    return torch.Generator().manual_seed(seed)


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")


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
