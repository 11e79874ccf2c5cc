"""Copy this machine's chapter results into ``data/recorded_results.json``, the numbers chapter 12
shows for a chapter the learner has not run (labelled "recorded" there).

    .venv/bin/python scripts/time_chapters.py --mode both      # every chapter writes results/NN_MODE.json
    .venv/bin/python scripts/record_results.py                 # results/ -> data/recorded_results.json
    .venv/bin/python scripts/record_results.py --from /tmp/res --mode fast 05 11

Only the chapters and modes found are replaced; the others keep their recorded numbers. Each entry
keeps the date and machine of its run. Run it on the course's test machine (2 cores, one PyTorch
thread), after full runs of the chapters, so that the recorded numbers are the ones the cards quote.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from course_lib.results import MODES, RECORDED, rows_from, read_recorded, results_dir  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", help="two-digit chapters, e.g. 07 09 (default: every file found)")
    parser.add_argument("--from", dest="source", default=None, help="results folder (default: results/ or COURSE_RESULTS_DIR)")
    parser.add_argument("--mode", choices=(*MODES, "both"), default="both")
    parser.add_argument("--out", default=str(RECORDED))
    args = parser.parse_args(argv)
    source = Path(args.source) if args.source else results_dir()
    modes = MODES if args.mode == "both" else (args.mode,)
    recorded = read_recorded(args.out)
    copied = []
    for mode in modes:
        for path in sorted(source.glob(f"[0-9][0-9]_{mode}.json")):
            chapter = path.name[:2]
            if args.chapters and chapter not in args.chapters:
                continue
            payload = json.loads(path.read_text())
            rows_from(payload, "recorded")                 # validates every result before it is kept
            recorded.setdefault(mode, {})[chapter] = payload
            copied.append(f"{chapter} {mode}")
    if not copied:
        print(f"no results found in {source} for {', '.join(modes)}", file=sys.stderr)
        return 1
    ordered = {m: dict(sorted(recorded[m].items())) for m in MODES if m in recorded}
    Path(args.out).write_text(json.dumps(ordered, indent=1) + "\n")
    print(f"recorded {len(copied)}: {', '.join(copied)} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
