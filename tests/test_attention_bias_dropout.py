"""A float additive bias (T5's relative positions, ALiBi) and attention dropout on every backend
where they make sense, against a float64 reference written out here; and the fast path in
training: which backend a training step of the Transformer reaches, counted, for each backend."""
import math

import pytest
import torch

from course_lib import attention
from course_lib.attention import scaled_dot_product_attention
from course_lib.kernels import tiled_attention
from course_lib.transformer import Seq2SeqTransformer, TransformerConfig, transformer_loss


def reference(q, k, v, bias, mask=None, causal=False):
    """float64 softmax(q k^T / sqrt(D) + bias) v, index notation, independent of the code under test."""
    q, k, v, bias = q.double(), k.double(), v.double(), bias.double()
    T, S = q.shape[2], k.shape[2]
    scores = torch.einsum("bhtd,bhsd->bhts", q, k) / math.sqrt(q.shape[-1]) + bias
    allowed = torch.ones(T, S, dtype=torch.bool)
    if causal:
        allowed = torch.arange(S)[None, :] <= torch.arange(T)[:, None]
    if mask is not None:
        allowed = allowed & mask
    weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), -1).nan_to_num(0.0)
    return torch.einsum("bhts,bhsd->bhtd", weights, v)


def _inputs(B, H, T, S, D, bias_shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, H, n, D, generator=g).requires_grad_() for n in (T, S, S))
    bias = (2 * torch.randn(*bias_shape, generator=g)).requires_grad_()
    dout = torch.randn(B, H, T, D, generator=g)
    return q, k, v, bias, dout


def _grads(fn, xs, dout):
    out = fn(*xs)
    return [out, *torch.autograd.grad(out, xs, dout)]


CASES = [  # B, H, T, S, D, bias shape: per head (T5), shared over the batch, full, ragged T != S
    (2, 3, 7, 7, 16, (1, 3, 7, 7)),
    (2, 2, 33, 20, 8, (2, 2, 33, 20)),
    (1, 4, 20, 45, 16, (1, 4, 1, 45)),
]


@pytest.mark.parametrize("backend", ["naive", "sdpa", "tiled", "auto"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "T{}S{}".format(c[2], c[3]))
@pytest.mark.parametrize("with_mask", [False, True], ids=["bias", "bias+mask"])
def test_bias_matches_float64_reference_with_gradients(backend, causal, case, with_mask):
    *shape, bias_shape = case
    q, k, v, bias, dout = _inputs(*shape, bias_shape)
    mask = None
    if with_mask:
        mask = torch.rand(shape[0], 1, shape[2], shape[3], generator=torch.Generator().manual_seed(3)) > 0.3
        mask[0, 0, 1] = False                          # a query with no key: output 0, no nan
    if backend == "tiled":
        fn = lambda a, b, c, d: tiled_attention(a, b, c, mask=mask, causal=causal, bias=d,  # noqa: E731
                                                block_q=8, block_k=16)
    else:
        fn = lambda a, b, c, d: scaled_dot_product_attention(a, b, c, mask=mask, causal=causal,  # noqa: E731
                                                             bias=d, backend=backend)
    got = _grads(fn, (q, k, v, bias), dout)
    xs64 = [t.detach().double().requires_grad_() for t in (q, k, v, bias)]
    want = _grads(lambda a, b, c, d: reference(a, b, c, d, mask, causal), xs64, dout.double())
    for name, a, b in zip(("out", "dq", "dk", "dv", "dbias"), got, want):
        assert a.shape == b.shape and torch.isfinite(a).all(), name
        error = (a.double() - b).abs().max().item()
        assert error <= 3e-5 * max(1.0, b.abs().max().item()), f"{name}: max error {error:.2e}"


def test_bias_shifts_attention_as_expected():
    # a large bias on one key makes every query attend to that key only: the output is its value
    q, k, v, _, _ = _inputs(1, 1, 5, 6, 8, (1,))
    bias = torch.zeros(1, 1, 5, 6)
    bias[..., 4] = 1e4
    for backend in ("naive", "sdpa", "tiled"):
        out = scaled_dot_product_attention(q, k, v, bias=bias, backend=backend)
        torch.testing.assert_close(out, v[:, :, 4:5].expand_as(out))


def test_triton_refuses_bias_mask_and_dropout_by_name():
    q = torch.randn(1, 1, 4, 16)
    with pytest.raises(ValueError, match="bias: the 'triton' backend takes no bias"):
        scaled_dot_product_attention(q, q, q, bias=torch.zeros(1, 1, 4, 4), backend="triton")
    with pytest.raises(ValueError, match="dropout_p: the 'triton' backend"):
        scaled_dot_product_attention(q, q, q, dropout_p=0.1, backend="triton")


def test_bias_bad_input_names_the_argument():
    q = torch.randn(2, 2, 4, 8)
    with pytest.raises(TypeError, match="bias: expected a float tensor"):
        scaled_dot_product_attention(q, q, q, bias=torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"bias: expected a shape broadcastable to \(B, H, T, S\)"):
        scaled_dot_product_attention(q, q, q, bias=torch.zeros(3, 4, 4))
    with pytest.raises(TypeError, match="bias: expected dtype torch.float32"):
        scaled_dot_product_attention(q, q, q, bias=torch.zeros(4, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"dropout_p: expected a probability in \[0, 1\)"):
        scaled_dot_product_attention(q, q, q, dropout_p=1.0)


# ---- dropout -----------------------------------------------------------------------------------
def test_tiled_dropout_gradients_are_exact():
    # gradcheck with the same dropout masks in every evaluation (seeded): the backward regenerates
    # each tile's mask from its seed, so the gradient must be that of the forward it ran
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, n, 4, generator=g, dtype=torch.float64).requires_grad_() for n in (5, 7, 7))
    bias = torch.randn(1, 2, 5, 7, generator=g, dtype=torch.float64).requires_grad_()

    def fn(a, b, c, d):
        torch.manual_seed(123)
        return tiled_attention(a, b, c, bias=d, dropout_p=0.3, causal=True, block_q=2, block_k=3)

    assert torch.autograd.gradcheck(fn, (q, k, v, bias))
    assert not torch.equal(fn(q, k, v, bias), tiled_attention(q, k, v, bias=bias, causal=True))


@pytest.mark.parametrize("backend", ["naive", "sdpa", "tiled"])
def test_dropout_is_unbiased(backend):
    # E[dropout(P) / (1 - p)] = P: the mean over many draws approaches the output without dropout
    q, k, v, _, _ = _inputs(1, 2, 6, 9, 8, (1,))
    q, k, v = q.detach(), k.detach(), v.detach()
    torch.manual_seed(0)
    exact = scaled_dot_product_attention(q, k, v, backend="naive")
    draws = torch.stack([scaled_dot_product_attention(q, k, v, dropout_p=0.5, backend=backend)
                         for _ in range(600)])
    spread = draws.std(0) / math.sqrt(len(draws))          # standard error of the mean
    assert (draws.std(0) > 0).all()                          # dropout did something
    assert ((draws.mean(0) - exact).abs() <= 6 * spread + 1e-6).all()


# ---- the fast path in training -----------------------------------------------------------------
def _count_backends(monkeypatch):
    counts = {}
    for name, run in list(attention.RUN_BACKEND.items()):
        def counted(*args, _name=name, _run=run):
            counts[_name] = counts.get(_name, 0) + 1
            return _run(*args)
        monkeypatch.setitem(attention.RUN_BACKEND, name, counted)
    return counts


def _training_step(backend, dropout=0.1):
    torch.manual_seed(0)
    model = Seq2SeqTransformer(TransformerConfig(12, 12, d_model=16, n_heads=2, d_ff=32, dropout=dropout,
                                                 backend=backend)).train()
    src = torch.randint(3, 12, (4, 6))
    src_mask = torch.ones(4, 6, dtype=torch.bool)
    src_mask[0, 4:] = False
    tgt = torch.randint(3, 12, (4, 5))
    loss = transformer_loss(model, (src, src_mask, tgt, tgt))
    loss.backward()
    return loss.detach()


@pytest.mark.parametrize("backend", ["naive", "sdpa", "tiled"])
def test_a_training_step_with_dropout_reaches_the_chosen_backend(backend, monkeypatch):
    counts = _count_backends(monkeypatch)
    _training_step(backend)
    # 2 encoder self-attentions, 2 decoder self- and 2 cross-attentions: all six on the backend
    assert counts == {backend: 6}


def test_auto_trains_on_sdpa_on_the_cpu(monkeypatch):
    counts = _count_backends(monkeypatch)
    _training_step("auto")
    assert counts == {"sdpa": 6}


def test_training_step_backends_agree_without_dropout():
    losses = {b: float(_training_step(b, dropout=0.0)) for b in ("naive", "sdpa", "tiled")}
    assert max(losses.values()) - min(losses.values()) < 1e-5, losses
