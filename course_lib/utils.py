"""Small helpers every chapter uses: seeding, device choice, shape checks, fast mode.

Shape glossary (used in every docstring and comment of the course):
B batch, T target/sequence length, S source length, C or d_model channels,
H heads, D head dim, V vocabulary size.
"""
from __future__ import annotations

import os
import random
from typing import Sequence, Union

import numpy as np
import torch

Dim = Union[int, str, None]


def fast_mode() -> bool:
    """True when ``COURSE_FAST=1``: data and epochs shrink so a notebook runs in a minute or two."""
    value = os.environ.get("COURSE_FAST", "0").strip().lower()
    return value in {"1", "true", "yes", "on"}


def pick(fast, full):
    """Return ``fast`` in fast mode and ``full`` otherwise, e.g. ``epochs = pick(2, 20)``."""
    return fast if fast_mode() else full


def seed_everything(seed: int = 0) -> int:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) so a run repeats exactly; returns the seed."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed: expected a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return seed


def get_device(prefer: str = "auto") -> torch.device:
    """The best device available: CUDA, then Apple's MPS, then the CPU.

    ``prefer`` may force one of ``"cuda"``, ``"mps"``, ``"cpu"``; asking for one that is not
    there raises a clear error instead of failing later inside a model.
    """
    choices = ("auto", "cuda", "mps", "cpu")
    if prefer not in choices:
        raise ValueError(f"prefer: expected one of {choices}, got {prefer!r}")
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    available = {"cuda": torch.cuda.is_available(), "mps": has_mps, "cpu": True}
    if prefer == "auto":
        return torch.device(next(name for name in ("cuda", "mps", "cpu") if available[name]))
    if not available[prefer]:
        raise RuntimeError(f"prefer: device {prefer!r} is not available on this machine")
    return torch.device(prefer)


def check_int(value, name: str, minimum: int = 1) -> int:
    """``value`` if it is an int >= ``minimum`` (bools refused), else an error naming ``name``::

        n_heads: expected an int >= 1, got 0
    """
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        what = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name}: expected {what}, got {value!r}")
    return value


def check_probability(value, name: str, allow_one: bool = False) -> float:
    """``value`` as a float if it is a probability in [0, 1) (or [0, 1] with ``allow_one``)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
        0.0 <= value <= 1.0 if allow_one else 0.0 <= value < 1.0)
    if not ok:
        interval = "[0, 1]" if allow_one else "[0, 1)"
        raise ValueError(f"{name}: expected a probability in {interval}, got {value!r}")
    return float(value)


def check_choice(value, name: str, choices: Sequence) -> object:
    """``value`` if it is one of ``choices``, else an error listing them."""
    if value not in tuple(choices):
        raise ValueError(f"{name}: expected one of {tuple(choices)}, got {value!r}")
    return value


def _format_shape(shape: Sequence[Dim]) -> str:
    return "(" + ", ".join("*" if d is None else str(d) for d in shape) + ")"


def check_shape(tensor, expected: Sequence[Dim], name: str) -> dict:
    """Check ``tensor.shape`` against ``expected`` and return the sizes bound to named dims.

    ``expected`` holds ints (that exact size), strings (a named size that must agree wherever
    the name appears, e.g. ``("B", "T", "C")``) or ``None`` (any size). The error names the
    argument, the shape expected and the shape given::

        q: expected shape (B, H, T, D), got (2, 8, 16) with 3 dims
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name: expected the argument's name as a non-empty str, got {name!r}")
    if not hasattr(tensor, "shape"):
        raise TypeError(f"{name}: expected a tensor of shape {_format_shape(expected)}, "
                        f"got {type(tensor).__name__}")
    given = tuple(tensor.shape)
    if len(given) != len(expected):
        raise ValueError(f"{name}: expected shape {_format_shape(expected)}, got {given} "
                         f"with {len(given)} dims")
    bound: dict = {}
    for axis, (want, got) in enumerate(zip(expected, given)):
        if want is None:
            continue
        if isinstance(want, str):
            if want in bound and bound[want] != got:
                raise ValueError(f"{name}: expected shape {_format_shape(expected)}, got {given}: "
                                 f"dim {axis} ({want}) is {got} but {want} = {bound[want]} elsewhere")
            bound[want] = got
        elif want != got:
            raise ValueError(f"{name}: expected shape {_format_shape(expected)}, got {given}: "
                             f"dim {axis} should be {want}")
    return bound


def count_params(model: torch.nn.Module, trainable_only: bool = True) -> int:
    """Number of parameters in ``model`` (only those with ``requires_grad`` by default)."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def graph_depth(output: torch.Tensor) -> int:
    """Longest chain of autograd operations from ``output`` back to a leaf: the number of steps
    that must run one after another to compute it (chapters 01 and 05). Memoised, no recursion."""
    if not isinstance(output, torch.Tensor) or output.grad_fn is None:
        raise ValueError(f"output: expected a tensor computed from inputs that require grad, got {output!r:.80}")
    depth, stack = {}, [(output.grad_fn, False)]
    while stack:
        node, children_done = stack.pop()
        if node in depth:
            continue
        children = [child for child, _ in node.next_functions if child is not None]
        if children_done:
            depth[node] = 1 + max((depth[child] for child in children), default=0)
        else:
            stack.append((node, True))
            stack.extend((child, False) for child in children if child not in depth)
    return depth[output.grad_fn]


def banner(seed: int = 0) -> torch.device:
    """Print versions, device, mode and seed at the top of a notebook; seed; return the device."""
    import sys

    seed_everything(seed)
    device = get_device()
    mode = "fast (COURSE_FAST=1)" if fast_mode() else "full"
    print(f"python {sys.version.split()[0]} | torch {torch.__version__} | numpy {np.__version__} | "
          f"device {device} | mode {mode} | seed {seed}")
    return device
