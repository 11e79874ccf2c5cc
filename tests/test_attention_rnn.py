"""Chapter 04's attention for RNN decoders: masked softmax, additive (Bahdanau) and dot/general
(Luong) scorers. Parity with torch built-ins, masks that ignore padding, clear errors."""
import pytest
import torch
import torch.nn.functional as F

from course_lib.attention import naive_attention
from course_lib.attention_rnn import (AdditiveAttention, DotProductAttention, GeneralAttention, make_scorer,
                                      masked_softmax)


def _mask(lengths, S):
    return torch.arange(S)[None, :] < torch.tensor(lengths)[:, None]


# --- masked softmax ---------------------------------------------------------------------------

def test_masked_softmax_without_mask_is_softmax():
    x = torch.randn(3, 4, 7)
    for dim in (-1, 0, 1):
        torch.testing.assert_close(masked_softmax(x, None, dim=dim), torch.softmax(x, dim=dim))
    torch.testing.assert_close(masked_softmax(x, torch.ones(3, 4, 7, dtype=torch.bool)), torch.softmax(x, -1))


def test_masked_softmax_is_softmax_over_the_kept_positions():
    torch.manual_seed(0)
    scores = torch.randn(4, 9)
    mask = _mask([9, 5, 1, 3], 9)
    weights = masked_softmax(scores, mask)
    assert (weights[~mask] == 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(4))
    for row, n in enumerate([9, 5, 1, 3]):
        torch.testing.assert_close(weights[row, :n], torch.softmax(scores[row, :n], dim=0))


def test_masked_softmax_ignores_the_values_under_the_mask():
    scores = torch.randn(2, 6)
    mask = _mask([4, 2], 6)
    changed = scores.clone()
    changed[~mask] = 1e4  # huge scores on padding must not matter
    torch.testing.assert_close(masked_softmax(changed, mask), masked_softmax(scores, mask))


def test_masked_softmax_broadcasts_and_other_dims():
    scores = torch.randn(2, 3, 5)
    mask = _mask([5, 2], 5)[:, None, :]  # (B, 1, S) for every query
    torch.testing.assert_close(masked_softmax(scores, mask), masked_softmax(scores, mask.expand(2, 3, 5)))
    # along dim 0 the kept entries still sum to one
    mask0 = torch.tensor([[True, False], [True, True], [False, False]])
    w = masked_softmax(torch.randn(3, 2), mask0, dim=0)
    torch.testing.assert_close(w.sum(0), torch.tensor([1.0, 1.0]))
    assert w[0, 1] == 0 and (w[2] == 0).all()


def test_masked_softmax_empty_rows_are_zero_not_nan_and_gradients_finite():
    scores = torch.randn(3, 4, requires_grad=True)
    mask = _mask([4, 0, 2], 4)
    weights = masked_softmax(scores, mask)
    assert torch.isfinite(weights).all() and (weights[1] == 0).all()
    (weights * torch.randn(3, 4)).sum().backward()
    assert torch.isfinite(scores.grad).all() and (scores.grad[1] == 0).all()
    # the same convention as the reference attention of chapter 05
    q, k = torch.randn(3, 1, 1, 4), torch.randn(3, 1, 4, 4)
    _, ref = naive_attention(q, k, k, mask=mask[:, None, None, :])
    ours = masked_softmax((q @ k.transpose(-2, -1)) / 2.0, mask[:, None, None, :])
    torch.testing.assert_close(ours, ref)


def test_masked_softmax_bad_input():
    with pytest.raises(TypeError, match="scores: expected a floating-point"):
        masked_softmax(torch.arange(4), None)
    with pytest.raises(TypeError, match="mask: expected a bool tensor"):
        masked_softmax(torch.randn(2, 4), torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"mask: expected a shape broadcastable to scores \(2, 4\), got \(2, 5\)"):
        masked_softmax(torch.randn(2, 4), torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="dim: expected an int in"):
        masked_softmax(torch.randn(2, 4), None, dim=2)


# --- the scorers --------------------------------------------------------------------------------

def test_dot_attention_equals_torch_sdpa():
    torch.manual_seed(0)
    B, S, D = 3, 6, 8
    query, keys, values = torch.randn(B, D), torch.randn(B, S, D), torch.randn(B, S, 5)
    mask = _mask([6, 4, 1], S)
    for scaled, scale in ((False, 1.0), (True, D ** -0.5)):
        context, weights = DotProductAttention(scaled=scaled)(query, keys, values, mask=mask)
        ref = F.scaled_dot_product_attention(query[:, None, None], keys[:, None], values[:, None],
                                             attn_mask=mask[:, None, None, :], scale=scale)
        torch.testing.assert_close(context, ref[:, 0, 0])
        _, ref_weights = naive_attention(query[:, None, None], keys[:, None], keys[:, None],
                                         mask=mask[:, None, None, :], sm_scale=scale)
        torch.testing.assert_close(weights, ref_weights[:, 0, 0])


def test_general_attention_is_dot_attention_after_W_a():
    torch.manual_seed(1)
    query, keys = torch.randn(2, 4), torch.randn(2, 5, 6)
    general = GeneralAttention(d_query=4, d_key=6)
    context, weights = general(query, keys)
    expected = torch.softmax(torch.einsum("bq,qk,bsk->bs", query, general.W_a.weight, keys), dim=-1)
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(context, torch.einsum("bs,bsk->bk", expected, keys))
    square = GeneralAttention(6, 6)
    with torch.no_grad():
        square.W_a.weight.copy_(torch.eye(6))
    q = torch.randn(2, 6)
    for a, b in zip(square(q, keys), DotProductAttention()(q, keys)):
        torch.testing.assert_close(a, b)


def test_additive_attention_matches_its_equation():
    torch.manual_seed(2)
    additive = AdditiveAttention(d_query=4, d_key=6, d_attention=7)
    query, keys, values = torch.randn(3, 4), torch.randn(3, 5, 6), torch.randn(3, 5, 2)
    mask = _mask([5, 3, 2], 5)
    context, weights = additive(query, keys, values, mask=mask)
    hidden = torch.tanh((query @ additive.W_q.weight.T)[:, None, :] + keys @ additive.W_k.weight.T
                        + additive.W_k.bias)                               # (B, S, d_attention)
    scores = (hidden @ additive.v.weight.T)[..., 0]                         # (B, S)
    expected = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(context, torch.einsum("bs,bsd->bd", expected, values))


@pytest.mark.parametrize("kind", ["additive", "dot", "general"])
def test_many_queries_equal_one_at_a_time_and_prepared_keys(kind):
    torch.manual_seed(3)
    scorer = make_scorer(kind, 8, 8, 16)
    queries, keys = torch.randn(2, 4, 8), torch.randn(2, 6, 8)
    mask = _mask([6, 3], 6)
    context, weights = scorer(queries, keys, mask=mask)
    assert context.shape == (2, 4, 8) and weights.shape == (2, 4, 6)
    prepared = scorer.prepare_keys(keys)
    for t in range(4):
        c_t, w_t = scorer(queries[:, t], keys, mask=mask, prepared=prepared)
        torch.testing.assert_close(c_t, context[:, t])
        torch.testing.assert_close(w_t, weights[:, t])


@pytest.mark.parametrize("kind", ["additive", "dot", "general"])
def test_masks_ignore_padding(kind):
    """A padded batch gives each example the context it gets alone, whatever sits in the padding."""
    torch.manual_seed(4)
    scorer = make_scorer(kind, 8, 8, 16)
    lengths = [6, 2, 4]
    keys, query = torch.randn(3, 6, 8), torch.randn(3, 8)
    mask = _mask(lengths, 6)
    context, weights = scorer(query, keys, mask=mask)
    assert (weights[~mask] == 0).all()
    noisy = keys.clone()
    noisy[~mask] = 100 * torch.randn(int((~mask).sum()), 8)
    torch.testing.assert_close(scorer(query, noisy, mask=mask)[0], context)
    for b, n in enumerate(lengths):
        alone, _ = scorer(query[b:b + 1], keys[b:b + 1, :n])
        torch.testing.assert_close(alone[0], context[b])


def test_attention_gradients_reach_query_and_keys():
    scorer = AdditiveAttention(4, 4, 8)
    query = torch.randn(2, 4, requires_grad=True)
    keys = torch.randn(2, 5, 4, requires_grad=True)
    context, _ = scorer(query, keys, mask=_mask([5, 2], 5))
    context.sum().backward()
    assert query.grad.abs().sum() > 0 and keys.grad.abs().sum() > 0
    assert (keys.grad[1, 2:] == 0).all() and keys.grad[1, :2].abs().sum() > 0  # none into padding


def test_scorer_bad_input():
    additive = AdditiveAttention(4, 6, 8)
    with pytest.raises(ValueError, match=r"query: expected shape .*got \(2, 5\)"):
        additive(torch.randn(2, 5), torch.randn(2, 3, 6))
    with pytest.raises(ValueError, match=r"keys: expected shape \(B, S, 6\)"):
        additive(torch.randn(2, 4), torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match=r"query: expected shape \(2, 4\), got \(3, 4\)"):
        additive(torch.randn(3, 4), torch.randn(2, 3, 6))
    with pytest.raises(ValueError, match=r"query: expected shape \(B, d_q\) or \(B, T, d_q\)"):
        additive(torch.randn(4), torch.randn(2, 3, 6))
    with pytest.raises(TypeError, match="mask: expected a bool tensor of shape"):
        additive(torch.randn(2, 4), torch.randn(2, 3, 6), mask=torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"mask: expected shape \(2, 3\), got \(2, 4\)"):
        additive(torch.randn(2, 4), torch.randn(2, 3, 6), mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"values: expected shape \(2, 3, \*\)"):
        additive(torch.randn(2, 4), torch.randn(2, 3, 6), torch.randn(2, 4, 6))
    with pytest.raises(ValueError, match="dot-product attention needs d_q == d_k"):
        DotProductAttention()(torch.randn(2, 4), torch.randn(2, 3, 6))
    with pytest.raises(ValueError, match="d_attention: expected a positive int"):
        AdditiveAttention(4, 4, 0)
    with pytest.raises(ValueError, match=r"kind: expected one of \('additive', 'dot', 'general'\)"):
        make_scorer("concat", 4, 4)
    with pytest.raises(ValueError, match="'dot' attention needs equal widths"):
        make_scorer("dot", 4, 6)
