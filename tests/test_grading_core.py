"""course_lib.grading.core: learner code that raises, prints too much or returns the wrong thing
gets a clear message, never a traceback from the checker."""
import json

import numpy as np
import pytest
import torch

from course_lib.grading import core
from course_lib.grading.core import Feedback, call, checker, describe, expect_close, expect_tensor, truncate


def test_feedback_is_an_assertion_error():
    # nbgrader, pytest and course_lib.grade count a failed check as a failed test
    assert issubclass(Feedback, AssertionError)


# -- call -------------------------------------------------------------------------------------------

def test_call_returns_the_result_and_shows_printed_output(capsys):
    def answer(x):
        print("hello from the learner")
        return x + 1

    assert call(answer, 1) == 2
    assert "hello from the learner" in capsys.readouterr().out


def test_call_not_answered_yet():
    def rnn_step(x):
        raise NotImplementedError()

    with pytest.raises(Feedback, match=r"`rnn_step` is not answered yet: replace `raise NotImplementedError\(\)`"):
        call(rnn_step, 1)


def test_call_reports_the_exception_and_the_learners_line():
    def rnn_step(x):
        _y = x * 2
        raise ValueError("bad value")

    with pytest.raises(Feedback) as info:
        call(rnn_step, 1)
    message = str(info.value)
    assert message.startswith("your function `rnn_step` raised ValueError: bad value at line ")
    assert "(in rnn_step): `raise ValueError(\"bad value\")`" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no chained traceback


def test_call_points_at_the_learners_line_not_inside_torch():
    def rnn_step(x, w):
        return x @ w
    # the error is raised inside torch; the message shows the learner's line that called it

    with pytest.raises(Feedback, match=r"mat1 and mat2 shapes cannot be multiplied.*`return x @ w`"):
        call(rnn_step, torch.zeros(2, 3), torch.zeros(4, 5))


def test_call_points_at_the_learners_line_not_inside_the_library():
    from course_lib.utils import check_shape

    def rnn_step(x):
        check_shape(x, ("B", "C"), "x")  # raises inside course_lib.utils

    with pytest.raises(Feedback, match=r"raised ValueError: x: expected shape \(B, C\).*\(in rnn_step\): "
                                       r"`check_shape\(x, "):
        call(rnn_step, torch.zeros(3))


def test_call_adds_a_hint_for_a_known_error():
    def rnn_step(x, w):
        return x @ w

    with pytest.raises(Feedback, match=r"(?s)cannot be multiplied.*\nHint: check which weight"):
        call(rnn_step, torch.zeros(2, 3), torch.zeros(4, 5), hints={"cannot be multiplied": "check which weight"})


def test_call_not_a_function():
    with pytest.raises(Feedback, match=r"`rnn_step` should be a function, but it is a int \(3\)"):
        call(3, name="rnn_step")
    with pytest.raises(Feedback, match=r"`rnn_step` should be a function, but it is None"):
        call(None, name="rnn_step")


def test_call_catches_exit_and_endless_recursion():
    def quits():
        raise SystemExit(1)

    def recurse(n):
        return recurse(n + 1)

    with pytest.raises(Feedback, match="raised SystemExit"):
        call(quits)
    with pytest.raises(Feedback, match="calls itself without end"):
        call(recurse, 0)


def test_call_cuts_huge_output(capsys):
    def chatty():
        for i in range(200_000):
            print("spam", i)
        return 1

    assert call(chatty) == 1
    out = capsys.readouterr().out
    assert len(out) < 3_000
    assert "more characters of output cut" in out


def test_call_detects_inputs_changed_in_place():
    def rnn_step(x_t, h):
        h += x_t
        return h

    with pytest.raises(Feedback, match=r"`rnn_step` changed its input `h` in place"):
        call(rnn_step, torch.ones(2), torch.zeros(2))
    assert torch.equal(call(rnn_step, torch.ones(2), torch.zeros(2), check_inputs_unchanged=False), torch.ones(2))


def test_call_passes_a_probes_feedback_through():
    def probe():
        raise Feedback("the probe says no")

    with pytest.raises(Feedback, match="^the probe says no$"):
        call(lambda: probe())


# -- expect_tensor ----------------------------------------------------------------------------------

DIMS = {"B": 4, "d_hidden": 8}


def test_expect_tensor_accepts_the_right_tensor():
    t = torch.zeros(4, 8)
    assert expect_tensor(t, DIMS, "f") is t


@pytest.mark.parametrize("value, pattern", [
    (None, r"`f` returned None: did you forget the `return`\? Expected a torch.Tensor of shape \(B, d_hidden\) = \(4, 8\)"),
    ((torch.zeros(4, 8), torch.zeros(4, 8)), r"returned a tuple of 2 items; .*combine them with torch.stack"),
    ([1.0, 2.0], r"returned a list of 2 items; .*Convert it with torch.tensor"),
    (np.zeros((4, 8)), r"returned a NumPy ndarray of shape \(4, 8\); .*torch.from_numpy"),
    ("hello", r"returned a str \('hello'\)"),
    (torch.zeros(8, 4), r"shape \(8, 4\); expected \(B, d_hidden\) = \(4, 8\)\. Its axes look swapped: you have \(d_hidden, B\)"),
    (torch.zeros(1, 4, 8), r"differs by an axis of size 1"),
    (torch.zeros(2, 16), r"right number of elements in the wrong shape"),
    (torch.zeros(4, 7), r"shape \(4, 7\); expected \(B, d_hidden\) = \(4, 8\)\.$"),
    (torch.full((4, 8), float("nan")), r"32 NaN or infinite value\(s\) out of 32"),
])
def test_expect_tensor_messages(value, pattern):
    with pytest.raises(Feedback, match=pattern):
        expect_tensor(value, DIMS, "f")


def test_expect_tensor_dtype_and_numpy():
    with pytest.raises(Feedback, match="dtype torch.int64; expected torch.float32"):
        expect_tensor(torch.zeros(4, 8, dtype=torch.long), DIMS, "f", dtype=torch.float32)
    converted = expect_tensor(np.ones((4, 8)), DIMS, "f", allow_numpy=True)
    assert isinstance(converted, torch.Tensor) and converted.shape == (4, 8)


# -- expect_close -----------------------------------------------------------------------------------

def test_expect_close_passes_and_names_the_mistake():
    want = torch.tensor([1.0, 2.0, 3.0])
    expect_close(want + 1e-7, want, "f")
    mistakes = {"you forgot the scale": want * 2, "never computed": lambda: 1 / 0,
                "you added one": lambda: want + 1}
    with pytest.raises(Feedback, match="^`f`: you added one$"):
        expect_close(want + 1, want, "f", mistakes=mistakes)


def test_expect_close_reports_the_largest_difference():
    want = torch.zeros(2, 3)
    got = want.clone()
    got[1, 2] = 0.5
    with pytest.raises(Feedback, match=r"largest difference from the reference is 0.5 at index \(1, 2\) "
                                       r"\(got 0.5, expected 0\)"):
        expect_close(got, want, "f", mistakes={"other": torch.ones(2, 3)})


# -- checker ------------------------------------------------------------------------------------------

def test_checker_turns_its_own_errors_into_feedback():
    @checker
    def check_thing(fn):
        value = call(fn)
        return value["key"]  # the checker did not foresee a non-dict

    with pytest.raises(Feedback, match=r"check_thing could not check your answer \(TypeError: .*\)\. "
                                       r"This usually means your function returned something unexpected"):
        check_thing(lambda: 3)


def test_checker_keeps_feedback_and_drops_its_inner_traceback():
    @checker
    def check_thing(fn):
        call(fn)

    def answer():
        raise NotImplementedError

    with pytest.raises(Feedback) as info:
        check_thing(answer)
    assert "not answered yet" in str(info.value)
    assert info.value.__traceback__ is not None
    # only the wrapper's frame is left: the learner sees the message, not the checker's insides
    frames = []
    tb = info.value.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    assert frames[1:] == ["wrapper"]  # the test (the learner's cell), then the wrapper
    assert info.value.__suppress_context__


# -- small helpers ------------------------------------------------------------------------------------

def test_truncate_and_describe():
    assert truncate("short") == "short"
    long = "x" * 10_000
    cut = truncate(long, 100)
    assert len(cut) < 200 and "characters cut" in cut
    with pytest.raises(ValueError, match="limit: expected at least 20 characters, got 5"):
        truncate("abc", 5)
    assert describe(None) == "None"
    assert describe((1, 2)) == "a tuple of 2 items"
    assert describe([1]) == "a list of 1 item"
    assert describe(torch.zeros(2, 3)) == "a torch.Tensor of shape (2, 3) and dtype torch.float32"
    assert core.describe(3) == "a int (3)"


# -- plain types, the sanitizer and definitions only (issue 11) -------------------------------------

def test_plain_removes_subclasses_that_lie_about_comparisons():
    class AlwaysEqual(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            out = super().__torch_function__(func, types, args, kwargs or {})
            return True if func in (torch.allclose, torch.equal) else out

    class Yes(int):
        def __eq__(self, other):
            return True

    liar = torch.zeros(3).as_subclass(AlwaysEqual)
    assert torch.allclose(liar, torch.ones(3))            # the lie
    got = core.plain((liar, [Yes(2)], {"k": liar}))
    assert type(got[0]) is torch.Tensor and not torch.allclose(got[0], torch.ones(3))
    assert type(got[1][0]) is int and got[1][0] != 3
    assert type(got[2]["k"]) is torch.Tensor
    with pytest.raises(AssertionError, match="wrong values"):
        core.expect_close(core.call(lambda: liar), torch.ones(3), "f")


def test_sanitize_rebuilds_the_hand_in_on_the_release():
    import nbformat

    from course_lib.grading.notebook import nbgrader_meta, sanitize

    def cell(gid, kind="code", text="", **flags):
        c = nbformat.v4.new_code_cell(text) if kind == "code" else nbformat.v4.new_markdown_cell(text)
        c.metadata["nbgrader"] = {"grade_id": gid, "grade": False, "solution": False, "locked": True, **flags}
        return c

    release = nbformat.v4.new_notebook(cells=[
        cell("setup", text="import torch"), cell("ex1_f", text="raise NotImplementedError()", solution=True,
                                                 locked=False),
        cell("ex1_f_tests", text="check(f)", grade=True, points=2), cell("ex2_g", text="stub", solution=True,
                                                                        locked=False),
        cell("ex2_g_tests", text="check(g)", grade=True, points=3)])
    hand_in = nbformat.from_dict(json.loads(json.dumps(release)))
    hand_in.cells[1].source = "def f(): return 1"
    hand_in.cells[2].metadata["nbgrader"].update(grade=False, solution=True, points=100)   # re-flagged
    hand_in.cells.insert(3, nbformat.from_dict(json.loads(json.dumps(hand_in.cells[2]))))  # pasted twice
    hand_in.cells.insert(3, nbformat.v4.new_code_cell("def helper(): pass"))                # scratch
    odd = nbformat.v4.new_code_cell("x = 1")
    odd.metadata["nbgrader"] = {"grade": True, "points": 5}                                 # no grade_id
    hand_in.cells.append(odd)
    hand_in.cells = [c for c in hand_in.cells if nbgrader_meta(c).get("grade_id") not in ("ex2_g", "ex2_g_tests")]
    repairs = sanitize(hand_in, release)
    ids = [nbgrader_meta(c).get("grade_id") for c in hand_in.cells]
    assert ids == ["setup", "ex1_f", "ex1_f_tests", None, "ex2_g", "ex2_g_tests"]
    assert hand_in.cells[1].source == "def f(): return 1" and hand_in.cells[4].source == "stub"
    assert nbgrader_meta(hand_in.cells[2]) == nbgrader_meta(release.cells[2])
    assert repairs.missing_answers == ["ex2_g"] and "ex2_g_tests" in repairs.restored
    assert "ex1_f_tests" in repairs.metadata and len(repairs.dropped) == 2


def test_definitions_only_keeps_definitions_and_reports_the_rest():
    from course_lib.grading.notebook import defined_names, definitions_only

    text = ("import torch\n"
            "import course_lib.grading.ch01_rnn as g\n"
            "g.check_rnn_step = lambda *a: None\n"
            "SCALE = 2 ** 0.5\n"
            "print('hello')\n"
            "@torch.no_grad()\n"
            "def f(x, n=3):\n"
            "    return x * n\n"
            "@f\n"
            "def h():\n"
            "    pass\n"
            "class M(torch.nn.Module):\n"
            "    size: int = 3\n"
            "    def forward(self, x):\n"
            "        return x\n"
            "%timeit f(1)\n")
    learner = defined_names([text.replace("%timeit f(1)\n", "")])
    defs = definitions_only(text, learner, {"evil"})
    namespace: dict = {}
    exec(defs.code, namespace)
    assert {"f", "M", "SCALE", "torch", "g"} <= set(namespace) and "h" not in namespace
    assert [line for line, _ in defs.dropped] == [3, 5, 9, 16]  # @f calls the learner's f
    assert "line 3: `g.check_rnn_step = lambda *a: None`" in defs.note()
    assert defs.code.split("\n")[6] == "def f(x, n=3):", "line numbers must stay the learner's"
    assert definitions_only("import evil\nfrom . import x\n", set(), {"evil"}).code.strip() == ""
    assert "compile(" in definitions_only("def f(:\n", set()).code
