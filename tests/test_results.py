"""course_lib.results: what chapters write, what chapter 12 reads, and the recorded fallback."""
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib.results import (FAMILIES, RECORDED, Result, gather, head_to_head, read_recorded, record,
                                rows_from)

REPO = Path(__file__).resolve().parents[1]


def lm(model, value, family="decoder-only", **kw):
    return Result("pydoc text", model, family, "val nats/char", value, higher_is_better=False, **kw)


def test_record_then_gather_prefers_this_machine_and_falls_back_to_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")
    path = record("07", [lm("GPT", 1.4, params=10, cpu_seconds=2.5)], directory=tmp_path)
    assert path.name == "07_fast.json"
    recorded = tmp_path / "recorded.json"
    other = json.loads(path.read_text())
    recorded.write_text(json.dumps({"fast": {"07": {**other, "results": [{**other["results"][0], "value": 9.0}]},
                                             "08": {**other, "chapter": "08"}}}))
    rows = gather(["07", "08", "09"], directory=tmp_path, recorded=recorded)
    assert [(r["chapter"], r["source"], r["value"]) for r in rows] == [("07", "this machine", 1.4), ("08", "recorded", 1.4)]
    assert rows[0]["params"] == 10 and rows[0]["cpu_seconds"] == 2.5 and rows[0]["mode"] == "fast"
    # the other mode has nothing here, and nothing recorded
    assert gather(["07"], mode="full", directory=tmp_path, recorded=recorded) == []


def test_record_replaces_the_chapters_earlier_results(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_FAST", raising=False)
    record("01", [lm("RNN", 2.0, "recurrent")], directory=tmp_path)
    record("01", [lm("RNN", 1.5, "recurrent")], directory=tmp_path)
    rows = gather(["01"], directory=tmp_path, recorded=tmp_path / "none.json")
    assert [(r["value"], r["mode"]) for r in rows] == [(1.5, "full")]


def test_head_to_head_ranks_by_the_metrics_direction():
    rows = [{"chapter": "07", **r.__dict__} for r in (lm("GPT", 1.37), lm("LSTM", 1.24, "recurrent"), lm("bigram", 2.5, "baseline"))]
    rows.append({"chapter": "07", **Result("recall", "GPT", "decoder-only", "accuracy", 1.0, True).__dict__})
    rows.append({"chapter": "07", **Result("recall", "LSTM", "recurrent", "accuracy", 0.06, True).__dict__})
    rows.append({"chapter": "08", **lm("alone", 1.0).__dict__})             # one model: no comparison
    duels = head_to_head(rows)
    assert [(d["task"], d["winner"], d["runner_up"]) for d in duels] == [("pydoc text", "LSTM", "GPT"), ("recall", "GPT", "LSTM")]
    assert duels[0]["models"] == [("LSTM", 1.24), ("GPT", 1.37), ("bigram", 2.5)]
    bad = rows[:1] + [{**rows[1], "higher_is_better": True}]
    with pytest.raises(ValueError, match="mixes higher- and lower-is-better"):
        head_to_head(bad)


@pytest.mark.parametrize("change, message", [
    (dict(family="transformer"), "family"),
    (dict(value="high"), "value: expected a number"),
    (dict(value=float("nan")), "value: expected a finite number"),
    (dict(higher_is_better=1), "higher_is_better"),
    (dict(params=-3), "params"),
    (dict(params=2.5), "params"),
    (dict(cpu_seconds=-1.0), "cpu_seconds"),
    (dict(task=""), "task"),
])
def test_bad_results_are_refused_by_name(change, message):
    args = dict(task="t", model="m", family="recurrent", metric="acc", value=0.5, higher_is_better=True)
    with pytest.raises((TypeError, ValueError), match=message):
        Result(**{**args, **change})


def test_bad_chapter_and_empty_results_are_refused(tmp_path):
    with pytest.raises(ValueError, match="chapter: expected a two-digit string"):
        record("7", [lm("GPT", 1.0)], directory=tmp_path)
    with pytest.raises(TypeError, match="results: expected a non-empty list of Result"):
        record("07", [], directory=tmp_path)
    with pytest.raises(ValueError, match="mode"):
        gather(["07"], mode="medium", directory=tmp_path)


def test_the_recorded_numbers_cover_every_chapter_in_both_modes():
    recorded = read_recorded()
    assert RECORDED.exists() and set(recorded) == {"fast", "full"}
    digest = hashlib.sha256(RECORDED.read_bytes()).hexdigest()
    assert digest in (REPO / "data" / "README.md").read_text(), "data/README.md lists another sha256"
    for mode, chapters in recorded.items():
        assert sorted(chapters) == [f"{n:02d}" for n in range(1, 12)], mode
        for chapter, payload in chapters.items():
            rows = rows_from(payload, "recorded")           # every row valid
            assert rows and all(r["mode"] == mode and r["chapter"] == chapter for r in rows)
            assert {r["family"] for r in rows} <= set(FAMILIES)


def test_record_results_script_copies_a_results_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")
    source = tmp_path / "res"
    record("05", [lm("attention", 0.9)], directory=source)
    out = tmp_path / "recorded.json"
    out.write_text(json.dumps({"full": {"05": json.loads((source / "05_fast.json").read_text())}}))
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "record_results.py"), "--from", str(source),
                           "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    stored = json.loads(out.read_text())
    assert set(stored) == {"fast", "full"} and stored["fast"]["05"]["results"][0]["value"] == 0.9
    empty = subprocess.run([sys.executable, str(REPO / "scripts" / "record_results.py"), "--from", str(tmp_path / "none"),
                            "--out", str(out)], capture_output=True, text=True)
    assert empty.returncode == 1 and "no results found" in empty.stderr
