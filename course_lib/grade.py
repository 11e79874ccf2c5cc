"""``python -m course_lib.grade``: the learner's self-check. The command lives in
:mod:`course_lib.grading.cli`; this module keeps the short name working."""
import sys

from .grading.cli import (DEFAULT_TIMEOUT, Report, TestResult, cell_seconds, exercise_key, format_report, grade,
                          main, student_copy)

__all__ = ["DEFAULT_TIMEOUT", "Report", "TestResult", "cell_seconds", "exercise_key", "format_report", "grade",
           "main", "student_copy"]

if __name__ == "__main__":
    sys.exit(main())
