"""Train the chapters' long full-mode models and write their checkpoints (``checkpoints/NAME.pt``
and their entries in ``checkpoints/manifest.json``).

    .venv/bin/python scripts/make_checkpoints.py          # every chapter that has a checkpoint cell
    .venv/bin/python scripts/make_checkpoints.py 06 07    # only these
    .venv/bin/python scripts/make_checkpoints.py --check  # load them instead, in full mode: every
                                                          # chapter must reproduce its recorded metrics

Each chapter is executed in full mode with ``COURSE_WRITE_CHECKPOINTS=1``: its own training cell
(``course_lib.checkpoints.trained``) trains the models and writes them, and the evaluation after it
(``checkpoints.confirm``) records the metrics that loading must reproduce. There is no second copy
of any training recipe here. Chapters run one at a time, as ``scripts/time_chapters.py`` runs them
(whose table this does not touch); about an hour for all of them on the 2-core test machine.
(``scripts/make_bert_checkpoint.py`` makes chapter 08's pretrained BERT, a library recipe.)
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from time_chapters import NOTEBOOKS, chapters, run_one  # noqa: E402


def with_checkpoints() -> list[Path]:
    """The chapters whose code calls ``checkpoints.trained``."""
    return [p for p in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")) if "checkpoints.trained(" in p.read_text()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="*", help="chapter prefixes, e.g. 06 07 (default: every chapter with a checkpoint)")
    parser.add_argument("--check", action="store_true",
                        help="run the chapters with COURSE_USE_CHECKPOINTS=1 instead (nothing is written)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell (default 3600)")
    args = parser.parse_args(argv)
    eligible = with_checkpoints()
    selected = chapters(args.chapters) if args.chapters else eligible
    unknown = [p.name for p in selected if p not in eligible]
    if unknown:
        raise SystemExit(f"chapters: {unknown} write no checkpoint; expected some of {[p.name[:2] for p in eligible]}")
    switch = "COURSE_USE_CHECKPOINTS" if args.check else "COURSE_WRITE_CHECKPOINTS"
    os.environ.pop("COURSE_USE_CHECKPOINTS", None)
    os.environ.pop("COURSE_WRITE_CHECKPOINTS", None)
    os.environ[switch] = "1"
    failed = 0
    with tempfile.TemporaryDirectory() as scratch:
        for notebook in selected:
            r = run_one(notebook, "full", args.timeout, Path(scratch))
            failed += r["rc"] != 0
            print(f"{notebook.stem:32} {switch}=1  {'ok' if r['rc'] == 0 else 'FAILED'}  wall {r['wall']:.0f} s",
                  flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
