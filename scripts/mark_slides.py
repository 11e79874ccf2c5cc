"""Mark the chapters for slides: `metadata.slideshow.slide_type` on every cell, by one rule.

    .venv/bin/python scripts/mark_slides.py              # mark notebooks/NN_*.ipynb (cells already marked are kept)
    .venv/bin/python scripts/mark_slides.py --force      # apply the rule to every cell again
    .venv/bin/python scripts/mark_slides.py --check      # exit 1 if a chapter would change (changes nothing)
    .venv/bin/python scripts/mark_slides.py notebooks/05_self_attention.ipynb

The rule (`slide_type`), which scripts/build_slides.py also applies in memory to any cell that
has no slide type of its own, so a chapter gives the same deck marked or not:
- a markdown cell that opens with a `#` or `##` heading starts a new slide (reveal.js moves right);
- any other markdown cell starts a subslide (reveal.js moves down): the prose, its equation and the
  code cell right below it share one slide, as the chapters' rhythm prose -> equation -> code runs;
- a code cell goes with the cell above it ("-"), unless that cell is also code: then it starts a
  subslide, so that no slide holds more than one markdown cell and one code cell;
- raw cells go with the cell above ("-").
The build also splits a markdown cell before every `#`, `##` or `###` heading inside it (in memory
only), so the Summary, Expected output and Exercises sections, which share a cell in most chapters,
become slides of their own; `mark_slides.py` never splits or edits a cell's text.

The file keeps the format Jupyter writes (indent 1, keys sorted, non-ASCII as is, a final newline)
and only cells' `metadata.slideshow` changes, so `tests/test_notebooks_clean.py` still passes. Run
again, it changes nothing.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SLIDE_TYPES = ("slide", "subslide", "fragment", "-", "skip", "notes")
HEADING = re.compile(r"^(#{1,6})\s")


def chapters() -> list[Path]:
    return sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def source(cell: dict) -> str:
    text = cell.get("source", "")
    return "".join(text) if isinstance(text, list) else text


def heading_level(text: str) -> int:
    """The level of the heading a markdown text opens with (1 for `# `), or 0 if none."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    match = HEADING.match(first)
    return len(match.group(1)) if match else 0


def slide_type(cell: dict, previous: dict | None) -> str:
    """The course's rule: the slide type of `cell`, given the cell just above it (None for the first)."""
    if cell["cell_type"] == "markdown":
        return "slide" if 1 <= heading_level(source(cell)) <= 2 else "subslide"
    if cell["cell_type"] == "code" and previous is not None and previous["cell_type"] == "code":
        return "subslide"
    return "-"


def mark(notebook: dict, force: bool = False) -> int:
    """Give every cell a slide type by the rule (keeping the ones it has unless `force`); returns how
    many cells changed."""
    changed, previous = 0, None
    for cell in notebook["cells"]:
        metadata = cell.setdefault("metadata", {})
        slideshow = metadata.get("slideshow") if isinstance(metadata.get("slideshow"), dict) else {}
        if force or slideshow.get("slide_type") not in SLIDE_TYPES:
            wanted = slide_type(cell, previous)
            if slideshow.get("slide_type") != wanted:
                metadata["slideshow"] = {**slideshow, "slide_type": wanted}
                changed += 1
        previous = cell
    return changed


def dumps(notebook: dict) -> str:
    """The notebook as Jupyter (nbformat) writes it."""
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def mark_file(path: Path, force: bool = False, write: bool = True) -> int:
    """Mark one notebook file; returns the number of cells whose slide type changed."""
    raw = path.read_text(encoding="utf-8")
    notebook = json.loads(raw)
    changed = mark(notebook, force=force)
    text = dumps(notebook)
    if write and text != raw:
        path.write_text(text, encoding="utf-8")
    return changed if text != raw else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to mark (default: notebooks/NN_*.ipynb)")
    parser.add_argument("--force", action="store_true", help="apply the rule to cells that already have a slide type")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook would change")
    args = parser.parse_args(argv)
    paths = args.notebooks or chapters()
    pending = 0
    for path in paths:
        n = mark_file(path, force=args.force, write=not args.check)
        pending += n > 0
        if n:
            print(f"{path}: {n} cells {'would change' if args.check else 'marked'}")
    if not pending:
        print(f"{len(paths)} notebooks: nothing to change")
    return 1 if args.check and pending else 0


if __name__ == "__main__":
    sys.exit(main())
