"""Fast attention kernels: tiled online softmax in plain PyTorch, and a FlashAttention-2 Triton kernel.

- ``tiled.py``: ``tiled_attention``, the FlashAttention algorithm written with PyTorch ops, for
  the CPU; memory linear in the sequence length, forward and backward.
- ``flash_attention.py``: ``flash_attention``, the same algorithm as a Triton GPU kernel; import
  it from there (``from course_lib.kernels.flash_attention import flash_attention``). It is not
  imported here, so this package loads without touching Triton; without Triton (macOS, Windows)
  that module still imports and ``flash_attention`` raises a clear error.
- ``checks.py``: the input checks these kernels share with ``course_lib.attention``.
- ``memory.py``: ``peak_memory_mb``, the peak of PyTorch's CPU allocations during a call (from
  the profiler), with which chapter 11, the benchmark and the tests measure attention's memory.

This package sits below ``course_lib.attention`` (which dispatches to it through ``backend=``)
and imports only ``course_lib.utils``.
"""
from course_lib.kernels.checks import check_mask, check_qkv, check_sm_scale
from course_lib.kernels.memory import peak_memory_mb
from course_lib.kernels.tiled import tiled_attention

__all__ = ["tiled_attention", "check_qkv", "check_mask", "check_sm_scale", "peak_memory_mb"]
