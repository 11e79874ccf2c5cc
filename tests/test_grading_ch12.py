"""course_lib.grading.ch12_choosing_an_architecture: the reference answers pass, and each known
mistake, written as the function a learner would write, gets the message that names it."""
import numpy as np
import pytest
import torch

from course_lib.grading import ch12_choosing_an_architecture as grading
from grading_support import fails_with


def not_answered(*args, **kwargs):
    raise NotImplementedError()


# -- exercise 1: memory at generation time ----------------------------------------------------------------

def predictions_with(kv=2, per_layer=False, mqa_heads=1, scores_t=2048, score_layers=1, score_heads=12,
                     lstm_vectors=2, mb=1e6, kb=1e3, bits=1):
    L, H, D, T = 12, 12, 64, 2048
    layers = 1 if per_layer else L
    return lambda: {"kv_cache_mb": kv * layers * H * D * T * 4 * bits / mb,
                    "kv_cache_mqa_mb": 2 * L * mqa_heads * D * T * 4 * bits / mb,
                    "scores_mb": score_layers * score_heads * T * scores_t * 4 * bits / mb,
                    "lstm_state_kb": 2 * lstm_vectors * 1024 * 4 * bits / kb}


def test_predictions_reference_passes():
    grading.check_memory_predictions(predictions_with())
    grading.check_memory_predictions(lambda: {"kv_cache_mb": 151, "kv_cache_mqa_mb": 12.6, "scores_mb": 201,
                                              "lstm_state_kb": 16.4})                      # rounded is fine
    grading.check_memory_predictions(lambda: {k: np.float32(v) if i % 2 else torch.tensor(v)
                                              for i, (k, v) in enumerate(predictions_with()().items())})


def test_the_measurements_are_the_chapter_s():
    from course_lib.gpt import GPTConfig, cache_bytes
    measured = dict(grading._measured_bytes())
    assert measured["kv_cache_mb"] == cache_bytes(GPTConfig.gpt2(), 1, 2048) == 150_994_944
    assert measured["kv_cache_mqa_mb"] == 150_994_944 // 12
    assert measured["scores_mb"] == 12 * 2048 ** 2 * 4 and measured["lstm_state_kb"] == 2 * 2 * 1024 * 4


PREDICTION_MISTAKES = [
    ("keys only", predictions_with(kv=1), "kv_cache_mb = 75.4975 MB is wrong: half: the cache holds the keys AND "
                                          "the values"),
    ("MiB", predictions_with(mb=2 ** 20), r"divided by 2\^20 = 1,048,576 \(MiB\)"),
    ("one layer's cache", predictions_with(per_layer=True), "one layer's cache; each of the 12 layers"),
    ("n_heads kept for MQA", predictions_with(mqa_heads=12), "multi-query attention keeps ONE key/value head"),
    ("T instead of T^2", predictions_with(scores_t=1), r"grows as T; naive attention stores a T x T matrix"),
    ("every layer's scores", predictions_with(score_layers=12), "ONE layer's"),
    ("one head's scores", predictions_with(score_heads=1), "that is one head"),
    ("LSTM without c", predictions_with(lstm_vectors=1), "h AND c"),
    ("KiB", predictions_with(kb=1024), r"divided by 1,024 \(KiB\)"),
    ("bits", predictions_with(bits=8), "that is in bits"),
    ("all wrong at once", predictions_with(kv=1, mqa_heads=12, scores_t=1, lstm_vectors=1),
     r"kv_cache_mb .*\n- kv_cache_mqa_mb .*\n- scores_mb .*\n- lstm_state_kb"),
    ("unknown mistake", lambda: {**predictions_with()(), "scores_mb": 3.0}, "check the formula, term by term"),
    ("missing key", lambda: {"kv_cache_mb": 151.0}, "expected a dict with the keys"),
    ("a string", lambda: {**predictions_with()(), "lstm_state_kb": "16.4"},
     "lstm_state_kb is a str .* expected a number"),
    ("not answered", not_answered, "not answered yet"),
]


@pytest.mark.parametrize("label, fn, pattern", PREDICTION_MISTAKES, ids=[m[0] for m in PREDICTION_MISTAKES])
def test_prediction_mistakes_are_named(label, fn, pattern):
    fails_with(grading.check_memory_predictions, fn, pattern)


# -- exercise 2: the winner of one comparison --------------------------------------------------------------

def make_winner(pick=None, refuse=True, message="rows", result=lambda row: row["model"]):
    def winner(rows):
        if refuse:
            if len(rows) < 2:
                raise ValueError(f"{message}: expected at least two results to compare, got {len(rows)}")
            if len({r["metric"] for r in rows}) > 1 or len({r["higher_is_better"] for r in rows}) > 1:
                raise ValueError(f"{message}: expected one metric, got {sorted({r['metric'] for r in rows})}")
        best = pick or (max if rows[0]["higher_is_better"] else min)
        return result(best(rows, key=lambda r: r["value"]))
    return winner


class AlwaysEqual(str):
    def __eq__(self, other):
        return True

    __hash__ = str.__hash__


def test_winner_reference_passes():
    reference = make_winner()
    for seed, n_models in ((0, 3), (1, 2), (2, 5), (3, 9)):
        grading.check_winner(reference, seed=seed, n_models=n_models)
    for case in grading._BAD_ROWS:
        grading.check_winner_refuses_bad_rows(reference, case=case)


def test_the_rows_are_as_gather_returns_them():
    rows = grading._case(0, 3, False)
    assert {"chapter", "source", "task", "model", "family", "metric", "value", "higher_is_better"} <= set(rows[0])
    assert len({r["value"] for r in rows}) == 3 and len({r["model"] for r in rows}) == 3    # no ties


WINNER_MISTAKES = [
    ("always max", make_winner(pick=max), "a loss's winner is the SMALLEST value"),
    ("always min", lambda rows: min(rows, key=lambda r: r["value"])["model"], "the LARGEST value wins"),
    ("the value", make_winner(result=lambda row: row["value"]), "you returned a value; return the name"),
    ("the row", make_winner(result=lambda row: row), "you returned the whole row"),
    ("the first row", lambda rows: rows[0]["model"], "expected '.*': "),
    ("a str subclass that equals anything", make_winner(result=lambda row: AlwaysEqual("nobody")),
     "expected .*: the winner has the best value"),
    ("not answered", not_answered, "not answered yet"),
]


@pytest.mark.parametrize("label, fn, pattern", WINNER_MISTAKES, ids=[m[0] for m in WINNER_MISTAKES])
def test_winner_mistakes_are_named(label, fn, pattern):
    fails_with(grading.check_winner, fn, pattern)


REFUSAL_MISTAKES = [
    ("compares across metrics", make_winner(refuse=False), "metrics", "rows of two metrics .* instead of refusing"),
    ("mixed directions compared", make_winner(refuse=False), "direction",
     "mix higher_is_better .* instead of refusing"),
    ("one row is a winner", make_winner(refuse=False), "one", "a single row .* instead of refusing"),
    ("no rows: rows[0]", make_winner(refuse=False), "none", "raised IndexError.*expected a ValueError naming `rows`"),
    ("no rows: min() of nothing", lambda rows: min(rows, key=lambda r: r["value"])["model"], "none",
     "should name the argument `rows`"),
    ("message without the name", make_winner(message="bad input"), "metrics", "should name the argument `rows`"),
    ("refuses everything", lambda rows: (_ for _ in ()).throw(ValueError("rows: no")), "metrics",
     "your function `winner` raised ValueError"),
    ("not answered", not_answered, "metrics", "not answered yet"),
]


@pytest.mark.parametrize("label, fn, case, pattern", REFUSAL_MISTAKES, ids=[m[0] for m in REFUSAL_MISTAKES])
def test_winner_refusal_mistakes_are_named(label, fn, case, pattern):
    fails_with(grading.check_winner_refuses_bad_rows, fn, pattern, case=case)


# -- exercise 3: the width for a parameter budget ------------------------------------------------------------

def make_width(tied=True, positions=True, step=None, rule="closest", refuse=True, message="budget"):
    def gpt_width_for(budget, n_layers, vocab_size, block_size, n_heads=4):
        if refuse and (isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0):
            raise ValueError(f"{message}: expected a positive int, got {budget!r}")

        def count(C):
            return (vocab_size * C * (1 if tied else 2) + (block_size * C if positions else 0)
                    + n_layers * (12 * C * C + 13 * C) + 2 * C)
        s = step or n_heads
        widths = range(s, 4096, s)
        if rule == "above":
            return next(C for C in widths if count(C) >= budget)
        if rule == "below":
            return max([s] + [C for C in widths if count(C) <= budget])
        return min(widths, key=lambda C: (abs(count(C) - budget), C))
    return gpt_width_for


def by_building_models(budget, n_layers, vocab_size, block_size, n_heads=4):
    """What a learner who does not derive the formula writes: build GPTs until one is too big."""
    from course_lib.gpt import GPT, GPTConfig
    from course_lib.utils import count_params
    best, C = None, n_heads
    while True:
        n = count_params(GPT(GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layers=n_layers,
                                       d_model=C, n_heads=n_heads)))
        if best is None or abs(n - budget) < abs(best[1] - budget):
            best = (C, n)
        if n > budget:
            return best[0]
        C += n_heads


HIDDEN_CASES = ((1_000_000, 3, 1000, 512, 4), (150_000, 1, 512, 32, 6), (5_000, 1, 300, 64, 4),
                (1_000, 2, 300, 64, 4))


def test_width_reference_passes():
    reference = make_width()
    grading.check_gpt_width(reference)
    grading.check_gpt_width(reference, cases=HIDDEN_CASES)
    grading.check_gpt_width(by_building_models, cases=((50_000, 1, 50, 16, 4), (1_000, 2, 300, 64, 4)))
    for budget in (0, -5, 1000.5):
        grading.check_gpt_width_refuses_bad_budget(reference, budget=budget)


def test_the_formula_is_the_model_s():
    for C, (n_layers, V, T, heads) in ((120, (2, 256, 256, 4)), (72, (4, 512, 128, 8)), (6, (1, 7, 5, 6))):
        assert grading._real_count(C, n_layers, V, T, heads) == grading._count(C, n_layers, V, T)


def test_the_default_cases_tell_the_mistakes_apart():
    """The first public case shows untied, positions and last-below; the second first-above."""
    case1, case2 = grading.check_gpt_width.__wrapped__.__kwdefaults__["cases"]

    def width(case, **mistake):
        budget, n_layers, vocab_size, block_size, n_heads = case
        return make_width(**mistake)(budget, n_layers, vocab_size, block_size, n_heads=n_heads)

    first = [width(case1, **kw) for kw in ({}, {"tied": False}, {"positions": False}, {"rule": "below"})]
    assert len(set(first)) == 4 and width(case1, rule="above") == first[0]
    assert width(case2, rule="above") not in (width(case2), width(case2, tied=False), width(case2, positions=False))


WIDTH_MISTAKES = [
    ("untied head", make_width(tied=False), "counted the output head as its own V x C matrix"),
    ("not a multiple of n_heads", make_width(step=1), "not a positive multiple of n_heads = 4"),
    ("positions forgotten", make_width(positions=False), "left out the position embeddings"),
    ("first width above", make_width(rule="above"), "first width above the budget"),
    ("last width below", make_width(rule="below"), "widest model within the budget"),
    ("untied, first above", make_width(tied=False, rule="above"),
     "counted the output head as its own V x C matrix .* and you took the first width above the budget"),
    ("a float", lambda *a, **k: float(make_width()(*a, **k)), "returned a float .* expected an int"),
    ("unknown mistake", lambda *a, **k: make_width()(*a, **k) + 8, "count embeddings V C"),
    ("not answered", not_answered, "not answered yet"),
]


@pytest.mark.parametrize("label, fn, pattern", WIDTH_MISTAKES, ids=[m[0] for m in WIDTH_MISTAKES])
def test_width_mistakes_are_named(label, fn, pattern):
    fails_with(grading.check_gpt_width, fn, pattern)


def test_the_smallest_budget_is_the_smallest_width():
    fails_with(grading.check_gpt_width, lambda *a, **k: 0, "not a positive multiple", cases=((1_000, 2, 300, 64, 4),))


BUDGET_MISTAKES = [
    ("zero accepted", make_width(refuse=False), 0, "instead of refusing"),
    ("a float accepted", make_width(refuse=False), 1000.5, "instead of refusing"),
    ("message without the name", make_width(message="bad"), -5, "should name the argument `budget`"),
    ("refuses everything", lambda *a, **k: (_ for _ in ()).throw(ValueError("budget")), 0,
     "your function `gpt_width_for` raised ValueError"),
    ("not answered", not_answered, 0, "not answered yet"),
]


@pytest.mark.parametrize("label, fn, budget, pattern", BUDGET_MISTAKES, ids=[m[0] for m in BUDGET_MISTAKES])
def test_budget_mistakes_are_named(label, fn, budget, pattern):
    fails_with(grading.check_gpt_width_refuses_bad_budget, fn, pattern, budget=budget)
