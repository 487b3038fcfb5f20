"""The book's website in a real browser (Debian's Chromium driven by playwright).

The book is built once per session from the chapters executed on the smoke profile (``smoke_book``
in ``tests/conftest.py``, shared with ``tests/notebooks/test_chapters.py``: the chapters run once),
served from ``_build/html`` on 127.0.0.1, and every page is opened. ``FETAL_SITE_HTML=book/_build/html``
checks an existing build instead (e.g. after ``fetal book --profile smoke``; its results are read
from ``$FETAL_BUILD_DIR`` or ``build/``).

One crawl per viewport width (desktop 1280 px, phone 390 px) records what each page did: console
errors, requests to any host but 127.0.0.1 (refused), images, links, element ids, overflow; the
tests below judge it. The intro and every chapter are saved as screenshots at both widths under
``build/screenshots/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urldefrag, urlparse

import pytest

from fetal_lib.book.chapters import REGISTRY, discover
from fetal_lib.paths import REPO_ROOT, build_dir

pytestmark = pytest.mark.slow

SCREENSHOTS = build_dir() / "screenshots"  # read at import, before the session points FETAL_BUILD_DIR elsewhere
WIDTHS = {"desktop": 1280, "phone": 390}
HEIGHT = 900
LOAD_TIMEOUT_MS = 60_000
REDIRECT = re.compile(r'<meta http-equiv="Refresh"', re.IGNORECASE)


# ----------------------------------------------------------------------------- the site, served


@dataclass
class Site:
    """A built book served on 127.0.0.1."""

    html: Path
    url: str
    results: Path
    chapters: dict[str, str]  # chapter id -> its page, e.g. "chapters/01_hc18_unet.html"
    hidden: list[str] = field(default_factory=list)  # build-machine folders no page may print

    @property
    def pages(self) -> list[str]:
        """Every HTML page of the build, relative to its root (``index.html``, a redirect to the intro, left out)."""
        return sorted(p.relative_to(self.html).as_posix() for p in self.html.rglob("*.html")
                      if "_static" not in p.parts and not REDIRECT.search(p.read_text(errors="replace")[:2000]))


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no line per request on the test's output
        pass


def _serve(html: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(html)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def _chapter_pages(book: Path) -> dict[str, str]:
    from fetal_lib.book.chapters import executed_chapters

    return {cid: f"{page}.html" for cid, page in executed_chapters(book)}


@pytest.fixture(scope="session")
def site(request) -> Site:
    """The smoke book, built once and served; or the build named by ``FETAL_SITE_HTML``."""
    reuse = os.environ.get("FETAL_SITE_HTML")
    if reuse:
        html = Path(reuse).resolve()
        if not (html / "index.html").is_file():
            pytest.fail(f"FETAL_SITE_HTML={reuse}: no index.html there (build the book first: fetal book --profile smoke)")
        book, results, hidden = html.parent.parent, build_dir() / "results", [str(REPO_ROOT)]
    else:
        from fetal_lib.book.build import build_book

        root, execute = request.getfixturevalue("smoke_book")
        for chapter in discover():
            execute(chapter)
        book, results = root / "book", root / "build" / "results"
        html = build_book(book, results).parent
        hidden = [str(root), str(REPO_ROOT)]
    server, url = _serve(html)
    yield Site(html, url, results, _chapter_pages(book), hidden)
    server.shutdown()


# ----------------------------------------------------------------------------- one crawl per width


@dataclass
class PageVisit:
    """What one page did in the browser."""

    errors: list[str] = field(default_factory=list)  # console errors and uncaught exceptions
    images: int = 0
    broken_images: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)  # absolute hrefs of the page's <a> elements
    ids: set[str] = field(default_factory=set)
    overflow_px: int = 0  # how far the page is wider than the window
    cut_tables: list[str] = field(default_factory=list)  # tables wider than their container (intro only)
    unboxed_wide_tables: list[str] = field(default_factory=list)  # tables wider than the text column, not in a scrolling box
    text: str = ""  # what a reader sees (closed details and hidden cells excluded)


@dataclass
class Crawl:
    visits: dict[str, PageVisit]
    outside: list[str]  # requests to a host other than 127.0.0.1, refused
    failed: list[str]  # local requests that failed


LOAD_IMAGES = """async () => {
  const images = Array.from(document.images);
  images.forEach(i => { i.loading = 'eager'; });
  await Promise.all(images.map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; })));
  return images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.currentSrc || i.src);
}"""
CUT_TABLES = """() => [
  ...Array.from(document.querySelectorAll('article table'))
    .filter(t => t.scrollWidth > t.parentElement.clientWidth + 1)
    .map(t => `table '${(t.querySelector('th, td') || t).innerText.slice(0, 40)}' ${t.scrollWidth} px in ${t.parentElement.clientWidth} px`),
  ...Array.from(document.querySelectorAll('article table td, article table th'))
    .filter(c => c.scrollWidth > c.clientWidth + 1)
    .map(c => `cell '${c.innerText.slice(0, 40)}' ${c.scrollWidth} px in ${c.clientWidth} px`)]"""

# A table wider than the page's text column must sit in its own sideways-scrolling box no wider
# than the column (book/_static/fetal.css); one that does not is cut off or widens the page.
UNBOXED_WIDE_TABLES = """() => {
  const article = document.querySelector('article');
  if (!article) return [];
  const column = article.getBoundingClientRect().width;
  return Array.from(article.querySelectorAll('table')).filter(t => t.scrollWidth > column + 1).filter(t => {
    for (let a = t.parentElement; a && a !== article; a = a.parentElement) {
      const style = getComputedStyle(a);
      if (['auto', 'scroll'].includes(style.overflowX) && a.getBoundingClientRect().width <= column + 1) return false;
    }
    return true;
  }).map(t => `table '${(t.querySelector('th, td') || t).innerText.slice(0, 40)}' ${t.scrollWidth} px in a ${Math.round(column)} px column`);
}"""


def _is_local(url: str) -> bool:
    return url.startswith(("data:", "blob:", "about:")) or urlparse(url).hostname == "127.0.0.1"


def _crawl(browser, site: Site, width: int, screenshot: bool) -> Crawl:
    context = browser.new_context(viewport={"width": width, "height": HEIGHT})
    outside: list[str] = []
    failed: list[str] = []

    def guard(route) -> None:
        if _is_local(route.request.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.on("requestfailed", lambda r: failed.append(r.url) if _is_local(r.url) else None)
    page.on("response", lambda r: failed.append(f"{r.url} ({r.status})") if r.status >= 400 else None)
    page.on("websocket", lambda ws: None if _is_local(ws.url) else outside.append(ws.url))
    visits: dict[str, PageVisit] = {}
    shots = {"intro.html", *site.chapters.values()}
    for name in site.pages:
        visit = visits[name] = PageVisit()
        on_console = (lambda v: lambda m: v.errors.append(f"console: {m.text}") if m.type == "error" else None)(visit)
        on_error = (lambda v: lambda e: v.errors.append(f"exception: {e}"))(visit)
        page.on("console", on_console)
        page.on("pageerror", on_error)
        page.goto(site.url + name, wait_until="load", timeout=LOAD_TIMEOUT_MS)
        page.wait_for_load_state("networkidle", timeout=LOAD_TIMEOUT_MS)
        visit.broken_images = page.evaluate(LOAD_IMAGES)
        visit.images = page.evaluate("() => document.images.length")
        visit.links = page.eval_on_selector_all("a[href]", "els => els.map(a => a.href)")
        visit.ids = set(page.eval_on_selector_all("[id]", "els => els.map(e => e.id)"))
        visit.overflow_px = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        visit.text = page.inner_text("body")
        if name == "intro.html":
            visit.cut_tables = page.evaluate(CUT_TABLES)
        visit.unboxed_wide_tables = page.evaluate(UNBOXED_WIDE_TABLES)
        if screenshot and name in shots:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / f"{Path(name).stem}_{width}.png"), full_page=True)
        page.remove_listener("console", on_console)
        page.remove_listener("pageerror", on_error)
    context.close()
    return Crawl(visits, outside, failed)


@pytest.fixture(scope="session")
def crawls(browser, site) -> dict[str, Crawl]:
    """Every page opened at each width, the intro and the chapters saved as screenshots."""
    return {kind: _crawl(browser, site, width, screenshot=True) for kind, width in WIDTHS.items()}


# ----------------------------------------------------------------------------- every page


def test_the_site_reads_offline(crawls) -> None:
    for kind, crawl in crawls.items():
        assert not crawl.outside, f"{kind}: pages asked hosts other than 127.0.0.1 (a CDN?): {sorted(set(crawl.outside))}"
        assert not crawl.failed, f"{kind}: local requests failed: {sorted(set(crawl.failed))}"


def test_the_site_root_leads_to_the_intro(browser, site) -> None:
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(site.url, wait_until="load", timeout=LOAD_TIMEOUT_MS)
        page.wait_for_url("**/intro.html", timeout=LOAD_TIMEOUT_MS)
        assert page.locator("article h1").first.is_visible()
    finally:
        context.close()


def test_no_page_has_a_console_error(crawls) -> None:
    errors = {f"{kind} {name}": v.errors for kind, c in crawls.items() for name, v in c.visits.items() if v.errors}
    assert not errors, errors


def test_every_image_has_loaded(crawls) -> None:
    broken = {name: v.broken_images for name, v in crawls["desktop"].visits.items() if v.broken_images}
    assert not broken, broken
    assert sum(v.images for v in crawls["desktop"].visits.values()) > len(crawls["desktop"].visits)  # the figures are there


def test_every_internal_link_resolves(browser, site, crawls) -> None:
    visits = crawls["desktop"].visits
    targets: dict[str, set[str]] = {}  # page URL -> fragments asked of it, by the pages linking to it
    for name, visit in visits.items():
        for href in visit.links:
            if not href.startswith(site.url):
                continue
            url, fragment = urldefrag(href)
            targets.setdefault(url, set()).add(fragment)
    assert any(u.endswith(".ipynb") for u in targets) and any(u.endswith(".py") for u in targets)
    context = browser.new_context()
    missing, no_anchor = [], []
    for url, fragments in sorted(targets.items()):
        response = context.request.get(url)
        if response.status != 200:
            missing.append(f"{url} ({response.status})")
            continue
        rel = url[len(site.url):] or "index.html"
        if rel in visits:
            no_anchor += [f"{url}#{f}" for f in fragments if f and f not in visits[rel].ids]
    context.close()
    assert not missing, f"links to pages that do not exist: {missing}"
    assert not no_anchor, f"links to anchors that do not exist: {no_anchor}"


def test_no_page_is_wider_than_the_window_and_the_intro_tables_fit(crawls) -> None:
    for kind, crawl in crawls.items():
        wide = {name: v.overflow_px for name, v in crawl.visits.items() if v.overflow_px > 1}
        assert not wide, f"{kind}: pages wider than the window (px): {wide}"
        assert not crawl.visits["intro.html"].cut_tables, f"{kind}: intro tables cut: {crawl.visits['intro.html'].cut_tables}"


def test_every_table_wider_than_the_text_column_scrolls_in_its_own_box(crawls) -> None:
    for kind, crawl in crawls.items():
        unboxed = {name: v.unboxed_wide_tables for name, v in crawl.visits.items() if v.unboxed_wide_tables}
        assert not unboxed, f"{kind}: wide tables neither inside the column nor in a scrolling box: {unboxed}"
    desktop = crawls["desktop"].visits
    assert any(v.text for v in desktop.values())  # the crawl saw pages at all


def test_no_page_prints_the_build_machines_folders(crawls, site) -> None:
    shown = {name: [h for h in site.hidden if h in v.text] for name, v in crawls["desktop"].visits.items()}
    assert not {k: v for k, v in shown.items() if v}, shown


def test_screenshots_of_the_intro_and_every_chapter_at_both_widths(crawls, site) -> None:
    stems = ["intro", *(Path(p).stem for p in site.chapters.values())]
    for stem in stems:
        for width in WIDTHS.values():
            path = SCREENSHOTS / f"{stem}_{width}.png"
            assert path.is_file() and path.stat().st_size > 10_000, path


# ----------------------------------------------------------------------------- the intro and the chapters


def test_the_intro_shows_every_chapters_headlines_labelled(crawls, site) -> None:
    from fetal_lib.book.headlines import unlabelled
    from fetal_lib.results import load_metrics

    docs = load_metrics(site.results)
    assert set(site.chapters) <= set(docs), "a chapter page without its metrics.json"
    assert unlabelled(docs) == {}, "headline keys without a label in fetal_lib.book.headlines"
    text = crawls["desktop"].visits["intro.html"].text
    for cid, doc in docs.items():
        assert REGISTRY[cid][1] in text
        for key in doc["headline"]:
            assert key not in text, f"raw key {key!r} on the intro"
    assert "95% CI" in text and "PHANTOM" in text


def test_every_chapter_shows_its_provenance_then_its_results(browser, site) -> None:
    from fetal_lib.results import load_metrics

    docs = load_metrics(site.results)
    context = browser.new_context(viewport={"width": WIDTHS["desktop"], "height": HEIGHT})
    page = context.new_page()
    try:
        for cid, name in site.chapters.items():
            page.goto(site.url + name, wait_until="load", timeout=LOAD_TIMEOUT_MS)
            banner = page.locator("article .cell_output .admonition").first
            assert banner.is_visible(), f"{name}: no provenance block"
            text = banner.inner_text()
            assert f"Profile {docs[cid]['provenance']['profile']}" in text, f"{name}: provenance block says {text!r}"
            table = page.locator("article .cell_output table").first
            assert table.is_visible() and table.locator("tbody tr").count() >= 1, f"{name}: no results table"
            before = page.evaluate("([a, b]) => !!(a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING)",
                                   [banner.element_handle(), table.element_handle()])
            assert before, f"{name}: a results table comes before the provenance block"
            body = page.inner_text("article")
            assert "data_dir =" not in body, f"{name}: the parameters are shown unfolded"
            assert page.locator("article .cell.tag_injected-parameters").count() == 0, f"{name}: papermill's cell is on the page"
    finally:
        context.close()


def test_every_chapter_offers_its_notebook_and_its_source_for_download(browser, site) -> None:
    context = browser.new_context(viewport={"width": WIDTHS["desktop"], "height": HEIGHT})
    context.route("**/*", lambda route: route.continue_() if _is_local(route.request.url) else route.abort())
    page = context.new_page()
    sources = {c.id: c.source for c in discover()}
    try:
        for cid, name in site.chapters.items():
            page.goto(site.url + name, wait_until="load", timeout=LOAD_TIMEOUT_MS)
            menu = page.locator(".dropdown-download-buttons")
            menu.locator("button.dropdown-toggle").click()
            got = {}
            for suffix in (".ipynb", ".py"):
                link = menu.locator("a.dropdown-item", has_text=re.compile(rf"^\s*\{suffix}\s*$"))
                assert link.is_visible(), f"{name}: no {suffix} in the download menu"
                with page.expect_popup() as popup:
                    link.click()
                popup.value.close()
                menu.locator("button.dropdown-toggle").click()
                response = context.request.get(link.evaluate("a => a.href"))
                assert response.status == 200, f"{name}: {suffix} download answers {response.status}"
                got[suffix] = response.body()
            notebook = json.loads(got[".ipynb"])
            assert notebook["metadata"]["fetal"]["chapter"] == cid
            assert any(c.get("outputs") for c in notebook["cells"] if c["cell_type"] == "code"), f"{name}: .ipynb without outputs"
            assert got[".py"].decode() == sources[cid].read_text(), f"{name}: the .py is not the chapter's source"
    finally:
        context.close()


def test_search_finds_a_word_of_a_chapter(browser, site) -> None:
    context = browser.new_context()
    page = context.new_page()
    try:
        words = {}  # the longest word of each chapter's title -> its page
        for name in site.chapters.values():
            page.goto(site.url + name, wait_until="load", timeout=LOAD_TIMEOUT_MS)
            heading = page.locator("article h1").first.inner_text()
            words[max(re.findall(r"[A-Za-z]+", heading), key=len).lower()] = name
        word = max(words, key=len)
        name = words[word]
        page.goto(f"{site.url}search.html?q={word}", wait_until="load", timeout=LOAD_TIMEOUT_MS)
        page.wait_for_selector("ul.search li", timeout=LOAD_TIMEOUT_MS)
        hits = page.eval_on_selector_all("ul.search li a", "els => els.map(a => a.getAttribute('href'))")
        assert any(h and h.split("#")[0].split("?")[0].endswith(name) for h in hits), (word, hits)
    finally:
        context.close()
