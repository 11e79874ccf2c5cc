"""nbgrader configuration: the repository root is the course directory.

Run nbgrader from the repository root (see docs/instructors.md). The source notebooks stay beside
the chapters, at notebooks/exercises/<assignment>/<assignment>_exercises.ipynb; everything nbgrader
generates (release/, submitted/, autograded/, feedback/, gradebook.db) goes to the root, where git
ignores it.
"""
import os

c = get_config()  # noqa: F821  (provided by traitlets when nbgrader loads this file)

# -- Course directory ---------------------------------------------------------------------------
# The folder this file is in, so that a copy of the repository (or of this file with
# notebooks/exercises beside it) is a course directory of its own.
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.course_id = "seqmodels"
# nbgrader's {nbgrader_step} for the source step: the path may contain a slash.
c.CourseDirectory.source_directory = os.path.join("notebooks", "exercises")
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(c.CourseDirectory.root, "gradebook.db")
# Not copied into student versions: caches and checkpoints.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback"]

# -- Exchange (release / fetch / submit / collect) ----------------------------------------------
# nbgrader's default is /srv/nbgrader/exchange (shared by JupyterHub users). On one machine or in
# tests point it elsewhere: NBGRADER_EXCHANGE=/some/dir or --Exchange.root=/some/dir.
if os.environ.get("NBGRADER_EXCHANGE"):
    c.Exchange.root = os.environ["NBGRADER_EXCHANGE"]

# -- Student versions ---------------------------------------------------------------------------
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# -- Autograding --------------------------------------------------------------------------------
# course_lib/grading/nbgrader_plugins.py replaces two steps of nbgrader's autograde:
# - SanitizeHandIn, before OverwriteCells: the hand-in is rebuilt on the release's cells (a copied,
#   deleted or re-flagged cell is graded as if untouched, instead of failing the whole notebook), and
#   its stored scores are set to 0 and flagged, so that a run that fails never leaves an old score.
# - GradingExecute, instead of Execute: the learner's code runs in sandboxed kernels (bubblewrap:
#   read-only root, the course directory and the exchange hidden, only a working copy of the hand-in
#   writable, no network; without bwrap it runs unsandboxed and says so loudly in the log), one kernel
#   per exercise, answer cells contributing only their definitions, output capped per cell, and a
#   timeout or a dead kernel costing only that cell. See docs/instructors.md.
c.Autograde.sanitize_preprocessors = [
    "nbgrader.preprocessors.ClearOutput",
    "course_lib.grading.nbgrader_plugins.SanitizeHandIn",
    "nbgrader.preprocessors.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec",
    "nbgrader.preprocessors.OverwriteCells",
    "nbgrader.preprocessors.CheckCellMetadata",
]
c.Autograde.autograde_preprocessors = [
    "course_lib.grading.nbgrader_plugins.GradingExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
# Every cell is stopped after this many seconds (GradingExecute reads Execute.timeout; so does
# `nbgrader autograde --Execute.timeout=N`). The longest legitimate exercise cell takes a few
# seconds on a 2-core CPU, and docs/exercises.md caps any exercise cell at 30 s (the round-trip
# test checks the measured maximum against a quarter of this), so 120 s only ever stops a cell
# that would never finish; it then scores 0 for that cell and grading goes on. A cell that ignores
# the interrupt has its kernel killed; the next exercise starts in a kernel of its own.
c.Execute.timeout = 120
c.GradingExecute.startup_timeout = 120
c.GradingExecute.sandbox = "auto"         # "bwrap" refuses to grade without the sandbox
c.GradingExecute.isolate = "exercise"     # one kernel per exercise ("notebook": one, restarted if it dies)
c.GradingExecute.output_limit = 20_000    # characters of output kept per cell, fd-level writes included
# A learner who deletes or edits a locked test cell is graded with the original cell: nbgrader
# overwrites locked cells from the gradebook, and this adds deleted grade cells back.
c.OverwriteCells.add_missing_cells = True
# Huge printed output is also cut by lines in autograded notebooks and feedback.
c.LimitOutput.max_lines = 200
c.LimitOutput.max_traceback = 60
