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
