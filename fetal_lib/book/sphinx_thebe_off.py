"""Sphinx extension: the pages carry no thebe (live code cells) loader, since the book has no launch button.

Jupyter Book 1 always loads ``sphinx_thebe``, which puts on every page a script naming thebe's CDN
URL (``const THEBE_JS_URL = "https://unpkg.com/..."``), twice, so that every page logged
"Identifier 'THEBE_JS_URL' has already been declared" as a console error. With ``thebe: false``
in ``book/_config.yml`` nothing uses it: this extension leaves thebe's scripts and stylesheet off
each page. (Interactive reruns are ``make lab``, not thebe.)

Enabled in ``book/_config.yml`` (``sphinx: extra_extensions``).
"""

from __future__ import annotations

from typing import Any

MARKERS = ("THEBE_JS_URL", "sphinx-thebe", "thebe@")


def is_thebe(asset: Any) -> bool:
    """True for a script or stylesheet of thebe (by its file name or its inline body)."""
    text = f"{getattr(asset, 'filename', asset)} {getattr(asset, 'attributes', {}).get('body', '')}"
    return any(marker in text for marker in MARKERS)


def drop_thebe(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """Remove thebe's assets from this page's context (the builder's own lists are left alone)."""
    for key in ("script_files", "css_files"):
        if key in context:
            context[key] = [asset for asset in context[key] if not is_thebe(asset)]


def setup(app: Any) -> dict[str, Any]:
    app.connect("html-page-context", drop_thebe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
