"""Input checks shared by the attention kernels and ``course_lib.attention``.

Every error names the argument, what was expected and what was given.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch

from course_lib.utils import check_shape


def check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> Tuple[int, int, int, int, int]:
    """Check q (B, H, T, D), k and v (B, H, S, D): rank, sizes, dtype, device. Returns B, H, T, S, D."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    check_shape(q, ("B", "H", "T", "D"), "q")
    B, H, T, D = q.shape
    for name, t in (("k", k), ("v", v)):
        check_shape(t, ("B", "H", "S", "D"), name)
        if (t.shape[0], t.shape[1], t.shape[3]) != (B, H, D):
            raise ValueError(f"{name}: expected shape (B, H, S, D) = ({B}, {H}, S, {D}) to match "
                             f"q of shape {tuple(q.shape)}, got {tuple(t.shape)}")
    S = k.shape[2]
    if v.shape[2] != S:
        raise ValueError(f"v: expected shape (B, H, S, D) with S = {S} as in k, got {tuple(v.shape)}")
    if T == 0 or S == 0 or D == 0:
        raise ValueError(f"q, k: expected non-empty T, S and D, got q {tuple(q.shape)}, k {tuple(k.shape)}")
    if not q.is_floating_point():
        raise TypeError(f"q: expected a floating-point dtype, got {q.dtype}")
    for name, t in (("k", k), ("v", v)):
        if t.dtype != q.dtype:
            raise TypeError(f"{name}: expected dtype {q.dtype} like q, got {t.dtype}")
        if t.device != q.device:
            raise ValueError(f"{name}: expected device {q.device} like q, got {t.device}")
    return B, H, T, S, D


def check_mask(mask: Optional[torch.Tensor], B: int, H: int, T: int, S: int,
               device: torch.device) -> Optional[torch.Tensor]:
    """Check that ``mask`` is a bool tensor broadcastable to (B, H, T, S) on ``device``; return it."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask: expected a bool tensor broadcastable to (B, H, T, S), "
                        f"got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(f"mask: expected dtype torch.bool (True = may attend), got {mask.dtype}")
    target = (B, H, T, S)
    try:
        ok = mask.dim() <= 4 and torch.broadcast_shapes(mask.shape, target) == target
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(f"mask: expected a shape broadcastable to (B, H, T, S) = {target}, "
                         f"got {tuple(mask.shape)}")
    if mask.device != device:
        raise ValueError(f"mask: expected device {device} like q, got {mask.device}")
    return mask


def check_sm_scale(sm_scale: Optional[float], D: int) -> float:
    """The softmax scale: ``sm_scale`` if given (a positive number), else 1 / sqrt(D)."""
    if sm_scale is None:
        return 1.0 / math.sqrt(D)
    if isinstance(sm_scale, bool) or not isinstance(sm_scale, (int, float)) or not sm_scale > 0:
        raise ValueError(f"sm_scale: expected a positive float or None (= 1/sqrt(D)), got {sm_scale!r}")
    return float(sm_scale)
