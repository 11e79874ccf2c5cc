"""Run chapters in fast and/or full mode and write a table of what each run cost.

    .venv/bin/python scripts/time_chapters.py --mode fast                 # every chapter, fast mode
    .venv/bin/python scripts/time_chapters.py 07 09 --mode both --out docs/timings.md

Each run is ``jupyter nbconvert --execute`` of the chapter into a scratch folder (the committed
notebook is not touched), in a fresh wrapper process, so that the numbers are that run's alone:

- wall: seconds from start to end (``time.perf_counter``); it grows when other programs share
  the cores, which is why the load average at the start and end is printed beside it;
- CPU: user + system seconds of every process of the run (the kernel included), from
  ``resource.getrusage(RUSAGE_CHILDREN)``; on the 2-core test machine it grows too when the other
  core is busy (chapter 01 in fast mode: 12.7 s quiet, 27 s beside another chapter), so compare
  runs made under the same load;
- peak memory: the largest resident set of any process of the run (``ru_maxrss``), in MB,
  which is the kernel's.

``deploy/jupyterhub/measure_kernel.py`` measures one chapter as the hub starts its kernel (in
process, sampling the kernel's memory, ``OMP_WAIT_POLICY=PASSIVE``) for the hub's sizing table; this
script measures every chapter as ``./course`` runs it, from outside, for ``docs/timings.md``.

Chapters run one at a time with the course's thread policy (``OMP_NUM_THREADS=1`` unless set),
as ``./course`` does. A failed run is listed with its exit status; the table is written either way.
The table is updated in place: a row for a chapter and mode just measured replaces the old one,
the other rows stay (each with the date and load average of its own run), so that a long full-mode
run can be done a few chapters at a time.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"

# the wrapper: runs the command, then prints the rusage of everything it waited for
WRAPPER = r"""
import json, resource, subprocess, sys, time
start = time.perf_counter()
rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
wall = time.perf_counter() - start
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": rc, "wall": wall, "cpu": r.ru_utime + r.ru_stime, "peak_mb": r.ru_maxrss / 1024}))
"""


def chapters(selected: list[str]) -> list[Path]:
    found = sorted(p for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if not selected:
        return found
    out = []
    for key in selected:
        hits = [p for p in found if p.name.startswith(key)]
        if len(hits) != 1:
            raise SystemExit(f"chapters: expected a prefix naming one of {[p.name for p in found]}, got {key!r}")
        out.append(hits[0])
    return out


def run_one(notebook: Path, mode: str, timeout: int, scratch: Path) -> dict:
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    env.pop("COURSE_FAST", None)
    if mode == "fast":
        env["COURSE_FAST"] = "1"
    jupyter = str(Path(sys.executable).with_name("jupyter"))
    command = [jupyter, "nbconvert", "--to", "notebook", "--execute", str(notebook),
               f"--ExecutePreprocessor.timeout={timeout}", "--output-dir", str(scratch),
               "--output", f"{notebook.stem}_{mode}"]
    done = subprocess.run([sys.executable, "-c", WRAPPER, *command], cwd=NOTEBOOKS, env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def merge_rows(existing: str, measured: dict) -> list[str]:
    """The table's rows, sorted by chapter and mode: those of ``existing`` (a table this script
    wrote) with the rows just ``measured`` ({(chapter, mode): row}) replacing theirs."""
    rows = {}
    for line in existing.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 8 and cells[1] in ("fast", "full"):
            rows[(cells[0], cells[1])] = line
    rows.update(measured)
    return [rows[key] for key in sorted(rows)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="*", help="chapter prefixes, e.g. 07 09 (default: all)")
    parser.add_argument("--mode", choices=("fast", "full", "both"), default="fast")
    parser.add_argument("--out", default=str(REPO / "docs" / "timings.md"), help="the Markdown table to write")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell (default 3600)")
    args = parser.parse_args()
    if args.timeout <= 0:
        raise SystemExit(f"--timeout: expected a positive number of seconds, got {args.timeout}")
    modes = ("fast", "full") if args.mode == "both" else (args.mode,)
    rows, load_start = [], os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as scratch:
        for notebook in chapters(args.chapters):
            for mode in modes:
                r = run_one(notebook, mode, args.timeout, Path(scratch))
                rows.append((notebook.stem, mode, r))
                status = "ok" if r["rc"] == 0 else f"FAILED (exit {r['rc']})"
                print(f"{notebook.stem:32} {mode:5} wall {r['wall']:7.1f} s  CPU {r['cpu']:7.1f} s  "
                      f"peak {r['peak_mb']:6.0f} MB  {status}", flush=True)
    measured = {(name, mode): f"| {name} | {mode} | {r['wall']:.0f} | {r['cpu']:.0f} | {r['peak_mb']:.0f} | "
                f"{'ok' if r['rc'] == 0 else 'failed (exit %d)' % r['rc']} | {date.today()} | "
                f"{load_start:.1f} → {os.getloadavg()[0]:.1f} |" for name, mode, r in rows}
    table = merge_rows(Path(args.out).read_text() if Path(args.out).exists() else "", measured)
    lines = [
        "# Chapter timings",
        "",
        "Written by `python scripts/time_chapters.py [chapters] --mode fast|full|both`, one chapter at a time "
        f"(the last run: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '1')}). Wall: seconds for the "
        "whole notebook, kernel start included; it grows when other programs share the cores, hence the load "
        "average (1-minute, start → end of that run). CPU: user + system seconds of all the run's processes; "
        "on the 2-core test machine it grows with load too (chapter 01 fast: 12.7 s quiet, 27 s beside another "
        "chapter). Peak: the largest resident memory of any of them (the kernel's), in MB.",
        "",
        "| chapter | mode | wall s | CPU s | peak MB | result | measured | load |",
        "|---|---|---|---|---|---|---|---|",
        *table,
    ]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
