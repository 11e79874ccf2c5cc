"""Check helpers for the exercises of appendix 13 (scaling out: data parallelism).

One helper per exercise; each builds its inputs from ``seed``, calls the learner's function
safely, and names the usual mistake when the answer is wrong:

1. ``check_rank_share``: checked against ``torch.utils.data.DistributedSampler`` itself;
   contiguous chunks instead of every world_size-th position, the tail not dropped (ranks with
   unequal shares), rank 1 taken for rank 0, a wrong return type;
2. ``check_accumulated_gradients``: the micro-batch losses not divided by their number (gradients
   micro_batches times too large), the gradients zeroed between micro-batches (only the last one
   kept), one pass over the whole batch instead of micro-batches, the gradients of the wrong
   parameters; ``check_accumulation_refuses_bad_input``: a batch that micro_batches does not divide
   must be refused with a ValueError naming the argument;
3. ``check_allreduce_predictions``: a prediction of the bytes a ring all-reduce sends: the factor
   2 (N - 1) / N forgotten, the naive exchange of every gradient with every other process, the limit
   2 for large N used for small N, bits for bytes, bf16 gradients at 4 bytes.

Glossary: B batch, N (world size) processes.
"""
from __future__ import annotations

from typing import Callable

import torch

from .core import Feedback, call, checker, describe, expect_refusal, generator

# -- exercise 1: each process's share of the shuffled data -------------------------------------------


def _sampler_share(n: int, world_size: int, rank: int, seed: int, epoch: int) -> list[int]:
    data = torch.utils.data.TensorDataset(torch.zeros(n))
    sampler = torch.utils.data.DistributedSampler(data, num_replicas=world_size, rank=rank, shuffle=True,
                                                  seed=seed, drop_last=True)
    sampler.set_epoch(epoch)
    return [int(i) for i in sampler]


def _shuffled(n: int, seed: int, epoch: int) -> list[int]:
    """The order DistributedSampler shuffles into: torch.randperm seeded with seed + epoch."""
    g = torch.Generator().manual_seed(seed + epoch)
    return torch.randperm(n, generator=g).tolist()


@checker
def check_rank_share(rank_share: Callable, *, n: int = 22, world_size: int = 4, seed: int = 0,
                     epoch: int = 0) -> None:
    """``rank_share(order, world_size, rank)`` -> the dataset indices that rank gets, equal to
    ``list(DistributedSampler(..., num_replicas=world_size, rank=rank, drop_last=True))`` for
    the shuffled ``order`` that sampler draws."""
    order = _shuffled(n, seed, epoch)
    keep = n // world_size * world_size
    for rank in range(world_size):
        want = _sampler_share(n, world_size, rank, seed, epoch)
        got = call(rank_share, list(order), world_size, rank, name="rank_share")
        if isinstance(got, torch.Tensor):
            got = got.tolist()
        if isinstance(got, tuple):
            got = list(got)
        if not isinstance(got, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in got):
            raise Feedback(f"`rank_share` returned {describe(got)}; expected a list of ints (dataset indices).")
        if got == want:
            continue
        chunk = keep // world_size
        where = f"`rank_share(order, world_size={world_size}, rank={rank})` (order of {n} indices)"
        if got == order[rank * chunk:(rank + 1) * chunk]:
            hint = ("you gave each rank a contiguous chunk. DistributedSampler deals the shuffled order out "
                    "like cards: rank r takes positions r, r + N, r + 2N, ... (order[rank::world_size]), so "
                    "that the per-rank batches of one step together hold the batch one process would take.")
        elif got == order[rank::world_size]:
            hint = (f"{n} indices do not split evenly over {world_size} processes: with drop_last=True the "
                    f"sampler first keeps the first {keep} (a multiple of world_size), so every rank gets "
                    f"{keep // world_size} and all ranks run the same number of steps (a rank with one step "
                    "more would wait forever for the others in the all-reduce).")
        elif world_size > 1 and got == order[:keep][(rank + 1) % world_size::world_size]:
            hint = "ranks count from 0: rank 0 takes position 0 of the order."
        else:
            hint = "rank r takes every world_size-th index of the order, from position r, after dropping the tail."
        raise Feedback(f"{where} returned {got}; DistributedSampler gives {want}. {hint}")


# -- exercise 2: gradient accumulation ---------------------------------------------------------------

def _accumulation_case(seed: int, batch: int, d_in: int, n_classes: int):
    g = generator(1300 + seed)
    torch.manual_seed(1300 + seed)
    model = torch.nn.Sequential(torch.nn.Linear(d_in, 16), torch.nn.Tanh(), torch.nn.Linear(16, n_classes)).double()
    x = torch.randn(batch, d_in, generator=g, dtype=torch.float64)
    y = torch.randint(0, n_classes, (batch,), generator=g)
    return model, x, y


def _full_batch_grads(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters()}
    model.zero_grad()
    return grads


@checker
def check_accumulated_gradients(accumulated_gradients: Callable, *, seed: int = 0, batch: int = 12,
                                micro_batches: int = 3, d_in: int = 5, n_classes: int = 4) -> None:
    """``accumulated_gradients(model, x, y, micro_batches)`` -> {parameter name: gradient} of the
    mean cross-entropy over the whole batch, computed in ``micro_batches`` forward/backward passes
    of batch / micro_batches examples each."""
    model, x, y = _accumulation_case(seed, batch, d_in, n_classes)
    want = _full_batch_grads(model, x, y)
    seen: list[int] = []
    hook = model.register_forward_pre_hook(lambda module, args: seen.append(int(args[0].shape[0])))
    try:
        got = call(accumulated_gradients, model, x, y, micro_batches, name="accumulated_gradients")
    finally:
        hook.remove()
    where = f"`accumulated_gradients(model, x of {batch} examples, y, micro_batches={micro_batches})`"
    if not isinstance(got, dict) or set(got) != set(want):
        raise Feedback(f"{where} returned {describe(got)}; expected a dict with one gradient per parameter, "
                       f"keyed by name as in model.named_parameters(): {sorted(want)}.")
    for name, g in got.items():
        if not isinstance(g, torch.Tensor) or g.shape != want[name].shape:
            raise Feedback(f"{where}: the gradient of `{name}` is {describe(g)}; expected a tensor of shape "
                           f"{tuple(want[name].shape)}, like the parameter.")
    if micro_batches > 1 and seen == [batch]:
        raise Feedback(f"{where} ran the model once on all {batch} examples. The point of accumulation is "
                       f"{micro_batches} passes of {batch // micro_batches} examples each (what fits in memory), "
                       "summing their gradients before the step.")
    if seen != [batch // micro_batches] * micro_batches:
        raise Feedback(f"{where} ran the model on batches of {seen} examples; expected {micro_batches} "
                       f"micro-batches of {batch // micro_batches}, one after the other.")
    if micro_batches == 1:
        _expect_grads_close(got, want, where)
        return
    ratio = {name: (got[name].double().norm() / want[name].norm()).item() for name in want}
    if all(abs(r - micro_batches) < 1e-6 for r in ratio.values()):
        raise Feedback(f"{where}: the gradients are {micro_batches} times too large. Each micro-batch's loss "
                       f"is a mean over its own examples; divide it by micro_batches = {micro_batches} before "
                       "backward so that the sum of the micro-batch gradients is the gradient of the mean over "
                       "the whole batch (DDP averages over processes for the same reason).")
    start = batch - batch // micro_batches
    model.zero_grad()
    (torch.nn.functional.cross_entropy(model(x[start:]), y[start:]) / micro_batches).backward()
    last_only = {name: p.grad.detach().clone() for name, p in model.named_parameters()}
    model.zero_grad()
    for scale in (1.0, float(micro_batches)):
        if all(torch.allclose(got[n].double(), scale * last_only[n], atol=1e-10) for n in want):
            raise Feedback(f"{where} returned the gradient of the last micro-batch only: the gradients were "
                           "zeroed between micro-batches. backward() adds into .grad; zero it once before the "
                           "first micro-batch and let the others accumulate.")
    _expect_grads_close(got, want, where)


def _expect_grads_close(got: dict, want: dict, where: str) -> None:
    for name in want:
        if not torch.allclose(got[name].double(), want[name], atol=1e-9, rtol=1e-6):
            err = (got[name].double() - want[name]).abs().max().item()
            raise Feedback(f"{where}: the gradient of `{name}` differs from the full-batch gradient by up to "
                           f"{err:.2e}. Sum over the micro-batches the gradients of (micro-batch mean loss / "
                           "micro_batches).")


@checker
def check_accumulation_refuses_bad_input(accumulated_gradients: Callable, *, batch: int = 10,
                                         micro_batches: int = 4) -> None:
    """A batch that micro_batches does not divide must raise ValueError naming `micro_batches`."""
    model, x, y = _accumulation_case(0, batch, 5, 4)
    where = f"`accumulated_gradients` with {batch} examples and micro_batches={micro_batches}"
    expect_refusal(accumulated_gradients, "accumulated_gradients", (model, x, y, micro_batches), "micro_batches",
                   where, f"{batch} examples do not split into {micro_batches} equal micro-batches, and unequal "
                          "ones would weigh examples unequally")


# -- exercise 3: a prediction of the all-reduce traffic -----------------------------------------------

PREDICTION_KEYS = ("mb_2_fp32", "mb_8_fp32", "mb_8_bf16")
GPT_PARAMS = 823_040     # the course's GPT of chapter 07, as appendix 13 counts it


def _ring_mb(n_params: int, world: int, bytes_per_value: int) -> float:
    from ..distributed import allreduce_bytes_per_step   # the appendix's own formula
    return allreduce_bytes_per_step(n_params, world, bytes_per_value) / 1e6


@checker
def check_allreduce_predictions(predictions: Callable) -> None:
    """``predictions()`` -> {"mb_2_fp32", "mb_8_fp32", "mb_8_bf16"}: megabytes (1e6 bytes) each process
    sends per step in a ring all-reduce of the course's GPT's gradients, for 2 and 8 processes."""
    got = call(predictions, name="predictions")
    if not isinstance(got, dict) or set(got) != set(PREDICTION_KEYS):
        raise Feedback(f"`predictions()` returned {describe(got)}; expected a dict with the keys {PREDICTION_KEYS}.")
    cases = {"mb_2_fp32": (2, 4), "mb_8_fp32": (8, 4), "mb_8_bf16": (8, 2)}
    for key, (world, nbytes) in cases.items():
        value = got[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Feedback(f"predictions: {key} is {describe(value)}; expected a number of megabytes.")
        want = _ring_mb(GPT_PARAMS, world, nbytes)
        if abs(value - want) <= 0.01 * want:
            continue
        gradient_mb = GPT_PARAMS * nbytes / 1e6
        hints = {
            gradient_mb: "that is the size of the gradients, sent once. A ring all-reduce sends each value "
                         "twice less a share: 2 (N - 1) / N of the gradients (reduce-scatter, then all-gather).",
            (world - 1) * gradient_mb: "that is every process sending all its gradients to every other one; the "
                                       "ring sends 2 (N - 1) / N of them, whatever N.",
            2 * gradient_mb: "2 x the gradients is the limit for many processes; for N processes it is 2 (N - 1) / N.",
            8 * want: "that is in megabits; the question asks for megabytes (8 bits each).",
            _ring_mb(GPT_PARAMS, world, 4): "bf16 values take 2 bytes, not 4.",
        }
        hint = next((h for v, h in hints.items() if abs(value - v) <= 0.01 * v and abs(v - want) > 0.01 * want),
                    "each process sends 2 (N - 1) / N x parameters x bytes per value.")
        raise Feedback(f"predictions: {key} = {value} MB is wrong for N = {world} processes and {nbytes}-byte "
                       f"gradients of {GPT_PARAMS:,} parameters: {hint}")
