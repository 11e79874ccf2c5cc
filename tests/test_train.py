"""course_lib.train: the fit loop lowers the loss, validates, stops early, and clips."""
import math

import pytest
import torch

from course_lib.data import batches
from course_lib.train import evaluate, fit


def regression_task(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1
    return x, y


def mse(model, batch):
    x, y = batch
    return torch.nn.functional.mse_loss(model(x).squeeze(-1), y)


def test_fit_lowers_the_loss_on_a_tiny_task():
    torch.manual_seed(0)
    x, y = regression_task()
    model = torch.nn.Linear(4, 1)
    train = lambda epoch: batches(x, y, batch_size=32, seed=epoch)  # noqa: E731
    before = evaluate(model, train, mse)
    history = fit(model, train, mse, epochs=30, lr=0.05, val_data=[(x, y)], progress=False)
    assert history.train_loss[-1] < before / 100
    assert len(history.val_loss) == 30 and history.val_loss[-1] < 1e-2
    assert len(history.grad_norm) == 30 * 8 and len(history.epoch_seconds) == 30


def test_early_stopping_restores_the_best_weights():
    torch.manual_seed(0)
    x, y = regression_task()
    model = torch.nn.Linear(4, 1)
    # validation on the negated targets: the better the fit, the worse the validation loss
    history = fit(model, [(x, y)], mse, epochs=50, lr=0.1, val_data=[(x, -y)], patience=3, progress=False)
    assert history.stopped_early and len(history.val_loss) == history.best_epoch + 4
    assert math.isclose(evaluate(model, [(x, -y)], mse), min(history.val_loss), rel_tol=1e-5)


def test_clipping_bounds_the_update():
    torch.manual_seed(0)
    x, y = regression_task()
    y = y * 1000  # huge gradients
    model = torch.nn.Linear(4, 1)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    history = fit(model, [(x, y)], mse, epochs=1, optimizer=optimizer, clip_grad=0.5, progress=False)
    step = torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before)])
    assert history.grad_norm[0] > 100 and step.norm() == pytest.approx(0.5, rel=1e-4)


@pytest.mark.parametrize("kwargs, match", [
    ({"epochs": 0}, r"epochs: expected a positive int, got 0"),
    ({"lr": -1.0}, r"lr: expected a positive float, got -1.0"),
    ({"clip_grad": 0}, r"clip_grad: expected a positive float or None, got 0"),
    ({"patience": 2}, r"patience: expected a positive int together with val_data, got 2"),
])
def test_fit_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit(torch.nn.Linear(4, 1), [regression_task()], mse, progress=False, **kwargs)


def test_fit_rejects_non_modules_and_empty_data():
    with pytest.raises(TypeError, match=r"model: expected a torch.nn.Module, got function"):
        fit(lambda x: x, [], mse)
    with pytest.raises(ValueError, match=r"train_data: expected at least one batch per epoch, got none"):
        fit(torch.nn.Linear(4, 1), [], mse, progress=False)


def test_fit_stops_on_a_diverging_loss():
    model = torch.nn.Linear(4, 1)
    x, y = regression_task()
    with pytest.raises(FloatingPointError, match=r"loss became nan at epoch 0"):
        fit(model, [(x, y * float("nan"))], mse, progress=False)
