"""Sphinx extension: MathJax served by the site itself, never from a CDN (the book reads offline).

Sphinx loads MathJax 3 from a CDN on each page with math. This extension points ``mathjax_path`` at
``_static/mathjax/tex-mml-chtml.js`` and, when some page has math, copies MathJax 3 there from the
``django-static-mathjax`` package (MathJax's own static files, installed from the package registry;
nothing of Django is imported): the combined ``tex-mml-chtml.js`` component and the folders it
loads from (fonts, TeX extensions, accessibility). A build with math but without that package
fails, saying what to install.

Enabled in ``book/_config.yml`` (``sphinx: extra_extensions``).
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

PACKAGE = "django-static-mathjax"
ENTRY = "tex-mml-chtml.js"
STATIC_FOLDER = "mathjax"  # under the site's _static/


def mathjax_es5() -> Path | None:
    """MathJax's ``es5`` folder inside the installed package (None when it is not installed)."""
    spec = importlib.util.find_spec("mathjax")  # the package's import name; finding it imports nothing
    for location in (spec.submodule_search_locations or []) if spec else []:
        folder = Path(location) / "static" / "mathjax" / "es5"
        if (folder / ENTRY).is_file():
            return folder
    return None


def copy_mathjax(es5: Path, static: Path) -> Path:
    """Copy ``ENTRY`` and the component folders of ``es5`` to ``static/mathjax``; returns the entry's copy."""
    target = Path(static) / STATIC_FOLDER
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(es5 / ENTRY, target / ENTRY)
    for folder in (p for p in es5.iterdir() if p.is_dir()):
        shutil.copytree(folder, target / folder.name, dirs_exist_ok=True)
    return target / ENTRY


def _local_path(app: Any, config: Any) -> None:
    config.mathjax_path = f"{STATIC_FOLDER}/{ENTRY}"  # relative: served from _static/


def _copy_when_used(app: Any, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    if not app.env.get_domain("math").has_equations():
        return
    es5 = mathjax_es5()
    if es5 is None:
        from sphinx.errors import ExtensionError

        raise ExtensionError(f"a page has math but MathJax is not installed: pip install {PACKAGE} "
                             "(the book serves MathJax itself and never loads it from a CDN)")
    copy_mathjax(es5, Path(app.outdir) / "_static")


def setup(app: Any) -> dict[str, Any]:
    app.connect("config-inited", _local_path)
    app.connect("build-finished", _copy_when_used)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
