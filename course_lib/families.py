"""Chapter 12: the three Transformer families on one sequence-to-sequence task, at an equal budget.

One task (by default: sort a string of 3 to 10 digits, character tokens), three of the course's
own models, each used the way its family is used:

- decoder-only, :class:`course_lib.gpt.GPT`: a prefix language model on ``source <sep> target
  <eos>``, the loss on the target positions only; greedy decoding after the separator;
- encoder-only, the encoder of :class:`course_lib.bert.BERT`: reads ``source <sep>`` followed by
  one [MASK] slot per target token, both ways at once, and predicts every target token in one
  pass (non-autoregressive);
- encoder-decoder, :class:`course_lib.t5.T5`: the source to the encoder, the target decoded greedily.

Equal budget: parameters within 10 % of each other, the same training examples in the same
order (same updates, batch size, optimizer, schedule), and the same learning-rate grid, each
family's rate picked on a validation split. Test exact match and per-token accuracy are measured
on sources never seen in training, with the CPU seconds each family took.

Glossary: B batch, S source length, T target length, C d_model, V vocabulary.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F

from .bert import BERT, BERTConfig, MASK
from .data import date_pairs, encode_pairs, pad_sequences, reverse_pairs, sort_digits_pairs
from .gpt import GPT, GPTConfig, configure_adamw, generate, warmup_cosine
from .t5 import T5, T5Config, t5_loss, t5_param_groups
from .text import Vocab
from .train import fit
from .utils import check_choice, check_int, count_params, seed_everything

FAMILIES = ("decoder-only", "encoder-only", "encoder-decoder")
SEP = "<sep>"      # between source and target (decoder-only) or source and slots (encoder-only)
IGNORE = -100      # label of a position the loss skips (F.cross_entropy's ignore_index)
T5_POSITION_BIAS_LR = 0.3   # T5's relative position bias tables (chapter 09's rate; 1.0 measured worse)
TASKS: dict[str, Callable] = {   # name -> (n, seed, config) -> [(source, target)]
    "sort": lambda n, seed, c: sort_digits_pairs(n, seed, c.min_len, c.max_len),
    "reverse": lambda n, seed, c: reverse_pairs(n, seed, c.min_len, c.max_len, alphabet="0123456789"),
    "date": lambda n, seed, c: date_pairs(n, seed),
}


@dataclass
class FamilyConfig:
    task: str = "sort"             # one of TASKS
    min_len: int = 3               # shortest source (sort, reverse)
    max_len: int = 10              # longest source (sort, reverse)
    n_train: int = 5000            # training pairs (drawn at random, so 3-digit ones repeat)
    n_val: int = 200               # validation pairs: pick the learning rate
    n_test: int = 500              # test pairs; val and test sources never occur in training
    d_model: int = 64              # C, every family
    layers: int = 4                # GPT and BERT: 4 blocks; T5: 2 encoder + 2 decoder blocks
    heads: int = 4                 # H, every family
    steps: int = 1000              # AdamW updates, every family
    batch_size: int = 32           # examples per update, the same examples for every family
    lrs: tuple = (3e-3, 1e-2)      # the learning-rate grid, the same for every family
    seed: int = 0                  # data, initialisation and batch order
    max_positions: Optional[int] = None   # learned positions of GPT and BERT; None: the longest
                                          # source + target + 2 of the data (run_families sets it)

    def __post_init__(self):
        check_choice(self.task, "task", tuple(TASKS))
        for name in ("min_len", "max_len", "n_train", "n_val", "n_test", "d_model", "layers", "heads",
                     "steps", "batch_size"):
            check_int(getattr(self, name), name)
        if self.max_positions is not None:
            check_int(self.max_positions, "max_positions")
        check_int(self.seed, "seed", minimum=0)
        if self.layers % 2:   # T5 gets half the blocks in its encoder and half in its decoder
            raise ValueError(f"layers: expected an even int (T5 splits them in half), got {self.layers}")
        if self.d_model % self.heads:
            raise ValueError(f"heads: expected a divisor of d_model = {self.d_model}, got {self.heads}")
        if self.min_len > self.max_len:
            raise ValueError(f"min_len: expected at most max_len = {self.max_len}, got {self.min_len}")
        lrs = tuple(self.lrs) if isinstance(self.lrs, (list, tuple)) else ()
        if not lrs or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 for x in lrs):
            raise ValueError(f"lrs: expected a non-empty tuple of positive floats, got {self.lrs!r}")
        self.lrs = tuple(float(x) for x in lrs)

    @classmethod
    def fast(cls, **overrides) -> "FamilyConfig":
        """The live-demo preset: C = 48, 2 blocks (T5: 1 + 1), 400 updates. The whole experiment
        (3 families x 2 rates) takes about 45 CPU seconds on one core; the default about 260."""
        return cls(**{**dict(d_model=48, layers=2, steps=400, n_train=3000, n_test=300), **overrides})


def make_splits(config: FamilyConfig) -> tuple[list, list, list]:
    """(train, val, test) pairs of ``config.task``; val and test sources never occur in train
    (so they lean to longer sources: most 3-digit strings are in train) nor in each other."""
    train = TASKS[config.task](config.n_train, config.seed, config)
    seen, held_out = {s for s, _ in train}, []
    for pair in TASKS[config.task](20 * (config.n_val + config.n_test), config.seed + 10_000, config):
        if pair[0] not in seen:
            seen.add(pair[0])
            held_out.append(pair)
    if len(held_out) < config.n_val + config.n_test:
        raise ValueError(f"n_test: only {len(held_out)} unseen sources for n_val + n_test = "
                         f"{config.n_val + config.n_test}; ask for fewer or use longer sources")
    return train, held_out[:config.n_val], held_out[config.n_val:config.n_val + config.n_test]


def make_vocab(pairs: Sequence[tuple[str, str]]) -> Vocab:
    """A character vocabulary of ``pairs`` plus <sep> and [MASK] (pad 0, bos 1, eos 2, unk 3)."""
    return Vocab(sorted({ch for s, t in pairs for ch in s + t}) + [SEP, MASK])


# --- each family's view of a pair -----------------------------------------------------------------

def decoder_inputs(pairs: Sequence[tuple[str, str]], vocab: Vocab) -> tuple[torch.Tensor, torch.Tensor]:
    """ids (B, S + T + 1) = ``source <sep> target`` and labels (B, S + T + 1) = the next token,
    ``IGNORE`` where the next token is still source (the model is not graded on its input) or
    padding: the loss falls on the T target tokens and <eos> only."""
    sources = [vocab.encode(s) for s, _ in pairs]
    seqs = [src + [vocab.stoi[SEP]] + vocab.encode(t, add_eos=True) for src, (_, t) in zip(sources, pairs)]
    ids, real = pad_sequences(seqs, vocab.pad_id)                       # (B, S + T + 2)
    x, y = ids[:, :-1], ids[:, 1:].clone()
    src_len = torch.tensor([len(s) for s in sources])                  # (B,)
    is_source = torch.arange(x.shape[1])[None, :] < src_len[:, None]   # position p predicts token p + 1
    return x, y.masked_fill(is_source | ~real[:, 1:], IGNORE)


def encoder_inputs(pairs: Sequence[tuple[str, str]], vocab: Vocab) -> tuple[torch.Tensor, ...]:
    """ids, segments, attention_mask, labels, each (B, S + 1 + T): ``source <sep>`` (segment 0)
    then exactly T [MASK] slots (segment 1), labels = the target at the slots, ``IGNORE`` elsewhere.

    The known limitation of the family: **T is given to the model** (the number of slots); an
    encoder alone predicts positions it is handed and cannot decide how long the output is."""
    rows = [(vocab.encode(s), vocab.encode(t)) for s, t in pairs]
    sep, mask = vocab.stoi[SEP], vocab.stoi[MASK]
    ids, real = pad_sequences([s + [sep] + [mask] * len(t) for s, t in rows], vocab.pad_id)
    segments, _ = pad_sequences([[0] * (len(s) + 1) + [1] * len(t) for s, t in rows], 0)
    labels, _ = pad_sequences([[IGNORE] * (len(s) + 1) + t for s, t in rows], IGNORE)
    return ids, segments, real, labels


def family_data(name: str, pairs: Sequence[tuple[str, str]], vocab: Vocab) -> tuple[torch.Tensor, ...]:
    """The tensors of ``pairs`` as family ``name`` trains on them (T5: ``encode_pairs``' four)."""
    check_choice(name, "name", FAMILIES)
    if len(pairs) == 0:
        raise ValueError("pairs: expected at least one (source, target) pair, got none")
    if name == "decoder-only":
        return decoder_inputs(pairs, vocab)
    if name == "encoder-only":
        return encoder_inputs(pairs, vocab)
    return tuple(encode_pairs(pairs, vocab, vocab))


def _trim(t: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """t (B, L) cut after the last column where ``real`` (B, L) is True: no batch pays for a
    longer example elsewhere in the data."""
    return t[:, :int(real.any(0).nonzero().max()) + 1]


def family_batch(name: str, data: tuple, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Rows ``idx`` of :func:`family_data`'s tensors, trimmed to their longest example."""
    rows = [t[idx] for t in data]
    if name == "decoder-only":
        return tuple(_trim(t, rows[1] != IGNORE) for t in rows)
    if name == "encoder-only":
        return tuple(_trim(t, rows[2]) for t in rows)
    src, src_mask, tgt_in, tgt_out = rows
    return _trim(src, src_mask), _trim(src_mask, src_mask), _trim(tgt_in, tgt_in != 0), _trim(tgt_out, tgt_in != 0)


def family_loss(name: str, model: torch.nn.Module, batch: tuple) -> torch.Tensor:
    """Mean cross-entropy per target token (<eos> included for the two generating families)."""
    if name == "decoder-only":
        x, y = batch
        logits, _ = model(x)                                              # (B, S + T + 1, V)
        return F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=IGNORE)
    if name == "encoder-only":
        ids, segments, real, labels = batch
        hidden = model.encode(ids, segments, real)                        # (B, S + 1 + T, C)
        slots = labels != IGNORE
        return F.cross_entropy(model.mlm_logits(hidden[slots]), labels[slots])   # only (N, V) logits
    return t5_loss(model, batch)


# --- build, train, evaluate -----------------------------------------------------------------------

def build_family(name: str, config: FamilyConfig, vocab: Vocab) -> torch.nn.Module:
    """A fresh model of family ``name`` with C = ``config.d_model`` and H = ``config.heads``.

    Per block GPT and BERT have 12 C^2 weights (attention 4 C^2, feed-forward 2 x 4 C^2). A T5
    decoder block adds cross-attention (another 4 C^2), so T5 gets half the blocks in each stack
    and d_ff = 3 C: (4 + 6) C^2 + (8 + 6) C^2 = 2 x 12 C^2, the same weights per pair of blocks.
    BERT's pooler and next-sentence head are frozen: they take no part in this task."""
    check_choice(name, "name", FAMILIES)
    if config.max_positions is None:
        raise ValueError("config.max_positions: expected an int (run_families sets it from the data), got None")
    C, L, H, V = config.d_model, config.layers, config.heads, len(vocab)
    if name == "decoder-only":
        return GPT(GPTConfig(vocab_size=V, block_size=config.max_positions, n_layers=L, d_model=C, n_heads=H))
    if name == "encoder-only":
        model = BERT(BERTConfig(vocab_size=V, max_len=config.max_positions, d_model=C, n_heads=H,
                                n_layers=L, d_ff=4 * C, dropout=0.0, pad_id=vocab.pad_id))
        model.pooler.requires_grad_(False)
        model.nsp.requires_grad_(False)
        return model
    return T5(T5Config.small(V, d_model=C, d_kv=C // H, n_heads=H, d_ff=3 * C, n_layers=L // 2,
                             n_decoder_layers=L // 2, pad_id=vocab.pad_id, eos_id=vocab.eos_id, decoder_start_id=vocab.bos_id))


def train_family(name: str, model: torch.nn.Module, data: tuple, config: FamilyConfig, lr: float) -> list[float]:
    """``config.steps`` AdamW updates at peak rate ``lr`` (gradients clipped at 1, warm-up for
    10 % of the steps then cosine decay) on batches of ``config.batch_size`` rows of ``data``
    drawn under ``config.seed``: every family sees the same examples in the same order. GPT and
    BERT: weight decay 0.01 on matrices; T5: its per-tensor rates, no decay (see below).
    Returns the loss of every step."""
    check_choice(name, "name", FAMILIES)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr: expected a positive float, got {lr!r}")
    g = torch.Generator().manual_seed(config.seed)
    order = torch.randint(0, data[0].shape[0], (config.steps, config.batch_size), generator=g)
    if name == "encoder-decoder":
        # T5's own convention (chapter 09, t5_param_groups): each tensor's rate is proportional to
        # its initial RMS. Scaled so that the matrices that start at std C^-1/2 move at ``lr``, as
        # GPT's and BERT's matrices do; plain AdamW at ``lr`` leaves T5 clearly worse (measured).
        relative = lr * config.d_model ** 0.5
        optimizer = torch.optim.AdamW(t5_param_groups(model, relative, T5_POSITION_BIAS_LR),
                                      lr=relative, weight_decay=0.0)
    else:
        optimizer = configure_adamw(model, lr=lr, weight_decay=0.01)
    schedule = warmup_cosine(optimizer, warmup=max(1, config.steps // 10), total=config.steps)
    history = fit(model, (family_batch(name, data, idx) for idx in order),
                  lambda m, b: family_loss(name, m, b), epochs=1, optimizer=optimizer,
                  scheduler=schedule, clip_grad=1.0, progress=False)
    return history.step_loss


def _cut(ids: Sequence[int], eos_id: int) -> list[int]:
    ids = list(ids)
    return ids[:ids.index(eos_id)] if eos_id in ids else ids


@torch.no_grad()
def predict(name: str, model: torch.nn.Module, pairs: Sequence[tuple[str, str]], vocab: Vocab,
            max_target_len: int) -> list[list[int]]:
    """Each pair's predicted target ids (without <eos>), greedy; only the encoder-only family
    reads the pair's target, and only its length. The decoding families stop at <eos> or after
    ``max_target_len`` + 1 tokens."""
    check_choice(name, "name", FAMILIES)
    check_int(max_target_len, "max_target_len")
    model.eval()
    if name == "encoder-only":
        ids, segments, real, labels = encoder_inputs(pairs, vocab)
        best = model.mlm_logits(model.encode(ids, segments, real)).argmax(-1)   # (B, S + 1 + T)
        return [row[lab != IGNORE].tolist() for row, lab in zip(best, labels)]
    if name == "encoder-decoder":
        src, src_mask, _, _ = encode_pairs(pairs, vocab, vocab)
        out = model.generate(src, src_mask, max_len=max_target_len + 1)   # (B, <= T + 1)
        return [_cut(row.tolist(), vocab.eos_id) for row in out]
    # GPT has no padding mask: decode sources of one length together, so no prompt holds padding
    preds: list = [None] * len(pairs)
    by_length: dict[int, list[int]] = {}
    for i, (s, _) in enumerate(pairs):
        by_length.setdefault(len(vocab.encode(s)), []).append(i)
    for rows in by_length.values():
        prompt = torch.tensor([vocab.encode(pairs[i][0]) + [vocab.stoi[SEP]] for i in rows])   # (B, S + 1)
        out = generate(model, prompt, max_target_len + 1, temperature=0.0)[:, prompt.shape[1]:]
        for i, row in zip(rows, out):
            preds[i] = _cut(row.tolist(), vocab.eos_id)
    return preds


def evaluate_family(name: str, model: torch.nn.Module, pairs: Sequence[tuple[str, str]], vocab: Vocab,
                    max_target_len: int) -> dict:
    """{"exact_match": share of outputs equal to the target, "token_accuracy": share of target
    positions predicted right (a missing or extra token counts as wrong at its position)}."""
    if len(pairs) == 0:
        raise ValueError("pairs: expected at least one (source, target) pair, got none")
    preds = predict(name, model, pairs, vocab, max_target_len)
    targets = [vocab.encode(t) for _, t in pairs]
    exact = sum(p == t for p, t in zip(preds, targets)) / len(pairs)
    right = sum(sum(a == b for a, b in zip(p, t)) for p, t in zip(preds, targets))
    return {"exact_match": exact, "token_accuracy": right / sum(len(t) for t in targets)}


def run_families(config: FamilyConfig, families: Sequence[str] = FAMILIES,
                 log: Optional[Callable[[str], None]] = None) -> dict:
    """The experiment: every family in ``families`` trained once per learning rate of
    ``config.lrs``, the rate with the best validation exact match (then token accuracy) kept,
    its model scored on the test split. Returns, per family, plain numbers: ``params``,
    ``cpu_seconds`` (time.process_time of the whole grid, training and evaluation), ``lr``,
    ``val_exact_match``, ``test_exact_match``, ``test_token_accuracy``, ``val_by_lr``
    {lr: val exact match} and ``final_loss`` (mean of the last 10 % of steps at the chosen lr)."""
    if not isinstance(config, FamilyConfig):
        raise TypeError(f"config: expected a FamilyConfig, got {type(config).__name__}")
    for name in families:
        check_choice(name, "families", FAMILIES)
    train, val, test = make_splits(config)
    vocab = make_vocab(train + val + test)
    longest = max(len(vocab.encode(s)) + len(vocab.encode(t)) + 2 for s, t in train + val + test)
    if config.max_positions is None:   # no learned position left untrained: GPT and BERT stay lean
        config = replace(config, max_positions=longest)
    if longest > config.max_positions:
        raise ValueError(f"max_positions: expected at least {longest} (source + target + 2), got {config.max_positions}")
    max_target_len = max(len(vocab.encode(t)) for _, t in train)
    for name in families:   # one untimed update each: the first call of a code path pays set-up costs
        family_loss(name, build_family(name, config, vocab),
                    family_batch(name, family_data(name, train[:8], vocab), torch.arange(8))).backward()
    results = {}
    for name in families:
        start = time.process_time()
        data, runs = family_data(name, train, vocab), []
        for lr in config.lrs:
            seed_everything(config.seed)                 # the same initial draw for each rate
            model = build_family(name, config, vocab)
            losses = train_family(name, model, data, config, lr)
            score = evaluate_family(name, model, val, vocab, max_target_len)
            runs.append((score["exact_match"], score["token_accuracy"], lr, model, losses))
            if log:
                log(f"{name:>15} lr {lr:g}: val exact {score['exact_match']:.3f}, "
                    f"token {score['token_accuracy']:.3f}, final loss {losses[-1]:.3f}")
        val_em, _, lr, model, losses = max(runs, key=lambda r: (r[0], r[1]))
        test_score = evaluate_family(name, model, test, vocab, max_target_len)
        tail = losses[-max(1, len(losses) // 10):]
        results[name] = {"params": count_params(model), "cpu_seconds": time.process_time() - start, "lr": lr,
                         "val_exact_match": val_em, "test_exact_match": test_score["exact_match"],
                         "test_token_accuracy": test_score["token_accuracy"],
                         "val_by_lr": {r[2]: r[0] for r in runs}, "final_loss": sum(tail) / len(tail)}
        if log:
            r = results[name]
            log(f"{name:>15}: {r['params']:,} params, lr {lr:g}, test exact {r['test_exact_match']:.3f}, "
                f"token {r['test_token_accuracy']:.3f}, {r['cpu_seconds']:.1f} CPU s")
    return results
