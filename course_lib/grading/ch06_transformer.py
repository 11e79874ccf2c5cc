"""Check helpers for the exercises of chapter 06 (the Transformer).

One helper per exercise; each builds its inputs from ``seed``, calls the learner's function
safely, and names the usual mistake when the answer is wrong:

1. ``check_layer_norm``: the unbiased variance, the wrong axis, gain and bias swapped or
   forgotten, eps outside the square root;
2. ``check_encoder_block``: a residual connection forgotten, pre-norm and post-norm mixed up, the
   two norms swapped, the norm applied to the sub-layer's output only;
3. ``check_decoder_mask``: causal part or padding part missing, padding applied to the queries
   instead of the keys, the mask inverted or the upper triangle, the wrong shape;
4. ``check_label_smoothing``: smoothing spread over the wrong classes only (eps / (V - 1)), the
   (1 - eps) factor forgotten, a sum instead of the mean, smoothing ignored, probabilities
   instead of log-probabilities;
5. ``check_transformer_lr``: max instead of min, the d_model^-0.5 factor forgotten, the two
   exponents swapped, warmup^-0.5 instead of warmup^-1.5;
6. ``check_param_prediction`` (a prediction, checked against ``count_params`` of the library's
   ``Seq2SeqTransformer``): the sinusoidal table counted or learned positions forgotten, the
   cross-attention or the third LayerNorm of a decoder layer forgotten, the final LayerNorms of
   pre-norm forgotten or given to post-norm, a count that grows or shrinks with the number of
   heads, biases forgotten, one vector per LayerNorm, the output layer forgotten, tied or without
   its bias, the padding rows left out, the feed-forward's second layer forgotten, the head sized by
   the source vocabulary, encoder and decoder depths swapped; an answer that builds a model.

Glossary: B batch, T target length, C = d_model channels, N predictions, V vocabulary.
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable

import torch
from torch import nn

from ..transformer import EncoderLayer, Seq2SeqTransformer, TransformerConfig
from ..utils import count_params
from .core import Feedback, call, checker, describe, expect_close, expect_tensor, generator


_gen = generator


# -- exercise 1: LayerNorm --------------------------------------------------------------------------------

def _ln(x, gain, bias, eps=1e-5, dim=-1, unbiased=False):
    mean = x.mean(dim=dim, keepdim=True)
    var = x.var(dim=dim, keepdim=True, unbiased=unbiased)
    return gain * (x - mean) / torch.sqrt(var + eps) + bias


@checker
def check_layer_norm(layer_norm: Callable, *, seed: int = 0, batch: int = 2, T: int = 3, C: int = 5,
                     scale: float = 3.0) -> None:
    """``layer_norm(x (B, T, C), gain (C,), bias (C,), eps=1e-5)`` must normalise each position's C
    channels to mean 0 and (biased) variance 1, then scale by gain and shift by bias.

    ``scale`` is the spread of x (around a mean of 2 * scale, so that float32 loses nothing to
    cancellation); at ``scale=1e-3`` the variance is near eps, where eps placed outside the square
    root (or forgotten) shows. The reference is float64 (``F.layer_norm`` on doubles), so torch's own
    implementations (``F.layer_norm``, ``nn.LayerNorm``, ``var_mean`` + ``rsqrt``, float64) pass."""
    g = _gen(6100 + seed)
    x = scale * torch.randn(batch, T, C, generator=g) + 2.0 * scale
    gain, bias = 1.0 + 0.5 * torch.randn(C, generator=g), torch.randn(C, generator=g)
    got = call(layer_norm, x, gain, bias, name="layer_norm")
    got = expect_tensor(got, {"B": batch, "T": T, "C": C}, "layer_norm")
    eps = 1e-5
    want = torch.nn.functional.layer_norm(x.double(), (C,), gain.double(), bias.double(), eps)  # float64
    expect_close(got, want, "layer_norm", mistakes={
        "looks like you used the unbiased variance (divide by C - 1); LayerNorm divides by C: "
        "x.var(dim=-1, unbiased=False) or ((x - mean) ** 2).mean(-1).": lambda: _ln(x, gain, bias, unbiased=True),
        "you normalised over the wrong axis: LayerNorm normalises each position's vector over its C "
        "channels, the last axis (dim=-1).": lambda: _ln(x, gain, bias, dim=1),
        "you normalised over the batch axis; LayerNorm works on each position's C channels (dim=-1).":
            lambda: _ln(x, gain, bias, dim=0),
        "gain and bias are swapped: multiply by gain, then add bias.": lambda: _ln(x, bias, gain),
        "you forgot the gain and the bias: gain * normalised + bias.": lambda: _ln(x, 1.0, 0.0),
        "you forgot the bias: gain * normalised + bias.": lambda: _ln(x, gain, 0.0),
        "you forgot the gain: gain * normalised + bias.": lambda: _ln(x, 1.0, bias),
        "you forgot eps: (x - mean) / sqrt(var + eps); it keeps the division safe when the variance is ~0.":
            lambda: _ln(x, gain, bias, eps=0.0),
        "eps goes inside the square root: (x - mean) / sqrt(var + eps).":
            lambda: gain * (x - x.mean(-1, keepdim=True)) / (x.var(-1, keepdim=True, unbiased=False).sqrt() + eps) + bias,
    })


# -- exercise 2: the encoder block -----------------------------------------------------------------------

def _block(x, sa, ff, n1, n2, norm_first):
    """The block with its parts passed in, to compute the known mistakes (the reference is EncoderLayer)."""
    if norm_first:
        x = x + sa(n1(x))
        return x + ff(n2(x))
    x = n1(x + sa(x))
    return n2(x + ff(x))


@checker
def check_encoder_block(encoder_block: Callable, *, seed: int = 0, norm_first: bool = True, batch: int = 2,
                        T: int = 4, C: int = 8) -> None:
    """``encoder_block(x (B, T, C), self_attention, feed_forward, norm1, norm2, norm_first)`` must
    apply the two sub-layers with residual connections and LayerNorm: pre-norm
    ``x + sa(norm1(x))`` then ``x + ff(norm2(x))``; post-norm ``norm1(x + sa(x))`` then
    ``norm2(x + ff(x))``. The four callables each map (B, T, C) -> (B, T, C)."""
    torch.manual_seed(6200 + seed)  # the modules draw their weights from the global generator
    layer = EncoderLayer(C, 2, 2 * C, dropout=0.0, norm_first=norm_first).eval()  # the library: the reference
    mha, ffn, n1, n2 = layer.self_attn, layer.ff, layer.norm1, layer.norm2
    with torch.no_grad():
        for n in (n1, n2):
            n.weight.normal_(1.0, 0.5)
            n.bias.normal_()
    x = 2.0 * torch.randn(batch, T, C, generator=_gen(6200 + seed))

    def sa(z):
        return mha(z, need_weights=False)[0]

    with torch.no_grad():
        got = call(encoder_block, x, sa, ffn, n1, n2, norm_first, name="encoder_block")
        got = expect_tensor(got, {"B": batch, "T": T, "C": C}, "encoder_block")
        kind = "pre-norm" if norm_first else "post-norm"
        want = layer(x)
        mistakes = {
            f"with norm_first={norm_first} this is {kind}, but you computed the other placement. Pre-norm: "
            "x + sa(norm1(x)); post-norm: norm1(x + sa(x)).": lambda: _block(x, sa, ffn, n1, n2, not norm_first),
            "norm1 and norm2 are swapped: norm1 goes with the attention sub-layer, norm2 with the feed-forward.":
                lambda: _block(x, sa, ffn, n2, n1, norm_first),
        }
        if norm_first:
            mistakes.update({
                "the attention sub-layer lost its residual connection: x = x + sa(norm1(x)).":
                    lambda: (lambda h: h + ffn(n2(h)))(sa(n1(x))),
                "the feed-forward sub-layer lost its residual connection: x = x + ff(norm2(x)).":
                    lambda: ffn(n2(x + sa(n1(x)))),
                "no residual connections: each sub-layer's output is added to its input, x + sublayer(norm(x)).":
                    lambda: ffn(n2(sa(n1(x)))),
            })
        else:
            mistakes.update({
                "the attention sub-layer lost its residual connection: x = norm1(x + sa(x)).":
                    lambda: (lambda h: n2(h + ffn(h)))(n1(sa(x))),
                "the feed-forward sub-layer lost its residual connection: x = norm2(x + ff(x)).":
                    lambda: n2(ffn(n1(x + sa(x)))),
                "no residual connections: post-norm is norm(x + sublayer(x)).": lambda: n2(ffn(n1(sa(x)))),
                "you normalised the sub-layer's output before adding it (x + norm(sa(x))); post-norm "
                "normalises the sum: norm1(x + sa(x)).":
                    lambda: (lambda h: h + n2(ffn(h)))(x + n1(sa(x))),
            })
        expect_close(got, want, "encoder_block", mistakes=mistakes)


# -- exercise 3: the decoder's self-attention mask ----------------------------------------------------------

@checker
def check_decoder_mask(decoder_mask: Callable, *, seed: int = 0, lengths: tuple[int, ...] = (5, 3, 1),
                       T: int = 5, pad_id: int = 0) -> None:
    """``decoder_mask(tgt_ids (B, T), pad_id)`` must return a bool mask (B, 1, T, T): query i of row
    b may attend to key j iff j <= i and token j of row b is not padding."""
    g = _gen(6300 + seed)
    B = len(lengths)
    ids = torch.randint(1, 9, (B, T), generator=g)
    ids = torch.where(ids == pad_id, ids + 1, ids)
    real = torch.arange(T)[None, :] < torch.tensor(list(lengths))[:, None]       # (B, T)
    ids = ids.masked_fill(~real, pad_id)
    got = call(decoder_mask, ids, pad_id, name="decoder_mask")
    if isinstance(got, torch.Tensor) and got.dtype != torch.bool:
        raise Feedback(f"`decoder_mask` returned dtype {got.dtype}; a mask is a bool tensor (True = may attend). "
                       "Combine bool masks with & (and), not * or +.")
    got = expect_tensor(got, {"B": B, "heads (1)": 1, "T (queries)": T, "T (keys)": T}, "decoder_mask", finite=False)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    want = causal & real[:, None, None, :]
    as_float = got.double()
    expect_close(as_float, want.double(), "decoder_mask", mistakes={
        "the padding is not masked: a query must not attend to padded keys. Combine the causal mask with "
        "(tgt_ids != pad_id) on the key axis: causal & keep[:, None, None, :].":
            lambda: causal.expand(B, 1, T, T).double(),
        "the causal part is missing: query i may attend to keys j <= i only (torch.tril).":
            lambda: real[:, None, None, :].expand(B, 1, T, T).double(),
        "the padding is applied to the queries (rows) instead of the keys (columns): use keep[:, None, None, :], "
        "so that no query looks at a padded key.": lambda: (causal & real[:, None, :, None]).double(),
        "the mask is inverted: True means may attend.": lambda: (~want).double(),
        "you used the upper triangle: query i (row) sees keys j <= i, the lower triangle.":
            lambda: (causal.T & real[:, None, None, :]).double(),
    })


# -- exercise 4: label smoothing ------------------------------------------------------------------------------

@checker
def check_label_smoothing(label_smoothed_ce: Callable, *, seed: int = 0, N: int = 6, V: int = 5,
                          eps: float = 0.1) -> None:
    """``label_smoothed_ce(logits (N, V), target (N,), eps)`` must return the mean over the N rows of
    (1 - eps) * (-log p_y) + eps * mean_k(-log p_k), a scalar tensor (as
    ``F.cross_entropy(logits, target, label_smoothing=eps)``)."""
    g = _gen(6400 + seed)
    logits = 2.0 * torch.randn(N, V, generator=g)
    target = torch.randint(0, V, (N,), generator=g)
    got = call(label_smoothed_ce, logits, target, eps, name="label_smoothed_ce")
    if isinstance(got, (int, float)) and not isinstance(got, bool):
        got = torch.tensor(float(got))
    got = expect_tensor(got, {}, "label_smoothed_ce")
    log_p = torch.log_softmax(logits, -1)
    nll = -log_p.gather(1, target[:, None])[:, 0]
    uniform = -log_p.mean(-1)
    others = (-log_p.sum(-1) - nll) / (V - 1)
    want = ((1 - eps) * nll + eps * uniform).mean()
    expect_close(got, want, "label_smoothed_ce", mistakes={
        "you spread eps over the V - 1 wrong classes only (eps / (V - 1) each); the definition here, as "
        "in torch, gives eps / V to every class, the correct one included: eps * mean_k(-log p_k).":
            lambda: ((1 - eps) * nll + eps * others).mean(),
        "you forgot the (1 - eps) factor on the correct class's term.": lambda: (nll + eps * uniform).mean(),
        "the smoothing is missing: this is the plain cross-entropy.": lambda: nll.mean(),
        "you summed over the rows; take the mean over the N predictions.": lambda: ((1 - eps) * nll + eps * uniform).sum(),
        "use log-probabilities (torch.log_softmax), not probabilities: the loss is -sum_k q_k log p_k.":
            lambda: (-(1 - eps) * log_p.exp().gather(1, target[:, None])[:, 0] - eps * log_p.exp().mean(-1)).mean(),
        "the smoothing term uses the raw logits; it needs the log-probabilities: eps * mean_k(-log_softmax(logits)_k).":
            lambda: ((1 - eps) * nll - eps * logits.mean(-1)).mean(),
    })


# -- exercise 5: the warm-up schedule ---------------------------------------------------------------------------

def _lr(step, d_model, warmup, a=-0.5, b=-1.5, pick=min, scale=True):
    value = pick(step ** a, step * warmup ** b)
    return d_model ** -0.5 * value if scale else value


@checker
def check_transformer_lr(transformer_lr: Callable, *, d_model: int = 64, warmup: int = 50,
                         steps: tuple[int, ...] = (1, 2, 10, 49, 50, 51, 100, 1000)) -> None:
    """``transformer_lr(step, d_model, warmup)`` must return the float
    d_model^-0.5 * min(step^-0.5, step * warmup^-1.5) for step = 1, 2, ..."""
    values = []
    for s in steps:
        value = call(transformer_lr, s, d_model, warmup, name="transformer_lr")
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Feedback(f"`transformer_lr({s}, {d_model}, {warmup})` returned {describe(value)}; expected a float.")
        if not math.isfinite(value):
            raise Feedback(f"`transformer_lr({s}, {d_model}, {warmup})` returned {value}; steps start at 1, "
                           "and every value should be finite.")
        values.append(float(value))
    got = torch.tensor(values, dtype=torch.float64)

    def curve(**kw):
        return torch.tensor([_lr(s, d_model, warmup, **kw) for s in steps], dtype=torch.float64)

    expect_close(got, curve(), "transformer_lr", rtol=1e-6, atol=1e-12, mistakes={
        "you took the max of the two branches; the schedule is their min: the linear warm-up "
        "step * warmup^-1.5 is the smaller one before step = warmup.": lambda: curve(pick=max),
        "you forgot the d_model^-0.5 factor in front.": lambda: curve(scale=False),
        "the two exponents are swapped: min(step^-0.5, step * warmup^-1.5).": lambda: curve(a=-1.5, b=-0.5),
        "the warm-up branch is step * warmup^-1.5 (so that both branches meet at step = warmup), not "
        "step * warmup^-0.5.": lambda: curve(b=-0.5),
    })


# -- exercise 6: a prediction, the parameter count ----------------------------------------------------------

PUBLIC_PARAM_CONFIGS = (
    dict(src_vocab_size=22, tgt_vocab_size=17, d_model=32, n_heads=4, d_ff=96, n_encoder_layers=2,
         n_decoder_layers=3, max_len=40),
    dict(src_vocab_size=22, tgt_vocab_size=17, d_model=32, n_heads=8, d_ff=96, n_encoder_layers=2,
         n_decoder_layers=3, max_len=40),
    dict(src_vocab_size=22, tgt_vocab_size=17, d_model=32, n_heads=4, d_ff=96, n_encoder_layers=2,
         n_decoder_layers=3, max_len=40, positions="learned", norm_first=False),
)


def _describe_config(c: TransformerConfig) -> str:
    return (f"TransformerConfig(src_vocab_size={c.src_vocab_size}, tgt_vocab_size={c.tgt_vocab_size}, "
            f"d_model={c.d_model}, n_heads={c.n_heads}, d_ff={c.d_ff}, n_encoder_layers={c.n_encoder_layers}, "
            f"n_decoder_layers={c.n_decoder_layers}, max_len={c.max_len}, positions={c.positions!r}, "
            f"norm_first={c.norm_first})")


def param_mistakes(config: TransformerConfig) -> tuple[int, list[tuple[str, int]]]:
    """The parameter count of ``Seq2SeqTransformer(config)``, and what each known mistake would
    answer instead, as (message, count) pairs. Every number comes from the library's modules."""
    torch.manual_seed(0)
    model = Seq2SeqTransformer(config)
    total = count_params(model)
    C, Vs, Vt, H = config.d_model, config.src_vocab_size, config.tgt_vocab_size, config.n_heads
    n_enc, n_dec = config.n_encoder_layers, config.n_decoder_layers
    enc_layer, dec_layer = model.encoder.layers[0], model.decoder.layers[0]
    attention, norm = count_params(enc_layer.self_attn), count_params(enc_layer.norm1)
    projections = (enc_layer.self_attn.q_proj, enc_layer.self_attn.k_proj, enc_layer.self_attn.v_proj,
                   enc_layer.self_attn.out_proj)
    attention_weights = sum(p.weight.numel() for p in projections)                    # 4 C^2
    n_attentions = n_enc + 2 * n_dec
    n_norms = sum(isinstance(m, nn.LayerNorm) for m in model.modules())
    linear_biases = sum(m.bias.numel() for m in model.modules() if isinstance(m, nn.Linear) and m.bias is not None)
    head = count_params(model.decoder.head)
    table = config.max_len * C                                                          # one position table
    mistakes: list[tuple[str, int]] = []

    def add(message: str, count: int) -> None:
        mistakes.append((message, count))

    if config.positions == "sinusoidal":
        add("the sinusoidal positions are a fixed table (a buffer), not parameters: they cost nothing.",
            total + 2 * table)
        add("the sinusoidal positions are a fixed table (a buffer), not parameters: they cost nothing.",
            total + table)
    else:
        add("learned positions are parameters: a (max_len, d_model) table in the encoder's embedding "
            "and another in the decoder's.", total - 2 * table)
        add("learned positions come twice: a (max_len, d_model) table in the encoder's embedding and "
            "another in the decoder's.", total - table)
    add("a decoder layer has two attentions, masked self-attention and cross-attention to the memory; "
        "you counted one.", total - n_dec * attention)
    add("a decoder layer has three LayerNorms, one per sub-layer, not two.", total - n_dec * norm)
    if config.norm_first:
        add("a pre-norm stack ends with a final LayerNorm (one after the encoder, one after the decoder): "
            "you left them out.", total - 2 * norm)
    else:
        add("a post-norm stack has no final LayerNorm (each sub-layer already ends in one; norm_first=False): "
            "you added two.", total + 2 * norm)
    if H > 1:
        heads = ("the number of heads does not change the count: the H heads are slices of one (d_model, "
                 "d_model) projection each for q, k and v (D = d_model / H channels each), ")
        add(heads + "not H full projections.", total + (H - 1) * n_attentions * attention_weights)
        add(heads + "so there is no factor 1/H either.", total - n_attentions * attention_weights * (H - 1) // H)
    add("you forgot the biases of the linear layers (the four attention projections, both feed-forward "
        "layers and the output layer each have one).", total - linear_biases)
    add("a LayerNorm has two vectors of d_model parameters, the gain and the bias; you counted one.",
        total - n_norms * C)
    add("you forgot the LayerNorms: each has a gain and a bias of d_model parameters.", total - n_norms * 2 * C)
    add("you forgot the output layer, Linear(d_model, tgt_vocab_size) with its bias.", total - head)
    add("the output layer has a bias too, tgt_vocab_size parameters.", total - Vt)
    add("the output layer is not tied to the target embedding in this model: it has its own "
        "(tgt_vocab_size, d_model) weight.", total - C * Vt)
    add("the padding row of each embedding still counts: padding_idx only keeps it at zero and stops "
        "its gradient.", total - 2 * C)
    add("the feed-forward network has two linear layers, d_model -> d_ff and d_ff -> d_model, each with a "
        "bias.", total - (n_enc + n_dec) * count_params(enc_layer.ff.linear2))
    if Vs != Vt:
        add("the output layer predicts target tokens: its size is tgt_vocab_size, not src_vocab_size.",
            total + (C + 1) * (Vs - Vt))
        for V in (Vs, Vt):
            add("each embedding has its own vocabulary: src_vocab_size rows in the encoder's, tgt_vocab_size "
                "in the decoder's.", total + (2 * V - Vs - Vt) * C)
    if n_enc != n_dec:
        add("the encoder has n_encoder_layers layers and the decoder n_decoder_layers: you swapped them.",
            total + (n_dec - n_enc) * (count_params(enc_layer) - count_params(dec_layer)))
    return total, [(m, n) for m, n in mistakes if n != total]


@contextlib.contextmanager
def _no_modules(name: str):
    """While the learner's prediction runs, building a torch module raises Feedback: it asks for a
    formula, not for count_params of a model."""
    original = nn.Module.__init__

    def refuse(self, *args, **kwargs):
        raise Feedback(f"`{name}` built a torch module ({type(self).__name__}) to count its parameters; this "
                       "exercise asks for a prediction: a formula in the config's numbers. (Compare it with "
                       "count_params outside the function, once you have it.)")

    nn.Module.__init__ = refuse
    try:
        yield
    finally:
        nn.Module.__init__ = original


@checker
def check_param_prediction(predict_params: Callable, *, configs: tuple[dict, ...] = PUBLIC_PARAM_CONFIGS) -> None:
    """``predict_params(config)`` must return, as an int, the number of parameters of
    ``Seq2SeqTransformer(config)`` for each ``TransformerConfig(**c)`` of ``configs``, computed from
    a formula (it may not build a model). Checked against ``count_params`` of the library's model."""
    for kwargs in configs:
        config = TransformerConfig(**kwargs)
        total, mistakes = param_mistakes(config)
        with _no_modules("predict_params"):
            got = call(predict_params, config, name="predict_params")
        if isinstance(got, float) and got.is_integer():
            raise Feedback(f"`predict_params` returned the float {got!r}; return an int (a count), e.g. int(...) "
                           "or integer arithmetic (// instead of /).")
        if isinstance(got, bool) or not isinstance(got, int):
            hint = (" Wrap it in int(...)." if isinstance(got, torch.Tensor) or type(got).__module__ == "numpy"
                    else "")
            raise Feedback(f"`predict_params` returned {describe(got)}; expected an int, the number of "
                           f"parameters.{hint}")
        if got == total:
            continue
        shown = _describe_config(config)
        named = list(dict.fromkeys(message for message, count in mistakes if got == count))
        if named:
            raise Feedback(f"`predict_params` returned {got:,} for {shown}; the model has {total:,} "
                           f"parameters: {' Or: '.join(named)}")
        raise Feedback(
            f"`predict_params` returned {got:,} for {shown}; the model has {total:,} parameters ({got - total:+,}). "
            "Where they are: the two token embeddings (source and target), position tables only if learned, "
            "per encoder layer a self-attention, a feed-forward network and 2 LayerNorms, per decoder layer a "
            "self-attention, a cross-attention, a feed-forward network and 3 LayerNorms, one final LayerNorm per "
            "stack when pre-norm, and the output layer. Count each with its biases.")
