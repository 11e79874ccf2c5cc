"""Checks that run outside the learner's process: the learner's functions are called over a socket.

When a hand-in is graded (:mod:`course_lib.grading.runner`), a test cell does not run in the
learner's kernel. It runs in the grader's own process, where every learner name the cell uses
(``rnn_step``) is a :class:`Proxy`. Calling a proxy sends the arguments to the kernel, which runs the
learner's function there and sends back only data: tensors, numbers, strings and containers of
them, loaded with ``torch.load(weights_only=True)``, so nothing of the learner's (no subclass, no
object with methods) reaches the checker. Whatever a learner's function does when it is called
(patch ``course_lib.grading``, walk up to the checker's frame, hook imports) happens in the
kernel, where no check runs.

What the checker hands to a learner's function goes the other way by value (tensors, modules,
``torch.Generator`` objects), except what is the checker's own: its local functions and lambdas
(``step`` of chapter 01, the instrumented suspects of chapter 04), generators and objects of the check
modules (the stream of chapter 11) stay in the grader's process, and the kernel gets a
:class:`_Remote` that calls them there. After a call, tensors the function changed in place and the
state of a ``torch.Generator`` it drew from are sent back, so that the checks see them as before.

The protocol is one message at a time over a Unix socket in the kernel's private folder: a
length, then the message. Messages to the kernel are pickled (the kernel may trust the grader);
messages from it are ``torch.save``-d and read with ``weights_only=True`` and a size limit.
Either side may call the other while it waits for an answer (a learner's loop calling ``step``).
"""
from __future__ import annotations

import ast
import builtins
import contextlib
import functools
import importlib
import inspect
import io
import pickle
import socket
import struct
import time
import types
from typing import Any

import torch

from .core import Opaque, _CappedWriter, _where, plain

MAX_MESSAGE = 64 * 2 ** 20     # bytes of one message from the kernel (a result, a callback's arguments)
PRINT_LIMIT = 20_000           # characters of a call's printed output sent back
_HEADER = struct.Struct("!Q")
_CHECK_MODULES = "course_lib.grading."


class Stop(BaseException):
    """The kernel stopped answering; a BaseException so that no check turns it into a Feedback.

    ``status`` is what the runner records for the cell: "timeout" (the cell's time ran out),
    "dead" (the kernel went away) or "error" (it sent something that is not the protocol).
    """

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


# -- framing ---------------------------------------------------------------------------------------

def _send(sock: socket.socket, data: bytes) -> None:
    sock.sendall(_HEADER.pack(len(data)) + data)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            raise EOFError("the other side closed the connection")
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _recv(sock: socket.socket, limit: int | None = None) -> bytes:
    (n,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size))
    if limit is not None and n > limit:
        raise ValueError(f"a message of {n:,} bytes, more than the limit of {limit:,}")
    return _recv_exact(sock, n)


# -- what stays in the grader's process ------------------------------------------------------------

def _stays(obj: Any) -> bool:
    """True for what the checker hands over that must run where the checker runs."""
    if isinstance(obj, (torch.Tensor, torch.nn.Module, torch.Generator, type)):
        return False
    if isinstance(obj, (types.GeneratorType, types.MethodType, functools.partial)):
        return True
    if isinstance(obj, types.FunctionType):
        return "<locals>" in obj.__qualname__ or obj.__name__ == "<lambda>" \
            or (obj.__module__ or "").startswith(_CHECK_MODULES)
    return type(obj).__module__.startswith(_CHECK_MODULES)


class _Pickler(pickle.Pickler):
    """Pickles for the kernel, putting what :func:`_stays` in ``table`` and sending its number."""

    def __init__(self, file, table: dict[int, Any]):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.table = table

    def persistent_id(self, obj: Any) -> Any:
        if _stays(obj):
            key = id(obj)
            self.table[key] = obj
            return key
        return None


def _dumps_for_kernel(message: Any, table: dict[int, Any]) -> bytes:
    buf = io.BytesIO()
    _Pickler(buf, table).dump(message)
    return buf.getvalue()


# -- data from the kernel: only plain values ------------------------------------------------------

_NUMPY, _OPAQUE = "__course_numpy__", "__course_opaque__"
# modules a notebook imports that a test cell may use by the notebook's name for them (the grader
# imports its own copy; a module by any other name stays unknown to the test cell)
_MODULES = ("math", "numpy", "torch", "torch.nn", "torch.nn.functional")


def export(value: Any, _depth: int = 0) -> Any:
    """``value`` as what ``torch.load(weights_only=True)`` reads: plain numbers, strings, tensors and
    containers of them; a NumPy array is marked and sent as a tensor, anything else as its
    description (:class:`~course_lib.grading.core.Opaque`)."""
    value = plain(value)
    if value is None or type(value) in (bool, int, float, complex, str, bytes, torch.dtype, torch.device):
        return value
    if isinstance(value, torch.Size):
        return torch.Size(tuple(int(d) for d in value))
    if isinstance(value, torch.Tensor):
        try:
            copy = value.detach().to("cpu").clone().contiguous()
            if value.requires_grad:
                copy.requires_grad_(True)
            return copy
        except Exception:   # noqa: BLE001 (a tensor that cannot be copied is described instead)
            pass
    elif _depth < 20 and type(value) in (tuple, list, set, frozenset):
        return type(value)(export(v, _depth + 1) for v in value)
    elif _depth < 20 and type(value) is dict:
        return {export(k, _depth + 1): export(v, _depth + 1) for k, v in value.items()}
    elif type(value).__module__ == "numpy":
        import numpy as np
        if isinstance(value, np.generic):
            return export(value.item(), _depth + 1)
        if isinstance(value, np.ndarray):
            try:
                return {_NUMPY: torch.from_numpy(np.ascontiguousarray(value)).clone()}
            except TypeError:
                return {_NUMPY: export(value.tolist(), _depth + 1)}
    try:
        text = repr(value)
    except Exception:   # noqa: BLE001
        text = "?"
    return {_OPAQUE: type(value).__name__, "text": text[:200]}


def _imported(value: Any) -> Any:
    """The value :func:`export` sent, read back: arrays rebuilt, descriptions as Opaque."""
    kind = type(value)
    if kind in (tuple, list, set, frozenset):
        return kind(_imported(v) for v in value)
    if kind is dict:
        if _NUMPY in value and len(value) == 1:
            import numpy as np
            inner = value[_NUMPY]
            return inner.numpy() if isinstance(inner, torch.Tensor) else np.asarray(inner)
        if _OPAQUE in value and set(value) == {_OPAQUE, "text"}:
            return Opaque(str(value[_OPAQUE]), str(value["text"]))
        return {_imported(k): _imported(v) for k, v in value.items()}
    return value


def _dumps_for_grader(message: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(message, buf)
    return buf.getvalue()


def _loads_from_kernel(data: bytes) -> Any:
    return torch.load(io.BytesIO(data), weights_only=True)


# -- exceptions crossing over ------------------------------------------------------------------------

def _describe_error(exc: BaseException) -> tuple[str, str, str]:
    """(type name, name of its nearest built-in base, message)."""
    base = next((k for k in type(exc).__mro__ if k.__module__ == "builtins"), Exception)
    if type(exc).__name__ == "Feedback":
        base = AssertionError
    return type(exc).__name__, base.__name__, str(exc)[:4000]


def _rebuilt(name: str, base: str, message: str) -> BaseException:
    """An exception like the one raised on the other side: its built-in base, under its own name."""
    if name == "Feedback":
        from .core import Feedback
        return Feedback(message)
    kind = getattr(builtins, str(base), None)
    if not (isinstance(kind, type) and issubclass(kind, (Exception, SystemExit))):
        kind = RuntimeError
    if str(name) != kind.__name__ and str(name).isidentifier():
        kind = type(str(name), (kind,), {"__module__": "learner"})
    return kind(message)


# == the kernel's side ================================================================================

class _Remote:
    """In the kernel: something of the checker's (a function, a stream) that runs in the grader."""

    __slots__ = ("_key", "_link")

    def __init__(self, key: int, link: "_KernelLink"):
        self._key, self._link = key, link

    def __call__(self, *args, **kwargs):
        return self._link.invoke(self._key, "__call__", args, kwargs)

    def __iter__(self):
        return self._link.invoke(self._key, "__iter__", (), {})

    def __next__(self):
        return self._link.invoke(self._key, "__next__", (), {})

    def __len__(self):
        return self._link.invoke(self._key, "__len__", (), {})

    def __getitem__(self, key):
        return self._link.invoke(self._key, "__getitem__", (key,), {})

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return "<a function of the checker>"


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, link: "_KernelLink"):
        super().__init__(file)
        self.link = link

    def persistent_load(self, key: Any) -> Any:
        return _Remote(key, self.link)


class _KernelLink:
    """The kernel's end: answers lookups and calls, and calls the checker's functions back."""

    def __init__(self, sock: socket.socket, namespace: dict):
        self.sock, self.ns = sock, namespace

    def _send(self, message: Any) -> None:
        data = _dumps_for_grader(message)
        if len(data) > MAX_MESSAGE:
            data = _dumps_for_grader(("error", "ValueError", "ValueError",
                                      f"the value is {len(data):,} bytes, more than the grader accepts "
                                      f"({MAX_MESSAGE:,})", "", ""))
        _send(self.sock, data)

    def _receive(self) -> Any:
        return _Unpickler(io.BytesIO(_recv(self.sock)), self).load()

    def invoke(self, key: int, method: str, args: tuple, kwargs: dict) -> Any:
        self._send(("invoke", key, method, export(args), export(kwargs)))
        return self.wait()

    def wait(self) -> Any:
        """Serve the grader until it answers: "return" gives a value, "raise" an exception."""
        while True:
            message = self._receive()
            kind = message[0]
            if kind == "return":
                return message[1]
            if kind == "raise":
                raise _rebuilt(*message[1:4])
            if kind == "done":
                raise RuntimeError("the grader ended the test while a call was still running")
            self._handle(message)

    def serve(self) -> None:
        while True:
            message = self._receive()
            if message[0] == "done":
                return
            self._handle(message)

    def _handle(self, message: tuple) -> None:
        if message[0] == "lookup":
            self._send(("names", {name: self._lookup(name) for name in message[1]}))
        elif message[0] == "call":
            self._call(*message[1:4])

    def _lookup(self, name: str) -> tuple:
        if name not in self.ns:
            return ("missing",)
        value = self.ns[name]
        if isinstance(value, types.ModuleType):
            return ("module", str(getattr(value, "__name__", "")))
        if callable(value):
            try:
                params = [p.name for p in inspect.signature(value).parameters.values()]
            except Exception:   # noqa: BLE001 (no signature: the messages name no parameter)
                params = []
            return ("callable", params)
        return ("value", export(value))

    def _call(self, name: str, args: tuple, kwargs: dict) -> None:
        fn = self.ns.get(name)
        before = {k: v.detach().clone() for k, v in _arguments(args, kwargs) if isinstance(v, torch.Tensor)}
        sink = _CappedWriter(PRINT_LIMIT)
        try:
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                result = fn(*args, **kwargs)
        except (Exception, SystemExit) as exc:   # noqa: BLE001 (the learner's error is the answer)
            self._send(("error", *_describe_error(exc), _where(exc), sink.text()))
            return
        changed = {}
        for key, value in _arguments(args, kwargs):
            if isinstance(value, torch.Generator):
                changed[key] = ("generator", value.get_state())
            elif key in before and (value.shape != before[key].shape or not torch.equal(value.detach(), before[key])):
                changed[key] = ("tensor", export(value))
        self._send(("ok", export(result), changed, sink.text()))


def _arguments(args: tuple, kwargs: dict) -> list[tuple[Any, Any]]:
    return [*enumerate(args), *kwargs.items()]


def serve(path: str) -> None:
    """Run in the grading kernel for one test cell: connect to the grader and answer it until done."""
    import __main__
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        _KernelLink(sock, vars(__main__)).serve()
    finally:
        sock.close()


# == the grader's side ================================================================================

class Proxy:
    """In the grader: a learner's function, called in the kernel."""

    def __init__(self, link: "GraderLink", name: str, params: list[str]):
        self._link, self.__name__, self.__qualname__ = link, name, name
        names = [p for p in params if isinstance(p, str) and p.isidentifier()][:50]
        try:
            self.__signature__ = inspect.Signature(
                [inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in dict.fromkeys(names)])
        except ValueError:
            self.__signature__ = inspect.Signature()

    def __call__(self, *args, **kwargs):
        return self._link.call(self.__name__, args, kwargs)

    def __repr__(self) -> str:
        return f"<your function {self.__name__}>"


class GraderLink:
    """The grader's end of one test cell's connection to the kernel."""

    def __init__(self, sock: socket.socket, deadline: float):
        self.sock, self.deadline = sock, deadline
        self.table: dict[int, Any] = {}
        self.feedback: list[BaseException] = []   # raised by the checker's callbacks during a call
        self.broken: Stop | None = None

    def _send(self, message: Any) -> None:
        try:
            _send(self.sock, _dumps_for_kernel(message, self.table))
        except OSError as exc:
            self._fail("dead", f"the grading kernel stopped answering ({exc})")

    def _fail(self, status: str, message: str):
        self.broken = Stop(status, message)
        raise self.broken

    def _receive(self) -> Any:
        if self.broken is not None:
            raise self.broken
        left = self.deadline - time.monotonic()
        if left <= 0:
            self._fail("timeout", "the cell's time ran out")
        self.sock.settimeout(left)
        try:
            message = _loads_from_kernel(_recv(self.sock, MAX_MESSAGE))
        except (socket.timeout, TimeoutError):
            self._fail("timeout", "the cell's time ran out")
        except (EOFError, OSError) as exc:
            self._fail("dead", f"the grading kernel stopped answering ({exc})")
        except Exception as exc:   # noqa: BLE001 (anything unreadable breaks the protocol)
            self._fail("error", f"the grading kernel sent something unreadable ({type(exc).__name__}: "
                                f"{str(exc)[:300]})")
        if not (isinstance(message, tuple) and message and isinstance(message[0], str)):
            self._fail("error", "the grading kernel sent something that is not a message")
        return message

    def lookup(self, names: list[str]) -> dict[str, Any]:
        """The values of ``names`` in the kernel: a :class:`Proxy` for each callable, data for the rest."""
        self._send(("lookup", list(names)))
        message = self._wait()
        if message[0] != "names" or not isinstance(message[1], dict):
            self._fail("error", "the grading kernel answered a lookup with something else")
        found = {}
        for name in names:
            entry = message[1].get(name, ("missing",))
            if not isinstance(entry, tuple) or not entry:
                continue
            if entry[0] == "callable":
                found[name] = Proxy(self, name, list(entry[1]) if isinstance(entry[1], list) else [])
            elif entry[0] == "value" and len(entry) == 2:
                found[name] = plain(_imported(entry[1]))
            elif entry[0] == "module" and len(entry) == 2 and entry[1] in _MODULES:
                found[name] = importlib.import_module(entry[1])   # the grader's own copy
        return found

    def call(self, name: str, args: tuple, kwargs: dict) -> Any:
        self.feedback.clear()
        self._send(("call", name, args, kwargs))
        message = self._wait()
        kind = message[0]
        printed = message[-1] if isinstance(message[-1], str) else ""
        if printed:
            print(printed, end="" if printed.endswith("\n") else "\n")
        if self.feedback:            # a check inside a callback already said what is wrong
            raise self.feedback[0]
        if kind == "error" and len(message) == 6:
            exc = _rebuilt(*map(str, message[1:4]))
            exc._course_where = str(message[4])
            raise exc
        if kind != "ok" or len(message) != 4 or not isinstance(message[2], dict):
            self._fail("error", "the grading kernel answered a call with something else")
        for key, (what, value) in message[2].items():
            target = args[key] if isinstance(key, int) and 0 <= key < len(args) else kwargs.get(key)
            if what == "generator" and isinstance(target, torch.Generator) and isinstance(value, torch.Tensor):
                target.set_state(value)
            elif what == "tensor" and isinstance(target, torch.Tensor) and isinstance(value, torch.Tensor):
                target.data = value.detach()
        return plain(_imported(message[1]))

    def _wait(self) -> tuple:
        """Answer the kernel's calls of the checker's functions until it sends its answer."""
        while True:
            message = self._receive()
            if message[0] != "invoke":
                return message
            self._invoke(*message[1:])

    def _invoke(self, key: Any, method: Any, args: Any, kwargs: Any) -> None:
        target = self.table.get(key) if isinstance(key, int) else None
        if target is None or method not in ("__call__", "__iter__", "__next__", "__len__", "__getitem__") \
                or not isinstance(args, tuple) or not isinstance(kwargs, dict):
            self._fail("error", "the grading kernel called something the checker did not hand over")
        try:
            args, kwargs = plain(_imported(args)), plain(_imported(kwargs))
            if method == "__call__":
                value = target(*args, **kwargs)
            elif method == "__iter__":
                value = iter(target)
            elif method == "__next__":
                value = next(target)
            elif method == "__len__":
                value = len(target)
            else:
                value = target[args[0]]
        except Stop:
            raise
        except (Exception, SystemExit) as exc:   # noqa: BLE001 (it goes to the learner's code, like in a kernel)
            if type(exc).__name__ == "Feedback":
                self.feedback.append(exc)
            self._send(("raise", *_describe_error(exc)))
            return
        self._send(("return", value))

    def done(self) -> None:
        if self.broken is None:
            self._send(("done",))


# -- running a test cell in the grader -------------------------------------------------------------

def free_names(code: str) -> list[str]:
    """The names ``code`` reads that it does not bind itself and that are not built-ins."""
    tree = ast.parse(code)
    bound, read = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                read.append(node.id)
            else:
                bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return [n for n in dict.fromkeys(read) if n not in bound and not hasattr(builtins, n)]

TEST_CELL = "<test cell>"   # the file name of a test cell's code run in the grader


def run_cell(code: str, link: GraderLink, out: Any) -> BaseException | None:
    """Run a test cell's ``code`` here, its learner names (:func:`free_names`) looked up in the kernel
    through ``link``; what it prints goes to ``out``. Returns what ended it, None if it ran to the end."""
    namespace = {"__builtins__": builtins, "__name__": "__main__"}
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            compiled = compile(code, TEST_CELL, "exec")
            namespace.update(link.lookup(free_names(code)))
            exec(compiled, namespace)   # noqa: S102 (the release's test cell, never the learner's)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:   # noqa: BLE001 (a failed check, a Stop, a NameError: the cell's result)
        return exc
    return None
