"""The site's small Sphinx extensions, on the page context the book theme hands them."""

from __future__ import annotations

from types import SimpleNamespace

from fetal_lib.book.sphinx_downloads import GROUP_LABEL, add_py_download
from fetal_lib.book.sphinx_thebe_off import drop_thebe, is_thebe


def _context(suffix: str = ".ipynb") -> dict:
    ipynb = {"type": "link", "url": "../_sources/chapters/01_x.ipynb", "text": ".ipynb", "tooltip": "Download source file"}
    pdf = {"type": "javascript", "javascript": "window.print()", "text": ".pdf"}
    return {"page_source_suffix": suffix, "pathto": lambda target, flag=0: f"../{target}",
            "header_buttons": [{"type": "group", "label": GROUP_LABEL, "buttons": [ipynb, pdf]}]}


def test_a_chapter_page_gets_its_py_in_the_download_menu_and_in_the_site(tmp_path) -> None:
    src, out = tmp_path / "src", tmp_path / "html"
    (src / "chapters").mkdir(parents=True)
    (src / "chapters" / "01_x.py").write_text("# %%\nx = 1\n")
    app = SimpleNamespace(srcdir=str(src), outdir=str(out))
    context = _context()
    add_py_download(app, "chapters/01_x", "page.html", context, doctree=object())
    buttons = context["header_buttons"][0]["buttons"]
    assert [b["text"] for b in buttons] == [".ipynb", ".py", ".pdf"]
    assert buttons[1]["url"] == "../_sources/chapters/01_x.py" and "outputs" in buttons[0]["tooltip"]
    assert (out / "_sources" / "chapters" / "01_x.py").read_text() == "# %%\nx = 1\n"


def test_a_page_without_a_py_beside_it_is_left_alone(tmp_path) -> None:
    app = SimpleNamespace(srcdir=str(tmp_path), outdir=str(tmp_path / "html"))
    for suffix, page in ((".md", "intro"), (".ipynb", "chapters/02_y")):
        context = _context(suffix)
        add_py_download(app, page, "page.html", context, doctree=object())
        assert [b["text"] for b in context["header_buttons"][0]["buttons"]] == [".ipynb", ".pdf"]
    assert not (tmp_path / "html").exists()


def test_thebes_scripts_and_stylesheet_are_left_off_and_the_rest_kept() -> None:
    def asset(filename: str, body: str = ""):
        return SimpleNamespace(filename=filename, attributes={"body": body} if body else {})

    config = asset("", 'const THEBE_JS_URL = "https://unpkg.com/thebe@0.8.2/lib/index.js"; const thebe_selector = ".cell"')
    scripts = [asset("_static/doctools.js"), config, asset("_static/sphinx-thebe.js"), config]
    styles = [asset("_static/sphinx-thebe.css"), asset("_static/fetal.css")]
    assert [is_thebe(a) for a in scripts] == [False, True, True, True]
    context = {"script_files": scripts, "css_files": styles}
    drop_thebe(None, "intro", "page.html", context, None)
    assert [a.filename for a in context["script_files"]] == ["_static/doctools.js"]
    assert [a.filename for a in context["css_files"]] == ["_static/fetal.css"]
    assert len(scripts) == 4  # the builder's own lists are not changed
