"""No number typed by hand into the chapters or the book pages.

A figure in prose comes from a variable (an f-string field computed by the run) or from the
anchors table (`fetal_lib.anchors`, each row with its bib key). This test reads every chapter's
Markdown cells and the string literals of its code cells (the parameters cell excepted), and
every hand-written page under `book/`, and fails on a numeric literal that is none of:

* a single-digit integer (list markers, "2 CPU cores", "5-fold"), or a publication year;
* glued to a word ("HC18", "3D", "T1", "R2", "HD95");
* equal to a value of the anchors table whose bib key the same paragraph cites;
* one of the DESIGN_CONSTANTS below, each checked against the code constant it describes, so
  that prose and code cannot drift apart.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from fetal_lib import anchors
from fetal_lib.paths import BOOK_DIR, NOTEBOOK_DIR

NUMBER = re.compile(r"(?<![\w.\-/^])[-+]?\d[\d,]*(?:\.\d+)?(?:\s?%)?(?![\w^])")
YEAR = re.compile(r"^(19[5-9]\d|20[0-4]\d)$")


def _profile(name: str, section: str, key: str):
    from fetal_lib.config.profiles import load_profile

    return load_profile(name)[section][key]


def _spacing():
    from fetal_lib.brain_age.preprocess import SIZE, SPACING_MM

    return SPACING_MM, SIZE


# (pattern in the prose, check that the code agrees, what it describes)
DESIGN_CONSTANTS: list[tuple[str, object, str]] = [
    (r"\b3 mm\b", lambda: _spacing()[0] == (3.0, 3.0, 3.0), "brain-age preprocessing spacing"),
    (r"\b64\^3\b", lambda: _spacing()[1] == (64, 64, 64), "brain-age preprocessing grid"),
    (r"\b0\.027 mL per voxel", lambda: abs(3.0 ** 3 / 1000 - 0.027) < 1e-12 and _spacing()[0] == (3.0, 3.0, 3.0),
     "voxel volume at 3 mm"),
    (r"\b48\^3 crops", lambda: _profile("cpu", "brain_age", "seg_crop") == 48, "cpu profile's training crops"),
    (r"\b15 mm from the mask", lambda: __import__("fetal_lib.brain_age.segmentation", fromlist=["x"]).MARGIN_MM == 15.0,
     "label margin around the brain mask"),
    (r"\b256x256\b", lambda: (_profile("full", "hc18", "input_rows"), _profile("full", "hc18", "input_cols")) == (256, 256),
     "the source's input size, kept by the full profile"),
    (r"\b70/15/15\b", lambda: __import__("fetal_lib.data.splits", fromlist=["x"]).grouped_split.__defaults__[0] == (0.7, 0.15, 0.15),
     "default grouped split fractions"),
    (r"\b16 classes\b|\b15 anomalies\b",
     lambda: len(__import__("fetal_lib.data.fetal_brain_anomaly_16class", fromlist=["x"]).CLASSES) == 16,
     "classes of the 16-class anomaly export"),
    (r"\+-10 %", lambda: __import__("fetal_lib.hc.calibration", fromlist=["x"]).MAX_CORRECTION == 0.10,
     "bound of the size-calibration factor"),
    (r"\b0\.50, 0\.55, \.\.\., 0\.95\b",
     lambda: __import__("fetal_lib.metrics.segmentation", fromlist=["x"]).COCO_IOU_THRESHOLDS == tuple(round(0.5 + 0.05 * k, 2) for k in range(10)),
     "the COCO IoU thresholds of chapter 2's mAP"),
    (r"\b0\.1 above chance\b", lambda: __import__("fetal_lib.us.floor", fromlist=["x"]).FLOOR_MARGIN == 0.1,
     "chapter 3's sanity floor: validation balanced accuracy above chance by this margin"),
    (r"\bper 100 mm\b", lambda: True, "a unit of a printed slope, not a result"),
    (r"\b95\s?% (?:bootstrap )?(?:CI|confidence)", lambda: True, "the confidence level, a convention"),
    (r"\+1 SD\b", lambda: True, "the unit of a standardised weight"),
]


def _strip_markup(text: str) -> str:
    text = re.sub(r"```.*?```|~~~.*?~~~", " ", text, flags=re.S)
    text = re.sub(r"<!--.*?-->", " ", text, flags=re.S)
    text = re.sub(r"\{[a-z-]+\}`[^`]*`", " CITE ", text)  # MyST roles ({cite}`key`) are kept apart below
    text = re.sub(r"`[^`]*`", " ", text)
    text = re.sub(r"\$[^$]*\$", " ", text)
    text = re.sub(r"\]\([^)]*\)|https?://\S+", " ", text)
    return text


def _cited_keys(paragraph: str) -> set[str]:
    return {k.strip() for m in re.finditer(r"\{cite[a-z:]*\}`([^`]*)`", paragraph) for k in m.group(1).split(",")}


def _anchor_values(cited: set[str]) -> set[float]:
    out: set[float] = set()
    for a in anchors.ANCHORS.values():
        if a.bib in cited:
            out.update(v for v in (a.value, a.sd, a.high) if v is not None)
    return out


def typed_numbers(paragraph: str) -> list[str]:
    """The numeric literals of one paragraph of prose that no rule above allows."""
    cited = _cited_keys(paragraph)
    text = _strip_markup(paragraph)
    for pattern, _check, _why in DESIGN_CONSTANTS:
        text = re.sub(pattern, " ", text)
    bad = []
    for m in NUMBER.finditer(text):
        token = m.group(0).strip()
        bare = token.rstrip("%").strip().lstrip("+-").replace(",", "")
        if re.fullmatch(r"\d", bare) or YEAR.match(bare):
            continue
        try:
            if float(bare) in _anchor_values(cited):
                continue
        except ValueError:
            pass
        bad.append(token)
    return bad


def _paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", text) if p.strip()]


def _string_literals(source: str) -> list[str]:
    """String constants of code, and the literal parts of f-strings (not their format specs)."""
    out: list[str] = []

    def visit(node: ast.AST, in_spec: bool = False) -> None:
        if isinstance(node, ast.FormattedValue):
            visit(node.value)
            return  # node.format_spec: ":.2f" and the like are formats, not numbers
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and not in_spec:
            out.append(node.value)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return out


def prose_of_chapter(path: Path) -> list[tuple[str, str]]:
    """``(where, paragraph)`` for the Markdown cells and code-cell strings of one chapter."""
    import jupytext

    nb = jupytext.read(path)
    out = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            out += [(f"{path.name} cell {i}", p) for p in _paragraphs(cell.source)]
        elif cell.cell_type == "code" and "parameters" not in cell.metadata.get("tags", []):
            src = "\n".join(ln for ln in cell.source.splitlines() if not ln.lstrip().startswith(("%", "!")))
            out += [(f"{path.name} cell {i} (string)", s) for s in _string_literals(src)]
    return out


def book_pages() -> list[Path]:
    return sorted(p for p in BOOK_DIR.glob("*.md"))


CHAPTERS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))


@pytest.mark.parametrize("path", CHAPTERS + book_pages(), ids=lambda p: p.name)
def test_no_typed_numbers(path):
    if path.suffix == ".py":
        items = prose_of_chapter(path)
    else:
        items = [(path.name, p) for p in _paragraphs(path.read_text(encoding="utf-8"))]
    found = [f"{where}: {nums} in {para.strip()[:100]!r}" for where, para in items if (nums := typed_numbers(para))]
    assert not found, "numbers typed by hand (compute them, or take them from fetal_lib.anchors):\n" + "\n".join(found)


@pytest.mark.parametrize("pattern,check,why", DESIGN_CONSTANTS, ids=[d[2] for d in DESIGN_CONSTANTS])
def test_design_constants_in_prose_match_the_code(pattern, check, why):
    assert check(), f"the prose says {pattern!r} ({why}) but the code no longer does"


def test_the_hunter_catches_typed_figures():
    assert typed_numbers("The model scores 2.61 mm on the test split.") == ["2.61"]
    assert typed_numbers("Scored on 335 images, hidden annotations.") == ["335"]
    assert typed_numbers("about 0.98 with outline masks") == ["0.98"]
    assert typed_numbers("12 to 35 minutes a chapter") == ["12", "35"]
    # allowed: single digits, years, words with digits, design constants, cited anchors
    assert typed_numbers("HC18 and 3D T1 images, R2, 5-fold CV on 2 CPU cores (Zeng et al. 2021).") == []
    assert typed_numbers("resampled to 3 mm on a 64^3 grid") == []
    assert typed_numbers("{cite}`burgosartizzu2020planes`: 12,400 images from 1,792 patients") == []
    assert typed_numbers("12,400 images from 1,792 patients") == ["12,400", "1,792"]  # not cited: not an anchor


def test_every_anchor_cites_a_bib_entry():
    bib = (BOOK_DIR / "references.bib").read_text(encoding="utf-8")
    keys = set(re.findall(r"@\w+\{([^,]+),", bib))
    missing = {a.key: a.bib for a in anchors.ANCHORS.values() if a.bib not in keys}
    assert not missing, f"anchors citing keys absent from book/references.bib: {missing}"
