"""Peak memory of one call on the CPU, from PyTorch's profiler: how the course measures attention's memory.

On a GPU ``torch.cuda.max_memory_allocated`` gives a call's peak directly; the CPU has no such
counter. PyTorch's profiler, asked for ``profile_memory=True``, records every allocation (a
positive number of bytes) and every free (a negative one) that PyTorch's CPU allocator makes.
Adding them up in time order, the running total peaks at the memory the call needed beyond what
was alive before it. It counts only PyTorch's own tensors, not the Python interpreter or the
libraries, which is what we want to compare attention backends.

Used by chapter 11, ``benchmarks/attention.py`` and ``tests/test_attention_backends.py``.
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Iterator

from torch.profiler import ProfilerActivity, profile

__all__ = ["peak_memory_mb", "quiet_stderr"]


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null inside the block.

    The profiler's C++ library logs a few lines per run straight to the process's stderr, past
    Python's ``sys.stderr`` (so ``contextlib.redirect_stderr`` cannot catch them).
    """
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_memory_mb(fn: Callable[[], Any], *, quiet: bool = True) -> float:
    """Peak of PyTorch's CPU allocations while ``fn()`` runs, above those alive before it, in MiB.

    ``fn`` takes no argument (wrap a call in a lambda); its result is discarded, so memory it
    returns still counts, since it was allocated during the call. ``quiet=False`` keeps the
    profiler's own log lines on stderr. Example: ``peak_memory_mb(lambda: attn(q, k, v).sum())``.
    """
    if not callable(fn):
        raise TypeError(f"fn: expected a function of no argument, got {type(fn).__name__}")
    with quiet_stderr() if quiet else contextlib.nullcontext():
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fn()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]")  # nbytes > 0: an allocation, < 0: a free
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak / 2**20
