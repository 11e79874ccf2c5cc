"""nbgrader preprocessors that make autograding trustworthy (nbgrader_config.py installs them).

- :class:`SanitizeHandIn` runs before nbgrader's ``OverwriteCells``: it rebuilds the hand-in on the
  cells of the release (:func:`course_lib.grading.notebook.sanitize`), so that a copied, deleted
  or re-flagged cell is graded as if untouched instead of failing the whole notebook; and it sets
  the stored scores of this hand-in to 0, flagged for review, so that a grading run that fails
  later never leaves an older score standing.
- :class:`GradingExecute` replaces nbgrader's ``Execute``: the hand-in runs in sandboxed kernels,
  one per exercise, with definitions only from answer cells, capped output and no failure on
  timeouts or dead kernels (:mod:`course_lib.grading.runner`); the test cells run in this process
  and call the learner's functions in the kernel (:mod:`course_lib.grading.remote`).
"""
from __future__ import annotations

import os

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Int, List, Unicode

from . import runner, sandbox
from .notebook import nbgrader_meta, sanitize


def _release_notebook(config, assignment: str, notebook: str):
    """The release version of ``assignment/notebook`` (None when generate_assignment has not run)."""
    coursedir = CourseDirectory(config=config)
    path = os.path.join(coursedir.format_path(coursedir.release_directory, ".", assignment), f"{notebook}.ipynb")
    return nbformat.read(path, as_version=4) if os.path.isfile(path) else None


def _reference_from_gradebook(gb: Gradebook, notebook: str, assignment: str):
    """The release rebuilt from the gradebook's source cells (their stored order)."""
    stored = gb.find_notebook(notebook, assignment)
    grades = {c.name: c for c in stored.grade_cells}
    solutions = {c.name for c in stored.solution_cells}
    cells = []
    for sc in stored.source_cells:
        meta = {"grade": sc.name in grades, "grade_id": sc.name, "locked": bool(sc.locked),
                "schema_version": 3, "solution": sc.name in solutions, "task": False, "checksum": sc.checksum}
        if sc.name in grades:
            meta["points"] = float(grades[sc.name].max_score)
        cell = (nbformat.v4.new_code_cell if sc.cell_type == "code" else nbformat.v4.new_markdown_cell)(sc.source)
        cell.metadata["nbgrader"] = meta
        cells.append(cell)
    return nbformat.v4.new_notebook(cells=cells)


class SanitizeHandIn(NbGraderPreprocessor):
    """Rebuild the hand-in on the release's cells and reset its stored scores (see the module)."""

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        assignment, notebook, student = info["assignment"], info["notebook"], info["student"]
        with Gradebook(info["db_url"]) as gb:
            reference = _release_notebook(self.config, assignment, notebook) \
                or _reference_from_gradebook(gb, notebook, assignment)
            try:
                submission = gb.find_submission_notebook(notebook, assignment, student)
                for grade in submission.grades:
                    grade.auto_score = 0
                    grade.needs_manual_grade = True   # cleared by SaveAutoGrades when grading succeeds
                gb.db.commit()
            except MissingEntry:
                pass
        repairs = sanitize(nb, reference)
        for note in repairs.notes():
            self.log.warning("%s/%s/%s: %s", student, assignment, notebook, note)
        if repairs.notes():
            text = "**Grading notes.** " + " ".join(f"{n[0].upper()}{n[1:]}." for n in repairs.notes())
            nb.cells.insert(0, nbformat.v4.new_markdown_cell(text))
        nb.metadata.pop("widgets", None)
        return nb, resources


class GradingExecute(NbGraderPreprocessor):
    """Execute the hand-in with :func:`course_lib.grading.runner.run_notebook`."""

    timeout = Int(0, help="Seconds per cell; 0 takes Execute.timeout (nbgrader's setting), else 120.").tag(config=True)
    startup_timeout = Int(120, help="Seconds a kernel may take to start.").tag(config=True)
    output_limit = Int(runner.OUTPUT_LIMIT, help="Characters of output kept per cell.").tag(config=True)
    sandbox = Unicode("auto", help="'auto' (bwrap when available), 'bwrap' (required) or 'none'.").tag(config=True)
    isolate = Unicode("exercise", help="'exercise' (a kernel per exercise) or 'notebook'.").tag(config=True)
    hide = List(Unicode(), help="Extra folders the grading kernel must not see.").tag(config=True)

    def _timeout(self) -> int:
        if self.timeout > 0:
            return self.timeout
        value = self.config.get("Execute", {}).get("timeout")
        return int(value) if value else runner.DEFAULT_TIMEOUT

    def preprocess(self, nb, resources):
        workdir = resources.get("metadata", {}).get("path") or os.getcwd()
        coursedir = CourseDirectory(config=self.config)
        hide = [coursedir.root, *self.hide]
        exchange = self.config.get("Exchange", {}).get("root") or os.environ.get("NBGRADER_EXCHANGE")
        hide.append(exchange or "/srv/nbgrader/exchange")
        self.log.info("Grading kernel: %s", sandbox.status())
        if not sandbox.available() and self.sandbox == "auto":
            self.log.warning(sandbox.NOT_SANDBOXED)
        info = runner.run_notebook(nb, workdir, timeout=self._timeout(), startup_timeout=self.startup_timeout,
                                   output_limit=self.output_limit, sandbox=self.sandbox, hide=hide,
                                   isolate=self.isolate, log=self.log.warning)
        for what, cells in (("stopped at the time limit", info.timeouts), ("killed its kernel", info.deaths)):
            if cells:
                self.log.warning("%s: %s %s", resources["nbgrader"]["student"], what, ", ".join(cells))
        tests = [c for c in nb.cells if nbgrader_meta(c).get("grade") and c.cell_type == "code"]
        self.log.info("Ran %d test cells in %d kernels", len(tests), info.kernels)
        return nb, resources
