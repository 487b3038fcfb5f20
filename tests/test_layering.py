"""The package's layers, read from the source with ``ast`` (nothing imported): imports only go down.

core and shared ML (every first-level name that is neither a chapter nor a front-end) < chapters (a
package with a ``spec.py``) < front-ends. A chapter or shared module never imports a front-end, a
shared module never imports a chapter, a chapter imports another chapter only where declared
(``DECLARED``), and no two files or first-level names import each other, directly or in a longer
cycle. Function-local imports count like top-level ones.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "fetal_lib"
FRONT_ENDS = {"book", "commands", "app", "lab", "doctor", "cli", "bench"}
# chapter -> the chapters its science needs (chapter 3's head finder is chapter 1's network; chapter 2
# segments HC18 with chapter 1's data steps and measures heads with its biometry)
DECLARED = {"us": {"hc"}, "seg_benchmark": {"hc"}}


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = ["fetal_lib", *path.relative_to(ROOT).with_suffix("").parts]
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()
CHAPTERS = {p.parent.name for p in ROOT.glob("*/spec.py")}


def _first(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def _layer(name: str) -> str:
    return "front" if name in FRONT_ENDS else "chapter" if name in CHAPTERS else "shared"


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            for name in names:
                while name and name not in MODULES:
                    name = name.rsplit(".", 1)[0] if "." in name else ""
                if name and name != module and name != "fetal_lib":
                    targets.add(name)
        edges[module] = targets
    return edges


EDGES = _edges()


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one node (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[set[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = set()
                while True:
                    member = stack.pop()
                    on.discard(member)
                    comp.add(member)
                    if member == node:
                        break
                if len(comp) > 1:
                    out.append(comp)
    return out


def test_the_layers_are_what_the_package_holds():
    assert {"hc", "seg_benchmark", "us", "ga_mri", "brain_age", "overview"} <= CHAPTERS
    assert not CHAPTERS & FRONT_ENDS


def test_no_import_goes_up_a_layer():
    upward = []
    for module, targets in EDGES.items():
        mine = _first(module)
        for target in targets:
            theirs = _first(target)
            if theirs == mine or module == "fetal_lib":
                continue
            if _layer(mine) in ("chapter", "shared") and _layer(theirs) == "front":
                upward.append(f"{module} imports front-end {target}")
            if _layer(mine) == "shared" and _layer(theirs) == "chapter":
                upward.append(f"shared {module} imports chapter {target}")
            if _layer(mine) == "chapter" and _layer(theirs) == "chapter" and theirs not in DECLARED.get(mine, set()):
                upward.append(f"chapter {module} imports chapter {target} (not declared in DECLARED)")
    assert not upward, "\n".join(sorted(upward))


def test_no_two_files_import_each_other():
    # a package's __init__ re-exporting its own modules is not a cycle of design
    graph = {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in EDGES.items()}
    cycles = [" -> ".join(sorted(c)) for c in _cycles(graph)]
    assert not cycles, "\n".join(cycles)


def test_no_two_first_level_names_import_each_other():
    graph: dict[str, set[str]] = {}
    for module, targets in EDGES.items():
        if module != "fetal_lib":
            graph.setdefault(_first(module), set()).update(_first(t) for t in targets if _first(t) != _first(module))
    assert not _cycles(graph)


@pytest.mark.parametrize("graph, expected", [
    ({"a": {"b"}, "b": {"a"}, "c": set()}, [{"a", "b"}]),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [{"a", "b", "c"}]),
    ({"a": {"b"}, "b": set()}, []),
])
def test_the_cycle_finder_finds_known_cycles(graph, expected):
    assert sorted(map(sorted, _cycles(graph))) == sorted(map(sorted, expected))
