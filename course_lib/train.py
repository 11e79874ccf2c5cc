"""The one training loop of the course: every chapter calls :func:`fit`.

A chapter supplies ``loss_fn(model, batch) -> scalar loss`` and re-iterable batches (a list, a
DataLoader, or a function of the epoch index that returns a fresh iterable for that epoch, e.g.
``lambda epoch: batches(x, y, batch_size=64, seed=epoch)``, reshuffled and repeatable). The loop clips gradients, validates, stops early and returns a history.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, Union

import torch
from tqdm.auto import tqdm

from .utils import check_int

Batches = Union[Iterable, Callable[[int], Iterable]]
LossFn = Callable[[torch.nn.Module, object], torch.Tensor]


@dataclass
class History:
    """What :func:`fit` measured, one entry per epoch (``grad_norm`` and ``step_loss`` per step)."""
    train_loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    epoch_seconds: list = field(default_factory=list)
    step_loss: list = field(default_factory=list)
    grad_norm: list = field(default_factory=list)
    best_epoch: int = -1
    stopped_early: bool = False


def _fresh(data: Batches, epoch: int) -> Iterable:
    return data(epoch) if callable(data) else data


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: Batches, loss_fn: LossFn, epoch: int = 0) -> float:
    """Mean of ``loss_fn`` over the batches (a function of ``epoch`` is called with it), in eval
    mode, without gradients."""
    was_training = model.training
    model.eval()
    losses = [float(loss_fn(model, batch)) for batch in _fresh(data, epoch)]
    model.train(was_training)
    if not losses:
        raise ValueError("data: expected at least one batch, got none")
    return sum(losses) / len(losses)


def fit(model: torch.nn.Module, train_data: Batches, loss_fn: LossFn, *, epochs: int = 1,
        lr: float = 1e-3, val_data: Optional[Batches] = None,
        optimizer: Optional[torch.optim.Optimizer] = None, scheduler=None,
        clip_grad: Optional[float] = 1.0, patience: Optional[int] = None,
        progress: bool = True, desc: str = "train") -> History:
    """Train ``model`` and return its :class:`History`.

    - ``optimizer`` defaults to Adam with ``lr``; ``scheduler`` (if any) steps after every batch.
    - ``clip_grad`` clips the global gradient norm (None turns clipping off); the norm before
      clipping is recorded in ``history.grad_norm``.
    - With ``val_data`` and ``patience``, training stops after ``patience`` epochs without a
      better validation loss, and the best weights are restored.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    check_int(epochs, "epochs")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr: expected a positive float, got {lr!r}")
    if clip_grad is not None and not clip_grad > 0:
        raise ValueError(f"clip_grad: expected a positive float or None, got {clip_grad!r}")
    if patience is not None and (val_data is None or not isinstance(patience, int) or patience < 1):
        raise ValueError(f"patience: expected a positive int together with val_data, got {patience!r}")
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    history = History()
    best, best_state, waited = math.inf, None, 0
    bar = tqdm(range(epochs), desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        start, losses = time.perf_counter(), []
        for batch in _fresh(train_data, epoch):
            loss = loss_fn(model, batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {float(loss.detach())} at epoch {epoch}; "
                                         "lower lr or clip gradients")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad if clip_grad else math.inf)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            losses.append(float(loss.detach()))
            history.grad_norm.append(float(norm))
        if not losses:
            raise ValueError("train_data: expected at least one batch per epoch, got none")
        history.epoch_seconds.append(time.perf_counter() - start)
        history.step_loss.extend(losses)
        history.train_loss.append(sum(losses) / len(losses))
        postfix = {"train": f"{history.train_loss[-1]:.3f}"}
        if val_data is not None:
            val = evaluate(model, val_data, loss_fn, epoch)
            history.val_loss.append(val)
            postfix["val"] = f"{val:.3f}"
            if val < best:
                best, history.best_epoch, waited = val, epoch, 0
                if patience is not None:
                    best_state = copy.deepcopy(model.state_dict())
            else:
                waited += 1
                if patience is not None and waited >= patience:
                    history.stopped_early = True
                    break
        bar.set_postfix(postfix)
    if best_state is not None:
        model.load_state_dict(best_state)
    return history
