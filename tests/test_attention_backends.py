"""Attention backends (naive, sdpa, tiled, auto) against a float64 reference; masks; bad input.

The Triton backend is tested under the interpreter in ``test_flash_attention_triton.py``.
"""
import math

import pytest
import torch

from course_lib.attention import causal_mask, naive_attention, scaled_dot_product_attention
from course_lib.kernels import tiled_attention
from course_lib.kernels.memory import peak_memory_mb

CPU_BACKENDS = ["naive", "sdpa", "tiled", "auto"]


def reference(q, k, v, mask=None, causal=False, sm_scale=None):
    """float64 attention written out index by index, independent of the code under test."""
    q, k, v = q.double(), k.double(), v.double()
    T, S, D = q.shape[2], k.shape[2], q.shape[3]
    scale = 1 / math.sqrt(D) if sm_scale is None else sm_scale
    scores = torch.einsum("bhtd,bhsd->bhts", q, k) * scale
    allowed = torch.ones(T, S, dtype=torch.bool)
    if causal:
        i, j = torch.arange(T)[:, None], torch.arange(S)[None, :]
        allowed = j <= i
    if mask is not None:
        allowed = allowed & mask
    scores = scores.masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # rows with no key: weight 0
    return torch.einsum("bhts,bhsd->bhtd", weights, v)


def inputs(B, H, T, S, D, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, H, n, D, generator=g, dtype=dtype).requires_grad_() for n in (T, S, S))
    dout = torch.randn(B, H, T, D, generator=g, dtype=dtype)
    return q, k, v, dout


def outputs_and_grads(fn, q, k, v, dout):
    out = fn(q, k, v)
    return [out, *torch.autograd.grad(out, (q, k, v), dout)]


def assert_matches_reference(fn, q, k, v, dout, tol, **ref_kwargs):
    got = outputs_and_grads(fn, q, k, v, dout)
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    want = outputs_and_grads(lambda a, b, c: reference(a, b, c, **ref_kwargs), q64, k64, v64, dout.double())
    for name, a, b in zip(("out", "dq", "dk", "dv"), got, want):
        assert a.dtype == q.dtype and a.shape == b.shape, name
        assert torch.isfinite(a).all(), f"{name} has nan or inf"
        error = (a.double() - b).abs().max().item()
        assert error <= tol * max(1.0, b.abs().max().item()), f"{name}: max error {error:.2e}"


# ---- every backend equals the reference ------------------------------------------------------
SHAPES = [  # B, H, T, S, D: ragged lengths, T != S both ways, batch and heads > 1
    (1, 1, 1, 1, 16),
    (2, 3, 7, 7, 16),
    (1, 2, 100, 130, 32),
    (2, 2, 130, 100, 64),
    (1, 1, 1, 100, 8),
]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}H{}T{}S{}D{}".format(*s))
def test_backend_matches_float64_reference(backend, causal, shape):
    q, k, v, dout = inputs(*shape)
    assert_matches_reference(
        lambda a, b, c: scaled_dot_product_attention(a, b, c, causal=causal, backend=backend),
        q, k, v, dout, tol=2e-5, causal=causal)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_backend_with_mask_and_fully_masked_rows(backend):
    q, k, v, dout = inputs(2, 2, 37, 29, 16)
    mask = torch.rand(2, 1, 37, 29, generator=torch.Generator().manual_seed(1)) > 0.4  # broadcast over H
    mask[0, 0, 3] = False  # a query that may attend to nothing: output and gradient 0, no nan
    for causal in (False, True):
        assert_matches_reference(
            lambda a, b, c, causal=causal: scaled_dot_product_attention(a, b, c, mask=mask, causal=causal,
                                                                        backend=backend),
            q, k, v, dout, tol=2e-5, mask=mask, causal=causal)
    out = scaled_dot_product_attention(q, k, v, mask=mask, backend=backend)
    assert out[0, :, 3].abs().max().item() == 0.0


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_custom_scale(backend):
    q, k, v, dout = inputs(1, 2, 20, 24, 16)
    assert_matches_reference(
        lambda a, b, c: scaled_dot_product_attention(a, b, c, backend=backend, sm_scale=0.3),
        q, k, v, dout, tol=2e-5, sm_scale=0.3)


@pytest.mark.parametrize("block_q, block_k", [(16, 16), (32, 16), (16, 48), (7, 5)])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("T, S", [(100, 130), (130, 100), (1, 37), (64, 64)])
def test_tiled_with_many_blocks(block_q, block_k, causal, T, S):
    """Small blocks so that the loops, the diagonal and the ragged last blocks are all exercised."""
    q, k, v, dout = inputs(2, 2, T, S, 16)
    assert_matches_reference(
        lambda a, b, c: tiled_attention(a, b, c, causal=causal, block_q=block_q, block_k=block_k),
        q, k, v, dout, tol=2e-5, causal=causal)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("backend", ["naive", "sdpa", "tiled"])
def test_half_precision_inputs(backend, dtype):
    q, k, v, dout = inputs(1, 2, 50, 70, 32, dtype=dtype)
    tol = {"tiled": 4, "naive": 16, "sdpa": 16}[backend] * torch.finfo(dtype).eps  # tiled sums in fp32
    assert_matches_reference(
        lambda a, b, c: scaled_dot_product_attention(a, b, c, causal=True, backend=backend),
        q, k, v, dout, tol=tol, causal=True)


def test_naive_attention_returns_weights_that_sum_to_one():
    q, k, v, _ = inputs(2, 3, 9, 11, 16)
    out, weights = naive_attention(q, k, v, causal=True)
    assert weights.shape == (2, 3, 9, 11)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 9))
    assert weights[..., 0, 1:].abs().max().item() == 0.0  # query 0 sees key 0 only
    torch.testing.assert_close(out, weights @ v)


def test_causal_is_top_left_aligned():
    assert causal_mask(2, 4).tolist() == [[True, False, False, False], [True, True, False, False]]
    q, k, v, _ = inputs(1, 1, 2, 4, 8)
    out = scaled_dot_product_attention(q, k, v, causal=True, backend="tiled")
    torch.testing.assert_close(out[0, 0, 0], v[0, 0, 0])  # query 0 sees key 0 only


def test_tiled_memory_is_linear_and_below_naive():
    """Peak of PyTorch's allocations (torch.profiler memory events) during forward + backward."""
    def peak_bytes(fn, n):
        q, k, v, dout = inputs(1, 1, n, n, 32)
        return peak_memory_mb(lambda: fn(q, k, v).backward(dout)) * 2**20

    naive = {n: peak_bytes(lambda a, b, c: naive_attention(a, b, c)[0], n) for n in (512, 1024)}
    tiled = {n: peak_bytes(lambda a, b, c: tiled_attention(a, b, c, block_q=128, block_k=128), n)
             for n in (512, 1024)}
    assert naive[1024] / naive[512] > 3.5          # quadratic: doubling N quadruples it
    assert tiled[1024] / tiled[512] < 2.5          # linear (plus a constant per block)
    assert naive[1024] > 5 * tiled[1024]


# ---- bad input gets a clear error that names the argument ------------------------------------
def _qkv(T=5, S=6, D=8, **kw):
    return torch.randn(2, 3, T, D, **kw), torch.randn(2, 3, S, D, **kw), torch.randn(2, 3, S, D, **kw)


@pytest.mark.parametrize("backend", ["naive", "sdpa", "tiled"])
def test_bad_shapes_name_the_argument(backend):
    q, k, v = _qkv()
    attn = lambda *a, **kw: scaled_dot_product_attention(*a, backend=backend, **kw)  # noqa: E731
    with pytest.raises(ValueError, match=r"q: expected shape \(B, H, T, D\), got \(3, 5, 8\) with 3 dims"):
        attn(q[0], k, v)
    with pytest.raises(ValueError, match=r"k: expected shape \(B, H, S, D\) = \(2, 3, S, 8\) to match q"):
        attn(q, k[:1], v)          # batch
    with pytest.raises(ValueError, match=r"k: expected shape .* got \(2, 2, 6, 8\)"):
        attn(q, k[:, :2], v)       # heads
    with pytest.raises(ValueError, match=r"v: expected shape .* got \(2, 3, 6, 4\)"):
        attn(q, k, v[..., :4])     # head dim
    with pytest.raises(ValueError, match=r"v: expected shape \(B, H, S, D\) with S = 6 as in k, got \(2, 3, 4, 8\)"):
        attn(q, k, v[:, :, :4])    # S differs between k and v
    with pytest.raises(ValueError, match=r"k: expected shape \(B, H, S, D\), got \(2, 3, 6, 8, 1\) with 5 dims"):
        attn(q, k[..., None], v)


@pytest.mark.parametrize("backend", ["naive", "sdpa", "tiled"])
def test_bad_dtypes_devices_masks_scales(backend):
    q, k, v = _qkv()
    attn = lambda *a, **kw: scaled_dot_product_attention(*a, backend=backend, **kw)  # noqa: E731
    with pytest.raises(TypeError, match="k: expected dtype torch.float32 like q, got torch.float64"):
        attn(q, k.double(), v)
    with pytest.raises(TypeError, match="q: expected a floating-point dtype, got torch.int64"):
        attn(q.long(), k.long(), v.long())
    with pytest.raises(ValueError, match="v: expected device cpu like q, got meta"):
        attn(q, k, v.to("meta"))
    with pytest.raises(TypeError, match="v: expected a torch.Tensor, got list"):
        attn(q, k, v.tolist())
    with pytest.raises(TypeError, match=r"mask: expected dtype torch.bool \(True = may attend\), got torch.float32"):
        attn(q, k, v, mask=torch.ones(5, 6))
    with pytest.raises(ValueError, match=r"mask: expected a shape broadcastable to \(B, H, T, S\) = \(2, 3, 5, 6\), got \(6, 5\)"):
        attn(q, k, v, mask=torch.ones(6, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="sm_scale: expected a positive float"):
        attn(q, k, v, sm_scale=-1.0)
    with pytest.raises(TypeError, match="causal: expected a bool, got Tensor"):
        attn(q, k, v, torch.ones(5, 6, dtype=torch.bool), torch.ones(5, 6, dtype=torch.bool))


def test_unknown_backend_and_triton_mask():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match=r"backend: expected one of \('auto', 'naive', 'sdpa', 'tiled', 'triton'\), got 'fast'"):
        scaled_dot_product_attention(q, k, v, backend="fast")
    with pytest.raises(ValueError, match="mask: the 'triton' backend takes no mask"):
        scaled_dot_product_attention(q, k, v, mask=torch.ones(5, 6, dtype=torch.bool), backend="triton")


def test_tiled_block_sizes_are_checked():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="block_k: expected a positive int, got 0"):
        tiled_attention(q, k, v, block_k=0)


def test_auto_uses_sdpa_on_cpu():
    q, k, v = _qkv()
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, backend="auto"),
                               scaled_dot_product_attention(q, k, v, backend="sdpa"), rtol=0, atol=0)
