"""Sequence to sequence with recurrent networks (chapter 03): an encoder reads the source,
a decoder writes the target one token at a time.

- :class:`Encoder`: embedding + GRU over the source; its last state summarises the whole source.
- :class:`ContextDecoder` (chapter 03; Cho et al., 2014; Sutskever et al., 2014): that one fixed
  context vector is all the decoder ever sees of the source.
- Chapter 04's attention decoder lives in ``course_lib.attention_rnn`` (it builds on this module).
- Training with teacher forcing (:func:`teacher_forcing_loss`, :func:`train_seq2seq`).
- Search: :func:`greedy_decode` and :func:`beam_search` work with *any* model that offers
  ``step(prefix, state) -> (log_probs, state)``, the Transformer of chapter 06 included.
- Metrics: :func:`exact_match`, :func:`bleu` (our own, checked against sacrebleu), :func:`exact_match_by_length`.

Glossary: B batch, S source length, T target length, V vocabulary, K beam size,
N = B or B*K rows during search, d_hidden the GRU width.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .data import EncodedPairs, batches, length_grouped_batches, pad_sequences
from .train import History, fit
from .utils import check_choice, check_int, check_shape

ATTENTION_KINDS = ("none", "additive", "dot", "general")


@dataclass
class Seq2SeqConfig:
    src_vocab_size: int = 64    # source V: set from the source vocabulary
    tgt_vocab_size: int = 64    # target V: set from the target vocabulary
    d_embed: int = 32           # width of the token embeddings (source and target)
    d_hidden: int = 128         # width of the encoder and decoder GRU states = the context vector
    attention: str = "none"     # "none": fixed context (chapter 03); "additive" (Bahdanau),
                                # "dot" or "general" (Luong): attention decoder (chapter 04)
    d_attention: int = 128      # hidden width of the additive scorer (unused by the others)

    def __post_init__(self):
        for name in ("src_vocab_size", "tgt_vocab_size", "d_embed", "d_hidden", "d_attention"):
            check_int(getattr(self, name), f"config.{name}")
        check_choice(self.attention, "config.attention", ATTENTION_KINDS)


def _check_source(src: torch.Tensor, src_mask: torch.Tensor) -> dict:
    dims = check_shape(src, ("B", "S"), "src")
    check_shape(src_mask, (dims["B"], dims["S"]), "src_mask")
    if src_mask.dtype != torch.bool:
        raise TypeError(f"src_mask: expected a bool tensor (True = real token), got {src_mask.dtype}")
    lengths = src_mask.sum(1)
    if bool((lengths == 0).any()):
        raise ValueError("src_mask: expected at least one real token per source, got an empty row")
    # the encoder packs sequences by length, so the real tokens must come first
    if not torch.equal(src_mask, torch.arange(dims["S"], device=src.device)[None] < lengths[:, None]):
        raise ValueError("src_mask: expected right padding (True...True False...False in every row), "
                         "got a row with False before True")
    return dims


# --- the encoder --------------------------------------------------------------------------------

class Encoder(nn.Module):
    """Embedding + one GRU layer over the source. Padding is skipped (packed sequences), so the
    final state of each row is the state after its last real token."""

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.embed = nn.Embedding(config.src_vocab_size, config.d_embed, padding_idx=0)
        self.rnn = nn.GRU(config.d_embed, config.d_hidden, batch_first=True)

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """src (B, S) ids, src_mask (B, S) True on real tokens -> states (B, S, d_hidden), zero on
        padding, and the final state (B, d_hidden)."""
        dims = _check_source(src, src_mask)
        lengths = src_mask.sum(1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(src), lengths, batch_first=True,
                                                   enforce_sorted=False)
        states, final = self.rnn(packed)
        states, _ = nn.utils.rnn.pad_packed_sequence(states, batch_first=True, total_length=dims["S"])
        return states, final[0]


# --- decoders: start(...) -> state; step(prev_ids, state) -> (logits, state, weights) ------------

class ContextDecoder(nn.Module):
    """The decoder of Cho et al. (2014): the encoder's final state c is the initial state and is
    fed again at every step, and it is all the decoder knows about the source::

        s_0 = c,   s_t = GRU([embed(y_{t-1}); c], s_{t-1}),   logits_t = W_out [s_t; c]
    """

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.embed = nn.Embedding(config.tgt_vocab_size, config.d_embed, padding_idx=0)
        self.rnn = nn.GRU(config.d_embed + config.d_hidden, config.d_hidden, batch_first=True)
        self.out = nn.Linear(2 * config.d_hidden, config.tgt_vocab_size)

    def start(self, states: torch.Tensor, final: torch.Tensor, src_mask: torch.Tensor) -> dict:
        """The decoding state before the first step; only the context c = final (B, d_hidden) is kept."""
        return {"s": final, "context": final}

    def step(self, prev_ids: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict, None]:
        """prev_ids (N,) -> logits (N, V), the new state, no attention weights."""
        x = torch.cat([self.embed(prev_ids), state["context"]], dim=-1)   # (N, d_embed + d_hidden)
        _, s = self.rnn(x[:, None], state["s"][None])                      # one step of the GRU
        s = s[0]                                                           # (N, d_hidden)
        logits = self.out(torch.cat([s, state["context"]], dim=-1))        # (N, V)
        return logits, {"s": s, "context": state["context"]}, None

    def forward(self, tgt_in: torch.Tensor, state: dict) -> tuple[torch.Tensor, None]:
        """Teacher forcing: tgt_in (B, T) -> logits (B, T, V). The context does not depend on the
        step, so all T steps run as one call of the fused GRU (the same maths as T calls of step)."""
        T = tgt_in.shape[1]
        context = state["context"][:, None].expand(-1, T, -1)               # (B, T, d_hidden)
        x = torch.cat([self.embed(tgt_in), context], dim=-1)               # (B, T, d_embed + d_hidden)
        s, _ = self.rnn(x, state["s"][None])                               # (B, T, d_hidden)
        return self.out(torch.cat([s, context], dim=-1)), None


class Seq2Seq(nn.Module):
    """Encoder + :class:`ContextDecoder` (``config.attention == "none"``); chapter 04's
    ``AttentionSeq2Seq`` swaps in the attention decoder. Offers ``start``/``step`` for the search
    functions."""

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        if not isinstance(config, Seq2SeqConfig):
            raise TypeError(f"config: expected a Seq2SeqConfig, got {type(config).__name__}")
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = self.make_decoder(config)

    def make_decoder(self, config: Seq2SeqConfig) -> nn.Module:
        """The fixed-context decoder; chapter 04's ``course_lib.attention_rnn.AttentionSeq2Seq``
        overrides this with the attention decoder."""
        if config.attention != "none":
            raise ValueError(f"config.attention: Seq2Seq has chapter 03's fixed-context decoder and expects "
                             f"'none', got {config.attention!r}; for attention use "
                             "course_lib.attention_rnn.AttentionSeq2Seq")
        return ContextDecoder(config)

    def start(self, src: torch.Tensor, src_mask: torch.Tensor) -> dict:
        """Encode the source: src, src_mask (B, S) -> the decoder's initial state (a dict of tensors
        whose first axis is B)."""
        states, final = self.encoder(src, src_mask)
        return self.decoder.start(states, final, src_mask)

    def forward_with_weights(self, src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor
                             ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Teacher forcing: src, src_mask (B, S), tgt_in (B, T) -> logits (B, T, V) and the attention
        weights (B, T, S) (None without attention)."""
        dims = check_shape(src, ("B", "S"), "src")
        check_shape(tgt_in, (dims["B"], "T"), "tgt_in")
        return self.decoder(tgt_in, self.start(src, src_mask))

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """src, src_mask (B, S), tgt_in (B, T) (``<bos> y``) -> logits (B, T, V) for ``y <eos>``."""
        return self.forward_with_weights(src, src_mask, tgt_in)[0]

    def step(self, prefix: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """One decoding step for the search functions: prefix (N, t) ids so far (an RNN needs only
        the last one) -> log-probabilities of the next token (N, V) and the new state."""
        logits, state, _ = self.decoder.step(prefix[:, -1], state)
        return torch.log_softmax(logits, dim=-1), state


def teacher_forcing_loss(model: nn.Module, batch: Sequence[torch.Tensor], pad_id: int = 0) -> torch.Tensor:
    """Mean cross-entropy of the next target token given the *true* previous ones.

    ``batch`` is (src, src_mask, tgt_in, tgt_out) as in :class:`course_lib.data.EncodedPairs`;
    ``model(src, src_mask, tgt_in)`` gives logits (B, T, V); ``pad_id`` in tgt_out is ignored.
    """
    if len(batch) != 4:
        raise ValueError(f"batch: expected (src, src_mask, tgt_in, tgt_out), got {len(batch)} tensors")
    src, src_mask, tgt_in, tgt_out = batch
    dims = check_shape(tgt_in, ("B", "T"), "tgt_in")
    check_shape(tgt_out, (dims["B"], dims["T"]), "tgt_out")
    logits = model(src, src_mask, tgt_in)                                   # (B, T, V)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1), ignore_index=pad_id)


def train_seq2seq(model: nn.Module, train: EncodedPairs, *, epochs: int, batch_size: int = 64,
                  lr: float = 3e-3, val: Optional[EncodedPairs] = None, seed: int = 0,
                  clip_grad: Optional[float] = 1.0, progress: bool = True,
                  loss_fn: Callable[[nn.Module, Sequence[torch.Tensor]], torch.Tensor] = teacher_forcing_loss,
                  optimizer: Optional[torch.optim.Optimizer] = None, scheduler=None,
                  pad_id: int = 0) -> History:
    """Train any encoder-decoder on (src, src_mask, tgt_in, tgt_out) pairs; the one wrapper of
    chapters 03, 04 and 06. Returns the :class:`course_lib.train.History`.

    Fresh batches each epoch, grouped by source length (:func:`course_lib.data.length_grouped_batches`,
    seeded by ``seed`` and the epoch, so padding stays small). By default Adam at ``lr`` with the
    learning rate decayed to a tenth along a cosine, and :func:`teacher_forcing_loss`; chapter
    06's ``train_transformer`` passes the paper's optimizer, warm-up schedule and smoothed loss.
    The validation loss uses ``loss_fn`` too.
    """
    if not isinstance(train, tuple) or len(train) != 4:
        raise TypeError(f"train: expected EncodedPairs (src, src_mask, tgt_in, tgt_out), got {type(train).__name__}")
    check_int(epochs, "epochs")
    check_int(batch_size, "batch_size")
    check_int(seed, "seed", minimum=0)
    if optimizer is None:
        steps = epochs * math.ceil(train[0].shape[0] / batch_size)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps, eta_min=lr / 10)

    def epoch_batches(epoch: int):
        return length_grouped_batches(*train, batch_size=batch_size, seed=seed * 100_003 + epoch,
                                      pad_id=pad_id)

    val_data = None if val is None else list(batches(*val, batch_size=256, shuffle=False))
    return fit(model, epoch_batches, loss_fn, epochs=epochs, lr=lr, val_data=val_data,
               optimizer=optimizer, scheduler=scheduler, clip_grad=clip_grad, progress=progress,
               desc=type(model).__name__)


# --- search: any model with step(prefix, state) -> (log_probs, state) ---------------------------
# ``state`` is a tensor or a (nested) dict/list/tuple of tensors whose first axis is the row (N);
# other leaves (None, ints) pass through. Beam search copies rows K times and reorders them.

StepFn = Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]]


def _map_state(state: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    if isinstance(state, torch.Tensor):
        return fn(state)
    if isinstance(state, dict):
        return {k: _map_state(v, fn) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(_map_state(v, fn) for v in state)
    return state


def _state_device(state: Any) -> torch.device:
    found = []
    _map_state(state, lambda t: found.append(t.device) or t)
    return found[0] if found else torch.device("cpu")


def _check_search_args(batch_size: int, bos_id: int, eos_id: int, max_len: int, pad_id: int) -> None:
    for name, value, low in (("batch_size", batch_size, 1), ("max_len", max_len, 1), ("bos_id", bos_id, 0),
                             ("eos_id", eos_id, 0), ("pad_id", pad_id, 0)):
        check_int(value, name, minimum=low)


def _checked_step(step: StepFn, prefix: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
    out = step(prefix, state)
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], torch.Tensor)):
        raise TypeError("step: expected step(prefix, state) to return (log_probs (N, V), state), "
                        f"got {type(out).__name__}")
    log_probs, state = out
    check_shape(log_probs, (prefix.shape[0], None), "log_probs returned by step")
    return log_probs, state


@torch.no_grad()
def greedy_decode(step: StepFn, state: Any, batch_size: int, *, bos_id: int, eos_id: int,
                  max_len: int, pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick the most likely next token at every step and feed it back.

    ``step(prefix (B, t), state) -> (log_probs (B, V), state)``. Returns ids (B, L) without the
    bos, each row ending at its first eos and padded with ``pad_id`` after it (L <= max_len), and
    the log-probability of each row, sum_t log p(y_t | y_<t, x), eos included (B,). A row that
    reaches ``max_len`` without eos stops there with the score of its max_len tokens.
    """
    _check_search_args(batch_size, bos_id, eos_id, max_len, pad_id)
    device = _state_device(state)
    prefix = torch.full((batch_size, 1), bos_id, dtype=torch.long, device=device)
    scores = torch.zeros(batch_size, device=device)
    finished = torch.zeros(batch_size, dtype=torch.bool, device=device)
    for _ in range(max_len):
        log_probs, state = _checked_step(step, prefix, state)
        best, token = log_probs.max(dim=-1)                                 # (B,), (B,)
        token = token.masked_fill(finished, pad_id)                         # done rows only pad
        scores = scores + best.masked_fill(finished, 0.0)
        prefix = torch.cat([prefix, token[:, None]], dim=1)
        finished = finished | (token == eos_id)
        if bool(finished.all()):
            break
    return prefix[:, 1:], scores


@torch.no_grad()
def beam_search(step: StepFn, state: Any, batch_size: int, *, beam_size: int, bos_id: int,
                eos_id: int, max_len: int, pad_id: int = 0, length_penalty: float = 0.0,
                return_all: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the ``beam_size`` (K) most likely prefixes of each row, extend each by every token,
    keep the K best of the K * V candidates, until all K end in eos or ``max_len`` is reached.

    Hypotheses are ranked by their sum of log-probabilities divided by ``length ** length_penalty``
    (length counts the tokens written, eos included). With the default 0 that is the plain sum,
    the same score as :func:`greedy_decode`, which favours short outputs since every token adds a
    negative term; 1 ranks by the mean log-probability per token (length normalisation, Wu et
    al., 2016, use a smoothed form of it). A finished hypothesis keeps its score and its place in
    the beam, and can be pushed out only by a better one. ``state`` is copied K times along its
    first axis. Returns the best ids (B, L) and their **unnormalised** log-probabilities (B,), as
    :func:`greedy_decode`; with ``return_all``, all K hypotheses in rank order: ids (B, K, L) and
    log-probabilities (B, K). ``beam_size=1`` is greedy whatever the penalty.
    """
    _check_search_args(batch_size, bos_id, eos_id, max_len, pad_id)
    check_int(beam_size, "beam_size")
    if isinstance(length_penalty, bool) or not isinstance(length_penalty, (int, float)) \
            or not 0 <= length_penalty <= 2:
        raise ValueError(f"length_penalty: expected a number from 0 to 2, got {length_penalty!r}")
    B, K = batch_size, beam_size
    device = _state_device(state)
    state = _map_state(state, lambda t: t.repeat_interleave(K, dim=0))     # rows b*K .. b*K+K-1
    prefix = torch.full((B * K, 1), bos_id, dtype=torch.long, device=device)
    scores = torch.zeros(B, K, device=device)
    scores[:, 1:] = float("-inf")            # the K copies start equal: let only one of them grow
    finished = torch.zeros(B * K, dtype=torch.bool, device=device)
    lengths = torch.zeros(B * K, device=device)                            # tokens written so far
    for _ in range(max_len):
        log_probs, state = _checked_step(step, prefix, state)             # (B*K, V)
        V = log_probs.shape[-1]
        # a finished hypothesis may only be followed by pad, at no cost: it keeps its score
        pad_only = torch.full_like(log_probs[0], float("-inf"))
        pad_only[pad_id] = 0.0
        log_probs = torch.where(finished[:, None], pad_only, log_probs)
        candidates = (scores.reshape(B * K, 1) + log_probs).reshape(B, K * V)
        new_lengths = (lengths + (~finished).float())[:, None].expand(B * K, V).reshape(B, K * V)
        ranked = candidates / new_lengths ** length_penalty                  # (B, K*V)
        _, index = ranked.topk(min(K, K * V), dim=-1)                       # (B, K), best first
        scores = candidates.gather(1, index)                                # log p of the kept ones
        parent = torch.div(index, V, rounding_mode="floor")                 # which hypothesis
        token = (index % V).reshape(-1)                                     # which next token
        rows = (torch.arange(B, device=device)[:, None] * K + parent).reshape(-1)
        prefix = torch.cat([prefix[rows], token[:, None]], dim=1)
        state = _map_state(state, lambda t, rows=rows: t.index_select(0, rows))
        lengths = new_lengths.gather(1, index).reshape(-1)
        finished = finished[rows] | (token == eos_id)
        if bool(finished.all()):
            break
    ids = prefix[:, 1:].reshape(B, K, -1)
    if return_all:
        return ids, scores
    return ids[:, 0], scores[:, 0]


@torch.no_grad()
def sequence_log_prob(step: StepFn, state: Any, targets: torch.Tensor, *, bos_id: int, eos_id: int,
                      pad_id: int = 0) -> torch.Tensor:
    """The score the searches use, for given sequences: targets (B, L) (ending in eos, then pad)
    -> sum_t log p(y_t | y_<t, x) over the tokens up to and including the first eos (B,)."""
    B, L = check_shape(targets, ("B", "L"), "targets").values()
    device = _state_device(state)
    prefix = torch.full((B, 1), bos_id, dtype=torch.long, device=device)
    total = torch.zeros(B, device=device)
    alive = torch.ones(B, dtype=torch.bool, device=device)
    for t in range(L):
        log_probs, state = _checked_step(step, prefix, state)
        token = targets[:, t]
        total = total + log_probs.gather(1, token[:, None])[:, 0].masked_fill(~alive, 0.0)
        alive = alive & (token != eos_id) & (token != pad_id)
        prefix = torch.cat([prefix, token[:, None]], dim=1)
        if not bool(alive.any()):
            break
    return total


@torch.no_grad()
def decode(model: nn.Module, src: torch.Tensor, src_mask: torch.Tensor, *, bos_id: int, eos_id: int,
           max_len: int, beam_size: int = 1, batch_size: int = 512, pad_id: int = 0,
           length_penalty: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy (``beam_size=1``) or beam search (with ``length_penalty``, see :func:`beam_search`)
    for every row of src, src_mask (B, S), in batches, in eval mode. ``model`` offers
    ``start(src, src_mask)`` and ``step(prefix, state)``. Returns ids (B, L), padded with
    ``pad_id`` after each row's eos, and log-probabilities (B,)."""
    _check_source(src, src_mask)
    was_training = model.training
    model.eval()
    ids, scores = [], []
    for start in range(0, src.shape[0], batch_size):
        s, m = src[start:start + batch_size], src_mask[start:start + batch_size]
        S = int(m.sum(1).max())
        state = model.start(s[:, :S], m[:, :S])
        if beam_size == 1:
            out = greedy_decode(model.step, state, s.shape[0], bos_id=bos_id, eos_id=eos_id,
                                max_len=max_len, pad_id=pad_id)
        else:
            out = beam_search(model.step, state, s.shape[0], beam_size=beam_size, bos_id=bos_id,
                              eos_id=eos_id, max_len=max_len, pad_id=pad_id, length_penalty=length_penalty)
        ids.append(out[0])
        scores.append(out[1])
    model.train(was_training)
    width = max(i.shape[1] for i in ids)
    ids = [F.pad(i, (0, width - i.shape[1]), value=pad_id) for i in ids]
    return torch.cat(ids), torch.cat(scores)


def translate(model: nn.Module, sources: Sequence[str], src_vocab, tgt_vocab, *, max_len: int = 100,
              beam_size: int = 1, batch_size: int = 512) -> list[str]:
    """Translate strings: encode with ``src_vocab``, :func:`decode`, decode with ``tgt_vocab``."""
    if isinstance(sources, str) or len(sources) == 0:
        raise ValueError("sources: expected a non-empty list of strings")
    src, src_mask = pad_sequences([src_vocab.encode(s) for s in sources], pad_id=src_vocab.pad_id)
    ids, _ = decode(model, src, src_mask, bos_id=tgt_vocab.bos_id, eos_id=tgt_vocab.eos_id,
                    max_len=max_len, beam_size=beam_size, batch_size=batch_size, pad_id=tgt_vocab.pad_id)
    return [tgt_vocab.decode(row) for row in ids]


# --- metrics ------------------------------------------------------------------------------------

def _check_hyps_refs(hypotheses: Sequence[str], references: Sequence[str]) -> None:
    for name, texts in (("hypotheses", hypotheses), ("references", references)):
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TypeError(f"{name}: expected a list of strings, got {type(texts).__name__}")
    if len(hypotheses) != len(references) or not hypotheses:
        raise ValueError(f"hypotheses, references: expected two non-empty lists of the same length, "
                         f"got {len(hypotheses)} and {len(references)}")


def exact_match(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Fraction of hypotheses identical to their reference (0 to 1)."""
    _check_hyps_refs(hypotheses, references)
    return sum(h == r for h, r in zip(hypotheses, references)) / len(references)


def _tokens(text: str, tokenize: str) -> list[str]:
    # "char": characters without the spaces (sacrebleu's "char"); "none": whitespace-separated words
    return list(text.replace(" ", "")) if tokenize == "char" else text.split()


def bleu(hypotheses: Sequence[str], references: Sequence[str], tokenize: str = "char",
         max_n: int = 4) -> float:
    """Corpus BLEU (Papineni et al., 2002), 0 to 100, one reference per hypothesis:
    100 * BP * exp(mean_n log p_n), where p_n is the clipped n-gram precision summed over the
    corpus and BP = min(1, exp(1 - r / c)) the brevity penalty for c hypothesis and r reference
    tokens. No smoothing: 0 when some order has no match. ``tokenize="char"`` counts character
    n-grams (the outputs here are single words or dates, where word n-grams say little more than
    exact match), ``"none"`` whitespace-separated words. Equal to sacrebleu (Post, 2018) with the
    same tokenizer and ``smooth_method="none"`` (tested)."""
    _check_hyps_refs(hypotheses, references)
    check_choice(tokenize, "tokenize", ("char", "none"))
    check_int(max_n, "max_n")
    matches, totals, hyp_len, ref_len = [0] * max_n, [0] * max_n, 0, 0
    for hyp, ref in zip(hypotheses, references):
        hyp, ref = _tokens(hyp, tokenize), _tokens(ref, tokenize)
        hyp_len, ref_len = hyp_len + len(hyp), ref_len + len(ref)
        for n in range(1, max_n + 1):
            hyp_ngrams = Counter(tuple(hyp[i:i + n]) for i in range(len(hyp) - n + 1))
            ref_ngrams = Counter(tuple(ref[i:i + n]) for i in range(len(ref) - n + 1))
            matches[n - 1] += sum((hyp_ngrams & ref_ngrams).values())    # clipped by the reference
            totals[n - 1] += sum(hyp_ngrams.values())
    if hyp_len == 0 or min(matches) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals)) / max_n
    brevity = min(1.0, math.exp(1 - ref_len / hyp_len))
    return 100 * brevity * math.exp(log_precision)


def exact_match_by_length(hypotheses: Sequence[str], references: Sequence[str], lengths: Sequence[int],
                          edges: Sequence[int]) -> list[tuple[int, int, int, float]]:
    """Exact match per length bucket: ``edges`` [e0, e1, ..., ek] make buckets e0 <= length < e1,
    ...; returns (low, high, count, accuracy) for each bucket (accuracy nan if it is empty)."""
    _check_hyps_refs(hypotheses, references)
    if len(lengths) != len(references):
        raise ValueError(f"lengths: expected {len(references)} lengths, got {len(lengths)}")
    if len(edges) < 2 or list(edges) != sorted(edges):
        raise ValueError(f"edges: expected at least two increasing bucket edges, got {list(edges)}")
    out = []
    for low, high in zip(edges[:-1], edges[1:]):
        hits = [h == r for h, r, n in zip(hypotheses, references, lengths) if low <= n < high]
        out.append((low, high, len(hits), sum(hits) / len(hits) if hits else float("nan")))
    return out
