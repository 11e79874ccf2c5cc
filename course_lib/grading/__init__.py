"""Check helpers for the graded exercises (docs/exercises.md).

``core`` holds the safe wrappers every chapter uses; ``chNN_name`` holds the check helpers of
chapter NN, one ``check_<exercise>`` per exercise, each diagnosing the usual mistakes. Import the
chapter module you need: ``from course_lib.grading import ch01_rnn as grading``.
"""
from .core import Feedback, call, checker, describe, expect_close, expect_tensor, truncate

__all__ = ["Feedback", "call", "checker", "describe", "expect_close", "expect_tensor", "truncate"]
