"""Check helpers for the exercises of chapter 11 (efficient attention: the online softmax).

The state of a softmax read block by block, per query row (the convention of every exercise):

    m  (B, T)     the largest score seen so far
    l  (B, T)     sum over the keys seen so far of exp(s - m)
    o  (B, T, D)  sum over the keys seen so far of exp(s - m) v   (unnormalised)

and the attention output is o / l once every key has been seen.

One helper per exercise; each builds its inputs from ``seed``, calls the learner's function
safely, and names the usual mistake when the answer is wrong:

1. ``check_online_softmax_stats``: the old sum not rescaled, the rescaling factor with the wrong
   sign (exp(m_new - m_old)), the sum of the block maxima instead of their max, exp of the raw
   scores (overflow at scores around 1000), the stream read twice, a wrong return type;
2. ``check_merge_states``: m from the sum of the maxima, from the max of l, or the min; l or o
   not rescaled, rescaled with the wrong sign, or only one of them rescaled; o divided by l (too
   early), the merge rule of normalised outputs, overflow with large scores, NaN when a block
   has no visible key, wrong return type or shape;
3. ``check_lse_from_state`` and ``check_tile_probs``: log forgotten, m forgotten, the wrong sign
   or base, exp(m) overflowing; probabilities normalised within the tile, lse not broadcast;
4. ``check_blockwise_attention``: merge never called, the scale forgotten, o not divided by l at
   the end or divided per block before merging, only the last block kept, the ragged last block
   dropped, states of the wrong shape handed to merge.

Glossary: B batch, T queries, S keys, D head dim.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch

from .core import Feedback, call, checker, describe, expect_close, expect_tensor, expect_tuple, generator

_NEG_INF = float("-inf")
_STATE = ("m (B, T) is the running max of the scores, l (B, T) the sum of exp(s - m), "
          "o (B, T, D) the sum of exp(s - m) v")


_gen = generator


def _rescaled(m_old: torch.Tensor, m_new: torch.Tensor, sign: int = 1) -> torch.Tensor:
    """exp(sign * (m_old - m_new)), 0 where m_old = -inf (nothing summed yet)."""
    safe_new = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)
    factor = torch.exp(sign * (m_old - safe_new))
    return torch.where(torch.isneginf(m_old), torch.zeros_like(factor), factor)


def _scalar(value: Any, name: str, what: str) -> torch.Tensor:
    """A Python number, 0-d or one-element tensor (or NumPy scalar) as a float64 0-d tensor."""
    if isinstance(value, bool) or value is None:
        raise Feedback(f"`{name}` returned {describe(value)} for {what}; expected a number "
                       "(a Python float or a 0-d tensor).")
    if isinstance(value, (int, float)):
        return torch.tensor(float(value), dtype=torch.float64)
    if type(value).__module__ == "numpy" and hasattr(value, "shape"):
        value = torch.as_tensor(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.detach().reshape(()).to(torch.float64)
    raise Feedback(f"`{name}` returned {describe(value)} for {what}; expected one number "
                   "(a Python float or a 0-d tensor), the statistic of the whole stream.")


# -- exercise 1: the online softmax over a stream ----------------------------------------------------

class _Stream:
    """Blocks of a stream that can be read once, like scores too many to store."""

    def __init__(self, blocks: list[torch.Tensor], name: str):
        self._blocks, self._name, self.reads, self.taken = blocks, name, 0, 0

    def __iter__(self):
        self.reads += 1
        if self.reads > 1:
            raise Feedback(f"`{self._name}` read `blocks` a second time; a stream can be read only once "
                           "(think of scores too many to store). Keep m and l up to date as each block "
                           "arrives, in a single `for x in blocks:` loop.")
        return self._generate()

    def _generate(self):
        for block in self._blocks:
            self.taken += 1
            yield block.clone()


def _stream_blocks(seed: int, n_blocks: int, block: int, offset: float, scale: float) -> list[torch.Tensor]:
    g = _gen(1100 + seed)
    # a rising trend, so that the running max grows several times and the rescaling matters
    return [scale * torch.randn(block, generator=g, dtype=torch.float64) + offset + 1.5 * j
            for j in range(n_blocks)]


def _stream_variant(blocks: list[torch.Tensor], *, sign: int = 1, rescale: bool = True,
                    sum_of_maxes: bool = False, raw_exp: bool = False):
    """What the usual mistakes return: (m, l) after one pass."""
    m, l = torch.tensor(0.0 if sum_of_maxes else _NEG_INF, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
    for x in blocks:
        if raw_exp:
            m, l = torch.maximum(m, x.max()), l + torch.exp(x).sum()
            continue
        m_new = m + x.max() if sum_of_maxes else torch.maximum(m, x.max())
        factor = _rescaled(m, m_new, sign) if rescale else torch.tensor(1.0, dtype=torch.float64)
        l = l * factor + torch.exp(x - m_new).sum()
        m = m_new
    return m, l


def _run_stream(fn: Callable, blocks: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, _Stream]:
    name = "online_softmax_stats"
    stream = _Stream(blocks, name)
    got = call(fn, stream, name=name, hints={
        "has no len": "`blocks` is a stream: loop over it with `for x in blocks:`; its length is not "
                      "known in advance.",
        "not subscriptable": "`blocks` is a stream: loop over it with `for x in blocks:`; it cannot be "
                             "indexed.",
    })
    m, l = expect_tuple(got, name, ("m", "l"))
    return _scalar(m, name, "m"), _scalar(l, name, "l"), stream


@checker
def check_online_softmax_stats(online_softmax_stats: Callable, *, seed: int = 0, n_blocks: int = 6,
                               block: int = 5, offset: float = 0.0, scale: float = 3.0) -> None:
    """``online_softmax_stats(blocks)`` reads an iterable of 1-D float64 tensors once and must
    return ``(m, l)``: the max of all values and the sum of exp(x - m) over all values.

    ``offset`` shifts every value (1000 makes exp(x) overflow even in float64).
    """
    name = "online_softmax_stats"
    blocks = _stream_blocks(seed, n_blocks, block, offset, scale)
    m, l, stream = _run_stream(online_softmax_stats, blocks)
    if stream.reads == 0 or stream.taken < n_blocks:
        raise Feedback(f"`{name}` read {stream.taken} of the {n_blocks} blocks of the stream; read every "
                       "block: `for x in blocks:`.")
    if not (bool(torch.isfinite(m)) and bool(torch.isfinite(l))):
        small = _stream_blocks(seed, n_blocks, block, 0.0, 1.0)
        m_small, l_small, _ = _run_stream(online_softmax_stats, small)
        small_ok = bool(torch.isfinite(m_small)) and bool(torch.isfinite(l_small))
        if small_ok and offset > 50:
            raise Feedback(f"`{name}` returned m = {m.item():.5g}, l = {l.item():.5g}: an overflow. With "
                           f"values around {offset:g}, exp(x) is inf even in float64 (above about 709). "
                           "Never exponentiate a value itself, only x - m with m the running max, so "
                           "that every exponent is <= 0.")
        if not small_ok:
            raise Feedback(f"`{name}` returned m = {m.item():.5g}, l = {l.item():.5g}, NaN or inf even on "
                           "small values. Look at the rescaling factor: it is exp(m_old - m_new), which is 0 "
                           "at the start (m_old = -inf) and never above 1; exp(m_new - m_old) is inf at the "
                           "start, and inf * 0 = nan.")
        raise Feedback(f"`{name}` returned m = {m.item():.5g}, l = {l.item():.5g}: NaN or inf. Look for an "
                       "exp of a value that is not first reduced by the running max, or a factor "
                       "exp(m_new - m_old) that should be exp(m_old - m_new).")
    x = torch.cat(blocks)
    want_m = x.max()
    want_l = torch.exp(x - want_m).sum()
    sum_of_maxes = lambda: _stream_variant(blocks, sum_of_maxes=True)[0].reshape(1)  # noqa: E731
    no_rescale = lambda: _stream_variant(blocks, rescale=False)[1].reshape(1)  # noqa: E731
    wrong_sign = lambda: _stream_variant(blocks, sign=-1)[1].reshape(1)  # noqa: E731
    # float32 arithmetic is fine too: these tolerances allow it and no mistake comes close
    expect_close(m.reshape(1), want_m.reshape(1), f"{name} (m)", atol=1e-6, rtol=1e-6, mistakes={
        "m is the sum of the blocks' maxima; the running max is the max of the old m and the new "
        "block's max: m_new = max(m_old, max(x_block)).": sum_of_maxes,
        "m is the max of the last block only; keep the max over everything seen: "
        "m_new = max(m_old, max(x_block)).": blocks[-1].max().reshape(1),
        "m is the max of the first block only; update it with every block: "
        "m_new = max(m_old, max(x_block)).": blocks[0].max().reshape(1),
    })
    expect_close(l.reshape(1), want_l.reshape(1), f"{name} (l)", atol=1e-6, rtol=1e-5, mistakes={
        "looks like you forgot to rescale the old sum: when the max grows from m_old to m_new, the "
        "terms summed so far are exp(x - m_old) and must become exp(x - m_new): multiply the old l by "
        "exp(m_old - m_new) before adding the new block's terms.": no_rescale,
        "the rescaling factor has the wrong sign: it is exp(m_old - m_new) (at most 1, since the max "
        "only grows), not exp(m_new - m_old).": wrong_sign,
        "l is the sum of exp(x), not of exp(x - m): it overflows for large values. Sum exp(x - m) and "
        "rescale when m grows.": lambda: _stream_variant(blocks, raw_exp=True)[1].reshape(1),
        "l is log(sum of exp(x - m)); return the sum itself (the log-sum-exp comes in exercise 3).":
            torch.log(want_l).reshape(1),
        "l is the log-sum-exp m + log(l); return the plain sum of exp(x - m).": (want_m + torch.log(want_l)).reshape(1),
    })


# -- exercise 2: merging the states of two key blocks ------------------------------------------------

def _block_state(s: torch.Tensor, v: torch.Tensor):
    """(m, l, o) of one key block: s (B, T, S_blk) scores, -inf where masked; v (B, S_blk, D)."""
    m = s.amax(dim=-1)
    p = torch.exp(s - torch.where(torch.isinf(m), torch.zeros_like(m), m)[..., None])
    return m, p.sum(dim=-1), p @ v


def merge_reference(m1, l1, o1, m2, l2, o2):
    """The merge of two states (see the module's docstring); m = -inf in one of them is allowed."""
    m = torch.maximum(m1, m2)
    a1, a2 = _rescaled(m1, m), _rescaled(m2, m)
    return m, a1 * l1 + a2 * l2, a1[..., None] * o1 + a2[..., None] * o2


def _merge_problem(seed: int, batch: int, T: int, D: int, S1: int, S2: int, offset: float, scale: float,
                   empty_row: bool):
    g = _gen(2100 + seed)
    s1 = scale * torch.randn(batch, T, S1, generator=g, dtype=torch.float64) + offset
    s2 = scale * torch.randn(batch, T, S2, generator=g, dtype=torch.float64) + offset
    rows = torch.arange(T) % 2 == 0  # block 1 leads on even rows, block 2 on odd ones
    s1[:, rows] += 2.0
    s2[:, ~rows] += 2.0
    if empty_row:  # no key of block 2 is visible to query (0, 0)
        s2[0, 0] = _NEG_INF
    v1 = torch.randn(batch, S1, D, generator=g, dtype=torch.float64)
    v2 = torch.randn(batch, S2, D, generator=g, dtype=torch.float64)
    return s1, v1, s2, v2


def _compare_merge(got, inputs, want):
    name = "merge_states"
    m1, l1, o1, m2, l2, o2 = inputs
    want_m, want_l, want_o = want
    m, l, o = got
    a1, a2 = _rescaled(m1, want_m), _rescaled(m2, want_m)
    b1, b2 = _rescaled(m1, want_m, sign=-1), _rescaled(m2, want_m, sign=-1)
    expect_close(m, want_m, f"{name} (m)", mistakes={
        "m is the sum of the two maxima; the max of both blocks is max(m1, m2) (torch.maximum).": lambda: m1 + m2,
        "m is the max of l1 and l2; m is the running max of the scores: torch.maximum(m1, m2).":
            lambda: torch.maximum(l1, l2),
        "m is the smaller of m1 and m2; take the larger: torch.maximum(m1, m2).": lambda: torch.minimum(m1, m2),
        "m is m1 alone; the merged max is torch.maximum(m1, m2).": m1,
        "m is m2 alone; the merged max is torch.maximum(m1, m2).": m2,
    })
    expect_close(l, want_l, f"{name} (l)", mistakes={
        "looks like you forgot to rescale the old sums: l1 is a sum of exp(s - m1) and l2 of exp(s - m2); "
        "against the merged max m they become l1 * exp(m1 - m) and l2 * exp(m2 - m). Rescale o1 and o2 "
        "the same way.": lambda: l1 + l2,
        "the rescaling factors have the wrong sign: l1 * exp(m1 - m) + l2 * exp(m2 - m), each factor at "
        "most 1 (m is the larger max), not exp(m - m1).": lambda: b1 * l1 + b2 * l2,
        "only l1 was rescaled: l2 is a sum of exp(s - m2) and needs exp(m2 - m) too.": lambda: a1 * l1 + l2,
        "only l2 was rescaled: l1 is a sum of exp(s - m1) and needs exp(m1 - m) too.": lambda: l1 + a2 * l2,
        "l is the larger of l1 and l2; the sums add up once they are measured against the same max: "
        "l1 * exp(m1 - m) + l2 * exp(m2 - m).": lambda: torch.maximum(l1, l2),
    })
    a1_, a2_, b1_, b2_ = (t[..., None] for t in (a1, a2, b1, b2))
    l1_, l2_, L_ = l1[..., None], l2[..., None], want_l[..., None]
    expect_close(o, want_o, f"{name} (o)", mistakes={
        "you divided o by l: here o is the unnormalised accumulator (a sum of exp(s - m) v), and it "
        "stays unnormalised through every merge; divide by l once, at the very end, or you normalise "
        "twice.": lambda: want_o / L_,
        "looks like you forgot to rescale the old accumulators: o1 is a sum of exp(s - m1) v; against "
        "the merged max it becomes o1 * exp(m1 - m) (and o2 * exp(m2 - m)), exactly like l.": lambda: o1 + o2,
        "the rescaling factors have the wrong sign: o1 * exp(m1 - m) + o2 * exp(m2 - m), each factor at "
        "most 1, not exp(m - m1).": lambda: b1_ * o1 + b2_ * o2,
        "only o1 was rescaled: o2 is a sum of exp(s - m2) v and needs exp(m2 - m) too.": lambda: a1_ * o1 + o2,
        "only o2 was rescaled: o1 is a sum of exp(s - m1) v and needs exp(m1 - m) too.": lambda: o1 + a2_ * o2,
        "that is the merge rule for normalised outputs (o1 weighted by l1); here o1 and o2 are already "
        "unnormalised sums of exp(s - m) v, so weight them only by exp(m1 - m) and exp(m2 - m), and do "
        "not divide by l.": lambda: (a1_ * l1_ * o1 + a2_ * l2_ * o2) / L_,
        "you multiplied o1 and o2 by l1 and l2: they are already unnormalised (sums of exp(s - m) v); "
        "weight them only by exp(m1 - m) and exp(m2 - m).": lambda: a1_ * l1_ * o1 + a2_ * l2_ * o2,
    })


@checker
def check_merge_states(merge_states: Callable, *, seed: int = 0, batch: int = 2, T: int = 6, D: int = 3,
                       S1: int = 4, S2: int = 5, offset: float = 0.0, scale: float = 1.5,
                       empty_row: bool = False) -> None:
    """``merge_states(m1, l1, o1, m2, l2, o2)`` must return the state ``(m, l, o)`` of the two key
    blocks together: m = max(m1, m2), l = l1 exp(m1 - m) + l2 exp(m2 - m),
    o = o1 exp(m1 - m) + o2 exp(m2 - m); shapes m, l (B, T), o (B, T, D), o unnormalised.

    ``offset`` shifts every score (1000 makes exp(score) overflow); ``empty_row`` hides every key
    of block 2 from query (0, 0), whose block-2 state is then m = -inf, l = 0, o = 0.
    """
    name = "merge_states"
    s1, v1, s2, v2 = _merge_problem(seed, batch, T, D, S1, S2, offset, scale, empty_row)
    inputs = (*_block_state(s1, v1), *_block_state(s2, v2))
    want = _block_state(torch.cat([s1, s2], dim=-1), torch.cat([v1, v2], dim=1))  # softmax over both at once
    got = call(merge_states, *(t.clone() for t in inputs), name=name, hints={
        "must match the size": "m and l are (B, T) and o is (B, T, D): a factor of shape (B, T) must be "
                               "unsqueezed, factor[..., None], before it multiplies o.",
    })
    m, l, o = expect_tuple(got, name, ("m", "l", "o"))
    m = expect_tensor(m, {"B": batch, "T": T}, f"{name} (m)", finite=False)
    l = expect_tensor(l, {"B": batch, "T": T}, f"{name} (l)", finite=False)
    o = expect_tensor(o, {"B": batch, "T": T, "D": D}, f"{name} (o)", finite=False)
    if not all(bool(torch.isfinite(t).all()) for t in (m, l, o)):
        bad = ", ".join(k for k, t in zip("mlo", (m, l, o)) if not bool(torch.isfinite(t).all()))
        simple = dict(seed=seed, batch=batch, T=T, D=D, S1=S1, S2=S2, scale=scale)
        if offset != 0.0 or empty_row:
            try:
                check_merge_states(merge_states, **simple)
            except Feedback as feedback:
                raise Feedback(f"`{name}` returned NaN or inf in {bad}; on plain inputs it is wrong too: "
                               f"{feedback}") from None
        if offset > 50:
            raise Feedback(f"`{name}` returned NaN or inf in {bad}: an overflow. With scores around "
                           f"{offset:g}, exp(m1) or exp(m2) is inf (float64 overflows above about 709). "
                           "Never exponentiate a max itself, only the differences m1 - m and m2 - m, "
                           "which are <= 0.")
        if empty_row:
            raise Feedback(f"`{name}` returned NaN or inf in {bad} for a query that sees no key of block 2 "
                           "(its state is m2 = -inf, l2 = 0, o2 = 0; causal or padding masks make such "
                           "rows). The plain rule handles it: exp(m2 - m) = exp(-inf) = 0. NaN comes from "
                           "exp(m - m2) = inf times 0, or from -inf - (-inf): use exp(m1 - m) and "
                           "exp(m2 - m) with m = torch.maximum(m1, m2).")
        raise Feedback(f"`{name}` returned NaN or inf in {bad} on ordinary inputs: look for a division by "
                       "zero, or a factor exp(m - m1) that should be exp(m1 - m).")
    _compare_merge((m, l, o), inputs, want)
    # the point of it all: the merged state gives softmax attention over both blocks
    out = o / l[..., None]
    s, vv = torch.cat([s1, s2], dim=-1), torch.cat([v1, v2], dim=1)
    expect_close(out, torch.softmax(s, dim=-1) @ vv, f"{name} (o / l)")


# -- exercise 3: the log-sum-exp, and the probabilities recomputed from it ----------------------------

def _lse_problem(seed: int, batch: int, T: int, S: int, offset: float, scale: float):
    g = _gen(3100 + seed)
    s = scale * torch.randn(batch, T, S, generator=g, dtype=torch.float64) + offset
    m = s.amax(dim=-1)
    return s, m, torch.exp(s - m[..., None]).sum(dim=-1)


@checker
def check_lse_from_state(lse_from_state: Callable, *, seed: int = 0, batch: int = 2, T: int = 4, S: int = 7,
                         offset: float = 0.0, scale: float = 2.0) -> None:
    """``lse_from_state(m (B, T), l (B, T))`` must return the log-sum-exp log(sum_j exp(s_j)) = m + log(l),
    shape (B, T). ``offset`` shifts every score (1000 makes exp(m) overflow)."""
    name = "lse_from_state"
    s, m, l = _lse_problem(seed, batch, T, S, offset, scale)
    got = call(lse_from_state, m.clone(), l.clone(), name=name)
    got = expect_tensor(got, {"B": batch, "T": T}, name, finite=False)
    if not bool(torch.isfinite(got).all()):
        if offset > 50:
            raise Feedback(f"`{name}` returned NaN or inf: with scores around {offset:g}, exp(m) overflows "
                           "(float64 stops at about 709). Do not go back through exp: "
                           "log(exp(m) * l) = m + log(l).")
        raise Feedback(f"`{name}` returned NaN or inf: l is at least 1 here, so log(l) is finite; "
                       "look for an exp of m or a division.")
    want = torch.logsumexp(s, dim=-1)
    expect_close(got, want, name, mistakes={
        "you returned log(l) alone; l is measured against m (a sum of exp(s - m)), so "
        "log(sum exp(s)) = m + log(l).": lambda: torch.log(l),
        "you added l itself; the log-sum-exp is m + log(l).": lambda: m + l,
        "the sign of log(l) is wrong: log(sum exp(s)) = log(exp(m) * l) = m + log(l).": lambda: m - torch.log(l),
        "you used log2; the natural log goes with exp: m + torch.log(l).": lambda: m + torch.log2(l),
        "you used log10; the natural log goes with exp: m + torch.log(l).": lambda: m + torch.log10(l),
        "you returned exp(m) * l, the sum of exp(s) itself; return its log, m + log(l), which also never "
        "overflows.": lambda: torch.exp(m) * l,
        "you returned m alone; add log(l).": m,
    })


@checker
def check_tile_probs(tile_probs: Callable, *, seed: int = 0, batch: int = 2, T: int = 4, S: int = 9,
                     start: int = 2, width: int = 5, offset: float = 0.0, scale: float = 2.0) -> None:
    """``tile_probs(s_tile (B, T, S_tile), lse (B, T))`` must return exp(s_tile - lse): the softmax
    probabilities of the tile's keys against ALL keys, shape (B, T, S_tile)."""
    name = "tile_probs"
    if width == T:
        raise ValueError("width: use a tile width other than T, so that a missing unsqueeze fails loudly")
    s, _, _ = _lse_problem(seed, batch, T, S, offset, scale)
    lse = torch.logsumexp(s, dim=-1)
    tile = s[:, :, start:start + width].clone()
    got = call(tile_probs, tile, lse.clone(), name=name, hints={
        "must match the size": "s_tile is (B, T, S_tile) and lse is (B, T): subtract lse[..., None], "
                               "one value per query row.",
    })
    got = expect_tensor(got, {"B": batch, "T": T, "S_tile": tile.shape[-1]}, name, finite=False)
    if not bool(torch.isfinite(got).all()):
        raise Feedback(f"`{name}` returned NaN or inf: with large scores exp(s) and exp(lse) overflow on "
                       "their own; compute exp(s_tile - lse[..., None]), whose exponent is <= 0.")
    want = torch.softmax(s, dim=-1)[:, :, start:start + width]
    expect_close(got, want, name, mistakes={
        "you normalised within the tile (a softmax over its keys): the tile holds only some of the keys, "
        "and its probabilities are against all of them, exp(s_tile - lse), which is why lse is saved.":
            lambda: torch.softmax(tile, dim=-1),
        "the sign is wrong: the probabilities are exp(s_tile - lse), each at most 1.":
            lambda: torch.exp(lse[..., None] - tile),
        "you returned s_tile - lse, the log-probabilities; take exp of them.": lambda: tile - lse[..., None],
        "you divided by lse; lse is a log, so subtract it in the exponent: exp(s_tile - lse).":
            lambda: torch.exp(tile) / lse[..., None],
        "you forgot the lse: exp(s_tile) alone is not normalised; use exp(s_tile - lse[..., None]).":
            lambda: torch.exp(tile),
    })


# -- exercise 4: attention block by block ------------------------------------------------------------

class _MergeProbe:
    """The reference merge, recording how the learner calls it and checking its arguments."""

    def __init__(self, batch: int, T: int, D: int):
        self.batch, self.T, self.D, self.calls = batch, T, D, 0

    def __call__(self, *args):
        self.calls += 1
        if len(args) != 6:
            raise Feedback(f"`blockwise_attention` called merge with {len(args)} arguments; it takes six, "
                           "merge(m, l, o, m_blk, l_blk, o_blk), and returns the merged (m, l, o).")
        dims = {"m": {"B": self.batch, "T": self.T}, "l": {"B": self.batch, "T": self.T},
                "o": {"B": self.batch, "T": self.T, "D": self.D}}
        for arg, label in zip(args, ("m", "l", "o", "m_blk", "l_blk", "o_blk")):
            want = dims[label[0]]
            if not isinstance(arg, torch.Tensor) or tuple(arg.shape) != tuple(want.values()):
                raise Feedback(f"`blockwise_attention` called merge with {label} = {describe(arg)}; merge takes "
                               f"{label} of shape ({', '.join(want)}) = {tuple(want.values())}. {_STATE}. "
                               "Take the block's max with .amax(dim=-1) (no keepdim) and its sum with "
                               ".sum(dim=-1).")
        return merge_reference(*(a.to(torch.float64) for a in args))


def _attention_variant(q, k, v, block: int, *, scale: bool = True, normalise_blocks: bool = False,
                       last_only: bool = False, drop_tail: bool = False):
    D, S = q.shape[-1], k.shape[1]
    c = 1 / math.sqrt(D) if scale else 1.0
    end = (S // block) * block if drop_tail else S
    state = None
    for j in range(0, end, block):
        m, l, o = _block_state(q @ k[:, j:j + block].transpose(-2, -1) * c, v[:, j:j + block])
        if normalise_blocks:
            o = o / l[..., None]
        state = (m, l, o) if (state is None or last_only) else merge_reference(*state, m, l, o)
    return state[2] / state[1][..., None]


def _unnormalised(q, k, v, block: int) -> torch.Tensor:
    D, S = q.shape[-1], k.shape[1]
    state = None
    for j in range(0, S, block):
        blk = _block_state(q @ k[:, j:j + block].transpose(-2, -1) / math.sqrt(D), v[:, j:j + block])
        state = blk if state is None else merge_reference(*state, *blk)
    return state[2]


@checker
def check_blockwise_attention(blockwise_attention: Callable, *, seed: int = 0, batch: int = 2, T: int = 5,
                              S: int = 11, D: int = 4, block_size: int = 4, q_scale: float = 1.0) -> None:
    """``blockwise_attention(q (B, T, D), k (B, S, D), v (B, S, D), block_size, merge)`` must return
    softmax(q k^T / sqrt(D)) v, shape (B, T, D), computing one key block's state at a time and
    combining them with ``merge`` (the reference merge, instrumented). ``q_scale`` multiplies q:
    300 gives scores in the hundreds, where exp(score) overflows."""
    name = "blockwise_attention"
    g = _gen(4100 + seed)
    q = q_scale * torch.randn(batch, T, D, generator=g, dtype=torch.float64)
    k = torch.randn(batch, S, D, generator=g, dtype=torch.float64)
    v = torch.randn(batch, S, D, generator=g, dtype=torch.float64)
    probe = _MergeProbe(batch, T, D)
    got = call(blockwise_attention, q, k, v, block_size, probe, name=name, hints={
        "must match the size": "per block: s (B, T, block) = q @ k_blk.transpose(-2, -1) / sqrt(D), "
                               "then m and l (B, T) and o = p @ v_blk (B, T, D).",
    })
    got = expect_tensor(got, {"B": batch, "T": T, "D": D}, name, finite=False)
    n_blocks = -(-S // block_size)
    if probe.calls == 0 and n_blocks > 1:
        raise Feedback(f"`{name}` never called `merge`: the point is to build the answer one key block at "
                       f"a time ({n_blocks} blocks of at most {block_size} keys here), computing each "
                       "block's state (m, l, o) and combining it with the running one: "
                       "state = merge(*state, *block_state).")
    if not bool(torch.isfinite(got).all()):
        raise Feedback(f"`{name}` returned NaN or inf. With large scores exp(s) overflows: a block's state "
                       "uses p = exp(s - m[..., None]) with m = s.amax(dim=-1), every exponent <= 0. "
                       "If you start from m = -inf, l = 0, o = 0, merge handles it; divide o by l only "
                       "once, at the end.")
    want = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(D), dim=-1) @ v
    variant = lambda **kw: _attention_variant(q, k, v, block_size, **kw)  # noqa: E731
    mistakes = {
        "looks like you forgot the 1/sqrt(D) scale on the scores: s = q @ k_blk.transpose(-2, -1) / sqrt(D).":
            lambda: variant(scale=False),
        "you divided each block's o by its l before merging: merge takes unnormalised accumulators "
        "(sums of exp(s - m) v); divide the merged o by the merged l once, at the end.":
            lambda: variant(normalise_blocks=True),
        "you kept only the last block's state: combine each block with the running state, "
        "state = merge(*state, *block_state), instead of replacing it.": lambda: variant(last_only=True),
        f"your blocks missed the last S % block_size = {S % block_size} keys: loop with "
        "range(0, S, block_size) and slice k[:, j:j + block_size]; the last block may be shorter.":
            lambda: variant(drop_tail=True),
        "you returned o without dividing by l: the output is o / l[..., None], once every block is "
        "merged.": lambda: _unnormalised(q, k, v, block_size),
    }
    expect_close(got, want, name, mistakes=mistakes)
    if probe.calls < n_blocks - 1:
        raise Feedback(f"`{name}` called merge {probe.calls} times for {n_blocks} key blocks; each block "
                       "after the first must be merged into the running state.")

