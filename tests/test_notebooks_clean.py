"""Notebooks are committed clean: no outputs, no execution counts, minimal metadata."""
import json
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def tracked_notebooks():
    listed = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=REPO, capture_output=True, text=True)
    names = listed.stdout.split() if listed.returncode == 0 else []
    # outside a git checkout (e.g. an unpacked archive), check every notebook on disk
    return sorted(names) or sorted(str(p.relative_to(REPO)) for p in (REPO / "notebooks").rglob("*.ipynb")
                                   if ".ipynb_checkpoints" not in p.parts)


@pytest.mark.parametrize("name", tracked_notebooks())
def test_notebook_is_committed_clean(name):
    notebook = json.loads((REPO / name).read_text(encoding="utf-8"))
    dirty = [i for i, cell in enumerate(notebook["cells"])
             if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count"))]
    assert not dirty, f"{name}: cells {dirty} have outputs or execution counts; clear them before committing"
    extra = set(notebook["metadata"]) - {"kernelspec", "language_info"}
    assert not extra, f"{name}: notebook metadata {sorted(extra)} should not be committed"


def test_every_chapter_has_the_closing_sections():
    for path in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        text = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"]
                         if c["cell_type"] == "markdown")
        for heading in ("## Summary", "## Expected output", "## Exercises"):
            assert heading in text, f"{path.name} lacks the section {heading!r}"
        assert "fast mode" in text.split("## Expected output")[1], f"{path.name}: the card should give the fast-mode time"
