"""Attention: scaled dot-product attention with interchangeable backends.

    Attention(Q, K, V) = softmax(Q K^T * sm_scale) V,    sm_scale = 1 / sqrt(D) by default

Shapes: queries q (B, H, T, D); keys k and values v (B, H, S, D); output (B, H, T, D).

Conventions used by every backend:
- ``mask`` is a bool tensor broadcastable to (B, H, T, S); True = this query may attend to this
  key (the same convention as ``torch.nn.functional.scaled_dot_product_attention``).
- ``causal=True`` aligns the mask top-left: query i sees keys j <= i, also when T != S (as torch
  SDPA's ``is_causal``). A KV-cache decoder, whose queries are the *last* T of S positions, wants
  bottom-right alignment instead: pass an explicit ``mask`` for that.
- A query whose keys are all masked gets output 0 (and gradient 0), as torch SDPA does.

Backends (``backend=``):
- "naive":  materialises the (T, S) scores; the reference; returns the weights via
            ``naive_attention``.
- "sdpa":   ``torch.nn.functional.scaled_dot_product_attention`` (PyTorch picks a fused kernel).
- "tiled":  online softmax over key blocks in plain PyTorch, memory linear in T
            (``course_lib.kernels.tiled``).
- "triton": the FlashAttention-2 Triton kernel (``course_lib.kernels.flash_attention``); CUDA,
            or the CPU under ``TRITON_INTERPRET=1``; no ``mask``.
- "auto":   "triton" where it can run and pays off (CUDA tensors, Triton installed, no mask,
            float16/bfloat16, head dim 16/32/64/128), otherwise "sdpa".

Chapter 05's layers sit in their own section at the end: ``padding_mask`` (and ``causal_mask``
above), ``split_heads``/``merge_heads``, the batch-first ``MultiHeadAttention`` (with
``from_torch``), ``sinusoidal_positions`` and ``LearnedPositions``.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

# the kernels sit below this module and share its input checks (Triton stays unimported here)
from course_lib.kernels import check_mask, check_qkv, check_sm_scale, tiled_attention
from course_lib.utils import check_shape

BACKENDS = ("auto", "naive", "sdpa", "tiled", "triton")


# ----------------------------------------------------------------------------------------------
# Masks and the reference
# ----------------------------------------------------------------------------------------------
def causal_mask(T: int, S: Optional[int] = None, device=None) -> torch.Tensor:
    """(T, S) bool mask, top-left aligned: query i may attend to key j iff j <= i (S defaults to T)."""
    S = T if S is None else S
    return torch.ones(T, S, dtype=torch.bool, device=device).tril()


def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    mask: Optional[torch.Tensor] = None, causal: bool = False,
                    sm_scale: Optional[float] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """The reference: materialise all (T, S) scores, softmax, weight the values.

    q (B, H, T, D), k and v (B, H, S, D), mask bool broadcastable to (B, H, T, S), True = attend.
    Returns (output (B, H, T, D), weights (B, H, T, S)); memory grows as T * S.
    """
    B, H, T, S, D = check_qkv(q, k, v)
    mask = check_mask(mask, B, H, T, S, q.device)
    scale = check_sm_scale(sm_scale, D)
    scores = (q @ k.transpose(-2, -1)) * scale                    # (B, H, T, S)
    if causal:
        mask = causal_mask(T, S, q.device) if mask is None else mask & causal_mask(T, S, q.device)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)                        # (B, H, T, S)
    if mask is not None:
        # a row with every key masked is 0/0 = nan in softmax; give it weight 0 like torch SDPA
        weights = weights.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)
    return weights @ v, weights                                    # (B, H, T, D), (B, H, T, S)


# ----------------------------------------------------------------------------------------------
# Backends: each takes checked inputs (q, k, v, mask or None, causal, scale)
# ----------------------------------------------------------------------------------------------
def _sdpa(q, k, v, mask, causal, scale):
    if causal and mask is not None:  # torch refuses is_causal together with attn_mask
        mask, causal = mask & causal_mask(q.shape[2], k.shape[2], q.device), False
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, scale=scale)


def _tiled(q, k, v, mask, causal, scale):
    return tiled_attention(q, k, v, mask=mask, causal=causal, sm_scale=scale)


def _triton(q, k, v, mask, causal, scale):
    if mask is not None:
        raise ValueError("mask: the 'triton' backend takes no mask (only causal=True); "
                         "use backend='sdpa', 'tiled' or 'naive' for a custom mask")
    from course_lib.kernels.flash_attention import flash_attention

    return flash_attention(q, k, v, causal=causal, sm_scale=scale)


def _triton_can_run(q: torch.Tensor, mask: Optional[torch.Tensor]) -> bool:
    """Whether "auto" may pick the Triton kernel: CUDA, Triton installed, no mask, supported sizes."""
    if mask is not None or q.device.type != "cuda":
        return False
    from course_lib.kernels.flash_attention import HAS_TRITON, SUPPORTED_HEAD_DIMS

    # float32 runs too, but with exact (non-TF32) dot products it is slower than SDPA
    return HAS_TRITON and q.dtype in (torch.float16, torch.bfloat16) and q.shape[-1] in SUPPORTED_HEAD_DIMS


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 mask: Optional[torch.Tensor] = None, causal: bool = False,
                                 backend: str = "auto",
                                 sm_scale: Optional[float] = None) -> torch.Tensor:
    """softmax(q k^T * sm_scale) v with the chosen backend; every backend gives the same result.

    q (B, H, T, D); k, v (B, H, S, D); mask bool broadcastable to (B, H, T, S), True = attend;
    causal: query i sees keys j <= i (top-left aligned); sm_scale defaults to 1/sqrt(D).
    backend: "auto" | "naive" | "sdpa" | "tiled" | "triton" (see the module docstring).
    Returns the output (B, H, T, D).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    if not isinstance(causal, bool):
        raise TypeError(f"causal: expected a bool, got {type(causal).__name__}")
    B, H, T, S, D = check_qkv(q, k, v)
    mask = check_mask(mask, B, H, T, S, q.device)
    scale = check_sm_scale(sm_scale, D)
    if backend == "auto":
        backend = "triton" if _triton_can_run(q, mask) else "sdpa"
    if backend == "naive":
        return naive_attention(q, k, v, mask=mask, causal=causal, sm_scale=scale)[0]
    run = {"sdpa": _sdpa, "tiled": _tiled, "triton": _triton}[backend]
    return run(q, k, v, mask, causal, scale)


# ----------------------------------------------------------------------------------------------
# Chapter 04: attention in an RNN decoder: masked softmax and the scores of Bahdanau and Luong
# ----------------------------------------------------------------------------------------------
# One decoder query attends over S encoder states. A scorer has three steps so that a decoder
# can run the expensive key-side part once per source rather than once per output step:
#   prepare_keys(keys)       -> keys in the form the score needs                 (B, S, *)
#   score(query, prepared)   -> one number per key                               (B, [T,] S)
#   forward(query, keys, values=None, mask=None, prepared=None)
#                            -> context (B, [T,] d_v) and weights (B, [T,] S)
# The query may be one vector per example (B, d_q), as in a decoder step, or T of them
# (B, T, d_q); keys and values are (B, S, d_k) and (B, S, d_v); mask (B, S) is True on real
# source tokens (the padding of shorter sources is False and gets weight 0).

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

        score(q, k_s) = v^T tanh(W_q q + W_k k_s),     W_q (d_attention, d_q), W_k (d_attention, d_k).

    ``prepare_keys`` computes W_k k_s once per source.
    """

    def __init__(self, d_query: int, d_key: int, d_attention: int):
        super().__init__()
        for name, value in (("d_query", d_query), ("d_key", d_key), ("d_attention", d_attention)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
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
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
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
    raise ValueError(f"kind: expected 'additive', 'dot' or 'general', got {kind!r}")


# ----------------------------------------------------------------------------------------------
# Chapter 05: self-attention layers: mask builders, multi-head attention, positional encodings
# ----------------------------------------------------------------------------------------------
def padding_mask(x: torch.Tensor, pad_id: int = 0, max_len: Optional[int] = None) -> torch.Tensor:
    """Key mask that hides padding: True = a real token that may be attended to.

    ``x`` is either token ids (B, S), where positions equal to ``pad_id`` are padding, or the
    lengths (B,) of right-padded sequences (then ``max_len`` gives S, default ``max(lengths)``).
    Returns a bool mask (B, 1, 1, S) that broadcasts against the (B, H, T, S) scores, in the
    convention of :func:`scaled_dot_product_attention` (True = may attend).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x: expected token ids (B, S) or lengths (B,) as a tensor, got {type(x).__name__}")
    if x.is_floating_point() or x.dtype == torch.bool:
        raise TypeError(f"x: expected an integer tensor of ids (B, S) or lengths (B,), got dtype {x.dtype}")
    if x.dim() == 2:
        if max_len is not None:
            raise ValueError("max_len: only used with lengths (B,); ids (B, S) already give S")
        return (x != pad_id)[:, None, None, :]                       # (B, 1, 1, S)
    if x.dim() == 1:
        if x.numel() == 0 or int(x.min()) < 0:
            raise ValueError(f"x: expected non-negative lengths (B,), got {x.tolist()}")
        S = int(x.max()) if max_len is None else max_len
        if not isinstance(S, int) or S < int(x.max()) or S < 1:
            raise ValueError(f"max_len: expected an int >= the longest length {int(x.max())}, got {max_len!r}")
        return (torch.arange(S, device=x.device)[None, :] < x[:, None])[:, None, None, :]
    raise ValueError(f"x: expected token ids (B, S) or lengths (B,), got shape {tuple(x.shape)}")


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(B, T, C) -> (B, H, T, D) with D = C / H: each head gets its own slice of the channels."""
    check_shape(x, ("B", "T", "C"), "x")
    B, T, C = x.shape
    if not isinstance(n_heads, int) or n_heads < 1 or C % n_heads:
        raise ValueError(f"n_heads: expected a divisor of C = {C}, got {n_heads}")
    return x.view(B, T, n_heads, C // n_heads).transpose(1, 2)      # (B, H, T, D)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, T, D) -> (B, T, C = H * D): the inverse of :func:`split_heads`."""
    check_shape(x, ("B", "H", "T", "D"), "x")
    B, H, T, D = x.shape
    return x.transpose(1, 2).reshape(B, T, H * D)                    # (B, T, C)


class MultiHeadAttention(nn.Module):
    """Multi-head attention (Vaswani et al., 2017), batch first::

        head_h = Attention(X_q W_q^h, X_k W_k^h, X_v W_v^h),   h = 1..H
        MHA    = concat(head_1, ..., head_H) W_o

    The H projections of size D = d_model / H are one (d_model, d_model) linear layer each for
    q, k and v, split into heads afterwards (:func:`split_heads`), as ``torch.nn.MultiheadAttention``
    does, so :meth:`from_torch` is a plain copy.

    ``backend`` goes to :func:`scaled_dot_product_attention` when the weights are not needed;
    asking for the weights (``need_weights=True``) or training with dropout uses the "naive"
    reference, which materialises them. Dropout acts on the attention weights, as in torch.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True,
                 backend: str = "auto"):
        super().__init__()
        for name, value in (("d_model", d_model), ("n_heads", n_heads)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if d_model % n_heads:
            raise ValueError(f"n_heads: expected a divisor of d_model = {d_model}, got {n_heads}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads
        self.dropout, self.backend = dropout, backend
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        # the same init as torch.nn.MultiheadAttention: Xavier on the input projections, zero biases
        for proj in (self.q_proj, self.k_proj, self.v_proj):
            nn.init.xavier_uniform_(proj.weight)
            if bias:
                nn.init.zeros_(proj.bias)
        if bias:
            nn.init.zeros_(self.out_proj.bias)

    def forward(self, query: torch.Tensor, key: Optional[torch.Tensor] = None,
                value: Optional[torch.Tensor] = None, mask: Optional[torch.Tensor] = None,
                causal: bool = False, need_weights: bool = True,
                average_weights: bool = False) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """query (B, T, C); key and value (B, S, C), both default to ``query`` (self-attention).

        mask: bool, broadcastable to (B, H, T, S), True = may attend (see :func:`padding_mask`,
        :func:`causal_mask`); causal: query i sees keys j <= i.
        Returns (output (B, T, C), weights): the weights per head (B, H, T, S), or averaged over
        the heads (B, T, S) with ``average_weights=True`` (what torch returns by default), or
        None with ``need_weights=False`` (then the fast ``backend`` runs).
        """
        key = query if key is None else key
        value = key if value is None else value
        B = check_shape(query, ("B", "T", self.d_model), "query")["B"]
        S = check_shape(key, (B, "S", self.d_model), "key")["S"]
        check_shape(value, (B, S, self.d_model), "value")
        q = split_heads(self.q_proj(query), self.n_heads)             # (B, H, T, D)
        k = split_heads(self.k_proj(key), self.n_heads)               # (B, H, S, D)
        v = split_heads(self.v_proj(value), self.n_heads)             # (B, H, S, D)
        dropout = self.dropout if self.training else 0.0
        if need_weights or dropout > 0:
            _, weights = naive_attention(q, k, v, mask=mask, causal=causal)  # (B, H, T, S)
            heads = F.dropout(weights, dropout, training=True) @ v if dropout > 0 else weights @ v
        else:
            heads = scaled_dot_product_attention(q, k, v, mask=mask, causal=causal, backend=self.backend)
            weights = None
        out = self.out_proj(merge_heads(heads))                        # (B, T, C)
        if weights is not None and average_weights:
            weights = weights.mean(dim=1)                              # (B, T, S)
        return out, (weights if need_weights else None)

    @classmethod
    def from_torch(cls, m: nn.MultiheadAttention, backend: str = "auto") -> "MultiHeadAttention":
        """A course MultiHeadAttention with the weights of ``m`` (any ``batch_first``; ours is batch first)."""
        if not isinstance(m, nn.MultiheadAttention):
            raise TypeError(f"m: expected a torch.nn.MultiheadAttention, got {type(m).__name__}")
        if not m._qkv_same_embed_dim or m.bias_k is not None or m.add_zero_attn:
            raise ValueError("m: expected kdim = vdim = embed_dim, add_bias_kv=False and "
                             f"add_zero_attn=False, got {m}")
        bias = m.in_proj_bias is not None
        ours = cls(m.embed_dim, m.num_heads, dropout=m.dropout, bias=bias, backend=backend)
        ours = ours.to(device=m.in_proj_weight.device, dtype=m.in_proj_weight.dtype)
        with torch.no_grad():
            for proj, w in zip((ours.q_proj, ours.k_proj, ours.v_proj), m.in_proj_weight.chunk(3)):
                proj.weight.copy_(w)
            ours.out_proj.weight.copy_(m.out_proj.weight)
            if bias:
                for proj, b in zip((ours.q_proj, ours.k_proj, ours.v_proj), m.in_proj_bias.chunk(3)):
                    proj.bias.copy_(b)
                ours.out_proj.bias.copy_(m.out_proj.bias)
        return ours


def sinusoidal_positions(T: int, d_model: int) -> torch.Tensor:
    """The fixed positional encoding of Vaswani et al. (2017), (T, d_model)::

        PE[t, 2i] = sin(t / 10000^(2i / d_model)),   PE[t, 2i + 1] = cos(t / 10000^(2i / d_model))

    Each pair of channels is a clock with its own period, from 2 pi to 10000 * 2 pi steps.
    """
    for name, value in (("T", T), ("d_model", d_model)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")
    if d_model % 2:
        raise ValueError(f"d_model: expected an even number (sin and cos pairs), got {d_model}")
    position = torch.arange(T, dtype=torch.float32)[:, None]                          # (T, 1)
    frequency = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32)
                          * (-math.log(10000.0) / d_model))                          # (d_model / 2,)
    pe = torch.empty(T, d_model)
    pe[:, 0::2] = torch.sin(position * frequency)
    pe[:, 1::2] = torch.cos(position * frequency)
    return pe


class LearnedPositions(nn.Module):
    """A learned position embedding (one trained vector per position, as in BERT and GPT).

    ``forward(x)`` adds the first T vectors to x (B, T, C); inputs longer than ``max_len`` raise,
    because there is no vector for those positions (unlike :func:`sinusoidal_positions`).
    """

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        for name, value in (("max_len", max_len), ("d_model", d_model)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        self.max_len = max_len
        self.weight = nn.Parameter(torch.randn(max_len, d_model) * 0.02)  # (max_len, C), GPT-2's init

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, C) -> x + P[:T] (B, T, C)."""
        T = check_shape(x, ("B", "T", self.weight.shape[1]), "x")["T"]
        if T > self.max_len:
            raise ValueError(f"x: expected at most max_len = {self.max_len} positions, got T = {T}")
        return x + self.weight[:T]
