"""course_lib.grading.ch00_setup: the exercises of chapter 00 (a batch of zeros, and a diagnosis of a
loss that broadcasts) and their known mistakes."""
import pytest
import torch

from course_lib.grading import ch00_setup as grading
from grading_support import fails_with


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


# -- exercise 2: a diagnosis, the chapter's mse without .squeeze(-1) ----------------------------------

def test_broken_mse_really_broadcasts():
    # the exercise's premise, measured: the (B, 1) output meets the (B,) targets as (B, B)
    model = torch.nn.Linear(3, 1)
    x, y = torch.randn(5, 3), torch.randn(5)
    with pytest.warns(UserWarning, match="target size"):
        torch.nn.functional.mse_loss(model(x), y)
    diff = (model(x) - y) ** 2
    assert diff.shape == (5, 5)
    torch.testing.assert_close(grading.broken_mse(model, (x, y)), diff.mean())


@pytest.mark.parametrize("batches", [(64,), (1, 2, 5)])
def test_broadcast_shape_reference_passes(batches):
    grading.check_broadcast_shape(lambda B: (B, B), batches=batches)
    grading.check_broadcast_shape(lambda B: torch.Size([B, B]), batches=batches)   # a torch.Size is a tuple


@pytest.mark.parametrize("fn, pattern", [
    (lambda B: (B, 1), r"returned \(64, 1\): that is the shape of the model's output"),
    (lambda B: (B,), r"returned \(64,\): that is the shape the chapter's `mse` compares, after `.squeeze\(-1\)`"),
    (lambda B: (1, B), r"broadcasting aligns the \*trailing\* axes"),
    (lambda B: (B * B,), "right number of elements, but broadcasting keeps two axes"),
    (lambda B: (B, B, 1), r"line the shapes up from the right"),
    (lambda B: B * B, r"returned a int \(4096\); expected a shape: a tuple of ints"),
    (lambda B: (float(B), float(B)), "expected a shape: a tuple of ints"),
    (lambda B: "(B, B)", "returned a str"),
    (lambda B: None, "returned None; expected a shape"),
])
def test_broadcast_shape_mistakes_are_named(fn, pattern):
    fails_with(grading.check_broadcast_shape, fn, pattern)


def test_broadcast_shape_of_a_single_example():
    # with B = 1 the output's shape (1, 1) is the right answer; the squeezed (1,) is not
    grading.check_broadcast_shape(lambda B: (B, 1), batches=(1,))
    fails_with(grading.check_broadcast_shape, lambda B: (B,), r"returned \(1,\): that is the shape the chapter's",
               batches=(1,))


def floor(y):
    return ((y - y.mean()) ** 2).mean().item()


FLOOR_CASES = [{}, {"seed": 1, "batch": 64}, {"seed": 2, "batch": 2}, {"seed": 3, "batch": 1}]


@pytest.mark.parametrize("kwargs", FLOOR_CASES)
def test_loss_floor_reference_passes(kwargs):
    grading.check_loss_floor(floor, **kwargs)
    grading.check_loss_floor(lambda y: y.var(correction=0), **kwargs)      # a one-element tensor is a number


@pytest.mark.parametrize("kwargs", FLOOR_CASES)
def test_loss_floor_is_the_lowest_value_of_the_broken_loss(kwargs):
    # the checker's floor against the broken loss itself: no prediction goes below it, the mean reaches it
    y = grading._targets(kwargs.get("seed", 0), kwargs.get("batch", 8))
    want = grading._floor(y)
    best = torch.nn.Linear(3, 1)
    with torch.no_grad():
        best.weight.zero_()
        best.bias.fill_(y.mean().item())
    x = torch.randn(len(y), 3)
    assert abs(grading.broken_mse(best, (x, y)).item() - want) < 1e-4 * max(1.0, want)
    for seed in range(20):
        model = torch.nn.Linear(3, 1)
        torch.manual_seed(seed)
        assert grading.broken_mse(model, (x, y)).item() >= want - 1e-5


@pytest.mark.parametrize("fn, pattern", [
    (lambda y: 0.0, "that would be a model that learns"),
    (lambda y: y.var().item(), r"you divided by B - 1 \(torch.var's default, Bessel's correction\)"),
    (lambda y: y.std(correction=0).item(), r"that is a standard deviation; a mean \*squared\* error"),
    (lambda y: y.std().item(), r"that is a standard deviation \(dividing by B - 1\)"),
    (lambda y: (y ** 2).mean().item(), "that is the loss of predicting 0 for every example"),
    (lambda y: 2 * floor(y), "the mean squared difference between two targets"),
    (lambda y: y.mean().item(), r"the broken loss can go no lower than .*find the best p_i"),
    (lambda y: float("nan"), "returned nan for a batch of 8 targets"),
    (lambda y: "small", r"returned a str \('small'\); expected a number"),
    (lambda y: [floor(y)], "returned a list of 1 item; expected a number"),
    (lambda y: True, "returned a bool"),
    (lambda y: y - y.mean(), r"returned a torch.Tensor of shape \(8,\)"),
])
def test_loss_floor_mistakes_are_named(fn, pattern):
    fails_with(grading.check_loss_floor, fn, pattern)


def test_loss_floor_mistakes_differ_on_the_graded_batches():
    # a mistake that happens to give the right value on a graded batch could not be told apart (with
    # B = 2, dividing by B - 1 gives twice the variance, like the pairs' mean: either message is right)
    for kwargs in FLOOR_CASES[:2]:
        y = grading._targets(kwargs.get("seed", 0), kwargs.get("batch", 8)).double()
        values = [floor(y), 0.0, y.var().item(), y.std(correction=0).item(), y.std().item(),
                  (y ** 2).mean().item(), 2 * floor(y)]
        assert min(abs(a - b) for i, a in enumerate(values) for b in values[i + 1:]) > 1e-2, kwargs


@pytest.mark.filterwarnings("ignore:var\\(\\). degrees of freedom")
def test_loss_floor_of_one_example_explains_the_nan():
    fails_with(grading.check_loss_floor, lambda y: y.var().item(), r"divides by B - 1 = 0", seed=3, batch=1)


def test_untouched_diagnosis_says_not_answered():
    def broadcast_shape(B):
        raise NotImplementedError()

    def loss_floor(y):
        raise NotImplementedError()

    fails_with(grading.check_broadcast_shape, broadcast_shape, "`broadcast_shape` is not answered yet")
    fails_with(grading.check_loss_floor, loss_floor, "`loss_floor` is not answered yet")
