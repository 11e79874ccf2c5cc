"""T5 (Raffel et al., 2020, "Exploring the limits of transfer learning with a unified text-to-text
Transformer"), chapter 09.

Every task is text to text: "prefix: input" -> "output", one encoder-decoder, one loss, one
decoding. T5's Transformer differs from chapter 06's in a few places, each here in its own piece:

- :class:`RMSNorm`: scale only, no mean-centring and no bias (pre-norm, as in GPT-2);
- no bias in any linear layer, and no 1/sqrt(D) scaling of the attention scores (the scale is
  folded into the initialisation of the query projection, see :meth:`T5._init_weights`);
- no position embeddings: a learned **relative position bias**, one scalar per head and bucket of
  the offset key - query (:func:`relative_position_bucket`), added to the scores; computed once, by
  the first layer's table, and shared by all layers of the stack (:class:`RelativePositionBias`);
- the feed-forward network of T5 v1.0, ReLU without bias (:class:`DenseReluDense`; the gated
  GELU variant of T5 v1.1 with ``ffn="gated-gelu"``);
- the output layer is the input embedding (tied), applied to the decoder's output scaled by
  d_model**-0.5.

Pretraining is **span corruption** (:func:`span_corruption`): spans of the input (15 % of the
tokens, mean span length 3) are replaced by sentinel tokens, and the target lists the dropped
spans, each after its sentinel.

:meth:`T5.from_hf` copies the weights of a ``transformers.T5ForConditionalGeneration``; the logits
are equal. ``start``/``step`` make ``course_lib.seq2seq``'s greedy and beam search work unchanged.

Glossary: B batch, S source length, T target length, C = d_model channels, H heads, D head dim
(``d_kv``), V vocabulary. Masks are bool, True = real token / may attend.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .attention import BACKENDS, merge_heads, scaled_dot_product_attention, split_heads
from .data import EncodedPairs
from .seq2seq import greedy_decode
from .train import History, fit
from .utils import check_choice, check_int, check_probability, check_shape

FFN_KINDS = ("relu", "gated-gelu")


# --- the pieces of a layer ------------------------------------------------------------------------

class RMSNorm(nn.Module):
    """Root-mean-square normalisation (Zhang & Sennrich, 2019), T5's "layer norm"::

        RMSNorm(x) = g * x / sqrt(mean(x^2) + eps)        (B, T, C) -> (B, T, C)

    Unlike LayerNorm there is no mean subtracted and no bias added: only a learned gain g.
    """

    def __init__(self, d_model: int, eps: float = 1e-6):
        super().__init__()
        check_int(d_model, "d_model")
        self.eps = float(eps)
        self.weight = nn.Parameter(torch.ones(d_model))                 # g, (C,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.float().pow(2).mean(-1, keepdim=True)              # (B, T, 1), no centring
        return self.weight * (x * torch.rsqrt(variance + self.eps))


def relative_position_bucket(relative_position: torch.Tensor, bidirectional: bool = True,
                             num_buckets: int = 32, max_distance: int = 128) -> torch.Tensor:
    """The bucket of each offset ``relative_position`` = key position - query position.

    Bidirectional (encoder): half of the buckets for keys after the query (offset > 0), half for
    keys at or before it. Causal (decoder): offsets > 0 are never attended and share bucket 0
    with offset 0; all buckets go to keys before the query. Within a half of n buckets, offsets
    |r| < n/2 get a bucket each (exact), larger ones share logarithmically wider buckets up to
    ``max_distance``; from there on, one last bucket::

        bucket(|r|) = |r|                                                      if |r| < n/2
                    = min(n - 1, n/2 + floor(log(|r| / (n/2)) / log(max_distance / (n/2)) * n/2))

    ``relative_position``: an integer tensor of any shape; returns long buckets of the same shape
    in [0, num_buckets). Equal to ``transformers``' ``T5Attention._relative_position_bucket``.
    """
    if not isinstance(relative_position, torch.Tensor) or relative_position.is_floating_point() \
            or relative_position.dtype == torch.bool:
        raise TypeError(f"relative_position: expected an integer torch.Tensor, got "
                        f"{relative_position.dtype if isinstance(relative_position, torch.Tensor) else type(relative_position).__name__}")
    if not isinstance(bidirectional, bool):
        raise TypeError(f"bidirectional: expected a bool, got {type(bidirectional).__name__}")
    check_int(num_buckets, "num_buckets", minimum=4 if bidirectional else 2)
    half = num_buckets // 2 if bidirectional else num_buckets          # buckets per direction
    max_exact = half // 2
    check_int(max_distance, "max_distance", minimum=max_exact + 1)
    buckets = torch.zeros_like(relative_position, dtype=torch.long)
    if bidirectional:
        buckets = buckets + (relative_position > 0).long() * half      # keys after the query
        distance = relative_position.abs()
    else:
        distance = -torch.clamp(relative_position, max=0)              # the future collapses to 0
    is_small = distance < max_exact
    # written exactly as Mesh TensorFlow / transformers do it, so the float rounding agrees
    large = max_exact + (torch.log(distance.float() / max_exact) / math.log(max_distance / max_exact)
                         * (half - max_exact)).long()
    large = torch.clamp(large, max=half - 1)
    return buckets + torch.where(is_small, distance, large)


class RelativePositionBias(nn.Module):
    """One learned scalar per head and bucket: ``forward(T, S)`` -> bias (1, H, T, S) to add to the
    attention scores, ``bias[0, h, i, j] = table[bucket(j - i), h]``. It depends on the offset j - i
    only, not on where the pair sits in the sequence."""

    def __init__(self, n_heads: int, num_buckets: int = 32, max_distance: int = 128,
                 bidirectional: bool = True):
        super().__init__()
        self.num_buckets, self.max_distance = num_buckets, max_distance
        self.bidirectional = bidirectional
        self.relative_attention_bias = nn.Embedding(num_buckets, n_heads)   # (buckets, H), HF's name

    def forward(self, T: int, S: int) -> torch.Tensor:
        device = self.relative_attention_bias.weight.device
        offset = torch.arange(S, device=device)[None, :] - torch.arange(T, device=device)[:, None]  # (T, S)
        bucket = relative_position_bucket(offset, self.bidirectional, self.num_buckets, self.max_distance)
        return self.relative_attention_bias(bucket).permute(2, 0, 1)[None]    # (1, H, T, S)


class T5Attention(nn.Module):
    """Multi-head attention without biases and without the 1/sqrt(D) scale; the position bias
    (and masks) go to ``course_lib.attention.scaled_dot_product_attention``. Inner width H * D
    may differ from C (``d_kv`` is its own setting in T5)."""

    def __init__(self, d_model: int, n_heads: int, d_kv: int, dropout: float = 0.0, backend: str = "auto"):
        super().__init__()
        self.n_heads, self.d_kv, self.dropout, self.backend = n_heads, d_kv, dropout, backend
        inner = n_heads * d_kv
        self.q = nn.Linear(d_model, inner, bias=False)
        self.k = nn.Linear(d_model, inner, bias=False)
        self.v = nn.Linear(d_model, inner, bias=False)
        self.o = nn.Linear(inner, d_model, bias=False)

    def forward(self, x: torch.Tensor, memory: Optional[torch.Tensor] = None,
                mask: Optional[torch.Tensor] = None, causal: bool = False,
                bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x (B, T, C); memory (B, S, C) for cross-attention (default: x, self-attention);
        mask bool broadcastable to (B, H, T, S); bias float broadcastable to (B, H, T, S)."""
        memory = x if memory is None else memory
        q = split_heads(self.q(x), self.n_heads)                        # (B, H, T, D)
        k = split_heads(self.k(memory), self.n_heads)                   # (B, H, S, D)
        v = split_heads(self.v(memory), self.n_heads)                   # (B, H, S, D)
        out = scaled_dot_product_attention(q, k, v, mask=mask, causal=causal, backend=self.backend,
                                           sm_scale=1.0, bias=bias,
                                           dropout_p=self.dropout if self.training else 0.0)  # (B, H, T, D)
        return self.o(merge_heads(out))                                 # (B, T, C)


class DenseReluDense(nn.Module):
    """T5's feed-forward network, no biases. v1.0 (``gated=False``): wo relu(wi x). v1.1
    (``gated=True``, GELU): wo (gelu(wi_0 x) * wi_1 x), a gated linear unit (Shazeer, 2020)."""

    def __init__(self, d_model: int, d_ff: int, gated: bool = False, dropout: float = 0.0):
        super().__init__()
        self.gated = gated
        if gated:
            self.wi_0 = nn.Linear(d_model, d_ff, bias=False)
            self.wi_1 = nn.Linear(d_model, d_ff, bias=False)
        else:
            self.wi = nn.Linear(d_model, d_ff, bias=False)
        self.wo = nn.Linear(d_ff, d_model, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, C) -> (B, T, C) through (B, T, d_ff)."""
        if self.gated:   # transformers' "gated-gelu" uses the tanh approximation of GELU
            hidden = F.gelu(self.wi_0(x), approximate="tanh") * self.wi_1(x)
        else:
            hidden = F.relu(self.wi(x))
        return self.wo(self.dropout(hidden))


class T5Block(nn.Module):
    """One pre-norm layer: x + SelfAttn(RMSNorm(x)), [+ CrossAttn(RMSNorm(x), memory)], + FFN(RMSNorm(x)).
    The position bias is computed by the stack and passed in; the decoder's self-attention is causal."""

    def __init__(self, config: "T5Config", is_decoder: bool):
        super().__init__()
        c = config
        self.is_decoder = is_decoder
        self.self_norm = RMSNorm(c.d_model, c.eps)
        self.self_attn = T5Attention(c.d_model, c.n_heads, c.d_kv, c.dropout, c.backend)
        if is_decoder:
            self.cross_norm = RMSNorm(c.d_model, c.eps)
            self.cross_attn = T5Attention(c.d_model, c.n_heads, c.d_kv, c.dropout, c.backend)
        self.ff_norm = RMSNorm(c.d_model, c.eps)
        self.ff = DenseReluDense(c.d_model, c.d_ff, gated=c.ffn == "gated-gelu", dropout=c.dropout)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor, position_bias: torch.Tensor, mask: Optional[torch.Tensor] = None,
                memory: Optional[torch.Tensor] = None,
                memory_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x (B, T, C); position_bias (1, H, T, T); mask (B, 1, 1, T) on keys (encoder) or None;
        memory (B, S, C) and memory_mask (B, 1, 1, S) for the decoder. Returns (B, T, C)."""
        x = x + self.drop(self.self_attn(self.self_norm(x), mask=mask, causal=self.is_decoder,
                                         bias=position_bias))
        if self.is_decoder:
            x = x + self.drop(self.cross_attn(self.cross_norm(x), memory, mask=memory_mask))
        return x + self.drop(self.ff(self.ff_norm(x)))


# --- the model ----------------------------------------------------------------------------------

@dataclass
class T5Config:
    vocab_size: int = 32128       # V, shared by encoder and decoder (T5's SentencePiece vocabulary)
    d_model: int = 512            # C (t5-small: 512)
    d_kv: int = 64                # D, width of each head; H * D need not equal C
    d_ff: int = 2048              # hidden width of the feed-forward network
    n_layers: int = 6             # encoder layers (t5-small: 6)
    n_decoder_layers: int = 6     # decoder layers (t5-small: 6)
    n_heads: int = 8              # H
    num_buckets: int = 32         # relative position buckets per stack (half per direction in the encoder)
    max_distance: int = 128       # offsets this far or farther share the last bucket
    dropout: float = 0.1          # on embeddings, attention weights, FFN hidden units, residual branches
    eps: float = 1e-6             # RMSNorm epsilon
    ffn: str = "relu"             # "relu" (T5 v1.0, DenseReluDense) or "gated-gelu" (T5 v1.1)
    tie_embeddings: bool = True   # output layer = the input embedding (False: its own lm_head)
    scale_output: bool = True     # decoder output times d_model**-0.5 before the output layer (T5 v1.0)
    pad_id: int = 0               # padding (T5 also starts the decoder with it)
    eos_id: int = 1               # end of sequence (T5: 1; course_lib.text.Vocab: 2)
    decoder_start_id: int = 0     # first decoder input (T5: the pad id; the chapter uses <bos>)
    backend: str = "auto"         # attention backend, course_lib.attention.scaled_dot_product_attention

    def __post_init__(self):
        for name in ("vocab_size", "d_model", "d_kv", "d_ff", "n_layers", "n_decoder_layers", "n_heads",
                     "num_buckets", "max_distance"):
            check_int(getattr(self, name), f"config.{name}")
        for name in ("pad_id", "eos_id", "decoder_start_id"):
            check_int(getattr(self, name), f"config.{name}", minimum=0)
            if getattr(self, name) >= self.vocab_size:
                raise ValueError(f"config.{name}: expected an id below vocab_size = {self.vocab_size}, "
                                 f"got {getattr(self, name)}")
        check_int(self.num_buckets, "config.num_buckets", minimum=4)
        check_int(self.max_distance, "config.max_distance", minimum=self.num_buckets // 2 + 1)
        check_probability(self.dropout, "config.dropout")
        check_choice(self.ffn, "config.ffn", FFN_KINDS)
        check_choice(self.backend, "config.backend", BACKENDS)

    @classmethod
    def small(cls, vocab_size: int, **overrides) -> "T5Config":
        """The course's CPU preset: 2 + 2 layers, C = 128, 4 heads of D = 32, d_ff = 512,
        32 buckets up to distance 64 (about 0.9M parameters for a character vocabulary)."""
        preset = dict(vocab_size=vocab_size, d_model=128, d_kv=32, d_ff=512, n_layers=2,
                      n_decoder_layers=2, n_heads=4, num_buckets=32, max_distance=64, dropout=0.0)
        preset.update(overrides)
        return cls(**preset)

    def to_hf(self):
        """The matching ``transformers.T5Config`` (for building a reference model offline).
        transformers 5 always ties the output layer and reads ``tie_word_embeddings`` as "scale"."""
        from transformers import T5Config as HFConfig

        return HFConfig(vocab_size=self.vocab_size, d_model=self.d_model, d_kv=self.d_kv, d_ff=self.d_ff,
                        num_layers=self.n_layers, num_decoder_layers=self.n_decoder_layers,
                        num_heads=self.n_heads, relative_attention_num_buckets=self.num_buckets,
                        relative_attention_max_distance=self.max_distance, dropout_rate=self.dropout,
                        layer_norm_epsilon=self.eps, feed_forward_proj=self.ffn,
                        tie_word_embeddings=self.scale_output, pad_token_id=self.pad_id,
                        eos_token_id=self.eos_id, decoder_start_token_id=self.decoder_start_id)


class T5Stack(nn.Module):
    """Encoder (``is_decoder=False``) or decoder stack: blocks, one relative position bias table
    (the first layer's, shared by every layer), a final RMSNorm."""

    def __init__(self, config: T5Config, is_decoder: bool):
        super().__init__()
        n = config.n_decoder_layers if is_decoder else config.n_layers
        self.is_decoder = is_decoder
        self.position_bias = RelativePositionBias(config.n_heads, config.num_buckets, config.max_distance,
                                                  bidirectional=not is_decoder)
        self.blocks = nn.ModuleList(T5Block(config, is_decoder) for _ in range(n))
        self.final_norm = RMSNorm(config.d_model, config.eps)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None,
                memory: Optional[torch.Tensor] = None,
                memory_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x (B, T, C) embedded tokens -> (B, T, C); masks (B, 1, 1, *) on keys."""
        T = x.shape[1]
        bias = self.position_bias(T, T)                                 # (1, H, T, T), once for all layers
        x = self.drop(x)
        for block in self.blocks:
            x = block(x, bias, mask=mask, memory=memory, memory_mask=memory_mask)
        return self.drop(self.final_norm(x))


class T5(nn.Module):
    """The T5 encoder-decoder. ``forward(input_ids (B, S), decoder_input_ids (B, T))`` -> logits (B, T, V)."""

    def __init__(self, config: T5Config):
        super().__init__()
        if not isinstance(config, T5Config):
            raise TypeError(f"config: expected a T5Config, got {type(config).__name__}")
        self.config = config
        self.shared = nn.Embedding(config.vocab_size, config.d_model)  # (V, C), encoder and decoder
        self.encoder = T5Stack(config, is_decoder=False)
        self.decoder = T5Stack(config, is_decoder=True)
        self.lm_head = None if config.tie_embeddings else nn.Linear(config.d_model, config.vocab_size, bias=False)
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        """T5's initialisation (Mesh TensorFlow, as in transformers): the missing 1/sqrt(D) of the
        scores is folded into the query weights' std (C * D)^-0.5; embeddings std 1."""
        c = self.config
        nn.init.normal_(self.shared.weight, std=1.0)
        if self.lm_head is not None:
            nn.init.normal_(self.lm_head.weight, std=1.0)
        for m in self.modules():
            if isinstance(m, T5Attention):
                nn.init.normal_(m.q.weight, std=(c.d_model * c.d_kv) ** -0.5)
                nn.init.normal_(m.k.weight, std=c.d_model ** -0.5)
                nn.init.normal_(m.v.weight, std=c.d_model ** -0.5)
                nn.init.normal_(m.o.weight, std=(c.n_heads * c.d_kv) ** -0.5)
            elif isinstance(m, DenseReluDense):
                for w in ((m.wi_0, m.wi_1) if m.gated else (m.wi,)):
                    nn.init.normal_(w.weight, std=c.d_model ** -0.5)
                nn.init.normal_(m.wo.weight, std=c.d_ff ** -0.5)
            elif isinstance(m, RelativePositionBias):
                nn.init.normal_(m.relative_attention_bias.weight, std=c.d_model ** -0.5)

    def _source_mask(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor]) -> torch.Tensor:
        B, S = check_shape(input_ids, ("B", "S"), "input_ids").values()
        if attention_mask is None:
            attention_mask = input_ids != self.config.pad_id
        check_shape(attention_mask, (B, S), "attention_mask")
        if attention_mask.dtype != torch.bool:
            raise TypeError(f"attention_mask: expected a bool tensor (True = real token), got {attention_mask.dtype}")
        return attention_mask

    def _check_ids(self, ids: torch.Tensor, name: str) -> None:
        if ids.dtype != torch.long:
            raise TypeError(f"{name}: expected token ids of dtype torch.long, got {ids.dtype}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.config.vocab_size):
            raise ValueError(f"{name}: expected ids in [0, {self.config.vocab_size}), got "
                             f"[{int(ids.min())}, {int(ids.max())}]")

    def encode(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """input_ids (B, S), attention_mask (B, S) bool (default: ids != pad_id) -> memory (B, S, C)."""
        attention_mask = self._source_mask(input_ids, attention_mask)
        self._check_ids(input_ids, "input_ids")
        return self.encoder(self.shared(input_ids), mask=attention_mask[:, None, None, :])

    def decode_logits(self, decoder_input_ids: torch.Tensor, memory: torch.Tensor,
                      attention_mask: torch.Tensor) -> torch.Tensor:
        """decoder_input_ids (B, T), memory (B, S, C), attention_mask (B, S) -> logits (B, T, V)."""
        check_shape(decoder_input_ids, (memory.shape[0], "T"), "decoder_input_ids")
        self._check_ids(decoder_input_ids, "decoder_input_ids")
        h = self.decoder(self.shared(decoder_input_ids), memory=memory,
                         memory_mask=attention_mask[:, None, None, :])   # (B, T, C)
        if self.config.scale_output:
            h = h * self.config.d_model ** -0.5
        weight = self.shared.weight if self.lm_head is None else self.lm_head.weight   # (V, C)
        return h @ weight.T                                              # (B, T, V)

    def forward(self, input_ids: torch.Tensor, decoder_input_ids: torch.Tensor,
                attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """input_ids (B, S); decoder_input_ids (B, T) (start id, then the target shifted right);
        attention_mask (B, S) bool, True on real source tokens (default: ids != pad_id).
        Returns logits (B, T, V)."""
        attention_mask = self._source_mask(input_ids, attention_mask)
        memory = self.encode(input_ids, attention_mask)                  # (B, S, C)
        return self.decode_logits(decoder_input_ids, memory, attention_mask)

    # --- decoding: the interface of course_lib.seq2seq (greedy_decode, beam_search, translate) ---
    def start(self, src: torch.Tensor, src_mask: Optional[torch.Tensor] = None) -> dict:
        """Encode once: the state the decoding steps read."""
        src_mask = self._source_mask(src, src_mask)
        return {"memory": self.encode(src, src_mask), "mask": src_mask}

    def step(self, prefix: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """prefix (B, t) decoder inputs so far -> log-probabilities of the next token (B, V). The
        decoder is recomputed on the whole prefix (no cache: outputs here are short)."""
        logits = self.decode_logits(prefix, state["memory"], state["mask"])   # (B, t, V)
        return torch.log_softmax(logits[:, -1], dim=-1), state

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None,
                 max_len: int = 64) -> torch.Tensor:
        """Greedy decoding from ``config.decoder_start_id`` until ``config.eos_id``: ids (B, L)
        without the start id, eos included, padded with pad_id after it (L <= max_len)."""
        check_int(max_len, "max_len")
        was_training = self.training
        self.eval()
        state = self.start(input_ids, attention_mask)
        ids, _ = greedy_decode(self.step, state, input_ids.shape[0], bos_id=self.config.decoder_start_id,
                               eos_id=self.config.eos_id, max_len=max_len, pad_id=self.config.pad_id)
        self.train(was_training)
        return ids

    # --- the reference ---------------------------------------------------------------------------
    @classmethod
    def from_hf(cls, model, backend: str = "auto") -> "T5":
        """A course T5 with the weights of ``model``, a ``transformers.T5ForConditionalGeneration``
        (e.g. built offline from a small ``transformers.T5Config`` with random weights)."""
        from transformers import T5ForConditionalGeneration

        if not isinstance(model, T5ForConditionalGeneration):
            raise TypeError(f"model: expected a transformers.T5ForConditionalGeneration, got {type(model).__name__}")
        hc = model.config
        tied = model.lm_head.weight.data_ptr() == model.shared.weight.data_ptr()
        scaled = getattr(hc, "scale_decoder_outputs", hc.tie_word_embeddings)
        config = T5Config(vocab_size=hc.vocab_size, d_model=hc.d_model, d_kv=hc.d_kv, d_ff=hc.d_ff,
                          n_layers=hc.num_layers, n_decoder_layers=hc.num_decoder_layers, n_heads=hc.num_heads,
                          num_buckets=hc.relative_attention_num_buckets,
                          max_distance=hc.relative_attention_max_distance, dropout=float(hc.dropout_rate),
                          eps=hc.layer_norm_epsilon, ffn="gated-gelu" if hc.is_gated_act else "relu",
                          tie_embeddings=tied, scale_output=bool(scaled), pad_id=hc.pad_token_id, eos_id=hc.eos_token_id,
                          decoder_start_id=hc.decoder_start_token_id, backend=backend)
        if hc.is_gated_act and hc.dense_act_fn not in ("gelu_new", "gelu_pytorch_tanh"):
            raise ValueError(f"model: expected a relu or gated-gelu feed-forward, got {hc.feed_forward_proj!r}")
        ours = cls(config).to(model.shared.weight.device)
        with torch.no_grad():
            ours.shared.weight.copy_(model.shared.weight)
            if not tied:
                ours.lm_head.weight.copy_(model.lm_head.weight)
            for stack, theirs in ((ours.encoder, model.encoder), (ours.decoder, model.decoder)):
                stack.position_bias.relative_attention_bias.weight.copy_(
                    theirs.block[0].layer[0].SelfAttention.relative_attention_bias.weight)
                stack.final_norm.weight.copy_(theirs.final_layer_norm.weight)
                for block, hb in zip(stack.blocks, theirs.block):
                    pairs = [(block.self_norm, hb.layer[0].layer_norm), (block.ff_norm, hb.layer[-1].layer_norm)]
                    attns = [(block.self_attn, hb.layer[0].SelfAttention)]
                    if block.is_decoder:
                        pairs.append((block.cross_norm, hb.layer[1].layer_norm))
                        attns.append((block.cross_attn, hb.layer[1].EncDecAttention))
                    for mine, hf in pairs:
                        mine.weight.copy_(hf.weight)
                    for mine, hf in attns:
                        for name in ("q", "k", "v", "o"):
                            getattr(mine, name).weight.copy_(getattr(hf, name).weight)
                    hf_ff = hb.layer[-1].DenseReluDense
                    for name in (("wi_0", "wi_1", "wo") if block.ff.gated else ("wi", "wo")):
                        getattr(block.ff, name).weight.copy_(getattr(hf_ff, name).weight)
        return ours.train(model.training)


# --- span corruption (pretraining) ------------------------------------------------------------

def _random_segmentation(n_items: int, n_segments: int, rng: random.Random) -> list[int]:
    """``n_items`` split into ``n_segments`` positive lengths, uniformly among all such splits."""
    cuts = sorted(rng.sample(range(1, n_items), n_segments - 1))
    edges = [0] + cuts + [n_items]
    return [b - a for a, b in zip(edges[:-1], edges[1:])]


def noise_span_mask(length: int, noise_density: float = 0.15, mean_span_length: float = 3.0,
                    seed: int = 0) -> list[bool]:
    """Which of ``length`` tokens to corrupt, as T5's ``random_spans_noise_mask`` (Raffel et al.,
    2020, and the T5 code): round(length * noise_density) noise tokens (at least 1, at most
    length - 1) in round(noise / mean_span_length) spans (at least 1); the span lengths, and the
    lengths of the kept stretches between them, are random splits; kept and noise alternate,
    starting with kept. Deterministic under ``seed``."""
    check_int(length, "length", minimum=2)
    check_probability(noise_density, "noise_density")
    if not (isinstance(mean_span_length, (int, float)) and not isinstance(mean_span_length, bool)
            and mean_span_length >= 1):
        raise ValueError(f"mean_span_length: expected a number >= 1, got {mean_span_length!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
    rng = random.Random(seed)
    n_noise = min(max(round(length * noise_density), 1), length - 1)
    n_spans = max(round(n_noise / mean_span_length), 1)
    n_spans = min(n_spans, n_noise, length - n_noise)       # each span and each gap needs a token
    noise_lengths = _random_segmentation(n_noise, n_spans, rng)
    keep_lengths = _random_segmentation(length - n_noise, n_spans, rng)
    mask: list[bool] = []
    for keep, noise in zip(keep_lengths, noise_lengths):
        mask += [False] * keep + [True] * noise
    return mask


def _check_ids_and_sentinels(ids, sentinel_ids) -> tuple[list[int], list[int]]:
    if isinstance(ids, torch.Tensor):
        if ids.dim() != 1:
            raise ValueError(f"ids: expected a 1-D sequence of token ids, got shape {tuple(ids.shape)}")
        ids = ids.tolist()
    if isinstance(ids, str) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise TypeError("ids: expected a list (or 1-D tensor) of int token ids")
    if isinstance(sentinel_ids, torch.Tensor):
        sentinel_ids = sentinel_ids.tolist()
    sentinel_ids = list(sentinel_ids)
    if not sentinel_ids or len(set(sentinel_ids)) != len(sentinel_ids):
        raise ValueError("sentinel_ids: expected a non-empty list of distinct ids")
    clash = set(ids) & set(sentinel_ids)
    if clash:
        raise ValueError(f"ids: expected no sentinel id in the text, got {sorted(clash)[:5]}")
    return list(ids), sentinel_ids


def span_corruption(ids: Sequence[int], sentinel_ids: Sequence[int], noise_density: float = 0.15,
                    mean_span_length: float = 3.0, seed: int = 0) -> tuple[list[int], list[int]]:
    """T5's pretraining objective on one sequence of token ids.

    Inputs: the text with its k-th noise span replaced by the single token ``sentinel_ids[k]``.
    Targets: for each span k in order, ``sentinel_ids[k]`` followed by the span's tokens, then one
    final sentinel (as in Figure 2 of the paper: "<X> for inviting <Y> last <Z>")::

        ids      a b c d e f g h          (noise: c d and g)
        inputs   a b <0> e f <1> h
        targets  <0> c d <1> g <2>

    :func:`reassemble_spans` (inputs, targets) gives the ids back exactly. ``sentinel_ids`` needs
    one more id than there are spans (round(len * noise_density / mean_span_length) + 1).
    Returns (inputs, targets) as lists of ints; add eos yourself.
    """
    ids, sentinel_ids = _check_ids_and_sentinels(ids, sentinel_ids)
    mask = noise_span_mask(len(ids), noise_density, mean_span_length, seed)
    n_spans = sum(1 for t in range(len(mask)) if mask[t] and (t == 0 or not mask[t - 1]))
    if n_spans + 1 > len(sentinel_ids):
        raise ValueError(f"sentinel_ids: expected at least {n_spans + 1} ids for {n_spans} spans, "
                         f"got {len(sentinel_ids)}")
    inputs, targets, span = [], [], -1
    for t, (token, noisy) in enumerate(zip(ids, mask)):
        if noisy and (t == 0 or not mask[t - 1]):                       # a span starts
            span += 1
            inputs.append(sentinel_ids[span])
            targets.append(sentinel_ids[span])
        (targets if noisy else inputs).append(token)
    targets.append(sentinel_ids[span + 1])
    return inputs, targets


def reassemble_spans(inputs: Sequence[int], targets: Sequence[int], sentinel_ids: Sequence[int]) -> list[int]:
    """The original ids from a :func:`span_corruption` pair: each sentinel in ``inputs`` is replaced
    by the tokens that follow the same sentinel in ``targets``. Raises if a sentinel of the inputs
    is missing from the targets or the targets' sentinels are out of order."""
    sentinel_ids = list(sentinel_ids)
    where = {s: k for k, s in enumerate(sentinel_ids)}
    spans: dict[int, list[int]] = {}
    current, expected = None, 0
    for token in targets:
        if token in where:
            if where[token] != expected:
                raise ValueError(f"targets: expected sentinel number {expected}, got number {where[token]}")
            current, expected = token, expected + 1
            spans[current] = []
        elif current is None:
            raise ValueError("targets: expected to start with a sentinel id")
        else:
            spans[current].append(token)
    out: list[int] = []
    for token in inputs:
        if token in where:
            if token not in spans:
                raise ValueError(f"inputs: sentinel {token} has no span in the targets")
            out += spans[token]
        else:
            out.append(token)
    return out


# --- training ---------------------------------------------------------------------------------

def t5_loss(model: T5, batch: Sequence[torch.Tensor]) -> torch.Tensor:
    """Cross-entropy of a batch (src, src_mask, tgt_in, tgt_out) of :class:`EncodedPairs`,
    ignoring padding (``config.pad_id``) in tgt_out."""
    if len(batch) != 4:
        raise ValueError(f"batch: expected (src, src_mask, tgt_in, tgt_out), got {len(batch)} tensors")
    src, src_mask, tgt_in, tgt_out = batch
    logits = model(src, tgt_in, src_mask)                               # (B, T, V)
    check_shape(tgt_out, tuple(logits.shape[:2]), "tgt_out")
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1),
                           ignore_index=model.config.pad_id)


def random_batches(data: EncodedPairs, *, steps: int, batch_size: int, seed: int = 0,
                   group: int = 16) -> list[tuple]:
    """``steps`` batches drawn at random from ``data``: ``group`` batches' worth of examples at a
    time, sorted by source length and cut into batches, each trimmed to its longest source and
    target, so that a batch of short examples does not pay for a long one. Batch order shuffled."""
    check_int(steps, "steps")
    check_int(batch_size, "batch_size")
    check_int(group, "group")
    g = torch.Generator().manual_seed(seed)
    n, out = data.src.shape[0], []
    lengths = data.src_mask.sum(1)                                      # (n,)
    while len(out) < steps:
        pool = torch.randint(0, n, (group * batch_size,), generator=g)
        pool = pool[torch.argsort(lengths[pool], stable=True)]
        chunk = []
        for idx in pool.split(batch_size):
            src, src_mask, tgt_in, tgt_out = (t[idx] for t in data)
            S, T = int(src_mask.sum(1).max()), int((tgt_out != 0).sum(1).max())
            chunk.append((src[:, :S], src_mask[:, :S], tgt_in[:, :T], tgt_out[:, :T]))
        out += [chunk[i] for i in torch.randperm(len(chunk), generator=g).tolist()]
    return out[:steps]


def t5_param_groups(model: T5, lr: float, position_bias_lr: float) -> list[dict]:
    """AdamW parameter groups with one learning rate per weight tensor: ``lr`` times the tensor's
    root mean square at the start (Adafactor's relative step size, with which T5 was trained; RMS
    floored at 1e-3), and ``position_bias_lr`` for the relative position bias tables.

    Why: Adam moves every entry by about its learning rate per update, whatever the entry's scale,
    and T5's initialisation spans std 1 (embeddings, RMSNorm gains) to (C D)^-1/2 (queries: 0.016
    for the course's preset). One learning rate is too small for the first or too large for the
    second. The bias tables' entries are added straight to the scores and must grow from about 0.1
    to several units before attention can pick a position: they need far larger steps than their
    scale (chapter 09 measures the difference)."""
    for value, name in ((lr, "lr"), (position_bias_lr, "position_bias_lr")):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"{name}: expected a positive float, got {value!r}")
    groups = []
    for name, p in model.named_parameters():
        if name.endswith("relative_attention_bias.weight"):
            groups.append({"params": [p], "lr": float(position_bias_lr)})
        else:
            rms = max(1e-3, p.detach().pow(2).mean().sqrt().item())
            groups.append({"params": [p], "lr": float(lr) * rms})
    return groups


def train_t5(model: T5, data: EncodedPairs, *, steps: int, batch_size: int = 32, lr: float = 1e-2,
             position_bias_lr: float = 0.3, warmup: int = 30, seed: int = 0, group: int = 4,
             progress: bool = False) -> History:
    """``steps`` AdamW updates on random batches of ``data`` (:func:`random_batches`, ``group``
    batches' worth sorted by length at a time: a small ``group`` mixes the tasks of a multi-task
    set within a batch), each tensor at its own learning rate (:func:`t5_param_groups`), rising
    linearly over ``warmup`` steps, then decaying linearly to 0. T5 used Adafactor (which scales
    each tensor's step the same way) with an inverse-square-root schedule; here it is AdamW with
    that scaling and a linear schedule. Returns the History."""
    check_int(warmup, "warmup", minimum=0)
    if not isinstance(model, T5):
        raise TypeError(f"model: expected a T5, got {type(model).__name__}")
    optimizer = torch.optim.AdamW(t5_param_groups(model, lr, position_bias_lr), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / max(warmup, 1), max(0.0, (steps - s) / max(steps - warmup, 1))))
    batches = random_batches(data, steps=steps, batch_size=batch_size, seed=seed, group=group)
    return fit(model, batches, t5_loss, epochs=1, optimizer=optimizer, scheduler=schedule, clip_grad=1.0,
               progress=progress, desc="t5")
