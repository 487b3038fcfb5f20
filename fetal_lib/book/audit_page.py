"""The generated part of the audit page (``book/generated/audit.md``, included by ``book/audit.md``).

Four sections, every figure read at build time or declared in code, none typed here:

1. the claims table: each published figure (``fetal_lib.anchors``, cited) beside ours from
   ``build/results/<chapter>/metrics.json`` (:data:`fetal_lib.book.audit_map.CLAIMS`);
2. each source's flaws, with the figures of the chapter section that measures them
   (:data:`fetal_lib.book.audit_map.FLAWS`), linked;
3. the withheld-data evaluations found under ``build/results/withheld/`` (:mod:`fetal_lib.book.withheld`);
4. the decisions the deployed models rest on, one row per :class:`~fetal_lib.config.chapter_spec.Decision`
   that each chapter declares in its ``spec.py`` (:data:`fetal_lib.book.chapters.SPECS`).

A chapter not run yet, run on a phantom for the datasets a figure rests on, or whose
``metrics.json`` lacks the figure, says so in place of the number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from fetal_lib import anchors
from fetal_lib.book import metric_path
from fetal_lib.book.audit_map import CLAIMS, FLAWS, SOURCES, Claim, Figure, Flaw
from fetal_lib.book.chapters import REGISTRY, SPECS
from fetal_lib.config.chapter_spec import ChapterSpec, Decision
from fetal_lib.book.withheld import FOLDER, Withheld
from fetal_lib.book.chapters import executed_chapters

Docs = Mapping[str, Mapping[str, Any]]
Links = Mapping[str, str]


def section_id(heading: str) -> str:
    """The HTML id Sphinx gives a section with this heading (docutils' ``make_id``)."""
    from docutils.nodes import make_id

    return make_id(heading)


def chapter_links(book_dir: Path) -> dict[str, str]:
    """Chapter id -> its page (``chapters/NN_slug.html``) for every chapter executed into ``book_dir``."""

    return {cid: f"{stem}.html" for cid, stem in executed_chapters(Path(book_dir))}


def chapter_name(cid: str) -> str:
    """``"Chapter 1"`` (``"The data chapter"`` for chapter 0)."""
    number = REGISTRY.get(cid, (None, cid))[0]
    return "The data chapter" if number == 0 else f"Chapter {number}" if number is not None else f"`{cid}`"


def section_link(cid: str, section: str, links: Links) -> str:
    """A link to ``section`` of chapter ``cid`` (its top when empty); plain text when it is not in this build."""
    text = f"{chapter_name(cid)}, {section}" if section else f"{chapter_name(cid)}: {REGISTRY.get(cid, (0, cid))[1]}"
    if cid not in links:
        return f"{text} (not in this build)"
    href = links[cid] + (f"#{section_id(section)}" if section else "")
    return f'<a href="{href}">{text}</a>'


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _number(value: float, digits: int) -> str:
    return f"{value:,.0f}" if digits == 0 else f"{value:.{digits}f}"


def _with_unit(text: str, unit: str) -> str:
    return f"{text} {unit}" if unit else text


def run_problem(doc: Mapping[str, Any] | None, cid: str, datasets: Sequence[str] = ()) -> str | None:
    """Why no figure of chapter ``cid`` can be shown (None: it can).

    Not run, unreadable, a dataset it rests on absent from the run, or a phantom: ``datasets``
    names those the figure rests on (empty: any phantom dataset of the run counts).
    """
    if doc is None:
        return f"not run yet (no `build/results/{cid}/metrics.json`)"
    if "error" in doc or not isinstance(doc.get("metrics"), Mapping):
        return f"`build/results/{cid}/metrics.json` unreadable"
    prov = doc.get("provenance", {}) or {}
    data = prov.get("data", {}) or {}
    absent = [name for name in datasets if name not in data]
    if absent:
        return f"`{', '.join(absent)}` not used in this run"
    names = list(datasets) or sorted(data)
    phantom = [name for name in names if (data.get(name) or {}).get("is_phantom")]
    if phantom or (not data and prov.get("on_phantom")):
        return (f"**PHANTOM** run (profile `{prov.get('profile', '?')}`, synthetic "
                f"{', '.join(f'`{n}`' for n in phantom) or 'data'}): no figure shown")
    return None


def read_figure(fig: Figure, docs: Docs) -> tuple[bool, str]:
    """``(True, "2.51 ± 2.00 mm (95 % CI 2.16 to 2.89; n = 108 test images)")``, or ``(False, why not)``."""
    doc = docs.get(fig.chapter)
    problem = run_problem(doc, fig.chapter, fig.datasets)
    if problem:
        return False, problem
    metrics = doc["metrics"]  # type: ignore[index]
    try:
        value = metric_path.number(metric_path.resolve(metrics, fig.path))
    except metric_path.MetricPathEmpty:
        return False, "not measured in this run"
    except metric_path.MetricPathError as exc:
        return False, f"not in this run's metrics ({exc})"
    if value is None:
        return False, "not measured in this run"
    text = _number(value * fig.scale, fig.digits)
    extras = []
    if fig.sd:
        sd = _optional(metrics, fig.sd)
        if sd is not None:
            text += f" ± {_number(sd * fig.scale, fig.digits)}"
    text = _with_unit(text, fig.unit)
    ci = _interval(metrics, fig.ci)
    if ci is not None:
        extras.append(f"95 % CI {_number(ci[0] * fig.scale, fig.digits)} to {_number(ci[1] * fig.scale, fig.digits)}")
    if fig.n:
        n = _optional(metrics, fig.n)
        if n is not None:
            extras.append(_with_unit(f"n = {n:,.0f}", fig.n_unit))
    return True, text + (f" ({'; '.join(extras)})" if extras else "")


def _optional(metrics: Mapping[str, Any], path: str) -> float | None:
    try:
        return metric_path.number(metric_path.resolve(metrics, path))
    except metric_path.MetricPathError:
        return None


def _interval(metrics: Mapping[str, Any], ci: str | tuple[str, str] | None) -> tuple[float, float] | None:
    if ci is None:
        return None
    try:
        if isinstance(ci, str):
            return metric_path.interval(metric_path.resolve(metrics, ci))
        low, high = (metric_path.number(metric_path.resolve(metrics, p)) for p in ci)
    except metric_path.MetricPathError:
        return None
    return (low, high) if low is not None and high is not None else None


def _figures_cell(items: Iterable[tuple[str, Figure | None]], docs: Docs) -> str:
    """Labelled figures, one a line; one line only when none can be shown for the same reason."""
    readings = [(label, read_figure(fig, docs) if fig is not None else (False, "not measured")) for label, fig in items]
    reasons = {text for _, (ok, text) in readings if not ok}
    if readings and not any(ok for _, (ok, _) in readings) and len(reasons) == 1:
        return reasons.pop()
    return "<br>".join(f"{label}: {text}" for label, (_, text) in readings)


def _run_note(cid: str, docs: Docs) -> str:
    doc = docs.get(cid)
    if doc is None or "error" in doc:
        return ""
    prov = doc.get("provenance", {}) or {}
    git = prov.get("git", {}) or {}
    sha = str(git.get("sha", "unknown"))[:10] + (" (dirty)" if git.get("dirty") else "")
    return f"<br>profile `{prov.get('profile', '?')}`, commit `{sha}`"


def _cite(bib: str | None) -> str:
    return f" {{cite}}`{bib}`" if bib else ""


def claim_row(claim: Claim, docs: Docs, links: Links, previous: Claim | None = None) -> str:
    """One row of the claims table; what repeats the ``previous`` row of the same source says so briefly."""
    source = SOURCES[claim.source]
    same = previous is not None and previous.source == claim.source
    published = "<br>".join(f"{p.label} {anchors.get(p.anchor).text().replace(' +- ', ' ± ')}" for p in claim.pairs)
    who = f"_the same source_, {claim.what}" if same else f"**{source.name}**, {claim.what}{_cite(source.bib)}"
    cells = [
        f"{who}:<br>{published}",
        "as above" if same and claim.flaw and claim.flaw == previous.flaw else claim.flaw or "none known",  # type: ignore[union-attr]
        _figures_cell(((p.label, p.ours) for p in claim.pairs), docs),
        "as above" if same and claim.protocol == previous.protocol else claim.protocol,  # type: ignore[union-attr]
        section_link(claim.chapter, claim.section, links) + _run_note(claim.chapter, docs),
    ]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def claims_markdown(docs: Docs, links: Links, claims: Sequence[Claim] = CLAIMS) -> str:
    """The claims table: one row per published claim, ours beside it."""
    head = ("| claim, as published | flaw that inflates it | ours | our protocol | measured in |\n"
            "|---|---|---|---|---|\n")
    rows = [claim_row(c, docs, links, claims[i - 1] if i else None) for i, c in enumerate(claims)]
    return head + "\n".join(rows) + "\n"


def flaw_row(flaw: Flaw, docs: Docs, links: Links) -> str:
    """One row of a source's flaws table."""
    measured = _figures_cell(((f.label, f) for f in flaw.measures), docs) if flaw.measures else ""
    note = f"_{flaw.note}_" if flaw.note else ""
    fix = flaw.fix + (f" ({', '.join(f'`{c}`' for c in flaw.code)})" if flaw.code else "")
    cells = [flaw.flaw, fix, "<br>".join(x for x in (measured, note) if x) or "-",
             section_link(flaw.chapter, flaw.section, links)]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def flaws_markdown(docs: Docs, links: Links, flaws: Sequence[Flaw] = FLAWS) -> str:
    """A sub-section per source (in chapter order): its flaws, our fix, what the chapters measured."""
    order = {cid: i for i, cid in enumerate(REGISTRY)}
    keys = sorted({f.source for f in flaws}, key=lambda k: (order.get(SOURCES[k].chapter, 99), list(SOURCES).index(k)))
    parts = []
    for key in keys:
        source = SOURCES[key]
        parts.append(f"### {source.name[0].upper()}{source.name[1:]} ({chapter_name(source.chapter).lower()})\n")
        if source.bib:
            parts.append(f"Source: {{cite}}`{source.bib}`.\n")
        parts.append("| flaw | what we do | measured here | where |\n|---|---|---|---|\n"
                     + "\n".join(flaw_row(f, docs, links) for f in flaws if f.source == key) + "\n")
    return "\n".join(parts)


def withheld_markdown(entries: Sequence[Withheld]) -> str:
    """The withheld-data evaluations found, or a sentence saying there are none."""
    if not entries:
        return f"_No withheld-data evaluation found under `build/results/{FOLDER}/`._\n"
    lines = ["| evaluation | figures | n | provenance |", "|---|---|---|---|"]
    for entry in entries:
        if entry.doc is None:
            lines.append(f"| `{entry.path.name}` | {_cell(str(entry.problem))} | | |")
            continue
        doc, prov = entry.doc, entry.doc["provenance"]
        if prov["on_phantom"]:
            figures = "**PHANTOM** data: no figure shown"
        else:
            figures = "<br>".join(_withheld_metric(m) for m in doc["metrics"])
        git = prov.get("git", {})
        sha = str(git.get("sha", "unknown"))[:10] + (" (dirty)" if git.get("dirty") else "")
        chapter = f" ({chapter_name(doc['chapter']).lower()})" if doc.get("chapter") in REGISTRY else ""
        provenance = f"`{prov['command']}`<br>commit `{sha}`, {prov['date_utc']}"
        if prov.get("model"):
            provenance += f"<br>model `{prov['model']}`"
        if prov.get("data"):
            provenance += f"<br>data: {prov['data']}"
        cells = [f"**{doc['name']}**{chapter}: {doc['description']}", figures,
                 _with_unit(f"{doc['n']:,}", doc.get("n_unit", "")), provenance]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _withheld_metric(m: Mapping[str, Any]) -> str:
    value = f"{m['value']:.4g}"
    text = f"{m['name']}: {_with_unit(value, m.get('unit') or '')}"
    if m.get("ci95"):
        text += f" (95 % CI {m['ci95'][0]:.4g} to {m['ci95'][1]:.4g})"
    return text


# What each ``how`` of a decision means, as the decisions table says it.
HOW = {"build": "decided inside every build, on training-side data",
       "profile": "fixed in the profile, with its evidence and the command that reproduces it"}


def decision_row(spec: ChapterSpec, decision: Decision) -> str:
    """One row of the decisions table: chapter, setting, how, data, evidence, command."""
    cells = [chapter_name(spec.id), decision.setting, decision.how, decision.data, decision.evidence,
             f"`{decision.command}`"]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def decisions_markdown(specs: Iterable[ChapterSpec] | None = None) -> str:
    """The decisions table: every decision each chapter's declaration lists, in chapter order."""
    head = "| chapter | setting | how | data | evidence | command |\n|---|---|---|---|---|---|\n"
    rows = [decision_row(spec, d) for spec in (SPECS.values() if specs is None else specs) for d in spec.decisions]
    return head + "\n".join(rows) + "\n"


def audit_markdown(docs: Docs, withheld: Sequence[Withheld], links: Links) -> str:
    """The whole generated part of the audit page."""
    return "\n".join([
        "## Published claims beside our figures\n",
        "One row per published claim: the figure as published (from the anchors table, cited), the flaw of its "
        "protocol that inflates it where there is one, and ours on the same task, read from the chapter's "
        "`metrics.json` with its CI where the chapter computes one. A chapter not run yet, or run on a phantom, "
        "says so instead of giving a number.\n",
        claims_markdown(docs, links),
        "## Each source's flaws, as measured here\n",
        "Each flaw of a source project, what the chapters do instead, and what the chapter that measures it found "
        "in its last run, with a link to that section.\n",
        flaws_markdown(docs, links),
        "## Withheld-data evaluations\n",
        "Data withheld from the chapters altogether are scored outside the book; each evaluation writes "
        f"`build/results/{FOLDER}/<name>.json` with the command, commit, date, metrics and n "
        "(format: `fetal_lib.book.withheld`).\n",
        withheld_markdown(withheld),
        "## Decisions the deployed models rest on\n",
        "A figure is only as honest as the data its choices were made on. Every setting a deployed model relies on "
        f"that was decided by a measurement, as each chapter declares it (`fetal_lib/<chapter>/spec.py`): `build` is "
        f"{HOW['build']}; `profile` is {HOW['profile']} (the profile's comments say the same). No decision reads a "
        "test split or withheld data: the test splits are scored once, at the end, and the withheld data outside the "
        "book, through the commands a user runs (\"Withheld-data evaluations\" above).\n",
        decisions_markdown(),
    ])


__all__ = ["audit_markdown", "chapter_links", "claims_markdown", "decisions_markdown", "flaws_markdown", "read_figure",
           "run_problem", "section_id", "section_link", "withheld_markdown"]
