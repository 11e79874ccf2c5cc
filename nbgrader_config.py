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
# Every cell is stopped after this many seconds. The longest legitimate exercise cell takes a few
# seconds on a 2-core CPU, and docs/exercises.md caps any exercise cell at 30 s (the round-trip
# test checks the measured maximum against a quarter of this), so 120 s only ever stops a cell
# that would never finish; it then scores 0 for that cell and grading goes on.
c.Execute.timeout = 120
c.Execute.interrupt_on_timeout = True
# A kernel may be slow to start on a busy machine; one that dies (e.g. out of memory) fails only
# that notebook, which nbgrader reports at the end, and is not run again.
c.Execute.startup_timeout = 120
c.Execute.execute_retries = 0
# A cell that raises does not stop the cells after it: nbgrader's Execute always runs with
# allow_errors=True (not configurable), so each test cell is graded on its own.
# A learner who deletes or edits a locked test cell is graded with the original cell: nbgrader
# overwrites locked cells from the gradebook, and this adds deleted grade cells back.
c.OverwriteCells.add_missing_cells = True
# Huge printed output is cut in autograded notebooks and feedback.
c.LimitOutput.max_lines = 200
c.LimitOutput.max_traceback = 60
