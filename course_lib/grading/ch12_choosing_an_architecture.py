"""Check helpers for the exercises of chapter 12 (choosing an architecture).

One helper per exercise; each computes the right answer itself, calls the learner's function
safely, and names the usual mistake when the answer is wrong:

1. ``check_memory_predictions``: GPT-2 small's memory at generation time, checked against
   ``course_lib.gpt.cache_bytes``, naive attention's weights and a real LSTM's state: keys only (half
   the cache), MiB for MB, one layer's cache for all, n_heads key/value heads kept for multi-query
   attention, T for T^2 in the scores (or one head), every layer's scores for one's, the LSTM state
   without c (or one layer), bits for bytes;
2. ``check_winner``: always the largest value (a loss's winner is the smallest), always the smallest
   (an accuracy's is the largest), the value or the row returned for the model's name;
   ``check_winner_refuses_bad_rows``: rows that mix metrics or higher_is_better, or fewer than two,
   compared anyway instead of a ValueError naming `rows`;
3. ``check_gpt_width``, checked against ``count_params`` of real GPTs: the output head counted on its
   own (untied), a width not a multiple of n_heads, the positions forgotten, the first width above the
   budget (or the last below it) for the closest, and their combinations;
   ``check_gpt_width_refuses_bad_budget``: a budget not a positive int accepted (ValueError naming `budget`).

Glossary: L layers, H heads, D head dim, T positions, V vocabulary, C d_model.
"""
from __future__ import annotations

import copy
import functools
from dataclasses import asdict
from typing import Callable

import torch

from .core import Feedback, call, checker, describe, expect_number, expect_refusal, generator


# -- exercise 1: a prediction of memory at generation time -------------------------------------------

PREDICTION_KEYS = ("kv_cache_mb", "kv_cache_mqa_mb", "scores_mb", "lstm_state_kb")
L, H, D, T = 12, 12, 64, 2048           # GPT-2 small, a context of 2,048 positions, fp32
LSTM_LAYERS, LSTM_UNITS = 2, 1024


@functools.lru_cache(maxsize=1)
def _measured_bytes() -> tuple[tuple[str, int], ...]:
    """Bytes, from the library: the cache formula, naive attention's weights (at 64 positions, x (T/64)^2), an LSTM."""
    from ..attention import naive_attention
    from ..gpt import GPTConfig, cache_bytes
    small_t, q = 64, torch.zeros(1, H, 64, D)
    _, weights = naive_attention(q, q, q)                                       # (1, H, 64, 64)
    with torch.no_grad():
        _, (h, c) = torch.nn.LSTM(1, LSTM_UNITS, num_layers=LSTM_LAYERS)(torch.zeros(1, 1, 1))   # (layers, 1, units)
    return (("kv_cache_mb", cache_bytes(GPTConfig.gpt2(), 1, T)),
            ("kv_cache_mqa_mb", cache_bytes(GPTConfig.gpt2(n_kv_heads=1), 1, T)),
            ("scores_mb", weights.numel() * weights.element_size() * (T // small_t) ** 2),
            ("lstm_state_kb", h.numel() * h.element_size() + c.numel() * c.element_size()))


def _memory_hints(key: str, nbytes: int) -> list[tuple[float, str]]:
    unit, big = (1e3, 2 ** 10) if key == "lstm_state_kb" else (1e6, 2 ** 20)
    want = nbytes / unit
    binary = ("kB means 1,000 bytes here; you divided by 1,024 (KiB)" if key == "lstm_state_kb" else
              "MB means 10^6 bytes here; you divided by 2^20 = 1,048,576 (MiB)")
    half = "half: the cache holds the keys AND the values (the factor 2)"
    own = {"kv_cache_mb": [(want / 2, half), (want / L, f"that is one layer's cache; each of the {L} layers has one")],
           "kv_cache_mqa_mb": [(want * H, f"that is the multi-head cache: multi-query attention keeps ONE key/value "
                                          f"head (H_kv = 1), shared by the {H} query heads"), (want / 2, half)],
           "scores_mb": [(want / T, "that grows as T; naive attention stores a T x T matrix per head (T^2)"),
                         (want * L, f"that is the scores of all {L} layers; the question asks for ONE layer's"),
                         (want / H, f"that is one head; each of the {H} heads has its own T x T probabilities")],
           "lstm_state_kb": [(want / 2, f"half: an LSTM carries two vectors per layer, h AND c, in each of its "
                                        f"{LSTM_LAYERS} layers")]}[key]
    return own + [(nbytes / big, binary), (want * 8, "that is in bits; count bytes (4 per fp32 number)")]


@checker
def check_memory_predictions(predictions: Callable) -> None:
    """``predictions()`` -> GPT-2 small's KV cache with 12 and with 1 key/value head, one layer's naive attention
    probabilities (MB), a 2-layer LSTM's state of 1,024 units (kB); batch 1, 2,048 positions, fp32."""
    got = call(predictions, name="predictions")
    if not isinstance(got, dict) or set(got) != set(PREDICTION_KEYS):
        raise Feedback(f"`predictions()` returned {describe(got)}; expected a dict with the keys {PREDICTION_KEYS}.")
    wrong = []
    for key, nbytes in _measured_bytes():
        unit, size = ("kB", 1e3) if key == "lstm_state_kb" else ("MB", 1e6)
        try:
            value = expect_number(got[key], "predictions", unit)
        except Feedback:
            raise Feedback(f"predictions: {key} is {describe(got[key])}; expected a number of {unit}.") from None
        if abs(value - nbytes / size) > 0.01 * nbytes / size:
            hint = next((h for v, h in _memory_hints(key, nbytes) if abs(value - v) <= 0.01 * v), None)
            wrong.append(f"- {key} = {value:g} {unit} is wrong: {hint or 'check the formula, term by term'}.")
    if wrong:
        raise Feedback(f"predictions (GPT-2 small: {L} layers, {H} heads of dimension {D}; {T:,} positions, fp32):\n"
                       + "\n".join(wrong))


# -- exercise 2: the winner of one comparison ---------------------------------------------------------

MODELS = {"LSTM": "recurrent", "GRU": "recurrent", "RNN": "recurrent", "GPT": "decoder-only", "BERT": "encoder-only",
          "Transformer": "encoder-decoder", "T5": "encoder-decoder", "CNN": "convolutional", "TF-IDF + LR": "baseline"}


def _rows(values: list[float], metric: str, higher: bool | list[bool], names: list[str]) -> list[dict]:
    """Rows as ``course_lib.results.gather`` returns them, one per value."""
    from ..results import Result, rows_from
    metrics, highs = (x if isinstance(x, list) else [x] * len(values) for x in (metric, higher))
    results = [asdict(Result(task="a task", model=n, family=MODELS[n], metric=m, value=v, higher_is_better=h))
               for n, m, v, h in zip(names, metrics, values, highs)]
    return rows_from({"chapter": "12", "mode": "fast", "results": results}, "this machine")


def _case(seed: int, n_models: int, higher: bool) -> list[dict]:
    g = generator(1200 + seed)
    names = [list(MODELS)[i] for i in torch.randperm(len(MODELS), generator=g)[:n_models].tolist()]
    grid = torch.randperm(90, generator=g)[:n_models] + 5                       # distinct: no ties
    values = [round(v / 100 if higher else v / 40, 4) for v in grid.tolist()]   # accuracies, or nats
    return _rows(values, "test accuracy" if higher else "val nats/char", higher, names)


@checker
def check_winner(winner: Callable, *, seed: int = 0, n_models: int = 3) -> None:
    """``winner(rows)`` -> the model name of the best row: the smallest value when higher_is_better
    is False (a loss), the largest when True (an accuracy). Checked on one comparison of each kind."""
    for higher in (False, True):
        rows = _case(seed, n_models, higher)
        got = call(winner, copy.deepcopy(rows), name="winner")
        best = max(rows, key=lambda r: r["value"] if higher else -r["value"])
        if isinstance(got, str) and got == best["model"]:
            continue
        where = (f"`winner(rows)` on {rows[0]['metric']} (higher_is_better={higher}): "
                 + ", ".join(f"{r['model']} {r['value']}" for r in rows))
        values = {r["model"]: r["value"] for r in rows}
        largest, smallest = max(values, key=values.get), min(values, key=values.get)
        hints = [(isinstance(got, dict), "you returned the whole row; return its name, row['model']"),
                 (isinstance(got, (int, float)) and got in values.values(),
                  "you returned a value; return the name of the model that has it, row['model']"),
                 (not isinstance(got, str), "expected the winning model's name, a str"),
                 (got == largest and not higher, "a loss's winner is the SMALLEST value (higher_is_better False: "
                  "lower is better); let the rows' higher_is_better decide between min and max"),
                 (got == smallest and higher, "with higher_is_better True (an accuracy) the LARGEST value wins")]
        hint = next((h for hit, h in hints if hit), "the winner has the best value among the rows")
        raise Feedback(f"{where}: returned {describe(got)}, expected {best['model']!r}: {hint}.")


_BAD_ROWS = {  # case: (what, rows, why they cannot be compared)
    "metrics": ("rows of two metrics", ([1.31, 1.92, 1.25], ["val nats/char", "val bits/char", "val nats/char"],
                                        False, ["LSTM", "GPT", "GRU"]),
                "values of different metrics cannot be compared (1.92 bits/char is 1.33 nats/char)"),
    "direction": ("rows that mix higher_is_better", ([0.8, 0.6], "score", [True, False], ["BERT", "CNN"]),
                  "one row says higher is better, the other lower: there is no winner to name"),
    "one": ("a single row", ([0.9], "test accuracy", True, ["CNN"]), "one model is no comparison"),
    "none": ("no rows", ([], "-", True, []), "an empty list is no comparison"),
}


@checker
def check_winner_refuses_bad_rows(winner: Callable, *, case: str = "metrics") -> None:
    """Rows that mix metrics or higher_is_better, or fewer than two rows, must raise a ValueError
    naming `rows`; a good comparison must still get an answer."""
    call(winner, _case(0, 2, False), name="winner")       # good rows: any answer, but not an error
    what, spec, why = _BAD_ROWS[case]
    rows = _rows(*spec)
    shown = ", ".join(f"{r['model']}: {r['metric']} {r['value']}" for r in rows)
    expect_refusal(winner, "winner", (rows,), "rows", f"`winner` given {what} ({shown})", why)


# -- exercise 3: the width that spends a parameter budget ----------------------------------------------

def _count(C: int, n_layers: int, V: int, T: int, *, tied: bool = True, positions: bool = True) -> int:
    """Trainable parameters of GPT(GPTConfig(V, T, n_layers, C)), d_ff = 4C (checked against real models)."""
    return V * C * (1 if tied else 2) + (T * C if positions else 0) + n_layers * (12 * C * C + 13 * C) + 2 * C


@functools.lru_cache(maxsize=256)
def _real_count(C: int, n_layers: int, V: int, T: int, n_heads: int) -> int:
    from ..gpt import GPT, GPTConfig
    model = GPT(GPTConfig(vocab_size=V, block_size=T, n_layers=n_layers, d_model=C, n_heads=n_heads))
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _search(budget: int, step: int, count: Callable[[int], int], rule: str = "closest") -> int:
    below = step                                  # the widest multiple of step within budget (or step)
    while count(below + step) <= budget:
        below += step
    above = below if count(below) >= budget else below + step
    closest = below if count(below) > budget or budget - count(below) <= count(above) - budget else above
    return {"above": above, "below": below}.get(rule, closest)


_UNTIED = ("you counted the output head as its own V x C matrix (the course's GPT ties it to the token embedding, "
           "tie_embeddings=True, so V x C counts once)")
_NO_POS = "you left out the position embeddings (block_size x d_model)"
_ABOVE = "you took the first width above the budget (one step narrower can be closer)"
_BELOW = "you took the widest model within the budget (the next width can be closer)"


@checker
def check_gpt_width(gpt_width_for: Callable, *, cases=((400_000, 2, 256, 256, 4), (300_000, 4, 512, 128, 8))) -> None:
    """``gpt_width_for(budget, n_layers, vocab_size, block_size, n_heads)`` -> the multiple of n_heads
    whose GPT's trainable parameter count is closest to budget (a tie: the smaller width)."""
    for budget, n_layers, V, T, heads in cases:
        count = functools.partial(_count, n_layers=n_layers, V=V, T=T)
        want = _search(budget, heads, count)
        for C in (want - heads, want, want + heads):        # the formula against real models
            if C > 0 and _real_count(C, n_layers, V, T, heads) != count(C):
                raise RuntimeError(f"the parameter formula disagrees with GPT at d_model={C}")
        got = call(gpt_width_for, budget, n_layers, V, T, n_heads=heads, name="gpt_width_for")
        where = f"`gpt_width_for({budget:,}, n_layers={n_layers}, vocab_size={V}, block_size={T}, n_heads={heads})`"
        if isinstance(got, bool) or not isinstance(got, int):
            raise Feedback(f"{where} returned {describe(got)}; expected an int, the d_model to give GPTConfig.")
        if got == want:
            continue
        if got <= 0 or got % heads:
            raise Feedback(f"{where} returned {got}, not a positive multiple of n_heads = {heads}: the heads "
                           f"split d_model evenly (head dim d_model / n_heads), so step the width by {heads}.")
        variant = functools.partial(functools.partial, _count, n_layers=n_layers, V=V, T=T)
        found = sorted((bool(v) + bool(r), " and ".join(filter(None, (v, r))))     # single mistakes first
                       for v, fn in ((None, count), (_UNTIED, variant(tied=False)), (_NO_POS, variant(positions=False)))
                       for r, rule in ((None, "closest"), (_ABOVE, "above"), (_BELOW, "below"))
                       if (v or r) and _search(budget, heads, fn, rule) == got)
        hint = "; or ".join(text for _, text in found) or ("count embeddings V C, positions T C, L blocks of "
                                                           "12 C^2 + 13 C and the final LayerNorm 2 C")
        raise Feedback(f"{where} returned {got} ({count(got):,} parameters); expected {want} ({count(want):,} "
                       f"parameters, {abs(count(want) - budget):,} from the budget): {hint}.")


@checker
def check_gpt_width_refuses_bad_budget(gpt_width_for: Callable, *, budget=0) -> None:
    """A budget that is not a positive int must raise ValueError naming `budget`; a good one must not."""
    call(gpt_width_for, 50_000, 1, 50, 16, n_heads=4, name="gpt_width_for")
    expect_refusal(gpt_width_for, "gpt_width_for", (budget, 2, 96, 128), "budget",
                    f"`gpt_width_for(budget={budget!r}, n_layers=2, vocab_size=96, block_size=128)`",
                    "a budget must be a positive int (a number of parameters)")
