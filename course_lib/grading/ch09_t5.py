"""Check helpers for the exercises of chapter 09 (T5).

One helper per exercise; each builds its inputs from ``seed``, calls the learner's function
safely, and names the usual mistake when the answer is wrong:

1. ``check_bucket``: the sign of the offset flipped (query - key), the exact range not halved (or
   halved twice), the logarithm's range wrong (log(max_distance) instead of
   log(max_distance / exact)), no clamp at the last bucket, the decoder's future not collapsed
   onto bucket 0, the encoder's halves not split;
2. ``check_corrupt``: one sentinel per token instead of per span (overlapping spans), the same
   sentinel for every span, sentinels numbered from the end, the closing sentinel forgotten, the
   dropped tokens left in the input;
3. ``check_bucket_predictions``: the exact range, the direction of the halves, saturation.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..t5 import relative_position_bucket
from .core import Feedback, call, checker, describe, expect_close, expect_tensor


def _variant(r, bidirectional, n, max_distance, *, sign=1, halve=True, exact_div=2, log_den=None,
             clamp=True, causal_abs=False):
    """The bucket function with one knob per known mistake (defaults: the right answer)."""
    r = sign * r
    out = torch.zeros_like(r)
    if bidirectional:
        if halve:
            n //= 2
        out = out + (r > 0).long() * n
        r = r.abs()
    else:
        r = r.abs() if causal_abs else -torch.clamp(r, max=0)
    exact = max(n // exact_div, 1)
    den = math.log(max_distance / exact) if log_den is None else log_den(max_distance, exact)
    large = exact + (torch.log(r.float() / exact) / den * (n - exact)).long()
    if clamp:
        large = torch.clamp(large, max=n - 1)
    return out + torch.where(r < exact, r, large)


# -- exercise 1: the bucket function ---------------------------------------------------------------

@checker
def check_bucket(fn: Callable, *, bidirectional: bool = True, num_buckets: int = 32,
                 max_distance: int = 128, span: int = 300) -> None:
    """``fn(relative_position (N,), bidirectional, num_buckets, max_distance)`` must equal
    ``course_lib.t5.relative_position_bucket`` on the offsets -span..span."""
    r = torch.arange(-span, span + 1)
    got = call(fn, r.clone(), bidirectional, num_buckets, max_distance, name="relative_position_bucket")
    got = expect_tensor(got, {"N": r.numel()}, "relative_position_bucket", dtype=None)
    if got.is_floating_point() and not torch.equal(got, got.round()):
        raise Feedback(f"relative_position_bucket: buckets are whole numbers; you returned fractions "
                       f"such as {got[got != got.round()][0].item():.3f}. Convert the logarithmic part "
                       "with .long() (it rounds towards zero) before adding it.")
    want = relative_position_bucket(r, bidirectional, num_buckets, max_distance)
    args = (r, bidirectional, num_buckets, max_distance)
    expect_close(got.float(), want.float(), "relative_position_bucket", atol=0, rtol=0, mistakes={
        "the sign of the offset is flipped: relative_position is key - query (j - i), so keys after "
        "the query have r > 0 and go to the upper half in the encoder.":
            lambda: _variant(*args, sign=-1).float(),
        "the exact range is wrong: in the encoder each direction gets num_buckets // 2 buckets, and "
        "half of those (num_buckets // 4) are exact. Did you forget to halve num_buckets first?":
            lambda: _variant(*args, halve=False).float(),
        "the exact range is wrong: half of each direction's buckets are exact (n // 2), not a quarter.":
            lambda: _variant(*args, exact_div=4).float(),
        "the logarithmic range is wrong: it runs from the end of the exact range to max_distance, "
        "so divide log(r / exact) by log(max_distance / exact), not by log(max_distance).":
            lambda: _variant(*args, log_den=lambda m, e: math.log(m)).float(),
        "offsets beyond max_distance must all share the last bucket: clamp the logarithmic part "
        "with min(..., n - 1).":
            lambda: _variant(*args, clamp=False).float(),
        "in the decoder (bidirectional=False) keys after the query are never attended: offsets > 0 "
        "collapse onto 0 with -min(r, 0); you used |r|, which gives the future the past's buckets.":
            lambda: _variant(*args, causal_abs=True).float(),
        "bidirectional=True must split the buckets into two halves, one per direction; you treated "
        "the encoder like the causal decoder.":
            lambda: _variant(r, False, num_buckets, max_distance).float(),
    })


# -- exercise 2: span corruption ---------------------------------------------------------------------

def _spans(mask):
    """(start, end) of each run of True in mask."""
    out, start = [], None
    for t, m in enumerate(list(mask) + [False]):
        if m and start is None:
            start = t
        elif not m and start is not None:
            out.append((start, t))
            start = None
    return out


def _corrupt(ids, mask, sentinels, *, per_token=False, same=False, backwards=False, closing=True,
             keep_noise=False):
    spans = [(t, t + 1) for t in range(len(ids)) if mask[t]] if per_token else _spans(mask)
    n = len(spans)
    number = (lambda k: 0) if same else ((lambda k: n - k) if backwards else (lambda k: k))
    inputs, targets, t = [], [], 0
    for k, (a, b) in enumerate(spans):
        inputs += ids[t:b] if keep_noise else ids[t:a]
        inputs.append(sentinels[number(k)])
        targets += [sentinels[number(k)]] + ids[a:b]
        t = b
    inputs += ids[t:]
    if closing:
        targets.append(sentinels[0 if same else (0 if backwards else n)])
    return inputs, targets


def _case(seed: int):
    g = torch.Generator().manual_seed(9900 + seed)
    length = 24 + seed % 7
    ids = (torch.randint(10, 60, (length,), generator=g)).tolist()
    mask = [False] * length
    for start, size in ((2, 3), (9, 1), (14, 2), (length - 3, 3)):   # spans of lengths 3, 1, 2, 3
        for t in range(start, start + size):
            mask[t] = True
    return ids, mask, list(range(100, 110))


@checker
def check_corrupt(fn: Callable, *, seed: int = 0) -> None:
    """``fn(ids, noise_mask, sentinel_ids) -> (inputs, targets)`` (lists of ints) as in T5."""
    ids, mask, sentinels = _case(seed)
    got = call(fn, list(ids), list(mask), list(sentinels), name="corrupt")
    if not (isinstance(got, (tuple, list)) and len(got) == 2):
        raise Feedback(f"corrupt: expected a pair (inputs, targets) of lists of ints, got {describe(got)}")
    inputs, targets = ([int(t) for t in part] if isinstance(part, (list, tuple, torch.Tensor)) else part
                       for part in got)
    if not isinstance(inputs, list) or not isinstance(targets, list):
        raise Feedback(f"corrupt: expected two lists of ints, got {describe(got)}")
    want = _corrupt(ids, mask, sentinels)
    if (inputs, targets) == want:
        return
    mistakes = {
        "each dropped token got its own sentinel: a span of consecutive noise tokens is replaced by "
        "ONE sentinel, and its tokens follow that sentinel in the targets.": dict(per_token=True),
        "every span used the same sentinel: number them in order, sentinel_ids[0] for the first span, "
        "sentinel_ids[1] for the second, ...": dict(same=True),
        "the sentinels are out of order: the first span (leftmost) gets sentinel_ids[0].": dict(backwards=True),
        "the targets need one closing sentinel after the last span (sentinel_ids[number of spans]).":
            dict(closing=False),
        "the dropped tokens are still in the inputs: each span is replaced by its sentinel, not "
        "followed by it.": dict(keep_noise=True),
    }
    for message, knobs in mistakes.items():
        if (inputs, targets) == _corrupt(ids, mask, sentinels, **knobs):
            raise Feedback(f"corrupt: {message}")
    part = "inputs" if inputs != want[0] else "targets"
    raise Feedback(f"corrupt: the {part} are wrong. For ids {ids[:8]}... with noise spans at "
                   f"{_spans(mask)}, expected {part} {want[0] if part == 'inputs' else want[1]}, "
                   f"got {inputs if part == 'inputs' else targets}.")


# -- exercise 3: predictions ---------------------------------------------------------------------------

@checker
def check_bucket_predictions(fn: Callable) -> None:
    """``fn()`` returns a dict with "first_shared" (the smallest offset r > 0 whose bucket equals
    that of r + 1, encoder, 32 buckets, max_distance 128), "plus_1000" and "minus_1000" (the
    encoder buckets of offsets +1000 and -1000)."""
    got = call(fn, name="predictions")
    keys = ("first_shared", "plus_1000", "minus_1000")
    if not isinstance(got, dict) or any(k not in got for k in keys):
        raise Feedback(f"predictions: expected a dict with keys {keys}, got {describe(got)}")
    for k in keys:
        if not isinstance(got[k], int) or isinstance(got[k], bool):
            raise Feedback(f"predictions: {k} must be an int, got {describe(got[k])}")
    if got["first_shared"] != 8:
        hint = {16: "16 is num_buckets // 2, the buckets of ONE direction; half of those are exact.",
                4: "a quarter of one direction's buckets would be 4; it is half: 16 // 2 = 8.",
                7: "offset 7 is the last exact one; r and r + 1 first share a bucket one later."}
        raise Feedback("predictions: first_shared is wrong. " + hint.get(
            got["first_shared"], "In the encoder each direction has 16 buckets; the first 8 offsets "
            "(0..7) are exact."))
    if got["plus_1000"] != 31:
        hint = (" Keys after the query (r > 0) use the upper half, 16..31." if got["plus_1000"] == 15
                else " Past max_distance every offset shares the last bucket of its half.")
        raise Feedback("predictions: plus_1000 is wrong." + hint)
    if got["minus_1000"] != 15:
        hint = (" Keys before the query (r < 0) use the lower half, 0..15." if got["minus_1000"] == 31
                else " Past max_distance every offset shares the last bucket of its half.")
        raise Feedback("predictions: minus_1000 is wrong." + hint)
