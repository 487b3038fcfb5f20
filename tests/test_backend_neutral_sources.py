"""The Keras chapters are Keras 3 code: no chapter package or notebook imports TensorFlow (only
fetal_lib/training/keras_backend.py does, for what differs per backend), and the Keras chapters'
packages import torch nowhere either (on the torch backend Keras itself drives torch)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BACKEND_MODULE = REPO / "fetal_lib" / "training" / "keras_backend.py"
KERAS_CHAPTER_PACKAGES = ("hc", "us", "ga_mri")


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports (``import a.b``, ``from a import b``, ``importlib.import_module("a")``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__")
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.add(node.args[0].value.split(".")[0])
    return found


def test_the_checker_sees_every_import_form(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("import tensorflow as tf\nfrom torch import nn\nimport importlib\nimportlib.import_module('jax.numpy')\n")
    assert {"tensorflow", "torch", "jax"} <= imported_modules(source)


def test_only_the_backend_module_imports_tensorflow():
    sources = sorted((REPO / "fetal_lib").rglob("*.py")) + sorted((REPO / "notebooks").glob("*.py"))
    assert len(sources) > 50
    offenders = [str(p.relative_to(REPO)) for p in sources if p != BACKEND_MODULE and "tensorflow" in imported_modules(p)]
    assert offenders == []
    assert "tensorflow" in imported_modules(BACKEND_MODULE)


def test_the_keras_chapter_packages_import_no_backend():
    for package in KERAS_CHAPTER_PACKAGES:
        for path in sorted((REPO / "fetal_lib" / package).rglob("*.py")):
            found = imported_modules(path) & {"tensorflow", "torch", "jax"}
            assert not found, f"{path.relative_to(REPO)} imports {sorted(found)}"
