"""Sphinx extension: each chapter page offers its notebook as ``.ipynb`` (with outputs) and as ``.py``.

The book theme's download menu already links the executed notebook (``_sources/chapters/NN_slug.ipynb``).
For a page whose source has a ``.py`` beside it (``book/chapters/NN_slug.py``, copied there when the
chapter is executed: :mod:`fetal_lib.book.reader`), this extension copies that file to
``_sources/chapters/NN_slug.py`` in the built site and adds a ``.py`` entry to the same menu.

Enabled in ``book/_config.yml`` (``sphinx: extra_extensions``).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

GROUP_LABEL = "download-buttons"  # the theme's download menu (sphinx_book_theme.header_buttons)
IPYNB_TOOLTIP = "Download the executed notebook, with its outputs"
PY_TOOLTIP = "Download the notebook's source (a jupytext percent script)"


def source_py(srcdir: Path, docname: str) -> Path:
    """The ``.py`` beside a page's source (it may not exist)."""
    return Path(srcdir) / f"{docname}.py"


def add_py_download(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """Copy the page's ``.py`` into ``_sources/`` and list it in the page's download menu."""
    py = source_py(app.srcdir, pagename)
    if doctree is None or context.get("page_source_suffix") != ".ipynb" or not py.is_file():
        return
    group = next((b for b in context.get("header_buttons", []) if b.get("label") == GROUP_LABEL), None)
    if group is None:
        return
    target = Path(app.outdir) / "_sources" / f"{pagename}.py"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(py, target)
    for button in group["buttons"]:
        if button.get("text") == ".ipynb":
            button["tooltip"] = IPYNB_TOOLTIP
    at = next((i + 1 for i, b in enumerate(group["buttons"]) if b.get("text") == ".ipynb"), 0)
    group["buttons"].insert(at, {
        "type": "link",
        "url": f"{context['pathto']('_sources', 1)}/{pagename}.py",
        "text": ".py",
        "tooltip": PY_TOOLTIP,
        "icon": "fas fa-file-code",
        "label": "download-py-button",
    })


def setup(app: Any) -> dict[str, Any]:
    # after the book theme has filled the menu (its handlers run at priority 501)
    app.connect("html-page-context", add_py_download, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
