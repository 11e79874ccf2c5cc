"""course_lib.t5: equal to Hugging Face's T5 (logits and greedy decoding), the relative position
buckets (properties and equality with transformers), the shared bias, span corruption on many
random cases, the chapter 09 task generators, training, bad input."""
import random

import pytest
import torch

from course_lib.data import (addition_pairs, encode_pairs, reverse_pairs, sort_digits_pairs,
                             with_prefix)
from course_lib.seq2seq import translate
from course_lib.t5 import (RMSNorm, RelativePositionBias, T5, T5Config, noise_span_mask,
                           reassemble_spans, relative_position_bucket, span_corruption, t5_param_groups,
                           train_t5)
from course_lib.text import Vocab

transformers = pytest.importorskip("transformers")
from transformers.models.t5.modeling_t5 import T5Attention  # noqa: E402

SIZES = {
    "v1.0, 2+2": dict(d_model=32, d_kv=8, n_heads=4, d_ff=64, n_layers=2, n_decoder_layers=2),
    "v1.0, H*D != C, 1+3": dict(d_model=24, d_kv=10, n_heads=3, d_ff=40, n_layers=1, n_decoder_layers=3,
                                num_buckets=8, max_distance=12),
    "v1.1 gated-gelu, unscaled": dict(d_model=32, d_kv=16, n_heads=2, d_ff=48, n_layers=2, n_decoder_layers=2,
                                      ffn="gated-gelu", scale_output=False),
}


def hf_pair(seed=0, vocab_size=40, **sizes):
    config = T5Config.small(vocab_size, **sizes)
    torch.manual_seed(seed)
    hf = transformers.T5ForConditionalGeneration(config.to_hf()).eval()
    with torch.no_grad():  # RMSNorm gains start at 1: random values make the copy test bite
        for name, p in hf.named_parameters():
            if "layer_norm" in name:
                p.uniform_(0.5, 1.5)
    return hf, T5.from_hf(hf).eval()


# ---- equal to transformers ---------------------------------------------------------------------
@pytest.mark.parametrize("size", list(SIZES))
def test_logits_equal_hugging_face(size):
    hf, ours = hf_pair(**SIZES[size])
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(2, 40, (3, 23), generator=g)
    mask = torch.ones(3, 23, dtype=torch.bool)
    mask[1, 15:] = False                                             # a padded source
    ids[1, 15:] = 0
    dec = torch.randint(2, 40, (3, 17), generator=g)
    with torch.no_grad():
        theirs = hf(input_ids=ids, attention_mask=mask.long(), decoder_input_ids=dec).logits
        mine = ours(ids, dec, mask)
    assert mine.shape == (3, 17, 40)
    torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=1e-5)


def test_greedy_decoding_equals_hugging_face_generate():
    hf, ours = hf_pair(seed=3, **SIZES["v1.0, 2+2"])
    ids = torch.randint(2, 40, (4, 11), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(ids, dtype=torch.bool)
    with torch.no_grad():
        theirs = hf.generate(input_ids=ids, attention_mask=mask.long(), max_new_tokens=9, do_sample=False,
                             num_beams=1, min_new_tokens=0)[:, 1:]     # drop the start id
    mine = ours.generate(ids, mask, max_len=9)
    width = max(theirs.shape[1], mine.shape[1])
    pad = lambda t: torch.nn.functional.pad(t, (0, width - t.shape[1]), value=0)  # noqa: E731
    assert torch.equal(pad(mine), pad(theirs))


def test_from_hf_shares_one_bias_table_per_stack():
    hf, ours = hf_pair(**SIZES["v1.0, 2+2"])
    tables = [m for m in ours.modules() if isinstance(m, RelativePositionBias)]
    assert len(tables) == 2                                           # one per stack, not per layer
    torch.testing.assert_close(ours.encoder.position_bias.relative_attention_bias.weight,
                               hf.encoder.block[0].layer[0].SelfAttention.relative_attention_bias.weight)


# ---- the relative position buckets ------------------------------------------------------------
BUCKET_SETTINGS = [(32, 128), (32, 64), (8, 20), (16, 9), (6, 7)]


@pytest.mark.parametrize("num_buckets, max_distance", BUCKET_SETTINGS)
@pytest.mark.parametrize("bidirectional", [True, False])
def test_bucket_equals_hugging_face(num_buckets, max_distance, bidirectional):
    offsets = torch.arange(-400, 401)[None, :] + torch.zeros(3, 1, dtype=torch.long)
    ours = relative_position_bucket(offsets, bidirectional, num_buckets, max_distance)
    theirs = T5Attention._relative_position_bucket(offsets, bidirectional=bidirectional,
                                                    num_buckets=num_buckets, max_distance=max_distance)
    assert ours.shape == offsets.shape and ours.dtype == torch.long
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("num_buckets, max_distance", BUCKET_SETTINGS)
def test_bucket_properties(num_buckets, max_distance):
    far = 3 * max_distance
    distance = torch.arange(0, far + 1)
    for bidirectional in (True, False):
        half = num_buckets // 2 if bidirectional else num_buckets
        exact = half // 2
        before = relative_position_bucket(-distance, bidirectional, num_buckets, max_distance)
        assert bool((before.diff() >= 0).all())                        # monotone in |offset|
        assert torch.equal(before[:exact], distance[:exact])           # exact below the exact range
        assert bool((before[exact:] >= exact).all())
        assert bool((before[max_distance:] == half - 1).all())         # saturates past max_distance
        assert int(before.max()) == half - 1
        after = relative_position_bucket(distance, bidirectional, num_buckets, max_distance)
        if bidirectional:                                              # keys after: the upper half
            assert int(after[0]) == 0 and bool((after[1:] >= half).all())
            assert torch.equal(after[1:] - half, before[1:])           # same spacing on both sides
        else:                                                          # causal: the future is bucket 0
            assert bool((after == 0).all())


def test_bias_depends_only_on_the_offset():
    torch.manual_seed(0)
    for bidirectional in (True, False):
        table = RelativePositionBias(n_heads=3, num_buckets=16, max_distance=40, bidirectional=bidirectional)
        bias = table(50, 60)[0]                                        # (H, T, S)
        assert bias.shape == (3, 50, 60)
        torch.testing.assert_close(bias[:, 1:, 1:], bias[:, :-1, :-1], rtol=0, atol=0)  # shift invariance
        small = table(7, 7)[0]
        torch.testing.assert_close(small, bias[:, 10:17, 10:17], rtol=0, atol=0)


def test_rms_norm_has_no_centring_and_no_bias():
    norm = RMSNorm(8)
    x = torch.randn(4, 3, 8) + 5.0
    out = norm(x)
    torch.testing.assert_close(out.pow(2).mean(-1), torch.ones(4, 3), atol=1e-4, rtol=0)
    assert out.mean(-1).abs().min() > 0.5                              # the mean is not removed
    assert [n for n, _ in norm.named_parameters()] == ["weight"]


def test_no_bias_anywhere():
    model = T5(T5Config.small(30))
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.bias is None for m in linears)


# ---- span corruption ----------------------------------------------------------------------------
SENTINELS = list(range(1000, 1200))


def test_span_corruption_example():
    ids = list(range(10, 30))
    inputs, targets = span_corruption(ids, SENTINELS, seed=4)
    mask = noise_span_mask(len(ids), seed=4)
    assert sum(mask) == 3 and mask[0] is False and mask[-1] is True   # kept first, noise last (as T5)
    assert [t for t, m in zip(ids, mask) if not m] == [t for t in inputs if t not in SENTINELS]
    assert [t for t, m in zip(ids, mask) if m] == [t for t in targets if t not in SENTINELS]
    assert targets[0] == SENTINELS[0] and targets[-1] == SENTINELS[1]


def test_span_corruption_on_many_random_cases():
    rng = random.Random(0)
    corrupted, tokens, span_lengths = 0, 0, []
    for case in range(400):
        length = rng.randint(20, 400)
        ids = [rng.randrange(0, 500) for _ in range(length)]
        inputs, targets = span_corruption(ids, SENTINELS, seed=case)
        assert reassemble_spans(inputs, targets, SENTINELS) == ids     # reassembles exactly
        in_sentinels = [t for t in inputs if t in SENTINELS]
        out_sentinels = [t for t in targets if t in SENTINELS]
        n = len(in_sentinels)
        assert in_sentinels == SENTINELS[:n] and out_sentinels == SENTINELS[:n + 1]  # in order
        assert all(not (a in SENTINELS and b in SENTINELS) for a, b in zip(inputs, inputs[1:]))  # spans apart
        assert len(inputs) + len(targets) == length + 2 * n + 1
        mask = noise_span_mask(length, seed=case)
        corrupted += sum(mask)
        tokens += length
        span, runs = 0, []
        for m in mask + [False]:
            if m:
                span += 1
            elif span:
                runs.append(span)
                span = 0
        assert len(runs) == n
        span_lengths += runs
    assert abs(corrupted / tokens - 0.15) < 0.005                      # the noise density
    assert abs(sum(span_lengths) / len(span_lengths) - 3.0) < 0.15     # the mean span length


def test_span_corruption_other_parameters():
    ids = list(range(1000))
    mask = noise_span_mask(1000, noise_density=0.5, mean_span_length=10, seed=1)
    assert sum(mask) == 500
    inputs, targets = span_corruption(ids, SENTINELS, noise_density=0.5, mean_span_length=10, seed=1)
    assert sum(t in SENTINELS for t in inputs) == 50
    assert reassemble_spans(inputs, targets, SENTINELS) == ids


def test_reassemble_refuses_out_of_order_sentinels():
    with pytest.raises(ValueError, match="sentinel number 0"):
        reassemble_spans([1, 101, 2], [102, 5, 101, 6], [101, 102, 103])


# ---- the task generators -------------------------------------------------------------------------
def test_task_generators():
    for source, target in reverse_pairs(200, seed=1):
        assert target == source[::-1] and 3 <= len(source) <= 10
    for source, target in sort_digits_pairs(200, seed=1, min_len=2, max_len=6):
        assert target == "".join(sorted(source)) and source.isdigit() and 2 <= len(source) <= 6
    normal, reverse = addition_pairs(300, seed=2), addition_pairs(300, seed=2, reverse_answer=True)
    for (source, total), (source_r, total_r) in zip(normal, reverse):
        a, b = source.split("+")
        assert source == source_r and int(total) == int(a) + int(b) and total_r == total[::-1]
        assert 1 <= len(a) <= 3 and (len(a) == 1 or a[0] != "0")
    assert len({len(s.split("+")[0]) for s, _ in normal}) == 3          # 1-, 2- and 3-digit operands
    assert reverse_pairs(20, seed=5) == reverse_pairs(20, seed=5) != reverse_pairs(20, seed=6)
    assert with_prefix([("ab", "ba")], "reverse") == [("reverse: ab", "ba")]


# ---- training and decoding ------------------------------------------------------------------------
def test_training_learns_to_reverse_and_decodes_through_seq2seq():
    torch.manual_seed(0)
    pairs = with_prefix(reverse_pairs(400, seed=0, min_len=2, max_len=4, alphabet="abcd"), "reverse")
    vocab = Vocab.build([s + t for s, t in pairs])
    data = encode_pairs(pairs, vocab, vocab)
    model = T5(T5Config.small(len(vocab), d_model=32, d_kv=8, d_ff=64, eos_id=vocab.eos_id,
                              decoder_start_id=vocab.bos_id))
    sources, targets = [s for s, _ in pairs[:50]], [t for _, t in pairs[:50]]
    before = sum(o == t for o, t in zip(translate(model, sources, vocab, vocab, max_len=8), targets))
    history = train_t5(model, data, steps=150, batch_size=32, warmup=10)
    assert history.step_loss[-1] < 0.5 * history.step_loss[0]
    after = sum(o == t for o, t in zip(translate(model, sources, vocab, vocab, max_len=8), targets))
    assert before <= 2 and after >= 15, (before, after)


def test_each_tensor_steps_by_lr_times_its_rms_and_the_bias_tables_by_their_own_lr():
    # Adam's first update moves every entry by about its learning rate (times the sign of its
    # gradient): with warmup=0 the largest move of a weight is lr x its starting RMS, of a bias
    # table entry position_bias_lr, whatever their scales
    pairs = with_prefix(reverse_pairs(64, seed=0, min_len=2, max_len=5, alphabet="abcd"), "reverse")
    vocab = Vocab.build([s + t for s, t in pairs])
    data = encode_pairs(pairs, vocab, vocab)
    torch.manual_seed(0)
    model = T5(T5Config.small(len(vocab), d_model=32, d_kv=8, d_ff=64, eos_id=vocab.eos_id,
                              decoder_start_id=vocab.bos_id))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train_t5(model, data, steps=1, batch_size=16, lr=1e-2, position_bias_lr=0.5, warmup=0)
    move = {n: (p.detach() - before[n]).abs().max().item() for n, p in model.named_parameters()}
    rms = {n: max(1e-3, b.pow(2).mean().sqrt().item()) for n, b in before.items()}
    tables = [n for n in move if "relative_attention_bias" in n]
    assert len(tables) == 2
    for n in tables:
        assert move[n] == pytest.approx(0.5, rel=0.01), n
    for n in ("shared.weight", "encoder.blocks.0.self_attn.q.weight", "decoder.blocks.1.ff.wo.weight"):
        assert move[n] == pytest.approx(1e-2 * rms[n], rel=0.01), n
    # the embeddings (std 1) and the queries ((C D)^-1/2 = 0.06 here) get very different steps
    assert move["shared.weight"] > 10 * move["encoder.blocks.0.self_attn.q.weight"]
    groups = t5_param_groups(model, 1e-2, 0.5)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


# ---- bad input ------------------------------------------------------------------------------------
def test_bad_input_gets_named_errors():
    with pytest.raises(TypeError, match="relative_position: expected an integer"):
        relative_position_bucket(torch.zeros(3), True)
    with pytest.raises(ValueError, match="num_buckets"):
        relative_position_bucket(torch.arange(3), True, num_buckets=3)
    with pytest.raises(ValueError, match="max_distance"):
        relative_position_bucket(torch.arange(3), True, num_buckets=32, max_distance=8)
    with pytest.raises(ValueError, match="config.n_heads"):
        T5Config.small(30, n_heads=0)
    with pytest.raises(ValueError, match="config.ffn"):
        T5Config.small(30, ffn="swiglu")
    with pytest.raises(ValueError, match="config.eos_id"):
        T5Config.small(30, eos_id=30)
    with pytest.raises(TypeError, match="config: expected a T5Config"):
        T5({"d_model": 8})
    model = T5(T5Config.small(30, d_model=16, d_kv=4, d_ff=16))
    with pytest.raises(ValueError, match="input_ids: expected shape"):
        model(torch.zeros(5, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"decoder_input_ids: expected ids in \[0, 30\)"):
        model(torch.ones(2, 5, dtype=torch.long), torch.full((2, 3), 31))
    with pytest.raises(TypeError, match="attention_mask: expected a bool"):
        model(torch.ones(2, 5, dtype=torch.long), torch.ones(2, 3, dtype=torch.long), torch.ones(2, 5))
    with pytest.raises(TypeError, match="model: expected a transformers.T5ForConditionalGeneration"):
        T5.from_hf(model)
    with pytest.raises(ValueError, match="ids: expected no sentinel id"):
        span_corruption([1, 2, 1000], SENTINELS)
    with pytest.raises(ValueError, match="sentinel_ids: expected at least 3 ids"):
        span_corruption(list(range(40)), [1000, 1001])
    with pytest.raises(ValueError, match="noise_density"):
        span_corruption(list(range(40)), SENTINELS, noise_density=1.0)
    with pytest.raises(ValueError, match="mean_span_length"):
        span_corruption(list(range(40)), SENTINELS, mean_span_length=0)
    with pytest.raises(ValueError, match="length: expected an int >= 2"):
        span_corruption([5], SENTINELS)
    with pytest.raises(ValueError, match="min_len, max_len"):
        reverse_pairs(3, min_len=5, max_len=2)
    with pytest.raises(ValueError, match="max_digits"):
        addition_pairs(3, max_digits=0)
    with pytest.raises(ValueError, match="prefix"):
        with_prefix([("a", "b")], "a: b")
    data = encode_pairs([("ab", "ba")], Vocab.build(["ab"]), Vocab.build(["ab"]))
    with pytest.raises(ValueError, match="position_bias_lr: expected a positive float"):
        train_t5(model, data, steps=1, position_bias_lr=0.0)
    with pytest.raises(ValueError, match="lr: expected a positive float"):
        t5_param_groups(model, -1.0, 0.3)
    with pytest.raises(TypeError, match="model: expected a T5"):
        train_t5(torch.nn.Linear(2, 2), data, steps=1)
