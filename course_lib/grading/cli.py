"""Check an exercise notebook alone, without nbgrader's server or gradebook.

    python -m course_lib.grade PATH.ipynb                  # run it, print points per exercise and feedback
    python -m course_lib.grade --student-copy 01_rnn       # make my_exercises/01_rnn/... without solutions

Grading runs the notebook as ``nbgrader autograde`` does here (course_lib.grading.runner): in
sandboxed kernels, one per exercise, each cell stopped after ``--timeout`` seconds, answer cells
contributing only their definitions; the test cells and their points come from the release, not
from the learner's file. A test cell scores its points if it ran to the end without an error, 0
otherwise. A learner's copy holds only the public tests; the instructor's source holds the hidden
ones too, and they run when present. See docs/exercises.md.
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

from . import runner, sandbox
from .notebook import HIDDEN_BEGIN, SOLUTION_BEGIN, exercise_key, nbgrader_meta, sanitize
from .notebook import source as _source

REPO = Path(__file__).resolve().parents[2]
SOURCE_DIR = REPO / "notebooks" / "exercises"
DEFAULT_TIMEOUT = runner.DEFAULT_TIMEOUT  # seconds per cell, as in nbgrader_config.py
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_nbgrader = nbgrader_meta


@dataclass
class TestResult:
    """One nbgrader test cell after execution."""
    grade_id: str
    points: float
    passed: bool
    feedback: str = ""
    seconds: float | None = None
    edited: bool = False
    status: str = "ok"        # ok, error, timeout (stopped at the time limit), dead (its kernel died)


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
    missing_tests: list[str] = field(default_factory=list)  # test cells the learner's file lacks
    unverified: bool = False      # no source at hand: points and test cells taken from the file
    sandboxed: bool = True

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


def _error_text(output, timeout: int) -> str:
    """The learner-facing text of an error output: ``Feedback: message`` without the traceback."""
    name, value = output.get("ename", "Error"), _ANSI.sub("", output.get("evalue", "")).strip()
    if name == "Feedback":
        return value
    if name in ("CellTimeoutError", "KeyboardInterrupt"):
        return (f"the cell was stopped after {timeout} s, the time limit for one cell. "
                "Look for a loop that never ends, or work that is far too large.")
    if name in ("DeadKernelError", "KernelStartError", "NotRunError"):
        return (f"{value}. Look for os._exit, exit() outside a function, or work that needs far too much "
                "memory." if name == "DeadKernelError" else value)
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


def _release_of(source_nb):
    """The student version of a source notebook, in memory (what generate_assignment writes)."""
    from nbgrader.preprocessors import (ClearHiddenTests, ClearMarkScheme, ClearOutput, ClearSolutions,
                                        ComputeChecksums, LockCells)
    nb = copy.deepcopy(source_nb)
    resources: dict = {"nbgrader": {"assignment": "", "notebook": ""}}
    for pp in (LockCells(), ClearSolutions(), ClearOutput(), ComputeChecksums(), ClearHiddenTests(),
               ClearMarkScheme(), ComputeChecksums()):
        nb, resources = pp.preprocess(nb, resources)
    return nb


def _titles(nb) -> dict[str, str]:
    titles: dict[str, str] = {}
    for cell in nb.cells:
        gid = _nbgrader(cell).get("grade_id") or ""
        if cell.cell_type == "markdown" and gid.startswith("ex"):
            heading = next((line.lstrip("#").strip() for line in _source(cell).splitlines()
                            if line.startswith("#")), "")
            heading = re.sub(r"\s*\(\s*\d+(\.\d+)?\s+points?\s*\)\s*$", "", heading)
            titles.setdefault(exercise_key(gid), heading)
    return titles


def grade(path: str | Path, timeout: int = DEFAULT_TIMEOUT, kernel_name: str = "python3",
          sandbox_mode: str = "auto", isolate: str = "exercise") -> Report:
    """Execute the notebook at ``path`` as autograde does and score its nbgrader test cells.

    The test cells and their points come from the release (the student version generated in memory
    from the instructor's source in notebooks/exercises) or, for the source itself, from the source:
    edited or deleted test cells run as the originals, copies and unknown grade cells are dropped,
    points are the release's. Without the source at hand, a test cell failing its nbgrader
    checksum scores 0 and the report says that points and completeness could not be checked.
    The notebook runs like autograde runs it (:mod:`course_lib.grading.runner`: sandboxed kernels,
    one per exercise, definitions only from answer cells, the test cells in this process calling the
    learner's functions in the kernel; without the source at hand the test cells run in the kernel);
    a test cell passes only if it ran to the end without an error. Never writes to ``path``. Raises ``ValueError`` if there is nothing to grade.
    ``kernel_name`` is kept for compatibility and not used: grading always uses its own kernel.
    """
    import nbformat

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no notebook at {path}")
    nb = nbformat.read(path, as_version=4)
    report = Report(notebook=path)
    report.has_hidden = any(HIDDEN_BEGIN in _source(c) for c in nb.cells if _nbgrader(c).get("grade"))
    report.has_solutions = any(SOLUTION_BEGIN in _source(c) for c in nb.cells if _nbgrader(c).get("solution"))

    run = copy.deepcopy(nb)
    untrusted: set[str] = set()
    restored: set[str] = set()
    source = _find_source(path)
    if source is not None:
        source_nb = nbformat.read(source, as_version=4)
        reference = source_nb if report.has_hidden else _release_of(source_nb)
        repairs = sanitize(run, reference)
        restored = set(repairs.restored)
        tests_in_reference = {_nbgrader(c).get("grade_id") for c in reference.cells
                              if _nbgrader(c).get("grade") and c.cell_type == "code"}
        present = {_nbgrader(c).get("grade_id") for c in nb.cells if _nbgrader(c).get("grade")}
        report.missing_tests = sorted(tests_in_reference - present)
        report.notes.extend(n for n in repairs.notes() if not n.startswith("locked cells"))
    else:
        report.unverified = True
        untrusted = restored = {_nbgrader(c).get("grade_id") for c in run.cells
                                if _nbgrader(c).get("grade") and _edited(c)}
    if not any(_nbgrader(c).get("grade") and c.cell_type == "code" for c in run.cells):
        raise ValueError(f"path: {path} has no nbgrader test cells; is it an exercise notebook "
                         "(notebooks/exercises/NN_name/NN_name_exercises.ipynb or your copy of one)?")
    report.titles = _titles(run)
    for cell in run.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None

    # without the source at hand no test cell's code is known to be the release's (a checksum can be
    # forged): they all run in the sandboxed kernel, never in this process
    in_kernel = {_nbgrader(c).get("grade_id") for c in run.cells if _nbgrader(c).get("grade")} if source is None else ()
    info = runner.run_notebook(run, path.parent.resolve(), timeout=timeout, sandbox=sandbox_mode,
                               hide=[SOURCE_DIR], isolate=isolate, in_kernel=in_kernel)
    report.sandboxed = info.sandboxed

    for index, cell in enumerate(run.cells):
        if cell.cell_type != "code":
            continue
        seconds = cell_seconds(cell)
        if seconds is not None:
            report.cell_seconds.append(seconds)
        errors = [o for o in cell.outputs if o.get("output_type") == "error"]
        meta = _nbgrader(cell)
        status = info.status.get(index, "missing")
        if meta.get("grade"):
            gid = meta.get("grade_id", "?")
            passed = status == "ok" and not errors
            feedback = _error_text(errors[-1] if status in ("timeout", "dead") else errors[0], timeout) \
                if errors else ("" if passed else "this test cell did not run to the end")
            if gid in untrusted:
                passed, feedback = False, ("this test cell was edited and its original is not at hand to "
                                           "run instead, so it scores 0; make a fresh copy (--student-copy) "
                                           "and paste your answers into it.")
            report.tests.append(TestResult(grade_id=gid, points=float(meta.get("points", 0)), passed=passed,
                                           feedback=feedback, seconds=seconds, edited=gid in restored,
                                           status=status))
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
    if not report.sandboxed:
        lines.append(sandbox.NOT_SANDBOXED)
    if report.has_hidden:
        lines.append("Hidden tests are present (instructor's source notebook): running them too.")
    else:
        lines.append("No hidden tests in this copy: running the public tests only. The instructor's "
                     "grading adds hidden tests, so full marks here are necessary, not sufficient.")
    if report.has_solutions:
        lines.append("This notebook still holds the reference solutions (### BEGIN SOLUTION).")
    if report.unverified:
        lines.append("The source of this notebook is not at hand (notebooks/exercises/<assignment>/<same "
                     "name>): the test cells and points are taken from your file and cannot be checked.")
    if report.missing_tests:
        lines.append("Test cells missing from your file (run from the release, as autograde does): "
                     + ", ".join(report.missing_tests))
    lines.append("")
    for key, tests in report.by_exercise().items():
        got = sum(t.points for t in tests if t.passed)
        total = sum(t.points for t in tests)
        title = report.titles.get(key) or key
        mark = "ok" if got == total else "--"
        lines.append(f"[{mark}] {title}: {got:g} / {total:g} points")
        for t in tests:
            if t.edited and t.grade_id in report.missing_tests:
                lines.append(f"     note: test cell `{t.grade_id}` was deleted; it was graded with the original cell.")
            elif t.edited:
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
    nb = _release_of(nbformat.read(source, as_version=4))
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
    parser.add_argument("--sandbox", choices=("auto", "bwrap", "none"), default="auto",
                        help="run the notebook inside bubblewrap: auto (when available, the default), "
                             "bwrap (refuse without it) or none")
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
        report = grade(args.notebook, timeout=args.timeout, sandbox_mode=args.sandbox)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_report(report))
    print(f"(ran in {time.perf_counter() - start:.1f} s)")
    return 0 if report.score == report.max_score else 1


if __name__ == "__main__":
    sys.exit(main())
