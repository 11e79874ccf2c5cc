"""The order in which `./course test`'s two workers take the test files: longest first.

pytest-xdist with `--dist loadfile` hands each worker a whole file at a time (a notebook's cells,
a module's shared fixture stay together, in order) and a new one when it is nearly done. Taken
longest first, the short files fill the gaps at the end and neither worker waits long for the
other (longest-processing-time-first scheduling). Files not listed follow in collection order.
`./course` passes `--no-loadscope-reorder` so that xdist keeps this order instead of its own
(by number of tests). The seconds are one worker's share in a clean-clone run of the suite on the
2-core test machine; they only rank the files, nothing asserts them.
"""
from __future__ import annotations

import os
import tempfile

SLOWEST_FIRST = (
    "tests/test_nbgrader_roundtrip.py",      # ~250-280 s: 14 assignments, 35 hand-ins autograded
    "notebooks/04_attention.ipynb",          # ~150 s
    "notebooks/02_lstm_gru.ipynb",           # ~145 s
    "notebooks/07_gpt.ipynb",                # ~130 s
    "notebooks/09_t5.ipynb",                 # ~110 s
    "tests/test_jupyterhub.py",              # ~85-120 s: a hub, a proxy, two students and an instructor
    "notebooks/06_transformer.ipynb",
    "notebooks/08_bert.ipynb",
    "notebooks/12_choosing_an_architecture.ipynb",   # ~65 s, most of it the three families
    "tests/test_browser.py",
    "notebooks/10_vit.ipynb",
    "tests/test_self_check.py",
    "notebooks/03_seq2seq.ipynb",
    "notebooks/05_self_attention.ipynb",
    "tests/test_under_load.py",
    "notebooks/13_scaling_out.ipynb",
    "notebooks/11_efficient_attention.ipynb",
    "tests/test_distributed.py",
    "notebooks/01_rnn.ipynb",
)


# Chapters that a test already executes whole, cell by cell, failing on any error, under harder
# conditions than nbval's plain run: tests/test_under_load.py runs chapter 01 beside a busy process,
# tests/test_browser.py runs chapters 00 and 05 in JupyterLab in a real browser. When that test is
# collected, nbval's second execution of the chapter adds only time (about 10-25 s each).
EXECUTED_ELSEWHERE = {"notebooks/00_setup_and_tour.ipynb": "tests/test_browser.py",
                      "notebooks/01_rnn.ipynb": "tests/test_under_load.py",
                      "notebooks/05_self_attention.ipynb": "tests/test_browser.py"}


def pytest_configure(config):
    # the chapters write their headline numbers (course_lib.results) for chapter 12: in the suite,
    # into a scratch folder that the workers share, never into the learner's results/
    os.environ.setdefault("COURSE_RESULTS_DIR", tempfile.mkdtemp(prefix="course-results-"))


def pytest_collection_modifyitems(config, items):
    files = {item.nodeid.split("::")[0] for item in items}
    twice = {nb for nb, test in EXECUTED_ELSEWHERE.items() if test in files}
    if twice:
        dropped = [item for item in items if item.nodeid.split("::")[0] in twice]
        items[:] = [item for item in items if item.nodeid.split("::")[0] not in twice]
        config.hook.pytest_deselected(items=dropped)
    rank = {path: i for i, path in enumerate(SLOWEST_FIRST)}
    # a stable sort: the tests of one file keep their order
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))
