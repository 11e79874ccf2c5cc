"""course_lib.grading.ch00_setup: the one trivial exercise of chapter 00 and its known mistakes."""
import pytest
import torch

from course_lib.grading import ch00_setup as grading


@pytest.mark.parametrize("kwargs", [{}, {"B": 1, "T": 7, "C": 2}, {"B": 5, "T": 1, "C": 3}])
def test_reference_passes(kwargs):
    grading.check_make_batch(lambda B, T, C: torch.zeros(B, T, C), **kwargs)


@pytest.mark.parametrize("fn, pattern", [
    (lambda B, T, C: torch.zeros(B, C, T), r"shape \(2, 4, 3\); expected \(B, T, C\) = \(2, 3, 4\)\. Its axes look "
                                           r"swapped: you have \(B, C, T\)"),
    (lambda B, T, C: torch.zeros(B, T, C, dtype=torch.long), r"dtype torch.int64; expected torch.float32.*torch.zeros"),
    (lambda B, T, C: torch.zeros(B, T, C, dtype=torch.float64), r"dtype torch.float64; expected torch.float32"),
    (lambda B, T, C: torch.ones(B, T, C), "filled with ones"),
    (lambda B, T, C: [[[0.0] * C] * T] * B, r"returned a list of 2 items"),
    (lambda B, T, C: None, "did you forget the `return`"),
    (lambda B, T, C: torch.zeros(B * T * C), "right number of elements in the wrong shape"),
])
def test_mistakes_are_named(fn, pattern):
    with pytest.raises(AssertionError, match=pattern):
        grading.check_make_batch(fn)


def test_untouched_answer_says_not_answered():
    def make_batch(B, T, C):
        raise NotImplementedError()

    with pytest.raises(AssertionError, match="`make_batch` is not answered yet"):
        grading.check_make_batch(make_batch)
