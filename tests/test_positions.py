"""Relative positions inside attention (chapter 05): RoPE equal to Hugging Face's RoFormer,
ALiBi's slopes and softmax equal to Hugging Face's BLOOM, and the properties each is built for."""
import math

import pytest
import torch
from transformers.models.bloom.modeling_bloom import build_alibi_tensor
from transformers.models.roformer.modeling_roformer import (RoFormerSelfAttention,
                                                            RoFormerSinusoidalPositionalEmbedding)

from course_lib.attention import (alibi_bias, alibi_slopes, apply_rope, naive_attention,
                                  scaled_dot_product_attention)


def test_rope_equals_roformer():
    torch.manual_seed(0)
    q, k = torch.randn(2, 3, 10, 8), torch.randn(2, 3, 10, 8)
    table = RoFormerSinusoidalPositionalEmbedding(10, 8)
    table.weight.data = table.create_weight()
    sinusoidal_pos = table((1, 10))[None, None]                                 # (1, 1, T, D)
    hf_q, hf_k = RoFormerSelfAttention.apply_rotary_position_embeddings(sinusoidal_pos, q, k)
    torch.testing.assert_close(apply_rope(q), hf_q, atol=1e-5, rtol=0)
    torch.testing.assert_close(apply_rope(k), hf_k, atol=1e-5, rtol=0)


def test_rope_score_depends_only_on_offset_and_keeps_norms():
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 1, 16).double(), torch.randn(1, 1, 1, 16).double()
    T = 40
    rq, rk = apply_rope(q.expand(1, 1, T, 16)), apply_rope(k.expand(1, 1, T, 16))  # same vector at every t
    scores = (rq @ rk.transpose(-2, -1))[0, 0]                                 # (T, T)
    for offset in range(-T + 1, T):
        diagonal = scores.diagonal(offset)
        assert (diagonal - diagonal[0]).abs().max() < 1e-5, offset
    assert scores.diagonal(0)[0] != pytest.approx(scores.diagonal(5)[0])       # and it does depend on it
    torch.testing.assert_close(rq.norm(dim=-1), q.norm(dim=-1).expand(1, 1, T))


def test_rope_offset_continues_positions():
    x = torch.randn(1, 2, 12, 8)
    torch.testing.assert_close(apply_rope(x)[:, :, 5:], apply_rope(x[:, :, 5:], offset=5))


@pytest.mark.parametrize("n_heads", [1, 4, 8, 12])
def test_alibi_slopes_equal_bloom(n_heads):
    from transformers.models.bloom.modeling_bloom import _get_alibi_slopes
    torch.testing.assert_close(alibi_slopes(n_heads), _get_alibi_slopes(n_heads, "cpu"))
    if n_heads == 8:
        assert alibi_slopes(8).tolist() == [2 ** -h for h in range(1, 9)]      # the paper's 1/2 .. 1/256


def test_alibi_softmax_equals_bloom_under_causal_mask():
    torch.manual_seed(0)
    B, H, T, D = 2, 4, 9, 8
    q, k, v = (torch.randn(B, H, T, D) for _ in range(3))
    hf = build_alibi_tensor(torch.ones(B, T), H, torch.float32).view(B, H, 1, T)   # m_h * s
    ours = scaled_dot_product_attention(q, k, v, causal=True, bias=alibi_bias(H, T), backend="naive")
    theirs = scaled_dot_product_attention(q, k, v, causal=True, bias=hf, backend="naive")
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)        # they differ by m_h * t per row


def test_alibi_weights_decay_geometrically_with_distance():
    q = torch.zeros(1, 2, 6, 4)                                         # zero scores: only the bias acts
    _, w = naive_attention(q, q, q, causal=True, bias=alibi_bias(2, 6))
    last = w[0, :, -1]                                                  # (H, S): query at t = 5
    for h, m in enumerate(alibi_slopes(2).tolist()):
        torch.testing.assert_close(last[h, 1:] / last[h, :-1], torch.full((5,), math.exp(m)))


def test_alibi_backends_agree():
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 4, 7, 8) for _ in range(3))
    bias = alibi_bias(4, 7)
    reference = scaled_dot_product_attention(q, k, v, bias=bias, causal=True, backend="naive")
    for backend in ("sdpa", "tiled"):
        torch.testing.assert_close(scaled_dot_product_attention(q, k, v, bias=bias, causal=True,
                                                                backend=backend), reference)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="x: expected"):
        apply_rope(torch.randn(2, 8, 4))
    with pytest.raises(ValueError, match="d_head: expected an even"):
        apply_rope(torch.randn(1, 1, 3, 5))
    with pytest.raises(ValueError, match="n_heads"):
        alibi_slopes(0)
    with pytest.raises(ValueError, match="S: expected"):
        alibi_bias(2, 4, S=0)
