"""`python -m course_lib.grade`: a learner checks an exercise notebook alone, with no nbgrader
server or gradebook, and reads points per exercise and feedback that teaches."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_lib import grade
from course_lib.grading.notebook import nbgrader_meta as meta

REPO = Path(__file__).resolve().parent.parent
SOURCE_00 = REPO / "notebooks/exercises/00_setup_and_tour/00_setup_and_tour_exercises.ipynb"
SOURCE_01 = REPO / "notebooks/exercises/01_rnn/01_rnn_exercises.ipynb"


def run_main(capsys, *args) -> tuple[int, str]:
    code = grade.main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_source_notebook_scores_full_marks_from_the_command_line():
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-m", "course_lib.grade", str(SOURCE_00)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Hidden tests are present (instructor's source notebook): running them too." in done.stdout
    assert "[ok] Exercise 1: a batch of sequences: 1 / 1 points" in done.stdout
    assert "[ok] Exercise 2: a diagnosis: why the loss stops falling: 2 / 2 points" in done.stdout
    assert "Total: 3 / 3 points" in done.stdout


def test_source_of_chapter_01_scores_full_marks(capsys):
    before = digest(SOURCE_01)
    code, out = run_main(capsys, SOURCE_01)
    assert code == 0, out
    for line in ("[ok] Exercise 1: one RNN step: 2 / 2 points",
                 "[ok] Exercise 2: the loop over time: 2 / 2 points",
                 "[ok] Exercise 3: gradient norm against distance: 3 / 3 points",
                 "[ok] Exercise 4: temperature: 2 / 2 points",
                 "[ok] Exercise 5: sampling, carrying the hidden state: 3 / 3 points",
                 "[ok] Exercise 6: a prediction: the gradient at a distance: 3 / 3 points",
                 "Total: 15 / 15 points"):
        assert line in out
    assert digest(SOURCE_01) == before, "grading must not write into the notebook"


@pytest.fixture
def copy_01(tmp_path, capsys):
    code, out = run_main(capsys, "--student-copy", "01_rnn", "--out", tmp_path)
    assert code == 0, out
    path = tmp_path / "01_rnn" / "01_rnn_exercises.ipynb"
    assert path.is_file() and f"wrote {path}" in out
    return path


def test_student_copy_scores_zero_with_clear_feedback(copy_01, capsys):
    text = copy_01.read_text()
    assert "### BEGIN SOLUTION" not in text and "### BEGIN HIDDEN TESTS" not in text
    code, out = run_main(capsys, copy_01)
    assert code == 1
    assert "No hidden tests in this copy: running the public tests only." in out
    assert "Total: 0 / 15 points" in out
    for name in ("rnn_step", "rnn_forward", "grad_norms_by_distance", "temperature_probs", "generate",
                 "predicted_grad_norm", "norm_with_inputs"):
        assert f"`{name}` is not answered yet: replace `raise NotImplementedError()`" in out
    assert "Traceback" not in out


def test_student_copy_never_overwrites_work(copy_01, capsys):
    code, out = run_main(capsys, "--student-copy", "01_rnn", "--out", copy_01.parent.parent)
    assert code == 2 and "exists and may hold your work; add --force" in out
    code, out = run_main(capsys, "--student-copy", "01_rnn", "--out", copy_01.parent.parent, "--force")
    assert code == 0


def set_answer(nb, grade_id: str, source: str) -> None:
    cell = next(c for c in nb.cells if meta(c).get("grade_id") == grade_id)
    cell.source = source


def test_feedback_on_a_learners_mistakes(copy_01, capsys):
    nb = nbformat.read(copy_01, 4)
    set_answer(nb, "ex1_rnn_step", "def rnn_step(x_t, h, W_x, W_h, b):\n"
                                   "    z = x_t @ W_x + h @ W_h\n"
                                   "    return torch.tanh(z)\n")
    set_answer(nb, "ex2_rnn_forward", "def rnn_forward(step, x, h0):\n"
                                      "    print('debug ' * 500_000)\n"
                                      "    states = [step(x[:, t], h0) for t in range(x.shape[1])]\n"
                                      "    return torch.stack(states, dim=1), states[-1]\n")
    set_answer(nb, "ex3_grad_norms", "def grad_norms_by_distance(rnn, x):\n    while True:\n        pass\n")
    set_answer(nb, "ex4_temperature", "def temperature_probs(logits, temperature):\n"
                                      "    return torch.softmax(logits * temperature, dim=-1)\n")
    set_answer(nb, "ex5_generate", "def generate(model, prompt_ids, n_new, temperature, generator)\n    pass\n")
    # the learner also "fixes" the exercise 4 test and deletes the exercise 1 test
    set_answer(nb, "ex4_temperature_tests", "print('Exercise 4 passed.')")
    nb.cells = [c for c in nb.cells if meta(c).get("grade_id") != "ex1_rnn_step_tests"]
    nbformat.write(nb, copy_01)
    before = digest(copy_01)

    code, out = run_main(capsys, copy_01, "--timeout", "8")
    assert code == 1
    assert "Total: 0 / 15 points" in out
    assert "`rnn_step`: looks like you forgot the bias b" in out
    assert "note: test cell `ex1_rnn_step_tests` was deleted; it was graded with the original cell." in out
    assert "Test cells missing from your file (run from the release, as autograde does): ex1_rnn_step_tests" in out
    assert "hidden state not carried" in out
    assert "debug debug" not in out, "a learner's huge output must not flood the report"
    assert "the cell was stopped after 8 s, the time limit for one cell" in out
    assert "`temperature_probs`: looks like you multiplied the logits by the temperature" in out
    assert "note: test cell `ex4_temperature_tests` was edited or deleted" in out
    assert "your answer cell `ex5_generate` raised SyntaxError" in out
    assert "NameError: name 'generate' is not defined. The test could not find `generate`" in out
    assert "Traceback" not in out
    assert digest(copy_01) == before, "grading must not write into the learner's notebook"


def test_edited_test_without_the_source_at_hand_scores_zero(tmp_path, capsys):
    code, out = run_main(capsys, "--student-copy", "00_setup_and_tour", "--out", tmp_path)
    assert code == 0
    copied = tmp_path / "00_setup_and_tour" / "00_setup_and_tour_exercises.ipynb"
    nb = nbformat.read(copied, 4)
    set_answer(nb, "ex1_make_batch_tests", "print('Exercise 1 passed.')")
    elsewhere = tmp_path / "renamed_copy.ipynb"  # no source of that name: nothing to restore from
    nbformat.write(nb, elsewhere)
    code, out = run_main(capsys, elsewhere)
    assert code == 1 and "Total: 0 / 3 points" in out
    assert "this test cell was edited and its original is not at hand to run instead, so it scores 0" in out


def test_bad_input_is_refused_clearly(tmp_path, capsys):
    code, out = run_main(capsys, tmp_path / "missing.ipynb")
    assert code == 2 and "error: path: no notebook at" in out
    code, out = run_main(capsys, REPO / "notebooks" / "00_setup_and_tour.ipynb")
    assert code == 2 and "has no nbgrader test cells; is it an exercise notebook" in out
    code, out = run_main(capsys, "--student-copy", "99_nope", "--out", tmp_path)
    assert code == 2 and "no exercises called '99_nope'" in out and "01_rnn" in out
    code, out = run_main(capsys)
    assert code == 2 and "give a notebook to check" in out
    code, out = run_main(capsys, SOURCE_00, "--timeout", "0")
    assert code == 2 and "--timeout: expected a positive number of seconds, got 0" in out


def test_exercise_key_groups_test_cells():
    assert grade.exercise_key("ex2_rnn_forward_tests") == "ex2"
    assert grade.exercise_key("ex12_x_tests_values") == "ex12"
    assert grade.exercise_key("setup") == "setup"


def test_source_notebooks_are_well_formed():
    """The pattern of docs/exercises.md, for every assignment: ids, kinds of cells, points."""
    for path in sorted((REPO / "notebooks" / "exercises").glob("*/*.ipynb")):
        assert path.stem == f"{path.parent.name}_exercises", path
        nb = json.loads(path.read_text())
        assert set(nb["metadata"]) <= {"kernelspec", "language_info"}, path
        ids = [meta(c).get("grade_id") for c in nb["cells"]]
        assert all(ids) and len(ids) == len(set(ids)), f"{path}: every cell needs a unique grade_id"
        tests = [c for c in nb["cells"] if meta(c).get("grade")]
        answers = [c for c in nb["cells"] if meta(c).get("solution")]
        assert tests and answers, path
        for cell in tests:
            m = meta(cell)
            assert m["locked"] and m.get("points", 0) > 0 and m["grade_id"].startswith("ex"), (path, m)
            assert "from course_lib.grading import" in "".join(cell["source"]), (path, m["grade_id"])
        for cell in answers:
            assert "### BEGIN SOLUTION" in "".join(cell["source"]), (path, meta(cell)["grade_id"])
        for cell in nb["cells"]:
            assert cell["cell_type"] != "code" or (not cell.get("outputs") and cell.get("execution_count") is None)


def test_points_and_test_cells_come_from_the_release_and_crashes_are_reported(copy_01, capsys):
    """Issue 11: 100 points per test cell, a deleted test cell, a check replaced at top level, a kernel
    killed by os._exit and a loop that ignores the interrupt; only exercises 4 and 5 are right."""
    source = nbformat.read(SOURCE_01, 4)
    solution = {meta(c)["grade_id"]: "\n".join(line for line in c.source.split("\n") if "### " not in line)
                for c in source.cells if meta(c).get("solution")}
    nb = nbformat.read(copy_01, 4)
    for cell in nb.cells:
        if meta(cell).get("grade"):
            meta(cell)["points"] = 100
    set_answer(nb, "ex1_rnn_step", "import course_lib.grading.ch01_rnn as g\n"
                                   "g.check_rnn_step = lambda *a, **k: None\n"
                                   "def rnn_step(x_t, h, W_x, W_h, b):\n    raise NotImplementedError()\n")
    set_answer(nb, "ex2_rnn_forward", "def rnn_forward(step, x, h0):\n    import os\n    os._exit(1)\n")
    set_answer(nb, "ex3_grad_norms", "def grad_norms_by_distance(rnn, x):\n    import signal\n"
                                     "    signal.signal(signal.SIGINT, signal.SIG_IGN)\n    while True:\n        pass\n")
    set_answer(nb, "ex4_temperature", solution["ex4_temperature"])
    set_answer(nb, "ex5_generate", solution["ex5_generate"])
    nb.cells = [c for c in nb.cells if meta(c).get("grade_id") != "ex5_generate_tests"]
    nbformat.write(nb, copy_01)
    code, out = run_main(capsys, copy_01, "--timeout", "5")
    assert code == 1, out
    assert "Total: 5 / 15 points" in out
    assert "[ok] Exercise 4: temperature: 2 / 2 points" in out
    assert "[ok] Exercise 5: sampling, carrying the hidden state: 3 / 3 points" in out
    assert "Test cells missing from your file (run from the release, as autograde does): ex5_generate_tests" in out
    assert "the kernel died while running this cell" in out
    assert "the cell was stopped after 5 s, the time limit for one cell" in out
