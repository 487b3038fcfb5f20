"""MathJax served by the site itself: a one-page Sphinx project with math, built with the extension."""

from __future__ import annotations

import functools
import http.server
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlparse

import pytest

from fetal_lib.book import sphinx_mathjax

PAGE_WITH_MATH = "Euler\n=====\n\nInline :math:`e^{i\\pi} + 1 = 0` and a block:\n\n.. math::\n\n   \\int_0^1 x\\,dx = \\frac{1}{2}\n"
PAGE_WITHOUT_MATH = "Plain\n=====\n\nNo math here.\n"


def _build(tmp_path: Path, page: str) -> Path:
    src, out = tmp_path / "src", tmp_path / "html"
    src.mkdir()
    (src / "conf.py").write_text('extensions = ["fetal_lib.book.sphinx_mathjax"]\n')
    (src / "index.rst").write_text(page)
    done = subprocess.run([sys.executable, "-m", "sphinx", "-q", "-b", "html", str(src), str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def math_site(tmp_path_factory) -> Path:
    if sphinx_mathjax.mathjax_es5() is None:
        pytest.fail(f"MathJax is not installed: pip install {sphinx_mathjax.PACKAGE} (a dependency in pyproject.toml)")
    return _build(tmp_path_factory.mktemp("math_site"), PAGE_WITH_MATH)


def test_a_page_with_math_loads_mathjax_from_the_site(math_site) -> None:
    html = (math_site / "index.html").read_text()
    assert 'src="_static/mathjax/tex-mml-chtml.js' in html
    assert "cdn.jsdelivr" not in html and "mathjax@" not in html
    copied = math_site / "_static" / "mathjax"
    assert (copied / "tex-mml-chtml.js").is_file() and any((copied / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))


def test_a_site_without_math_carries_no_mathjax(tmp_path) -> None:
    out = _build(tmp_path, PAGE_WITHOUT_MATH)
    assert not (out / "_static" / "mathjax").exists() and "mathjax" not in (out / "index.html").read_text().lower()


def test_math_without_the_package_fails_saying_what_to_install(monkeypatch, tmp_path) -> None:
    from sphinx.errors import ExtensionError

    monkeypatch.setattr(sphinx_mathjax, "mathjax_es5", lambda: None)
    app = SimpleNamespace(builder=SimpleNamespace(format="html"), outdir=str(tmp_path),
                          env=SimpleNamespace(get_domain=lambda name: SimpleNamespace(has_equations=lambda: True)))
    with pytest.raises(ExtensionError, match=f"pip install {sphinx_mathjax.PACKAGE}"):
        sphinx_mathjax._copy_when_used(app, None)


@pytest.mark.slow
def test_the_math_renders_in_a_browser_with_no_other_host(browser, math_site) -> None:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(math_site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    context = browser.new_context()
    outside, failed, errors = [], [], []
    context.route("**/*", lambda r: r.continue_() if urlparse(r.request.url).hostname == "127.0.0.1"
                  else (outside.append(r.request.url), r.abort()))
    page = context.new_page()
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html", wait_until="networkidle")
        page.wait_for_selector("mjx-container", timeout=30_000)
        assert page.locator("mjx-container").count() == 2  # the inline and the block formula, typeset
        page.wait_for_load_state("networkidle")
    finally:
        context.close()
        server.shutdown()
    assert not outside and not failed and not errors, (outside, failed, errors)
