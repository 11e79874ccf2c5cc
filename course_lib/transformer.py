"""The Transformer (Vaswani et al., 2017, "Attention is all you need"), chapter 06.

In dependency order: the position-wise feed-forward network, the encoder layer (self-attention +
FFN), the decoder layer (masked self-attention + cross-attention + FFN), each wrapped in residual
connections and LayerNorm, pre-norm or post-norm; the config; the encoder and decoder stacks; the
encoder-decoder :class:`Seq2SeqTransformer`; label smoothing and the warm-up learning-rate schedule
of the paper; the paper's training recipe on chapter 03's one training wrapper.

Decoding is shared with the recurrent models of chapters 03-04: :class:`Seq2SeqTransformer` offers
``start(src, src_mask)`` and ``step(prefix, state)``, so ``course_lib.seq2seq.greedy_decode``,
``beam_search``, ``decode`` and ``translate`` work on it unchanged.

Glossary: B batch, S source length, T target length, C = d_model channels, H heads, V vocabulary.
Masks are bool, True = may attend (``course_lib.attention``); ``src_mask`` (B, S) is True on real
source tokens, as in ``course_lib.data.EncodedPairs``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .attention import BACKENDS, LearnedPositions, MultiHeadAttention, sinusoidal_positions
from .data import EncodedPairs
from .seq2seq import train_seq2seq
from .train import History
from .utils import check_choice, check_int, check_probability, check_shape

# "gelu_tanh" is GELU's tanh approximation, which GPT-2 uses
ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu,
               "gelu_tanh": lambda x: F.gelu(x, approximate="tanh")}


# --- the pieces of a layer ------------------------------------------------------------------------

class FeedForward(nn.Module):
    """Position-wise feed-forward network, the same two-layer MLP applied to every position::

        FFN(x) = W_2 dropout(act(x W_1 + b_1)) + b_2,    (B, T, C) -> (B, T, d_ff) -> (B, T, C)
    """

    def __init__(self, d_model: int, d_ff: int, *, dropout: float = 0.0, activation: str = "relu"):
        super().__init__()
        check_int(d_model, "d_model")
        check_int(d_ff, "d_ff")
        check_probability(dropout, "dropout")
        check_choice(activation, "activation", ACTIVATIONS)
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, C) -> (B, T, C)."""
        return self.linear2(self.dropout(ACTIVATIONS[self.activation](self.linear1(x))))


def _activation_of(layer: nn.Module) -> str:
    act = layer.activation  # torch keeps a function (F.relu) or a module (nn.ReLU())
    if act is F.relu or isinstance(act, nn.ReLU):
        return "relu"
    if act is F.gelu or (isinstance(act, nn.GELU) and act.approximate == "none"):
        return "gelu"
    raise ValueError(f"layer: expected activation 'relu' or 'gelu', got {act}")


def _copy_linear(ours: nn.Linear, theirs: nn.Linear) -> None:
    ours.weight.copy_(theirs.weight)
    ours.bias.copy_(theirs.bias)


def _layer_args_of(layer: nn.Module) -> dict:
    """The keyword arguments of our layer that match a torch.nn.Transformer{En,De}coderLayer."""
    return dict(d_model=layer.self_attn.embed_dim, n_heads=layer.self_attn.num_heads,
                d_ff=layer.linear1.out_features, dropout=layer.dropout.p, norm_first=layer.norm_first,
                activation=_activation_of(layer), norm_eps=layer.norm1.eps)


def _copy_ff_and_norms(ours: nn.Module, theirs: nn.Module, n_norms: int) -> None:
    _copy_linear(ours.ff.linear1, theirs.linear1)
    _copy_linear(ours.ff.linear2, theirs.linear2)
    for i in range(1, n_norms + 1):
        _copy_linear(getattr(ours, f"norm{i}"), getattr(theirs, f"norm{i}"))


class EncoderLayer(nn.Module):
    """Self-attention then FFN, each inside a residual connection with LayerNorm.

    Post-norm (``norm_first=False``, the paper)::      Pre-norm (``norm_first=True``)::

        x = LN(x + Dropout(SelfAttn(x)))                  x = x + Dropout(SelfAttn(LN(x)))
        x = LN(x + Dropout(FFN(x)))                       x = x + Dropout(FFN(LN(x)))

    Pre-norm keeps an identity path from input to output and trains stably without warm-up
    (Xiong et al., 2020); the stack then needs one final LayerNorm. Same parameter names as
    ``torch.nn.TransformerEncoderLayer``, so :meth:`from_torch` is a copy.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, *, dropout: float = 0.1,
                 norm_first: bool = True, activation: str = "relu", backend: str = "auto",
                 norm_eps: float = 1e-5):
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout, backend=backend)
        self.ff = FeedForward(d_model, d_ff, dropout=dropout, activation=activation)
        self.norm1, self.norm2 = nn.LayerNorm(d_model, eps=norm_eps), nn.LayerNorm(d_model, eps=norm_eps)
        self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def _sa(self, x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        return self.dropout1(self.self_attn(x, mask=mask, need_weights=False)[0])

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x (B, S, C), mask bool broadcastable to (B, H, S, S) (e.g. padding_mask) -> (B, S, C)."""
        if self.norm_first:
            x = x + self._sa(self.norm1(x), mask)
            return x + self.dropout2(self.ff(self.norm2(x)))
        x = self.norm1(x + self._sa(x, mask))
        return self.norm2(x + self.dropout2(self.ff(x)))

    @classmethod
    def from_torch(cls, layer: nn.TransformerEncoderLayer, backend: str = "auto") -> "EncoderLayer":
        """A course encoder layer with the weights of ``layer`` (any ``batch_first``; ours is batch first)."""
        if not isinstance(layer, nn.TransformerEncoderLayer):
            raise TypeError(f"layer: expected a torch.nn.TransformerEncoderLayer, got {type(layer).__name__}")
        ours = cls(**_layer_args_of(layer), backend=backend)
        ours.self_attn = MultiHeadAttention.from_torch(layer.self_attn, backend=backend)
        with torch.no_grad():
            _copy_ff_and_norms(ours, layer, n_norms=2)
        return ours.to(layer.linear1.weight.device)


class DecoderLayer(nn.Module):
    """Masked (causal) self-attention over the target, cross-attention from the target to the
    encoder's output (the *memory*), then FFN; each sub-layer inside a residual connection with
    LayerNorm, pre- or post-norm as in :class:`EncoderLayer`. Queries of the cross-attention come
    from the decoder, keys and values from the memory. Same names as ``torch.nn.TransformerDecoderLayer``.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, *, dropout: float = 0.1,
                 norm_first: bool = True, activation: str = "relu", backend: str = "auto",
                 norm_eps: float = 1e-5):
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout, backend=backend)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout, backend=backend)
        self.ff = FeedForward(d_model, d_ff, dropout=dropout, activation=activation)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model, eps=norm_eps) for _ in range(3))
        self.dropout1, self.dropout2, self.dropout3 = (nn.Dropout(dropout) for _ in range(3))

    def _sa(self, y: torch.Tensor) -> torch.Tensor:
        # causal: position t sees targets <= t only. Right padding needs no mask here: real tokens
        # never see the later pads, and the loss ignores what the pads compute.
        return self.dropout1(self.self_attn(y, causal=True, need_weights=False)[0])

    def _ca(self, y: torch.Tensor, memory: torch.Tensor, memory_mask: Optional[torch.Tensor]) -> torch.Tensor:
        return self.dropout2(self.cross_attn(y, memory, mask=memory_mask, need_weights=False)[0])

    def forward(self, y: torch.Tensor, memory: torch.Tensor,
                memory_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """y (B, T, C) target states, memory (B, S, C) encoder output, memory_mask bool broadcastable
        to (B, H, T, S) (True = a real source token) -> (B, T, C)."""
        if self.norm_first:
            y = y + self._sa(self.norm1(y))
            y = y + self._ca(self.norm2(y), memory, memory_mask)
            return y + self.dropout3(self.ff(self.norm3(y)))
        y = self.norm1(y + self._sa(y))
        y = self.norm2(y + self._ca(y, memory, memory_mask))
        return self.norm3(y + self.dropout3(self.ff(y)))

    @classmethod
    def from_torch(cls, layer: nn.TransformerDecoderLayer, backend: str = "auto") -> "DecoderLayer":
        """A course decoder layer with the weights of ``layer`` (used with a causal target mask)."""
        if not isinstance(layer, nn.TransformerDecoderLayer):
            raise TypeError(f"layer: expected a torch.nn.TransformerDecoderLayer, got {type(layer).__name__}")
        ours = cls(**_layer_args_of(layer), backend=backend)
        ours.self_attn = MultiHeadAttention.from_torch(layer.self_attn, backend=backend)
        ours.cross_attn = MultiHeadAttention.from_torch(layer.multihead_attn, backend=backend)
        with torch.no_grad():
            _copy_ff_and_norms(ours, layer, n_norms=3)
        return ours.to(layer.linear1.weight.device)


# --- the model ----------------------------------------------------------------------------------

@dataclass
class TransformerConfig:
    """The encoder-decoder's sizes. The defaults are the course's CPU preset: 2 + 2 pre-norm layers
    of width 64 with 4 heads and d_ff = 256, about 240k parameters with character vocabularies,
    which train on the translation tasks of chapters 03-04 in minutes; :meth:`paper` gives the
    2017 base model."""
    src_vocab_size: int = 64      # source V: set from the source vocabulary
    tgt_vocab_size: int = 64      # target V: set from the target vocabulary
    d_model: int = 64             # C, the width of every token vector (512 in the paper's base model)
    n_heads: int = 4              # H; each head has D = d_model / n_heads channels (paper: 8)
    d_ff: int = 256               # hidden width of the feed-forward network (paper: 2048 = 4 d_model)
    n_encoder_layers: int = 2     # paper: 6
    n_decoder_layers: int = 2     # paper: 6
    dropout: float = 0.1          # on attention weights, FFN hidden units, residual branches, embeddings
    max_len: int = 256            # longest source or target the model accepts (positions table)
    positions: str = "sinusoidal" # "sinusoidal" (fixed, the paper) or "learned"
    norm_first: bool = True       # pre-norm (stable without warm-up); False: the paper's post-norm
    activation: str = "relu"      # "relu" (the paper), "gelu" or "gelu_tanh"
    backend: str = "auto"         # attention backend (course_lib.attention.scaled_dot_product_attention)
    pad_id: int = 0               # padding id of both vocabularies (course_lib.text): no embedding
                                  # gradient, ignored by the loss and written after eos in decoding

    def __post_init__(self):
        for name in ("src_vocab_size", "tgt_vocab_size", "d_model", "n_heads", "d_ff",
                     "n_encoder_layers", "n_decoder_layers", "max_len"):
            check_int(getattr(self, name), f"config.{name}")
        check_int(self.pad_id, "config.pad_id", minimum=0)
        if self.d_model % self.n_heads:
            raise ValueError(f"config.n_heads: expected a divisor of d_model = {self.d_model}, got {self.n_heads}")
        if self.positions == "sinusoidal" and self.d_model % 2:
            raise ValueError(f"config.d_model: expected an even number for sinusoidal positions, got {self.d_model}")
        check_probability(self.dropout, "config.dropout")
        check_choice(self.positions, "config.positions", ("sinusoidal", "learned"))
        check_choice(self.activation, "config.activation", ACTIVATIONS)
        check_choice(self.backend, "config.backend", BACKENDS)

    @classmethod
    def paper(cls, src_vocab_size: int, tgt_vocab_size: int, **overrides) -> "TransformerConfig":
        """The base model of Vaswani et al. (2017, Table 3): 6 + 6 post-norm layers of width 512,
        8 heads, d_ff = 2048, dropout 0.1 (about 44M parameters without the embeddings; far
        too big to train on a laptop CPU). The defaults are the course's CPU preset instead."""
        sizes = dict(d_model=512, n_heads=8, d_ff=2048, n_encoder_layers=6, n_decoder_layers=6,
                     dropout=0.1, norm_first=False, max_len=512)
        return cls(src_vocab_size=src_vocab_size, tgt_vocab_size=tgt_vocab_size, **{**sizes, **overrides})

    def layer_args(self) -> dict:
        """The keyword arguments of :class:`EncoderLayer` and :class:`DecoderLayer`."""
        return dict(d_model=self.d_model, n_heads=self.n_heads, d_ff=self.d_ff, dropout=self.dropout,
                    norm_first=self.norm_first, activation=self.activation, backend=self.backend)


class _Embedding(nn.Module):
    """Token embedding scaled by sqrt(d_model) (as in the paper), plus positions, plus dropout."""

    def __init__(self, vocab_size: int, config: TransformerConfig):
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, config.d_model, padding_idx=config.pad_id)
        self.scale = math.sqrt(config.d_model)
        self.max_len = config.max_len
        if config.positions == "learned":
            self.learned = LearnedPositions(config.max_len, config.d_model)
        else:
            self.learned = None
            self.register_buffer("table", sinusoidal_positions(config.max_len, config.d_model),
                                 persistent=False)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, ids: torch.Tensor, name: str) -> torch.Tensor:
        T = check_shape(ids, ("B", "T"), name)["T"]
        if T > self.max_len:
            raise ValueError(f"{name}: expected at most config.max_len = {self.max_len} tokens, got {T}")
        x = self.tokens(ids) * self.scale                                   # (B, T, C)
        x = self.learned(x) if self.learned is not None else x + self.table[:T]
        return self.dropout(x)


class Encoder(nn.Module):
    """Embedding + positions, then ``n_encoder_layers`` encoder layers (+ a final LayerNorm when
    pre-norm). Every source position attends to every real source position."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.embed = _Embedding(config.src_vocab_size, config)
        self.layers = nn.ModuleList(EncoderLayer(**config.layer_args()) for _ in range(config.n_encoder_layers))
        self.norm = nn.LayerNorm(config.d_model) if config.norm_first else nn.Identity()

    def forward(self, src: torch.Tensor, src_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """src (B, S) ids, src_mask (B, S) True on real tokens (None: all real) -> memory (B, S, C)."""
        x = self.embed(src, "src")
        mask = None if src_mask is None else src_mask[:, None, None, :]   # (B, 1, 1, S): over keys
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x)


class Decoder(nn.Module):
    """Embedding + positions, ``n_decoder_layers`` decoder layers, a final LayerNorm when pre-norm,
    and a linear layer to logits over the target vocabulary."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.embed = _Embedding(config.tgt_vocab_size, config)
        self.layers = nn.ModuleList(DecoderLayer(**config.layer_args()) for _ in range(config.n_decoder_layers))
        self.norm = nn.LayerNorm(config.d_model) if config.norm_first else nn.Identity()
        self.head = nn.Linear(config.d_model, config.tgt_vocab_size)

    def forward(self, tgt_in: torch.Tensor, memory: torch.Tensor,
                src_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """tgt_in (B, T) ids, memory (B, S, C), src_mask (B, S) -> logits (B, T, V)."""
        y = self.embed(tgt_in, "tgt_in")
        mask = None if src_mask is None else src_mask[:, None, None, :]   # (B, 1, 1, S)
        for layer in self.layers:
            y = layer(y, memory, mask)
        return self.head(self.norm(y))


class Seq2SeqTransformer(nn.Module):
    """The encoder-decoder Transformer. ``model(src, src_mask, tgt_in)`` gives logits (B, T, V) for
    teacher forcing, like ``course_lib.seq2seq.Seq2Seq``; ``start``/``step`` serve the shared
    search functions (``course_lib.seq2seq.greedy_decode``, ``beam_search``, ``decode``, ``translate``).
    """

    def __init__(self, config: TransformerConfig):
        super().__init__()
        if not isinstance(config, TransformerConfig):
            raise TypeError(f"config: expected a TransformerConfig, got {type(config).__name__}")
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        for name, p in self.named_parameters():  # Xavier on matrices, as in torch.nn.Transformer
            if p.dim() > 1 and "norm" not in name:
                nn.init.xavier_uniform_(p)

    def _check(self, src: torch.Tensor, src_mask: Optional[torch.Tensor]) -> None:
        dims = check_shape(src, ("B", "S"), "src")
        if src_mask is not None:
            check_shape(src_mask, (dims["B"], dims["S"]), "src_mask")
            if src_mask.dtype != torch.bool:
                raise TypeError(f"src_mask: expected a bool tensor (True = real token), got {src_mask.dtype}")

    def encode(self, src: torch.Tensor, src_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """src (B, S), src_mask (B, S) -> memory (B, S, C)."""
        self._check(src, src_mask)
        return self.encoder(src, src_mask)

    def forward(self, src: torch.Tensor, src_mask: Optional[torch.Tensor], tgt_in: torch.Tensor) -> torch.Tensor:
        """src, src_mask (B, S), tgt_in (B, T) (``<bos> y``) -> logits (B, T, V) for ``y <eos>``.
        All T positions are computed at once: the causal mask stands in for the RNN's loop."""
        self._check(src, src_mask)
        check_shape(tgt_in, (src.shape[0], "T"), "tgt_in")
        return self.decoder(tgt_in, self.encoder(src, src_mask), src_mask)

    def start(self, src: torch.Tensor, src_mask: Optional[torch.Tensor] = None) -> dict:
        """Encode once for decoding: a state dict of tensors whose first axis is B."""
        if src_mask is None:
            src_mask = torch.ones_like(src, dtype=torch.bool)
        return {"memory": self.encode(src, src_mask), "src_mask": src_mask}

    @torch.no_grad()
    def cross_attention_weights(self, src: torch.Tensor, src_mask: Optional[torch.Tensor],
                                tgt_in: torch.Tensor) -> list[torch.Tensor]:
        """The cross-attention weights of every decoder layer under teacher forcing, a list of
        (B, H, T, S) tensors: where each target position looks in the source. Training and
        decoding never materialise them (fast backend); this re-runs each layer's cross-attention
        on the inputs it received, with ``need_weights=True``."""
        seen = []
        hooks = [layer.cross_attn.register_forward_hook(
            lambda module, args, kwargs, out: seen.append((module, args, kwargs)), with_kwargs=True)
            for layer in self.decoder.layers]
        try:
            self(src, src_mask, tgt_in)
        finally:
            for hook in hooks:
                hook.remove()
        return [module(*args, mask=kwargs.get("mask"))[1] for module, args, kwargs in seen]

    def step(self, prefix: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """prefix (N, t) ids so far (starting with bos) -> log-probabilities of the next token (N, V)
        and the unchanged state. The whole prefix is re-run each step (no cache; chapter 07 adds one)."""
        logits = self.decoder(prefix, state["memory"], state["src_mask"])  # (N, t, V)
        return torch.log_softmax(logits[:, -1], dim=-1), state


# --- training: label smoothing and the warm-up schedule -----------------------------------------

def label_smoothed_cross_entropy(logits: torch.Tensor, target: torch.Tensor, smoothing: float = 0.1,
                                 ignore_index: int = 0) -> torch.Tensor:
    """Cross-entropy against a smoothed target (Szegedy et al., 2016; used by Vaswani et al., 2017):
    the true class gets 1 - smoothing + smoothing / V, every class smoothing / V::

        loss = (1 - eps) * (-log p_y) + eps * mean_k(-log p_k)

    logits (N, V), target (N,) ids; targets equal to ``ignore_index`` count for nothing; the mean
    is over the others. Equal to ``F.cross_entropy(logits, target, label_smoothing=eps,
    ignore_index=...)`` (tested); written out so the formula is visible.
    """
    N = check_shape(logits, ("N", "V"), "logits")["N"]
    check_shape(target, (N,), "target")
    check_probability(smoothing, "smoothing")
    keep = target != ignore_index
    log_p = torch.log_softmax(logits[keep], dim=-1)                      # (N_kept, V)
    nll = -log_p.gather(1, target[keep][:, None])[:, 0]                  # -log p_y
    uniform = -log_p.mean(dim=-1)                                        # mean_k -log p_k
    return ((1 - smoothing) * nll + smoothing * uniform).mean()


def transformer_lr(step: int, d_model: int, warmup: int, factor: float = 1.0) -> float:
    """The schedule of Vaswani et al. (2017): linear warm-up for ``warmup`` steps, then decay as
    1/sqrt(step)::

        lr = factor * d_model^-0.5 * min(step^-0.5, step * warmup^-1.5),   step = 1, 2, ...

    The peak, at step = warmup, is factor * (d_model * warmup)^-0.5.
    """
    for name, value in (("step", step), ("d_model", d_model), ("warmup", warmup)):
        check_int(value, name)
    return factor * d_model ** -0.5 * min(step ** -0.5, step * warmup ** -1.5)


def warmup_schedule(optimizer: torch.optim.Optimizer, d_model: int, warmup: int,
                    factor: float = 1.0) -> torch.optim.lr_scheduler.LambdaLR:
    """A scheduler that sets the learning rate to :func:`transformer_lr` (step counted from 1),
    whatever lr the optimizer was built with. Call ``scheduler.step()`` after every batch."""
    transformer_lr(1, d_model, warmup, factor)  # check the arguments now, not at the first step
    lambdas = [lambda s, base=group["lr"]: transformer_lr(s + 1, d_model, warmup, factor) / base
               for group in optimizer.param_groups]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)


def transformer_loss(model: nn.Module, batch: Sequence[torch.Tensor], label_smoothing: float = 0.1) -> torch.Tensor:
    """Teacher-forcing loss with label smoothing on a batch (src, src_mask, tgt_in, tgt_out);
    ``model.config.pad_id`` in tgt_out is ignored. With ``label_smoothing=0`` it is
    ``seq2seq.teacher_forcing_loss``."""
    if len(batch) != 4:
        raise ValueError(f"batch: expected (src, src_mask, tgt_in, tgt_out), got {len(batch)} tensors")
    src, src_mask, tgt_in, tgt_out = batch
    logits = model(src, src_mask, tgt_in)                                 # (B, T, V)
    check_shape(tgt_out, tuple(logits.shape[:2]), "tgt_out")
    return label_smoothed_cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1),
                                        label_smoothing, ignore_index=model.config.pad_id)


def train_transformer(model: Seq2SeqTransformer, train: EncodedPairs, *, epochs: int, warmup: int = 400,
                      factor: float = 1.0, label_smoothing: float = 0.1, **kwargs) -> History:
    """Train as in the paper, scaled down: Adam (beta2 = 0.98, eps = 1e-9), the warm-up schedule
    (:func:`warmup_schedule`) and label smoothing, through the one wrapper of the course,
    ``course_lib.seq2seq.train_seq2seq`` (length-grouped batches; ``batch_size``, ``val``, ``seed``,
    ``clip_grad``, ``progress`` go there). The validation loss uses the same smoothed loss."""
    if not isinstance(model, Seq2SeqTransformer):
        raise TypeError(f"model: expected a Seq2SeqTransformer, got {type(model).__name__}")
    optimizer = torch.optim.Adam(model.parameters(), lr=1.0, betas=(0.9, 0.98), eps=1e-9)
    scheduler = warmup_schedule(optimizer, model.config.d_model, warmup, factor)

    def loss_fn(m: nn.Module, batch: Sequence[torch.Tensor]) -> torch.Tensor:
        return transformer_loss(m, batch, label_smoothing)

    return train_seq2seq(model, train, epochs=epochs, loss_fn=loss_fn, optimizer=optimizer,
                         scheduler=scheduler, pad_id=model.config.pad_id, **kwargs)
