"""Check helpers for the exercises of chapter 03 (sequence to sequence).

One helper per exercise; each builds its inputs from ``seed``, calls the learner's function
safely, and names the usual mistake when the answer is wrong:

1. ``check_last_real_state``: the last position taken (padding), off by one, the first state,
   the mean or sum of the real states;
2. ``check_teacher_forcing_loss``: padding counted, a sum instead of a mean, a mean per sequence
   first, logits used as log-probabilities, probabilities instead of log-probabilities, the loss
   detached from the graph;
3. ``check_greedy_decode``: the predicted token not fed back, writing on after eos, the batch
   stopped at the first eos, eos left out, bos kept, the least likely token;
4. ``check_beam_step``: log-probabilities multiplied, the running score ignored, probabilities
   returned, each hypothesis extended by its own best token, not sorted best first, parent and
   token decoded wrongly, the wrong number kept, float ids;
5. a diagnosis, the length bias of summed log-probabilities (``check_longest_full_answer``,
   measured with ``course_lib.seq2seq.beam_search`` on :func:`toy_decoder`): rounded up instead of
   down, the final eos counted as a cost, the ratio inverted, probabilities compared instead of
   their products (logs), the ratio itself returned instead of a whole number.

Glossary: B batch, S source length, T target length, V vocabulary, K beam size, d_hidden width.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ..seq2seq import beam_search, greedy_decode
from .core import Feedback, call, checker, describe, expect_close, expect_tensor, generator

PAD, BOS, EOS = 0, 1, 2


_gen = generator


def _mask(lengths: list[int], S: int) -> torch.Tensor:
    return torch.arange(S)[None, :] < torch.tensor(lengths)[:, None]


# -- exercise 1: the context vector is the state after the last real token ------------------------

@checker
def check_last_real_state(last_real_state: Callable, *, seed: int = 0, lengths: tuple[int, ...] = (5, 2, 7, 3),
                          d_hidden: int = 6) -> None:
    """``last_real_state(states (B, S, d_hidden), src_mask (B, S))`` must return, for each row, the
    state at its last real token, ``states[b, lengths[b] - 1]``, shape (B, d_hidden)."""
    B, S = len(lengths), max(lengths) + 1   # one extra position: every row ends in padding
    g = _gen(3100 + seed)
    mask = _mask(list(lengths), S)
    # a GRU run over the padding keeps changing its state, so the padding positions hold other values
    states = torch.randn(B, S, d_hidden, generator=g)
    got = call(last_real_state, states, mask, name="last_real_state", hints={
        "out of bounds": "a row of length n has its last real token at index n - 1 (counting from 0).",
        "index": "a row of length n has its last real token at index n - 1 (counting from 0).",
    })
    got = expect_tensor(got, {"B": B, "d_hidden": d_hidden}, "last_real_state")
    rows = torch.arange(B)
    last = mask.sum(1) - 1
    want = states[rows, last]
    real = mask[:, :, None].float()
    expect_close(got, want, "last_real_state", mistakes={
        "you took the state at the last position, states[:, -1]; in a padded row that is a padding "
        "position. Take the state at each row's last real token, index lengths - 1 with "
        "lengths = src_mask.sum(1).": states[:, -1],
        "off by one: you took index lengths, the first padding position; counting from 0, the last "
        "real token of a row of length n is at n - 1.": lambda: states[rows, last + 1],
        "off by one: you took index lengths - 2, one before the last real token.":
            lambda: states[rows, (last - 1).clamp(min=0)],
        "you took the first state, states[:, 0]; the context vector is the state after the whole "
        "source has been read: the last real token's.": states[:, 0],
        "you averaged the real states; the fixed context vector of chapter 03 is the single state "
        "after the last real token.": (states * real).sum(1) / real.sum(1),
        "you summed the real states; take the single state at the last real token.": (states * real).sum(1),
    })


# -- exercise 2: the teacher-forcing loss ----------------------------------------------------------

@checker
def check_teacher_forcing_loss(teacher_forcing_loss: Callable, *, seed: int = 0, batch: int = 3,
                               steps: int = 6, vocab: int = 7, lengths: tuple[int, ...] = (6, 2, 4)) -> None:
    """``teacher_forcing_loss(logits (B, T, V), tgt_out (B, T), pad_id)`` must return the mean
    cross-entropy over the real (non-pad) target tokens, a scalar tensor that keeps its graph."""
    if len(lengths) != batch:
        raise ValueError(f"lengths: expected {batch} lengths, got {len(lengths)}")
    g = _gen(3200 + seed)
    logits = (2 * torch.randn(batch, steps, vocab, generator=g)).requires_grad_()
    tgt_out = torch.randint(3, vocab, (batch, steps), generator=g)
    keep = _mask(list(lengths), steps)
    tgt_out = tgt_out.masked_fill(~keep, PAD)
    got = call(teacher_forcing_loss, logits, tgt_out, PAD, name="teacher_forcing_loss", hints={
        "expected target size": "F.cross_entropy wants logits (N, V) and targets (N,): flatten with "
                                "logits.reshape(-1, V) and tgt_out.reshape(-1), or move V to axis 1.",
        "Expected input batch_size": "flatten both: logits.reshape(-1, V) and tgt_out.reshape(-1).",
    })
    if isinstance(got, float):
        raise Feedback("`teacher_forcing_loss` returned a Python float; return the tensor (no .item()), "
                       "so that loss.backward() can train the model.")
    got = expect_tensor(got, {}, "teacher_forcing_loss")
    if not got.requires_grad:
        raise Feedback("`teacher_forcing_loss` returned a tensor without a gradient graph (detached, "
                       ".item() then torch.tensor, or torch.no_grad): the loss must stay connected to "
                       "the logits so that backward() can train the model.")
    logits_ = logits.detach()
    log_probs = torch.log_softmax(logits_, dim=-1)
    nll = -log_probs.gather(2, tgt_out[..., None])[..., 0]            # (B, T)
    keepf = keep.float()
    want = (nll * keepf).sum() / keepf.sum()
    raw = -logits_.gather(2, tgt_out[..., None])[..., 0]
    probs = torch.softmax(logits_, dim=-1).gather(2, tgt_out[..., None])[..., 0]
    expect_close(got, want, "teacher_forcing_loss", mistakes={
        "the padding is counted: the mean runs over every position, pad included. Leave the pad "
        "positions out, e.g. F.cross_entropy(..., ignore_index=pad_id).": nll.mean(),
        "you summed the losses of the real tokens; take their mean (divide by the number of real "
        "tokens).": (nll * keepf).sum(),
        "you averaged each sequence first and then the sequences; average over all real tokens at "
        "once, so that every token counts the same.": ((nll * keepf).sum(1) / keepf.sum(1)).mean(),
        "you used the logits as if they were log-probabilities: apply log_softmax first (or use "
        "F.cross_entropy, which does).": (raw * keepf).sum() / keepf.sum(),
        "you used probabilities, -p(y), instead of log-probabilities, -log p(y).":
            -(probs * keepf).sum() / keepf.sum(),
    })


# -- exercise 3: greedy decoding -------------------------------------------------------------------

def _toy_tables(seed: int, vocab: int, batch: int, max_len: int) -> torch.Tensor:
    """One Markov chain per row, log p(next | last) (B, V, V), whose greedy paths end at different
    steps: row b follows a path of distinct tokens to eos after 1, 2, 3, ... tokens, and every
    third row loops between two tokens and never ends. Pad and bos are never produced; after eos
    the chain would go on writing (so writing on after eos shows)."""
    if vocab < 6:
        raise ValueError(f"vocab: expected at least 6 (pad, bos, eos and 3 tokens), got {vocab}")
    g = _gen(3300 + seed)
    logits = torch.randn(batch, vocab, vocab, generator=g)
    real = list(range(3, vocab))
    for b in range(batch):
        order = [real[i] for i in torch.randperm(len(real), generator=g).tolist()]
        if b % 3 == 2:
            path = [order[0], order[1]] * max_len                 # a loop: never reaches eos
        else:
            n = 1 + (b * 2 + seed) % min(len(real), max_len - 1)
            path = order[:n] + [EOS]
        last = BOS
        for token in path[:max_len + 1]:
            logits[b, last, token] += 8.0
            last = token
    logits[:, :, [PAD, BOS]] = float("-inf")
    logits[:, EOS, EOS] = float("-inf")                    # after eos the chain writes a real token
    return torch.log_softmax(logits, dim=-1)


def _greedy_variant(tables: torch.Tensor, max_len: int, *, feed_back: bool = True, stop_at_eos: bool = True,
                    stop_at_first: bool = False, keep_eos: bool = True, keep_bos: bool = False,
                    argmin: bool = False) -> torch.Tensor:
    B = tables.shape[0]
    rows = torch.arange(B)
    last = torch.full((B,), BOS)
    out, finished = [], torch.zeros(B, dtype=torch.bool)
    for _ in range(max_len):
        lp = tables[rows, last if feed_back else torch.full((B,), BOS)]
        token = lp.masked_fill(~torch.isfinite(lp), float("inf")).argmin(-1) if argmin else lp.argmax(-1)
        if stop_at_eos:
            token = token.masked_fill(finished, PAD)
        out.append(token)
        last = token
        finished = finished | (token == EOS)
        if stop_at_eos and (bool(finished.all()) or (stop_at_first and bool(finished.any()))):
            break
    ids = torch.stack(out, dim=1)
    if not keep_eos:
        ids = torch.where(ids == EOS, torch.full_like(ids, PAD), ids)
    if keep_bos:
        ids = torch.cat([torch.full((B, 1), BOS), ids], dim=1)
    return ids


def _pad_to(ids: torch.Tensor, width: int) -> torch.Tensor:
    if ids.shape[1] >= width:
        return ids[:, :width]
    return F.pad(ids, (0, width - ids.shape[1]), value=PAD)


@checker
def check_greedy_decode(greedy: Callable, *, seed: int = 0, batch: int = 3, vocab: int = 7,
                        max_len: int = 8) -> None:
    """``greedy(step, state, batch_size, bos_id, eos_id, max_len)`` must return ids (B, L), L <=
    max_len, without the bos: at each step the most likely token of
    ``step(prefix (B, t), state) -> (log_probs (B, V), state)``, fed back; each row ends at its
    first eos and holds pad (0) after it. Trailing all-pad columns are allowed."""
    tables = _toy_tables(seed, vocab, batch, max_len)
    rows = torch.arange(batch)
    calls: list[torch.Tensor] = []

    def step(prefix, state):
        if not isinstance(prefix, torch.Tensor) or prefix.dim() != 2 or prefix.shape[0] != batch:
            shape = tuple(prefix.shape) if isinstance(prefix, torch.Tensor) else describe(prefix)
            raise Feedback(f"call {len(calls) + 1} of `step` got prefix of shape {shape}; expected (B, t) "
                           f"with B = {batch}: all the ids so far, starting with a column of bos, e.g. "
                           "torch.full((batch_size, 1), bos_id) and then torch.cat([prefix, token[:, None]], dim=1).")
        if prefix.dtype != torch.long:
            raise Feedback(f"`step` got a prefix of dtype {prefix.dtype}; token ids must be torch.long "
                           "(torch.full(..., dtype=torch.long)).")
        if len(calls) >= 3 * max_len + 5:
            raise Feedback(f"`step` was called more than {3 * max_len + 5} times with max_len = {max_len}; "
                           "call it once per generated position and stop after max_len steps.")
        if not (isinstance(state, dict) and "rows" in state):
            raise Feedback("`step` got a state that is not the one it returned: pass the state along, "
                           "`log_probs, state = step(prefix, state)`.")
        calls.append(prefix.clone())
        last = prefix[:, -1].clamp(0, vocab - 1)
        return tables[state["rows"], last], {"rows": state["rows"]}

    got = call(greedy, step, {"rows": rows}, batch, BOS, EOS, max_len, name="greedy_decode")
    if isinstance(got, tuple) and len(got) == 2 and isinstance(got[0], torch.Tensor):
        got = got[0]   # (ids, scores) like the library's is fine too
    if isinstance(got, list) and got and all(isinstance(r, list) for r in got):
        raise Feedback("`greedy_decode` returned a list of lists; return one tensor of ids (B, L), e.g. "
                       "the prefix without its first (bos) column, prefix[:, 1:].")
    if not isinstance(got, torch.Tensor):
        raise Feedback(f"`greedy_decode` returned {describe(got)}; expected a tensor of ids of shape "
                       f"(B, L) = ({batch}, L), L <= max_len = {max_len}.")
    if got.dim() != 2 or got.shape[0] != batch:
        raise Feedback(f"`greedy_decode` returned a tensor of shape {tuple(got.shape)}; expected (B, L) = "
                       f"({batch}, L) with L <= max_len = {max_len}: one row per example.")
    if got.is_floating_point():
        raise Feedback("`greedy_decode` returned float ids; token ids are integers (torch.long): use "
                       "argmax, which returns them.")
    if len(calls) > 1 and all(torch.equal(c[:, -1], calls[0][:, -1]) for c in calls[1:]) \
            and calls[0].shape[1] == calls[-1].shape[1]:
        raise Feedback("`greedy_decode` did not feed back the predicted token: every call of `step` got "
                       "the same prefix. Append each chosen token to the prefix, "
                       "prefix = torch.cat([prefix, token[:, None]], dim=1), and call step on it.")
    want = greedy_decode(step, {"rows": rows}, batch, bos_id=BOS, eos_id=EOS, max_len=max_len)[0]
    if got.shape[1] == max_len + 1 and bool((got[:, 0] == BOS).all()):
        raise Feedback("`greedy_decode` returned the bos column too; return the generated ids only, "
                       "prefix[:, 1:].")
    if got.shape[1] > max_len:
        raise Feedback(f"`greedy_decode` returned {got.shape[1]} ids per row; generate at most "
                       f"max_len = {max_len}.")
    width = max_len
    g_, w_ = _pad_to(got, width), _pad_to(want, width)
    if torch.equal(g_, w_):
        return
    variant = lambda **kw: _pad_to(_greedy_variant(tables, max_len, **kw), width)  # noqa: E731
    known = [
        ("the predicted token is not fed back: each step must read the prefix that ends with the "
         "token chosen at the step before.", dict(feed_back=False)),
        ("rows go on after their eos: once a row has produced eos it is finished; put pad (0) in "
         "its later positions (e.g. token.masked_fill(finished, pad_id)).", dict(stop_at_eos=False)),
        ("you stopped the whole batch when the first row produced eos; stop when every row has "
         "(finished.all()), and pad the rows that are done.", dict(stop_at_first=True)),
        ("the eos tokens are missing: keep the eos that ends each row in the output (then pad).",
         dict(keep_eos=False)),
        ("you picked the least likely token (argmin); greedy takes the most likely, argmax of the "
         "log-probabilities over the vocabulary (dim=-1).", dict(argmin=True)),
    ]
    for message, kwargs in known:
        if torch.equal(g_, variant(**kwargs)):
            raise Feedback(f"`greedy_decode`: {message}")
    diff = (g_ != w_).nonzero()
    r, c = (int(v) for v in diff[0])
    raise Feedback(f"`greedy_decode` differs from the reference at row {r}, position {c}: got token "
                   f"{int(g_[r, c])}, expected {int(w_[r, c])} (expected row {w_[r].tolist()}). At each step take "
                   "log_probs.argmax(dim=-1), append it to the prefix, and pad rows after their eos.")


# -- exercise 4: one step of beam search -------------------------------------------------------------

def _beam_reference(scores: torch.Tensor, log_probs: torch.Tensor, K: int):
    B, K0, V = log_probs.shape
    cand = (scores[:, :, None] + log_probs).reshape(B, K0 * V)
    top, idx = cand.topk(K, dim=-1)
    return top, torch.div(idx, V, rounding_mode="floor"), idx % V


@checker
def check_beam_step(beam_step: Callable, *, seed: int = 0, batch: int = 2, beam: int = 3, vocab: int = 6,
                    first_step: bool = False) -> None:
    """``beam_step(scores (B, K), log_probs (B, K, V), beam_size)`` must return the ``beam_size``
    best of the K * V candidates score[b, k] + log_probs[b, k, v] of each row, best first:
    ``(new_scores (B, K), parent (B, K), token (B, K))`` with parent and token as torch.long.

    ``first_step=True`` gives the scores of the very first step, [0, -inf, ...]: only the first
    hypothesis is alive, so the K new ones all come from it.
    """
    g = _gen(3400 + seed)
    B, K, V = batch, beam, vocab
    if V < K:
        raise ValueError(f"vocab: expected at least beam = {K} tokens, got {V}")
    log_probs = torch.log_softmax(2.5 * torch.randn(B, K, V, generator=g), dim=-1)
    if first_step:
        scores = torch.full((B, K), float("-inf"))
        scores[:, 0] = 0.0
    else:
        scores = -torch.rand(B, K, generator=g).mul(4).sort(dim=-1, descending=True).values - 0.5
    got = call(beam_step, scores.clone(), log_probs.clone(), K, name="beam_step", hints={
        "selected index k out of range": "topk must pick K from the K * V candidates of each row: "
                                         "flatten them to (B, K * V) first.",
    })
    if not (isinstance(got, (tuple, list)) and len(got) == 3):
        raise Feedback(f"`beam_step` returned {describe(got)}; expected three tensors "
                       "(new_scores, parent, token), each of shape (B, K).")
    new_scores, parent, token = got
    for name, value in (("new_scores", new_scores), ("parent", parent), ("token", token)):
        if isinstance(value, torch.Tensor) and value.dim() == 2 and value.shape[0] == B and value.shape[1] != K:
            raise Feedback(f"`beam_step` returned {name} with {value.shape[1]} hypotheses per row; keep "
                           f"exactly beam_size = {K} (topk(beam_size) of the K * V candidates).")
    new_scores = expect_tensor(new_scores, {"B": B, "K": K}, "beam_step (new_scores)", finite=False)
    for name, value in (("parent", parent), ("token", token)):
        value = expect_tensor(value, {"B": B, "K": K}, f"beam_step ({name})", finite=False)
        if value.is_floating_point():
            raise Feedback(f"`beam_step` returned {name} as floats; ids and positions are integers: use "
                           "integer division, torch.div(index, V, rounding_mode='floor') or index // V, "
                           "and index % V, which keep torch.long.")
    want_scores, want_parent, want_token = _beam_reference(scores, log_probs, K)
    cand = (scores[:, :, None] + log_probs).reshape(B, K * V)

    def same(a, b) -> bool:
        return isinstance(a, torch.Tensor) and a.shape == b.shape and bool(torch.allclose(
            a.double(), b.double(), atol=1e-5, rtol=1e-5, equal_nan=True))

    if same(new_scores, want_scores) and torch.equal(parent.long(), want_parent) and torch.equal(token.long(), want_token):
        return
    # the usual mistakes, each as the triple it would return
    product = (scores[:, :, None] * log_probs).reshape(B, K * V)
    top_p, idx_p = product.topk(K, dim=-1)
    only_new = log_probs.reshape(B, K * V)
    top_n, idx_n = only_new.topk(K, dim=-1)
    own_best = (scores + log_probs.max(-1).values, torch.arange(K).expand(B, K), log_probs.argmax(-1))
    if same(new_scores, top_p) and torch.equal(parent.long(), idx_p // V):
        raise Feedback("`beam_step`: looks like you multiplied the scores by the log-probabilities. "
                       "Probabilities multiply, so log-probabilities add: candidate = score + log p.")
    if (same(new_scores, top_n) or same(new_scores, torch.gather(cand, 1, idx_n))) and torch.equal(parent.long(), idx_n // V):
        raise Feedback("`beam_step`: the running score is ignored: you ranked the candidates by the new "
                       "token's log-probability alone. Rank by score[b, k] + log_probs[b, k, v].")
    if same(new_scores, want_scores.exp()) or same(new_scores, torch.gather(cand.exp(), 1, want_parent * V + want_token)):
        raise Feedback("`beam_step`: you returned probabilities; keep scores as log-probabilities "
                       "(score + log p), which do not underflow on long sequences.")
    if same(new_scores, own_best[0]) and torch.equal(parent.long(), own_best[1]):
        raise Feedback("`beam_step`: you extended each hypothesis by its own best token; beam search "
                       "keeps the K best of all K * V candidates, so a good hypothesis may have several "
                       "children and a poor one none. Flatten to (B, K * V), then topk.")
    order = torch.argsort(new_scores, dim=-1, descending=True)
    if same(torch.gather(new_scores, 1, order), want_scores) and not same(new_scores, want_scores):
        raise Feedback("`beam_step`: you kept the right hypotheses but not best first; return them sorted "
                       "by score, highest first (topk does this).")
    if same(new_scores, want_scores):
        flat = want_parent * V + want_token
        if torch.equal(parent.long(), flat % K) or torch.equal(parent.long(), flat // K) \
                or torch.equal(token.long(), want_parent) or torch.equal(parent.long(), want_token):
            raise Feedback(f"`beam_step`: the scores are right but parent/token are decoded wrongly. Candidate "
                           f"i of the flattened (K * V) row comes from hypothesis i // V and adds token i % V "
                           f"(here V = {V}).")
        raise Feedback("`beam_step`: the scores are right but parent or token are not; candidate i of the "
                       "flattened (K * V) row is parent i // V, token i % V.")
    if first_step and not bool(torch.isfinite(new_scores).all()):
        raise Feedback("`beam_step`: at the first step only hypothesis 0 is alive (the others have score "
                       "-inf); your new scores contain inf or nan. Adding log-probabilities to -inf keeps "
                       "-inf, which topk then leaves out: do not multiply or exponentiate the scores.")
    raise Feedback(f"`beam_step` returned wrong scores: expected {want_scores[0].tolist()} for row 0, got "
                   f"{new_scores[0].tolist()}. Candidate score = score[b, k] + log_probs[b, k, v]; keep the "
                   "K best of each row's K * V candidates, best first.")


# -- exercise 5: a diagnosis, why beam search answers nothing ---------------------------------------------

TOKEN_A, TOKEN_B = 3, 4       # the toy's vocabulary: pad 0, bos 1, eos 2, a 3, b 4


def toy_decoder(p_token: float, p_eos: float, n: int) -> Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]]:
    """A toy ``step(prefix (N, t), state) -> (log_probs (N, 5), state)`` whose right answer is the
    token a (id 3) written ``n`` times. While a row holds fewer than n a's and nothing else, the next
    token is a with probability ``p_token``, eos with ``p_eos`` and b (id 4) with the rest; after n
    a's, or after anything else, it is eos with probability 1. ``state`` is passed through (None)."""
    if not (0 < p_eos < p_token and p_token + p_eos < 1):
        raise ValueError(f"p_token, p_eos: expected 0 < p_eos < p_token and p_token + p_eos < 1, got {p_token}, {p_eos}")
    going = torch.tensor([0.0, 0.0, p_eos, p_token, 1.0 - p_token - p_eos], dtype=torch.float64).log()
    done = torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0], dtype=torch.float64).log()

    def step(prefix: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        body = prefix[:, 1:]                                              # (N, t - 1) without bos
        only_a = (body == TOKEN_A).all(dim=1) & (body.shape[1] < n)       # (N,)
        return torch.where(only_a[:, None], going, done), state           # (N, 5)

    return step


def _beam_output(p_token: float, p_eos: float, n: int) -> list[int]:
    ids, _ = beam_search(toy_decoder(p_token, p_eos, n), None, 1, beam_size=2, bos_id=BOS, eos_id=EOS,
                         max_len=n + 1)
    row = ids[0].tolist()
    return row[:row.index(EOS) + 1] if EOS in row else row


def _longest_full(p_token: float, p_eos: float, limit: int = 500) -> int:
    """The largest n for which beam search (K = 2) returns the toy's full answer, measured."""
    n = 0
    while n < limit and _beam_output(p_token, p_eos, n + 1) == [TOKEN_A] * (n + 1) + [EOS]:
        n += 1
    return n


@checker
def check_longest_full_answer(longest_full_answer: Callable, *, cases: tuple = ((0.9, 0.06), (0.6, 0.3))) -> None:
    """``longest_full_answer(p_token, p_eos)`` must return the largest n for which
    ``course_lib.seq2seq.beam_search`` with K = 2 returns the full answer of :func:`toy_decoder`
    (n tokens a, then eos) rather than the empty one; the check measures it."""
    for p, e in cases:
        said = f"`longest_full_answer({p}, {e})`"
        got = call(longest_full_answer, p, e, name="longest_full_answer")
        if isinstance(got, float) and got.is_integer():
            got = int(got)
        if isinstance(got, float) and math.isfinite(got):
            raise Feedback(f"{said} returned {got:.4g}; expected a whole number of tokens (an int). Which whole "
                           "numbers n keep the full answer ahead, and which is the largest?")
        if isinstance(got, bool) or not isinstance(got, int):
            raise Feedback(f"{said} returned {describe(got)}; expected an int, a number of tokens.")
        want = _longest_full(p, e)
        if got == want:
            continue
        lost = _beam_output(p, e, want + 1)
        shown = "the empty output (eos at once)" if lost == [EOS] else f"the ids {lost}"
        ratio = math.log(e) / math.log(p)
        mistakes = [
            (math.ceil(ratio), "Off by one: the full answer stays ahead while n log p > log e, that is for n < "
                               "log e / log p: round down."),
            (math.floor(ratio) - 1, "Off by one: the full answer's final eos has probability 1 and costs "
                                    "nothing (log 1 = 0): its score is n log p, against log e for the empty one."),
            (0, "Beam search does return the full answer when it is short: for n = 1 it scores log p, above "
                "the empty output's log e. (If you divided log p by log e, the ratio is inverted: from "
                "n log p > log e, dividing by log p < 0 flips the inequality.)"),
            (math.floor(p / e), "Beam search adds log-probabilities, so probabilities multiply: the full answer "
                                "has probability p ** n, the empty one e. Compare p ** n with e, not p with e."),
        ]
        hint = next((text for value, text in mistakes if got == value and value != want),
                    "Which hypotheses are still in the beam when the search stops? Compare the scores (sums "
                    "of log-probabilities, eos included) of the two finished ones: the empty output and the "
                    "full answer.")
        raise Feedback(f"{said} returned {got}; measured with course_lib.seq2seq.beam_search (K = 2) on the "
                       f"toy decoder, it returns the full answer for n <= {want} and {shown} from n = {want + 1} "
                       f"on. {hint}")
