"""BERT (Devlin et al., 2019, "BERT: Pre-training of deep bidirectional Transformers for language
understanding"), chapter 08: an encoder-only Transformer pretrained with a masked language model
and next-sentence prediction, then fine-tuned with a small head.

In dependency order: the word-level input pipeline ([CLS] A [SEP] B [SEP] with segment ids); the
config; the embeddings (token + position + segment, LayerNorm); the model (post-norm encoder
layers of chapter 06 with GELU, the pooler, the two pretraining heads); ``from_hf``; the 80-10-10
masking; the pretraining loss; the classifier for fine-tuning.

Glossary: B batch, T sequence length, C = d_model channels, H heads, V vocabulary.
``attention_mask`` (B, T) is bool, True on real tokens (padding False), as ``course_lib.data.pad_sequences``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, NamedTuple, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .attention import padding_mask
from .data import pad_sequences
from .text import SPECIALS, Vocab
from .transformer import EncoderLayer
from .utils import check_int, check_probability, check_shape

CLS, SEP, MASK = "[CLS]", "[SEP]", "[MASK]"
_TOKEN_RE = re.compile(r"\w+|[^\w\s]")


# --- the input pipeline ---------------------------------------------------------------------------

def word_tokens(text: str) -> list[str]:
    """Lower-cased words and single punctuation marks: ``"Use str.split()!"`` -> use str . split ( ) !"""
    if not isinstance(text, str):
        raise TypeError(f"text: expected a str, got {type(text).__name__}")
    return _TOKEN_RE.findall(text.lower())


def build_vocab(texts: Iterable[str], min_freq: int = 2) -> Vocab:
    """A word-level ``course_lib.text.Vocab`` over :func:`word_tokens` of ``texts``, with BERT's
    [CLS], [SEP] and [MASK] right after the course's four specials (ids 4, 5, 6)."""
    check_int(min_freq, "min_freq")
    counted = Vocab.build([" ".join(word_tokens(t)) for t in texts], level="word", min_freq=min_freq)
    return Vocab([CLS, SEP, MASK] + counted.itos[4:], level="word")


def special_ids(vocab: Vocab) -> list[int]:
    """Ids that masking must never choose: pad, bos, eos, unk, [CLS], [SEP], [MASK]."""
    return [vocab.stoi[t] for t in (*SPECIALS, CLS, SEP, MASK) if t in vocab.stoi]


def encode_pair(vocab: Vocab, a: str, b: Optional[str] = None, max_len: int = 64) -> tuple[list[int], list[int]]:
    """``[CLS] a [SEP]`` or ``[CLS] a [SEP] b [SEP]`` as ids with segment ids (0 for [CLS], a and
    its [SEP]; 1 for b and its [SEP]). The longer text is cut first until it fits ``max_len``."""
    check_int(max_len, "max_len", minimum=5)
    ta = [vocab.stoi.get(t, vocab.unk_id) for t in word_tokens(a)]
    tb = [] if b is None else [vocab.stoi.get(t, vocab.unk_id) for t in word_tokens(b)]
    room = max_len - (3 if b is not None else 2)
    while len(ta) + len(tb) > room:
        (ta if len(ta) >= len(tb) else tb).pop()
    cls, sep = vocab.stoi[CLS], vocab.stoi[SEP]
    ids = [cls] + ta + [sep] + ((tb + [sep]) if b is not None else [])
    segments = [0] * (len(ta) + 2) + ([1] * (len(tb) + 1) if b is not None else [])
    return ids, segments


class Encoded(NamedTuple):
    """A padded batch: ids, segments (B, T) long; attention_mask (B, T) bool, True on real tokens."""
    ids: torch.Tensor
    segments: torch.Tensor
    attention_mask: torch.Tensor


def encode_batch(vocab: Vocab, texts: Sequence[str], pairs_with: Optional[Sequence[str]] = None,
                 max_len: int = 64) -> Encoded:
    """:func:`encode_pair` for every text (and its partner in ``pairs_with``), padded with pad_id."""
    if len(texts) == 0:
        raise ValueError("texts: expected at least one text, got none")
    if pairs_with is not None and len(pairs_with) != len(texts):
        raise ValueError(f"pairs_with: expected {len(texts)} texts like texts, got {len(pairs_with)}")
    encoded = [encode_pair(vocab, a, None if pairs_with is None else pairs_with[i], max_len)
               for i, a in enumerate(texts)]
    ids, attention_mask = pad_sequences([e[0] for e in encoded], pad_id=vocab.pad_id)
    segments, _ = pad_sequences([e[1] for e in encoded], pad_id=0)
    return Encoded(ids, segments, attention_mask)


# --- the model ------------------------------------------------------------------------------------

@dataclass
class BERTConfig:
    vocab_size: int = 4000        # V: set from the vocabulary (BERT: 30,522 WordPieces)
    max_len: int = 128            # positions with a learned vector (BERT: 512)
    n_segments: int = 2           # segment ("token type") ids: sentence A = 0, sentence B = 1
    d_model: int = 128            # C (BERT-base 768)
    n_heads: int = 4              # H; each head has D = d_model / n_heads channels (BERT-base 12)
    n_layers: int = 4             # encoder layers (BERT-base 12)
    d_ff: int = 512               # feed-forward width, 4 C as in BERT (BERT-base 3072)
    dropout: float = 0.1          # on the embeddings, attention weights and residual branches
    layer_norm_eps: float = 1e-12  # BERT's; a smaller eps than torch's 1e-5 default
    init_std: float = 0.02        # every weight ~ N(0, init_std), BERT's initializer_range
    embedding_std: Optional[float] = None  # None = init_std; 1.0 is nn.Embedding's default (the trap of chapter 08)
    pad_id: int = 0               # padding id: attention ignores it

    def __post_init__(self):
        for name in ("vocab_size", "max_len", "n_segments", "d_model", "n_heads", "n_layers", "d_ff"):
            check_int(getattr(self, name), name)
        if self.d_model % self.n_heads:
            raise ValueError(f"n_heads: expected a divisor of d_model = {self.d_model}, got {self.n_heads}")
        check_probability(self.dropout, "dropout")
        for name in ("layer_norm_eps", "init_std"):
            if not (isinstance(getattr(self, name), float) and getattr(self, name) > 0):
                raise ValueError(f"{name}: expected a positive float, got {getattr(self, name)!r}")
        if self.embedding_std is not None and not self.embedding_std > 0:
            raise ValueError(f"embedding_std: expected a positive float or None, got {self.embedding_std!r}")

    @classmethod
    def small(cls, vocab_size: int, **overrides) -> "BERTConfig":
        """The CPU preset: 2 layers of width 64, 4 heads, d_ff 256, 64 positions; about 0.1M
        parameters plus 64 V for the embeddings. Pretrains on the pydoc corpus in CPU minutes."""
        preset = dict(max_len=64, d_model=64, n_heads=4, n_layers=2, d_ff=256)
        return cls(vocab_size=vocab_size, **{**preset, **overrides})


class BERTEmbeddings(nn.Module):
    """E = LayerNorm(token[ids] + position[t] + segment[segments]), then dropout: (B, T) -> (B, T, C)."""

    def __init__(self, config: BERTConfig):
        super().__init__()
        self.token = nn.Embedding(config.vocab_size, config.d_model, padding_idx=config.pad_id)
        self.position = nn.Embedding(config.max_len, config.d_model)
        self.segment = nn.Embedding(config.n_segments, config.d_model)
        self.norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, ids: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
        T = ids.shape[1]
        positions = torch.arange(T, device=ids.device)                      # (T,)
        x = self.token(ids) + self.position(positions)[None] + self.segment(segments)  # (B, T, C)
        return self.dropout(self.norm(x))


class BERT(nn.Module):
    """The encoder, the pooler and both pretraining heads.

    ``forward(ids, segments, attention_mask)`` returns (masked-LM logits (B, T, V), next-sentence
    logits (B, 2)); :meth:`encode` the last hidden states (B, T, C), :meth:`pool` the pooled
    [CLS] vector (B, C). The masked-LM decoder shares its weight with the token embedding.
    """

    def __init__(self, config: BERTConfig):
        super().__init__()
        self.config = config
        self.embeddings = BERTEmbeddings(config)
        self.layers = nn.ModuleList(
            EncoderLayer(d_model=config.d_model, n_heads=config.n_heads, d_ff=config.d_ff,
                         dropout=config.dropout, norm_first=False, activation="gelu")
            for _ in range(config.n_layers))
        for layer in self.layers:                       # BERT is post-norm with eps 1e-12
            layer.norm1.eps = layer.norm2.eps = config.layer_norm_eps
        self.pooler = nn.Linear(config.d_model, config.d_model)          # tanh(W h_[CLS] + b)
        self.mlm_transform = nn.Linear(config.d_model, config.d_model)   # then GELU and LayerNorm
        self.mlm_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.mlm_bias = nn.Parameter(torch.zeros(config.vocab_size))     # decoder weight = token embedding
        self.nsp = nn.Linear(config.d_model, 2)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """BERT's initialisation: linear and embedding weights ~ N(0, init_std), biases 0,
        LayerNorm (1, 0); the padding vector 0. ``embedding_std`` overrides the embeddings' std."""
        std = self.config.init_std
        emb_std = std if self.config.embedding_std is None else self.config.embedding_std
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, std)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, 0.0, emb_std)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        with torch.no_grad():
            self.embeddings.token.weight[self.config.pad_id].zero_()
            self.mlm_bias.zero_()

    def _inputs(self, ids, segments, attention_mask):
        B, T = check_shape(ids, ("B", "T"), "ids").values()
        if ids.dtype != torch.long:
            raise TypeError(f"ids: expected a torch.long tensor of token ids, got {ids.dtype}")
        if T > self.config.max_len:
            raise ValueError(f"ids: expected at most max_len = {self.config.max_len} positions, got T = {T}")
        if int(ids.min()) < 0 or int(ids.max()) >= self.config.vocab_size:
            raise ValueError(f"ids: expected ids in [0, vocab_size = {self.config.vocab_size}), "
                             f"got ids from {int(ids.min())} to {int(ids.max())}")
        segments = torch.zeros_like(ids) if segments is None else segments
        check_shape(segments, (B, T), "segments")
        if int(segments.min()) < 0 or int(segments.max()) >= self.config.n_segments:
            raise ValueError(f"segments: expected ids in [0, n_segments = {self.config.n_segments}), "
                             f"got {sorted(set(segments.unique().tolist()))}")
        if attention_mask is None:
            attention_mask = ids != self.config.pad_id
        check_shape(attention_mask, (B, T), "attention_mask")
        if attention_mask.dtype != torch.bool:
            raise TypeError(f"attention_mask: expected a bool tensor (True = real token), got {attention_mask.dtype}")
        return segments, attention_mask

    def encode(self, ids: torch.Tensor, segments: Optional[torch.Tensor] = None,
               attention_mask: Optional[torch.Tensor] = None, return_attention: bool = False):
        """ids, segments (B, T) long (segments default 0), attention_mask (B, T) bool (default
        ids != pad_id) -> hidden states (B, T, C); with ``return_attention`` also the attention
        weights of every layer, a list of (B, H, T, T)."""
        segments, attention_mask = self._inputs(ids, segments, attention_mask)
        key_mask = padding_mask(attention_mask.long(), pad_id=0)         # (B, 1, 1, T): True = attend
        x = self.embeddings(ids, segments)                                 # (B, T, C)
        maps = []
        for layer in self.layers:
            if return_attention:
                maps.append(layer.self_attn(x, mask=key_mask, need_weights=True)[1])  # (B, H, T, T)
            x = layer(x, key_mask)                                         # (B, T, C)
        return (x, maps) if return_attention else x

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (B, T, C) -> tanh(W h_[CLS] + b) (B, C): the pooled sentence vector."""
        return torch.tanh(self.pooler(hidden[:, 0]))

    def mlm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (..., C) -> masked-LM logits (..., V), decoded with the token embedding."""
        h = self.mlm_norm(F.gelu(self.mlm_transform(hidden)))
        return h @ self.embeddings.token.weight.T + self.mlm_bias

    def forward(self, ids: torch.Tensor, segments: Optional[torch.Tensor] = None,
                attention_mask: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (masked-LM logits (B, T, V), next-sentence logits (B, 2), class 0 = "B follows A")."""
        hidden = self.encode(ids, segments, attention_mask)               # (B, T, C)
        return self.mlm_logits(hidden), self.nsp(self.pool(hidden))

    @classmethod
    def from_hf(cls, model) -> "BERT":
        """A course BERT with the weights of a ``transformers.BertForPreTraining`` (absolute
        positions, GELU). Hugging Face's label 0 of the next-sentence head is "is next", as ours."""
        from transformers import BertForPreTraining

        if not isinstance(model, BertForPreTraining):
            raise TypeError(f"model: expected a transformers.BertForPreTraining, got {type(model).__name__}")
        hf = model.config
        if hf.hidden_act != "gelu" or getattr(hf, "position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"model: expected hidden_act 'gelu' and absolute positions, got "
                             f"{hf.hidden_act!r} and {getattr(hf, 'position_embedding_type', None)!r}")
        config = BERTConfig(vocab_size=hf.vocab_size, max_len=hf.max_position_embeddings,
                            n_segments=hf.type_vocab_size, d_model=hf.hidden_size,
                            n_heads=hf.num_attention_heads, n_layers=hf.num_hidden_layers,
                            d_ff=hf.intermediate_size, dropout=float(hf.hidden_dropout_prob),
                            layer_norm_eps=float(hf.layer_norm_eps),
                            pad_id=hf.pad_token_id if hf.pad_token_id is not None else 0)
        ours = cls(config)
        sd = model.state_dict()

        def copy(dst: nn.Module, prefix: str) -> None:
            dst.weight.copy_(sd[prefix + ".weight"])
            if getattr(dst, "bias", None) is not None:
                dst.bias.copy_(sd[prefix + ".bias"])

        with torch.no_grad():
            e = "bert.embeddings."
            copy(ours.embeddings.token, e + "word_embeddings")
            copy(ours.embeddings.position, e + "position_embeddings")
            copy(ours.embeddings.segment, e + "token_type_embeddings")
            copy(ours.embeddings.norm, e + "LayerNorm")
            for i, layer in enumerate(ours.layers):
                p = f"bert.encoder.layer.{i}."
                attn = layer.self_attn
                copy(attn.q_proj, p + "attention.self.query")
                copy(attn.k_proj, p + "attention.self.key")
                copy(attn.v_proj, p + "attention.self.value")
                copy(attn.out_proj, p + "attention.output.dense")
                copy(layer.norm1, p + "attention.output.LayerNorm")
                copy(layer.ff.linear1, p + "intermediate.dense")
                copy(layer.ff.linear2, p + "output.dense")
                copy(layer.norm2, p + "output.LayerNorm")
            copy(ours.pooler, "bert.pooler.dense")
            copy(ours.mlm_transform, "cls.predictions.transform.dense")
            copy(ours.mlm_norm, "cls.predictions.transform.LayerNorm")
            ours.mlm_bias.copy_(sd["cls.predictions.bias"])
            copy(ours.nsp, "cls.seq_relationship")
            if not torch.equal(sd["cls.predictions.decoder.weight"], sd[e + "word_embeddings.weight"]):
                raise ValueError("model: expected the masked-LM decoder tied to the word embeddings")
        return ours.to(next(model.parameters()).device).train(model.training)


# --- pretraining: the 80-10-10 masking and the loss -------------------------------------------------

IGNORE = -100  # the label of a position the masked-LM loss skips (F.cross_entropy's ignore_index)


def mask_tokens(ids: torch.Tensor, vocab_size: int, mask_id: int, special: Sequence[int],
                mask_prob: float = 0.15, generator: Optional[torch.Generator] = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: choose each non-special position with probability ``mask_prob``; of the
    chosen, 80 % become [MASK], 10 % a random non-special token, 10 % stay as they are.

    ids (B, T) long. Returns (inputs (B, T), labels (B, T)): labels hold the original id at the
    chosen positions and ``IGNORE`` (-100) everywhere else; ``ids`` is not modified.
    """
    check_shape(ids, ("B", "T"), "ids")
    if ids.dtype != torch.long:
        raise TypeError(f"ids: expected a torch.long tensor of token ids, got {ids.dtype}")
    check_int(vocab_size, "vocab_size", minimum=2)
    if not 0 <= mask_id < vocab_size:
        raise ValueError(f"mask_id: expected an id in [0, vocab_size = {vocab_size}), got {mask_id!r}")
    if not 0.0 < mask_prob < 1.0:
        raise ValueError(f"mask_prob: expected a probability in (0, 1), got {mask_prob!r}")
    special_t = torch.as_tensor(sorted(set(special)) or [mask_id], dtype=torch.long)
    if mask_id not in special_t.tolist():
        raise ValueError(f"special: expected the special ids to include mask_id = {mask_id}, got {list(special)}")
    allowed = torch.ones(vocab_size, dtype=torch.bool)
    allowed[special_t] = False
    candidates = allowed.nonzero()[:, 0]                                    # the ids a random token may take
    u = torch.rand(ids.shape, generator=generator)                          # (B, T): choose
    v = torch.rand(ids.shape, generator=generator)                          # (B, T): 80 / 10 / 10
    r = torch.randint(len(candidates), ids.shape, generator=generator)     # (B, T): which random token
    chosen = (u < mask_prob) & ~torch.isin(ids, special_t)
    labels = torch.where(chosen, ids, torch.full_like(ids, IGNORE))
    inputs = torch.where(chosen & (v < 0.8), torch.full_like(ids, mask_id), ids)
    inputs = torch.where(chosen & (v >= 0.8) & (v < 0.9), candidates[r], inputs)
    return inputs, labels


class PretrainingBatch(NamedTuple):
    """Masked inputs, segments, attention_mask, mlm labels (B, T) and is_next (B,) (1 = B follows A)."""
    inputs: torch.Tensor
    segments: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    is_next: torch.Tensor


def pretraining_batch(vocab: Vocab, pairs: Sequence[tuple[str, str, int]], max_len: int = 64,
                      mask_prob: float = 0.15, generator: Optional[torch.Generator] = None) -> PretrainingBatch:
    """Encode (A, B, is_next) pairs (``course_lib.data.sentence_pairs``) and mask them (80-10-10)."""
    encoded = encode_batch(vocab, [a for a, _, _ in pairs], [b for _, b, _ in pairs], max_len)
    inputs, labels = mask_tokens(encoded.ids, len(vocab), vocab.stoi[MASK], special_ids(vocab),
                                 mask_prob, generator)
    is_next = torch.tensor([y for _, _, y in pairs], dtype=torch.long)
    return PretrainingBatch(inputs, encoded.segments, encoded.attention_mask, labels, is_next)


def pretraining_loss(model: BERT, batch: PretrainingBatch, nsp: bool = True) -> torch.Tensor:
    """Masked-LM cross-entropy over the chosen positions only, plus (with ``nsp``) the
    next-sentence cross-entropy. Our NSP class 0 means "B follows A", as in Hugging Face."""
    hidden = model.encode(batch.inputs, batch.segments, batch.attention_mask)     # (B, T, C)
    chosen = batch.labels != IGNORE
    loss = F.cross_entropy(model.mlm_logits(hidden[chosen]), batch.labels[chosen])  # only (N, V) logits
    if nsp:
        loss = loss + F.cross_entropy(model.nsp(model.pool(hidden)), 1 - batch.is_next)
    return loss


@torch.no_grad()
def mlm_loss(model: BERT, batches: Iterable[PretrainingBatch]) -> float:
    """Mean masked-LM cross-entropy per chosen token over ``batches`` (eval mode)."""
    was_training, total, count = model.training, 0.0, 0
    model.eval()
    for batch in batches:
        hidden = model.encode(batch.inputs, batch.segments, batch.attention_mask)
        chosen = batch.labels != IGNORE
        total += float(F.cross_entropy(model.mlm_logits(hidden[chosen]), batch.labels[chosen], reduction="sum"))
        count += int(chosen.sum())
    model.train(was_training)
    return total / max(count, 1)


# --- fine-tuning -----------------------------------------------------------------------------------

class BERTClassifier(nn.Module):
    """A sequence classifier on a BERT encoder: logits = W dropout(pool(encode(x))) + b, (B, n_classes).

    ``pooling="cls"`` uses the pooled [CLS] vector (as BERT), ``"mean"`` the mean of the real
    tokens' hidden states. ``freeze=True`` keeps the encoder fixed (a linear probe): no gradients,
    and it stays in eval mode (no dropout) even while the head trains.
    """

    def __init__(self, bert: BERT, n_classes: int, dropout: float = 0.1, pooling: str = "cls",
                 freeze: bool = False):
        super().__init__()
        if not isinstance(bert, BERT):
            raise TypeError(f"bert: expected a course_lib.bert.BERT, got {type(bert).__name__}")
        check_int(n_classes, "n_classes", minimum=2)
        check_probability(dropout, "dropout")
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling: expected 'cls' or 'mean', got {pooling!r}")
        self.bert, self.pooling, self.freeze = bert, pooling, freeze
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(bert.config.d_model, n_classes)
        nn.init.normal_(self.head.weight, 0.0, bert.config.init_std)
        nn.init.zeros_(self.head.bias)
        if freeze:
            bert.requires_grad_(False)

    def train(self, mode: bool = True) -> "BERTClassifier":
        super().train(mode)
        if self.freeze:
            self.bert.eval()
        return self

    def features(self, ids: torch.Tensor, segments: Optional[torch.Tensor] = None,
                 attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The vector the head reads, (B, C)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            hidden = self.bert.encode(ids, segments, attention_mask)         # (B, T, C)
            if self.pooling == "cls":
                return self.bert.pool(hidden)
            real = (ids != self.bert.config.pad_id if attention_mask is None else attention_mask).float()
            return (hidden * real[..., None]).sum(1) / real.sum(1, keepdim=True)

    def forward(self, ids: torch.Tensor, segments: Optional[torch.Tensor] = None,
                attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """ids (B, T) -> class logits (B, n_classes)."""
        return self.head(self.dropout(self.features(ids, segments, attention_mask)))


def pretraining_batches(vocab: Vocab, pairs: Sequence[tuple[str, str, int]], batch_size: int,
                        max_len: int = 64, mask_prob: float = 0.15, seed: int = 0) -> list[PretrainingBatch]:
    """``pairs`` cut into masked batches of ``batch_size`` (masking drawn once, under ``seed``)."""
    check_int(batch_size, "batch_size")
    g = torch.Generator().manual_seed(seed)
    return [pretraining_batch(vocab, pairs[i:i + batch_size], max_len, mask_prob, g)
            for i in range(0, len(pairs), batch_size)]


def pretrain(model: BERT, train_batches: Sequence[PretrainingBatch], *, lr: float = 1e-3,
             warmup: int = 100, nsp: bool = True, val_batches: Optional[Sequence[PretrainingBatch]] = None,
             progress: bool = False):
    """One pass of AdamW (weight decay 0.01, as BERT) over ``train_batches`` with a linear warm-up
    to ``lr`` for ``warmup`` steps and a linear decay to 0, through ``course_lib.train.fit``.
    Returns its History (``step_loss`` per step; ``val_loss`` = masked-LM loss of ``val_batches``)."""
    from .train import fit

    check_int(warmup, "warmup", minimum=0)
    steps = len(train_batches)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / max(warmup, 1), max(0.0, (steps - s) / max(steps - warmup, 1))))
    history = fit(model, list(train_batches), lambda m, b: pretraining_loss(m, b, nsp=nsp), epochs=1,
                  optimizer=optimizer, scheduler=schedule, progress=progress, desc="pretrain")
    if val_batches is not None:
        history.val_loss.append(mlm_loss(model, val_batches))
    return history


def load_pretrained(name: str = "bert_pydoc") -> tuple[BERT, Vocab, dict]:
    """A shipped checkpoint (``course_lib.checkpoints``, sha256-checked, ``weights_only=True``):
    the model in eval mode, its vocabulary, and the rest of what was saved (config, step_loss,
    the manifest entry under "manifest")."""
    from .checkpoints import load_checkpoint

    extra = load_checkpoint(name)
    model = BERT(BERTConfig(**extra["config"]))
    load_checkpoint(name, model)
    return model.eval(), Vocab(extra["vocab"][4:], level="word"), extra


class PydocPretraining(NamedTuple):
    """The pretraining data of chapter 08: vocabulary, masked train and validation batches."""
    vocab: Vocab
    train: list
    val: list


def pydoc_pretraining(n_pairs: int, batch_size: int = 32, max_len: int = 64, seed: int = 0,
                      n_val_pairs: int = 256, vocab: Optional[Vocab] = None) -> PydocPretraining:
    """Sentence pairs of the pydoc corpus without the topic task's val and test paragraphs
    (``course_lib.data.pretraining_documents``), masked 80-10-10; the vocabulary (min_freq 2) is
    built from that text unless given. Validation: pairs from the task's *val* paragraphs, which
    pretraining never reads, masked once under a fixed seed, so a recorded loss can be reproduced."""
    from .data import pretraining_documents, sentence_pairs, split_sentences, topic_dataset

    topic = topic_dataset()
    docs = pretraining_documents(exclude=[p for p, _ in topic.val + topic.test])
    vocab = vocab or build_vocab([s for d in docs for s in d], min_freq=2)
    train = pretraining_batches(vocab, sentence_pairs(docs, n_pairs, seed=seed), batch_size, max_len, seed=seed)
    val_docs = [split_sentences(p) for p, _ in topic.val]
    val = pretraining_batches(vocab, sentence_pairs(val_docs, n_val_pairs, seed=12345), 64, max_len, seed=12345)
    return PydocPretraining(vocab, train, val)
