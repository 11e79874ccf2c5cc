"""The check helpers of chapter 04's exercises: the reference passes, each known mistake gets its
message, and broken answers get the core's clear messages."""
import math

import pytest
import torch

from course_lib.grading import ch04_attention as grading
from grading_support import fails_with


# -- exercise 1: masked softmax ---------------------------------------------------------------------

def masked_softmax(scores, mask):
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)


def test_masked_softmax_reference_passes():
    grading.check_masked_softmax(masked_softmax)
    grading.check_masked_softmax(masked_softmax, seed=1, lengths=(1, 7, 3, 2), S=7)


@pytest.mark.parametrize("wrong, match", [
    (lambda s, m: torch.softmax(s, -1), "the mask is ignored"),
    (lambda s, m: torch.softmax(s.masked_fill(m, float("-inf")), -1), "the mask is inverted"),
    (lambda s, m: torch.softmax(s.masked_fill(~m, 0.0), -1), "filled the padded positions with 0"),
    (lambda s, m: torch.softmax(s, -1) * m, "multiplied the weights by the mask"),
    (lambda s, m: torch.softmax(s.masked_fill(~m, float("-inf")), 0), "softmax over the wrong axis|NaN"),
    (lambda s, m: s.masked_fill(~m, 0.0), "returned the masked scores"),
    (lambda s, m: torch.softmax(s * m.log(), -1), "NaN or inf"),
    (lambda s, m: torch.softmax(s.masked_fill(1 - m, float("-inf")), -1), "invert it with ~mask"),
    (lambda s, m: None, "returned None"),
])
def test_masked_softmax_mistakes(wrong, match):
    with pytest.raises(AssertionError, match=match):
        grading.check_masked_softmax(wrong)


def test_masked_softmax_wrong_axis_with_all_rows_full():
    # lengths where every column has a real token: the dim-0 softmax is finite and named
    with pytest.raises(AssertionError, match="softmax over the wrong axis"):
        grading.check_masked_softmax(lambda s, m: torch.softmax(s.masked_fill(~m, float("-inf")), 0),
                                     lengths=(5, 5, 4))


# -- exercise 2: additive scores ----------------------------------------------------------------------

def additive_scores(query, keys, W_q, W_k, v):
    return torch.tanh((query @ W_q)[:, None, :] + keys @ W_k) @ v


def test_additive_reference_passes():
    grading.check_additive_scores(additive_scores)
    grading.check_additive_scores(additive_scores, seed=1, square=True)
    grading.check_additive_scores(additive_scores, seed=2, batch=1, S=1)


@pytest.mark.parametrize("wrong, match, square", [
    (lambda q, k, Wq, Wk, v: ((q @ Wq)[:, None] + k @ Wk) @ v, "forgot the tanh", False),
    (lambda q, k, Wq, Wk, v: torch.tanh((q @ Wq)[:, None] + k @ Wk).sum(-1), "forgot v", False),
    (lambda q, k, Wq, Wk, v: torch.tanh(((q @ Wq)[:, None] + k @ Wk) @ v), "applied v before the tanh", False),
    (lambda q, k, Wq, Wk, v: torch.tanh((q @ Wk)[:, None] + k @ Wq) @ v, "W_q and W_k are swapped", True),
    (lambda q, k, Wq, Wk, v: torch.tanh((q @ Wq.T)[:, None] + k @ Wk.T) @ v, "transposed", True),
    (lambda q, k, Wq, Wk, v: torch.softmax(additive_scores(q, k, Wq, Wk, v), -1), "used a softmax", False),
    (lambda q, k, Wq, Wk, v: torch.tanh(q @ Wq + k @ Wk) @ v, "add a key axis", False),
])
def test_additive_mistakes(wrong, match, square):
    with pytest.raises(AssertionError, match=match):
        grading.check_additive_scores(wrong, square=square)


# -- exercise 3: general scores -------------------------------------------------------------------------

def general_scores(query, keys, W_a):
    return (keys @ (query @ W_a)[:, :, None])[..., 0]


def test_general_reference_passes():
    grading.check_general_scores(general_scores)
    grading.check_general_scores(general_scores, seed=1, square=True)


@pytest.mark.parametrize("wrong, match, square", [
    (lambda q, k, W: (k @ (q @ W.T)[:, :, None])[..., 0], "W_a transposed", True),
    (lambda q, k, W: (k @ q[:, :, None])[..., 0], "forgot W_a", True),
    (lambda q, k, W: general_scores(q, k, W) / math.sqrt(k.shape[-1]), "divided by sqrt", False),
    (lambda q, k, W: torch.softmax(general_scores(q, k, W), -1), "returned weights", False),
    (lambda q, k, W: (k @ (q @ W.T)[:, :, None])[..., 0], "cannot be multiplied|raised", False),
])
def test_general_mistakes(wrong, match, square):
    with pytest.raises(AssertionError, match=match):
        grading.check_general_scores(wrong, square=square)


# -- exercise 4: dot attention ---------------------------------------------------------------------------

def dot_attention(query, keys, values, mask):
    scores = (keys @ query[:, :, None])[..., 0]
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    return (weights[:, None, :] @ values)[:, 0], weights


def test_dot_attention_reference_passes():
    grading.check_dot_attention(dot_attention)
    grading.check_dot_attention(dot_attention, seed=1, lengths=(2, 4), S=4, d=3, d_v=2)


def _scores(q, k):
    return (k @ q[:, :, None])[..., 0]


@pytest.mark.parametrize("wrong, match", [
    (lambda q, k, v, m: ((torch.softmax(_scores(q, k), -1)[:, None] @ v)[:, 0], torch.softmax(_scores(q, k), -1)),
     "the mask is ignored"),
    (lambda q, k, v, m: dot_attention(q / math.sqrt(q.shape[-1]), k, v, m), "divided the scores by sqrt"),
    (lambda q, k, v, m: (dot_attention(q, k, v, m)[0], _scores(q, k)), "you returned the scores"),
    (lambda q, k, v, m: (v.mean(1), dot_attention(q, k, v, m)[1]), "plain mean of the values"),
    (lambda q, k, v, m: ((v * m[..., None]).sum(1) / m.sum(1, keepdim=True), dot_attention(q, k, v, m)[1]),
     "mean of the real values"),
    (lambda q, k, v, m: ((dot_attention(q, k, v, m)[1][:, None] @ k)[:, 0], dot_attention(q, k, v, m)[1]),
     "not the keys|raised|shape"),
    (lambda q, k, v, m: dot_attention(q, k, v, m)[::-1], r"\(weights, context\)"),
    (lambda q, k, v, m: dot_attention(q, k, v, m)[0], "expected a pair"),
])
def test_dot_attention_mistakes(wrong, match):
    with pytest.raises(AssertionError, match=match):
        grading.check_dot_attention(wrong)


def test_dot_attention_context_from_keys_is_named():
    # with d_v == d the keys version has the right shape and only the values can tell
    wrong = lambda q, k, v, m: ((dot_attention(q, k, v, m)[1][:, None] @ k)[:, 0], dot_attention(q, k, v, m)[1])  # noqa: E731
    with pytest.raises(AssertionError, match="should weight the values, not the keys"):
        grading.check_dot_attention(wrong, d=5, d_v=5)


def test_dot_attention_feedback_gaps_of_issue_11():
    def inverted(q, k, v, m):
        w = torch.softmax(torch.einsum("bd,bsd->bs", q, k).masked_fill(m, float("-inf")), -1)
        return torch.einsum("bs,bsv->bv", w, v), w

    def batch_axis(q, k, v, m):
        w = torch.softmax(torch.einsum("bd,bsd->bs", q, k).masked_fill(~m, float("-inf")), 0)
        return torch.einsum("bs,bsv->bv", w.nan_to_num(0.0), v), w

    def from_keys(q, k, v, m):
        w = torch.softmax(torch.einsum("bd,bsd->bs", q, k).masked_fill(~m, float("-inf")), -1)
        return torch.einsum("bs,bsd->bd", w, k), w

    def sqrt_dv(q, k, v, m):
        w = torch.softmax((torch.einsum("bd,bsd->bs", q, k) / math.sqrt(v.shape[-1])).masked_fill(~m, float("-inf")), -1)
        return torch.einsum("bs,bsv->bv", w, v), w

    fails_with(grading.check_dot_attention, inverted, "the mask is inverted")
    fails_with(grading.check_dot_attention, batch_axis, "softmax over the wrong axis")
    fails_with(grading.check_dot_attention, batch_axis, "softmax over the batch axis", lengths=(3, 2, 1))  # NaN columns
    fails_with(grading.check_dot_attention, from_keys, "weight the values, not the keys")
    fails_with(grading.check_dot_attention, sqrt_dv, r"sqrt\(d_v\)")


def test_general_scores_without_W_a_gets_a_hint():
    fails_with(grading.check_general_scores, lambda query, keys, W_a: torch.einsum("bd,bsd->bs", query, keys),
               "did you forget W_a")


# -- exercise 5: a diagnosis, find the bug --------------------------------------------------------------------

from course_lib.attention_rnn import DotProductAttention  # noqa: E402


def probe(B=3, S=5, d=4, d_v=6, lengths=(5, 3, 1), same_values=False):
    g = torch.Generator().manual_seed(0)
    query = torch.randn(B, d, generator=g)
    keys = torch.randn(B, S, d, generator=g)
    values = keys if same_values else torch.randn(B, S, d_v, generator=g)
    mask = torch.arange(S)[None, :] < torch.tensor(list(lengths))[:, None]
    return query, keys, values, mask


def make_find_bug(*, exact=False, check_context=True, check_rows=True, check_inverted=True, **probe_kwargs):
    """The reference diagnosis, or one with a known gap in its experiment."""
    def find_bug(attend):
        query, keys, values, mask = probe(**probe_kwargs)
        want_context, want_weights = DotProductAttention()(query, keys, values, mask)
        context, weights = attend(query, keys, values, mask)
        close = torch.equal if exact else (lambda a, b: a.shape == b.shape and torch.allclose(a, b, atol=1e-5))
        if close(weights, want_weights):
            return "ok" if not check_context or close(context, want_context) else "context_from_keys"
        if check_inverted and weights[mask].abs().max() < 1e-6:
            return "mask_inverted"
        if weights[~mask].abs().max() > 1e-6:
            return "mask_ignored"
        if check_rows and not torch.allclose(weights.sum(-1), torch.ones(len(mask)), atol=1e-5):
            return "softmax_axis"
        return "scaled"
    return find_bug


@pytest.mark.parametrize("variant", [0, 1])
def test_find_bug_reference_passes(variant):
    grading.check_find_bug(make_find_bug(), variant=variant)


@pytest.mark.parametrize("variant", [0, 1])
def test_each_suspect_has_exactly_its_bug(variant):
    query, keys, values, mask = probe()
    want_context, want_weights = DotProductAttention()(query, keys, values, mask)
    scaled_weights = DotProductAttention(scaled=True)(query, keys, values, mask)[1]
    for label, fn in grading._suspects(variant).items():
        context, weights = fn(query, keys, values, mask)
        assert torch.isfinite(weights).all() and torch.isfinite(context).all(), label
        weights_right = torch.allclose(weights, want_weights, atol=1e-6)
        assert weights_right == (label in ("ok", "context_from_keys")), label
        assert (weights[~mask].abs().max() > 0) == (label in ("mask_ignored", "mask_inverted")), label
        if label == "scaled":
            torch.testing.assert_close(weights, scaled_weights)
        if label == "context_from_keys":
            torch.testing.assert_close(context, torch.einsum("bs,bsd->bd", weights, keys))
        if label == "ok":
            torch.testing.assert_close(context, want_context)


def wrong_label(label):
    return lambda attend: (attend(*probe()), label)[1]


FIND_BUG_MISTAKES = [
    ("no padding", make_find_bug(lengths=(5, 5, 5)), "None of your calls had a False in the mask", {}),
    ("values are the keys", make_find_bug(same_values=True, d_v=4), "same tensor as keys and values", {}),
    ("context unchecked", make_find_bug(check_context=False), "compare the context with the reference", {}),
    ("rows unchecked", make_find_bug(check_rows=False), r"does not sum to 1.*weights.sum\(-1\)", {}),
    ("rows unchecked, batch of one", make_find_bug(check_rows=False, B=1, lengths=(3,)), "batch of one", {}),
    ("d = 1", make_find_bug(d=1), "d = 1, where sqrt", {}),
    ("inverted taken for ignored", make_find_bug(check_inverted=False), r"0 on the real positions", {}),
    ("always ok", wrong_label("ok"), r"answered 'ok' for a function whose bug is 'mask_ignored'", {}),
    ("never runs it", lambda attend: "ok", "never called the function", {}),
    ("label not in the list", wrong_label("mask bug"), "expected one of the labels", {}),
    ("None", lambda attend: None, "expected one of the labels", {}),
    ("raises", lambda attend: attend(torch.randn(2, 3), torch.randn(2, 4, 5), torch.randn(2, 4, 5),
                                     torch.ones(2, 4, dtype=torch.bool)), "raised RuntimeError", {}),
    ("not answered", lambda attend: (_ for _ in ()).throw(NotImplementedError()), "not answered yet", {}),
]


@pytest.mark.parametrize("name, fn, pattern, kwargs", FIND_BUG_MISTAKES, ids=[m[0] for m in FIND_BUG_MISTAKES])
def test_find_bug_mistakes_are_named(name, fn, pattern, kwargs):
    fails_with(grading.check_find_bug, fn, pattern, **kwargs)


def test_find_bug_comparing_with_equality_is_named():
    # variant 1's correct suspect normalises by hand: its weights differ from the library's in the last bits
    query, keys, values, mask = probe()
    ours = grading._suspects(1)["ok"](query, keys, values, mask)[1]
    if torch.equal(ours, DotProductAttention()(query, keys, values, mask)[1]):
        pytest.skip("on this machine the two orders of operations happen to agree bit for bit")
    fails_with(grading.check_find_bug, make_find_bug(exact=True), r"answered 'scaled' for a function with no bug.*"
               r"tolerance, torch.allclose", variant=1)
