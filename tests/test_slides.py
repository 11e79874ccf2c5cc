"""Slides from the chapters (scripts/build_slides.py) open offline, from file://, maths rendered.

Chapter 05's deck (ten display equations; quick to build, since nothing is executed) is built from
the committed notebook into a temporary folder while every socket is refused, then:
- every file the page loads (script src, link href, img src, CSS url() and @import, in the page and
  in the copied style sheets) is a relative path to a file beside the deck, and no inline script
  holds a URL;
- headless Chromium (Debian's chromium driven by playwright, as in test_browser.py) opens it from
  file:// with every non-file request aborted and recorded: reveal.js is ready with the chapter's
  slides, MathJax has typeset every equation (no TeX source left in the text, no MathJax error),
  nothing was requested from the network or failed to load, and the page logged no error. A
  screenshot of the first slide with a display equation is saved.
The rule of scripts/mark_slides.py is checked on a copy of the chapter: marking is idempotent,
changes only the cells' slideshow metadata, and the build sees the marked copy as the unmarked one.

npm fetches the pinned reveal.js and MathJax once into .venv/slides-assets/ (as the JupyterHub test
installs its proxy); without npm or the registry the tests that need them are skipped with a
message, and without Chromium so is the browser test.
"""
import json
import re
import shutil
import socket
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from test_browser import CHROMIUM, CHROMIUM_ARGS, sync_api

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

import build_slides  # noqa: E402
import mark_slides  # noqa: E402

CHAPTER = REPO / "notebooks" / "05_self_attention.ipynb"
HAS_CHROMIUM = Path(CHROMIUM).is_file()


class NetworkRefused(OSError):
    pass


def _refuse(*args, **kwargs):
    raise NetworkRefused("the network is switched off in this test")


@pytest.fixture(scope="module")
def node_modules():
    try:
        return build_slides.fetch_assets()
    except build_slides.AssetsUnavailable as error:
        pytest.skip(f"slides need reveal.js and MathJax from npm: {error}")


@pytest.fixture(scope="module")
def deck(node_modules, tmp_path_factory):
    out = tmp_path_factory.mktemp("slides")
    build_slides.copy_assets(out, node_modules)
    with pytest.MonkeyPatch.context() as mp:   # the exporter must not need the network
        for name in ("connect", "connect_ex", "sendto"):
            mp.setattr(socket.socket, name, _refuse)
        mp.setattr(socket, "create_connection", _refuse)
        mp.setattr(socket, "getaddrinfo", _refuse)
        started = time.perf_counter()
        path = build_slides.build_deck(CHAPTER, out)
        print(f"built {path.name} ({path.stat().st_size / 1e3:.0f} kB) in {time.perf_counter() - started:.1f} s")
    return path


class Loads(HTMLParser):
    """What a page loads by itself (not links a reader may follow), and its inline scripts and styles."""

    def __init__(self):
        super().__init__()
        self.urls, self.scripts, self.styles, self._in = [], [], [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("src", "data", "poster"):
            if attrs.get(name) and tag in ("script", "img", "iframe", "embed", "object", "video", "audio", "source", "input"):
                self.urls.append(attrs[name])
        if tag == "link" and attrs.get("href"):
            self.urls.append(attrs["href"])
        self._in = tag if tag in ("script", "style") and "src" not in attrs else None

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        if self._in == "script":
            self.scripts.append(data)
        elif self._in == "style":
            self.styles.append(data)


CSS_URL = re.compile(r"""url\(\s*['"]?([^'")]+)|@import\s+['"]([^'"]+)""")


def css_urls(css: str) -> list[str]:
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)          # comments name URLs that load nothing
    return [a or b for a, b in CSS_URL.findall(css)]


def local_file(url: str, base: Path) -> Path:
    """The file a relative URL names, or an AssertionError saying why it is not local."""
    parts = urlsplit(url)
    assert not parts.scheme and not parts.netloc, f"{url!r} is not a relative local path"
    path = (base / unquote(parts.path)).resolve()
    assert path.is_file(), f"{url!r} names {path}, which does not exist"
    return path


def test_deck_loads_only_local_files(deck):
    page = Loads()
    page.feed(deck.read_text(encoding="utf-8"))
    loaded = [local_file(u, deck.parent) for u in page.urls]
    names = {p.relative_to(deck.parent).as_posix() for p in loaded}
    assert {"assets/reveal.js/dist/reveal.js", "assets/reveal.js/dist/plugin/notes.js",
            "assets/mathjax/es5/tex-chtml-full.js"} <= names, names
    for script in page.scripts:
        assert not re.search(r"https?://|//cdn|unpkg", script), f"an inline script names a URL:\n{script[:500]}"
    for css in page.styles:
        for url in css_urls(css):
            if not url.startswith("data:"):
                local_file(url, deck.parent)
    # the copied style sheets: fonts inlined (reveal.js) or beside them
    for sheet in (deck.parent / "assets").rglob("*.css"):
        for url in css_urls(sheet.read_text(encoding="utf-8")):
            if not url.startswith("data:"):
                local_file(url, sheet.parent)
    # nbconvert's CDN defaults appear nowhere
    html = deck.read_text(encoding="utf-8")
    for cdn in ("cdnjs.cloudflare.com", "unpkg.com", "cdn.jsdelivr.net", "mathjax.org"):
        assert cdn not in html, cdn
    licences = {p.parent.name: p.read_text() for p in (deck.parent / "assets").glob("*/LICENSE")}
    assert "MIT" in licences["reveal.js"] and "Apache License" in licences["mathjax"]


def test_mark_slides_rule():
    md = lambda text: {"cell_type": "markdown", "metadata": {}, "source": text}          # noqa: E731
    code = lambda text: {"cell_type": "code", "metadata": {}, "source": text, "outputs": [],  # noqa: E731
                         "execution_count": None}
    notebook = {"cells": [md("# Title\n\nintro"), code("x = 1"), md("## Part\n"), md("prose $x$"),
                          code("a"), code("b"), md("### Aside"), md("Closing words.\n\n## Summary\n\n"
                          "```\n## not a heading\n```\n## Exercises\n1. one")], "metadata": {}}
    mark_slides.mark(notebook)
    assert [c["metadata"]["slideshow"]["slide_type"] for c in notebook["cells"]] == [
        "slide", "-", "slide", "subslide", "-", "subslide", "subslide", "subslide"]
    assert mark_slides.mark(notebook) == 0
    shown = build_slides.slide_notebook(notebook)["cells"][-3:]
    assert [mark_slides.source(c).splitlines()[0] for c in shown] == ["Closing words.", "## Summary", "## Exercises"]
    assert [c["metadata"]["slideshow"]["slide_type"] for c in shown] == ["subslide", "slide", "slide"]
    # a type set by hand wins over the rule
    notebook["cells"][1]["metadata"]["slideshow"]["slide_type"] = "fragment"
    assert mark_slides.mark(notebook) == 0
    assert build_slides.slide_notebook(notebook)["cells"][1]["metadata"]["slideshow"]["slide_type"] == "fragment"
    assert mark_slides.mark(notebook, force=True) == 1


def test_marked_chapter_gives_the_same_slides(tmp_path):
    copy = tmp_path / CHAPTER.name
    shutil.copy(CHAPTER, copy)
    before = json.loads(copy.read_text(encoding="utf-8"))
    assert mark_slides.mark_file(copy) == len(before["cells"])
    text = copy.read_text(encoding="utf-8")
    assert mark_slides.mark_file(copy) == 0 and copy.read_text(encoding="utf-8") == text   # idempotent
    assert text.endswith("}\n") and text == mark_slides.dumps(json.loads(text))           # Jupyter's format
    after = json.loads(text)
    assert after["metadata"] == before["metadata"]
    for old, new in zip(before["cells"], after["cells"]):
        assert set(new["metadata"]) - set(old["metadata"]) == {"slideshow"}
        assert {**new, "metadata": {k: v for k, v in new["metadata"].items() if k != "slideshow"}} == old
    # the build applies the same rule in memory: what it exports is the same, marked or not
    assert build_slides.slide_notebook(after) == build_slides.slide_notebook(before)


@pytest.mark.skipif(not HAS_CHROMIUM, reason=f"no Chromium at {CHROMIUM}: install it with `sudo apt-get install "
                    "chromium` (Debian/Ubuntu), or point COURSE_CHROMIUM at a Chromium or Chrome executable")
def test_deck_opens_offline_with_maths_rendered(deck):
    markdown = "\n".join(mark_slides.source(c) for c in json.loads(CHAPTER.read_text())["cells"]
                         if c["cell_type"] == "markdown")
    n_display = markdown.count("$$") // 2
    requested, failed, blocked, errors = [], [], [], []
    with sync_api.sync_playwright() as p:
        # no DNS either: anything that slipped past the route below could not resolve a host
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=[*CHROMIUM_ARGS, "--host-resolver-rules=MAP * ~NOTFOUND"])
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 720})
            context.route(lambda url: not url.startswith("file:"),
                          lambda route: (blocked.append(route.request.url), route.abort()))
            page = context.new_page()
            page.on("request", lambda r: requested.append(r.url))
            page.on("requestfailed", lambda r: failed.append(f"{r.url}: {r.failure}"))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            started = time.perf_counter()
            page.goto(deck.as_uri())
            page.wait_for_function("() => window.Reveal && Reveal.isReady()", timeout=60_000)
            try:   # MathJax replaces the configuration object the page sets with itself once loaded
                page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.document",
                                       timeout=30_000)
            except sync_api.TimeoutError:
                pytest.fail(f"MathJax did not start; blocked {blocked}, failed {failed}, errors {errors}")
            page.evaluate("() => MathJax.startup.promise")
            seconds = time.perf_counter() - started
            state = page.evaluate("""() => {
                const prose = [...document.querySelectorAll('.jp-RenderedMarkdown')].map(e => {
                    const c = e.cloneNode(true);
                    c.querySelectorAll('code, pre, mjx-container').forEach(x => x.remove());
                    return c.textContent; }).join('\\n');
                return {slides: Reveal.getTotalSlides(),
                        sections: document.querySelectorAll('.reveal .slides section').length,
                        maths: document.querySelectorAll('mjx-container').length,
                        display: document.querySelectorAll('mjx-container[display="true"]').length,
                        errors: document.querySelectorAll('mjx-merror').length,
                        tex: (prose.match(/\\$|\\\\[a-zA-Z]+/g) || []).slice(0, 10)}; }""")
            # the first slide with a display equation, as a learner sees it
            where = page.evaluate("""() => Reveal.getIndices(
                document.querySelector('mjx-container[display="true"]').closest('section'))""")
            page.evaluate(f"() => Reveal.slide({where['h']}, {where['v']})")
            page.wait_for_function("() => Reveal.getCurrentSlide().querySelector('mjx-container[display]')")
            page.wait_for_timeout(1000)    # the slide transition
            screenshot = deck.parent / "slide_with_equation.png"
            page.screenshot(path=str(screenshot))
            loaded, load_failures, page_errors = list(requested), list(failed), list(errors)
            # the route above really blocks: a request the page makes itself is aborted and recorded
            probe = page.evaluate("() => fetch('https://example.org/x.js').then(() => 'loaded', () => 'blocked')")
        finally:
            browser.close()
    print(f"opened and typeset in {seconds:.1f} s: {state}; screenshot {screenshot}")
    assert probe == "blocked" and blocked == ["https://example.org/x.js"], (probe, blocked)
    assert all(u.startswith("file://") for u in loaded), [u for u in loaded if not u.startswith("file://")]
    assert any(u.endswith(".woff") for u in loaded), "MathJax loaded no font"
    assert not load_failures, load_failures
    assert not page_errors, page_errors
    assert state["slides"] >= 20 and state["sections"] > state["slides"], state
    assert state["display"] >= n_display >= 5, (state, n_display)
    assert state["maths"] > 2 * n_display and state["errors"] == 0, state
    assert not state["tex"], f"TeX left as text: {state['tex']}"
    assert screenshot.stat().st_size > 20_000
