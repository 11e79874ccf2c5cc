"""Attention in a recurrent decoder (chapter 04): masked softmax, the scores of Bahdanau and
Luong, and the attention decoder that replaces chapter 03's fixed context vector.

One decoder query attends over S encoder states. A scorer has three steps so that a decoder
can run the expensive key-side part once per source rather than once per output step::

    prepare_keys(keys)       -> keys in the form the score needs                 (B, S, *)
    score(query, prepared)   -> one number per key                               (B, [T,] S)
    forward(query, keys, values=None, mask=None, prepared=None)
                             -> context (B, [T,] d_v) and weights (B, [T,] S)

The query may be one vector per example (B, d_q), as in a decoder step, or T of them
(B, T, d_q); keys and values are (B, S, d_k) and (B, S, d_v); mask (B, S) is True on real
source tokens (the padding of shorter sources is False and gets weight 0).

:class:`AttentionSeq2Seq` is chapter 03's :class:`course_lib.seq2seq.Seq2Seq` with the
:class:`AttentionDecoder`; the search functions of chapter 03 work on it unchanged.

Glossary: B batch, S source length, T target length, V vocabulary, N = B or B*K rows in search.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import nn

from .seq2seq import Seq2Seq, Seq2SeqConfig
from .utils import check_choice, check_int, check_shape

SCORER_KINDS = ("additive", "dot", "general")


def masked_softmax(scores: torch.Tensor, mask: Optional[torch.Tensor], dim: int = -1) -> torch.Tensor:
    """softmax of ``scores`` along ``dim`` over the positions where ``mask`` is True only.

    ``mask`` is a bool tensor broadcastable to ``scores`` (True = keep), or None for a plain
    softmax. Masked positions get weight exactly 0 and the kept ones sum to 1; a slice with
    nothing kept gets all zeros (not NaN), as in ``naive_attention``. Returns the shape of ``scores``.
    """
    if not isinstance(scores, torch.Tensor) or not scores.is_floating_point():
        raise TypeError(f"scores: expected a floating-point torch.Tensor, got "
                        f"{scores.dtype if isinstance(scores, torch.Tensor) else type(scores).__name__}")
    if not isinstance(dim, int) or not -scores.dim() <= dim < max(scores.dim(), 1):
        raise ValueError(f"dim: expected an int in [{-scores.dim()}, {scores.dim()}) for scores of "
                         f"shape {tuple(scores.shape)}, got {dim!r}")
    if mask is None:
        return torch.softmax(scores, dim=dim)
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError(f"mask: expected a bool tensor (True = keep), got "
                        f"{mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__}")
    try:
        mask = torch.broadcast_to(mask, scores.shape)
    except RuntimeError:
        raise ValueError(f"mask: expected a shape broadcastable to scores {tuple(scores.shape)}, "
                         f"got {tuple(mask.shape)}") from None
    keep_any = mask.any(dim=dim, keepdim=True)
    # -inf gives masked keys weight exp(-inf) = 0; a slice with no key left would be 0/0, so it
    # is given finite scores first and zeroed after
    scores = scores.masked_fill(~mask, float("-inf")).masked_fill(~keep_any, 0.0)
    return torch.softmax(scores, dim=dim).masked_fill(~keep_any, 0.0)


def _check_attention_inputs(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                            mask: Optional[torch.Tensor], d_query: Optional[int],
                            d_key: Optional[int]) -> None:
    for name, t in (("query", query), ("keys", keys), ("values", values)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if query.dim() not in (2, 3):
        raise ValueError(f"query: expected shape (B, d_q) or (B, T, d_q), got {tuple(query.shape)} "
                         f"with {query.dim()} dims")
    dims = check_shape(keys, ("B", "S", d_key), "keys")
    check_shape(values, (dims["B"], dims["S"], None), "values")
    check_shape(query, (dims["B"],) + (None,) * (query.dim() - 2) + (d_query,), "query")
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise TypeError(f"mask: expected a bool tensor of shape (B, S) (True = real token), got "
                            f"{mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__}")
        check_shape(mask, (dims["B"], dims["S"]), "mask")


class _Scorer(nn.Module):
    """What the three scorers share: masked softmax of the scores, then the weighted sum of values."""
    d_query: Optional[int] = None
    d_key: Optional[int] = None

    def prepare_keys(self, keys: torch.Tensor) -> torch.Tensor:
        return keys

    def score(self, query: torch.Tensor, prepared: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, query: torch.Tensor, keys: torch.Tensor, values: Optional[torch.Tensor] = None,
                mask: Optional[torch.Tensor] = None,
                prepared: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """query (B, d_q) or (B, T, d_q); keys (B, S, d_k); values (B, S, d_v), default keys;
        mask (B, S) True on real tokens; ``prepared`` = ``prepare_keys(keys)`` if already computed.
        Returns context (B, [T,] d_v) and weights (B, [T,] S), each row of weights summing to 1."""
        values = keys if values is None else values
        _check_attention_inputs(query, keys, values, mask, self.d_query, self.d_key)
        prepared = self.prepare_keys(keys) if prepared is None else prepared
        scores = self.score(query, prepared)                       # (B, [T,] S)
        if mask is not None and query.dim() == 3:
            mask = mask[:, None, :]                                 # (B, 1, S): same for every query
        weights = masked_softmax(scores, mask, dim=-1)              # (B, [T,] S)
        if query.dim() == 2:
            context = torch.bmm(weights[:, None, :], values)[:, 0]  # (B, d_v)
        else:
            context = torch.bmm(weights, values)                    # (B, T, d_v)
        return context, weights


class AdditiveAttention(_Scorer):
    """Bahdanau et al. (2015), "additive" or "concat" attention: a one-hidden-layer network scores
    each key against the query,

        score(q, k_s) = v^T tanh(W_q q + W_k k_s + b),  W_q (d_attention, d_q), W_k (d_attention, d_k),

    with the bias b (d_attention,) held by the key projection.

    ``prepare_keys`` computes W_k k_s once per source.
    """

    def __init__(self, d_query: int, d_key: int, d_attention: int):
        super().__init__()
        for name, value in (("d_query", d_query), ("d_key", d_key), ("d_attention", d_attention)):
            check_int(value, name)
        self.d_query, self.d_key, self.d_attention = d_query, d_key, d_attention
        self.W_q = nn.Linear(d_query, d_attention, bias=False)
        self.W_k = nn.Linear(d_key, d_attention, bias=True)  # one bias for the sum W_q q + W_k k
        self.v = nn.Linear(d_attention, 1, bias=False)

    def prepare_keys(self, keys: torch.Tensor) -> torch.Tensor:
        return self.W_k(keys)                                       # (B, S, d_attention)

    def score(self, query: torch.Tensor, prepared: torch.Tensor) -> torch.Tensor:
        q = self.W_q(query)                                         # (B, [T,] d_attention)
        if query.dim() == 2:
            hidden = torch.tanh(q[:, None, :] + prepared)           # (B, S, d_attention)
        else:
            hidden = torch.tanh(q[:, :, None, :] + prepared[:, None])  # (B, T, S, d_attention)
        return self.v(hidden).squeeze(-1)                           # (B, [T,] S)


def _dot_scores(query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """query (B, d) or (B, T, d), keys (B, S, d) -> scores (B, S) or (B, T, S)."""
    if query.dim() == 2:
        return torch.bmm(keys, query[:, :, None])[:, :, 0]         # (B, S)
    return torch.bmm(query, keys.transpose(1, 2))                    # (B, T, S)


class DotProductAttention(_Scorer):
    """Luong et al. (2015), "dot": score(q, k_s) = q . k_s (query and keys of the same width).

    ``scaled=True`` divides by sqrt(d), which makes it the scaled dot product of chapter 05
    (Vaswani et al., 2017) with one head.
    """

    def __init__(self, scaled: bool = False):
        super().__init__()
        if not isinstance(scaled, bool):
            raise TypeError(f"scaled: expected a bool, got {type(scaled).__name__}")
        self.scaled = scaled

    def forward(self, query, keys, values=None, mask=None, prepared=None):
        if isinstance(query, torch.Tensor) and isinstance(keys, torch.Tensor) and query.dim() >= 1 \
                and keys.dim() == 3 and query.shape[-1] != keys.shape[-1]:
            raise ValueError(f"query, keys: dot-product attention needs d_q == d_k, got query "
                             f"{tuple(query.shape)} and keys {tuple(keys.shape)}; use "
                             "GeneralAttention(d_q, d_k) for different widths")
        return super().forward(query, keys, values, mask, prepared)

    def score(self, query: torch.Tensor, prepared: torch.Tensor) -> torch.Tensor:
        scores = _dot_scores(query, prepared)
        return scores / math.sqrt(query.shape[-1]) if self.scaled else scores


class GeneralAttention(_Scorer):
    """Luong et al. (2015), "general": score(q, k_s) = q^T W_a k_s with W_a (d_q, d_k), so query
    and keys may differ in width. ``prepare_keys`` computes W_a k_s once per source; the score is
    then a dot product with the query."""

    def __init__(self, d_query: int, d_key: int):
        super().__init__()
        for name, value in (("d_query", d_query), ("d_key", d_key)):
            check_int(value, name)
        self.d_query, self.d_key = d_query, d_key
        self.W_a = nn.Linear(d_key, d_query, bias=False)

    def prepare_keys(self, keys: torch.Tensor) -> torch.Tensor:
        return self.W_a(keys)                                         # (B, S, d_q)

    def score(self, query: torch.Tensor, prepared: torch.Tensor) -> torch.Tensor:
        return _dot_scores(query, prepared)


def make_scorer(kind: str, d_query: int, d_key: int, d_attention: Optional[int] = None) -> _Scorer:
    """The scorer named ``kind``: "additive" (Bahdanau), "dot" or "general" (Luong)."""
    if kind == "additive":
        return AdditiveAttention(d_query, d_key, d_attention or d_query)
    if kind == "dot":
        if d_query != d_key:
            raise ValueError(f"d_query, d_key: 'dot' attention needs equal widths, got {d_query} "
                             f"and {d_key}; use 'general'")
        return DotProductAttention()
    if kind == "general":
        return GeneralAttention(d_query, d_key)
    check_choice(kind, "kind", SCORER_KINDS)
    raise AssertionError("unreachable")


# --- the attention decoder ------------------------------------------------------------------------

class AttentionDecoder(nn.Module):
    """The decoder of Bahdanau et al. (2015) with a choice of score (Luong et al., 2015): before
    each step the previous state s_{t-1} queries all encoder states h_1..h_S::

        c_t, a_t = attend(s_{t-1}, h_1..h_S)          a_t = masked_softmax(score(s_{t-1}, h_s))
        s_t = GRU([embed(y_{t-1}); c_t], s_{t-1}),    logits_t = W_out [s_t; c_t]

    Everything but the context is as in :class:`ContextDecoder`, so the two compare fairly.
    """

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.embed = nn.Embedding(config.tgt_vocab_size, config.d_embed, padding_idx=0)
        self.attention = make_scorer(config.attention, config.d_hidden, config.d_hidden, config.d_attention)
        self.cell = nn.GRUCell(config.d_embed + config.d_hidden, config.d_hidden)
        self.out = nn.Linear(2 * config.d_hidden, config.tgt_vocab_size)

    def start(self, states: torch.Tensor, final: torch.Tensor, src_mask: torch.Tensor) -> dict:
        """Keeps the encoder states (B, S, d_hidden), their prepared keys and the mask (B, S)."""
        return {"s": final, "states": states, "keys": self.attention.prepare_keys(states), "mask": src_mask}

    def step(self, prev_ids: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict, torch.Tensor]:
        """prev_ids (N,) -> logits (N, V), the new state and the attention weights (N, S)."""
        context, weights = self.attention(state["s"], state["states"], mask=state["mask"],
                                          prepared=state["keys"])            # (N, d_hidden), (N, S)
        s = self.cell(torch.cat([self.embed(prev_ids), context], dim=-1), state["s"])
        logits = self.out(torch.cat([s, context], dim=-1))                 # (N, V)
        return logits, {**state, "s": s}, weights

    def forward(self, tgt_in: torch.Tensor, state: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing: tgt_in (B, T) -> logits (B, T, V) and weights (B, T, S). Step t needs
        s_{t-1} to choose where to look, so the steps run one after another."""
        logits, weights = [], []
        for t in range(tgt_in.shape[1]):
            step_logits, state, step_weights = self.step(tgt_in[:, t], state)
            logits.append(step_logits)
            weights.append(step_weights)
        return torch.stack(logits, dim=1), torch.stack(weights, dim=1)


class AttentionSeq2Seq(Seq2Seq):
    """Chapter 03's encoder with the :class:`AttentionDecoder`: ``config.attention`` names the
    scorer ("additive", "dot" or "general"). Everything else, search included, is inherited."""

    def make_decoder(self, config: Seq2SeqConfig) -> nn.Module:
        check_choice(config.attention, "config.attention", SCORER_KINDS)
        return AttentionDecoder(config)
