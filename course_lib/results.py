"""Headline numbers: each chapter writes what it measured, chapter 12 reads them all.

A chapter ends with one call::

    record("07", [Result(task="pydoc text, next character", model="GPT", family="decoder-only",
                         metric="val nats/char", value=1.374, higher_is_better=False,
                         params=433_152, cpu_seconds=135.8)])

which writes ``results/07_full.json`` (or ``07_fast.json`` in fast mode) under the repository, or
under ``COURSE_RESULTS_DIR`` when it is set (the test suite points it at a temporary folder).
:func:`gather` reads those files back; for a chapter that has not been run in this mode it falls
back to the numbers recorded on the course's test machine (``data/recorded_results.json``, made by
``scripts/record_results.py``), labelled ``source="recorded"`` so nobody mistakes them for theirs.
"""
from __future__ import annotations

import datetime
import json
import math
import os
import platform
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Optional, Sequence

from .utils import check_choice, fast_mode

ROOT = Path(__file__).resolve().parent.parent
RECORDED = ROOT / "data" / "recorded_results.json"
# the families chapter 12 compares; "baseline" = no learned sequence model (bigram, TF-IDF, MLP);
# "attention layer" = a measurement of attention itself (chapters 05, 11), whatever the family
FAMILIES = ("recurrent", "encoder-only", "decoder-only", "encoder-decoder", "convolutional", "baseline",
            "attention layer")
MODES = ("fast", "full")


@dataclass
class Result:
    task: str                       # what was learned, e.g. "dates -> ISO"
    model: str                      # e.g. "LSTM", "GPT", "TF-IDF + LR"
    family: str                     # one of FAMILIES
    metric: str                     # e.g. "test exact match", "val nats/char"
    value: float
    higher_is_better: bool
    params: Optional[int] = None    # trainable parameters (None for a count-free baseline)
    cpu_seconds: Optional[float] = None   # training CPU time (time.process_time), None if not timed
    note: str = ""                  # one short qualifier, e.g. "equal CPU time with the LSTM"

    def __post_init__(self):
        check_choice(self.family, "family", FAMILIES)
        for name in ("task", "model", "metric"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name}: expected a non-empty string, got {getattr(self, name)!r}")
        try:
            self.value = float(self.value)
        except (TypeError, ValueError):
            raise TypeError(f"value: expected a number, got {self.value!r}") from None
        if not math.isfinite(self.value):
            raise ValueError(f"value: expected a finite number, got {self.value}")
        if not isinstance(self.higher_is_better, bool):
            raise TypeError(f"higher_is_better: expected True or False, got {self.higher_is_better!r}")
        if self.params is not None:
            if isinstance(self.params, bool) or int(self.params) != self.params or self.params < 0:
                raise ValueError(f"params: expected a non-negative int or None, got {self.params!r}")
            self.params = int(self.params)
        if self.cpu_seconds is not None:
            self.cpu_seconds = float(self.cpu_seconds)
            if not self.cpu_seconds >= 0:
                raise ValueError(f"cpu_seconds: expected seconds >= 0 or None, got {self.cpu_seconds}")


def results_dir() -> Path:
    """Where chapters write: ``COURSE_RESULTS_DIR`` if set, else ``results/`` in the repository."""
    return Path(os.environ.get("COURSE_RESULTS_DIR") or ROOT / "results")


def _check_chapter(chapter: str) -> str:
    if not (isinstance(chapter, str) and len(chapter) == 2 and chapter.isdigit()):
        raise ValueError(f"chapter: expected a two-digit string such as '07', got {chapter!r}")
    return chapter


def record(chapter: str, results: Sequence[Result], directory: os.PathLike | str | None = None) -> Path:
    """Write this chapter's results for the current mode (replacing its earlier ones); returns
    the file. Prints one line per result, so the learner sees what chapter 12 will read."""
    _check_chapter(chapter)
    results = list(results)
    if not results or not all(isinstance(r, Result) for r in results):
        raise TypeError(f"results: expected a non-empty list of Result, got {results!r:.200}")
    mode = "fast" if fast_mode() else "full"
    directory = Path(directory or results_dir())
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{chapter}_{mode}.json"
    payload = {"chapter": chapter, "mode": mode,
               "written": datetime.datetime.now().isoformat(timespec="seconds"),
               "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}",
               "results": [asdict(r) for r in results]}
    path.write_text(json.dumps(payload, indent=1) + "\n")
    for r in results:
        print(f"recorded for chapter 12: {r.model:>18} | {r.task} | {r.metric} = {r.value:.4g}")
    return path


def rows_from(payload: dict, source: str) -> list[dict]:
    names = {f.name for f in fields(Result)}
    rows = []
    for item in payload["results"]:
        result = Result(**{k: v for k, v in item.items() if k in names})     # re-validated
        rows.append({"chapter": payload["chapter"], "mode": payload["mode"], "source": source,
                     "written": payload.get("written", ""), **asdict(result)})
    return rows


def read_recorded(path: os.PathLike | str | None = None) -> dict:
    """The test machine's numbers: {mode: {chapter: payload}} ({} when the file is missing)."""
    path = Path(path or RECORDED)
    return json.loads(path.read_text()) if path.exists() else {}


def gather(chapters: Sequence[str], mode: Optional[str] = None, directory: os.PathLike | str | None = None,
           recorded: os.PathLike | str | None = None) -> list[dict]:
    """One row per result of each chapter: this machine's file for ``mode`` (default: the current
    mode) when the chapter has been run, else the recorded one (``source`` says which). A chapter
    found in neither gives no rows; the caller can see which are missing from the ``chapter`` column."""
    mode = check_choice(mode or ("fast" if fast_mode() else "full"), "mode", MODES)
    directory = Path(directory or results_dir())
    stored = read_recorded(recorded).get(mode, {})
    rows = []
    for chapter in chapters:
        path = directory / f"{_check_chapter(chapter)}_{mode}.json"
        if path.exists():
            rows += rows_from(json.loads(path.read_text()), "this machine")
        elif chapter in stored:
            rows += rows_from(stored[chapter], "recorded")
    return rows


def head_to_head(rows: Sequence[dict]) -> list[dict]:
    """The winner of every comparison in ``rows``: results of one chapter, task and metric (the
    chapters give the models of such a group an equal budget), two models or more. Lower wins when
    the metric's ``higher_is_better`` is False. Returns one dict per group, in the rows' order:
    chapter, task, metric, winner, family, value, runner_up, runner_up_value, models (all of them,
    best first, as (model, value))."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["chapter"], row["task"], row["metric"]), []).append(row)
    duels = []
    for (chapter, task, metric), group in groups.items():
        if len(group) < 2:
            continue
        sign = -1.0 if group[0]["higher_is_better"] else 1.0
        if any(r["higher_is_better"] != group[0]["higher_is_better"] for r in group):
            raise ValueError(f"rows: chapter {chapter}, {task!r}, {metric!r} mixes higher- and lower-is-better")
        ranked = sorted(group, key=lambda r: sign * r["value"])
        best, second = ranked[0], ranked[1]
        duels.append({"chapter": chapter, "task": task, "metric": metric, "winner": best["model"],
                      "family": best["family"], "value": best["value"], "runner_up": second["model"],
                      "runner_up_value": second["value"], "models": [(r["model"], r["value"]) for r in ranked]})
    return duels
