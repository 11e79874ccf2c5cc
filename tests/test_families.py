"""course_lib.families: each family's view of a pair (shapes, which positions the loss reads, the
encoder-only slots), parameters matched within 10 %, a tiny run of the experiment, bad input."""
import math
from dataclasses import replace

import pytest
import torch

from course_lib.families import (FAMILIES, IGNORE, SEP, FamilyConfig, build_family, decoder_inputs,
                                 encoder_inputs, evaluate_family, family_batch, family_data, family_loss,
                                 make_splits, make_vocab, predict, run_families)
from course_lib.bert import MASK
from course_lib.utils import count_params, seed_everything

PAIRS = [("3120", "0123"), ("90", "09"), ("555", "555")]


@pytest.fixture(scope="module")
def vocab():
    return make_vocab(PAIRS)


def test_decoder_inputs_grade_the_target_and_eos_only(vocab):
    x, y = decoder_inputs(PAIRS, vocab)
    assert x.shape == y.shape == (3, 4 + 1 + 4)                       # (B, S + T + 1)
    sep, eos = vocab.stoi[SEP], vocab.eos_id
    assert x[0].tolist() == vocab.encode("3120") + [sep] + vocab.encode("0123")
    assert y[0].tolist() == [IGNORE] * 4 + vocab.encode("0123") + [eos]
    assert y[1].tolist() == [IGNORE] * 2 + vocab.encode("09") + [eos] + [IGNORE] * 4   # padding too
    assert int((y != IGNORE).sum()) == sum(len(t) + 1 for _, t in PAIRS)


def test_decoder_loss_reads_target_positions_only(vocab):
    x, y = decoder_inputs(PAIRS, vocab)

    class FixedLogits(torch.nn.Module):   # a "GPT" whose logits are a leaf we can take gradients of
        def __init__(self):
            super().__init__()
            self.logits = torch.nn.Parameter(torch.randn(*x.shape, len(vocab)))

        def forward(self, ids):
            return self.logits, None

    model = FixedLogits()
    family_loss("decoder-only", model, (x, y)).backward()
    moved = model.logits.grad.abs().sum(-1)                           # (B, S + T + 1)
    assert bool((moved[y == IGNORE] == 0).all())                      # source and padding: no effect
    assert bool((moved[y != IGNORE] > 0).all())                       # every target position counts
    with torch.no_grad():                                             # and changing a source logit
        before = family_loss("decoder-only", model, (x, y))
        model.logits[0, :4] += torch.randn(4, len(vocab)) * 10        # changes nothing
        assert torch.equal(family_loss("decoder-only", model, (x, y)), before)
        model.logits[0, 4] += torch.randn(len(vocab)) * 10            # a target position does
        assert not torch.equal(family_loss("decoder-only", model, (x, y)), before)


def test_encoder_input_has_exactly_target_length_slots(vocab):
    ids, segments, real, labels = encoder_inputs(PAIRS, vocab)
    assert ids.shape == segments.shape == real.shape == labels.shape == (3, 4 + 1 + 4)   # (B, S + 1 + T)
    for row, (s, t) in enumerate(PAIRS):
        slots = ids[row] == vocab.stoi[MASK]
        assert int(slots.sum()) == len(t)
        assert labels[row][slots].tolist() == vocab.encode(t)
        assert bool((labels[row][~slots] == IGNORE).all())
        assert torch.equal(segments[row] == 1, slots)
        assert int(real[row].sum()) == len(s) + 1 + len(t)


def test_encoder_decoder_data_and_trimmed_batches(vocab):
    src, src_mask, tgt_in, tgt_out = family_data("encoder-decoder", PAIRS, vocab)
    assert src.shape == src_mask.shape == (3, 4) and tgt_in.shape == tgt_out.shape == (3, 5)
    for name in FAMILIES:
        batch = family_batch(name, family_data(name, PAIRS, vocab), torch.tensor([1, 2]))
        assert all(t.shape[0] == 2 for t in batch)
        assert max(t.shape[1] for t in batch) < max(t.shape[1] for t in family_data(name, PAIRS, vocab))


@pytest.mark.parametrize("preset", ["default", "fast"])
def test_parameters_match_within_ten_percent(preset):
    config = FamilyConfig() if preset == "default" else FamilyConfig.fast()
    config = replace(config, n_train=200, n_val=10, n_test=10)
    train, val, test = make_splits(config)
    vocab = make_vocab(train + val + test)
    config = replace(config, max_positions=2 * config.max_len + 2)
    counts = {name: count_params(build_family(name, config, vocab)) for name in FAMILIES}
    assert max(counts.values()) / min(counts.values()) <= 1.10, counts


def test_predictions_have_the_right_form(vocab):
    config = FamilyConfig(d_model=16, layers=2, heads=2, max_positions=12)
    for name in FAMILIES:
        seed_everything(0)
        preds = predict(name, build_family(name, config, vocab), PAIRS, vocab, max_target_len=4)
        assert len(preds) == len(PAIRS) and all(isinstance(p, list) and len(p) <= 5 for p in preds)
        if name == "encoder-only":                                    # told the length: exactly T tokens
            assert [len(p) for p in preds] == [len(t) for _, t in PAIRS]


def test_tiny_run_returns_finite_numbers():
    config = FamilyConfig(d_model=16, layers=2, heads=2, steps=3, batch_size=4, n_train=40, n_val=6,
                          n_test=6, lrs=(1e-3, 3e-3), max_len=5)
    results = run_families(config)
    assert set(results) == set(FAMILIES)
    for r in results.values():
        for key in ("params", "cpu_seconds", "lr", "val_exact_match", "test_exact_match",
                    "test_token_accuracy", "final_loss"):
            assert isinstance(r[key], (int, float)) and math.isfinite(r[key]), (key, r[key])
        assert 0 <= r["test_exact_match"] <= 1 and 0 <= r["test_token_accuracy"] <= 1
        assert r["lr"] in config.lrs and set(r["val_by_lr"]) == set(config.lrs)


@pytest.mark.parametrize("overrides, message", [
    (dict(layers=3), "layers: expected an even int"),
    (dict(heads=5), "heads: expected a divisor of d_model = 64, got 5"),
    (dict(lrs=()), "lrs: expected a non-empty tuple of positive floats"),
    (dict(lrs=(1e-3, -1.0)), "lrs: expected a non-empty tuple"),
    (dict(task="translate"), "task: expected one of"),
    (dict(steps=0), "steps: expected a positive int, got 0"),
    (dict(min_len=8, max_len=4), "min_len: expected at most max_len = 4, got 8"),
    (dict(seed=-1), "seed: expected an int >= 0, got -1"),
])
def test_bad_config_is_named(overrides, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        FamilyConfig(**overrides)


def test_bad_arguments_are_named(vocab):
    config = FamilyConfig(d_model=16, layers=2, heads=2)
    with pytest.raises(ValueError, match="config.max_positions: expected an int"):
        build_family("decoder-only", config, vocab)
    config = replace(config, max_positions=12)
    with pytest.raises(ValueError, match="name: expected one of"):
        build_family("gpt", config, vocab)
    model = build_family("encoder-only", config, vocab)
    with pytest.raises(ValueError, match="pairs: expected at least one"):
        evaluate_family("encoder-only", model, [], vocab, max_target_len=4)
    with pytest.raises(ValueError, match="max_target_len: expected a positive int, got 0"):
        predict("encoder-only", model, PAIRS, vocab, max_target_len=0)
    with pytest.raises(ValueError, match="max_positions: expected at least 22"):
        run_families(FamilyConfig(max_positions=12, min_len=10, n_train=20, n_val=2, n_test=2))
    with pytest.raises(TypeError, match="config: expected a FamilyConfig, got dict"):
        run_families({})
