"""course_lib.grading.ch07_gpt: the reference answers pass, and each known mistake, written as the
function a learner would write, gets the message that names it."""
import math

import pytest
import torch

from course_lib.grading import ch07_gpt as grading
from grading_support import fails_with


# -- exercise 1: causal attention ---------------------------------------------------------------------

def attention_with(mask_fn=lambda T: torch.ones(T, T, dtype=torch.bool).tril(), scale=True, dim=-1):
    def causal_attention(q, k, v):
        T = q.shape[-2]
        scores = q @ k.transpose(-2, -1) / (math.sqrt(q.shape[-1]) if scale else 1.0)
        mask = mask_fn(T)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        return torch.softmax(scores, dim=dim) @ v
    return causal_attention


def test_causal_attention_reference_passes():
    grading.check_causal_attention(attention_with())
    grading.check_causal_attention(attention_with(), seed=1, batch=1, heads=3, T=7, D=8)
    sdpa = lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)  # noqa: E731
    grading.check_causal_attention(sdpa)


CAUSAL_MISTAKES = [
    ("future leaked", attention_with(lambda T: None), "future leaked"),
    ("diagonal masked", attention_with(lambda T: torch.ones(T, T, dtype=torch.bool).tril(-1)), "diagonal"),
    ("inverted", attention_with(lambda T: torch.ones(T, T, dtype=torch.bool).triu()), "inverted"),
    ("no scale", attention_with(scale=False), "1/sqrt"),
    ("wrong axis", attention_with(dim=-2), "wrong axis"),
    ("None", lambda q, k, v: None, "returned None"),
    ("raises", lambda q, k, v: q @ k, "raised RuntimeError"),
]


@pytest.mark.parametrize("name, fn, pattern", CAUSAL_MISTAKES, ids=[m[0] for m in CAUSAL_MISTAKES])
def test_causal_attention_mistakes_are_named(name, fn, pattern):
    fails_with(grading.check_causal_attention, fn, pattern)


# -- exercise 2: one KV-cache step --------------------------------------------------------------------

def kv_step_with(advance=True, append=True, include_new=True):
    def kv_step(x_t, cache_k, cache_v, P, W_q, W_k, W_v):
        S = cache_k.shape[1]
        h = x_t + P[S if advance else 0]
        q, k, v = h @ W_q, h @ W_k, h @ W_v
        new_k = torch.cat([cache_k, k[:, None]], dim=1)
        new_v = torch.cat([cache_v, v[:, None]], dim=1)
        K, V = (new_k, new_v) if include_new else (cache_k, cache_v)
        if K.shape[1] == 0:
            out = torch.zeros_like(q)
        else:
            w = torch.softmax((K @ q[:, :, None])[..., 0] / math.sqrt(q.shape[-1]), dim=-1)
            out = (w[:, :, None] * V).sum(1)
        return (out, new_k, new_v) if append else (out, cache_k, cache_v)
    return kv_step


def test_kv_step_reference_passes():
    grading.check_kv_step(kv_step_with())
    grading.check_kv_step(kv_step_with(), seed=1, batch=1, T=9, C=6, D=3)


KV_MISTAKES = [
    ("not appended", kv_step_with(append=False), "cache was not appended"),
    ("positions not advanced", kv_step_with(advance=False), "position is not advanced"),
    ("attends to the cache only", kv_step_with(include_new=False), "only to the cached keys"),
    ("one thing returned", lambda *a: a[1], "must return three things"),
]


@pytest.mark.parametrize("name, fn, pattern", KV_MISTAKES, ids=[m[0] for m in KV_MISTAKES])
def test_kv_step_mistakes_are_named(name, fn, pattern):
    fails_with(grading.check_kv_step, fn, pattern)


# -- exercise 3: top-k and top-p ----------------------------------------------------------------------

def top_k(logits, k):
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p(logits, p):
    probs = logits.softmax(-1)
    sorted_probs, order = probs.sort(-1, descending=True)
    drop = sorted_probs.cumsum(-1) - sorted_probs >= p
    return logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))


def test_top_k_top_p_reference_passes():
    grading.check_top_k(top_k)
    grading.check_top_k(top_k, seed=1, k=1)
    grading.check_top_p(top_p)
    grading.check_top_p(top_p, seed=1, p=0.95)
    grading.check_top_p(top_p, seed=2, p=0.05)


TOP_K_MISTAKES = [
    ("k - 1", lambda logits, k: top_k(logits, k - 1), "kept 3 tokens instead of k = 4"),
    ("k + 1", lambda logits, k: top_k(logits, k + 1), "kept 5 tokens"),
    ("smallest", lambda logits, k: -top_k(-logits, k), "k smallest"),
    ("zeros", lambda logits, k: top_k(logits, k).nan_to_num(neginf=0.0), "set the removed tokens to 0"),
    ("probs", lambda logits, k: top_k(logits, k).softmax(-1), "returned probabilities"),
    ("scaled", lambda logits, k: top_k(logits, k) / 2, "changed the values"),
]


@pytest.mark.parametrize("name, fn, pattern", TOP_K_MISTAKES, ids=[m[0] for m in TOP_K_MISTAKES])
def test_top_k_mistakes_are_named(name, fn, pattern):
    fails_with(grading.check_top_k, fn, pattern)


def top_p_strict(logits, p):
    probs = logits.softmax(-1)
    sorted_probs, order = probs.sort(-1, descending=True)
    drop = sorted_probs.cumsum(-1) > p
    drop[..., 0] = False
    return logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))


def top_p_sorted(logits, p):
    sorted_logits, _ = logits.sort(-1, descending=True)
    return top_p(sorted_logits, p)


TOP_P_MISTAKES = [
    ("crossing token dropped", top_p_strict, "kept mass is below p"),
    ("sorted order", top_p_sorted, "sorted order"),
    ("least likely", lambda logits, p: -top_p(-logits, p), "least likely"),
    ("None", lambda logits, p: None, "returned None"),
]


@pytest.mark.parametrize("name, fn, pattern", TOP_P_MISTAKES, ids=[m[0] for m in TOP_P_MISTAKES])
def test_top_p_mistakes_are_named(name, fn, pattern):
    fails_with(grading.check_top_p, fn, pattern)


# -- exercise 4: positions processed ------------------------------------------------------------------

def positions_processed(P, N, use_cache):
    return P + N - 1 if use_cache else sum(P + n for n in range(N))


def test_positions_prediction_reference_passes():
    grading.check_positions_prediction(positions_processed)


POSITION_MISTAKES = [
    ("off by one", lambda P, N, c: P + N if c else positions_processed(P, N, c), "off by one"),
    ("no prefill", lambda P, N, c: N if c else positions_processed(P, N, c), "prefill"),
    ("constant length", lambda P, N, c: positions_processed(P, N, c) if c else N * (P + N), "as long as it is then"),
    ("sum too long", lambda P, N, c: positions_processed(P, N, c) if c else sum(range(P, P + N + 1)), "off by one"),
    ("float", lambda P, N, c: float(positions_processed(P, N, c)), "expected an int"),
]


@pytest.mark.parametrize("name, fn, pattern", POSITION_MISTAKES, ids=[m[0] for m in POSITION_MISTAKES])
def test_positions_mistakes_are_named(name, fn, pattern):
    fails_with(grading.check_positions_prediction, fn, pattern)
