"""Safe wrappers that every chapter's check helpers are built from (docs/exercises.md).

A check helper calls the learner's code through :func:`call`, checks what comes back with
:func:`expect_tensor` and :func:`expect_close`, and raises :class:`Feedback` with a message that
says what is wrong. :func:`checker` makes sure nothing else escapes, so a learner never reads a
traceback from inside the checker, only the message.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import linecache
import os
import sysconfig
import traceback
from typing import Any, Callable, Mapping

import torch

__all__ = ["Feedback", "Opaque", "checker", "call", "expect_tensor", "expect_close", "expect_tuple", "generator", "truncate",
           "describe", "plain"]

_OUTPUT_LIMIT = 2000  # characters of a learner's printed output shown back to them


class Feedback(AssertionError):
    """A failed check. Its message is everything the learner sees, so it must teach.

    A subclass of ``AssertionError``: nbgrader, pytest and ``course_lib.grade`` count it as a
    failed test like any other assertion.
    """


def truncate(text: str, limit: int = _OUTPUT_LIMIT) -> str:
    """``text`` cut to about ``limit`` characters, saying how much was left out."""
    if not isinstance(text, str):
        text = str(text)
    if limit < 20:
        raise ValueError(f"limit: expected at least 20 characters, got {limit!r}")
    if len(text) <= limit:
        return text
    head, tail = text[: limit * 3 // 4], text[-(limit // 4):]
    return f"{head}\n... [{len(text) - len(head) - len(tail):,} characters cut] ...\n{tail}"


class Opaque:
    """What a learner's function returned when it is not data (a function, a module, an object of
    its own class), as the grader receives it from the kernel: its type's name and its repr."""

    __slots__ = ("kind", "text")

    def __init__(self, kind: str, text: str):
        self.kind, self.text = kind, text

    def __repr__(self) -> str:
        return self.text


def describe(value: Any) -> str:
    """A short description of a value for a message: ``a tuple of 2 items``, ``a Tensor of shape (4, 8)``."""
    if value is None:
        return "None"
    if isinstance(value, Opaque):
        return f"a {value.kind} ({truncate(value.text, 80) if len(value.text) > 80 else value.text})"
    if isinstance(value, torch.Tensor):
        return f"a torch.Tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    if type(value).__module__ == "numpy" and hasattr(value, "shape"):
        return f"a NumPy {type(value).__name__} of shape {tuple(value.shape)}"
    if isinstance(value, (tuple, list, dict, set)):
        n = len(value)
        return f"a {type(value).__name__} of {n} item{'s' if n != 1 else ''}"
    text = repr(value)
    return f"a {type(value).__name__} ({truncate(text, 80) if len(text) > 80 else text})"


# -- plain types -----------------------------------------------------------------------------------

def plain(value: Any, _depth: int = 0) -> Any:
    """``value`` with every subclass of a basic type replaced by the basic type itself.

    A learner's function could return a ``torch.Tensor`` subclass whose comparisons always succeed,
    or an ``int`` whose ``==`` is always true; :func:`call` passes every result through this, so a
    check only ever compares plain tensors, numbers, strings, tuples, lists and dicts. Tensors keep
    their data and autograd graph (``Tensor.as_subclass`` with the subclass's torch function off).
    """
    kind = type(value)
    if value is None or kind in (bool, int, float, complex, str, bytes):
        return value
    if isinstance(value, torch.Tensor):
        if kind is torch.Tensor:
            return value
        with torch._C.DisableTorchFunctionSubclass():
            return torch.Tensor.as_subclass(value, torch.Tensor)
    if isinstance(value, int):
        return int.__index__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, complex):
        return complex.__complex__(value) if hasattr(complex, "__complex__") else complex(value.real, value.imag)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bytes):
        return bytes(memoryview(value))
    if _depth > 20:
        return value
    if isinstance(value, tuple):
        return tuple(plain(v, _depth + 1) for v in tuple.__iter__(value))
    if isinstance(value, list):
        return [plain(v, _depth + 1) for v in list.__iter__(value)]
    if isinstance(value, dict):
        return {plain(k, _depth + 1): plain(v, _depth + 1) for k, v in dict.items(value)}
    if type(value).__module__ == "numpy" or (hasattr(value, "__array_finalize__") and hasattr(value, "view")):
        import numpy as np
        if isinstance(value, np.ndarray) and kind is not np.ndarray:
            return np.ndarray.view(value, np.ndarray)
    return value


# -- calling learner code ------------------------------------------------------------------------

_LIBRARY_DIRS = tuple({os.path.realpath(p) for p in (
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),  # course_lib itself
    sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"],
    os.path.dirname(os.path.abspath(torch.__file__)),
)})


def _is_learner_frame(filename: str) -> bool:
    if filename.startswith("<frozen"):
        return False
    if filename.startswith("<"):  # "<ipython-input-...>", "<string>": code typed by the learner
        return True
    path = os.path.realpath(filename)
    return not any(path == d or path.startswith(d + os.sep) for d in _LIBRARY_DIRS)


def _is_cell(filename: str) -> bool:
    # ipykernel names the code of a cell /tmp/ipykernel_<pid>/<hash>.py
    return "ipykernel_" in filename or filename.startswith("<ipython-input")


def _where(exc: BaseException) -> str:
    """`` at line N of your cell: `code` `` for the deepest frame of learner code in the traceback
    (for an error raised in the grading kernel, what the kernel found there)."""
    if isinstance(getattr(exc, "_course_where", None), str):
        return exc._course_where
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _is_learner_frame(f.filename)]
    if not frames:
        return ""
    frame = frames[-1]
    line = (frame.line or linecache.getline(frame.filename, frame.lineno)).strip()
    place = "your cell" if _is_cell(frame.filename) else os.path.basename(frame.filename)
    where = f" at line {frame.lineno} of {place}"
    if frame.name not in ("<module>", ""):
        where += f" (in {frame.name})"
    return where + (f": `{truncate(line, 200)}`" if line else "")


class _CappedWriter:
    """A text sink that keeps the first ``limit`` characters and counts the rest."""

    def __init__(self, limit: int):
        self.limit, self.kept, self.dropped = limit, [], 0
        self._size = 0

    def write(self, text: str) -> int:
        room = self.limit - self._size
        if room > 0:
            self.kept.append(text[:room])
            self._size += min(room, len(text))
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def flush(self) -> None:
        pass

    def text(self) -> str:
        out = "".join(self.kept)
        if self.dropped:
            out += f"\n... [{self.dropped:,} more characters of output cut] ..."
        return out


def call(fn: Any, *args: Any, name: str | None = None, hints: Mapping[str, str] | None = None,
         check_inputs_unchanged: bool = True, **kwargs: Any) -> Any:
    """Call the learner's ``fn(*args, **kwargs)`` and return its result, or raise :class:`Feedback`.

    - ``fn`` not a function: says what it is instead.
    - ``NotImplementedError``: "not answered yet".
    - any other exception: its type and message, the line of the learner's code it came from, and
      a hint when its message contains a key of ``hints`` (e.g. ``{"shapes cannot be multiplied":
      "x_t (B, C) is multiplied by W_x (C, d_hidden)"}``).
    - printed output is captured and shown back cut to 2,000 characters.
    - tensor arguments changed in place: says which one (unless ``check_inputs_unchanged=False``).
    - the result is returned as :func:`plain` types (no subclass of a tensor or number survives).
    """
    name = name or getattr(fn, "__name__", None) or "your function"
    if fn is None or not callable(fn):
        raise Feedback(f"`{name}` should be a function, but it is {describe(fn)}. "
                       f"Run the cell that defines it (and keep the name `{name}`).")
    before = [a.detach().clone() if isinstance(a, torch.Tensor) else None for a in args] \
        if check_inputs_unchanged else []
    sink = _CappedWriter(_OUTPUT_LIMIT)
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            result = fn(*args, **kwargs)
    except Feedback:
        raise  # a check helper's own probe (e.g. an instrumented callback) already explained it
    except NotImplementedError:
        raise Feedback(f"`{name}` is not answered yet: replace `raise NotImplementedError()` in its "
                       "cell with your code, run that cell, then run this test again.") from None
    except RecursionError:
        raise Feedback(f"your function `{name}` calls itself without end (RecursionError); "
                       "did you give a helper the same name as the function?") from None
    except (Exception, SystemExit) as exc:  # a learner's exit() must not end the grading
        message = f"your function `{name}` raised {type(exc).__name__}"
        text = str(exc).strip()
        if text:
            message += f": {truncate(text, 400)}"
        message += _where(exc)
        for needle, hint in (hints or {}).items():
            if needle.lower() in text.lower():
                message += f"\nHint: {hint}"
                break
        raise Feedback(message) from None
    finally:
        printed = sink.text()
        if printed.strip():
            print(f"[output of `{name}`]\n{printed}")
    if check_inputs_unchanged:
        try:
            params = list(inspect.signature(fn).parameters)
        except (TypeError, ValueError):
            params = []
        for i, (arg, copy) in enumerate(zip(args, before)):
            if copy is not None and (arg.shape != copy.shape or not torch.equal(arg.detach(), copy)):
                arg_name = params[i] if i < len(params) else f"argument {i + 1}"
                raise Feedback(f"`{name}` changed its input `{arg_name}` in place (e.g. `{arg_name} += ...` "
                               "or an operation ending in `_`); compute a new tensor instead.")
    return plain(result)


# -- checking what came back ---------------------------------------------------------------------

def generator(seed: int) -> torch.Generator:
    """The seeded generator every check draws its inputs from (the same inputs on every run)."""
    return torch.Generator().manual_seed(int(seed))


def expect_tuple(value: Any, name: str, names: tuple[str, ...]) -> tuple:
    """Check that ``value`` is a tuple (or list) of ``len(names)`` items and return it as a tuple.

    ``names`` are what the items are called in the exercise, e.g. ``("h_new", "c_new")``; the
    message says ``expected a pair (h_new, c_new): `return h_new, c_new```.
    """
    value = plain(value)
    if not (isinstance(value, (tuple, list)) and len(value) == len(names)):
        listed = ", ".join(names)
        kind = "a pair" if len(names) == 2 else "a tuple"
        raise Feedback(f"`{name}` returned {describe(value)}; expected {kind} ({listed}): `return {listed}`.")
    return tuple(value)


def expect_number(value: Any, name: str, what: str = "a float") -> float:
    """``value`` as a float: an int, a float, or a one-element tensor or NumPy scalar; a bool or
    anything else is refused with a message saying ``what`` was expected."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    elif type(value).__module__ == "numpy" and getattr(value, "shape", None) == ():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Feedback(f"`{name}` returned {describe(value)}; expected a number ({what}).")
    return float(value)


def expect_refusal(fn: Callable, name: str, args: tuple, arg: str, where: str, why: str) -> None:
    """``fn(*args)`` must raise a ValueError whose message names the argument ``arg``."""
    try:
        got = fn(*args)
    except ValueError as exc:
        if arg in str(exc):
            return
        raise Feedback(f"{where} raised ValueError({str(exc)!r}); the message should name the argument `{arg}` "
                       "and say what is wrong with it.") from None
    except NotImplementedError:
        raise Feedback(f"`{name}` is not answered yet: replace `raise NotImplementedError()` in its cell with "
                       "your code, run that cell, then run this test again.") from None
    except (Exception, SystemExit) as exc:   # noqa: BLE001 (the learner's error is the feedback)
        raise Feedback(f"{where} raised {type(exc).__name__}: {exc}; expected a ValueError naming `{arg}`.") from None
    raise Feedback(f"{where} returned {describe(plain(got))} instead of refusing: {why}. "
                   f"Raise ValueError naming `{arg}` and what is wrong with it.")


def _shape_text(dims: Mapping[str, int]) -> str:
    return f"({', '.join(dims)}) = {tuple(dims.values())}"


def expect_tensor(value: Any, dims: Mapping[str, int], name: str, *, dtype: torch.dtype | None = None,
                  allow_numpy: bool = False, finite: bool = True) -> torch.Tensor:
    """Check that ``value`` is a tensor with the named shape ``dims`` and return it.

    ``dims`` names each axis, in order: ``{"B": 4, "d_hidden": 8}`` means shape (4, 8). The message
    names the axes, recognises swapped axes and a stray axis of size 1, and says what was returned
    instead of a tensor. ``allow_numpy`` accepts a NumPy array and returns it as a tensor.
    """
    value = plain(value)
    want = tuple(int(v) for v in dims.values())
    shown = _shape_text(dims)
    if value is None:
        raise Feedback(f"`{name}` returned None: did you forget the `return`? "
                       f"Expected a torch.Tensor of shape {shown}.")
    if allow_numpy and type(value).__module__ == "numpy" and hasattr(value, "shape"):
        value = torch.as_tensor(value)
    if not isinstance(value, torch.Tensor):
        hint = ""
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, torch.Tensor) for v in value):
            hint = " If these are one tensor per step, combine them with torch.stack(...)."
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float)) for v in value):
            hint = " Convert it with torch.tensor(...)."
        elif type(value).__module__ == "numpy":
            hint = " Keep the computation in torch (or convert with torch.from_numpy)."
        raise Feedback(f"`{name}` returned {describe(value)}; expected a torch.Tensor of shape {shown}.{hint}")
    got = tuple(value.shape)
    if got != want:
        labels = list(dims)
        msg = f"`{name}` returned a tensor of shape {got}; expected {shown}."
        if sorted(got) == sorted(want) and len(set(want)) == len(want):
            order = [labels[want.index(g)] for g in got]
            msg += f" Its axes look swapped: you have ({', '.join(order)}); check the order of your axes."
        elif tuple(d for d in got if d != 1) == tuple(d for d in want if d != 1) and len(got) != len(want):
            msg += " It differs by an axis of size 1: check squeeze/unsqueeze, keepdim or indexing."
        elif value.numel() == torch.Size(want).numel():
            msg += " It has the right number of elements in the wrong shape: check reshape/view."
        raise Feedback(msg)
    if dtype is not None and value.dtype != dtype:
        raise Feedback(f"`{name}` returned a tensor of dtype {value.dtype}; expected {dtype}.")
    if finite and value.is_floating_point() and not bool(torch.isfinite(value).all()):
        bad = int((~torch.isfinite(value)).sum())
        raise Feedback(f"`{name}` returned a tensor with {bad} NaN or infinite value(s) out of "
                       f"{value.numel()}: look for a division by zero, a log of 0 or an overflow.")
    return value


def _close(a: torch.Tensor, b: torch.Tensor, atol: float, rtol: float) -> bool:
    a, b = plain(a), plain(b)
    if a.shape != b.shape:
        return False
    return bool(torch.allclose(a.detach().double(), b.detach().double(), atol=atol, rtol=rtol))


def expect_close(got: torch.Tensor, want: torch.Tensor, name: str, *,
                 mistakes: Mapping[str, torch.Tensor | Callable[[], torch.Tensor]] | None = None,
                 atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """Compare ``got`` with the reference ``want``; when they differ, name the mistake.

    ``mistakes`` maps a message to what that mistake returns (a tensor, or a function computing it
    lazily). The first mistake whose output matches ``got`` gives the message; if none does, the
    message gives the largest difference and where it is.
    """
    if _close(got, want, atol, rtol):
        return
    for message, candidate in (mistakes or {}).items():
        try:
            value = candidate() if callable(candidate) else candidate
        except Exception:  # a mistake that cannot even be computed on these inputs is not this one
            continue
        if isinstance(value, torch.Tensor) and _close(got, value, atol, rtol):
            raise Feedback(f"`{name}`: {message}")
    diff = (got.detach().double() - want.detach().double()).abs()
    where = tuple(int(i) for i in torch.unravel_index(torch.argmax(diff), diff.shape)) if diff.ndim else ()
    raise Feedback(f"`{name}` returned wrong values: the largest difference from the reference is "
                   f"{diff.max().item():.3g} at index {where} (got {got.detach()[where].item():.5g}, "
                   f"expected {want.detach()[where].item():.5g}). Compare your code with the "
                   "equation above, on a small input, step by step.")


# -- the decorator every check helper wears --------------------------------------------------------

def checker(fn: Callable[..., None]) -> Callable[..., None]:
    """Make a check helper safe: only :class:`Feedback` leaves it, with a short traceback.

    A bug the checker trips over (usually on a value it did not foresee) becomes a Feedback that
    says so, instead of a traceback from inside the checker.
    """
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        __tracebackhide__ = True  # pytest: show the learner's call, not the checker's inside
        try:
            result = fn(*args, **kwargs)
        except Feedback as feedback:
            error = Feedback(str(feedback))
        except Exception as exc:  # never show the checker's own traceback
            error = Feedback(f"{fn.__name__} could not check your answer ({type(exc).__name__}: "
                             f"{truncate(str(exc), 300)}). This usually means your function returned "
                             "something unexpected: call it yourself on a small input and look at what "
                             "it returns.")
        else:
            return result
        raise error from None

    return wrapper

