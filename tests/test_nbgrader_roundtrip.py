"""The instructor's round trip with nbgrader, headless, in a temporary copy of the course.

generate_assignment -> release_assignment -> (a student) fetch_assignment, submit -> collect ->
autograde -> export -> generate_feedback, driven through nbgrader's command line as
docs/instructors.md gives it; the other hand-ins go straight into submitted/, as collect leaves
them, to keep the test short. Every assignment under notebooks/exercises is found by itself: for
each, the student version must hold no solutions or hidden tests, the solution must score full
marks and the untouched student version 0. Chapter 01 also plays the hard cases: partial answers,
tampered test cells, an infinite loop, and a second autograde run; and the attacks and careless
edits of issue 11 (a combined hand-in per kind: ordinary edits, cheating in the interpreter and
against the sandbox, a crash, a SIGINT-proof loop and a flood of output). Adding an assignment adds
only the time to generate and autograde its two hand-ins.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from course_lib.grade import cell_seconds
from course_lib.grading.notebook import nbgrader_meta as meta
from grading_support import PATCHES_THE_REFERENCE, REWRITES_THE_MEASUREMENT

REPO = Path(__file__).resolve().parent.parent
EXERCISES = REPO / "notebooks" / "exercises"
ASSIGNMENTS = sorted(p.name for p in EXERCISES.iterdir() if p.is_dir() and any(p.glob("*.ipynb"))) \
    if EXERCISES.is_dir() else []
DETAILED = "01_rnn"               # the assignment that plays the hard cases
LOOP_TIMEOUT = 15                 # seconds, the short per-cell limit of the second autograde run
NOT_REGRADED = ("solution", "untouched")   # hand-ins of 01 that the second autograde run leaves out

pytest.importorskip("nbgrader", reason="nbgrader is not installed (pip install -e '.[dev]')")


# -- helpers --------------------------------------------------------------------------------------

def strip_markers(text: str) -> str:
    """A learner's answer that equals the reference: the solution without nbgrader's markers."""
    return "\n".join(line for line in text.split("\n")
                     if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line)


def solution_lines(text: str) -> list[str]:
    """The lines between the solution markers of a source cell."""
    lines, inside = [], False
    for line in text.split("\n"):
        if "### BEGIN SOLUTION" in line:
            inside = True
        elif "### END SOLUTION" in line:
            inside = False
        elif inside and line.strip():
            lines.append(line.strip())
    return lines


def hidden_lines(text: str) -> list[str]:
    lines, inside = [], False
    for line in text.split("\n"):
        if "### BEGIN HIDDEN TESTS" in line:
            inside = True
        elif "### END HIDDEN TESTS" in line:
            inside = False
        elif inside and line.strip():
            lines.append(line.strip())
    return lines


def answered(release_nb, answers: dict[str, str]):
    """A copy of the student version with some answer cells filled in."""
    nb = nbformat.from_dict(json.loads(json.dumps(release_nb)))
    for cell in nb.cells:
        gid = meta(cell).get("grade_id")
        if meta(cell).get("solution") and gid in answers:
            cell.source = answers[gid]
    return nb


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


class Course:
    """A temporary nbgrader course directory made of the repository's exercises."""

    def __init__(self, root: Path):
        self.root = root / "course"
        self.exchange = root / "exchange"
        self.home = root / "student_home"
        for d in (self.root, self.exchange, self.home):
            d.mkdir(parents=True)
        shutil.copy2(REPO / "nbgrader_config.py", self.root / "nbgrader_config.py")
        shutil.copytree(EXERCISES, self.root / "notebooks" / "exercises",
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        bin_dir = str(Path(sys.executable).parent)  # nbgrader calls `alembic` from PATH
        self.env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
                    "NBGRADER_EXCHANGE": str(self.exchange)}
        self.env.pop("COURSE_FAST", None)  # graders do not run in fast mode
        self.log: list[str] = []

    def nbgrader(self, *args: str, cwd: Path | None = None) -> str:
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd or self.root, env=self.env,
                              capture_output=True, text=True, timeout=1200)
        out = done.stdout + done.stderr
        self.log.append(f"{time.perf_counter() - start:6.1f} s  nbgrader {' '.join(args)}")
        assert done.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{out[-4000:]}"
        return out

    def notebook_name(self, aid: str) -> str:
        return next((self.root / "notebooks" / "exercises" / aid).glob("*.ipynb")).name

    def source(self, aid: str):
        return nbformat.read(self.root / "notebooks" / "exercises" / aid / self.notebook_name(aid), 4)

    def release(self, aid: str):
        return nbformat.read(self.root / "release" / aid / self.notebook_name(aid), 4)

    def solution_answers(self, aid: str) -> dict[str, str]:
        return {meta(c)["grade_id"]: strip_markers(c.source) for c in self.source(aid).cells
                if meta(c).get("solution")}

    def place(self, aid: str, student: str, nb) -> None:
        """Hand in directly into submitted/ (what `collect` produces), for the plain cases."""
        folder = self.root / "submitted" / student / aid
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, folder / self.notebook_name(aid))

    def submit(self, aid: str, student: str, nb) -> None:
        """Hand in through the exchange, as a student would: edit the fetched copy, then submit."""
        fetched = self.home / aid / self.notebook_name(aid)
        nbformat.write(nb, fetched)
        self.nbgrader("submit", aid, "--course", "seqmodels", f"--student={student}",
                      f"--Exchange.root={self.exchange}", cwd=self.home)

    def scores(self, aid: str) -> dict[str, dict[str, float]]:
        """student -> {grade cell: score} from the gradebook."""
        from nbgrader.api import Gradebook
        with Gradebook(f"sqlite:///{self.root / 'gradebook.db'}") as gb:
            nb_id = Path(self.notebook_name(aid)).stem
            result = {}
            for sub in gb.assignment_submissions(aid):
                nb = gb.find_submission_notebook(nb_id, aid, sub.student.id)
                result[sub.student.id] = {g.name: float(g.score) for g in nb.grades}
            return result

    def max_score(self, aid: str) -> float:
        return sum(float(meta(c).get("points", 0)) for c in self.source(aid).cells if meta(c).get("grade"))

    def points(self, aid: str, *prefixes: str) -> float:
        return sum(float(meta(c).get("points", 0)) for c in self.source(aid).cells
                   if meta(c).get("grade") and meta(c)["grade_id"].startswith(prefixes))

    def export(self) -> dict[tuple[str, str], float]:
        self.nbgrader("export", "--to", str(self.root / "grades.csv"))
        with open(self.root / "grades.csv") as f:
            return {(row["assignment"], row["student_id"]): float(row["score"]) for row in csv.DictReader(f)}


# -- the learners of chapter 01 --------------------------------------------------------------------

NO_CARRY = '''
def rnn_forward(step, x, h0):
    states = [step(x[:, t], h0) for t in range(x.shape[1])]   # forgets to carry h
    return torch.stack(states, dim=1), states[-1]
'''
NAIVE_SOFTMAX = '''
def temperature_probs(logits, temperature):
    e = torch.exp(logits / temperature)        # overflows for small temperatures (hidden test)
    print("debug " * 200_000)                  # and prints far too much
    return e / e.sum(dim=-1, keepdim=True)
'''
SIGMOID_STEP = '''
def rnn_step(x_t, h, W_x, W_h, b):
    return torch.sigmoid(x_t @ W_x + h @ W_h + b)
'''
LOOPS_FOREVER = '''
def grad_norms_by_distance(rnn, x):
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # ignores the interrupt: its kernel must be killed
    while True:          # never returns
        pass
'''
EXITS = '''
def rnn_forward(step, x, h0):
    import os
    os._exit(1)          # kills its kernel: only this exercise may lose its points
'''
FLOODS = '''
def temperature_probs(logits, temperature):
    import os
    if not getattr(temperature_probs, "flooded", False):   # once per kernel
        temperature_probs.flooded = True
        os.write(1, b"x" * 20_000_000)     # 20 MB straight to the file descriptor
    return torch.softmax(logits / temperature, dim=-1)
'''
# the interpreter attacks of issue 11: every one must score 0 (the answers are wrong or missing)
PATCHES_CHECKS = '''
import course_lib.grading.ch01_rnn as _g
_g.check_rnn_step = lambda *a, **k: None           # top level: not run during grading
def rnn_step(x_t, h, W_x, W_h, b):
    raise NotImplementedError()
'''
ALWAYS_EQUAL = '''
class AlwaysEqual(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        out = super().__torch_function__(func, types, args, kwargs or {})
        return True if func in (torch.allclose, torch.equal, torch.isclose) else out
    def __eq__(self, other):
        return True
def rnn_forward(step, x, h0):
    zeros = torch.zeros(x.shape[0], x.shape[1], h0.shape[1])
    return zeros.as_subclass(AlwaysEqual), zeros[:, -1].as_subclass(AlwaysEqual)
'''
HOOKS_IMPORT = '''
import builtins
_real = builtins.__import__
builtins.__import__ = lambda name, *a, **k: _real(name, *a, **k)   # top level: not run
get_ipython().input_transformers_post.append(lambda lines: ["pass\\n"])   # would empty later cells
def grad_norms_by_distance(rnn, x):
    raise NotImplementedError()
'''
ESCAPES = '''
def temperature_probs(logits, temperature):
    import glob, sqlite3
    found = []
    for pattern in ["{root}/notebooks/exercises/*/*.ipynb", "{repo}/notebooks/exercises/*/*.ipynb"]:
        for path in glob.glob(pattern):                 # solutions and hidden tests of every chapter
            found.append(open(path).read())
    print("".join(found)[:100000])
    try:
        db = sqlite3.connect("{root}/gradebook.db")
        db.execute("UPDATE grade SET auto_score = 100")
        db.commit()
    except Exception as exc:
        print("gradebook:", exc)
    for target in ["{root}/submitted/solution/01_rnn/01_rnn_exercises.ipynb", "{repo}/course_lib/pwned.py"]:
        try:
            open(target, "w").write("{{}}")
        except Exception as exc:
            print("write:", exc)
    return logits * 0
'''


def ordinary_edits(release, sol):
    """A right answer handed in after the edits that used to zero a whole hand-in (issue 11)."""
    nb = answered(release, sol)
    cells = nb.cells
    find = lambda gid: next(i for i, c in enumerate(cells) if meta(c).get("grade_id") == gid)  # noqa: E731
    copied = json.loads(json.dumps(cells[find("ex1_rnn_step_tests")]))   # a locked test cell pasted twice
    cells.insert(find("ex2_rnn_forward_text"), nbformat.from_dict(copied))
    extra = nbformat.v4.new_code_cell("x = 1")                              # grade metadata, no grade_id
    extra.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": False, "points": 5,
                                  "schema_version": 3}
    cells.insert(find("ex3_grad_norms_text"), extra)
    flipped = meta(cells[find("ex2_rnn_forward_tests")])                  # test cell re-flagged
    flipped.update(grade=False, solution=True, locked=False)
    meta(cells[find("ex3_grad_norms_tests")])["points"] = 100             # points raised
    nb.cells = [c for c in cells if meta(c).get("grade_id") not in ("ex5_generate", "ex5_generate_tests")]
    nb.cells.append(nbformat.v4.new_code_cell("def helper():\n    return 1\nprint('scratch')"))  # no metadata
    return nb


# -- the round trip, once for the whole module ------------------------------------------------------

@pytest.fixture(scope="module")
def course(tmp_path_factory):
    c = Course(tmp_path_factory.mktemp("nbgrader"))
    c.nbgrader("generate_assignment", "*", "--force")  # every assignment, one call

    # one learner of chapter 01 goes through the exchange, as in class
    c.nbgrader("release_assignment", DETAILED, "--force")
    c.nbgrader("fetch_assignment", DETAILED, "--course", "seqmodels", f"--Exchange.root={c.exchange}",
               cwd=c.home)
    release = c.release(DETAILED)
    sol = c.solution_answers(DETAILED)
    c.submit(DETAILED, "solution", answered(release, sol))
    c.nbgrader("collect", DETAILED)

    # the rest of the class hands in directly into submitted/ (what collect produces)
    learners = {
        "untouched": answered(release, {}),
        # ex1, ex3 right; ex2 forgets to carry h; ex4 passes the public test only; ex5 untouched
        "partial": answered(release, {"ex1_rnn_step": sol["ex1_rnn_step"], "ex2_rnn_forward": NO_CARRY,
                                      "ex3_grad_norms": sol["ex3_grad_norms"], "ex4_temperature": NAIVE_SOFTMAX}),
        # wrong ex1 and ex2, but edits the ex1 test to pass and deletes the ex2 test; the rest right
        "tamper": answered(release, {**sol, "ex1_rnn_step": SIGMOID_STEP, "ex2_rnn_forward": NO_CARRY}),
    }
    tampered = learners["tamper"]
    for cell in tampered.cells:
        if meta(cell).get("grade_id") == "ex1_rnn_step_tests":
            cell.source = 'print("Exercise 1 passed.")'
    tampered.cells = [cell for cell in tampered.cells if meta(cell).get("grade_id") != "ex2_rnn_forward_tests"]
    learners["edits"] = ordinary_edits(release, sol)
    learners["cheater"] = answered(release, {"ex1_rnn_step": PATCHES_CHECKS, "ex2_rnn_forward": ALWAYS_EQUAL,
                                             "ex3_grad_norms": HOOKS_IMPORT,
                                             "ex4_temperature": ESCAPES.format(root=c.root, repo=REPO),
                                             "ex5_generate": PATCHES_THE_REFERENCE,
                                             "ex6_predict": REWRITES_THE_MEASUREMENT})
    for student, nb in learners.items():
        c.place(DETAILED, student, nb)
    for aid in ASSIGNMENTS:  # every other assignment: the solution and the untouched student version
        if aid != DETAILED:
            c.place(aid, "solution", answered(c.release(aid), c.solution_answers(aid)))
            c.place(aid, "untouched", c.release(aid))

    c.submitted_before = tree_digest(c.root / "submitted")
    # every assignment, with the configured timeout; one kernel per notebook here (restarted if it
    # dies) to keep the test short: the second run below grades all of 01 again with the configured
    # kernel per exercise, and must give the same scores
    c.nbgrader("autograde", "*", "--GradingExecute.isolate=notebook")
    c.first_scores = {aid: c.scores(aid) for aid in ASSIGNMENTS}
    c.pwned = (REPO / "course_lib" / "pwned.py").exists()

    # a learner whose function never returns hands in late; 01 is graded again with the configured
    # kernel per exercise and a short cell timeout (so that the test does not wait for the configured
    # one). The solution and the untouched copy are left out of this second run: the self-check grades
    # the same two per exercise (tests/test_self_check.py) and they keep their first scores here
    c.place(DETAILED, "looper", answered(release, {**sol, "ex2_rnn_forward": EXITS, "ex3_grad_norms": LOOPS_FOREVER,
                                                   "ex4_temperature": FLOODS}))
    c.submitted_middle = tree_digest(c.root / "submitted")
    c.nbgrader("autograde", DETAILED, "--force", f"--Execute.timeout={LOOP_TIMEOUT}",
               f"--CourseDirectory.student_id_exclude={','.join(NOT_REGRADED)}")
    c.second_scores = c.scores(DETAILED)
    c.submitted_after = tree_digest(c.root / "submitted")
    c.export_rows = c.export()
    c.nbgrader("generate_feedback", DETAILED)
    print("\n".join(c.log))
    return c


# -- every assignment ---------------------------------------------------------------------------------

@pytest.mark.parametrize("aid", ASSIGNMENTS)
def test_student_version_has_no_solutions_or_hidden_tests(course, aid):
    source, release = course.source(aid), course.release(aid)
    text = "\n".join(c.source for c in release.cells)
    assert "### BEGIN SOLUTION" not in text and "### BEGIN HIDDEN TESTS" not in text
    released = {meta(c).get("grade_id"): c.source for c in release.cells}
    for cell in source.cells:
        gid = meta(cell).get("grade_id")
        outside = cell.source.split("### BEGIN SOLUTION")[0]
        for line in solution_lines(cell.source):
            assert line in outside or line not in released[gid], f"{aid}/{gid}: solution line {line!r} leaked"
        for line in hidden_lines(cell.source):
            assert line not in text, f"{aid}/{gid}: hidden test {line!r} leaked into the student version"
    assert any(hidden_lines(c.source) for c in source.cells if meta(c).get("grade")), \
        f"{aid}: every exercise notebook should have hidden tests"
    assert sum("raise NotImplementedError()" in c.source for c in release.cells if meta(c).get("solution")) \
        == sum(1 for c in source.cells if meta(c).get("solution"))


@pytest.mark.parametrize("aid", ASSIGNMENTS)
def test_solution_scores_full_marks_and_untouched_scores_zero(course, aid):
    scores = course.first_scores[aid]
    top = course.max_score(aid)
    assert top > 0
    assert sum(scores["solution"].values()) == top, f"{aid}: solution lost points: {scores['solution']}"
    assert sum(scores["untouched"].values()) == 0, f"{aid}: untouched version scored: {scores['untouched']}"
    assert course.export_rows[(aid, "solution")] == top and course.export_rows[(aid, "untouched")] == 0


@pytest.mark.parametrize("aid", ASSIGNMENTS)
def test_our_student_copy_equals_nbgraders(course, aid, tmp_path):
    from course_lib.grade import student_copy
    ours = nbformat.read(student_copy(course.root / "notebooks" / "exercises" / aid / course.notebook_name(aid),
                                      tmp_path), 4)
    theirs = course.release(aid)
    assert [c.source for c in ours.cells] == [c.source for c in theirs.cells]
    assert [meta(c).get("checksum") for c in ours.cells] == [meta(c).get("checksum") for c in theirs.cells]


def test_legitimate_cells_fit_well_within_the_timeout(course):
    """The longest cell of any solution, as autograded, takes under a quarter of the configured limit."""
    config = (REPO / "nbgrader_config.py").read_text()
    timeout = int(re.search(r"c\.Execute\.timeout\s*=\s*(\d+)", config).group(1))
    longest = {}
    for aid in ASSIGNMENTS:
        nb = nbformat.read(course.root / "autograded" / "solution" / aid / course.notebook_name(aid), 4)
        times = [cell_seconds(c) for c in nb.cells if c.cell_type == "code"]
        assert all(t is not None for t in times), f"{aid}: autograded cells lack execution timing"
        longest[aid] = max(times)
    print("longest cell per assignment (s):", longest)
    assert max(longest.values()) < timeout / 4, f"a cell takes too long for the {timeout} s limit: {longest}"
    assert longest[DETAILED] < LOOP_TIMEOUT / 2, "the short timeout of the second run must fit chapter 01"


# -- chapter 01: the hard cases --------------------------------------------------------------------------

def test_partly_wrong_answer_gets_partial_marks(course):
    got = course.first_scores[DETAILED]["partial"]
    expected = course.points(DETAILED, "ex1_", "ex3_")
    assert sum(got.values()) == expected and 0 < expected < course.max_score(DETAILED)
    assert got["ex4_temperature_tests"] == 0, "a hidden test (small temperature) should catch the overflow"


def test_partial_feedback_teaches(course):
    html = (course.root / "feedback" / "partial" / DETAILED /
            course.notebook_name(DETAILED).replace(".ipynb", ".html")).read_text()
    assert "hidden state not carried" in html
    assert "overflows" in html
    assert "is not answered yet" in html
    assert "characters of output cut" in html, "a learner's huge output should be cut in the feedback"
    assert "debug " * 2000 not in html


def test_tampered_test_cells_are_graded_with_the_originals(course):
    got = course.first_scores[DETAILED]["tamper"]
    assert got["ex1_rnn_step_tests"] == 0 and got["ex2_rnn_forward_tests"] == 0
    assert sum(got.values()) == course.points(DETAILED, "ex3_", "ex4_", "ex5_", "ex6_")
    graded = nbformat.read(course.root / "autograded" / "tamper" / DETAILED / course.notebook_name(DETAILED), 4)
    cells = {meta(c).get("grade_id"): c for c in graded.cells}
    assert "grading.check_rnn_step(rnn_step" in cells["ex1_rnn_step_tests"].source
    assert "ex2_rnn_forward_tests" in cells, "the deleted test cell should be added back"
    assert "grading.check_rnn_forward(rnn_forward" in cells["ex2_rnn_forward_tests"].source
    errors = [o for o in cells["ex1_rnn_step_tests"].outputs if o.output_type == "error"]
    assert errors and "sigmoid instead of tanh" in errors[0].evalue


def test_infinite_loop_crash_and_flood_cost_only_their_exercises(course):
    """A SIGINT-proof loop (ex3), os._exit (ex2) and 20 MB written to fd 1 (ex4, otherwise right)."""
    second = course.second_scores
    looper = second["looper"]
    assert looper["ex3_grad_norms_tests"] == 0 and looper["ex2_rnn_forward_tests"] == 0
    assert sum(looper.values()) == course.max_score(DETAILED) - course.points(DETAILED, "ex2_", "ex3_")
    path = course.root / "autograded" / "looper" / DETAILED / course.notebook_name(DETAILED)
    assert path.stat().st_size < 1_000_000, "output must be capped per cell"
    html = (course.root / "feedback" / "looper" / DETAILED /
            course.notebook_name(DETAILED).replace(".ipynb", ".html")).read_text()
    # 20 MB written to fd 1 from inside a check: what of it reaches the grader before the cell ends
    # is cut with a note, the rest arrives late and is dropped (tests/test_grading_runner.py checks
    # the note); either way the graded notebook and the feedback stay small
    assert len(html) < 2_000_000
    assert "the kernel died while running this cell" in html
    graded = nbformat.read(course.root / "autograded" / "looper" / DETAILED / course.notebook_name(DETAILED), 4)
    cell = next(c for c in graded.cells if meta(c).get("grade_id") == "ex3_grad_norms_tests")
    assert any(o.output_type == "error" for o in cell.outputs)
    seconds = cell_seconds(cell)
    assert seconds is not None and LOOP_TIMEOUT * 0.9 <= seconds < 4 * LOOP_TIMEOUT
    # graded in the same run as the rest of the class
    assert set(second) == {"solution", "untouched", "partial", "tamper", "edits", "cheater", "looper"}


def test_second_autograde_run_gives_the_same_grades(course):
    """Graded again, one kernel per exercise instead of one per notebook: the same scores. The two
    hand-ins left out of that run keep theirs (and the gradebook's export agrees with every one)."""
    first, second = course.first_scores[DETAILED], course.second_scores
    assert set(first) == {"solution", "untouched", "partial", "tamper", "edits", "cheater"}
    for student in first:
        assert second[student] == first[student], student
    for student, cells in second.items():
        assert course.export_rows[(DETAILED, student)] == sum(cells.values()), student


def test_grading_never_writes_into_submissions(course):
    assert course.submitted_middle == {**course.submitted_before,
                                       **{k: v for k, v in course.submitted_middle.items() if "looper" in k}}
    assert course.submitted_after == course.submitted_middle
    assert any("looper" in k for k in course.submitted_after)


def test_feedback_for_every_student(course):
    html = course.notebook_name(DETAILED).replace(".ipynb", ".html")
    for student in ("solution", "untouched", "partial", "tamper", "edits", "cheater", "looper"):
        assert (course.root / "feedback" / student / DETAILED / html).is_file(), student


# -- chapter 01: the attacks and careless edits of issue 11 -------------------------------------------

def test_ordinary_edits_are_graded_as_if_untouched(course):
    """A pasted locked cell, a grade cell without id, a re-flagged test, raised points, and exercise 5's
    answer and test both deleted: the rest is right and scores its points, exercise 5 scores 0."""
    got = course.first_scores[DETAILED]["edits"]
    assert set(got) == set(course.first_scores[DETAILED]["solution"])
    assert sum(got.values()) == course.max_score(DETAILED) - course.points(DETAILED, "ex5_")
    assert got["ex5_generate_tests"] == 0
    assert course.export_rows[(DETAILED, "edits")] == sum(got.values())


def test_cheating_in_the_interpreter_scores_nothing(course):
    """Checks replaced by no-ops, an import hook, an input transformer, an always-equal tensor, and two
    functions that, when called, replace the check's reference (ex5) or overwrite what the check
    measured (ex6): both pass a check run in their own process (tests/test_grading_ch01.py)."""
    got = course.first_scores[DETAILED]["cheater"]
    assert set(got) == set(course.first_scores[DETAILED]["solution"])
    assert sum(got.values()) == 0, got
    graded = nbformat.read(course.root / "autograded" / "cheater" / DETAILED / course.notebook_name(DETAILED), 4)
    errors = {meta(c)["grade_id"]: [o.evalue for o in c.outputs if o.output_type == "error"]
              for c in graded.cells if meta(c).get("grade")}
    assert "differs from the reference" in errors["ex5_generate_tests"][0], errors["ex5_generate_tests"]
    assert "predicted_grad_norm" in errors["ex6_predict_tests_formula"][0], errors["ex6_predict_tests_formula"]


def test_the_sandbox_hides_the_course_and_protects_the_gradebook(course):
    from course_lib.grading import sandbox
    if not sandbox.available():
        pytest.skip("bubblewrap is not available here: grading runs unsandboxed (and says so)")
    assert not course.pwned, "a hand-in wrote into course_lib/"
    assert sum(course.first_scores[DETAILED]["solution"].values()) == course.max_score(DETAILED)
    assert sum(course.second_scores["untouched"].values()) == 0, "a hand-in changed the gradebook"
    html = (course.root / "feedback" / "cheater" / DETAILED /
            course.notebook_name(DETAILED).replace(".ipynb", ".html")).read_text()
    other = course.source("02_lstm_gru")
    leaked = [line for c in other.cells for line in solution_lines(c.source) if len(line) > 25 and line in html]
    assert not leaked, f"another chapter's solution reached the feedback: {leaked[:3]}"
    assert "Read-only file system" in html or "No such file" in html or "unable to open" in html
