"""A chapter's reuse key follows the code it depends on, not the whole library."""

from __future__ import annotations

from pathlib import Path

from fetal_lib.book import dependencies as deps
from fetal_lib.book.chapters import discover


def _tree(root: Path, files: dict[str, str]) -> Path:
    pkg = root / "fetal_lib"
    for rel, text in files.items():
        path = pkg / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return pkg


def test_closure_follows_imports_and_parent_packages_only(tmp_path):
    pkg = _tree(tmp_path, {
        "__init__.py": "",
        "core.py": "",
        "shared/__init__.py": "",
        "shared/util.py": "from fetal_lib import core\n",
        "chap/__init__.py": "",
        "chap/pipeline.py": "def f():\n    from fetal_lib.shared.util import thing  # local imports count\n",
        "other/__init__.py": "",
        "other/pipeline.py": "from ..shared import util\n",
        "app/__init__.py": "from fetal_lib.chap import pipeline\n",
    })
    files = deps.module_files(pkg)
    notebook = tmp_path / "nb.py"
    notebook.write_text("from fetal_lib.other.pipeline import run\n")
    got = deps.chapter_modules("fetal_lib.chap", None, files)
    assert got == {"fetal_lib", "fetal_lib.chap", "fetal_lib.chap.pipeline", "fetal_lib.shared", "fetal_lib.shared.util",
                   "fetal_lib.core"}
    with_nb = deps.chapter_modules("fetal_lib.chap", notebook, files)
    assert with_nb - got == {"fetal_lib.other", "fetal_lib.other.pipeline"}  # the relative import resolved too
    before = deps.modules_sha256(got, files, pkg)
    (pkg / "app" / "__init__.py").write_text("# an edit to the front-end\n")
    (pkg / "other" / "pipeline.py").write_text("# an edit to another chapter\n")
    assert deps.modules_sha256(got, files, pkg) == before
    (pkg / "shared" / "util.py").write_text("from fetal_lib import core  # edited\n")
    assert deps.modules_sha256(got, files, pkg) != before


def test_each_chapter_depends_on_its_own_package_and_on_no_front_end_or_other_chapter():
    files = deps.module_files()
    chapters = {c.id: deps.chapter_modules(c.package, c.source, files) for c in discover()}
    assert set(chapters) == {"data", "hc18", "seg_benchmark", "us_classification", "fetal_mri_ga", "brain_age"}
    for cid, mods in chapters.items():
        firsts = {m.split(".")[1] for m in mods if "." in m}
        assert not firsts & {"app", "book", "commands", "lab", "doctor", "cli", "bench"}, cid
    # editing chapter 4's package or the app reruns no other chapter
    assert [cid for cid, mods in chapters.items() if any(m.startswith("fetal_lib.ga_mri") for m in mods)] == ["fetal_mri_ga"]
    # chapter 1's package is the declared science of chapters 2 and 3
    assert sorted(cid for cid, mods in chapters.items() if "fetal_lib.hc.measure" in mods) == ["hc18", "seg_benchmark", "us_classification"]
