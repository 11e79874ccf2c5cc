"""Shared by the tests of the chapters' grading helpers (tests/test_grading_chNN.py)."""
import pytest


def fails_with(check, fn, pattern, **kwargs):
    """Run ``check`` on a learner's ``fn``; it must fail with feedback matching ``pattern`` and
    without a traceback from inside the checker. Returns the feedback."""
    with pytest.raises(AssertionError, match=pattern) as info:
        check(fn, **kwargs)
    assert "Traceback" not in str(info.value)
    return str(info.value)


# Two wrong answers to chapter 01 that reach into the check calling them. Both pass when the check
# runs in the learner's own process (tests/test_grading_ch01.py shows it); graded, the checks run in
# the grader's process (course_lib.grading.remote) and both score 0 (tests/test_nbgrader_roundtrip.py).
PATCHES_THE_REFERENCE = '''
def generate(model, prompt_ids, n_new, temperature, generator):
    import sys
    answer = list(prompt_ids) + [0] * n_new           # wrong: never samples
    checks = sys.modules.get("course_lib.grading.ch01_rnn")
    if checks is not None:                             # the calling check's reference now agrees
        checks.sample = lambda *args, **kwargs: list(answer)
    return answer
'''
REWRITES_THE_MEASUREMENT = '''
def predicted_grad_norm(rho, d_hidden, distance):
    import sys
    frame = sys._getframe(1)
    while frame is not None:                           # up to the check: overwrite what it measured
        measured = frame.f_locals.get("measured")
        if isinstance(measured, list) and distance < len(measured):
            measured[distance] = 1.0
            break
        frame = frame.f_back
    return 1.0                                         # wrong for every case

def norm_with_inputs():
    raise NotImplementedError()
'''
