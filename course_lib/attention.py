"""Self-attention (chapter 05): scaled dot-product attention with interchangeable backends, masks,
multi-head attention and positional encodings.

    Attention(Q, K, V) = softmax(Q K^T * sm_scale + bias) V,    sm_scale = 1 / sqrt(D) by default

Shapes: queries q (B, H, T, D); keys k and values v (B, H, S, D); output (B, H, T, D).

Conventions used by every backend:
- ``mask`` is a bool tensor broadcastable to (B, H, T, S); True = this query may attend to this
  key (the same convention as ``torch.nn.functional.scaled_dot_product_attention``).
- ``bias`` is a float tensor broadcastable to (B, H, T, S) added to the scaled scores before the
  softmax (T5's relative position bias, ALiBi); it may require grad.
- ``causal=True`` aligns the mask top-left: query i sees keys j <= i, also when T != S (as torch
  SDPA's ``is_causal``). A KV-cache decoder, whose queries are the *last* T of S positions, wants
  bottom-right alignment instead: pass an explicit ``mask`` for that.
- ``dropout_p`` drops attention weights (after the softmax), scaling the kept ones by 1 / (1 - p).
- A query whose keys are all masked gets output 0 (and gradient 0), as torch SDPA does.

Backends (``backend=``):
- "naive":  materialises the (T, S) scores; the reference; returns the weights via
            ``naive_attention``.
- "sdpa":   ``torch.nn.functional.scaled_dot_product_attention`` (PyTorch picks a fused kernel).
- "tiled":  online softmax over key blocks in plain PyTorch, memory linear in T
            (``course_lib.kernels.tiled``, chapter 11).
- "triton": the FlashAttention-2 Triton kernel (``course_lib.kernels.flash_attention``, chapter 11);
            CUDA, or the CPU under ``TRITON_INTERPRET=1``; no mask, bias or dropout.
- "auto":   "triton" where it can run and pays off (CUDA tensors, Triton installed, no mask, bias
            or dropout, float16/bfloat16, head dim 16/32/64/128), otherwise "sdpa".
The kernels of chapter 11 are imported only when their backend is asked for.

In dependency order: input checks, masks and the reference, the backends and their dispatch,
then the layers: ``padding_mask``, ``split_heads``/``merge_heads``, the batch-first
``MultiHeadAttention`` (with ``from_torch``), ``sinusoidal_positions`` and ``LearnedPositions``;
RoPE (``apply_rope``) and ALiBi (``alibi_slopes``, ``alibi_bias``), both built on ``position_angles``
or the ``bias=`` argument.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.utils import check_choice, check_int, check_probability, check_shape

BACKENDS = ("auto", "naive", "sdpa", "tiled", "triton")


# ----------------------------------------------------------------------------------------------
# Input checks (shared with the kernels of chapter 11); every error names the argument
# ----------------------------------------------------------------------------------------------
def check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> Tuple[int, int, int, int, int]:
    """Check q (B, H, T, D), k and v (B, H, S, D): rank, sizes, dtype, device. Returns B, H, T, S, D."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    check_shape(q, ("B", "H", "T", "D"), "q")
    B, H, T, D = q.shape
    for name, t in (("k", k), ("v", v)):
        check_shape(t, ("B", "H", "S", "D"), name)
        if (t.shape[0], t.shape[1], t.shape[3]) != (B, H, D):
            raise ValueError(f"{name}: expected shape (B, H, S, D) = ({B}, {H}, S, {D}) to match "
                             f"q of shape {tuple(q.shape)}, got {tuple(t.shape)}")
    S = k.shape[2]
    if v.shape[2] != S:
        raise ValueError(f"v: expected shape (B, H, S, D) with S = {S} as in k, got {tuple(v.shape)}")
    if T == 0 or S == 0 or D == 0:
        raise ValueError(f"q, k: expected non-empty T, S and D, got q {tuple(q.shape)}, k {tuple(k.shape)}")
    if not q.is_floating_point():
        raise TypeError(f"q: expected a floating-point dtype, got {q.dtype}")
    for name, t in (("k", k), ("v", v)):
        if t.dtype != q.dtype:
            raise TypeError(f"{name}: expected dtype {q.dtype} like q, got {t.dtype}")
        if t.device != q.device:
            raise ValueError(f"{name}: expected device {q.device} like q, got {t.device}")
    return B, H, T, S, D


def _check_broadcastable(t: torch.Tensor, name: str, target: Tuple[int, int, int, int],
                         device: torch.device) -> None:
    try:
        ok = t.dim() <= 4 and torch.broadcast_shapes(t.shape, target) == target
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(f"{name}: expected a shape broadcastable to (B, H, T, S) = {target}, "
                         f"got {tuple(t.shape)}")
    if t.device != device:
        raise ValueError(f"{name}: expected device {device} like q, got {t.device}")


def check_mask(mask: Optional[torch.Tensor], B: int, H: int, T: int, S: int,
               device: torch.device) -> Optional[torch.Tensor]:
    """Check that ``mask`` is a bool tensor broadcastable to (B, H, T, S) on ``device``; return it."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask: expected a bool tensor broadcastable to (B, H, T, S), "
                        f"got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(f"mask: expected dtype torch.bool (True = may attend), got {mask.dtype}; "
                        "pass a float additive bias as bias=")
    _check_broadcastable(mask, "mask", (B, H, T, S), device)
    return mask


def check_bias(bias: Optional[torch.Tensor], q: torch.Tensor, S: int) -> Optional[torch.Tensor]:
    """Check that ``bias`` is a float tensor of q's dtype broadcastable to (B, H, T, S); return it."""
    if bias is None:
        return None
    if not isinstance(bias, torch.Tensor) or not bias.is_floating_point():
        what = bias.dtype if isinstance(bias, torch.Tensor) else type(bias).__name__
        raise TypeError(f"bias: expected a float tensor broadcastable to (B, H, T, S) (added to the "
                        f"scores), got {what}; pass a bool mask as mask=")
    if bias.dtype != q.dtype:
        raise TypeError(f"bias: expected dtype {q.dtype} like q, got {bias.dtype}")
    B, H, T, _ = q.shape
    _check_broadcastable(bias, "bias", (B, H, T, S), q.device)
    return bias


def check_sm_scale(sm_scale: Optional[float], D: int) -> float:
    """The softmax scale: ``sm_scale`` if given (a positive number), else 1 / sqrt(D)."""
    if sm_scale is None:
        return 1.0 / math.sqrt(D)
    if isinstance(sm_scale, bool) or not isinstance(sm_scale, (int, float)) or not sm_scale > 0:
        raise ValueError(f"sm_scale: expected a positive float or None (= 1/sqrt(D)), got {sm_scale!r}")
    return float(sm_scale)


# ----------------------------------------------------------------------------------------------
# Masks and the reference
# ----------------------------------------------------------------------------------------------
def causal_mask(T: int, S: Optional[int] = None, device=None) -> torch.Tensor:
    """(T, S) bool mask, top-left aligned: query i may attend to key j iff j <= i (S defaults to T)."""
    S = T if S is None else S
    return torch.ones(T, S, dtype=torch.bool, device=device).tril()


def _with_causal(mask: Optional[torch.Tensor], causal: bool, T: int, S: int,
                 device: torch.device) -> Optional[torch.Tensor]:
    if not causal:
        return mask
    tri = causal_mask(T, S, device)
    return tri if mask is None else mask & tri


def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    mask: Optional[torch.Tensor] = None, causal: bool = False,
                    sm_scale: Optional[float] = None, bias: Optional[torch.Tensor] = None,
                    dropout_p: float = 0.0) -> Tuple[torch.Tensor, torch.Tensor]:
    """The reference: materialise all (T, S) scores, softmax, weight the values.

    q (B, H, T, D), k and v (B, H, S, D), mask bool broadcastable to (B, H, T, S), True = attend;
    bias float broadcastable to (B, H, T, S), added to the scaled scores; dropout_p drops weights.
    Returns (output (B, H, T, D), weights (B, H, T, S), before dropout); memory grows as T * S.
    """
    B, H, T, S, D = check_qkv(q, k, v)
    mask = check_mask(mask, B, H, T, S, q.device)
    bias = check_bias(bias, q, S)
    scale = check_sm_scale(sm_scale, D)
    dropout_p = check_probability(dropout_p, "dropout_p")
    scores = (q @ k.transpose(-2, -1)) * scale                    # (B, H, T, S)
    if bias is not None:
        scores = scores + bias
    mask = _with_causal(mask, causal, T, S, q.device)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)                        # (B, H, T, S)
    if mask is not None:
        # a row with every key masked is 0/0 = nan in softmax; give it weight 0 like torch SDPA
        weights = weights.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)
    dropped = F.dropout(weights, dropout_p) if dropout_p > 0 else weights
    return dropped @ v, weights                                    # (B, H, T, D), (B, H, T, S)


# ----------------------------------------------------------------------------------------------
# Backends: each takes checked inputs (q, k, v, mask or None, causal, scale, bias or None, dropout_p)
# ----------------------------------------------------------------------------------------------
def _naive(q, k, v, mask, causal, scale, bias, dropout_p):
    return naive_attention(q, k, v, mask=mask, causal=causal, sm_scale=scale, bias=bias,
                           dropout_p=dropout_p)[0]


def _sdpa(q, k, v, mask, causal, scale, bias, dropout_p):
    if bias is None:
        if causal and mask is not None:  # torch refuses is_causal together with attn_mask
            mask, causal = _with_causal(mask, True, q.shape[2], k.shape[2], q.device), False
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal,
                                              dropout_p=dropout_p, scale=scale)
    # a float attn_mask is added to the scores: fold the bool mask into it as -inf
    mask = _with_causal(mask, causal, q.shape[2], k.shape[2], q.device)
    if mask is None:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p, scale=scale)
    # rows with no key left would be softmax(-inf, ...) = nan: let them see everything, zero them after
    dead = ~mask.any(dim=-1, keepdim=True)                         # (B|1, H|1, T, 1)
    mask = mask | dead
    attn_bias = bias.masked_fill(~mask, float("-inf"))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias, dropout_p=dropout_p, scale=scale)
    return out.masked_fill(dead, 0.0)


def _tiled(q, k, v, mask, causal, scale, bias, dropout_p):
    from course_lib.kernels.tiled import tiled_attention  # chapter 11, loaded on first use

    return tiled_attention(q, k, v, mask=mask, causal=causal, sm_scale=scale, bias=bias,
                           dropout_p=dropout_p)


def _triton(q, k, v, mask, causal, scale, bias, dropout_p):
    for name, given in (("mask", mask is not None), ("bias", bias is not None), ("dropout_p", dropout_p > 0)):
        if given:
            raise ValueError(f"{name}: the 'triton' backend takes no {name} (only causal=True); "
                             "use backend='sdpa', 'tiled' or 'naive'")
    from course_lib.kernels import flash_attention  # chapter 11, loaded on first use

    return flash_attention(q, k, v, causal=causal, sm_scale=scale)


# the dispatch table (a test wraps its entries to count which backend a training step reaches)
RUN_BACKEND = {"naive": _naive, "sdpa": _sdpa, "tiled": _tiled, "triton": _triton}


def _triton_can_run(q: torch.Tensor, plain: bool) -> bool:
    """Whether "auto" may pick the Triton kernel: CUDA, Triton installed, no mask/bias/dropout, sizes."""
    if not plain or q.device.type != "cuda":
        return False
    from course_lib.kernels.flash_triton import HAS_TRITON, SUPPORTED_HEAD_DIMS

    # float32 runs too, but with exact (non-TF32) dot products it is slower than SDPA
    return HAS_TRITON and q.dtype in (torch.float16, torch.bfloat16) and q.shape[-1] in SUPPORTED_HEAD_DIMS


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 mask: Optional[torch.Tensor] = None, causal: bool = False,
                                 backend: str = "auto", sm_scale: Optional[float] = None,
                                 bias: Optional[torch.Tensor] = None,
                                 dropout_p: float = 0.0) -> torch.Tensor:
    """softmax(q k^T * sm_scale + bias) v with the chosen backend; every backend gives the same result.

    q (B, H, T, D); k, v (B, H, S, D); mask bool broadcastable to (B, H, T, S), True = attend;
    causal: query i sees keys j <= i (top-left aligned); sm_scale defaults to 1/sqrt(D);
    bias float broadcastable to (B, H, T, S); dropout_p drops attention weights (pass 0 in eval).
    backend: "auto" | "naive" | "sdpa" | "tiled" | "triton" (see the module docstring).
    Returns the output (B, H, T, D).
    """
    check_choice(backend, "backend", BACKENDS)
    if not isinstance(causal, bool):
        raise TypeError(f"causal: expected a bool, got {type(causal).__name__}")
    B, H, T, S, D = check_qkv(q, k, v)
    mask = check_mask(mask, B, H, T, S, q.device)
    bias = check_bias(bias, q, S)
    scale = check_sm_scale(sm_scale, D)
    dropout_p = check_probability(dropout_p, "dropout_p")
    if backend == "auto":
        plain = mask is None and bias is None and dropout_p == 0
        backend = "triton" if _triton_can_run(q, plain) else "sdpa"
    return RUN_BACKEND[backend](q, k, v, mask, causal, scale, bias, dropout_p)


# ----------------------------------------------------------------------------------------------
# Layers: mask builders, multi-head attention, positional encodings
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
    if check_int(n_heads, "n_heads") and C % n_heads:
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

    ``backend`` goes to :func:`scaled_dot_product_attention` whenever the weights are not asked
    for (``need_weights=False``), in training too: dropout on the attention weights is passed to
    the backend as ``dropout_p``, as in torch. Asking for the weights runs the "naive" reference,
    which materialises them.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True,
                 backend: str = "auto"):
        super().__init__()
        check_int(d_model, "d_model")
        check_int(n_heads, "n_heads")
        if d_model % n_heads:
            raise ValueError(f"n_heads: expected a divisor of d_model = {d_model}, got {n_heads}")
        check_probability(dropout, "dropout")
        check_choice(backend, "backend", BACKENDS)
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
                causal: bool = False, need_weights: bool = True, average_weights: bool = False,
                bias: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """query (B, T, C); key and value (B, S, C), both default to ``query`` (self-attention).

        mask: bool, broadcastable to (B, H, T, S), True = may attend (see :func:`padding_mask`,
        :func:`causal_mask`); causal: query i sees keys j <= i; bias: float, broadcastable to
        (B, H, T, S), added to the scores.
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
        dropout_p = self.dropout if self.training else 0.0
        if need_weights:
            heads, weights = naive_attention(q, k, v, mask=mask, causal=causal, bias=bias,
                                             dropout_p=dropout_p)   # (B, H, T, D), (B, H, T, S)
        else:
            heads = scaled_dot_product_attention(q, k, v, mask=mask, causal=causal, bias=bias,
                                                 dropout_p=dropout_p, backend=self.backend)
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


def position_angles(T: int, d: int, base: float = 10000.0, offset: int = 0) -> torch.Tensor:
    """The angles of the sinusoidal encoding and of RoPE, (T, d / 2)::

        angle[t, i] = (t + offset) * theta_i,    theta_i = base^(-2i / d)

    one clock per pair of channels, from a period of 2 pi to base * 2 pi positions.
    """
    check_int(T, "T")
    check_int(d, "d")
    check_int(offset, "offset", minimum=0)
    if d % 2:
        raise ValueError(f"d: expected an even number (channels come in pairs), got {d}")
    if not base > 1:
        raise ValueError(f"base: expected a number > 1, got {base!r}")
    position = torch.arange(offset, offset + T, dtype=torch.float32)[:, None]         # (T, 1)
    theta = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(base) / d))  # (d / 2,)
    return position * theta                                                          # (T, d / 2)


def sinusoidal_positions(T: int, d_model: int) -> torch.Tensor:
    """The fixed positional encoding of Vaswani et al. (2017), (T, d_model)::

        PE[t, 2i] = sin(t / 10000^(2i / d_model)),   PE[t, 2i + 1] = cos(t / 10000^(2i / d_model))

    Each pair of channels is a clock with its own period, from 2 pi to 10000 * 2 pi steps
    (:func:`position_angles`).
    """
    check_int(d_model, "d_model")
    if d_model % 2:
        raise ValueError(f"d_model: expected an even number (sin and cos pairs), got {d_model}")
    angle = position_angles(T, d_model)                                              # (T, d_model / 2)
    pe = torch.empty(T, d_model)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)
    return pe


class LearnedPositions(nn.Module):
    """A learned position embedding (one trained vector per position, as in BERT and GPT).

    ``forward(x)`` adds the first T vectors to x (B, T, C); inputs longer than ``max_len`` raise,
    because there is no vector for those positions (unlike :func:`sinusoidal_positions`).
    """

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        check_int(max_len, "max_len")
        check_int(d_model, "d_model")
        self.max_len = max_len
        self.weight = nn.Parameter(torch.randn(max_len, d_model) * 0.02)  # (max_len, C), GPT-2's init

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, C) -> x + P[:T] (B, T, C)."""
        T = check_shape(x, ("B", "T", self.weight.shape[1]), "x")["T"]
        if T > self.max_len:
            raise ValueError(f"x: expected at most max_len = {self.max_len} positions, got T = {T}")
        return x + self.weight[:T]


# --- relative positions inside attention: RoPE and ALiBi (chapter 05) ---------------------------
def apply_rope(x: torch.Tensor, base: float = 10000.0, offset: int = 0) -> torch.Tensor:
    """Rotary position embedding (Su et al., 2021, RoFormer): rotate each pair of channels
    (2i, 2i + 1) of the query or key at position t by the angle t * theta_i.

    x (B, H, T, D) -> (B, H, T, D). Applied to q and k (not v) before the scores, it makes
    q_t . k_s depend on the positions only through t - s, because R_t^T R_s = R_{s - t}.
    ``offset`` is the position of the first row (for a decoder with a cache).
    """
    dims = check_shape(x, ("B", "H", "T", "D"), "x")
    if dims["D"] % 2:
        raise ValueError(f"d_head: expected an even number (channels rotate in pairs), got {dims['D']}")
    angle = position_angles(dims["T"], dims["D"], base, offset).to(x.device)       # (T, D / 2)
    cos, sin = torch.cos(angle).to(x.dtype), torch.sin(angle).to(x.dtype)
    even, odd = x[..., 0::2], x[..., 1::2]                                          # (B, H, T, D / 2)
    rotated = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)  # (B, H, T, D / 2, 2)
    return rotated.flatten(-2)                                                       # (B, H, T, D)


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """ALiBi's head slopes m_h (Press et al., 2022), (H,): the geometric sequence 2^(-8h/H),
    h = 1..H, for H a power of two; otherwise the paper's rule: the slopes of the closest smaller
    power of two n, then every other slope of 2n for the remaining heads."""
    check_int(n_heads, "n_heads")
    n = 2 ** math.floor(math.log2(n_heads))
    slopes = [2 ** (-8 * h / n) for h in range(1, n + 1)]
    slopes += [2 ** (-8 * h / (2 * n)) for h in range(1, 2 * n + 1, 2)][: n_heads - n]
    return torch.tensor(slopes)


def alibi_bias(n_heads: int, T: int, S: Optional[int] = None) -> torch.Tensor:
    """ALiBi's additive bias, (1, H, T, S): ``-m_h * |t - s|``, for the ``bias=`` argument of
    :func:`scaled_dot_product_attention`. Press et al. use it with a causal mask (s <= t), where
    it is ``-m_h * (t - s)``: a penalty growing linearly with the distance back, no position
    vectors at all. The absolute value extends it to keys after t for a bidirectional encoder."""
    check_int(T, "T")
    S = T if S is None else check_int(S, "S")
    distance = (torch.arange(T)[:, None] - torch.arange(S)[None, :]).abs()         # (T, S)
    return -alibi_slopes(n_heads)[None, :, None, None] * distance                  # (1, H, T, S)
