"""Results of a chapter run: figures, tables and ``metrics.json`` with provenance.

A chapter creates one :class:`ChapterRun` right after its ``parameters`` cell::

    run = ChapterRun("hc18", profile, data_dir, results_dir, seed, data_status)
    run.banner()                      # visible admonition when any dataset is a phantom
    run.figure(fig, "samples")        # results_dir/figures/samples.png, shown in the book
    run.table(df, "counts")           # results_dir/tables/counts.csv, shown in the book
    run.finish({"dice": 0.91})        # results_dir/metrics.json (atomic), with provenance

``data_status`` maps each dataset the chapter used to a dict with at least ``is_phantom``
and ``status``; :func:`data_status` builds it from ``fetal_lib.data.sources`` results.
Every file is written atomically (``fetal_lib.io``), so an interrupted chapter never
leaves a half-written result.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

from fetal_lib.config.chapter_spec import ChapterSpec
from fetal_lib.provenance import describe_machine, git_state, machine_summary, package_sha256, package_versions
from fetal_lib.io import atomic_path, write_json_atomic
from fetal_lib.config.overrides import describe
from fetal_lib.config.overrides import detect
from fetal_lib.tables import collapsed as boxed
from fetal_lib.tables import styled

METRICS_FILE = "metrics.json"
SCHEMA_VERSION = 1


def data_status(sources: Mapping[str, Any] | Iterable[Any]) -> dict[str, dict[str, Any]]:
    """Per-dataset status from ``DatasetSource`` objects (or dicts with the same fields).

    Returns ``{name: {"is_phantom": bool, "status": str, "root": str[, "n_present", "n_expected"]}}``;
    ``status`` is the source's own word ("complete", "partial", "phantom").
    """
    items = sources.values() if isinstance(sources, Mapping) else sources
    out: dict[str, dict[str, Any]] = {}
    for src in items:
        get = src.get if isinstance(src, Mapping) else (lambda k, s=src: getattr(s, k, None))
        name = str(get("name"))
        out[name] = {
            "is_phantom": bool(get("is_phantom")),
            "status": str(get("status")),
            "root": str(get("root")),
        }
        for key in ("n_present", "n_expected"):
            if get(key) is not None:
                out[name][key] = get(key)
    return out


def _jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays and paths to plain JSON; NaN/inf become None."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


@dataclass
class ChapterRun:
    """One execution of one chapter; owns ``results_dir`` (figures/, tables/, metrics.json)."""

    chapter: str
    profile: str
    data_dir: str
    results_dir: str | Path
    seed: int
    data_status: Mapping[str, Mapping[str, Any]] | None = None
    parameters: Mapping[str, Any] | None = None
    compute: Mapping[str, Any] | None = None  # e.g. {"precision": PrecisionChoice.to_dict()}: shown at the top, recorded
    overrides: Mapping[str, Any] | None = None  # parameters not the profile's; None: found by fetal_lib.config.overrides.detect

    def __post_init__(self) -> None:
        spec = self.chapter if isinstance(self.chapter, ChapterSpec) else None
        self.chapter = spec.id if spec else str(self.chapter)
        self.results_dir = Path(self.results_dir)
        self.data_status = {k: dict(v) for k, v in (self.data_status or {}).items()}
        self._t0 = time.perf_counter()
        self._started = datetime.now(timezone.utc)
        self.figures: list[str] = []
        self.tables: list[str] = []
        self.warnings: list[str] = []
        self.compute = dict(self.compute or {})
        if self.overrides is None:

            self.overrides = detect(spec or self.chapter, self.profile, self.parameters, self.seed)
        self.overrides = dict(self.overrides)
        self._banner_display = None
        self.machine = machine_summary()  # asked once: nvidia-smi is a process
        self.results_dir.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ status
    @property
    def phantom_datasets(self) -> list[str]:
        """Names of the datasets this run used as phantoms."""
        return sorted(n for n, s in self.data_status.items() if s.get("is_phantom"))

    @property
    def on_phantom(self) -> bool:
        """True when at least one dataset of this run is a synthetic phantom."""
        return bool(self.phantom_datasets)

    def banner_markdown(self) -> str:
        """MyST admonition stating what data the chapter ran on (phantom: a warning).

        A titled ``{admonition}`` with the warning or note style: ``{warning}`` takes no title, and
        would print its first line as the start of its text.
        """
        rows = "\n".join(
            f"- `{name}`: " + ("**phantom** (synthetic)" if s.get("is_phantom") else f"real data, {s.get('status')}")
            for name, s in sorted(self.data_status.items())
        ) or "- no dataset"
        if self.on_phantom and len(self.phantom_datasets) == len(self.data_status):
            head = (
                ":::{admonition} Run on phantom data\n:class: warning\n"
                f"Profile `{self.profile}`. These numbers come from synthetic phantoms with known "
                "answers, not from the real datasets; they test the pipeline, not the method.\n\n"
            )
        elif self.on_phantom:
            head = (
                ":::{admonition} Partly run on phantom data\n:class: warning\n"
                f"Profile `{self.profile}`. The datasets marked **phantom** below were absent and replaced "
                "by synthetic phantoms: every number drawn from them tests the pipeline, not the method.\n\n"
            )
        else:
            head = f":::{{admonition}} Data used\n:class: note\nProfile `{self.profile}`, seed {self.seed}.\n\n"
        text = head + rows + self._machine_markdown() + self._compute_markdown() + self._overrides_markdown() + "\n:::\n"
        for message in self.warnings:
            text += f"\n:::{{admonition}} Training cut short\n:class: warning\n{message}\n:::\n"
        return text

    def _machine_markdown(self) -> str:
        """The machine that ran the chapter (its GPU first, where it has one): a page built from notebooks
        executed elsewhere says where they ran."""
        return f"\n- ran on: {describe_machine(self.machine)}"

    def _compute_markdown(self) -> str:
        precision = self.compute.get("precision")
        if not precision:
            return ""
        return f"\n- training precision: `{precision['precision']}` ({precision['reason']})"

    def _overrides_markdown(self) -> str:

        if not self.overrides:
            return ""
        return f"\n- **not the profile's**: {describe(self.overrides)} (set on top of profile `{self.profile}`)"

    def banner(self) -> None:
        """Display :meth:`banner_markdown` in the notebook (rendered by the book); :meth:`warn`
        later updates this same output, so a warning shows at the top of the chapter."""
        from IPython.display import Markdown, display

        if self._banner_display is None:
            self._banner_display = display(Markdown(self.banner_markdown()), display_id=True)
        else:
            self._banner_display.update(Markdown(self.banner_markdown()))

    def warn(self, message: str) -> None:
        """Record a warning in ``metrics.json``, show it here and in the banner at the top."""
        from IPython.display import Markdown, display

        self.warnings.append(message)
        display(Markdown(f":::{{warning}}\n{message}\n:::\n"))
        if self._banner_display is not None:
            self.banner()

    # ------------------------------------------------------------------ outputs
    def figure(self, fig: Any, name: str, dpi: int = 110, show: bool = True) -> None:
        """Save a matplotlib figure as ``figures/<name>.png`` (atomic), show that PNG, close it.

        The book shows the saved file itself (the kernel runs with the Agg backend), so
        what a reader sees is exactly what ``figures/`` holds.
        """
        import matplotlib.pyplot as plt

        target = self.results_dir / "figures" / f"{name}.png"
        with atomic_path(target) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
        plt.close(fig)
        self.figures.append(target.name)  # names relative to figures/
        if show:
            from IPython.display import Image, display

            display(Image(filename=str(target)))

    def table(self, df: Any, name: str, show: bool = True, index: bool = False, collapsed: str | None = None) -> None:
        """Save a pandas DataFrame as ``tables/<name>.csv`` (atomic) and show it (``collapsed``: in a closed
        box whose one line reads this, opened by the reader)."""
        target = self.results_dir / "tables" / f"{name}.csv"
        with atomic_path(target) as tmp:
            df.to_csv(tmp, index=index)
        self.tables.append(target.name)
        if show:
            from IPython.display import display


            # rounded per column for the page; the CSV keeps every digit
            display(boxed(df, collapsed, index) if collapsed else styled(df, index))

    # ------------------------------------------------------------------ finish
    def provenance(self) -> dict[str, Any]:
        """Everything needed to say what produced the numbers, measured now."""
        return {
            "git": git_state(),
            "fetal_lib_sha256": package_sha256(),
            "profile": self.profile,
            "seed": self.seed,
            "data_dir": self.data_dir,
            "parameters": _jsonable(dict(self.parameters or {})),
            "overrides": _jsonable(self.overrides),
            "data": self.data_status,
            "on_phantom": self.on_phantom,
            "compute": _jsonable(self.compute),
            "warnings": list(self.warnings),
            "packages": package_versions(),
            "machine": self.machine,
            "started_utc": self._started.isoformat(timespec="seconds"),
            "wall_time_s": round(time.perf_counter() - self._t0, 3),
        }

    def finish(self, metrics: Mapping[str, Any], headline: Iterable[str] | None = None) -> None:
        """Write ``metrics.json`` atomically: metrics, headline keys, outputs, provenance.

        ``headline`` names the metrics shown in the book's results table (default: all
        top-level numbers).
        """
        metrics = _jsonable(dict(metrics))
        if headline is None:
            headline = [k for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        doc = {
            "schema": SCHEMA_VERSION,
            "chapter": self.chapter,
            "metrics": metrics,
            "headline": list(headline),
            "figures": sorted(set(self.figures)),
            "tables": sorted(set(self.tables)),
            "provenance": self.provenance(),
        }
        missing = [k for k in doc["headline"] if k not in metrics]
        if missing:
            raise KeyError(f"headline metrics not in metrics: {missing}")
        write_json_atomic(self.results_dir / METRICS_FILE, doc)
        print(
            f"{self.chapter}: wrote {METRICS_FILE} ({len(metrics)} metrics, {len(doc['figures'])} figures, "
            f"{len(doc['tables'])} tables; {doc['provenance']['wall_time_s']:.1f} s"
            f"{'; PHANTOM data' if self.on_phantom else ''})"
        )


def load_metrics(results_root: str | Path) -> dict[str, dict[str, Any]]:
    """All ``<results_root>/<chapter>/metrics.json`` files, keyed by chapter id (sorted)."""
    out: dict[str, dict[str, Any]] = {}
    root = Path(results_root)
    if not root.is_dir():
        return out
    for path in sorted(root.glob(f"*/{METRICS_FILE}")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            out[path.parent.name] = {"chapter": path.parent.name, "error": f"{path}: unreadable ({exc})"}
            continue
        out[str(doc.get("chapter", path.parent.name))] = doc
    return out
