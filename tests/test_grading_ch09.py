"""course_lib.grading.ch09_t5: the reference answers pass, and each known mistake, written as the
function a learner would write, gets the message that names it."""
import math

import pytest
import torch

from course_lib.grading import ch09_t5 as grading
from course_lib.t5 import relative_position_bucket
from grading_support import fails_with


# -- exercise 1: the bucket function -------------------------------------------------------------------
def bucket(r, bidirectional, num_buckets, max_distance):
    out = torch.zeros_like(r)
    if bidirectional:
        num_buckets //= 2
        out = out + (r > 0).long() * num_buckets
        r = r.abs()
    else:
        r = -torch.clamp(r, max=0)
    exact = num_buckets // 2
    large = exact + (torch.log(r.float() / exact) / math.log(max_distance / exact) * (num_buckets - exact)).long()
    return out + torch.where(r < exact, r, torch.clamp(large, max=num_buckets - 1))


def test_bucket_reference_passes():
    for kwargs in ({}, {"bidirectional": False}, {"num_buckets": 16, "max_distance": 40}):
        grading.check_bucket(bucket, **kwargs)
        grading.check_bucket(relative_position_bucket, **kwargs)


def variant(**knobs):
    return lambda r, b, n, m: grading._variant(r, b, n, m, **knobs)


@pytest.mark.parametrize("fn, pattern, kwargs", [
    (variant(sign=-1), "sign of the offset is flipped", {}),
    (variant(halve=False), "forget to halve", {}),
    (variant(exact_div=4), "not a quarter", {}),
    (variant(log_den=lambda m, e: math.log(m)), "log\\(max_distance / exact\\)", {}),
    (variant(clamp=False), "clamp", {}),
    (variant(causal_abs=True), "collapse onto 0", {"bidirectional": False}),
    (lambda r, b, n, m: grading._variant(r, False, n, m), "two halves", {}),
    (lambda r, b, n, m: grading._variant(r, b, n, m).float() + 0.5, "whole numbers", {}),
    (lambda r, b, n, m: None, "returned None", {}),
    (lambda r, b, n, m: 1 / 0, "ZeroDivisionError", {}),
])
def test_bucket_mistakes_are_named(fn, pattern, kwargs):
    fails_with(grading.check_bucket, fn, pattern, **kwargs)


# -- exercise 2: span corruption ---------------------------------------------------------------------------
def corrupt(ids, mask, sentinels):
    inputs, targets, k = [], [], 0
    for t, (token, noisy) in enumerate(zip(ids, mask)):
        if noisy and (t == 0 or not mask[t - 1]):
            inputs.append(sentinels[k])
            targets.append(sentinels[k])
            k += 1
        (targets if noisy else inputs).append(token)
    return inputs, targets + [sentinels[k]]


def test_corrupt_reference_passes():
    for seed in range(4):
        grading.check_corrupt(corrupt, seed=seed)


def knobs(**kw):
    return lambda ids, mask, s: grading._corrupt(ids, mask, s, **kw)


@pytest.mark.parametrize("fn, pattern", [
    (knobs(per_token=True), "ONE sentinel"),
    (knobs(same=True), "same sentinel"),
    (knobs(backwards=True), "out of order"),
    (knobs(closing=False), "closing sentinel"),
    (knobs(keep_noise=True), "still in the inputs"),
    (lambda ids, mask, s: (ids, []), "inputs are wrong"),
    (lambda ids, mask, s: ids, "expected a pair"),
])
def test_corrupt_mistakes_are_named(fn, pattern):
    fails_with(grading.check_corrupt, fn, pattern)


# -- exercise 3: predictions -----------------------------------------------------------------------------
def test_predictions():
    grading.check_bucket_predictions(lambda: {"first_shared": 8, "plus_1000": 31, "minus_1000": 15})
    # the right answers are the library's
    r = torch.arange(1, 40)
    b = relative_position_bucket(r, True, 32, 128)
    assert int(r[:-1][b[:-1] == b[1:]][0]) == 8
    assert relative_position_bucket(torch.tensor([1000, -1000]), True, 32, 128).tolist() == [31, 15]
    fails_with(grading.check_bucket_predictions, lambda: {"first_shared": 16, "plus_1000": 31, "minus_1000": 15},
               "ONE direction")
    fails_with(grading.check_bucket_predictions, lambda: {"first_shared": 8, "plus_1000": 15, "minus_1000": 31},
               "upper half")
    fails_with(grading.check_bucket_predictions, lambda: {"first_shared": 8, "plus_1000": 31, "minus_1000": 31},
               "lower half")
    fails_with(grading.check_bucket_predictions, lambda: [8, 31, 15], "expected a dict")
