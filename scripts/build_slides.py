"""Build reveal.js slides from the chapters, to open offline (file://, no network).

    .venv/bin/python scripts/build_slides.py                    # every chapter -> slides/
    .venv/bin/python scripts/build_slides.py 05 07 --out /tmp/deck   # chapters 05 and 07 only

Each chapter `notebooks/NN_name.ipynb` becomes `slides/NN_name.slides.html`, built by nbconvert's
SlidesExporter from the committed notebook as it is (nothing is executed) with the course's template
`course_settings/slides/course_reveal/`, which extends nbconvert's reveal template. nbconvert's own
template loads reveal.js, RequireJS, jQuery and MathJax from CDNs and shows raw LaTeX offline; here
every file a deck loads sits in `slides/assets/`, copied from the exact npm packages below:

| npm package | version | licence | what the decks use |
|---|---|---|---|
| reveal.js | 6.0.2 | MIT | dist/reveal.js, dist/reveal.css, dist/theme/<theme>.css, dist/plugin/notes.js |
| mathjax | 3.2.2 | Apache-2.0 | es5/tex-chtml-full.js and its fonts, es5/output/chtml/fonts/woff-v2/ |

Each package's LICENSE file is copied with it. RequireJS, jQuery and Mermaid are not needed: the
template loads reveal.js with plain script tags and the chapters have no outputs. npm fetches the
packages once into `.venv/slides-assets/` (git ignores it; `npm install --ignore-scripts`, checked
against the sha512 integrity pinned below); later builds reuse them and need no network.

The slide structure is the rule of `scripts/mark_slides.py`: a cell's own
`metadata.slideshow.slide_type` wins, and a cell without one gets the rule's type in memory, so a
chapter gives the same deck marked or not. Markdown cells are also split (in memory) before each
`#`, `##` or `###` heading inside them, so Summary, Expected output and Exercises are slides of
their own. How to present and print: docs/slides.md.
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mark_slides import HEADING, SLIDE_TYPES, heading_level, slide_type, source  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ASSET_CACHE = REPO / ".venv" / "slides-assets"       # npm's install prefix, reused between builds
TEMPLATES = REPO / "course_settings" / "slides"       # holds the template course_reveal/
OUT = REPO / "slides"
THEME = "white"   # reveal.js themes that fetch Google fonts (beige, night, simple, ...) are refused below

# npm package -> (version, sha512 integrity from the registry, files the decks load)
PACKAGES = {
    "reveal.js": ("6.0.2",
                  "sha512-JYIg5D9aoxoaLeb84O+OvAwsKWdIavVgEDScxtYEXFCT6t6TQrhNtSgogcjdCpdLsWglhJn3zyE3fUOwiH5KEg==",
                  ["LICENSE", "dist/reveal.js", "dist/reveal.css", "dist/plugin/notes.js"]),
    "mathjax": ("3.2.2",
                "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==",
                ["LICENSE", "es5/tex-chtml-full.js", "es5/output/chtml/fonts/woff-v2"]),
}
LICENCES = {"reveal.js": "MIT", "mathjax": "Apache-2.0"}
REVEAL_URL_PREFIX = "assets/reveal.js"                  # relative to the deck
MATHJAX_URL = "assets/mathjax/es5/tex-chtml-full.js"


class AssetsUnavailable(RuntimeError):
    """npm is missing or could not fetch the pinned packages (offline, registry unreachable), or a
    file the decks need is not there (a theme that does not exist or loads fonts from the web)."""


def installed_version(node_modules: Path, name: str) -> str | None:
    try:
        return json.loads((node_modules / name / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def fetch_assets(cache: Path = ASSET_CACHE) -> Path:
    """The pinned npm packages, installed into `cache` on first use; returns its node_modules."""
    node_modules = cache / "node_modules"
    if all(installed_version(node_modules, name) == version for name, (version, _, _) in PACKAGES.items()):
        return node_modules
    npm = shutil.which("npm")
    if npm is None:
        raise AssetsUnavailable("the slides' reveal.js and MathJax come from npm, which is not installed: "
                                "`sudo apt-get install nodejs npm` (Debian/Ubuntu), then build again "
                                f"(the packages are fetched once into {cache})")
    cache.mkdir(parents=True, exist_ok=True)
    specs = [f"{name}@{version}" for name, (version, _, _) in PACKAGES.items()]
    done = subprocess.run([npm, "install", "--prefix", str(cache), "--no-audit", "--no-fund",
                           "--ignore-scripts", "--save-exact", *specs],
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0 or not all(installed_version(node_modules, n) == v for n, (v, _, _) in PACKAGES.items()):
        raise AssetsUnavailable(f"`npm install {' '.join(specs)}` failed (offline?):\n"
                                f"{(done.stdout + done.stderr)[-2000:]}")
    lock = json.loads((cache / "package-lock.json").read_text())["packages"]
    for name, (version, integrity, _) in PACKAGES.items():
        got = lock.get(f"node_modules/{name}", {}).get("integrity")
        if got != integrity:
            shutil.rmtree(node_modules / name, ignore_errors=True)
            raise AssetsUnavailable(f"{name}@{version}: integrity {got} is not the pinned {integrity}")
    return node_modules


def copy_assets(out: Path, node_modules: Path, theme: str = THEME) -> list[Path]:
    """Copy what the decks load into out/assets/<package>/ (same paths as in the package)."""
    copied = []
    for name, (_, _, files) in PACKAGES.items():
        files = files + ([f"dist/theme/{theme}.css"] if name == "reveal.js" else [])
        target_root = out / "assets" / name
        shutil.rmtree(target_root, ignore_errors=True)     # no stale files of an older version
        for relative in files:
            source_path, target = node_modules / name / relative, target_root / relative
            if not source_path.exists():
                raise AssetsUnavailable(f"{name}@{PACKAGES[name][0]} has no {relative}")
            target.parent.mkdir(parents=True, exist_ok=True)
            if source_path.is_dir():
                shutil.copytree(source_path, target)
            else:
                shutil.copy2(source_path, target)
            copied.append(target)
    theme_css = (out / "assets" / "reveal.js" / "dist" / "theme" / f"{theme}.css").read_text()
    external = re.findall(r"(?:@import|url\()\s*['\"]?(?:https?:)?//[^'\")\s]+", theme_css)
    if external:
        raise AssetsUnavailable(f"reveal.js theme {theme!r} loads {external[0]!r} from the network; pick one "
                                "that does not: white, white-contrast, black, black-contrast, dracula or serif")
    notice = ["Files copied from npm packages by scripts/build_slides.py; each package's LICENSE is beside it.", ""]
    notice += [f"- {name} {version} ({LICENCES[name]}): https://www.npmjs.com/package/{name}/v/{version}"
               for name, (version, _, _) in PACKAGES.items()]
    (out / "assets" / "NOTICE.md").write_text("\n".join(notice) + "\n")
    return copied


# -- the slide structure ----------------------------------------------------------------------

def split_at_headings(text: str) -> list[str]:
    """A markdown text cut before each level 1-3 heading that is not its first line (never inside
    a fenced code block)."""
    parts, current, fence = [], [], None
    for line in text.splitlines(keepends=True):
        stripped = line.lstrip()
        if fence is None and stripped[:3] in ("```", "~~~"):
            fence = stripped[:3]
        elif fence is not None and stripped.startswith(fence):
            fence = None
        elif fence is None and HEADING.match(line) and heading_level(line) <= 3 and "".join(current).strip():
            parts.append("".join(current))
            current = []
        current.append(line)
    parts.append("".join(current))
    return [part.rstrip("\n") for part in parts if part.strip()]


def slide_notebook(notebook: dict) -> dict:
    """A copy of the notebook as the slides show it: markdown split at headings, and every cell with
    a slide type (its own, else the rule's)."""
    notebook = copy.deepcopy(notebook)
    cells, previous = [], None
    for cell in notebook["cells"]:
        pieces = [cell]
        if cell["cell_type"] == "markdown":
            texts = split_at_headings(source(cell))
            if len(texts) > 1:
                pieces = []
                for i, text in enumerate(texts):
                    piece = copy.deepcopy(cell) if i == 0 else {
                        "cell_type": "markdown", "metadata": {}, "source": text}
                    piece["source"] = text
                    if i and "id" in cell:
                        piece["id"] = f"{cell['id']}-{i}"[:64]
                    if i and "attachments" in cell:
                        piece["attachments"] = cell["attachments"]
                    pieces.append(piece)
        for piece in pieces:
            metadata = piece.setdefault("metadata", {})
            own = metadata["slideshow"].get("slide_type") if isinstance(metadata.get("slideshow"), dict) else None
            if own not in SLIDE_TYPES:
                metadata["slideshow"] = {"slide_type": slide_type(piece, previous)}
            cells.append(piece)
            previous = piece
    notebook["cells"] = cells
    title = next((source(c).splitlines()[0].lstrip("#").strip() for c in cells
                  if c["cell_type"] == "markdown" and heading_level(source(c)) == 1), None)
    if title:
        notebook.setdefault("metadata", {})["title"] = title.replace("`", "")
    return notebook


# -- the export -------------------------------------------------------------------------------

def exporter(theme: str = THEME):
    """nbconvert's SlidesExporter with the course's template and every URL pointing at assets/."""
    from nbconvert import SlidesExporter
    from traitlets.config import Config

    c = Config()
    c.SlidesExporter.extra_template_basedirs = [str(TEMPLATES)]
    c.SlidesExporter.template_name = "course_reveal"
    c.SlidesExporter.reveal_url_prefix = REVEAL_URL_PREFIX
    c.SlidesExporter.mathjax_url = MATHJAX_URL
    c.SlidesExporter.reveal_theme = theme
    c.SlidesExporter.reveal_number = "c/t"
    c.SlidesExporter.reveal_width = "1280"    # 16:9; the chapters' code lines reach 100 characters
    c.SlidesExporter.reveal_height = "720"
    c.SlidesExporter.exclude_input_prompt = True    # "In [ ]:" on every clean code cell says nothing
    c.SlidesExporter.exclude_output_prompt = True
    # not loaded by the course's template; pointed away from the CDNs in case a template change
    # brings them back (tests/test_slides.py would then find a file that does not exist)
    c.SlidesExporter.require_js_url = "assets/unused/require.js"
    c.SlidesExporter.jquery_url = "assets/unused/jquery.js"
    c.SlidesExporter.font_awesome_url = "assets/unused/font-awesome.css"
    c.SlidesExporter.jupyter_widgets_base_url = "assets/unused/"
    return SlidesExporter(config=c)


def build_deck(chapter: Path, out: Path, slides_exporter=None) -> Path:
    """Write out/<chapter>.slides.html (the assets must be in out/assets/, see copy_assets)."""
    import nbformat

    notebook = nbformat.reads(json.dumps(slide_notebook(json.loads(chapter.read_text(encoding="utf-8")))),
                              as_version=4)
    slides_exporter = slides_exporter or exporter()
    body, _ = slides_exporter.from_notebook_node(notebook, resources={"metadata": {"name": chapter.stem}})
    deck = out / f"{chapter.stem}.slides.html"
    deck.write_text(body, encoding="utf-8")
    return deck


def find_chapters(names: list[str]) -> list[Path]:
    every = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return every
    found = []
    for name in names:
        path = Path(name)
        if path.suffix == ".ipynb" and path.exists():
            found.append(path.resolve())
            continue
        matches = [p for p in every if p.stem == name] or [p for p in every if p.stem.startswith(name)]
        if len(matches) != 1:
            raise SystemExit(f"build_slides: no single chapter matches {name!r}; chapters: "
                             + ", ".join(p.stem for p in every))
        found.append(matches[0])
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="*", help="chapter numbers or names (05, 05_self_attention) or "
                                                     "notebook paths; default: every chapter")
    parser.add_argument("--out", type=Path, default=OUT, help="output folder (default: slides/)")
    parser.add_argument("--theme", default=THEME, help="reveal.js theme (default: white; one theme per output folder)")
    args = parser.parse_args(argv)
    chapters = find_chapters(args.chapters)
    started = time.perf_counter()
    try:
        node_modules = fetch_assets()
        args.out.mkdir(parents=True, exist_ok=True)
        copy_assets(args.out, node_modules, args.theme)
    except AssetsUnavailable as error:
        print(f"build_slides: {error}", file=sys.stderr)
        return 1
    slides_exporter = exporter(args.theme)
    for chapter in chapters:
        deck = build_deck(chapter, args.out, slides_exporter)
        print(f"{deck.relative_to(args.out.parent) if deck.is_relative_to(args.out.parent) else deck}"
              f"  {deck.stat().st_size / 1e3:.0f} kB")
    assets = sum(f.stat().st_size for f in (args.out / "assets").rglob("*") if f.is_file())
    print(f"{len(chapters)} decks in {time.perf_counter() - started:.1f} s; assets/ {assets / 1e6:.1f} MB "
          f"(shared by the decks). Open {args.out / chapters[0].stem}.slides.html in a browser; "
          "docs/slides.md says how to present and print.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
