"""What a chapter's code depends on: the ``fetal_lib`` modules its notebook and its package import,
directly or through others, read from the source with ``ast`` (nothing is imported or run).

The reuse key of a chapter (:mod:`fetal_lib.book.cache`) hashes these files, not the whole library:
an edit to the app, or to another chapter's package, leaves the chapter's key as it was.
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Iterable

PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # fetal_lib/
TOP = PACKAGE_ROOT.name


def module_files(root: Path = PACKAGE_ROOT) -> dict[str, Path]:
    """``{"fetal_lib.hc.measure": .../fetal_lib/hc/measure.py, "fetal_lib.hc": .../hc/__init__.py, ...}``."""
    root = Path(root)
    out = {}
    for path in root.rglob("*.py"):
        if "__pycache__" in path.parts:
            continue
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imported_names(source: str, module: str = "", is_package: bool = False) -> list[str]:
    """Dotted names of every ``fetal_lib`` import in ``source`` (top-level and inside functions;
    ``from fetal_lib.x import y`` gives both ``fetal_lib.x`` and ``fetal_lib.x.y``). Relative imports are
    resolved against ``module`` (a package's ``__init__`` when ``is_package``)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found += [name] + [f"{name}.{a.name}" for a in node.names]
    return [n for n in found if n == TOP or n.startswith(TOP + ".")]


def _resolve(name: str, files: dict[str, Path]) -> str | None:
    """The module a dotted import name lands in (``fetal_lib.hc.measure.HCModel`` -> ``fetal_lib.hc.measure``)."""
    while name and name not in files:
        name = name.rsplit(".", 1)[0] if "." in name else ""
    return name or None


def _with_parents(module: str) -> list[str]:
    """``fetal_lib.hc.measure`` -> itself and the packages whose ``__init__`` importing it runs."""
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def closure(start: Iterable[str], files: dict[str, Path] | None = None) -> set[str]:
    """Every module reached from the modules ``start`` by imports (with their parent packages)."""
    files = module_files() if files is None else files
    seen: set[str] = set()
    todo = [m for name in start for m in _with_parents(_resolve(name, files) or "") if m in files]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = files[module]
        for name in imported_names(path.read_text(encoding="utf-8"), module, path.name == "__init__.py"):
            target = _resolve(name, files)
            if target:
                todo += [m for m in _with_parents(target) if m in files and m not in seen]
    return seen


def chapter_modules(package: str, notebook: Path | None, files: dict[str, Path] | None = None) -> set[str]:
    """The modules a chapter depends on: every module of its ``package`` (``fetal_lib.hc``), what its
    notebook imports, and all they import in turn."""
    files = module_files() if files is None else files
    start = [m for m in files if m == package or m.startswith(package + ".")]
    if notebook is not None and Path(notebook).is_file():
        start += imported_names(Path(notebook).read_text(encoding="utf-8"))
    return closure(start, files)


def modules_sha256(modules: Iterable[str], files: dict[str, Path] | None = None, root: Path = PACKAGE_ROOT) -> str:
    """SHA-256 over the relative paths and bytes of ``modules``' files, in sorted order."""
    files = module_files(root) if files is None else files
    digest = hashlib.sha256()
    for path in sorted(files[m] for m in set(modules)):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


@lru_cache(maxsize=16)
def chapter_sha256(package: str, notebook: Path | None) -> str:
    """SHA-256 of the files :func:`chapter_modules` names (computed once per process and chapter)."""
    files = module_files()
    return modules_sha256(chapter_modules(package, notebook, files), files)
