"""Check helpers for the exercises of chapter 00 (setup and tour): how graded exercises work.

1. ``check_make_batch``: the axes in the wrong order, the wrong dtype, ones instead of zeros;
2. a diagnosis, the chapter's ``mse`` without ``.squeeze(-1)``: ``check_broadcast_shape`` names
   the shape of the model's output (B, 1), the fixed comparison (B,) and the trailing axes aligned
   the wrong way (1, B); ``check_loss_floor`` names a loss of 0 (the model would learn), B - 1 in
   the variance, a standard deviation, the cost of predicting 0, twice the variance (the mean
   squared difference of two targets).
"""
from __future__ import annotations

import math
import warnings
from typing import Callable

import torch
import torch.nn.functional as F

from .core import Feedback, call, checker, describe, expect_close, expect_number, expect_tensor, generator


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


# -- exercise 2: diagnosing a loss that does not learn ----------------------------------------------

def broken_mse(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The chapter's ``mse`` without ``.squeeze(-1)``: the model's output (B, 1) against targets (B,)."""
    x, y = batch
    with warnings.catch_warnings():           # torch warns about the sizes; the exercise is about why
        warnings.simplefilter("ignore", UserWarning)
        return F.mse_loss(model(x), y)


def _targets(seed: int, batch: int) -> torch.Tensor:
    """Targets like the chapter's line: y = x @ [2, -1, 0.5] + 1, shape (B,)."""
    x = torch.randn(batch, 3, generator=generator(200 + seed))
    return x @ torch.tensor([2.0, -1.0, 0.5]) + 1.0


@checker
def check_broadcast_shape(broadcast_shape: Callable, *, batches: tuple[int, ...] = (64,)) -> None:
    """``broadcast_shape(B)`` must return the shape of the squared differences that ``broken_mse``
    averages for a batch of B examples, a tuple of ints; torch's own ``mse_loss`` with
    ``reduction="none"`` measures it."""
    for B in batches:
        got = call(broadcast_shape, B, name="broadcast_shape")
        if not isinstance(got, (tuple, list)) or not all(isinstance(d, int) and not isinstance(d, bool) for d in got):
            raise Feedback(f"`broadcast_shape({B})` returned {describe(got)}; expected a shape: a tuple of ints "
                           "such as (2, 3), one per axis.")
        got = tuple(got)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            want = tuple(F.mse_loss(torch.zeros(B, 1), torch.zeros(B), reduction="none").shape)
        if got == want:
            continue
        mistakes = [
            ((B, 1), "that is the shape of the model's output. `mse_loss` compares it with the targets y of "
                     "shape (B,), and broadcasting stretches the two against each other."),
            ((B,), "that is the shape the chapter's `mse` compares, after `.squeeze(-1)`: the fix. Without it "
                   "the output (B, 1) meets the targets (B,), and broadcasting stretches both."),
            ((1, B), "broadcasting aligns the *trailing* axes: y (B,) acts as (1, B), the output is (B, 1), and "
                     "every axis of size 1 stretches to the other's size."),
            ((B * B,), "right number of elements, but broadcasting keeps two axes: one for the predictions, one "
                       "for the targets."),
        ]
        hint = next((text for shape, text in mistakes if got == shape and shape != want),
                    "line the shapes up from the right, (B, 1) above (B,), and stretch each axis of size 1 to "
                    "the size of the other.")
        raise Feedback(f"`broadcast_shape({B})` returned {got}: {hint} Then every prediction is compared "
                       "with every target of the batch, not with its own.")


def _floor(y: torch.Tensor) -> float:
    """The lowest value of ``broken_mse`` on targets y, computed with torch's own broadcasting.

    The loss is the mean over all pairs (i, j) of (p_i - y_j)^2: for each p_i, a parabola whose
    minimum is the mean of y. So the best model predicts mean(y) everywhere, whatever its input.
    """
    best = y.double().mean().expand(len(y), 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return F.mse_loss(best, y.double()).item()


@checker
def check_loss_floor(loss_floor: Callable, *, seed: int = 0, batch: int = 8) -> None:
    """``loss_floor(y)`` for targets y (B,) must return the lowest value ``broken_mse`` can reach on
    that batch, whatever the model predicts: the variance of y, dividing by B."""
    y = _targets(seed, batch)
    got = expect_number(call(loss_floor, y.clone(), name="loss_floor"), "loss_floor", "the lowest loss, a float")
    if not math.isfinite(got):
        hint = (" With one example, torch.var divides by B - 1 = 0 (its default correction); the loss is a "
                "plain mean." if batch == 1 else "")
        raise Feedback(f"`loss_floor` returned {got} for a batch of {batch} targets.{hint}")
    want = _floor(y)
    if math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-6):
        return
    yd = y.double()
    B = len(yd)
    mistakes = [
        (0.0, "that would be a model that learns. Here every prediction is compared with every target of "
              "the batch (the (B, B) differences), and no single prediction equals them all."),
        (yd.var(correction=1).item() if B > 1 else math.nan,
         "you divided by B - 1 (torch.var's default, Bessel's correction). The loss is a plain mean over "
         "all B x B pairs: divide by B (torch.var(y, correction=0))."),
        (yd.std(correction=0).item(), "that is a standard deviation; a mean *squared* error is in squared units."),
        (yd.std(correction=1).item() if B > 1 else math.nan,
         "that is a standard deviation (dividing by B - 1); a mean *squared* error is in squared units, "
         "and the mean divides by B."),
        ((yd ** 2).mean().item(), "that is the loss of predicting 0 for every example. The model can do "
                                  "better: predict one constant for every example, the best one."),
        (2 * want, "that is the mean squared difference between two targets, mean over (i, j) of "
                   "(y_i - y_j)^2. But the predictions are free: which single value is closest, on "
                   "average, to all the targets?"),
    ]
    for value, text in mistakes:
        if math.isfinite(value) and math.isclose(got, value, rel_tol=1e-4, abs_tol=1e-6) \
                and not math.isclose(value, want, rel_tol=1e-4, abs_tol=1e-6):
            raise Feedback(f"`loss_floor` returned {got:.5g} for a batch of {B} targets: {text}")
    raise Feedback(f"`loss_floor` returned {got:.5g} for a batch of {B} targets; the broken loss can go no "
                   f"lower than {want:.5g}. Write it as a mean over all pairs (i, j) of (p_i - y_j)^2 and find "
                   "the best p_i: it does not depend on x_i.")
