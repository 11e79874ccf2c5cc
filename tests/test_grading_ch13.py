"""course_lib.grading.ch13_scaling_out: the reference answers pass, and each known mistake,
written as the function a learner would write, gets the message that names it."""
import pytest
import torch

from course_lib.grading import ch13_scaling_out as grading
from grading_support import fails_with


# -- exercise 1: each process's share -----------------------------------------------------------------

def rank_share(order, world_size, rank):
    keep = len(order) // world_size * world_size
    return order[:keep][rank::world_size]


def test_rank_share_reference_passes():
    grading.check_rank_share(rank_share)
    grading.check_rank_share(rank_share, n=20, world_size=4, seed=3)
    grading.check_rank_share(rank_share, n=9, world_size=1)
    grading.check_rank_share(lambda o, w, r: torch.tensor(rank_share(o, w, r)))   # a tensor of ints is fine too


def contiguous(order, world_size, rank):
    chunk = len(order) // world_size
    return order[rank * chunk:(rank + 1) * chunk]


RANK_MISTAKES = [
    ("contiguous chunks", contiguous, "contiguous chunk"),
    ("tail kept", lambda o, w, r: o[r::w], "drop_last=True"),
    ("ranks from 1", lambda o, w, r: rank_share(o, w, (r + 1) % w), "ranks count from 0"),
    ("unshuffled", lambda o, w, r: rank_share(sorted(o), w, r), "every world_size-th"),
    ("floats", lambda o, w, r: [float(i) for i in rank_share(o, w, r)], "list of ints"),
]


@pytest.mark.parametrize("label, fn, pattern", RANK_MISTAKES, ids=[m[0] for m in RANK_MISTAKES])
def test_rank_share_mistakes_are_named(label, fn, pattern):
    fails_with(grading.check_rank_share, fn, pattern)


# -- exercise 2: gradient accumulation -------------------------------------------------------------------

def make_accumulation(scale=True, zero_each=False, one_pass=False, refuse=True, message="micro_batches"):
    def accumulated_gradients(model, x, y, micro_batches):
        B = x.shape[0]
        if refuse and B % micro_batches:
            raise ValueError(f"{message}: expected a divisor of {B}, got {micro_batches}")
        model.zero_grad()
        if one_pass:
            torch.nn.functional.cross_entropy(model(x), y).backward()
        else:
            size = B // micro_batches
            for start in range(0, B, size):
                if zero_each:
                    model.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(x[start:start + size]), y[start:start + size])
                (loss / micro_batches if scale else loss).backward()
        return {name: p.grad.detach().clone() for name, p in model.named_parameters()}
    return accumulated_gradients


def test_accumulation_reference_passes():
    reference = make_accumulation()
    grading.check_accumulated_gradients(reference)
    grading.check_accumulated_gradients(reference, seed=1, batch=8, micro_batches=4)
    grading.check_accumulated_gradients(reference, seed=2, batch=6, micro_batches=1)
    grading.check_accumulated_gradients(reference, seed=3, batch=10, micro_batches=10)
    grading.check_accumulation_refuses_bad_input(reference)


ACCUMULATION_MISTAKES = [
    ("not divided by k", make_accumulation(scale=False), "3 times too large"),
    ("zeroed between micro-batches", make_accumulation(zero_each=True), "last micro-batch only"),
    ("one pass", make_accumulation(one_pass=True), "once on all 12 examples"),
    ("a list", lambda model, x, y, k: [p for p in model.parameters()], "expected a dict"),
    ("not answered", lambda model, x, y, k: (_ for _ in ()).throw(NotImplementedError()), "not answered yet"),
]


@pytest.mark.parametrize("label, fn, pattern", ACCUMULATION_MISTAKES, ids=[m[0] for m in ACCUMULATION_MISTAKES])
def test_accumulation_mistakes_are_named(label, fn, pattern):
    fails_with(grading.check_accumulated_gradients, fn, pattern)


def test_bad_input_must_be_refused_by_name():
    fails_with(grading.check_accumulation_refuses_bad_input, make_accumulation(refuse=False), "instead of refusing")
    fails_with(grading.check_accumulation_refuses_bad_input, make_accumulation(message="bad"),
               "should name the argument")


# -- exercise 3: the all-reduce prediction ------------------------------------------------------------------

def predictions_with(factor=lambda n: 2 * (n - 1) / n, bf16_bytes=2, unit=1.0):
    P = 823_040
    return lambda: {"mb_2_fp32": factor(2) * P * 4 / 1e6 * unit, "mb_8_fp32": factor(8) * P * 4 / 1e6 * unit,
                    "mb_8_bf16": factor(8) * P * bf16_bytes / 1e6 * unit}


def test_predictions_reference_passes():
    grading.check_allreduce_predictions(predictions_with())


PREDICTION_MISTAKES = [
    ("gradients once", predictions_with(factor=lambda n: 1.0), "the size of the gradients"),
    ("all to all", predictions_with(factor=lambda n: n - 1), "every other one"),
    ("the limit", predictions_with(factor=lambda n: 2.0), "the limit for many processes"),
    ("megabits", predictions_with(unit=8.0), "megabits"),
    ("bf16 at 4 bytes", predictions_with(bf16_bytes=4), "2 bytes"),
    ("missing key", lambda: {"mb_2_fp32": 3.3}, "expected a dict with the keys"),
    ("a string", lambda: {"mb_2_fp32": "3.3", "mb_8_fp32": 5.8, "mb_8_bf16": 2.9}, "expected a number"),
]


@pytest.mark.parametrize("label, fn, pattern", PREDICTION_MISTAKES, ids=[m[0] for m in PREDICTION_MISTAKES])
def test_prediction_mistakes_are_named(label, fn, pattern):
    fails_with(grading.check_allreduce_predictions, fn, pattern)


def test_the_gpt_count_is_the_appendix_s():
    from course_lib.gpt import GPT, GPTConfig
    gpt = GPT(GPTConfig.small(vocab_size=104, n_layers=4))          # as appendix 13 builds it
    assert sum(p.numel() for p in gpt.parameters()) == grading.GPT_PARAMS
