"""Chapter 05's layers in course_lib.attention: MultiHeadAttention (parity with
torch.nn.MultiheadAttention), mask builders, head split/merge, positional encodings, bad input."""
import math

import pytest
import torch

from course_lib.attention import (LearnedPositions, MultiHeadAttention, causal_mask, merge_heads,
                                  padding_mask, sinusoidal_positions, split_heads)


def torch_mha(d_model=16, n_heads=4, bias=True, batch_first=True, seed=0):
    torch.manual_seed(seed)
    m = torch.nn.MultiheadAttention(d_model, n_heads, bias=bias, batch_first=batch_first)
    with torch.no_grad():  # torch zeroes the biases at init; random ones make the copy test bite
        if bias:
            m.in_proj_bias.normal_()
            m.out_proj.bias.normal_()
    return m.eval()


# ---- parity with torch.nn.MultiheadAttention --------------------------------------------------
@pytest.mark.parametrize("bias", [True, False])
def test_from_torch_matches_self_attention_and_weights(bias):
    m = torch_mha(bias=bias)
    ours = MultiHeadAttention.from_torch(m).eval()
    x = torch.randn(3, 7, 16)
    want, want_w = m(x, x, x)  # torch averages the weights over heads by default
    got, got_w = ours(x, average_weights=True)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got_w, want_w)
    _, per_head = ours(x)
    assert per_head.shape == (3, 4, 7, 7)
    torch.testing.assert_close(per_head.mean(1), want_w)
    _, torch_per_head = m(x, x, x, average_attn_weights=False)
    torch.testing.assert_close(per_head, torch_per_head)


def test_from_torch_cross_attention_padding_and_fast_backends():
    m = torch_mha()
    ours = MultiHeadAttention.from_torch(m).eval()
    query, memory = torch.randn(2, 5, 16), torch.randn(2, 9, 16)
    ids = torch.tensor([[4, 5, 6, 7, 0, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6, 7, 8, 9]])
    want, want_w = m(query, memory, memory, key_padding_mask=ids == 0)  # torch: True = ignore
    got, got_w = ours(query, memory, mask=padding_mask(ids), average_weights=True)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got_w, want_w)
    assert got_w[0, :, 4:].abs().max() == 0  # nothing lands on padding
    for backend in ("naive", "sdpa", "tiled", "auto"):
        ours.backend = backend
        fast, none = ours(query, memory, mask=padding_mask(ids), need_weights=False)
        assert none is None
        torch.testing.assert_close(fast, want, atol=1e-5, rtol=1e-4)


def test_from_torch_causal_and_not_batch_first():
    m = torch_mha(batch_first=False)
    ours = MultiHeadAttention.from_torch(m).eval()
    x = torch.randn(2, 6, 16)
    additive = torch.nn.Transformer.generate_square_subsequent_mask(6)
    want, _ = m(x.transpose(0, 1), x.transpose(0, 1), x.transpose(0, 1), attn_mask=additive)
    got, w = ours(x, causal=True)
    torch.testing.assert_close(got, want.transpose(0, 1))
    assert torch.all(w.triu(1) == 0)
    got_mask, _ = ours(x, mask=causal_mask(6))
    torch.testing.assert_close(got_mask, got)


def test_gradients_match_torch():
    m = torch_mha()
    ours = MultiHeadAttention.from_torch(m)
    x1 = torch.randn(2, 5, 16, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    m(x1, x1, x1)[0].pow(2).sum().backward()
    ours(x2, need_weights=False)[0].pow(2).sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad)
    torch.testing.assert_close(ours.q_proj.weight.grad, m.in_proj_weight.grad[:16])
    torch.testing.assert_close(ours.out_proj.weight.grad, m.out_proj.weight.grad)


def test_dropout_acts_on_weights_in_training_only():
    mha = MultiHeadAttention(16, 4, dropout=0.5)
    x = torch.randn(2, 8, 16)
    mha.eval()
    a, _ = mha(x)
    b, _ = mha(x)
    torch.testing.assert_close(a, b)
    mha.train()
    torch.manual_seed(0)
    c, _ = mha(x)
    assert (c - a).abs().max() > 1e-3


def test_heads_are_independent_slices():
    # changing head 2's query weights changes head 2's weights only
    mha = MultiHeadAttention(16, 4).eval()
    x = torch.randn(1, 5, 16)
    _, before = mha(x)
    with torch.no_grad():
        mha.q_proj.weight[8:12] *= 3.0  # rows 8..11 = head 2 (D = 4)
    _, after = mha(x)
    changed = (after - before).abs().amax(dim=(0, 2, 3))
    assert changed[2] > 1e-3 and torch.all(changed[[0, 1, 3]] == 0)


# ---- split and merge -------------------------------------------------------------------------
def test_split_merge_round_trip_and_layout():
    x = torch.arange(2 * 3 * 8, dtype=torch.float32).view(2, 3, 8)
    heads = split_heads(x, 4)
    assert heads.shape == (2, 4, 3, 2)
    torch.testing.assert_close(heads[1, 2, 0], x[1, 0, 4:6])  # head h holds channels h*D .. (h+1)*D
    torch.testing.assert_close(merge_heads(heads), x)


# ---- masks -----------------------------------------------------------------------------------
def test_padding_mask_from_ids_and_lengths():
    ids = torch.tensor([[3, 4, 0, 0], [5, 6, 7, 8]])
    m = padding_mask(ids)
    assert m.shape == (2, 1, 1, 4) and m.dtype == torch.bool
    assert m[0, 0, 0].tolist() == [True, True, False, False]
    assert torch.equal(padding_mask(torch.tensor([2, 4])), m)
    assert padding_mask(torch.tensor([1, 2]), max_len=5).shape == (2, 1, 1, 5)
    assert padding_mask(torch.tensor([[9, 1, 9]]), pad_id=9)[0, 0, 0].tolist() == [False, True, False]


def test_causal_mask_default_square():
    m = causal_mask(4)
    assert m.shape == (4, 4) and torch.equal(m, torch.ones(4, 4, dtype=torch.bool).tril())
    assert causal_mask(2, 3).shape == (2, 3)


def test_causal_self_attention_leaks_nothing_from_the_future():
    mha = MultiHeadAttention(16, 4).eval()
    x = torch.randn(1, 8, 16)
    y = x.clone()
    y[:, 5:] = torch.randn(1, 3, 16)
    a, _ = mha(x, causal=True, need_weights=False)
    b, _ = mha(y, causal=True, need_weights=False)
    torch.testing.assert_close(a[:, :5], b[:, :5])
    assert (a[:, 5:] - b[:, 5:]).abs().max() > 1e-3


# ---- positional encodings ----------------------------------------------------------------------
def test_sinusoidal_positions_formula():
    pe = sinusoidal_positions(50, 16)
    assert pe.shape == (50, 16)
    t, i = 7, 3
    angle = t / 10000 ** (2 * i / 16)
    assert math.isclose(pe[t, 2 * i].item(), math.sin(angle), abs_tol=1e-6)
    assert math.isclose(pe[t, 2 * i + 1].item(), math.cos(angle), abs_tol=1e-6)
    # dot products depend only on the offset t - s: sum_i cos(w_i (t - s))
    gram = pe @ pe.T
    torch.testing.assert_close(gram[10, 4], gram[30, 24])
    torch.testing.assert_close(gram.diagonal(), torch.full((50,), 8.0))


def test_self_attention_is_permutation_equivariant_until_positions_are_added():
    mha = MultiHeadAttention(16, 4).eval()
    x = torch.randn(1, 6, 16)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    out, _ = mha(x)
    out_perm, _ = mha(x[:, perm])
    torch.testing.assert_close(out_perm, out[:, perm])
    pe = sinusoidal_positions(6, 16)
    a, _ = mha(x + pe)
    b, _ = mha(x[:, perm] + pe)
    assert (b - a[:, perm]).abs().max() > 1e-2
    learned = LearnedPositions(6, 16)
    a, _ = mha(learned(x))
    b, _ = mha(learned(x[:, perm]))
    assert (b - a[:, perm]).abs().max() > 1e-4


def test_learned_positions_add_and_train():
    lp = LearnedPositions(8, 4)
    x = torch.zeros(2, 5, 4)
    out = lp(x)
    torch.testing.assert_close(out[0], lp.weight[:5])
    out.sum().backward()
    assert lp.weight.grad[:5].abs().min() > 0 and lp.weight.grad[5:].abs().max() == 0


# ---- bad input ---------------------------------------------------------------------------------
def test_bad_input_errors_name_the_argument():
    with pytest.raises(ValueError, match="n_heads: expected a divisor of d_model = 10"):
        MultiHeadAttention(10, 4)
    with pytest.raises(ValueError, match="backend: expected one of"):
        MultiHeadAttention(8, 2, backend="fast")
    with pytest.raises(ValueError, match="dropout"):
        MultiHeadAttention(8, 2, dropout=1.5)
    mha = MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match=r"query: expected shape \(B, T, 8\)"):
        mha(torch.randn(2, 5, 6))
    with pytest.raises(ValueError, match=r"key: expected shape \(2, S, 8\)"):
        mha(torch.randn(2, 5, 8), torch.randn(3, 4, 8))
    with pytest.raises(ValueError, match="value"):
        mha(torch.randn(2, 5, 8), torch.randn(2, 4, 8), torch.randn(2, 3, 8))
    with pytest.raises(TypeError, match="mask: expected dtype torch.bool"):
        mha(torch.randn(2, 5, 8), mask=torch.ones(5, 5))
    with pytest.raises(ValueError, match="mask: expected a shape broadcastable"):
        mha(torch.randn(2, 5, 8), mask=torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="m: expected a torch.nn.MultiheadAttention"):
        MultiHeadAttention.from_torch(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="add_bias_kv"):
        MultiHeadAttention.from_torch(torch.nn.MultiheadAttention(8, 2, add_bias_kv=True))
    with pytest.raises(TypeError, match="x: expected an integer tensor"):
        padding_mask(torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"x: expected token ids \(B, S\) or lengths \(B,\)"):
        padding_mask(torch.zeros(1, 2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="max_len"):
        padding_mask(torch.tensor([3, 5]), max_len=4)
    with pytest.raises(ValueError, match="d_model: expected an even number"):
        sinusoidal_positions(4, 7)
    with pytest.raises(ValueError, match="T: expected a positive int"):
        sinusoidal_positions(0, 8)
    with pytest.raises(ValueError, match="x: expected at most max_len = 4 positions, got T = 6"):
        LearnedPositions(4, 8)(torch.randn(1, 6, 8))
    with pytest.raises(ValueError, match="n_heads: expected a divisor of C = 8"):
        split_heads(torch.randn(1, 2, 8), 3)


def test_all_masked_row_gives_zero_not_nan():
    mha = MultiHeadAttention(8, 2).eval()
    x = torch.randn(1, 3, 8)
    mask = torch.tensor([[True, True, True], [False, False, False], [True, False, True]])
    out, w = mha(x, mask=mask)
    assert torch.isfinite(out).all() and torch.all(w[0, :, 1] == 0)
    fast, _ = mha(x, mask=mask, need_weights=False)
    torch.testing.assert_close(fast, out)
