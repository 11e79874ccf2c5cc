"""course_lib.grading.ch05_self_attention: the reference answers pass, and each known mistake,
written as the function a learner would write, gets the message that names it."""
import math

import numpy as np
import pytest
import torch

from course_lib.grading import ch05_self_attention as grading
from grading_support import fails_with



# -- exercise 1: scaled dot-product attention --------------------------------------------------------------

def attention(q, k, v):
    weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    return weights @ v, weights


def with_weights(fn):
    def wrong(q, k, v):
        w = fn(q, k, v)
        return w @ v, w
    return wrong


@pytest.mark.parametrize("kwargs", [{}, {"S": 4, "D": 4}, {"seed": 3, "batch": 1, "T": 5, "S": 2, "D": 8, "D_v": 3}])
def test_attention_reference_passes(kwargs):
    grading.check_scaled_attention(attention, **kwargs)


ATTENTION_MISTAKES = [
    ("no scale", with_weights(lambda q, k, v: torch.softmax(q @ k.transpose(-2, -1), -1)),
     "forgot the 1/sqrt\\(d_k\\) scale", {}),
    ("divided by d_k", with_weights(lambda q, k, v: torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1], -1)),
     "divided by d_k instead of sqrt", {}),
    ("multiplied", with_weights(lambda q, k, v: torch.softmax(q @ k.transpose(-2, -1) * math.sqrt(q.shape[-1]), -1)),
     "multiplied by sqrt", {}),
    ("softmax over queries", with_weights(lambda q, k, v: torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), 1)),
     "softmax over the wrong axis", {}),
    ("K not transposed, square", with_weights(lambda q, k, v: torch.softmax(q @ k / math.sqrt(q.shape[-1]), -1)),
     "K is not transposed", {"S": 4, "D": 4}),
    ("K not transposed, error", with_weights(lambda q, k, v: torch.softmax(q @ k / math.sqrt(q.shape[-1]), -1)),
     r"(?s)raised RuntimeError.*Hint: .*transpose the last two axes of k", {}),
    ("scores returned", lambda q, k, v: (attention(q, k, v)[0], q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])),
     "you returned the scores", {}),
    ("swapped order", lambda q, k, v: attention(q, k, v)[::-1], r"returned \(weights, output\)", {}),
    ("mean of values", lambda q, k, v: (v.mean(1, keepdim=True).expand(-1, q.shape[1], -1), attention(q, k, v)[1]),
     "weighted sum of the values", {}),
    ("keys weighted", lambda q, k, v: (attention(q, k, v)[1] @ k, attention(q, k, v)[1]),
     "weight the values, not the keys", {"D_v": 4}),
    ("one tensor", lambda q, k, v: attention(q, k, v)[0], r"expected a pair \(output, weights\)", {}),
    ("not answered", lambda q, k, v: (_ for _ in ()).throw(NotImplementedError()), "not answered yet", {}),
    ("in place", lambda q, k, v: attention(q.mul_(1.0001), k, v), "changed its input `q` in place", {}),
]


@pytest.mark.parametrize("name, fn, pattern, kwargs", ATTENTION_MISTAKES, ids=[m[0] for m in ATTENTION_MISTAKES])
def test_attention_mistakes_are_named(name, fn, pattern, kwargs):
    fails_with(grading.check_scaled_attention, fn, pattern, **kwargs)


# -- exercise 2: the causal mask ---------------------------------------------------------------------------

def causal_mask(T):
    return torch.ones(T, T, dtype=torch.bool).tril()


def test_causal_mask_reference_passes():
    grading.check_causal_mask(causal_mask)
    grading.check_causal_mask(causal_mask, T=1)
    grading.check_causal_mask(lambda T: torch.arange(T)[None, :] <= torch.arange(T)[:, None], T=7)


CAUSAL_MISTAKES = [
    ("inverted", lambda T: ~causal_mask(T), "inverted"),
    ("upper", lambda T: causal_mask(T).T, "upper triangle"),
    ("no diagonal", lambda T: causal_mask(T).tril(-1), "diagonal is excluded"),
    ("float", lambda T: torch.ones(T, T).tril(), "right pattern as torch.float32"),
    ("additive", lambda T: torch.zeros(T, T).masked_fill(~causal_mask(T), float("-inf")), "additive mask"),
    ("wrong size", lambda T: causal_mask(T + 1), r"shape \(6, 6\)"),
    ("None", lambda T: None, "returned None"),
]


@pytest.mark.parametrize("name, fn, pattern", CAUSAL_MISTAKES, ids=[m[0] for m in CAUSAL_MISTAKES])
def test_causal_mistakes_are_named(name, fn, pattern):
    fails_with(grading.check_causal_mask, fn, pattern)


# -- exercise 3: attention with a mask -----------------------------------------------------------------------

def masked_attention(q, k, v, mask):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    return weights @ v, weights


def scores_of(q, k):
    return q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])


@pytest.mark.parametrize("kwargs", [{}, {"causal": True, "T": 5}, {"seed": 2, "lengths": (1, 3), "T": 2}])
def test_masked_attention_reference_passes(kwargs):
    grading.check_masked_attention(masked_attention, **kwargs)


MASK_MISTAKES = [
    ("ignored", lambda q, k, v, m: masked_attention(q, k, v, torch.ones_like(m)), "mask is ignored", {}),
    ("inverted", lambda q, k, v, m: masked_attention(q, k, v, ~m), "mask is inverted", {}),
    ("inverted, causal", lambda q, k, v, m: masked_attention(q, k, v, ~m), "mask is inverted", {"causal": True}),
    ("filled with 0", lambda q, k, v, m: (lambda w: (w @ v, w))(torch.softmax(scores_of(q, k).masked_fill(~m, 0.0), -1)),
     "filled the masked scores with 0", {}),
    ("multiplied after", lambda q, k, v, m: (lambda w: (w @ v, w))(torch.softmax(scores_of(q, k), -1) * m),
     "multiplied the weights by the mask", {}),
    ("no scale", lambda q, k, v, m: (lambda w: (w @ v, w))(
        torch.softmax((q @ k.transpose(-2, -1)).masked_fill(~m, float("-inf")), -1)), "forgot the 1/sqrt", {}),
    ("one minus mask", lambda q, k, v, m: masked_attention(q, k, v, 1 - m), r"(?s)raised .*Hint: mask is a bool tensor", {}),
    ("keys weighted", lambda q, k, v, m: (masked_attention(q, k, v, m)[1] @ k, masked_attention(q, k, v, m)[1]),
     "weights @ v", {"causal": True}),
]


@pytest.mark.parametrize("name, fn, pattern, kwargs", MASK_MISTAKES, ids=[m[0] for m in MASK_MISTAKES])
def test_masked_attention_mistakes_are_named(name, fn, pattern, kwargs):
    fails_with(grading.check_masked_attention, fn, pattern, **kwargs)


# -- exercise 4: split and merge heads -----------------------------------------------------------------------

def split_heads(x, n_heads):
    B, T, C = x.shape
    return x.view(B, T, n_heads, C // n_heads).transpose(1, 2)


def merge_heads(x):
    B, H, T, D = x.shape
    return x.transpose(1, 2).reshape(B, T, H * D)


def test_split_merge_reference_passes():
    grading.check_split_heads(split_heads)
    grading.check_split_heads(split_heads, seed=1, n_heads=2, D=3, T=4)
    grading.check_merge_heads(merge_heads)
    grading.check_merge_heads(merge_heads, seed=1, n_heads=3, D=2, T=5)


SPLIT_MISTAKES = [
    ("no transpose", lambda x, H: x.reshape(x.shape[0], H, x.shape[1], x.shape[2] // H), "reshaped straight to"),
    ("interleaved", lambda x, H: x.view(x.shape[0], x.shape[1], x.shape[2] // H, H).permute(0, 3, 1, 2), "interleaved"),
    ("wrong axes", lambda x, H: x.view(x.shape[0], x.shape[1], H, x.shape[2] // H), r"axes look swapped"),
]


@pytest.mark.parametrize("name, fn, pattern", SPLIT_MISTAKES, ids=[m[0] for m in SPLIT_MISTAKES])
def test_split_mistakes_are_named(name, fn, pattern):
    fails_with(grading.check_split_heads, fn, pattern)


MERGE_MISTAKES = [
    ("no transpose", lambda x: x.reshape(x.shape[0], x.shape[2], -1), "without moving the head axis back"),
    ("interleaved", lambda x: x.permute(0, 2, 3, 1).reshape(x.shape[0], x.shape[2], -1), "interleaved"),
    ("kept 4 dims", lambda x: x.transpose(1, 2), "expected"),
]


@pytest.mark.parametrize("name, fn, pattern", MERGE_MISTAKES, ids=[m[0] for m in MERGE_MISTAKES])
def test_merge_mistakes_are_named(name, fn, pattern):
    fails_with(grading.check_merge_heads, fn, pattern)


# -- exercise 5: sinusoidal positions ------------------------------------------------------------------------

def sinusoidal(T, d_model):
    t = torch.arange(T, dtype=torch.float32)[:, None]
    omega = 1.0 / 10000 ** (torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)
    pe = torch.zeros(T, d_model)
    pe[:, 0::2] = torch.sin(t * omega)
    pe[:, 1::2] = torch.cos(t * omega)
    return pe


def sinusoidal_np(T, d_model):
    t = np.arange(T)[:, None]
    omega = 1.0 / 10000 ** (np.arange(0, d_model, 2) / d_model)
    pe = np.zeros((T, d_model))
    pe[:, 0::2], pe[:, 1::2] = np.sin(t * omega), np.cos(t * omega)
    return pe


def test_sinusoidal_reference_passes():
    grading.check_sinusoidal(sinusoidal)
    grading.check_sinusoidal(sinusoidal, T=30, d_model=16)
    grading.check_sinusoidal(sinusoidal_np)  # a NumPy answer is accepted


def variant(**kw):
    return lambda T, d: grading._sinusoidal(T, d, **kw).float()


SIN_MISTAKES = [
    ("swapped", variant(swap=True), "sin and cos are swapped"),
    ("halves", variant(interleave=False), "all the sines first"),
    ("exponent i", variant(exponent="i"), "2i / d_model"),
    ("from 1", variant(start=1), "positions start at 0"),
    ("multiplied", variant(multiply=True), "divide the position"),
    ("transposed", lambda T, d: sinusoidal(T, d).T, r"shape \(8, 12\)"),
    ("list", lambda T, d: sinusoidal(T, d).tolist(), "returned a list"),
]


@pytest.mark.parametrize("name, fn, pattern", SIN_MISTAKES, ids=[m[0] for m in SIN_MISTAKES])
def test_sinusoidal_mistakes_are_named(name, fn, pattern):
    fails_with(grading.check_sinusoidal, fn, pattern)


# -- exercise 6: a prediction, what self-attention knows about order ----------------------------------------

ORDER = {"no_positions": True, "padding_mask": True, "causal_mask": False, "rope_permuted": False,
         "rope_shifted": True, "sinusoidal_shifted": False}


@pytest.mark.parametrize("kwargs", [{}, {"seed": 1, "T": 11, "C": 24, "H": 3}, {"seed": 2, "T": 5, "C": 8, "H": 2},
                                    {"seed": 3, "T": 2, "C": 4, "H": 1}])
def test_order_predictions_reference_passes(kwargs):
    grading.check_order_predictions(lambda: dict(ORDER), **kwargs)


def test_order_cases_are_measured_far_from_the_threshold():
    for seed, T, C, H in ((0, 8, 16, 4), (1, 11, 24, 3), (2, 5, 8, 2)):
        gaps = grading._order_gaps(seed, T, C, H)
        for key, holds in ORDER.items():
            assert (gaps[key] < 1e-5) if holds else (gaps[key] > 0.05), (seed, key, gaps[key])


ORDER_MISTAKES = [
    ("causal_mask", r"'causal_mask'.*you predicted True.*tied to positions, not to tokens"),
    ("padding_mask", r"'padding_mask'.*you predicted False.*computed from the tokens"),
    ("rope_permuted", r"'rope_permuted'.*you predicted True.*changes the offsets"),
    ("rope_shifted", r"'rope_shifted'.*you predicted False.*every offset t - s stays the same"),
    ("sinusoidal_shifted", r"'sinusoidal_shifted'.*you predicted True.*x_t \+ PE_t"),
    ("no_positions", r"'no_positions'.*you predicted False.*treats its tokens as a set"),
]


@pytest.mark.parametrize("key, pattern", ORDER_MISTAKES, ids=[m[0] for m in ORDER_MISTAKES])
def test_order_mistakes_are_named(key, pattern):
    message = fails_with(grading.check_order_predictions, lambda: {**ORDER, key: not ORDER[key]}, pattern)
    assert "1 of 6 predictions are wrong" in message


def test_order_all_wrong_lists_every_case():
    message = fails_with(grading.check_order_predictions, lambda: {k: not v for k, v in ORDER.items()},
                         "6 of 6 predictions are wrong")
    assert all(f"'{key}'" in message for key in ORDER)


@pytest.mark.parametrize("fn, pattern", [
    (lambda: [True] * 6, "expected a dict with exactly the keys"),
    (lambda: {k: v for k, v in ORDER.items() if k != "rope_shifted"}, "expected a dict with exactly the keys"),
    (lambda: {**ORDER, "causal_mask": 0}, "'causal_mask' should be True or False"),
    (lambda: {**ORDER, "no_positions": "yes"}, "'no_positions' should be True or False"),
    (lambda: None, "expected a dict"),
    (lambda: (_ for _ in ()).throw(NotImplementedError()), "not answered yet"),
], ids=["list", "missing key", "int", "str", "None", "not answered"])
def test_order_bad_answers_are_refused(fn, pattern):
    fails_with(grading.check_order_predictions, fn, pattern)
