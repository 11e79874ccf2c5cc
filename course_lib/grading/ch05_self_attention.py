"""Check helpers for the exercises of chapter 05 (self-attention).

One helper per exercise; each builds its inputs from ``seed``, calls the learner's function
safely, and names the usual mistake when the answer is wrong:

1. ``check_scaled_attention``: forgot the 1/sqrt(d_k) scale or divided by d_k, softmax over the
   wrong axis, K not transposed, output and weights swapped, the scores or the plain mean of the
   values returned, the keys weighted instead of the values;
2. ``check_causal_mask``: inverted (upper triangle), the diagonal excluded, a float or int mask;
3. ``check_masked_attention``: mask ignored or inverted, masked scores filled with 0 instead of
   -inf, weights multiplied by the mask without renormalising, the scale forgotten;
4. ``check_split_heads`` and ``check_merge_heads``: a reshape straight to (B, H, T, D) without the
   transpose, heads interleaved (channel c to head c mod H), axes in the wrong order (a shape
   error that names them), the transpose forgotten in merge;
5. ``check_sinusoidal``: sin and cos swapped, halves concatenated instead of interleaved, the
   exponent i/d instead of 2i/d, positions from 1, the frequency multiplied instead of divided;
6. ``check_order_predictions`` (a prediction, measured on the library's attention): the causal
   mask taken for a content mask like padding, the padding mask taken for a positional one, RoPE
   taken as order-blind (offsets change under a permutation) or as shift-sensitive (a shift keeps
   every offset), added sinusoids taken as shift-invariant (PE_t . PE_s is, x_t + PE_t is not),
   self-attention without positions taken as order-aware; not a dict of six bools.

Glossary: B batch, T queries, S keys, D head dim (d_k), H heads, C = H * D channels.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..attention import (MultiHeadAttention, apply_rope, merge_heads, naive_attention, sinusoidal_positions,
                         split_heads)
from .core import Feedback, call, checker, describe, expect_close, expect_tensor, expect_tuple, generator

_EQUATION = "softmax(Q K^T / sqrt(d_k)) V"


_gen = generator


def _reference(q, k, v, mask=None, scale=True):
    # Not course_lib.attention.naive_attention: that one takes (B, H, T, D) with v as wide as q, and
    # these checks use values of another width (D_v != D) to tell the axes apart.
    scores = q @ k.transpose(-2, -1)
    if scale:
        scores = scores / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


# -- exercise 1: scaled dot-product attention ------------------------------------------------------------

@checker
def check_scaled_attention(attention: Callable, *, seed: int = 0, batch: int = 2, T: int = 3, S: int = 5,
                           D: int = 4, D_v: int = 6) -> None:
    """``attention(q (B, T, D), k (B, S, D), v (B, S, D_v))`` must return ``(output (B, T, D_v),
    weights (B, T, S))`` with weights = softmax(q k^T / sqrt(D)) over the keys.

    With S == D (e.g. ``S=4, D=4``) forgetting to transpose k runs without an error, so only the
    values can tell; with S != D it raises and the hint says why.
    """
    g = _gen(5100 + seed)
    q = 1.5 * torch.randn(batch, T, D, generator=g)
    k = 1.5 * torch.randn(batch, S, D, generator=g)
    v = torch.randn(batch, S, D_v, generator=g)
    got = call(attention, q, k, v, name="attention", hints={
        "cannot be multiplied": "q (B, T, D) times k^T (B, D, S) gives the (B, T, S) scores: transpose the "
                                "last two axes of k, k.transpose(-2, -1).",
        "must match the size": "q (B, T, D) times k^T (B, D, S) gives the (B, T, S) scores: transpose the "
                               "last two axes of k, k.transpose(-2, -1).",
        "Expected size for first two dimensions": "q (B, T, D) times k^T (B, D, S) gives the (B, T, S) scores: "
                                                  "transpose the last two axes of k, k.transpose(-2, -1).",
    })
    out, weights = expect_tuple(got, "attention", ("output", "weights"))
    if isinstance(out, torch.Tensor) and isinstance(weights, torch.Tensor) \
            and tuple(out.shape) == (batch, T, S) and tuple(weights.shape) == (batch, T, D_v) and S != D_v:
        raise Feedback("`attention` returned (weights, output); return them in the order (output, weights).")
    want_out, want_w = _reference(q, k, v)
    scores = q @ k.transpose(-2, -1)
    weights = expect_tensor(weights, {"B": batch, "T": T, "S": S}, "attention (weights)")
    expect_close(weights, want_w, "attention (weights)", mistakes={
        f"looks like you forgot the 1/sqrt(d_k) scale: {_EQUATION}. Without it the scores grow with d_k "
        "and the softmax saturates.": lambda: torch.softmax(scores, -1),
        "looks like you divided by d_k instead of sqrt(d_k): the scale is 1 / math.sqrt(d_k).":
            lambda: torch.softmax(scores / D, -1),
        "looks like you multiplied by sqrt(d_k) instead of dividing.": lambda: torch.softmax(scores * math.sqrt(D), -1),
        "softmax over the wrong axis: each query's weights are a distribution over the keys, so the "
        "softmax runs over the last axis (dim=-1) of the (B, T, S) scores.":
            lambda: torch.softmax(scores / math.sqrt(D), -2),
        "looks like K is not transposed: the scores are q @ k.transpose(-2, -1), one row per query and "
        "one column per key.": lambda: torch.softmax(q @ k / math.sqrt(D), -1),
        "you returned the scores; the weights are their softmax.": lambda: scores / math.sqrt(D),
    })
    out = expect_tensor(out, {"B": batch, "T": T, "D_v": D_v}, "attention (output)")
    expect_close(out, want_out, "attention (output)", mistakes={
        "the output should be the weighted sum of the values, weights @ v.": lambda: v.mean(1, keepdim=True).expand(-1, T, -1),
        "the output should weight the values, not the keys: weights @ v.": lambda: want_w @ k,
    })


# -- exercise 2: the causal mask -----------------------------------------------------------------------

@checker
def check_causal_mask(causal_mask_fn: Callable, *, T: int = 5) -> None:
    """``causal_mask(T)`` must return a (T, T) bool tensor, True where query i may attend to key
    j, i.e. j <= i (the lower triangle, diagonal included)."""
    got = call(causal_mask_fn, T, name="causal_mask")
    got = expect_tensor(got, {"T (queries)": T, "T (keys)": T}, "causal_mask", finite=False)
    want = torch.ones(T, T, dtype=torch.bool).tril()
    if got.dtype != torch.bool:
        if torch.equal(got.to(torch.float64), want.to(torch.float64)):
            raise Feedback(f"`causal_mask` returned the right pattern as {got.dtype}; a mask is a bool tensor "
                           "(True = may attend): use dtype=torch.bool or compare, e.g. j <= i.")
        if torch.equal(got.to(torch.float64), torch.zeros(T, T, dtype=torch.float64).masked_fill(~want, float("-inf"))):
            raise Feedback("`causal_mask` returned an additive mask (0 and -inf); this course's masks are bool, "
                           "True = may attend (as torch's scaled_dot_product_attention takes them).")
        raise Feedback(f"`causal_mask` returned dtype {got.dtype}; expected torch.bool (True = may attend).")
    if torch.equal(got, want):
        return
    messages = {
        "the mask is inverted: True should mark what a query MAY see, keys j <= i (the lower triangle), "
        "not the future.": ~want,
        "the mask is the upper triangle: query i (row i) may see keys j <= i, the lower triangle (torch.tril).":
            want.T,
        "the diagonal is excluded: a position may attend to itself (j <= i, not j < i); use tril(), "
        "not tril(-1).": want.tril(-1),
    }
    for message, value in messages.items():
        if torch.equal(got, value):
            raise Feedback(f"`causal_mask`: {message}")
    raise Feedback(f"`causal_mask({T})` is not the lower-triangular mask; row i should be True for "
                   f"columns 0..i and False after. Got:\n{got.int()}")


# -- exercise 3: attention with a mask ----------------------------------------------------------------

@checker
def check_masked_attention(masked_attention: Callable, *, seed: int = 0, lengths: tuple[int, ...] = (5, 2, 4),
                           T: int = 3, D: int = 4, causal: bool = False) -> None:
    """``masked_attention(q (B, T, D), k (B, S, D), v (B, S, D), mask)`` with a bool mask
    broadcastable to (B, T, S) (True = may attend) must return ``(output, weights)``: the scaled
    scores set to -inf where the mask is False, then the softmax. The helper gives a padding
    mask (B, 1, S) from ``lengths``, or a causal (T, T) mask with ``causal=True``."""
    g = _gen(5300 + seed)
    B = len(lengths)
    S = T if causal else max(lengths)
    q, k, v = (1.5 * torch.randn(B, n, D, generator=g) for n in (T, S, S))
    if causal:
        mask = torch.ones(T, T, dtype=torch.bool).tril()
    else:
        mask = (torch.arange(S)[None, :] < torch.tensor(list(lengths))[:, None])[:, None, :]  # (B, 1, S)
    got = call(masked_attention, q, k, v, mask, name="masked_attention", hints={
        "Subtraction, the `-` operator, with a bool tensor": "mask is a bool tensor; invert it with ~mask, not 1 - mask.",
        "expected a bool": "mask is a bool tensor; invert it with ~mask.",
    })
    out, weights = expect_tuple(got, "masked_attention", ("output", "weights"))
    weights = expect_tensor(weights, {"B": B, "T": T, "S": S}, "masked_attention (weights)", finite=False)
    if weights.is_floating_point() and not bool(torch.isfinite(weights).all()):
        inverted = _reference(q, k, v, ~mask)[1]
        if bool(torch.allclose(weights, inverted, atol=1e-5, equal_nan=True)):
            raise Feedback("`masked_attention`: the mask is inverted: the hidden keys got the weight (and rows "
                           "with nothing hidden became NaN). True means may attend: fill where it is False, "
                           "scores.masked_fill(~mask, float('-inf')).")
        raise Feedback("`masked_attention` returned NaN or inf weights: fill the masked scores with -inf "
                       "before the softmax, and do not take the log of zeros.")
    want_out, want_w = _reference(q, k, v, mask)
    scores = q @ k.transpose(-2, -1) / math.sqrt(D)
    expect_close(weights, want_w, "masked_attention (weights)", mistakes={
        "the mask is ignored: hidden keys got weight. Set their scores to -inf before the softmax: "
        "scores.masked_fill(~mask, float('-inf')).": lambda: torch.softmax(scores, -1),
        "the mask is inverted: True means may attend; fill the scores where the mask is False (~mask).":
            lambda: _reference(q, k, v, ~mask)[1],
        "you filled the masked scores with 0; exp(0) = 1, so hidden keys still get weight. Fill them "
        "with float('-inf'), whose exp is 0.": lambda: torch.softmax(scores.masked_fill(~mask, 0.0), -1),
        "you multiplied the weights by the mask after the softmax, so they no longer sum to 1. Fill "
        "the scores with -inf before the softmax instead.": lambda: torch.softmax(scores, -1) * mask,
        f"looks like you forgot the 1/sqrt(d_k) scale: {_EQUATION}.": lambda: _reference(q, k, v, mask, scale=False)[1],
        "softmax over the wrong axis: normalise over the keys (dim=-1).":
            lambda: torch.softmax(scores.masked_fill(~mask, float("-inf")), -2),
    })
    out = expect_tensor(out, {"B": B, "T": T, "D": D}, "masked_attention (output)")
    expect_close(out, want_out, "masked_attention (output)", mistakes={
        "the output should be weights @ v, the weighted sum of the values.": lambda: want_w @ k,
    })


# -- exercise 4: split and merge heads ----------------------------------------------------------------

_split = split_heads  # the library is the reference


@checker
def check_split_heads(split_heads: Callable, *, seed: int = 0, batch: int = 5, T: int = 3, n_heads: int = 4,
                      D: int = 2) -> None:
    """``split_heads(x (B, T, C), n_heads)`` must return (B, H, T, D) with D = C / H, head h
    holding channels h*D .. (h+1)*D - 1 of every position."""
    C = n_heads * D
    x = torch.randn(batch, T, C, generator=_gen(5400 + seed))
    got = call(split_heads, x, n_heads, name="split_heads")
    got = expect_tensor(got, {"B": batch, "H": n_heads, "T": T, "D": D}, "split_heads")
    B, H = batch, n_heads
    expect_close(got, _split(x, H), "split_heads", mistakes={
        "you reshaped straight to (B, H, T, D); that mixes positions into heads. View as (B, T, H, D) "
        "first (each position's channels cut into H pieces), then transpose(1, 2).":
            lambda: x.reshape(B, H, T, D),
        "your heads are interleaved (channel c went to head c % H); head h should hold the contiguous "
        "channels h*D .. (h+1)*D - 1: x.view(B, T, H, D).transpose(1, 2).":
            lambda: x.view(B, T, D, H).permute(0, 3, 1, 2),
    })


@checker
def check_merge_heads(merge_heads: Callable, *, seed: int = 0, batch: int = 5, T: int = 3, n_heads: int = 4,
                      D: int = 2) -> None:
    """``merge_heads(x (B, H, T, D))`` must return (B, T, H * D), the inverse of split_heads."""
    B, H = batch, n_heads
    x = torch.randn(B, H, T, D, generator=_gen(5500 + seed))
    got = call(merge_heads, x, name="merge_heads")
    got = expect_tensor(got, {"B": B, "T": T, "C": H * D}, "merge_heads")
    expect_close(got, x.transpose(1, 2).reshape(B, T, H * D), "merge_heads", mistakes={
        "you reshaped without moving the head axis back: transpose(1, 2) to (B, T, H, D) first, then "
        "reshape to (B, T, H * D).": lambda: x.reshape(B, T, H * D),
        "your heads came out interleaved (head h's channels spread every H-th place); keep each "
        "head's D channels together: x.transpose(1, 2).reshape(B, T, H * D).":
            lambda: x.permute(0, 2, 3, 1).reshape(B, T, H * D),
    })


# -- exercise 5: the sinusoidal positional encoding ------------------------------------------------------

def _sinusoidal(T: int, C: int, start: int = 0, exponent: str = "2i", interleave: bool = True,
                swap: bool = False, multiply: bool = False) -> torch.Tensor:
    t = torch.arange(start, start + T, dtype=torch.float64)[:, None]
    i = torch.arange(C // 2, dtype=torch.float64)
    power = (2 * i if exponent == "2i" else i) / C
    angle = t * 10000 ** power if multiply else t / 10000 ** power
    first, second = (torch.cos(angle), torch.sin(angle)) if swap else (torch.sin(angle), torch.cos(angle))
    if interleave:
        return torch.stack([first, second], dim=-1).reshape(T, C)
    return torch.cat([first, second], dim=-1)


@checker
def check_sinusoidal(sinusoidal: Callable, *, T: int = 12, d_model: int = 8) -> None:
    """``sinusoidal(T, d_model)`` must return (T, d_model) with PE[t, 2i] = sin(t / 10000^(2i/d_model))
    and PE[t, 2i+1] = cos(t / 10000^(2i/d_model)), positions t = 0 .. T-1."""
    got = call(sinusoidal, T, d_model, name="sinusoidal")
    got = expect_tensor(got, {"T": T, "d_model": d_model}, "sinusoidal", allow_numpy=True)
    want = _sinusoidal(T, d_model)
    expect_close(got.double(), want, "sinusoidal", atol=1e-5, rtol=1e-4, mistakes={
        "sin and cos are swapped: even channels 2i get sin, odd channels 2i+1 get cos.":
            lambda: _sinusoidal(T, d_model, swap=True),
        "you put all the sines first and all the cosines after; they alternate: channel 2i is sin, "
        "channel 2i+1 is cos of the same angle.": lambda: _sinusoidal(T, d_model, interleave=False),
        "the exponent should be 2i / d_model (i counts channel pairs), not i / d_model.":
            lambda: _sinusoidal(T, d_model, exponent="i"),
        "positions start at 0, not 1: t = 0 .. T-1 (torch.arange(T)).": lambda: _sinusoidal(T, d_model, start=1),
        "the angle is t / 10000^(2i/d_model): divide the position by the power, do not multiply.":
            lambda: _sinusoidal(T, d_model, multiply=True),
    })


# -- exercise 6: a prediction, what self-attention knows about order ---------------------------------------

ORDER_CASES = {
    "no_positions": "no positions, no mask: permuting the tokens permutes the outputs the same way",
    "padding_mask": "a padding mask that travels with its tokens: permuting the tokens permutes the outputs",
    "causal_mask": "the causal mask: permuting the tokens permutes the outputs",
    "rope_permuted": "RoPE on q and k: permuting the tokens permutes the outputs",
    "rope_shifted": "RoPE on q and k: numbering the positions from 100 instead of 0 leaves the outputs unchanged",
    "sinusoidal_shifted": "sinusoids added to the input: numbering the positions from 100 instead of 0 leaves the "
                          "outputs unchanged",
}

_ORDER_WHY = {
    "no_positions": (
        "Without positions and masks, self-attention treats its tokens as a set: each query meets the same "
        "keys in another order, and neither the softmax nor the weighted sum cares about order "
        "(section 4: f(PX) = P f(X))."),
    "padding_mask": (
        "The padding mask is computed from the tokens (which ones are pad), not from their places: permute the "
        "tokens and the mask is permuted with them, so every query still sees the same set of real keys. You "
        "treated it like the causal mask, which is tied to positions."),
    "causal_mask": (
        "The causal mask is tied to positions, not to tokens: after the permutation a token that moved to the "
        "front sees only itself, and one that moved to the back sees everything. So even without any position "
        "encoding a causal layer can tell order; the mask is not a content mask like padding."),
    "rope_permuted": (
        "RoPE makes each score depend on the offset t - s between query and key; a permutation changes the "
        "offsets between tokens (it is not a shift), so the scores, and the outputs, change. Relative positions "
        "still are positions."),
    "rope_shifted": (
        "Numbering every position from 100 adds 100 to t and to s alike, so every offset t - s stays the same, "
        "and RoPE's scores depend on the positions only through it: (R_t q) . (R_s k) = q . R_(s-t) k."),
    "sinusoidal_shifted": (
        "PE_t . PE_s depends only on t - s, but the layer does not see PE_t alone: it sees x_t + PE_t, and the "
        "vectors PE_(t+100) differ from PE_t, so the queries, keys and values all change (section 4's RoPE "
        "check measures the same: added sinusoids do not make the scores depend on the offset alone)."),
}


def _order_gaps(seed: int, T: int, C: int, H: int) -> dict:
    """How much the outputs move in each experiment of :data:`ORDER_CASES` (largest |difference|),
    with one MultiHeadAttention layer of random weights and biases."""
    if T < 2 or C % H or (C // H) % 2:
        raise ValueError(f"T >= 2 and an even head width C / H are needed, got T = {T}, C = {C}, H = {H}")
    torch.manual_seed(10500 + seed)
    layer = MultiHeadAttention(C, H).eval()
    g = _gen(10500 + seed)
    with torch.no_grad():
        for proj in (layer.q_proj, layer.k_proj, layer.v_proj, layer.out_proj):
            proj.bias.normal_(generator=g)
        x = torch.randn(1, T, C, generator=g)
        perm = torch.randperm(T, generator=g)
        while perm[0] == 0 or perm[-1] == T - 1:               # move the first and the last token
            perm = torch.randperm(T, generator=g)
        pad = torch.arange(T) < T - max(1, T // 3)                # the last third is padding

        def f(x, mask=None, causal=False, rope_offset=None):
            q, k, v = (split_heads(p(x), H) for p in (layer.q_proj, layer.k_proj, layer.v_proj))
            if rope_offset is not None:
                q, k = apply_rope(q, offset=rope_offset), apply_rope(k, offset=rope_offset)
            return layer.out_proj(merge_heads(naive_attention(q, k, v, mask=mask, causal=causal)[0]))

        def key_mask(keep):
            return keep[None, None, None, :]                      # (1, 1, 1, S): over the keys

        gap = lambda a, b: (a - b).abs().max().item()  # noqa: E731
        return {
            "no_positions": gap(f(x[:, perm]), f(x)[:, perm]),
            "padding_mask": gap(f(x[:, perm], mask=key_mask(pad[perm])), f(x, mask=key_mask(pad))[:, perm]),
            "causal_mask": gap(f(x[:, perm], causal=True), f(x, causal=True)[:, perm]),
            "rope_permuted": gap(f(x[:, perm], rope_offset=0), f(x, rope_offset=0)[:, perm]),
            "rope_shifted": gap(f(x, rope_offset=100), f(x, rope_offset=0)),
            "sinusoidal_shifted": gap(f(x + sinusoidal_positions(T + 100, C)[100:]),
                                      f(x + sinusoidal_positions(T, C))),
        }


@checker
def check_order_predictions(predict: Callable, *, seed: int = 0, T: int = 8, C: int = 16, H: int = 4) -> None:
    """``predict()`` must return a dict with the keys of :data:`ORDER_CASES`, each True where the
    statement holds (to float rounding). The check measures each with one ``MultiHeadAttention``
    layer of random weights on a sequence of T tokens; a gap below 1e-4 counts as unchanged."""
    got = call(predict, name="predict_order")
    keys = tuple(ORDER_CASES)
    if not isinstance(got, dict) or set(got) != set(keys):
        raise Feedback(f"`predict_order` returned {describe(got)}; expected a dict with exactly the keys "
                       f"{', '.join(repr(k) for k in keys)}, each True or False.")
    for key in keys:
        if not isinstance(got[key], bool):
            raise Feedback(f"`predict_order`: {key!r} should be True or False, got {describe(got[key])}.")
    gaps = _order_gaps(seed, T, C, H)
    wrong = []
    for key in keys:
        holds = gaps[key] < 1e-4
        if got[key] != holds:
            moved = f"they move by {gaps[key]:.1e}, i.e. not at all" if holds else f"they move by up to {gaps[key]:.2f}"
            wrong.append(f"- {key!r} ({ORDER_CASES[key]}): you predicted {got[key]}; measured, "
                         f"{moved}. {_ORDER_WHY[key]}")
    if wrong:
        raise Feedback(f"`predict_order`: {len(wrong)} of {len(keys)} predictions are wrong.\n" + "\n".join(wrong))
