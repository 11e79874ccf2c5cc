"""Check helpers for the exercises of chapter 08 (BERT).

One helper per exercise; each builds its inputs from ``seed``, calls the learner's function
safely, and names the usual mistake when the answer is wrong:

1. ``check_mask_80_10_10``: the [MASK] put on the positions that were *not* chosen, labels on
   every position (or on the [MASK]ed ones only), special tokens chosen, the 80/10/10 split
   wrong (random and unchanged swapped, 10 % masked), labels of -1 or 0 instead of -100, the
   input tensor changed in place;
2. ``check_attention_mask``: the mask inverted, padding hidden from the queries (rows) instead
   of the keys (columns), the (B, T) mask not shaped to broadcast against (B, H, T, T), a float
   mask;
3. ``check_changed_fraction``: a prediction: the share of tokens whose input differs from the
   original under the 80-10-10 rule (forgetting the random draws that hit the original token,
   counting all chosen positions as changed, counting only the [MASK]s).

Glossary: B batch, T sequence length, H heads, V vocabulary.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .core import Feedback, call, checker, describe, expect_close, expect_tensor, generator

IGNORE = -100


_gen = generator


# -- exercise 1: the 80-10-10 masking ------------------------------------------------------------------

def _reference_mask(ids, u, v, random_ids, is_special, mask_id, mask_prob, *, chosen_rule=None,
                    mask_where=None, labels_rule="chosen", split=(0.8, 0.9)):
    chosen = (u < mask_prob) & ~is_special if chosen_rule is None else chosen_rule
    where_mask = chosen & (v < split[0]) if mask_where is None else mask_where
    where_random = chosen & (v >= split[0]) & (v < split[1])
    inputs = torch.where(where_mask, torch.full_like(ids, mask_id), ids)
    inputs = torch.where(where_random, random_ids, inputs)
    if labels_rule == "chosen":
        labels = torch.where(chosen, ids, torch.full_like(ids, IGNORE))
    elif labels_rule == "all":
        labels = ids.clone()
    else:  # only where [MASK] was put
        labels = torch.where(where_mask, ids, torch.full_like(ids, IGNORE))
    return inputs, labels


@checker
def check_mask_80_10_10(mask_80_10_10: Callable, *, seed: int = 0, B: int = 6, T: int = 40,
                        mask_prob: float = 0.15) -> None:
    """``mask_80_10_10(ids, u, v, random_ids, is_special, mask_id, mask_prob)`` with ids,
    random_ids (B, T) long, u, v (B, T) uniform in [0, 1), is_special (B, T) bool must return
    (inputs, labels), both (B, T) long: a position is chosen iff u < mask_prob and it is not
    special; a chosen position becomes mask_id if v < 0.8, random_ids if 0.8 <= v < 0.9, else
    stays; labels = the original id on chosen positions, -100 elsewhere."""
    g = _gen(8100 + seed)
    mask_id = 6
    ids = torch.randint(7, 60, (B, T), generator=g)
    ids[:, 0], ids[:, T // 2] = 4, 5                                # [CLS] and [SEP]
    ids[1:, T - 5:] = 0                                              # padding
    is_special = ids < 7
    u = torch.rand(B, T, generator=g)
    u[is_special] = u[is_special] * mask_prob                       # specials are drawn as chosen: must be skipped
    v = torch.rand(B, T, generator=g)
    random_ids = torch.randint(7, 60, (B, T), generator=g)
    args = (ids, u, v, random_ids, is_special)
    copies = [a.clone() for a in args]
    got = call(mask_80_10_10, *args, mask_id, mask_prob, name="mask_80_10_10")
    for name, a, c in zip(("ids", "u", "v", "random_ids", "is_special"), args, copies):
        if not torch.equal(a, c):
            raise Feedback(f"`mask_80_10_10` changed its argument `{name}` in place; work on a copy "
                           "(ids.clone()) or build new tensors with torch.where.")
    if not (isinstance(got, (tuple, list)) and len(got) == 2):
        raise Feedback(f"`mask_80_10_10` returned {describe(got)}; expected a pair (inputs, labels) of "
                       f"(B, T) = ({B}, {T}) tensors.")
    inputs = expect_tensor(got[0], {"B": B, "T": T}, "inputs (the first value returned)")
    labels = expect_tensor(got[1], {"B": B, "T": T}, "labels (the second value returned)")
    want_in, want_lab = _reference_mask(ids, u, v, random_ids, is_special, mask_id, mask_prob)
    chosen_all = u < mask_prob
    not_chosen = ~((u < mask_prob) & ~is_special)
    input_mistakes = {
        "special tokens ([CLS], [SEP], padding) were masked: a position is chosen only if u < mask_prob "
        "AND it is not special: chosen = (u < mask_prob) & ~is_special.":
            lambda: _reference_mask(ids, u, v, random_ids, is_special, mask_id, mask_prob, chosen_rule=chosen_all)[0],
        "the [MASK] is applied to the positions that were NOT chosen: [MASK] goes where chosen & (v < 0.8).":
            lambda: _reference_mask(ids, u, v, random_ids, is_special, mask_id, mask_prob,
                                    mask_where=not_chosen & (v < 0.8))[0],
        "the [MASK] is applied to every non-chosen position: only chosen positions are corrupted, the "
        "other 85 % stay as they are.":
            lambda: _reference_mask(ids, u, v, random_ids, is_special, mask_id, mask_prob, mask_where=not_chosen)[0],
        "every chosen position became [MASK]: of the chosen, 80 % become [MASK] (v < 0.8), 10 % a random "
        "token (0.8 <= v < 0.9) and 10 % stay unchanged.":
            lambda: _reference_mask(ids, u, v, random_ids, is_special, mask_id, mask_prob, split=(1.0, 1.0))[0],
        "the random and unchanged shares are swapped or misplaced: [MASK] if v < 0.8, random_ids if "
        "0.8 <= v < 0.9, unchanged if v >= 0.9.":
            lambda: torch.where((u < mask_prob) & ~is_special & (v >= 0.9), random_ids,
                                _reference_mask(ids, u, v, random_ids, is_special, mask_id, mask_prob, split=(0.8, 0.8))[0]),
        "you put [MASK] where v < 0.1 (10 %) instead of v < 0.8 (80 %).":
            lambda: _reference_mask(ids, u, v, random_ids, is_special, mask_id, mask_prob, split=(0.1, 0.2))[0],
    }
    expect_close(inputs.double(), want_in.double(), "inputs", atol=0, rtol=0,
                 mistakes={k: (lambda f=f: f().double()) for k, f in input_mistakes.items()})
    expect_close(labels.double(), want_lab.double(), "labels", atol=0, rtol=0, mistakes={
        "labels are set on every position: the loss must only see the chosen positions, so every other "
        "label is -100 (ignored by F.cross_entropy).":
            lambda: _reference_mask(ids, u, v, random_ids, is_special, mask_id, mask_prob, labels_rule="all")[1].double(),
        "labels are set only where [MASK] was put: the 10 % random and 10 % unchanged chosen positions "
        "are targets too (label = the original id wherever chosen).":
            lambda: _reference_mask(ids, u, v, random_ids, is_special, mask_id, mask_prob, labels_rule="mask")[1].double(),
        "special tokens got labels: they are never chosen, so their label is -100.":
            lambda: torch.where(chosen_all, ids, torch.full_like(ids, IGNORE)).double(),
        "the labels hold the corrupted inputs; they must hold the ORIGINAL ids (what the model must recover).":
            lambda: torch.where((u < mask_prob) & ~is_special, want_in, torch.full_like(ids, IGNORE)).double(),
        "the ignored label is -100 (F.cross_entropy's ignore_index), not -1.":
            lambda: torch.where((u < mask_prob) & ~is_special, ids, torch.full_like(ids, -1)).double(),
        "the ignored label is -100, not 0 (0 is the id of <pad>, a real class).":
            lambda: torch.where((u < mask_prob) & ~is_special, ids, torch.zeros_like(ids)).double(),
    })


# -- exercise 2: the attention mask for padding ---------------------------------------------------------

@checker
def check_attention_mask(attention_mask: Callable, *, seed: int = 0, lengths: tuple[int, ...] = (6, 4, 2),
                         T: int = 6, pad_id: int = 0) -> None:
    """``attention_mask(ids (B, T), pad_id)`` must return a bool mask of shape (B, 1, 1, T) that
    broadcasts against the (B, H, T, T) scores: True where the KEY is a real token (every query
    may look at every real token, none at padding)."""
    g = _gen(8200 + seed)
    B = len(lengths)
    ids = torch.randint(1, 30, (B, T), generator=g)
    ids = torch.where(ids == pad_id, ids + 1, ids)                  # a real token never equals pad_id
    real = torch.arange(T)[None, :] < torch.tensor(list(lengths))[:, None]
    ids = ids.masked_fill(~real, pad_id)
    got = call(attention_mask, ids, pad_id, name="attention_mask")
    if isinstance(got, torch.Tensor) and got.dtype != torch.bool:
        raise Feedback(f"`attention_mask` returned dtype {got.dtype}; return a bool tensor (True = may attend), "
                       "e.g. (ids != pad_id)[:, None, None, :].")
    if isinstance(got, torch.Tensor) and tuple(got.shape) == (B, T):
        raise Feedback(f"`attention_mask` returned shape (B, T) = {(B, T)}; the scores are (B, H, T, T), so the "
                       "key mask must be (B, 1, 1, T): add the head and query axes, mask[:, None, None, :].")
    if isinstance(got, torch.Tensor) and got.dim() == 4 and tuple(got.shape[-2:]) == (T, 1):
        raise Feedback("the padding is applied to the queries (rows) instead of the keys (columns): the mask says "
                       "which KEYS a query may look at: (ids != pad_id)[:, None, None, :], shape (B, 1, 1, T).")
    if isinstance(got, torch.Tensor) and got.dim() == 4 and tuple(got.shape[-2:]) == (T, T):
        hides_rows = bool((~got[:, 0].bool().any(-1) & ~real).any())  # padded query rows all False
        raise Feedback("your mask has shape (B, 1, T, T)" + (" and hides padded queries (rows)" if hides_rows else "")
                       + "; a padding mask depends on the key only: return (ids != pad_id)[:, None, None, :], "
                       "shape (B, 1, 1, T), which broadcasts over every query.")
    got = expect_tensor(got, {"B": B, "heads (1)": 1, "queries (1)": 1, "T (keys)": T}, "attention_mask",
                        finite=False)
    want = real[:, None, None, :]
    expect_close(got.double(), want.double(), "attention_mask", atol=0, rtol=0, mistakes={
        "the mask is inverted: True means 'may attend', so real tokens are True and padding False.":
            lambda: (~want).double(),
    })
    # the learner's mask must work in attention: real queries ignore the padded keys
    scores = torch.randn(B, 2, T, T, generator=g)
    weights = torch.softmax(scores.masked_fill(~got, float("-inf")), dim=-1)
    if float(weights[~want.expand(B, 2, T, T)].abs().max()) > 0:
        raise Feedback("with your mask, attention still puts weight on padded keys.")


# -- exercise 3: a prediction ---------------------------------------------------------------------------

def changed_fraction_reference(mask_prob: float, n_candidates: int) -> float:
    return mask_prob * (0.8 + 0.1 * (1 - 1 / n_candidates))


@checker
def check_changed_fraction(changed_fraction: Callable, *, cases: tuple = ((0.15, 2000), (0.15, 10), (0.4, 4))) -> None:
    """``changed_fraction(mask_prob, n_candidates)`` must return the expected share of maskable
    positions whose INPUT differs from the original: mask_prob * (0.8 + 0.1 * (1 - 1 / n_candidates)),
    since a random replacement drawn uniformly from n_candidates ids hits the original with
    probability 1 / n_candidates."""
    for p, n in cases:
        got = call(changed_fraction, p, n, name="changed_fraction")
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if isinstance(got, bool) or not isinstance(got, (int, float)) or not math.isfinite(got):
            raise Feedback(f"`changed_fraction({p}, {n})` returned {describe(got)}; expected a float in [0, 1].")
        want = changed_fraction_reference(p, n)
        mistakes = {
            "you counted every chosen position as changed, but 10 % of them are left unchanged (and some "
            "random draws equal the original).": p,
            "you counted only the [MASK]ed positions; the random replacements change the input too.": 0.8 * p,
            "you forgot that a random replacement can draw the original token itself (probability "
            "1 / n_candidates), which leaves the input unchanged.": 0.9 * p,
            "you returned the share of positions left unchanged instead of changed.": 1 - want,
        }
        if abs(got - want) > 1e-9:
            for message, value in mistakes.items():
                if abs(got - value) < 1e-9:
                    raise Feedback(f"changed_fraction({p}, {n}): {message} Expected {want:.6f}, got {got:.6f}.")
            raise Feedback(f"changed_fraction({p}, {n}) returned {got:.6f}; expected {want:.6f}. Of the chosen "
                           "positions (probability mask_prob), which ones end up with a different input token?")
