"""course_lib.grading.remote: the checks run in the grader's process and call the learner's functions
in the kernel over a socket. Here the kernel's end runs in a thread with a namespace of its own, so
that the protocol is tested without starting a kernel (tests/test_nbgrader_roundtrip.py grades whole
hand-ins through real sandboxed kernels)."""
import io
import pickle
import socket
import struct
import threading
import time

import pytest
import torch

from course_lib.grading import remote
from course_lib.grading.core import Feedback, Opaque, call, describe


class Kernel:
    """A learner's namespace served over one end of a socket pair, as the grading kernel serves it."""

    def __init__(self, namespace: dict, timeout: float = 30):
        self.grader_end, kernel_end = socket.socketpair()
        self.thread = threading.Thread(target=self._serve, args=(kernel_end, namespace), daemon=True)
        self.thread.start()
        self.link = remote.GraderLink(self.grader_end, time.monotonic() + timeout)

    @staticmethod
    def _serve(sock, namespace):
        try:
            remote._KernelLink(sock, namespace).serve()
        except (EOFError, OSError):
            pass
        finally:
            sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            self.link.done()
        except remote.Stop:
            pass
        self.grader_end.close()
        self.thread.join(5)


def learner(source: str) -> dict:
    namespace = {"torch": torch}
    exec(source, namespace)
    return namespace


def test_results_arrive_as_plain_data_and_names_are_proxies():
    ns = learner('''
class Always(torch.Tensor):
    def __eq__(self, other):
        return True
class Int(int):
    def __eq__(self, other):
        return True
import math
import torch.nn.functional as F
import os
def answer(x):
    print("hello from the kernel")
    return x.as_subclass(Always) * 2, Int(3), {"k": [1.5, "s", None]}, (lambda: 1), __import__("numpy").ones(2)
width = 7
''')
    with Kernel(ns) as k:
        found = k.link.lookup(["answer", "width", "nowhere", "math", "F", "os"])
        assert set(found) == {"answer", "width", "math", "F"} and found["width"] == 7   # not os
        assert found["F"] is torch.nn.functional and found["math"].pi == 3.141592653589793
        assert isinstance(found["answer"], remote.Proxy) and found["answer"].__name__ == "answer"
        x = torch.arange(3.0)
        out = io.StringIO()
        import contextlib
        with contextlib.redirect_stdout(out):
            tensor, number, data, fn, array = found["answer"](x)
    assert type(tensor) is torch.Tensor and torch.equal(tensor, 2 * x)
    assert type(number) is int and number == 3 and not (number == 4)
    assert data == {"k": [1.5, "s", None]}
    assert isinstance(fn, Opaque) and describe(fn).startswith("a function (<function")
    assert type(array).__module__ == "numpy" and array.tolist() == [1.0, 1.0]
    assert "hello from the kernel" in out.getvalue()


def test_the_checkers_callables_run_in_the_grader_and_their_feedback_wins():
    seen = []

    def step(x, h):                  # a check's instrumented callback: stays in this process
        seen.append(tuple(x.shape))
        if x.shape[-1] != 3:
            raise Feedback("step got the wrong slice")
        return torch.tanh(x + h)

    ns = learner('''
def loop(step, x, h):
    for t in range(x.shape[1]):
        h = step(x[:, t], h)
    return h
def swallow(step, x, h):
    try:
        step(x[..., :2], h)      # the wrong slice: the check's Feedback is raised in here ...
    except Exception:
        pass                     # ... and swallowed by the learner's code
    return h
''')
    x, h = torch.randn(2, 4, 3), torch.zeros(2, 3)
    with Kernel(ns) as k:
        proxies = k.link.lookup(["loop", "swallow"])
        got = proxies["loop"](step, x, h)
        assert seen == [(2, 3)] * 4
        want = h
        for t in range(4):
            want = torch.tanh(x[:, t] + want)
        assert torch.allclose(got, want)
        with pytest.raises(Feedback, match="wrong slice"):
            proxies["swallow"](step, x, h)


def test_errors_keep_their_type_message_and_line_and_in_place_changes_come_back():
    ns = learner('''
def refuses(n):
    raise ValueError(f"n: expected a positive int, got {n!r}")
def unanswered():
    raise NotImplementedError()
def scales(x):
    x *= 2
    return x
def draws(g):
    return torch.randint(0, 100, (3,), generator=g)
''')
    with Kernel(ns) as k:
        p = k.link.lookup(["refuses", "unanswered", "scales", "draws"])
        with pytest.raises(ValueError, match="n: expected a positive int, got -1"):
            p["refuses"](-1)
        with pytest.raises(Feedback, match="not answered yet"):
            call(p["unanswered"], name="unanswered")
        with pytest.raises(Feedback, match="changed its input `x` in place"):
            call(p["scales"], torch.ones(3), name="scales")
        g = torch.Generator().manual_seed(0)
        before = g.get_state()
        p["draws"](g)
        assert not torch.equal(g.get_state(), before), "the generator's state must come back"


def _raw(sock, payload: bytes):
    sock.sendall(struct.pack("!Q", len(payload)) + payload)


def test_a_kernel_that_sends_code_or_too_much_is_stopped():
    class Evil:
        def __reduce__(self):
            return (print, ("executed in the grader!",))

    for payload, status in ((pickle.dumps(("ok", Evil(), {}, ""), protocol=2), "error"),
                            (b"x" * 10, "error")):
        grader, kernel = socket.socketpair()
        link = remote.GraderLink(grader, time.monotonic() + 10)
        _raw(kernel, payload)
        with pytest.raises(remote.Stop) as info:
            link._wait()
        assert info.value.status == status, payload[:40]
        grader.close(), kernel.close()
    grader, kernel = socket.socketpair()
    link = remote.GraderLink(grader, time.monotonic() + 10)
    kernel.sendall(struct.pack("!Q", remote.MAX_MESSAGE + 1))
    with pytest.raises(remote.Stop, match="more than the limit") as info:
        link._wait()
    assert info.value.status == "error"
    grader.close(), kernel.close()


def test_a_kernel_that_does_not_answer_times_out_or_is_gone():
    grader, kernel = socket.socketpair()
    link = remote.GraderLink(grader, time.monotonic() + 0.3)
    with pytest.raises(remote.Stop) as info:
        link._wait()
    assert info.value.status == "timeout"
    kernel.close()
    link = remote.GraderLink(grader, time.monotonic() + 5)
    with pytest.raises(remote.Stop) as info:
        link._wait()
    assert info.value.status == "dead"
    grader.close()


def test_free_names_are_the_learners():
    code = ("from course_lib.grading import ch09_t5 as grading\n"
            "grading.check_bucket_predictions(lambda: dict(predictions()))\n"
            "x = [rnn_step(i) for i in range(3)]\nprint(x, width)")
    assert sorted(remote.free_names(code)) == ["predictions", "rnn_step", "width"]


def test_what_the_checks_observe_through_their_callbacks_still_reaches_them():
    """Chapter 13 counts micro-batches with a forward pre-hook (a lambda the model carries to the
    kernel), chapter 11 hands over a stream that may be read once, chapter 01 reads the generator's
    state after the call: each still sees what the learner's function did."""
    from course_lib.grading import ch01_rnn, ch11_efficient_attention, ch13_scaling_out
    ns = learner('''
def accumulated_gradients(model, x, y, micro_batches):
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()      # the whole batch at once
    return {name: p.grad for name, p in model.named_parameters()}
def online_softmax_stats(blocks):
    first = [x.max() for x in blocks]                               # reads the stream ...
    return max(first), sum(torch.exp(x - max(first)).sum() for x in blocks)   # ... twice
def generate(model, prompt_ids, n_new, temperature, generator):
    return list(prompt_ids) + [0] * n_new                           # never draws
''')
    with Kernel(ns) as k:
        p = k.link.lookup(["accumulated_gradients", "online_softmax_stats", "generate"])
        with pytest.raises(Feedback, match="ran the model once on all 12 examples"):
            ch13_scaling_out.check_accumulated_gradients(p["accumulated_gradients"])
        with pytest.raises(Feedback, match="read `blocks` a second time"):
            ch11_efficient_attention.check_online_softmax_stats(p["online_softmax_stats"])
        with pytest.raises(Feedback, match="You never drew from `generator`"):
            ch01_rnn.check_generate(p["generate"])
