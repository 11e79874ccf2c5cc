"""Check helpers for the exercises of chapter 07 (GPT).

One helper per exercise; each builds its inputs from ``seed``, calls the learner's function
safely, and names the usual mistake when the answer is wrong:

1. ``check_causal_attention``: the future leaked (no mask), the diagonal masked (a position
   cannot see itself), the mask inverted, the 1/sqrt(D) scale forgotten, softmax over the queries;
2. ``check_kv_step``: the cache not appended (the new key/value dropped), the position not
   advanced (always position 0), the new position attending to the cache only;
3. ``check_top_k`` / ``check_top_p``: k - 1 or k + 1 kept, the smallest kept, probabilities
   returned instead of logits; for top-p the token that crosses p dropped (mass below p), the
   result left in sorted order, the least likely kept;
4. ``check_positions_prediction``: off by one (P + N instead of P + N - 1), the cache-less count
   taken as N (P + N) or the prompt forgotten.

Glossary: B batch, T positions, S cached positions, H heads, D head dim, C channels, V vocabulary.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..gpt import top_k_filter, top_p_filter
from .core import Feedback, call, checker, expect_close, expect_tensor, generator


_gen = generator


# -- exercise 1: causal attention ---------------------------------------------------------------------

def _attend(q, k, v, mask=None, scale=True, dim=-1):
    scores = q @ k.transpose(-2, -1)
    if scale:
        scores = scores / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=dim).nan_to_num(0.0) @ v


@checker
def check_causal_attention(causal_attention: Callable, *, seed: int = 0, batch: int = 2, heads: int = 2,
                           T: int = 5, D: int = 4) -> None:
    """``causal_attention(q, k, v)`` with q, k, v (B, H, T, D) -> (B, H, T, D): softmax(q k^T / sqrt(D))
    v where position i attends to positions j <= i only."""
    g = _gen(7100 + seed)
    q, k, v = (torch.randn(batch, heads, T, D, generator=g) for _ in range(3))
    got = call(causal_attention, q, k, v, name="causal_attention")
    got = expect_tensor(got, {"B": batch, "H": heads, "T": T, "D": D}, "causal_attention", finite=False)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    want = _attend(q, k, v, causal)
    if not bool(torch.isfinite(got).all()):
        if bool(torch.isfinite(got[:, :, 1:]).all()):
            raise Feedback("`causal_attention`: the first position's output is NaN: you masked the "
                           "diagonal too, so position 0 has no key left. A position may attend to itself: "
                           "keep j <= i (torch.tril, not tril(diagonal=-1)).")
        raise Feedback("`causal_attention` returned NaN or infinite values: a row of the scores is "
                       "entirely -inf, or you divided by zero.")
    expect_close(got, want, "causal_attention", mistakes={
        "the future leaked: position i also attends to positions after it. Mask the scores with "
        "-inf where j > i before the softmax (torch.tril gives the allowed part).": lambda: _attend(q, k, v),
        "the diagonal is masked: a position may attend to itself (j <= i, not j < i); use "
        "torch.tril(ones) rather than tril(diagonal=-1).":
            lambda: _attend(q, k, v, torch.ones(T, T, dtype=torch.bool).tril(-1)),
        "the mask is inverted: True in your mask must mean 'may attend' (j <= i), and the scores "
        "set to -inf where it is False.": lambda: _attend(q, k, v, ~causal | torch.eye(T, dtype=torch.bool)),
        "the mask is inverted (you kept the future j >= i): the allowed part is the lower triangle.":
            lambda: _attend(q, k, v, causal.T),
        "you forgot the 1/sqrt(D) scale of the scores.": lambda: _attend(q, k, v, causal, scale=False),
        "the softmax runs over the wrong axis: normalise over the keys (dim=-1).":
            lambda: _attend(q, k, v, causal, dim=-2),
    })


# -- exercise 2: one step with a KV cache -------------------------------------------------------------

def _reference_steps(x, P, Wq, Wk, Wv, advance=True, append=True, include_new=True):
    """Outputs (B, T, D) of single-head attention run one position at a time."""
    B, T, C = x.shape
    keys, values, outs = [], [], []
    for t in range(T):
        h = x[:, t] + P[t if advance else 0]                          # (B, C)
        q, k, v = h @ Wq, h @ Wk, h @ Wv                              # (B, D)
        cached_k = keys + [k] if include_new else list(keys)
        cached_v = values + [v] if include_new else list(values)
        if not cached_k:
            outs.append(torch.zeros_like(q))
        else:
            K, Vv = torch.stack(cached_k, 1), torch.stack(cached_v, 1)  # (B, S, D)
            w = torch.softmax((K @ q[:, :, None])[..., 0] / math.sqrt(q.shape[-1]), dim=-1)
            outs.append((w[:, :, None] * Vv).sum(1))
        if append:
            keys.append(k)
            values.append(v)
    return torch.stack(outs, 1)


@checker
def check_kv_step(kv_step: Callable, *, seed: int = 0, batch: int = 2, T: int = 6, C: int = 8, D: int = 4) -> None:
    """``kv_step(x_t, cache_k, cache_v, P, W_q, W_k, W_v) -> (out, cache_k, cache_v)``:
    x_t (B, C) is the new token's embedding, cache_k / cache_v (B, S, D) the keys and values of
    the S earlier positions (S may be 0), P (block, C) the learned positions. The new position is S;
    out (B, D) is its attention output over all S + 1 keys; the caches come back with S + 1 rows."""
    g = _gen(7200 + seed)
    x = torch.randn(batch, T, C, generator=g)
    P = torch.randn(T + 2, C, generator=g)
    Wq, Wk, Wv = (torch.randn(C, D, generator=g) / math.sqrt(C) for _ in range(3))
    cache_k, cache_v = torch.zeros(batch, 0, D), torch.zeros(batch, 0, D)
    outs = []
    for t in range(T):
        result = call(kv_step, x[:, t], cache_k, cache_v, P, Wq, Wk, Wv, name="kv_step")
        if not isinstance(result, (tuple, list)) or len(result) != 3:
            raise Feedback("`kv_step` must return three things: (out, cache_k, cache_v), the output of "
                           "the new position and the caches with the new key and value appended.")
        out, new_k, new_v = result
        out = expect_tensor(out, {"B": batch, "D": D}, "kv_step's out")
        for name, cache, old in (("cache_k", new_k, cache_k), ("cache_v", new_v, cache_v)):
            if isinstance(cache, torch.Tensor) and cache.dim() == 3 and cache.shape[1] == old.shape[1]:
                raise Feedback(f"`kv_step`: the cache was not appended: {name} came back with {old.shape[1]} "
                               f"positions at step {t}, expected {t + 1}. Concatenate the new one: "
                               f"torch.cat([{name}, new[:, None]], dim=1).")
            expect_tensor(cache, {"B": batch, "S": t + 1, "D": D}, f"kv_step's {name}")
        outs.append(out)
        cache_k, cache_v = new_k, new_v
    got = torch.stack(outs, 1)
    want = _reference_steps(x, P, Wq, Wk, Wv)
    expect_close(got, want, "kv_step", mistakes={
        "the position is not advanced: every step used position 0. The new token's position is the "
        "number of cached positions, S = cache_k.shape[1]: add P[S].":
            lambda: _reference_steps(x, P, Wq, Wk, Wv, advance=False),
        "the new position attends only to the cached keys, not to itself: append its key and value "
        "before attending.": lambda: _reference_steps(x, P, Wq, Wk, Wv, include_new=False),
    })
    keys_ok = _reference_keys(x, P, Wk)
    expect_close(cache_k, keys_ok, "kv_step's cache_k", mistakes={
        "the cached keys were computed without the position embedding (or at position 0): "
        "k = (x_t + P[S]) @ W_k.": lambda: _reference_keys(x, P, Wk, advance=False),
    })


def _reference_keys(x, P, Wk, advance=True):
    T = x.shape[1]
    return torch.stack([(x[:, t] + P[t if advance else 0]) @ Wk for t in range(T)], 1)


# -- exercise 3: top-k and top-p ----------------------------------------------------------------------

def _expect_filtered(got, want, name, mistakes):
    """Compare two filtered logit tensors: the same positions kept (finite), the same values there."""
    got = expect_tensor(got, {"B": want.shape[0], "V": want.shape[1]}, name, finite=False)
    if torch.isnan(got).any():
        raise Feedback(f"`{name}` returned NaN values; removed tokens must be -inf, kept ones unchanged.")
    removed = ~torch.isfinite(want)
    if torch.allclose(got, want.softmax(-1), atol=1e-5):
        raise Feedback(f"`{name}` returned probabilities; return the filtered *logits* (kept ones "
                       "unchanged, removed ones -inf): the sampler applies the softmax afterwards.")
    if bool(removed.any()) and bool(torch.isfinite(got).all()) and bool((got[removed] == 0).all()):
        raise Feedback(f"`{name}` set the removed tokens to 0; a logit of 0 still has probability "
                       "exp(0) > 0 after the softmax. Set them to float('-inf').")
    for message, candidate in mistakes.items():
        try:
            value = candidate()
        except Exception:
            continue
        if torch.equal(torch.isfinite(got), torch.isfinite(value)) and not torch.equal(
                torch.isfinite(got), torch.isfinite(want)):
            raise Feedback(f"`{name}`: {message}")
    if not torch.equal(torch.isfinite(got), torch.isfinite(want)):
        kept, should = torch.isfinite(got).sum(-1).tolist(), torch.isfinite(want).sum(-1).tolist()
        raise Feedback(f"`{name}` kept the wrong tokens: {kept} per row were kept (finite), expected "
                       f"{should}. Removed tokens must be set to -inf.")
    if not torch.allclose(got[torch.isfinite(got)], want[torch.isfinite(want)], atol=1e-5):
        raise Feedback(f"`{name}` changed the values of the kept logits: keep them as they are and set "
                       "only the removed ones to -inf (not probabilities, not 0).")


@checker
def check_top_k(top_k: Callable, *, seed: int = 0, batch: int = 3, V: int = 12, k: int = 4) -> None:
    """``top_k(logits (B, V), k)`` -> logits with every entry outside the k largest of its row set to -inf."""
    g = _gen(7300 + seed)
    logits = torch.randn(batch, V, generator=g) * 2
    got = call(top_k, logits, k, name="top_k")
    want = top_k_filter(logits, k)
    _expect_filtered(got, want, "top_k", {
        f"you kept {k - 1} tokens instead of k = {k}: the k-th largest value itself stays (compare with >=, "
        "or use torch.topk(logits, k).values[..., -1:]).": lambda: top_k_filter(logits, k - 1),
        f"you kept {k + 1} tokens instead of k = {k}.": lambda: top_k_filter(logits, k + 1),
        "you kept the k smallest logits; top-k keeps the k largest.": lambda: -top_k_filter(-logits, k),
    })


@checker
def check_top_p(top_p: Callable, *, seed: int = 0, batch: int = 4, V: int = 12, p: float = 0.7) -> None:
    """``top_p(logits (B, V), p)`` -> logits with all but the smallest set of most likely tokens
    whose probabilities sum to >= p set to -inf (the top token always stays)."""
    g = _gen(7400 + seed)
    logits = torch.randn(batch, V, generator=g) * 1.5
    got = call(top_p, logits, p, name="top_p")
    want = top_p_filter(logits, p)

    def strict():  # keeps only tokens whose cumulative mass stays < p (the crossing token dropped)
        probs = logits.softmax(-1)
        sp, order = probs.sort(-1, descending=True)
        drop = sp.cumsum(-1) > p
        drop[..., 0] = False
        return logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))

    def sorted_order():
        sp, order = logits.sort(-1, descending=True)
        drop = ~torch.isfinite(top_p_filter(sp, p))
        return sp.masked_fill(drop, float("-inf"))

    def least_likely():
        return -top_p_filter(-logits, p)

    got_t = expect_tensor(got, {"B": batch, "V": V}, "top_p", finite=False)
    kept_mass = (logits.softmax(-1) * torch.isfinite(got_t)).sum(-1)
    if torch.equal(torch.isfinite(got_t), torch.isfinite(sorted_order())) and not torch.equal(
            torch.isfinite(got_t), torch.isfinite(want)):
        raise Feedback("`top_p`: the result is in sorted order: after filtering the sorted logits, put them "
                       "back in vocabulary order (scatter with the sort's indices).")
    _expect_filtered(got_t, want, "top_p", {
        "the kept mass is below p: you dropped the token that makes the cumulative probability reach p. "
        "Keep a token when the mass of the tokens *before* it is still < p (cumsum - prob < p).": strict,
        "you kept the least likely tokens; top-p keeps the most likely ones.": least_likely,
    })
    if bool((kept_mass < p - 1e-6).any()):
        raise Feedback(f"`top_p`: the kept mass {kept_mass.min().item():.3f} is below p = {p}.")


# -- exercise 4: a prediction about the cache ---------------------------------------------------------

@checker
def check_positions_prediction(positions_processed: Callable, *, cases=((10, 20), (1, 5), (7, 1))) -> None:
    """``positions_processed(P, N, use_cache)`` -> the number of positions the model processes to
    generate N tokens after a P-token prompt: prefill once, then one forward per new token except the
    last (its logits are never needed). Checked against ``course_lib.gpt.generate``'s counter."""
    from ..gpt import GPT, GPTConfig, generate

    model = GPT(GPTConfig(vocab_size=11, block_size=64, n_layers=1, d_model=8, n_heads=2))
    for P, N in cases:
        for use_cache in (True, False):
            model.positions_processed = 0
            generate(model, list(range(P)), N, use_cache=use_cache)
            measured = model.positions_processed
            got = call(positions_processed, P, N, use_cache, name="positions_processed")
            if isinstance(got, bool) or not isinstance(got, int):
                raise Feedback(f"`positions_processed` returned {got!r}; expected an int.")
            if got == measured:
                continue
            if use_cache:
                if got == P + N:
                    hint = ("off by one: the last new token is sampled from the step before, so it never "
                            "goes through the model: P + N - 1.")
                elif got == N:
                    hint = "the prompt is processed once too (the prefill): add P."
                else:
                    hint = "with the cache: the P prompt positions once, then one position per new token but the last."
            else:
                if got == N * (P + N):
                    hint = ("without the cache each step reruns the prefix *as long as it is then*: P, P + 1, ..., "
                            "not P + N every time.")
                elif got == sum(range(P, P + N + 1)):
                    hint = "off by one: the last token is never fed back, the sum stops at P + N - 1."
                else:
                    hint = "without the cache, step n reruns all P + n positions: P + (P + 1) + ... + (P + N - 1)."
            mode = "with" if use_cache else "without"
            raise Feedback(f"`positions_processed({P}, {N}, use_cache={use_cache})` returned {got}; the model "
                           f"processed {measured} positions {mode} the cache. {hint}")
