"""Check an exercise notebook alone, without nbgrader's server or gradebook.

    python -m course_lib.grade PATH.ipynb                  # run it, print points per exercise and feedback
    python -m course_lib.grade --student-copy 01_rnn       # make my_exercises/01_rnn/... without solutions

Grading runs the notebook top to bottom in a fresh kernel (each cell stopped after ``--timeout``
seconds), then scores every nbgrader test cell as nbgrader does: full points if it ran without an
error, 0 otherwise. A learner's copy holds only the public tests; the instructor's source holds the
hidden ones too, and they run when present. See docs/exercises.md.
"""
from __future__ import annotations

import argparse
import copy
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCE_DIR = REPO / "notebooks" / "exercises"
HIDDEN_BEGIN, SOLUTION_BEGIN = "### BEGIN HIDDEN TESTS", "### BEGIN SOLUTION"
DEFAULT_TIMEOUT = 120  # seconds per cell, as in nbgrader_config.py
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class TestResult:
    """One nbgrader test cell after execution."""
    grade_id: str
    points: float
    passed: bool
    feedback: str = ""
    seconds: float | None = None
    edited: bool = False


@dataclass
class Report:
    """The outcome of grading one notebook."""
    notebook: Path
    tests: list[TestResult] = field(default_factory=list)
    titles: dict[str, str] = field(default_factory=dict)    # exercise key -> title
    notes: list[str] = field(default_factory=list)          # errors outside test cells
    has_hidden: bool = False
    has_solutions: bool = False
    cell_seconds: list[float] = field(default_factory=list)

    @property
    def score(self) -> float:
        return sum(t.points for t in self.tests if t.passed)

    @property
    def max_score(self) -> float:
        return sum(t.points for t in self.tests)

    def by_exercise(self) -> dict[str, list[TestResult]]:
        groups: dict[str, list[TestResult]] = {}
        for t in self.tests:
            groups.setdefault(exercise_key(t.grade_id), []).append(t)
        return groups


def exercise_key(grade_id: str) -> str:
    """``ex2_rnn_forward_tests`` -> ``ex2``; other ids stand alone."""
    m = re.match(r"(ex\d+)", grade_id)
    return m.group(1) if m else grade_id


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _error_text(output, timeout: int) -> str:
    """The learner-facing text of an error output: ``Feedback: message`` without the traceback."""
    name, value = output.get("ename", "Error"), _ANSI.sub("", output.get("evalue", "")).strip()
    if name == "Feedback":
        return value
    if name in ("CellTimeoutError", "KeyboardInterrupt"):
        return (f"the cell was stopped after {timeout} s, the time limit for one cell. "
                "Look for a loop that never ends, or work that is far too large.")
    if name == "NameError":
        missing = re.search(r"name '([^']+)'", value)
        what = f"`{missing.group(1)}`" if missing else "a name"
        return (f"NameError: {value}. The test could not find {what}: keep the name the exercise asks "
                "for, and run the cell that defines it (it must run without an error).")
    text = f"{name}: {value}" if value else name
    return text


def cell_seconds(cell) -> float | None:
    """How long an executed cell ran, from the timing metadata nbclient records; None without it."""
    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return None
    from datetime import datetime
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def _edited(cell) -> bool:
    """True when a locked cell no longer matches the checksum nbgrader gave it."""
    meta = _nbgrader(cell)
    if "checksum" not in meta:
        return False
    try:
        from nbgrader.utils import compute_checksum
    except ImportError:  # nbgrader is only in the dev extras; without it we cannot tell
        return False
    return compute_checksum(cell) != meta["checksum"]


def _find_source(path: Path) -> Path | None:
    """The instructor's source of a learner's copy: notebooks/exercises/<folder>/<same name>."""
    candidates = [SOURCE_DIR / path.parent.name / path.name, *sorted(SOURCE_DIR.glob(f"*/{path.name}"))]
    return next((c for c in candidates if c.is_file()), None)


def _strip_hidden(text: str) -> str:
    lines, keep = [], True
    for line in text.split("\n"):
        if HIDDEN_BEGIN in line:
            keep = False
        elif "### END HIDDEN TESTS" in line:
            keep = True
        elif keep:
            lines.append(line)
    return "\n".join(lines)


def _restore_locked(nb, source_nb, hidden: bool) -> list[str]:
    """Put back the original locked cells (edited or deleted), as nbgrader's autograde does.

    Returns the grade_ids restored. ``hidden`` keeps hidden tests in the restored cells (only when
    the notebook being graded had them).
    """
    originals = {}
    order = []
    for cell in source_nb.cells:
        meta = _nbgrader(cell)
        if meta.get("grade_id"):
            order.append(meta["grade_id"])
            if meta.get("locked") or meta.get("grade"):
                originals[meta["grade_id"]] = cell
    restored = []
    present = {}
    for cell in nb.cells:
        gid = _nbgrader(cell).get("grade_id")
        if gid in originals and not _nbgrader(cell).get("solution"):
            present[gid] = cell
            want = _source(originals[gid])
            want = want if hidden else _strip_hidden(want)
            if _source(cell) != want:
                cell.source = want
                restored.append(gid)
    for gid, original in originals.items():
        if gid in present or not _nbgrader(original).get("grade") or original.cell_type != "code":
            continue
        cell = copy.deepcopy(original)
        cell.source = _source(cell) if hidden else _strip_hidden(_source(cell))
        cell.outputs, cell.execution_count = [], None
        before = order[:order.index(gid)]
        ids = [_nbgrader(c).get("grade_id") for c in nb.cells]
        at = max((ids.index(g) + 1 for g in before if g in ids), default=len(nb.cells))
        nb.cells.insert(at, cell)
        restored.append(gid)
    return restored


def grade(path: str | Path, timeout: int = DEFAULT_TIMEOUT, kernel_name: str = "python3") -> Report:
    """Execute the notebook at ``path`` in a fresh kernel and score its nbgrader test cells.

    Like nbgrader's autograde, test cells that were edited or deleted are run as the originals,
    taken from the instructor's source in notebooks/exercises when it is at hand; without it, an
    edited test cell (one failing its nbgrader checksum) scores 0. Hidden tests run only if the
    notebook holds them. Never writes to ``path``. Raises ``ValueError`` if there is nothing to grade.
    """
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no notebook at {path}")
    nb = nbformat.read(path, as_version=4)
    report = Report(notebook=path)
    report.has_hidden = any(HIDDEN_BEGIN in _source(c) for c in nb.cells if _nbgrader(c).get("grade"))
    report.has_solutions = any(SOLUTION_BEGIN in _source(c) for c in nb.cells if _nbgrader(c).get("solution"))

    run = copy.deepcopy(nb)
    untrusted: set[str] = set()
    source = _find_source(path)
    if source is not None:
        restored = set(_restore_locked(run, nbformat.read(source, as_version=4), report.has_hidden))
    else:
        untrusted = restored = {_nbgrader(c).get("grade_id") for c in run.cells
                                if _nbgrader(c).get("grade") and _edited(c)}
    if not any(_nbgrader(c).get("grade") and c.cell_type == "code" for c in run.cells):
        raise ValueError(f"path: {path} has no nbgrader test cells; is it an exercise notebook "
                         "(notebooks/exercises/NN_name/NN_name_exercises.ipynb or your copy of one)?")
    for cell in run.cells:
        meta = _nbgrader(cell)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        elif meta.get("grade_id", "").startswith("ex"):
            heading = next((line.lstrip("#").strip() for line in _source(cell).splitlines()
                            if line.startswith("#")), "")
            heading = re.sub(r"\s*\(\s*\d+(\.\d+)?\s+points?\s*\)\s*$", "", heading)
            report.titles.setdefault(exercise_key(meta["grade_id"]), heading)

    client = NotebookClient(
        run, timeout=timeout, kernel_name=kernel_name, allow_errors=True, interrupt_on_timeout=True,
        error_on_timeout={"ename": "CellTimeoutError", "evalue": f"no result after {timeout} s",
                          "traceback": [f"CellTimeoutError: no result after {timeout} s"]},
        record_timing=True, resources={"metadata": {"path": str(path.parent.resolve())}})
    client.execute()

    for index, cell in enumerate(run.cells):
        if cell.cell_type != "code":
            continue
        seconds = cell_seconds(cell)
        if seconds is not None:
            report.cell_seconds.append(seconds)
        errors = [o for o in cell.outputs if o.get("output_type") == "error"]
        meta = _nbgrader(cell)
        if meta.get("grade"):
            gid = meta.get("grade_id", "?")
            passed, feedback = not errors, _error_text(errors[0], timeout) if errors else ""
            if gid in untrusted:
                passed, feedback = False, ("this test cell was edited and its original is not at hand to "
                                           "run instead, so it scores 0; make a fresh copy (--student-copy) "
                                           "and paste your answers into it.")
            report.tests.append(TestResult(grade_id=gid, points=float(meta.get("points", 0)), passed=passed,
                                           feedback=feedback, seconds=seconds, edited=gid in restored))
        elif errors:
            where = meta.get("grade_id") or f"cell {index + 1}"
            kind = "your answer cell" if meta.get("solution") else "cell"
            report.notes.append(f"{kind} `{where}` raised {_error_text(errors[0], timeout)}")
    return report


def _clip(text: str, limit: int = 1500) -> str:
    return text if len(text) <= limit else text[:limit] + f" ... [{len(text) - limit:,} characters cut]"


def format_report(report: Report) -> str:
    """The text ``python -m course_lib.grade`` prints."""
    lines = [f"Self-check of {report.notebook}"]
    if report.has_hidden:
        lines.append("Hidden tests are present (instructor's source notebook): running them too.")
    else:
        lines.append("No hidden tests in this copy: running the public tests only. The instructor's "
                     "grading adds hidden tests, so full marks here are necessary, not sufficient.")
    if report.has_solutions:
        lines.append("This notebook still holds the reference solutions (### BEGIN SOLUTION).")
    lines.append("")
    for key, tests in report.by_exercise().items():
        got = sum(t.points for t in tests if t.passed)
        total = sum(t.points for t in tests)
        title = report.titles.get(key) or key
        mark = "ok" if got == total else "--"
        lines.append(f"[{mark}] {title}: {got:g} / {total:g} points")
        for t in tests:
            if t.edited:
                lines.append(f"     note: test cell `{t.grade_id}` was edited or deleted; it was graded "
                             "with the original cell.")
            if not t.passed:
                body = _clip(t.feedback).replace("\n", "\n         ")
                lines.append(f"     {t.grade_id}: {body}")
    if report.notes:
        lines.append("")
        lines.append("Errors outside the test cells (they may explain the failures above):")
        lines.extend(f"  - {_clip(note, 600)}" for note in report.notes)
    lines.append("")
    lines.append(f"Total: {report.score:g} / {report.max_score:g} points")
    return "\n".join(lines)


def student_copy(assignment: str, out_dir: str | Path | None = None, force: bool = False) -> Path:
    """Write the student version of ``assignment`` (solutions and hidden tests removed, as
    ``nbgrader generate_assignment`` does) to ``out_dir/assignment/``; return the notebook's path.

    ``assignment`` is an assignment id (``01_rnn``) or the path of a source notebook.
    """
    import nbformat
    from nbgrader.preprocessors import (ClearHiddenTests, ClearMarkScheme, ClearOutput, ClearSolutions,
                                        ComputeChecksums, LockCells)

    source = Path(assignment)
    if source.suffix != ".ipynb":
        folder = SOURCE_DIR / assignment
        found = sorted(folder.glob("*.ipynb")) if folder.is_dir() else []
        if not found:
            known = sorted(p.name for p in SOURCE_DIR.iterdir() if p.is_dir()) if SOURCE_DIR.is_dir() else []
            raise FileNotFoundError(f"assignment: no exercises called {assignment!r} in {SOURCE_DIR}; "
                                    f"expected one of {known}")
        source = found[0]
    if not source.is_file():
        raise FileNotFoundError(f"assignment: no notebook at {source}")
    out_dir = Path(out_dir) if out_dir is not None else REPO / "my_exercises"
    target = out_dir / source.parent.name / source.name
    if target.exists() and not force:
        raise FileExistsError(f"{target} exists and may hold your work; add --force to replace it")
    nb = nbformat.read(source, as_version=4)
    resources: dict = {"nbgrader": {"assignment": source.parent.name, "notebook": source.stem}}
    for pp in (LockCells(), ClearSolutions(), ClearOutput(), ComputeChecksums(), ClearHiddenTests(),
               ClearMarkScheme(), ComputeChecksums()):
        nb, resources = pp.preprocess(nb, resources)
    target.parent.mkdir(parents=True, exist_ok=True)
    for extra in source.parent.iterdir():  # data files that come with the exercises
        if extra.is_file() and extra.suffix != ".ipynb" and not extra.name.startswith("."):
            shutil.copy2(extra, target.parent / extra.name)
    nbformat.write(nb, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.grade", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook", nargs="?", help="the exercise notebook to check")
    parser.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT,
                        help=f"seconds before a cell is stopped (default {DEFAULT_TIMEOUT})")
    parser.add_argument("--student-copy", metavar="ASSIGNMENT",
                        help="write a copy without solutions of ASSIGNMENT (e.g. 01_rnn) to my_exercises/")
    parser.add_argument("--out", help="folder for --student-copy (default: my_exercises/ in the repository)")
    parser.add_argument("--force", action="store_true", help="let --student-copy replace an existing copy")
    args = parser.parse_args(argv)
    if args.student_copy:
        try:
            target = student_copy(args.student_copy, args.out, force=args.force)
        except (FileNotFoundError, FileExistsError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"wrote {target}\nopen it in JupyterLab, answer, then: python -m course_lib.grade {target}")
        return 0
    if not args.notebook:
        parser.print_usage(sys.stderr)
        print("error: give a notebook to check, or --student-copy ASSIGNMENT", file=sys.stderr)
        return 2
    if args.timeout < 1:
        print(f"error: --timeout: expected a positive number of seconds, got {args.timeout}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        report = grade(args.notebook, timeout=args.timeout)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_report(report))
    print(f"(ran in {time.perf_counter() - start:.1f} s)")
    return 0 if report.score == report.max_score else 1


if __name__ == "__main__":
    sys.exit(main())
