"""The audit mapping names only what exists: anchors, keys the chapters write, headings, bib keys, code.

The keys a chapter writes are read from its notebook's source (the ``metrics`` and ``headline``
dicts it passes to ``run.finish``), not from any run; keys nested below them (table columns,
record fields) must be string literals of the notebook or of ``fetal_lib``.
"""

from __future__ import annotations

import ast
import re
from functools import lru_cache
from pathlib import Path

import pytest

from fetal_lib import anchors
from fetal_lib.book import metric_path
from fetal_lib.book.audit_map import CLAIMS, DESCRIPTIVE_ANCHORS, FLAWS, SOURCES, Claim, Figure, Flaw, Pair, paths_by_chapter
from fetal_lib.book.chapters import PACKAGES, REGISTRY, find_source
from fetal_lib.paths import BOOK_DIR, REPO_ROOT

METRICS_NAMES = {"metrics", "headline"}  # the dicts a chapter passes to run.finish (headline is spread into metrics)


def _source(path: Path) -> str:
    """A notebook's Python, with the IPython magics dropped."""
    return "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in path.read_text(encoding="utf-8").splitlines())


def _key_pattern(node: ast.AST) -> str | None:
    """A regex for a dict key: a string literal exactly, an f-string with ``.+`` for its fields."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return re.escape(node.value)
    if isinstance(node, ast.JoinedStr):
        return "".join(re.escape(v.value) if isinstance(v, ast.Constant) else ".+" for v in node.values)
    return None


def written_key_patterns(path: Path) -> set[str]:
    """Patterns of the top-level keys a chapter notebook puts in its ``metrics`` (or ``headline``) dict."""
    out: set[str] = set()

    def dict_keys(node: ast.AST) -> None:
        if isinstance(node, ast.Dict):
            out.update(p for k in node.keys if k is not None and (p := _key_pattern(k)))
        elif isinstance(node, ast.DictComp) and (p := _key_pattern(node.key)):
            out.add(p)

    for node in ast.walk(ast.parse(_source(path))):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        targets = [e for t in targets for e in (t.elts if isinstance(t, ast.Tuple) else [t])]  # a, metrics["k"] = ...
        value = getattr(node, "value", None)
        for t in targets:
            if isinstance(t, ast.Name) and t.id in METRICS_NAMES and value is not None:
                dict_keys(value)
            elif isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name) and t.value.id in METRICS_NAMES:
                if p := _key_pattern(t.slice):
                    out.add(p)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "update"
                and isinstance(node.func.value, ast.Name) and node.func.value.id in METRICS_NAMES):
            for arg in node.args:
                dict_keys(arg)
    return out


def package_key_patterns(package: str) -> set[str]:
    """Patterns of every string key of a dict a chapter's package builds (its metrics document is built
    there: a dict literal, ``d[key] = ...``, ``dict(key=...)``)."""
    out: set[str] = set()
    for path in (REPO_ROOT / Path(*package.split("."))).rglob("*.py"):
        for node in ast.walk(ast.parse(_source(path))):
            if isinstance(node, ast.Dict):
                out.update(p for k in node.keys if k is not None and (p := _key_pattern(k)))
            elif isinstance(node, ast.DictComp) and (p := _key_pattern(node.key)):
                out.add(p)
            elif isinstance(node, ast.Assign):
                out.update(p for t in node.targets if isinstance(t, ast.Subscript) and (p := _key_pattern(t.slice)))
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
                out.update(re.escape(k.arg) for k in node.keywords if k.arg)
    return out


def writes(chapter: str, key: str) -> bool:
    """Whether chapter ``chapter`` writes top-level metrics key ``key``: its notebook, or its package
    (:data:`fetal_lib.book.chapters.PACKAGES`), where the notebook's calls build the metrics document."""
    source = find_source(chapter)
    patterns = written_key_patterns(source) if source is not None else set()
    if chapter in PACKAGES:
        patterns |= package_key_patterns(PACKAGES[chapter])
    return any(re.fullmatch(p, key) for p in patterns)


@lru_cache(maxsize=1)
def code_strings() -> tuple[frozenset[str], tuple[str, ...]]:
    """String literals of ``fetal_lib`` and the notebooks, and the patterns of their f-strings."""
    literals: set[str] = set()
    patterns: set[str] = set()
    files = [*(REPO_ROOT / "fetal_lib").rglob("*.py"), *(REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.py")]
    for path in files:
        if path.name in ("audit_map.py", "audit_page.py"):
            continue  # the mapping itself does not count as a writer
        for node in ast.walk(ast.parse(_source(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                literals.add(node.value)
            elif isinstance(node, ast.JoinedStr):
                constant = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
                if sum(ch.isalpha() for ch in constant) >= 3:  # not f"{a} ({b})", which matches anything
                    patterns.add(_key_pattern(node) or "")
    return frozenset(literals), tuple(sorted(patterns))


def is_code_string(key: str) -> bool:
    literals, patterns = code_strings()
    return key in literals or any(re.fullmatch(p, key) for p in patterns)


def headings(chapter: str) -> set[str]:
    text = find_source(chapter).read_text(encoding="utf-8")
    return {m.group(1).strip() for m in re.finditer(r"^# #{1,4} (.+)$", text, flags=re.M)}


# ----------------------------------------------------------------------------- anchors


def test_every_anchor_is_a_claim_row_or_declared_descriptive():
    claimed = [p.anchor for c in CLAIMS for p in c.pairs]
    assert len(claimed) == len(set(claimed)), "an anchor in two rows of the claims table"
    assert not set(claimed) & DESCRIPTIVE_ANCHORS
    unknown = (set(claimed) | DESCRIPTIVE_ANCHORS) - set(anchors.ANCHORS)
    assert not unknown, f"not in fetal_lib.anchors: {sorted(unknown)}"
    left_out = set(anchors.ANCHORS) - set(claimed) - DESCRIPTIVE_ANCHORS
    assert not left_out, f"anchors neither in the claims table nor declared descriptive: {sorted(left_out)}"


def test_sources_and_chapters_are_known_and_cited_keys_exist():
    bib = set(re.findall(r"@\w+\{([^,]+),", (BOOK_DIR / "references.bib").read_text(encoding="utf-8")))
    for source in SOURCES.values():
        assert source.chapter in REGISTRY
        assert source.bib is None or source.bib in bib, source
    for row in (*CLAIMS, *FLAWS):
        assert row.source in SOURCES and row.chapter in REGISTRY, row


# ----------------------------------------------------------------------------- metric keys


def test_the_key_reader_finds_static_dynamic_and_updated_keys():
    assert writes("hc18", "hc_abs_diff_mean_mm") and writes("hc18", "pixel_accuracy_all_background")
    assert writes("us_classification", "planes_accuracy")  # headline[f"{t}_accuracy"]
    assert writes("brain_age", "seg_cv_dice_csf")  # metrics.update({f"seg_cv_dice_{...}": ...})
    assert writes("data", "split_groups_crossing")  # metrics["..."] = ...
    assert not writes("hc18", "hc_abs_diff_mean_mmm") and not writes("hc18", "planes_accuracy")
    assert is_code_string("HC |diff| mean (mm)") and not is_code_string("HC |diff| mean (cm)")


def test_every_top_level_key_of_the_mapping_is_written_by_its_chapter():
    missing = sorted(f"{chapter}: {path}" for chapter, paths in paths_by_chapter().items() for path in paths
                     if not writes(chapter, metric_path.keys(path)[0]))
    assert not missing, "metric keys that no chapter writes:\n" + "\n".join(missing)


def test_every_nested_key_of_the_mapping_is_a_string_the_code_writes():
    missing = sorted({f"{chapter}: {key!r} in {path}" for chapter, paths in paths_by_chapter().items() for path in paths
                      for key in metric_path.keys(path)[1:] if not is_code_string(key)})
    assert not missing, "keys found nowhere in fetal_lib or the notebooks:\n" + "\n".join(missing)


def test_every_path_parses():
    for chapter, paths in paths_by_chapter().items():
        for path in paths:
            assert metric_path.parse(path), (chapter, path)


# ----------------------------------------------------------------------------- links and code


def test_every_section_named_is_a_heading_of_its_chapter():
    wrong = [f"{row.chapter}: {row.section!r}" for row in (*CLAIMS, *FLAWS)
             if row.section and row.section not in headings(row.chapter)]
    assert not wrong, "sections that are not headings of the chapter's notebook:\n" + "\n".join(wrong)


def test_every_fix_names_code_that_exists():
    for flaw in FLAWS:
        for dotted in flaw.code:
            parts = dotted.split(".")
            for cut in range(len(parts), 0, -1):
                base = REPO_ROOT.joinpath(*parts[:cut])
                module = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
                if module.is_file():
                    break
            else:
                pytest.fail(f"{dotted}: no such module")
            rest = parts[cut:]
            assert len(rest) <= 1, f"{dotted}: only module or module.function"
            if rest:
                text = module.read_text(encoding="utf-8")
                assert re.search(rf"^(def|class) {rest[0]}\b|^{rest[0]}\s*[:=]", text, flags=re.M), f"{dotted}: not in {module}"


def test_a_row_mixing_chapters_is_refused():
    fig = Figure("hc18", "dice")
    with pytest.raises(ValueError, match="hc18"):
        Claim("zeng2021", "x", (Pair("Dice", "hc18.zeng2021.dice", fig),), "", "", "seg_benchmark")
    with pytest.raises(ValueError, match="hc18"):
        Flaw("seg_source", "x", "y", "seg_benchmark", "", (fig,))


# ----------------------------------------------------------------------------- against real runs, where present


def test_every_figure_resolves_in_the_real_results_present():
    """Where ``build/results/<chapter>/metrics.json`` of a real run exists, each mapped path is in it."""
    from fetal_lib.book.audit_map import figures
    from fetal_lib.book.audit_page import run_problem
    from fetal_lib.results import load_metrics
    from fetal_lib.paths import build_dir

    docs = load_metrics(build_dir() / "results")
    checked, missing = 0, []
    for fig in figures():
        doc = docs.get(fig.chapter)
        if run_problem(doc, fig.chapter, fig.datasets) is not None:
            continue
        for path in fig.paths():
            checked += 1
            try:
                metric_path.resolve(doc["metrics"], path)
            except metric_path.MetricPathError as exc:
                missing.append(f"{fig.chapter}: {exc}")
    if not checked:
        pytest.skip(f"no real chapter results under {build_dir() / 'results'}")
    assert not missing, "\n".join(missing)
