"""Shared by the tests of the chapters' grading helpers (tests/test_grading_chNN.py)."""
import pytest


def fails_with(check, fn, pattern, **kwargs):
    """Run ``check`` on a learner's ``fn``; it must fail with feedback matching ``pattern`` and
    without a traceback from inside the checker. Returns the feedback."""
    with pytest.raises(AssertionError, match=pattern) as info:
        check(fn, **kwargs)
    assert "Traceback" not in str(info.value)
    return str(info.value)
