"""Fast attention kernels (chapter 11): tiled online softmax in plain PyTorch, and a
FlashAttention-2 Triton kernel.

- ``tiled.py``: ``tiled_attention``, the FlashAttention algorithm written with PyTorch ops, for
  the CPU; memory linear in the sequence length, forward and backward.
- ``flash_triton.py``: the same algorithm as a Triton GPU kernel. ``flash_attention`` is the
  function: ``from course_lib.kernels import flash_attention``; ``flash_attention(q, k, v,
  causal=True)``. Triton is imported only when it is first asked for (the module-level
  ``__getattr__`` below), so this package loads without touching Triton; without Triton (macOS,
  Windows) the module still imports and ``flash_attention`` raises a clear error.
- ``memory.py``: ``peak_memory_mb``, the peak of PyTorch's CPU allocations during a call (from
  the profiler), with which chapter 11, the benchmark and the tests measure attention's memory.

This package builds on ``course_lib.attention`` (chapter 05: the input checks); the attention
dispatch there loads it only when its "tiled" or "triton" backend is asked for.
"""
from course_lib.kernels.memory import peak_memory_mb
from course_lib.kernels.tiled import tiled_attention

__all__ = ["tiled_attention", "flash_attention", "peak_memory_mb"]


def __getattr__(name: str):
    if name == "flash_attention":  # imports Triton (if installed) on first use only
        from course_lib.kernels.flash_triton import flash_attention

        return flash_attention
    raise AttributeError(f"module 'course_lib.kernels' has no attribute {name!r}")
