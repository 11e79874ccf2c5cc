"""course_lib.grading.ch06_transformer: the reference answers pass, and each known mistake,
written as the function a learner would write, gets the message that names it."""

import pytest
import torch
import torch.nn.functional as F

from course_lib.grading import ch06_transformer as grading
from grading_support import fails_with



# -- exercise 1: LayerNorm ----------------------------------------------------------------------------------

def layer_norm(x, gain, bias, eps=1e-5):
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return gain * (x - mean) / torch.sqrt(var + eps) + bias


def test_layer_norm_reference_passes():
    grading.check_layer_norm(layer_norm)
    grading.check_layer_norm(layer_norm, seed=1, batch=1, T=6, C=16)
    grading.check_layer_norm(layer_norm, seed=2, scale=1e-3)
    grading.check_layer_norm(lambda x, g, b, eps=1e-5: F.layer_norm(x, (x.shape[-1],), g, b, eps))


def ln_variant(**kw):
    return lambda x, g, b, eps=1e-5: grading._ln(x, g, b, eps, **kw)


LN_MISTAKES = [
    ("unbiased", ln_variant(unbiased=True), "unbiased variance", {}),
    ("over T", ln_variant(dim=1), "wrong axis", {}),
    ("over batch", ln_variant(dim=0), "batch axis", {}),
    ("swapped", lambda x, g, b, eps=1e-5: grading._ln(x, b, g, eps), "gain and bias are swapped", {}),
    ("no affine", lambda x, g, b, eps=1e-5: grading._ln(x, 1.0, 0.0, eps), "forgot the gain and the bias", {}),
    ("no bias", lambda x, g, b, eps=1e-5: grading._ln(x, g, 0.0, eps), "forgot the bias", {}),
    ("eps outside", lambda x, g, b, eps=1e-5: g * (x - x.mean(-1, keepdim=True)) / (x.std(-1, unbiased=False, keepdim=True) + eps) + b,
     "eps goes inside", {"scale": 1e-3}),
    ("no eps", lambda x, g, b, eps=1e-5: grading._ln(x, g, b, 0.0), "forgot eps", {"scale": 1e-3}),
    ("None", lambda x, g, b, eps=1e-5: None, "returned None", {}),
]


@pytest.mark.parametrize("name, fn, pattern, kwargs", LN_MISTAKES, ids=[m[0] for m in LN_MISTAKES])
def test_layer_norm_mistakes_are_named(name, fn, pattern, kwargs):
    fails_with(grading.check_layer_norm, fn, pattern, **kwargs)


# -- exercise 2: the encoder block ---------------------------------------------------------------------------

def encoder_block(x, self_attention, feed_forward, norm1, norm2, norm_first):
    if norm_first:
        x = x + self_attention(norm1(x))
        return x + feed_forward(norm2(x))
    x = norm1(x + self_attention(x))
    return norm2(x + feed_forward(x))


@pytest.mark.parametrize("norm_first", [True, False])
def test_encoder_block_reference_passes(norm_first):
    grading.check_encoder_block(encoder_block, norm_first=norm_first)
    grading.check_encoder_block(encoder_block, norm_first=norm_first, seed=1, batch=1, T=6, C=4)


BLOCK_MISTAKES = [
    ("always post", lambda x, sa, ff, n1, n2, nf: encoder_block(x, sa, ff, n1, n2, False), "this is pre-norm", True),
    ("always pre", lambda x, sa, ff, n1, n2, nf: encoder_block(x, sa, ff, n1, n2, True), "this is post-norm", False),
    ("norms swapped", lambda x, sa, ff, n1, n2, nf: encoder_block(x, sa, ff, n2, n1, nf), "norm1 and norm2 are swapped", True),
    ("no attention residual, pre", lambda x, sa, ff, n1, n2, nf: (lambda h: h + ff(n2(h)))(sa(n1(x))),
     "attention sub-layer lost its residual", True),
    ("no ffn residual, pre", lambda x, sa, ff, n1, n2, nf: ff(n2(x + sa(n1(x)))), "feed-forward sub-layer lost", True),
    ("no residuals, post", lambda x, sa, ff, n1, n2, nf: n2(ff(n1(sa(x)))), "no residual connections", False),
    ("no attention residual, post", lambda x, sa, ff, n1, n2, nf: (lambda h: n2(h + ff(h)))(n1(sa(x))),
     "attention sub-layer lost its residual", False),
    ("norm on branch", lambda x, sa, ff, n1, n2, nf: (lambda h: h + n2(ff(h)))(x + n1(sa(x))),
     "normalised the sub-layer's output before adding", False),
    ("in place", lambda x, sa, ff, n1, n2, nf: x.add_(sa(n1(x))).add_(ff(n2(x))), "changed its input `x` in place", True),
]


@pytest.mark.parametrize("name, fn, pattern, norm_first", BLOCK_MISTAKES, ids=[m[0] for m in BLOCK_MISTAKES])
def test_encoder_block_mistakes_are_named(name, fn, pattern, norm_first):
    fails_with(grading.check_encoder_block, fn, pattern, norm_first=norm_first)


# -- exercise 3: the decoder mask -----------------------------------------------------------------------------

def decoder_mask(tgt_ids, pad_id):
    T = tgt_ids.shape[1]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    return causal & (tgt_ids != pad_id)[:, None, None, :]


def test_decoder_mask_reference_passes():
    grading.check_decoder_mask(decoder_mask)
    grading.check_decoder_mask(decoder_mask, seed=1, lengths=(2, 7, 7, 4), T=7, pad_id=3)


def causal_of(ids):
    T = ids.shape[1]
    return torch.ones(T, T, dtype=torch.bool).tril()


MASK_MISTAKES = [
    ("causal only", lambda ids, pad: causal_of(ids).expand(ids.shape[0], 1, -1, -1), "padding is not masked"),
    ("padding only", lambda ids, pad: (ids != pad)[:, None, None, :].expand(-1, 1, ids.shape[1], -1),
     "causal part is missing"),
    ("padding on queries", lambda ids, pad: causal_of(ids) & (ids != pad)[:, None, :, None], "applied to the queries"),
    ("inverted", lambda ids, pad: ~decoder_mask(ids, pad), "inverted"),
    ("upper", lambda ids, pad: causal_of(ids).T & (ids != pad)[:, None, None, :], "upper triangle"),
    ("float", lambda ids, pad: decoder_mask(ids, pad).float(), "dtype torch.float32"),
    ("no head axis", lambda ids, pad: decoder_mask(ids, pad)[:, 0], "axis of size 1"),
]


@pytest.mark.parametrize("name, fn, pattern", MASK_MISTAKES, ids=[m[0] for m in MASK_MISTAKES])
def test_decoder_mask_mistakes_are_named(name, fn, pattern):
    fails_with(grading.check_decoder_mask, fn, pattern)


# -- exercise 4: label smoothing --------------------------------------------------------------------------------

def label_smoothed_ce(logits, target, eps):
    log_p = torch.log_softmax(logits, dim=-1)
    nll = -log_p.gather(1, target[:, None])[:, 0]
    return ((1 - eps) * nll - eps * log_p.mean(dim=-1)).mean()


def test_label_smoothing_reference_passes():
    grading.check_label_smoothing(label_smoothed_ce)
    grading.check_label_smoothing(label_smoothed_ce, seed=1, N=20, V=11, eps=0.3)
    grading.check_label_smoothing(lambda lg, t, e: F.cross_entropy(lg, t, label_smoothing=e))
    grading.check_label_smoothing(lambda lg, t, e: label_smoothed_ce(lg, t, e).item())  # a float is fine


def parts(logits, target):
    log_p = torch.log_softmax(logits, dim=-1)
    return log_p, -log_p.gather(1, target[:, None])[:, 0]


LS_MISTAKES = [
    ("V-1", lambda lg, t, e: (lambda lp, nll: ((1 - e) * nll + e * (-lp.sum(-1) - nll) / (lg.shape[1] - 1)).mean())(*parts(lg, t)),
     "V - 1 wrong classes"),
    ("no 1-eps", lambda lg, t, e: (lambda lp, nll: (nll - e * lp.mean(-1)).mean())(*parts(lg, t)), r"forgot the \(1 - eps\)"),
    ("plain", lambda lg, t, e: F.cross_entropy(lg, t), "smoothing is missing"),
    ("sum", lambda lg, t, e: label_smoothed_ce(lg, t, e) * lg.shape[0], "summed over the rows"),
    ("probabilities", lambda lg, t, e: (lambda lp, nll: (-(1 - e) * lp.exp().gather(1, t[:, None])[:, 0] - e * lp.exp().mean(-1)).mean())(*parts(lg, t)),
     "log-probabilities"),
    ("raw logits", lambda lg, t, e: (lambda lp, nll: ((1 - e) * nll - e * lg.mean(-1)).mean())(*parts(lg, t)), "raw logits"),
    ("per row", lambda lg, t, e: (lambda lp, nll: (1 - e) * nll - e * lp.mean(-1))(*parts(lg, t)), r"shape \(6,\)"),
]


@pytest.mark.parametrize("name, fn, pattern", LS_MISTAKES, ids=[m[0] for m in LS_MISTAKES])
def test_label_smoothing_mistakes_are_named(name, fn, pattern):
    fails_with(grading.check_label_smoothing, fn, pattern)


# -- exercise 5: the warm-up schedule -----------------------------------------------------------------------------

def transformer_lr(step, d_model, warmup):
    return d_model ** -0.5 * min(step ** -0.5, step * warmup ** -1.5)


def test_transformer_lr_reference_passes():
    grading.check_transformer_lr(transformer_lr)
    grading.check_transformer_lr(transformer_lr, d_model=512, warmup=4000, steps=(1, 3999, 4000, 4001, 100000))
    grading.check_transformer_lr(lambda s, d, w: torch.tensor(transformer_lr(s, d, w)))


LR_MISTAKES = [
    ("max", lambda s, d, w: d ** -0.5 * max(s ** -0.5, s * w ** -1.5), "max of the two branches"),
    ("no d_model", lambda s, d, w: min(s ** -0.5, s * w ** -1.5), r"forgot the d_model\^-0.5"),
    ("exponents swapped", lambda s, d, w: d ** -0.5 * min(s ** -1.5, s * w ** -0.5), "exponents are swapped"),
    ("warmup^-0.5", lambda s, d, w: d ** -0.5 * min(s ** -0.5, s * w ** -0.5), r"not\s+step \* warmup\^-0.5"),
    ("from zero", lambda s, d, w: d ** -0.5 * min((s - 1) ** -0.5, (s - 1) * w ** -1.5), "raised ZeroDivisionError"),
    ("string", lambda s, d, w: f"{transformer_lr(s, d, w):.3g}", "expected a float"),
]


@pytest.mark.parametrize("name, fn, pattern", LR_MISTAKES, ids=[m[0] for m in LR_MISTAKES])
def test_transformer_lr_mistakes_are_named(name, fn, pattern):
    fails_with(grading.check_transformer_lr, fn, pattern)


# -- exercise 6: a prediction, the parameter count ----------------------------------------------------------

from course_lib.transformer import Seq2SeqTransformer, TransformerConfig  # noqa: E402
from course_lib.utils import count_params  # noqa: E402

HIDDEN_PARAM_CONFIGS = (
    dict(src_vocab_size=13, tgt_vocab_size=29, d_model=24, n_heads=3, d_ff=40, n_encoder_layers=1,
         n_decoder_layers=2, max_len=50, positions="learned", norm_first=False),
    dict(src_vocab_size=20, tgt_vocab_size=27),
    dict(src_vocab_size=20, tgt_vocab_size=27, n_heads=1, norm_first=False),
)


def make_predict_params(*, heads=None, biases=True, norm_vectors=2, decoder_norms=3, cross=True, final=None,
                        sinusoidal_params=0, learned_tables=2, head=True, head_bias=True, tied=False,
                        pad_rows=0, ff_layers=2, head_vocab="tgt", embed_vocab=None, swap_depths=False):
    """The reference formula, or one with a known mistake."""
    def predict_params(c):
        C, F, H = c.d_model, c.d_ff, c.n_heads
        b = 1 if biases else 0
        weights = 4 * C * C if heads is None else (4 * C * C * H if heads == "times" else 4 * C * C // H)
        attention = weights + 4 * C * b
        ff = (C * F + F * b) + ((F * C + C * b) if ff_layers == 2 else 0)
        norm = norm_vectors * C
        enc = attention + ff + 2 * norm
        dec = (2 if cross else 1) * attention + ff + decoder_norms * norm
        vs, vt = (c.src_vocab_size, c.tgt_vocab_size) if embed_vocab is None else (embed_vocab(c),) * 2
        embeddings = (vs + vt - pad_rows) * C
        positions = (learned_tables * c.max_len * C if c.positions == "learned"
                     else sinusoidal_params * c.max_len * C)
        finals = 2 * norm if (c.norm_first if final is None else final) else 0
        v_out = c.tgt_vocab_size if head_vocab == "tgt" else c.src_vocab_size
        out = (0 if tied else C * v_out) + (v_out * b if head_bias else 0) if head else 0
        n_enc, n_dec = (c.n_decoder_layers, c.n_encoder_layers) if swap_depths else (c.n_encoder_layers, c.n_decoder_layers)
        return embeddings + positions + n_enc * enc + n_dec * dec + finals + out
    return predict_params


def test_param_prediction_reference_passes():
    grading.check_param_prediction(make_predict_params())
    grading.check_param_prediction(make_predict_params(), configs=HIDDEN_PARAM_CONFIGS)


@pytest.mark.parametrize("config", grading.PUBLIC_PARAM_CONFIGS + HIDDEN_PARAM_CONFIGS)
def test_param_counts_come_from_the_library(config):
    config = TransformerConfig(**config)
    total, mistakes = grading.param_mistakes(config)
    assert total == count_params(Seq2SeqTransformer(config)) == make_predict_params()(config)
    assert all(count != total for _, count in mistakes)


def test_param_mistakes_of_the_public_configs_are_told_apart():
    for config in grading.PUBLIC_PARAM_CONFIGS:
        counts = {}
        for message, count in grading.param_mistakes(TransformerConfig(**config))[1]:
            counts.setdefault(count, set()).add(message)
        assert all(len(messages) == 1 for messages in counts.values()), config


PARAM_MISTAKES = [
    ("sinusoidal counted", make_predict_params(sinusoidal_params=2), "sinusoidal positions are a fixed table"),
    ("sinusoidal counted once", make_predict_params(sinusoidal_params=1), "sinusoidal positions are a fixed table"),
    ("learned forgotten", make_predict_params(learned_tables=0), "learned positions are parameters"),
    ("learned once", make_predict_params(learned_tables=1), "learned positions come twice"),
    ("no cross-attention", make_predict_params(cross=False), "cross-attention to the memory"),
    ("two norms per decoder layer", make_predict_params(decoder_norms=2), "three LayerNorms"),
    ("no final norms", make_predict_params(final=False), "pre-norm stack ends with a final LayerNorm"),
    ("final norms in post-norm", make_predict_params(final=True), "post-norm stack has no final LayerNorm"),
    ("heads multiply", make_predict_params(heads="times"), "not H full projections"),
    ("heads divide", make_predict_params(heads="divide"), "no factor 1/H"),
    ("no biases", make_predict_params(biases=False), "forgot the biases"),
    ("one vector per norm", make_predict_params(norm_vectors=1), "you counted one"),
    ("no norms", make_predict_params(norm_vectors=0), "you forgot the LayerNorms"),
    ("no head", make_predict_params(head=False), "forgot the output layer"),
    ("no head bias", make_predict_params(head_bias=False), "output layer has a bias too"),
    ("tied head", make_predict_params(tied=True), "not tied to the target embedding"),
    ("pad rows left out", make_predict_params(pad_rows=2), "padding row of each embedding still counts"),
    ("one ff layer", make_predict_params(ff_layers=1), "two linear layers"),
    ("head of the source vocabulary", make_predict_params(head_vocab="src"), "size is tgt_vocab_size"),
    ("one vocabulary for both", make_predict_params(embed_vocab=lambda c: c.src_vocab_size), "its own vocabulary"),
    ("depths swapped", make_predict_params(swap_depths=True), "you swapped them"),
]


@pytest.mark.parametrize("name, fn, pattern", PARAM_MISTAKES, ids=[m[0] for m in PARAM_MISTAKES])
def test_param_mistakes_are_named(name, fn, pattern):
    configs = grading.PUBLIC_PARAM_CONFIGS
    message = fails_with(grading.check_param_prediction, fn, pattern, configs=configs)
    assert "the model has" in message


def test_param_prediction_refuses_a_counted_model_and_restores_modules():
    before = torch.nn.Module.__init__
    fails_with(grading.check_param_prediction, lambda c: count_params(Seq2SeqTransformer(c)),
               r"built a torch module \(Seq2SeqTransformer\).*prediction")
    assert torch.nn.Module.__init__ is before
    torch.nn.Linear(2, 2)  # modules can be built again


@pytest.mark.parametrize("fn, pattern", [
    (lambda c: float(make_predict_params()(c)), "return an int"),
    (lambda c: str(make_predict_params()(c)), "expected an int"),
    (lambda c: True, "expected an int"),
    (lambda c: torch.tensor(make_predict_params()(c)), r"expected an int.*Wrap it in int"),
    (lambda c: None, "expected an int"),
    (lambda c: make_predict_params()(c) + 7, r"\(\+7\).*Where they are"),
    (lambda c: (_ for _ in ()).throw(NotImplementedError()), "not answered yet"),
], ids=["float", "str", "bool", "tensor", "None", "off by 7", "not answered"])
def test_param_bad_answers_are_refused(fn, pattern):
    fails_with(grading.check_param_prediction, fn, pattern)
