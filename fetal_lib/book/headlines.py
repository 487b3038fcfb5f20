"""The intro's results: each chapter's headline figures, labelled, rounded, with unit, CI and data.

A chapter names its headline metrics (``run.finish(metrics, headline=[...])``); :data:`HEADLINES`
says, per chapter and metric key, what the figure is (a label naming the split it was measured
on), its unit, its decimals, and where its 95 % CI sits in the same metrics (a path of
:mod:`fetal_lib.book.metric_path`). :func:`results_markdown` writes the intro's results: per
chapter a line of provenance (profile, data, wall time, git commit) and a table
``figure | value | 95% CI | data``, where data is ``real`` or ``PHANTOM`` for the datasets that
figure rests on.

A headline key without an entry here is still shown, under its raw key with four significant
digits, so that a new headline is never hidden; :func:`unlabelled` lists such keys (the site test
fails on one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from fetal_lib.book import metric_path
from fetal_lib.book.audit_map import Figure
from fetal_lib.book.chapters import REGISTRY
from fetal_lib.us.tasks import DATASET_OF

Docs = Mapping[str, Mapping[str, Any]]
TABLE_CLASS = "headlines"  # styled by book/_static/fetal.css

# ----------------------------------------------------------------------------- the labels

_TEST = "test split"
#: In a figure's ``datasets``: the figure is about the build machine's data root itself (which datasets
#: are present, what `fetal data verify` found in the real ones), so it is real wherever the run read a
#: real dataset, even where phantoms stood in for others.
DATA_ROOT = "<data root>"
_HC = ("hc18",)

#: Short names of chapter 3's tasks (``fetal_lib.us.tasks.TASKS``) for its headline labels.
US_TASK_NAMES = {
    "planes": "standard plane",
    "brain_planes": "brain plane",
    "anomaly": "normal or abnormal brain",
    "anomaly_type": "brain anomaly type",
    "anomaly16": "16-class brain anomaly",
}


def _us_task(task: str) -> dict[str, Figure]:

    row = f"scores[task={task}, model=@deployed.{task}]"
    name, data = US_TASK_NAMES[task], (DATASET_OF[task],)
    return {
        f"{task}_accuracy": Figure("us_classification", f"{task}_accuracy", "", 3, ci=f"{row}.accuracy_ci", n=f"{row}.n_test",
                                   n_unit="test images", datasets=data,
                                   label=f"{name}: accuracy, model chosen on validation, {_TEST}"),
        f"{task}_auc_macro": Figure("us_classification", f"{task}_auc_macro", "", 3, ci=f"{row}.auc_macro_ci", datasets=data,
                                    label=f"{name}: AUC (macro), same model, {_TEST}"),
    }


_GA_NET = "results[protocol=by volume, model=network, scored per=volume]"
_GA_LEAK = "leak_demonstration[split=samples at random (one volume on both sides)]"

HEADLINES: dict[str, dict[str, Figure]] = {
    "data": {
        "n_datasets_real": Figure("data", "n_datasets_real", "", 0, datasets=(DATA_ROOT,),
                                  label="datasets present on the build machine (real)"),
        "n_datasets_phantom": Figure("data", "n_datasets_phantom", "", 0, datasets=(DATA_ROOT,),
                                     label="datasets absent, replaced by a phantom"),
        "verify_problems": Figure("data", "verify_problems", "", 0, datasets=(DATA_ROOT,),
                                  label="problems found by `fetal data verify` (in the datasets present)"),
        "hc18_fit_vs_reference_mae_mm": Figure(
            "data", "hc18_fit_vs_reference_mae_mm", "mm", 3, datasets=_HC,
            label="HC of an ellipse fitted to the reference outline vs HC18's reference HC, mean |difference|"),
        "anomaly_us_groups_crossing_export_splits": Figure(
            "data", "anomaly_us_groups_crossing_export_splits", "", 0, datasets=("fetal_brain_anomaly_us",),
            label="anomaly ultrasound source images whose copies sit in two of the export's splits"),
        "split_groups_crossing": Figure("data", "split_groups_crossing", "", 0,
                                        label="subjects or groups on both sides of our splits (must be 0)"),
    },
    "hc18": {
        "hc_abs_diff_mean_mm": Figure("hc18", "hc_abs_diff_mean_mm", "mm", 2, ci="test.hc_abs_diff_ci95_mm", n="test.n_images",
                                      n_unit="test images", datasets=_HC, label=f"HC error, mean |difference|, {_TEST}"),
        "hc_abs_diff_sd_mm": Figure("hc18", "hc_abs_diff_sd_mm", "mm", 2, datasets=_HC,
                                    label=f"HC error, SD of the |difference|, {_TEST}"),
        "hc_abs_diff_median_mm": Figure("hc18", "hc_abs_diff_median_mm", "mm", 2, datasets=_HC,
                                        label=f"HC error, median |difference|, {_TEST}"),
        "dice": Figure("hc18", "dice", "", 3, datasets=_HC, label=f"Dice of the head mask, {_TEST}"),
        "iou": Figure("hc18", "iou", "", 3, datasets=_HC, label=f"IoU of the head mask, {_TEST}"),
        "hd95_mm": Figure("hc18", "hd95_mm", "mm", 2, datasets=_HC, label=f"HD95 of the head outline, {_TEST}"),
    },
    "seg_benchmark": {
        "best_architecture_dice": Figure("seg_benchmark", "best_architecture_dice", "", 3, datasets=_HC,
                                         label=f"Dice, network chosen on validation as deployed, {_TEST}"),
        "best_architecture_hc_abs_diff_mean_mm": Figure(
            "seg_benchmark", "best_architecture_hc_abs_diff_mean_mm", "mm", 2,
            ci=("deployed.HC CI low (mm)", "deployed.HC CI high (mm)"), datasets=_HC,
            label=f"HC error, mean |difference|, that network as deployed, {_TEST}"),
        "best_dice_any_architecture": Figure("seg_benchmark", "best_dice_any_architecture", "", 3, datasets=_HC,
                                             label=f"highest Dice of any network, {_TEST} (a winner's pick)"),
    },
    "us_classification": {k: f for task in US_TASK_NAMES for k, f in _us_task(task).items()},
    "fetal_mri_ga": {
        "ga_mae_days_by_volume": Figure("fetal_mri_ga", "ga_mae_days_by_volume", "days", 1, ci=f"{_GA_NET}.MAE 95% CI",
                                        n=f"{_GA_NET}.n", n_unit="volumes", datasets=("fetal_brain_atlases",),
                                        label="GA error, MAE, folds of whole volumes"),
        "ga_r2_by_volume": Figure("fetal_mri_ga", "ga_r2_by_volume", "", 3, ci=f"{_GA_NET}.R2 95% CI",
                                  datasets=("fetal_brain_atlases",), label="R², folds of whole volumes"),
        "ga_mae_days_leaky_split": Figure("fetal_mri_ga", "ga_mae_days_leaky_split", "days", 1, ci=f"{_GA_LEAK}.MAE 95% CI",
                                          datasets=("fetal_brain_atlases",),
                                          label="GA error, MAE, samples split at random (the leak, for contrast)"),
    },
    "brain_age": {
        "deployed_path_mae_years": Figure("brain_age", "deployed_path_mae_years", "years", 2, ci="deployed_path_mae_ci_years",
                                          n="deployed_path_n_subjects", n_unit="subjects", datasets=("brain_age",),
                                          label="brain age error, MAE, the deployed path, expected on new subjects (nested on unseen image subjects, "
                                                "their difficulty matched to the regression subjects')"),
        "deployed_path_r2": Figure("brain_age", "deployed_path_r2", "", 3, datasets=("brain_age",),
                                   label="R², the deployed path, nested, on the image subjects"),
        "reference_cv_mae_years": Figure("brain_age", "reference_cv_mae_years", "years", 2, ci="reference_cv_mae_ci_years",
                                         datasets=("brain_age",),
                                         label="brain age error, MAE, reference segmentations, cross-validated (upper bound)"),
        "val_dice_csf": Figure("brain_age", "val_dice_csf", "", 3, datasets=("brain_age",), label="Dice, CSF, validation subjects"),
        "val_dice_gm": Figure("brain_age", "val_dice_gm", "", 3, datasets=("brain_age",), label="Dice, GM, validation subjects"),
        "val_dice_wm": Figure("brain_age", "val_dice_wm", "", 3, datasets=("brain_age",), label="Dice, WM, validation subjects"),
    },
}


# ----------------------------------------------------------------------------- reading a figure


@dataclass(frozen=True)
class Row:
    """One line of a chapter's headline table, as shown."""

    label: str
    value: str
    ci: str
    data: str  # "real" or "PHANTOM"


def figure_of(cid: str, key: str) -> Figure | None:
    """The labelled figure of headline ``key`` of chapter ``cid`` (None when it has no label)."""
    return HEADLINES.get(cid, {}).get(key)


def unlabelled(docs: Docs) -> dict[str, list[str]]:
    """Headline keys of the given metrics.json documents that :data:`HEADLINES` does not label."""
    out = {cid: [k for k in doc.get("headline", []) if figure_of(cid, k) is None] for cid, doc in docs.items() if "error" not in doc}
    return {cid: keys for cid, keys in out.items() if keys}


def significant(value: float, digits: int = 4) -> str:
    """``value`` with ``digits`` significant digits, never in exponent form (``1234.5`` -> ``1,235``)."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:,.{decimals}f}"


def _number(value: float, digits: int | None) -> str:
    text = significant(value) if digits is None else f"{value:,.{digits}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.,") else text  # no "-0.000"


def _with_unit(text: str, unit: str) -> str:
    return f"{text} {unit}" if unit else text


def _optional(metrics: Mapping[str, Any], path: str | None) -> Any:
    if not path:
        return None
    try:
        return metric_path.resolve(metrics, path)
    except metric_path.MetricPathError:
        return None


def _interval(metrics: Mapping[str, Any], ci: str | tuple[str, str] | None) -> tuple[float, float] | None:
    if ci is None:
        return None
    if isinstance(ci, str):
        return metric_path.interval(_optional(metrics, ci))
    low, high = (metric_path.number(_optional(metrics, p)) for p in ci)
    return (low, high) if low is not None and high is not None else None


def data_word(doc: Mapping[str, Any], datasets: Sequence[str] = ()) -> str:
    """What a figure was computed on: ``real``, ``PHANTOM``, or ``real and PHANTOM`` when the datasets
    it rests on (any of the run's, when none is named) were some real and some phantoms. A figure
    about the data root itself (:data:`DATA_ROOT` among its datasets: which datasets are present,
    what `fetal data verify` found in them) is ``real`` when the run read any real dataset, and
    ``PHANTOM`` when it read none (then nothing real was looked at)."""
    prov = doc.get("provenance", {}) or {}
    data = prov.get("data", {}) or {}
    if DATA_ROOT in datasets:
        return "real" if any(not (s or {}).get("is_phantom") for s in data.values()) else "PHANTOM"
    names = [n for n in datasets if n in data] or list(data)
    if not data:
        return "PHANTOM" if prov.get("on_phantom") else "real"
    phantom = [n for n in names if (data.get(n) or {}).get("is_phantom")]
    if not phantom:
        return "real"
    return "PHANTOM" if len(phantom) == len(names) else "real and PHANTOM"


def headline_rows(cid: str, doc: Mapping[str, Any]) -> list[Row]:
    """The headline table of one chapter's metrics.json document."""
    metrics = doc.get("metrics", {}) or {}
    rows = []
    for key in doc.get("headline", []):
        fig = figure_of(cid, key) or Figure(cid, key, "", None, label=f"`{key}` (no label in fetal_lib.book.headlines)")  # type: ignore[arg-type]
        value = metric_path.number(_optional(metrics, fig.path))
        label = fig.label or key
        n = metric_path.number(_optional(metrics, fig.n))
        if n is not None:
            label += f" ({_with_unit(f'n = {n:,.0f}', fig.n_unit)})"
        if value is None:
            rows.append(Row(label, "not measured", "", data_word(doc, fig.datasets)))
            continue
        ci = _interval(metrics, fig.ci)
        ci_text = "" if ci is None else _with_unit(f"{_number(ci[0] * fig.scale, fig.digits)} to "
                                                   f"{_number(ci[1] * fig.scale, fig.digits)}", fig.unit)
        rows.append(Row(label, _with_unit(_number(value * fig.scale, fig.digits), fig.unit), ci_text,
                        data_word(doc, fig.datasets)))
    return rows


# ----------------------------------------------------------------------------- the intro's results


def wall_time(seconds: Any) -> str:
    """``74 s``, ``37 min``, ``2.1 h``."""
    s = metric_path.number(seconds)
    if s is None:
        return "?"
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def data_line(doc: Mapping[str, Any]) -> str:
    """``real: hc18 (partial); PHANTOM: feta`` for a run's datasets."""
    data = (doc.get("provenance", {}) or {}).get("data", {}) or {}
    if not data:
        return "no dataset"
    real = sorted(n for n, s in data.items() if not s.get("is_phantom"))
    phantom = sorted(n for n, s in data.items() if s.get("is_phantom"))
    parts = []
    if real:
        parts.append("real: " + ", ".join(f"{n} ({data[n].get('status')})" for n in real))
    if phantom:
        parts.append("**PHANTOM**: " + ", ".join(phantom))
    return "; ".join(parts)


def chapter_markdown(cid: str, doc: Mapping[str, Any], page: str | None = None) -> str:
    """One chapter's heading, provenance line and headline table; ``page`` (``chapters/NN_slug``) links it."""
    title = REGISTRY.get(cid, (None, cid))[1]
    if "error" in doc:
        return f"### {title}\n\n{doc['error']}\n"
    prov = doc.get("provenance", {}) or {}
    git = prov.get("git", {}) or {}
    sha = str(git.get("sha", "unknown"))[:10] + (" (dirty)" if git.get("dirty") else "")
    link = f" · {{doc}}`read the chapter </{page}>`" if page else ""
    head = (f"### {title}\n\nProfile `{prov.get('profile', '?')}` · data: {data_line(doc)} · "
            f"wall time {wall_time(prov.get('wall_time_s'))} · git `{sha}`{link}\n\n")
    rows = headline_rows(cid, doc)
    if not rows:
        return head + "_No headline figure._\n"
    table = [f":::{{table}}\n:class: {TABLE_CLASS}\n", "| figure | value | 95% CI | data |", "|:---|---:|---:|:---|"]
    table += [f"| {_cell(r.label)} | {_cell(r.value)} | {_cell(r.ci)} | "  # no CI: an empty cell (the CSS shows a dash)
              f"{'**PHANTOM**' if r.data == 'PHANTOM' else r.data} |" for r in rows]
    return head + "\n".join(table) + "\n:::\n"


def results_markdown(docs: Docs, pages: Mapping[str, str] | None = None) -> str:
    """The intro's results from metrics.json documents keyed by chapter id, in book order.

    ``pages`` maps a chapter id to its page (``chapters/NN_slug``) for the chapters in this build.
    """
    if not docs:
        return "_No chapter has run yet: run `fetal book --profile cpu` to fill this section._\n"
    order = {cid: i for i, cid in enumerate(REGISTRY)}
    parts = [chapter_markdown(cid, docs[cid], (pages or {}).get(cid)) for cid in sorted(docs, key=lambda c: order.get(c, 99))]
    note = ("Every figure above was read from `build/results/<chapter>/metrics.json`, written by the chapter's own run; "
            "a figure marked **PHANTOM** rests on synthetic data and tests the pipeline, not the method.\n")
    return "\n".join(parts) + "\n" + note
