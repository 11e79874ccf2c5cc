"""Check helpers for the exercises of chapter 04 (attention in an RNN decoder).

One helper per exercise; each builds its inputs from ``seed``, calls the learner's function
safely, and names the usual mistake when the answer is wrong:

1. ``check_masked_softmax``: mask ignored or inverted, padding filled with 0 instead of -inf,
   weights multiplied by the mask without renormalising, softmax over the wrong axis;
2. ``check_additive_scores``: tanh forgotten, W_q and W_k swapped, v forgotten (a plain sum),
   v applied before the tanh, the weights transposed;
3. ``check_general_scores``: W_a transposed or forgotten (a plain dot product), a 1/sqrt(d) scale
   that the general score does not have, query and keys swapped;
4. ``check_dot_attention``: mask ignored, softmax over the wrong axis, the keys averaged instead
   of the values, the mean of the values (weights ignored), context and weights swapped, the
   scores returned instead of the weights, a 1/sqrt(d) scale;
5. ``check_find_bug`` (a diagnosis): the learner's ``find_bug(attend)`` runs a suspect attention
   function and names its bug (one of :data:`BUG_LABELS`). The suspects record how they were
   called, so a wrong label is explained by what the experiment lacked: no padding in the mask,
   the same tensor as keys and values, a batch of one, d = 1, a correct function flagged because
   it was compared with == instead of a tolerance; a label outside the list.

Glossary: B batch, S source length, T target length, d_q query width, d_k key width,
d_v value width, A the additive scorer's hidden width.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..attention_rnn import masked_softmax
from .core import Feedback, call, checker, describe, expect_close, expect_tensor, generator, plain


_gen = generator


def _mask(lengths, S: int) -> torch.Tensor:
    return torch.arange(S)[None, :] < torch.tensor(list(lengths))[:, None]


_MASK_HINT = ("masked_softmax(scores, mask): put -inf where mask is False "
              "(scores.masked_fill(~mask, float('-inf'))), then softmax over the last axis (dim=-1).")


# -- exercise 1: masked softmax ---------------------------------------------------------------------

@checker
def check_masked_softmax(masked_softmax_fn: Callable, *, seed: int = 0, lengths: tuple[int, ...] = (5, 2, 4),
                         S: int = 5, scale: float = 2.0) -> None:
    """``masked_softmax(scores (B, S), mask (B, S))`` must return weights (B, S): softmax over the
    last axis of the positions where mask is True, exactly 0 where it is False. Every row of the
    mask has at least one True."""
    g = _gen(4100 + seed)
    B = len(lengths)
    scores = scale * torch.randn(B, S, generator=g)
    mask = _mask(lengths, S)
    got = call(masked_softmax_fn, scores, mask, name="masked_softmax", hints={
        "expected a bool": "mask is a bool tensor; invert it with ~mask, not 1 - mask.",
        "Subtraction, the `-` operator, with a bool tensor": "mask is a bool tensor; invert it with ~mask, not 1 - mask.",
    })
    got = expect_tensor(got, {"B": B, "S": S}, "masked_softmax", finite=False)
    inverted = torch.softmax(scores.masked_fill(mask, float("-inf")), -1)   # nan on rows with no padding
    if got.is_floating_point() and bool(torch.allclose(got, inverted, atol=1e-6, equal_nan=True)):
        raise Feedback("`masked_softmax`: the mask is inverted: only the padded positions got weight (and a "
                       "row without padding became NaN). True in the mask means a real token that may be "
                       "attended to; fill the positions where it is False: masked_fill(~mask, -inf).")
    if not bool(torch.isfinite(got).all()):
        raise Feedback("`masked_softmax` returned NaN or inf. Fill the masked scores with -inf *before* the "
                       "softmax (exp(-inf) = 0); do not multiply scores by the mask or take logs of zeros.")
    want = masked_softmax(scores, mask)
    fill0 = scores.masked_fill(~mask, 0.0)
    expect_close(got, want, "masked_softmax", mistakes={
        "the mask is ignored: the padded positions got weight. " + _MASK_HINT: lambda: torch.softmax(scores, -1),
        "you filled the padded positions with 0 before the softmax; exp(0) = 1, so padding still gets "
        "weight. Fill them with -inf (float('-inf')), whose exp is 0.": lambda: torch.softmax(fill0, -1),
        "you multiplied the weights by the mask after the softmax, so the real weights no longer sum "
        "to 1. Fill the padded scores with -inf before the softmax instead (or renormalise).":
            lambda: torch.softmax(scores, -1) * mask,
        "softmax over the wrong axis: each row (one query) is a distribution over its S positions, so "
        "take the softmax over the last axis (dim=-1), not over the batch.":
            lambda: torch.softmax(scores.masked_fill(~mask, float("-inf")), 0),
        "you returned the masked scores, not weights: apply the softmax after filling with -inf.":
            lambda: fill0,
    })


# -- exercise 2: the additive (Bahdanau) score ---------------------------------------------------------

def _additive_inputs(seed: int, B: int, S: int, d_q: int, d_k: int, A: int):
    g = _gen(4200 + seed)
    return (torch.randn(B, d_q, generator=g), torch.randn(B, S, d_k, generator=g),
            0.7 * torch.randn(d_q, A, generator=g), 0.7 * torch.randn(d_k, A, generator=g),
            torch.randn(A, generator=g))


@checker
def check_additive_scores(additive_scores: Callable, *, seed: int = 0, batch: int = 2, S: int = 5, d_q: int = 3,
                          d_k: int = 4, A: int = 6, square: bool = False) -> None:
    """``additive_scores(query (B, d_q), keys (B, S, d_k), W_q (d_q, A), W_k (d_k, A), v (A,))`` must
    return scores (B, S) with score[b, s] = v . tanh(query[b] W_q + keys[b, s] W_k).

    ``square=True`` makes d_q = d_k = A, where swapped or transposed weights run without an error
    and only the values can tell.
    """
    if square:
        d_q = d_k = A
    query, keys, W_q, W_k, v = _additive_inputs(seed, batch, S, d_q, d_k, A)
    got = call(additive_scores, query, keys, W_q, W_k, v, name="additive_scores", hints={
        "must match the size": "query @ W_q has shape (B, A) and keys @ W_k shape (B, S, A): add a key axis "
                               "to the first, (query @ W_q)[:, None, :], so that they broadcast.",
        "cannot be multiplied": "weights are stored (in_features, out_features): query @ W_q and keys @ W_k.",
    })
    got = expect_tensor(got, {"B": batch, "S": S}, "additive_scores")
    q, k = (query @ W_q)[:, None, :], keys @ W_k                     # (B, 1, A), (B, S, A)
    want = torch.tanh(q + k) @ v
    mistakes = {
        "looks like you forgot the tanh: score = v . tanh(q W_q + k W_k).": lambda: (q + k) @ v,
        "looks like you forgot v: the hidden vector tanh(q W_q + k W_k) is turned into one number by a "
        "dot product with v, not by a sum.": lambda: torch.tanh(q + k).sum(-1),
        "looks like you applied v before the tanh; the tanh is the hidden layer and v reads it out: "
        "v . tanh(q W_q + k W_k).": lambda: torch.tanh((q + k) @ v),
        "looks like W_q and W_k are swapped: the query goes through W_q, the keys through W_k.":
            lambda: torch.tanh((query @ W_k)[:, None, :] + keys @ W_q) @ v,
        "looks like you used the weights transposed; they are stored (in_features, out_features), so "
        "the products are query @ W_q and keys @ W_k.":
            lambda: torch.tanh((query @ W_q.T)[:, None, :] + keys @ W_k.T) @ v,
        "looks like you used a softmax: this exercise asks for the scores; the softmax comes after, "
        "in masked_softmax.": lambda: torch.softmax(torch.tanh(q + k) @ v, dim=-1),
    }
    expect_close(got, want, "additive_scores", mistakes=mistakes)


# -- exercise 3: the general (Luong) score ----------------------------------------------------------------

@checker
def check_general_scores(general_scores: Callable, *, seed: int = 0, batch: int = 2, S: int = 5, d_q: int = 3,
                         d_k: int = 4, square: bool = False) -> None:
    """``general_scores(query (B, d_q), keys (B, S, d_k), W_a (d_q, d_k))`` must return scores (B, S)
    with score[b, s] = query[b] W_a keys[b, s]^T (Luong et al., 2015, "general").

    ``square=True`` makes d_q = d_k, where a transposed or forgotten W_a runs without an error.
    """
    if square:
        d_k = d_q
    g = _gen(4300 + seed)
    query, keys = torch.randn(batch, d_q, generator=g), torch.randn(batch, S, d_k, generator=g)
    W_a = torch.randn(d_q, d_k, generator=g)
    got = call(general_scores, query, keys, W_a, name="general_scores", hints={
        "cannot be multiplied": "query @ W_a has shape (B, d_k); then a dot product with each key: "
                                "(keys @ (query @ W_a)[:, :, None])[..., 0], or torch.einsum('bk,bsk->bs', ...).",
        "einsum()": "did you forget W_a? The query has d_q features and a key d_k; the general score puts "
                    "W_a (d_q, d_k) between them: torch.einsum('bq,qk,bsk->bs', query, W_a, keys).",
    })
    got = expect_tensor(got, {"B": batch, "S": S}, "general_scores")
    want = torch.einsum("bq,qk,bsk->bs", query, W_a, keys)
    expect_close(got, want, "general_scores", mistakes={
        "looks like you used W_a transposed: the score is query W_a key^T with W_a of shape (d_q, d_k), "
        "so the query is multiplied first: (query @ W_a) . key.":
            lambda: torch.einsum("bq,kq,bsk->bs", query, W_a, keys),
        "looks like you forgot W_a: that is the 'dot' score; 'general' puts a learned matrix between "
        "query and key, query W_a key^T.": lambda: torch.einsum("bd,bsd->bs", query, keys),
        "looks like you divided by sqrt(d): Luong's general score has no scale (the 1/sqrt(d) of "
        "chapter 05 belongs to the scaled dot product).":
            lambda: want / math.sqrt(d_k),
        "looks like you divided by sqrt(d): Luong's general score has no scale.": lambda: want / math.sqrt(d_q),
        "you returned weights (a softmax); this exercise asks for the scores.": lambda: torch.softmax(want, -1),
    })


# -- exercise 4: dot-product attention with a mask: context and weights ------------------------------------

@checker
def check_dot_attention(dot_attention: Callable, *, seed: int = 0, lengths: tuple[int, ...] = (6, 3, 1),
                        S: int = 6, d: int = 4, d_v: int = 5) -> None:
    """``dot_attention(query (B, d), keys (B, S, d), values (B, S, d_v), mask (B, S))`` must return
    ``(context (B, d_v), weights (B, S))``: scores query . key (no scale), masked softmax over the
    S positions, context = the weighted sum of the values."""
    g = _gen(4400 + seed)
    B = len(lengths)
    query = 1.5 * torch.randn(B, d, generator=g)
    keys, values = torch.randn(B, S, d, generator=g), torch.randn(B, S, d_v, generator=g)
    mask = _mask(lengths, S)
    got = call(dot_attention, query, keys, values, mask, name="dot_attention", hints={
        "cannot be multiplied": "scores[b, s] = query[b] . keys[b, s]: torch.einsum('bd,bsd->bs', query, keys) "
                                "or (keys @ query[:, :, None])[..., 0].",
    })
    if not (isinstance(got, (tuple, list)) and len(got) == 2):
        raise Feedback(f"`dot_attention` returned {describe(got)}; expected a pair (context, weights).")
    context, weights = got
    if isinstance(context, torch.Tensor) and isinstance(weights, torch.Tensor) \
            and tuple(context.shape) == (B, S) and tuple(weights.shape) == (B, d_v) and S != d_v:
        raise Feedback("`dot_attention` returned (weights, context); return them in the order (context, weights).")
    scores = torch.einsum("bd,bsd->bs", query, keys)
    want_w = masked_softmax(scores, mask)
    weights, context = plain(weights), plain(context)
    if isinstance(weights, torch.Tensor) and tuple(weights.shape) == (B, S) and weights.is_floating_point() \
            and not bool(torch.isfinite(weights).all()):
        # NaN weights: a fully masked row; name the mistake that produces exactly these
        for message, candidate in (
                ("the mask is inverted: True marks the real positions, which may be attended to; fill the "
                 "others: scores.masked_fill(~mask, float('-inf')).",
                 torch.softmax(scores.masked_fill(mask, float("-inf")), -1)),
                ("softmax over the batch axis: each row is a distribution over the S source positions of "
                 "one sequence (dim=-1).", torch.softmax(scores.masked_fill(~mask, float("-inf")), 0))):
            if torch.allclose(weights.double().nan_to_num(0.0), candidate.double().nan_to_num(0.0), atol=1e-5):
                raise Feedback(f"`dot_attention (weights)`: {message}")
    if isinstance(context, torch.Tensor) and tuple(context.shape) == (B, d) and d != d_v:
        raise Feedback("`dot_attention (context)` has the width of the keys, (B, d): the context should "
                       "weight the values, not the keys: sum_s weights[b, s] values[b, s].")
    weights = expect_tensor(weights, {"B": B, "S": S}, "dot_attention (weights)")
    expect_close(weights, want_w, "dot_attention (weights)", mistakes={
        "the mask is ignored: padded positions got weight. " + _MASK_HINT: lambda: torch.softmax(scores, -1),
        "looks like you divided the scores by sqrt(d); Luong's dot score has no scale (chapter 05 adds it).":
            lambda: masked_softmax(scores / math.sqrt(d), mask),
        "looks like you divided the scores by sqrt(d_v), the values' width; Luong's dot score has no "
        "scale (and chapter 05's scale uses the keys' width d).": lambda: masked_softmax(scores / math.sqrt(d_v), mask),
        "softmax over the wrong axis: each row is a distribution over the S source positions (dim=-1).":
            lambda: torch.softmax(scores.masked_fill(~mask, float("-inf")), 0).nan_to_num(0.0),
        "you returned the scores; the weights are their masked softmax.": lambda: scores,
        "you returned the masked scores; the weights are their softmax.": lambda: scores.masked_fill(~mask, 0.0),
    })
    context = expect_tensor(context, {"B": B, "d_v": d_v}, "dot_attention (context)")
    real = mask[..., None].float()
    expect_close(context, torch.einsum("bs,bsv->bv", want_w, values), "dot_attention (context)", mistakes={
        "the context is the plain mean of the values: weight each value by its attention weight, "
        "sum_s weights[b, s] values[b, s].": lambda: values.mean(1),
        "the context is the mean of the real values: weight each value by its attention weight.":
            lambda: (values * real).sum(1) / real.sum(1),
        "the context should weight the values, not the keys.": lambda: torch.einsum("bs,bsd->bd", want_w, keys),
    })


# -- exercise 5: a diagnosis, find the bug ------------------------------------------------------------------

BUG_LABELS = {
    "ok": "no bug: Luong's dot attention with the padding masked",
    "mask_ignored": "the padded positions get weight, as if there were no mask",
    "mask_inverted": "the mask is read the wrong way round: the real positions are hidden, the padding is not",
    "softmax_axis": "the softmax runs over the batch axis instead of the S source positions",
    "scaled": "the scores are divided by sqrt(d), a scale Luong's dot score does not have",
    "context_from_keys": "the context is the weighted sum of the keys instead of the values",
}


def _dot_scores(query, keys):
    return torch.einsum("bd,bsd->bs", query, keys)                        # (B, S)


def _masked_exp_softmax(scores, keep, dim=-1):
    """A hand-written masked softmax: exp of the kept scores, normalised along ``dim``; never NaN."""
    scores = scores.masked_fill(~keep, -1e9)
    e = torch.exp(scores - scores.amax(dim, keepdim=True)) * keep
    return e / e.sum(dim, keepdim=True).clamp_min(1e-30)


def _suspects(variant: int) -> dict:
    """label -> an attention function with that bug (and only that one). Variant 0 is written with
    the library's masked_softmax, variant 1 by hand, so a diagnosis must rest on behaviour."""
    if variant == 0:
        def ok(query, keys, values, mask):
            w = masked_softmax(_dot_scores(query, keys), mask)
            return torch.einsum("bs,bsv->bv", w, values), w

        def mask_ignored(query, keys, values, mask):
            w = torch.softmax(_dot_scores(query, keys), dim=-1)
            return torch.einsum("bs,bsv->bv", w, values), w

        def mask_inverted(query, keys, values, mask):
            w = masked_softmax(_dot_scores(query, keys), ~mask)
            return torch.einsum("bs,bsv->bv", w, values), w

        def softmax_axis(query, keys, values, mask):
            w = masked_softmax(_dot_scores(query, keys), mask, dim=0)
            return torch.einsum("bs,bsv->bv", w, values), w

        def scaled(query, keys, values, mask):
            w = masked_softmax(_dot_scores(query, keys) / math.sqrt(query.shape[-1]), mask)
            return torch.einsum("bs,bsv->bv", w, values), w

        def context_from_keys(query, keys, values, mask):
            w = masked_softmax(_dot_scores(query, keys), mask)
            return torch.einsum("bs,bsd->bd", w, keys), w
    else:
        def scores_of(query, keys):
            return (query[:, None, :] * keys).sum(-1)                       # (B, S)

        def ok(query, keys, values, mask):
            w = _masked_exp_softmax(scores_of(query, keys), mask)
            return (w[..., None] * values).sum(1), w

        def mask_ignored(query, keys, values, mask):                         # padding scored 0, not -inf
            w = torch.softmax(scores_of(query, keys) * mask, dim=-1)
            return (w[..., None] * values).sum(1), w

        def mask_inverted(query, keys, values, mask):
            w = _masked_exp_softmax(scores_of(query, keys), ~mask)
            return (w[..., None] * values).sum(1), w

        def softmax_axis(query, keys, values, mask):
            w = _masked_exp_softmax(scores_of(query, keys), mask, dim=0)
            return (w[..., None] * values).sum(1), w

        def scaled(query, keys, values, mask):
            w = _masked_exp_softmax(scores_of(query, keys) / keys.shape[-1] ** 0.5, mask)
            return (w[..., None] * values).sum(1), w

        def context_from_keys(query, keys, values, mask):
            w = _masked_exp_softmax(scores_of(query, keys), mask)
            return (w[..., None] * keys).sum(1), w
    return {"ok": ok, "mask_ignored": mask_ignored, "mask_inverted": mask_inverted,
            "softmax_axis": softmax_axis, "scaled": scaled, "context_from_keys": context_from_keys}


def _facts(args: tuple, kwargs: dict) -> dict:
    """What one call of a suspect shows about the experiment: padding, batch size, widths."""
    names = ("query", "keys", "values", "mask")
    given = dict(zip(names, args), **kwargs)
    facts = {}
    try:
        mask = given["mask"]
        facts["padded"] = bool(mask.dtype == torch.bool and not bool(mask.all()))
    except Exception:
        pass
    try:
        facts["batch"] = int(given["query"].shape[0])
        facts["d"] = int(given["query"].shape[-1])
    except Exception:
        pass
    try:
        keys, values = given["keys"], given["values"]
        facts["values_differ"] = not (keys.shape == values.shape and bool(torch.equal(keys, values)))
    except Exception:
        pass
    return facts


def _instrumented(fn: Callable, log: list) -> Callable:
    def attend(query, keys, values, mask):
        """query (B, d), keys (B, S, d), values (B, S, d_v), mask (B, S) bool -> (context, weights)."""
        log.append(_facts((query, keys, values, mask), {}))
        return fn(query, keys, values, mask)
    return attend


def _why(label: str, log: list) -> str:
    """Why an experiment missed the bug ``label``: from what the suspect saw of it."""
    seen = lambda key: [f[key] for f in log if key in f]  # noqa: E731
    if not log:
        return ("Your `find_bug` never called the function it was given: run it on inputs of your own and "
                "look at what it returns.")
    padded = any(seen("padded"))
    if label in ("mask_ignored", "mask_inverted") and not padded:
        return ("None of your calls had a False in the mask, so no position was padding and a mask bug "
                "cannot show: give some rows fewer real positions, e.g. lengths (5, 3, 1) for S = 5.")
    if label == "mask_ignored":
        return ("Its weights on the padding (where mask is False) are not 0: look at `weights[~mask]`.")
    if label == "mask_inverted":
        return ("Its weights are 0 on the real positions and positive only on the padding (a row without "
                "padding gets no weight at all): look at `weights[mask]` and `weights[~mask]`.")
    if label == "softmax_axis":
        hint = ("Its weights are 0 on the padding, but a row of weights does not sum to 1 (a column over the "
                "batch does): look at `weights.sum(-1)`.")
        if seen("batch") and max(seen("batch")) == 1:
            hint += " With a batch of one the batch axis has one entry: use B >= 2 so that the axes differ."
        return hint
    if label == "scaled":
        if seen("d") and max(seen("d")) == 1:
            return "All your queries had d = 1, where sqrt(d) = 1 and the scale changes nothing: use d >= 2."
        return ("Its weights are a proper distribution with no weight on padding, yet differ from the "
                "reference's: compare them with `DotProductAttention()(query, keys, values, mask)[1]` "
                "(torch.allclose), then with `DotProductAttention(scaled=True)`.")
    if label == "context_from_keys":
        if seen("values_differ") and not any(seen("values_differ")):
            return ("Every call passed the same tensor as keys and values (as the chapter's decoder does), so a "
                    "context read from the keys looks right: pass values that differ from the keys, best of "
                    "another width d_v.")
        return ("Its weights are right but its context is not the weighted sum of the values: compare the "
                "context with the reference's too (shape and values).")
    return ("This function is correct; it only adds in another order than the reference (a hand-written "
            "softmax, einsum instead of bmm), so its numbers may differ from the reference's in the last "
            "bits. Compare with a tolerance, torch.allclose(..., atol=1e-5), not with ==.")


@checker
def check_find_bug(find_bug: Callable, *, variant: int = 0, labels: tuple[str, ...] = tuple(BUG_LABELS)) -> None:
    """``find_bug(attend)`` must return the label (a key of :data:`BUG_LABELS`) of the bug of the
    attention function ``attend(query (B, d), keys (B, S, d), values (B, S, d_v), mask (B, S))
    -> (context (B, d_v), weights (B, S))`` it is given, by running it. Each suspect has at most
    one bug; ``variant`` picks how the suspects are written (0: with the library's masked_softmax,
    1: by hand)."""
    suspects = _suspects(variant)
    for label in labels:
        log: list = []
        got = call(find_bug, _instrumented(suspects[label], log), name="find_bug")
        if not isinstance(got, str) or got not in BUG_LABELS:
            listed = ", ".join(repr(k) for k in BUG_LABELS)
            raise Feedback(f"`find_bug` returned {describe(got)}; expected one of the labels {listed} "
                           "(a str, spelled exactly so).")
        if got == label:
            continue
        what = ("a function with no bug" if label == "ok"
                else f"a function whose bug is {label!r} ({BUG_LABELS[label]})")
        raise Feedback(f"`find_bug` answered {got!r} for {what}. {_why(label, log)}")
