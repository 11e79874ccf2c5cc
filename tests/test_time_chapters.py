"""scripts/time_chapters.py: which chapters a prefix selects, and a clear error for a bad one.
(The runs themselves are the script's job, not the suite's: they take minutes.)"""
import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("time_chapters", REPO / "scripts" / "time_chapters.py")
time_chapters = importlib.util.module_from_spec(spec)
spec.loader.exec_module(time_chapters)


def test_prefixes_select_chapters_in_order():
    every = time_chapters.chapters([])
    assert [p.name[:2] for p in every] == sorted(p.name[:2] for p in every)
    assert "00_setup_and_tour.ipynb" in [p.name for p in every]
    assert [p.name for p in time_chapters.chapters(["07", "01"])] == ["07_gpt.ipynb", "01_rnn.ipynb"]


def test_a_prefix_that_names_no_single_chapter_is_refused():
    with pytest.raises(SystemExit, match="chapters: expected a prefix naming one of .* got '0'"):
        time_chapters.chapters(["0"])
    with pytest.raises(SystemExit, match="got '99'"):
        time_chapters.chapters(["99"])


def test_rows_just_measured_replace_theirs_and_the_others_stay():
    old = ("| chapter | mode | wall s | CPU s | peak MB | result | measured | load |\n|---|---|---|---|---|---|---|---|\n"
           "| 01_rnn | fast | 14 | 13 | 460 | ok | 2026-12-01 | 0.1 → 0.2 |\n"
           "| 07_gpt | full | 506 | 500 | 700 | ok | 2026-12-01 | 1.0 → 1.0 |\n")
    new = {("01_rnn", "fast"): "| 01_rnn | fast | 15 | 14 | 470 | ok | 2026-12-03 | 0.0 → 0.0 |",
           ("00_setup_and_tour", "fast"): "| 00_setup_and_tour | fast | 10 | 10 | 433 | ok | 2026-12-03 | 0.0 → 0.0 |"}
    rows = time_chapters.merge_rows(old, new)
    assert rows == [new[("00_setup_and_tour", "fast")], new[("01_rnn", "fast")],
                    "| 07_gpt | full | 506 | 500 | 700 | ok | 2026-12-01 | 1.0 → 1.0 |"]
