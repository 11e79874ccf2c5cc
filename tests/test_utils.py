"""course_lib.utils: shapes, seeds, devices, fast mode."""
import pytest
import torch

from course_lib.utils import check_shape, count_params, fast_mode, get_device, pick, seed_everything


def test_check_shape_binds_named_dims():
    assert check_shape(torch.zeros(2, 3, 4), ("B", "T", 4), "x") == {"B": 2, "T": 3}
    assert check_shape(torch.zeros(2, 3), (None, 3), "x") == {}
    assert check_shape(torch.zeros(2, 3, 2), ("B", "T", "B"), "x") == {"B": 2, "T": 3}


@pytest.mark.parametrize("tensor, expected, match", [
    (torch.zeros(2, 3), ("B", "T", "C"), r"q: expected shape \(B, T, C\), got \(2, 3\) with 2 dims"),
    (torch.zeros(2, 3, 5), ("B", "T", 4), r"q: expected shape \(B, T, 4\), got \(2, 3, 5\): dim 2 should be 4"),
    (torch.zeros(2, 3, 4), ("T", "T", None), r"q: .*dim 1 \(T\) is 3 but T = 2 elsewhere"),
    ([1, 2], ("B",), r"q: expected a tensor of shape \(B\), got list"),
])
def test_check_shape_errors_name_argument_expected_and_given(tensor, expected, match):
    with pytest.raises((ValueError, TypeError), match=match):
        check_shape(tensor, expected, "q")


def test_seed_everything_repeats_random_draws():
    seed_everything(3)
    first = torch.randn(4)
    seed_everything(3)
    assert torch.equal(first, torch.randn(4))
    with pytest.raises(ValueError, match=r"seed: expected a non-negative int, got -1"):
        seed_everything(-1)


def test_get_device_and_count_params():
    assert get_device("cpu").type == "cpu"
    assert get_device().type in {"cuda", "mps", "cpu"}
    with pytest.raises(ValueError, match=r"prefer: expected one of .* got 'tpu'"):
        get_device("tpu")
    layer = torch.nn.Linear(3, 2)
    assert count_params(layer) == 8
    layer.bias.requires_grad_(False)
    assert count_params(layer) == 6 and count_params(layer, trainable_only=False) == 8
    with pytest.raises(TypeError, match=r"model: expected a torch.nn.Module, got int"):
        count_params(3)


def test_fast_mode_switch(monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")
    assert fast_mode() and pick("small", "big") == "small"
    monkeypatch.setenv("COURSE_FAST", "0")
    assert not fast_mode() and pick("small", "big") == "big"


def test_graph_depth_counts_the_longest_chain():
    from course_lib.utils import graph_depth
    x = torch.randn(3, requires_grad=True)
    assert graph_depth((x * 2).sum()) == 3               # leaf accumulator, mul, sum
    chain = x
    for _ in range(10):
        chain = chain * 2
    assert graph_depth(chain.sum()) == 12                # ten multiplications in a row
    with pytest.raises(ValueError, match="output: expected a tensor computed"):
        graph_depth(torch.ones(2))
