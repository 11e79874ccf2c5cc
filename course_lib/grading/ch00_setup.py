"""Check helpers for the exercises of chapter 00 (setup and tour): how graded exercises work."""
from __future__ import annotations

from typing import Callable

import torch

from .core import Feedback, call, checker, expect_close, expect_tensor


@checker
def check_make_batch(make_batch: Callable, *, B: int = 2, T: int = 3, C: int = 4) -> None:
    """``make_batch(B, T, C)`` must return a float32 tensor of zeros of shape (B, T, C)."""
    got = call(make_batch, B, T, C, name="make_batch")
    got = expect_tensor(got, {"B": B, "T": T, "C": C}, "make_batch")
    if got.dtype != torch.float32:
        hint = " torch.zeros(...) gives float32 by default." if not got.is_floating_point() else ""
        raise Feedback(f"`make_batch` returned a tensor of dtype {got.dtype}; expected torch.float32, "
                       f"the dtype models work in.{hint}")
    expect_close(got, torch.zeros(B, T, C), "make_batch",
                 mistakes={"filled with ones: the batch should be all zeros (torch.zeros).": torch.ones(B, T, C)})
