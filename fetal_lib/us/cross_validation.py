"""Grouped K-fold cross-validation of chapter 3's models on the training side of a task's split.

One validation split of a few dozen images decides by noise which model is deployed (issue 38:
the brain-planes choice flipped between machines). Cross-validation scores every training-side
image once, out of fold, so the choice rests on all of them. The chapter's test split is never
touched: the folds cover its training and validation parts only, grouped (a patient or a source
image is never on two sides) and stratified by class. In fold ``k`` the groups of fold ``k`` are
held out; the remaining ones are split into training and validation in the chapter's proportions
(70 : 15), the validation part choosing the checkpoint and the temperature; each architecture
trains exactly as in the chapter (:func:`fetal_lib.us.pipeline.run_model`).

The architecture with the highest pooled out-of-fold balanced accuracy is the CV choice
(:func:`cv_summary`). ``fetal us cv`` runs apart from the book and writes
``build/results/us_cv/<task>/``; chapter 3 deploys the model its own validation split chooses, and
shows a CV found there beside that choice for comparison only (:func:`compare`), so that what a
build deploys never depends on what else ran on the machine.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from fetal_lib.data.splits import check_disjoint, grouped_kfold, grouped_split
from fetal_lib.metrics.classification import classification_report
from fetal_lib.metrics.uncertainty import bootstrap_ci
from fetal_lib.paths import build_dir
from fetal_lib.us import ensemble

# Settings that change what a fold trains: a CV whose values differ is not the chapter's recipe.
RECIPE_KEYS = ("arch_options", "input_rows", "input_cols", "epochs", "batch_size", "learning_rate", "augment", "tta",
               "class_weight", "checkpoint", "xception_weights", "head_crop", "seeds", "init_from", "split_from",
               "label_smoothing", "mixup", "rotation_deg", "head_init")
#: Recipe keys a CV written before they existed ran without: an absent one had this value.
RECIPE_DEFAULTS = {"head_crop": None, "seeds": 1, "init_from": None, "split_from": None, "label_smoothing": 0.0, "mixup": 0.0,
                   "rotation_deg": 10.0, "head_init": "random"}


def cv_parts(data, folds: int = 5, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Per fold, ``{"train", "val", "test"}`` indices into ``data.items`` drawn from its training side
    (its ``train`` and ``val`` parts); ``test`` is the fold's held-out groups.

    Raises:
        ValueError: fewer training-side groups than the folds and their inner splits need.
    """

    side = np.sort(np.concatenate([data.parts["train"], data.parts["val"]]))
    groups = [data.items[i].group for i in side]
    labels = [data.items[i].label for i in side]
    if len(set(groups)) < 2 * folds:
        raise ValueError(f"{data.task}: {len(set(groups))} training-side groups are too few for {folds} folds")
    out = []
    for k, (rest, held) in enumerate(grouped_kfold(groups, folds, seed=seed, stratify=labels)):
        inner = grouped_split([groups[i] for i in rest], (70 / 85, 15 / 85), seed=seed + 1 + k, stratify=[labels[i] for i in rest])
        parts = {"train": side[rest[inner["train"]]], "val": side[rest[inner["test"]]], "test": side[held]}
        check_disjoint([it.group for it in data.items], parts)
        out.append(parts)
    return out


@dataclass
class CVResult:
    """Out-of-fold predictions of every architecture, and one row per (fold, architecture)."""

    per_image: Any  # DataFrame: fold, arch, file, group, label, predicted, confidence
    folds: Any  # DataFrame: fold, arch, images, balanced accuracy, accuracy, epoch kept
    task: str
    classes: list[str]
    settings: dict


@dataclass
class SourceTask:
    """The task whose networks start the CV's (the ``task_init`` knob, :mod:`fetal_lib.us.transfer`)."""

    data: Any  # fetal_lib.us.tasks.TaskData
    arrays: np.ndarray  # (N, rows, cols, 1) network inputs of every item of data, in data.items' order
    settings: dict  # its task_settings


def source_network(source: SourceTask, excluded_groups: set, arch: str, seed: int = 0):
    """``arch`` trained on ``source`` as the chapter trains it (its training part, the epoch kept on its validation
    part), without any image of ``excluded_groups`` (a fold's held-out and validation patients); the
    :class:`~fetal_lib.training.keras.FitResult`."""
    from fetal_lib.us.pipeline import train_config
    from fetal_lib.us.train import train  # looked up at call time: a test replaces it

    d = source.data
    parts = {p: np.array([i for i in d.parts[p] if d.items[i].group not in excluded_groups], dtype=np.int64) for p in ("train", "val")}
    empty = [p for p, idx in parts.items() if not len(idx)]
    if empty:
        raise ValueError(f"task_init: no {d.task} {' or '.join(empty)} image is left without the fold's held-out and validation "
                         f"patients ({len(set(d.groups()))} {d.task} patients in all): too few to start each fold from {d.task} "
                         "(--set 'task_init={}' runs the CV from scratch)")
    labels = d.labels()
    return train(train_config(source.settings, arch, seed), source.arrays[parts["train"]], labels[parts["train"]],
                 source.arrays[parts["val"]], labels[parts["val"]], len(d.classes))


def view_variant(arch: str, tta: Sequence[str]) -> str:
    """The name of ``arch``'s networks scored through the test-time views ``tta`` instead of the recipe's
    (``fetal us cv --also-tta``): ``xception [tta hflip+zoom]``."""
    return f"{arch}{VARIANT_MARK}{'+'.join(tta) or 'none'}]"


#: What marks a view variant's name (:func:`view_variant`): not a model of its own, never the CV's choice.
VARIANT_MARK = " [tta "


def cross_validate(data, arrays: np.ndarray, settings: dict, archs: Sequence[str], folds: int = 5, seed: int = 0,
                   on_fold: Callable[[dict], None] | None = None, init_source: SourceTask | None = None,
                   also_tta: Sequence[Sequence[str]] = ()) -> CVResult:
    """Train and score each of ``archs`` in ``folds`` grouped folds of ``data``'s training side.

    Args:
        data: the task (:func:`fetal_lib.us.tasks.load_task`).
        arrays: (N, rows, cols, 1) network inputs of every item of ``data``, in ``data.items``' order
            (:func:`fetal_lib.us.pipeline.load_inputs`).
        settings: the task's knobs (:func:`fetal_lib.us.pipeline.task_settings`).
        on_fold: called with each (fold, architecture) row as soon as it is done.

    With two or more ``archs``, each fold also scores their :mod:`~fetal_lib.us.ensemble` (the mean of
    their calibrated probabilities; no training of its own), named :data:`fetal_lib.us.ensemble.NAME`,
    built as the chapter deploys it (:func:`fetal_lib.us.pipeline.architectures_mean_run`: one network,
    its test-time views averaged after the mean).
    The per-image table holds every candidate's ``p_<class>`` probabilities.

    With ``init_source`` (``task_init``), each fold first trains each architecture on the source task without the fold's
    held-out and validation patients (:func:`source_network`), and the fold's network starts from it: no network
    scored on a held-out patient ever trained on that patient's images, whatever the two tasks' splits.

    With ``also_tta`` (lists of test-time views), each fold's network of each architecture is also scored through each
    list instead of the recipe's ``tta`` (:func:`fetal_lib.us.pipeline.with_views`: the same weights, its temperature
    fitted again on validation), as a row named :func:`view_variant`: the views compared on the very same networks.
    """
    import pandas as pd

    from fetal_lib.us.classifier import probability_columns
    from fetal_lib.us.pipeline import architectures_mean_run, run_model, with_views  # looked up at call time: a test replaces them

    labels = list(range(len(data.classes)))
    columns = probability_columns(data.classes)
    rows, per_image = [], []

    def score(k: int, name: str, run, prob: np.ndarray, epochs: tuple[int | None, int | None]) -> None:
        predicted = prob.argmax(axis=1)
        report = classification_report(run.y_test, predicted, None, labels)
        row = {"fold": k, "arch": name, "images": int(len(predicted)), "balanced accuracy": float(report["balanced_accuracy"]),
               "accuracy": float(report["accuracy"]), "epoch kept": epochs[0], "epochs run": epochs[1]}
        rows.append(row)
        per_image.append(pd.DataFrame({
            "fold": k, "arch": name, "file": run.files_test, "group": run.groups_test,
            "label": [data.classes[i] for i in run.y_test], "predicted": [data.classes[i] for i in predicted],
            "confidence": prob.max(axis=1), **{c: prob[:, j] for j, c in enumerate(columns)},
        }))
        if on_fold is not None:
            on_fold(row)

    for k, parts in enumerate(cv_parts(data, folds, seed)):
        fold_data = dataclasses.replace(data, parts=parts)
        fold_arrays = {name: arrays[idx] for name, idx in parts.items()}
        members = []
        excluded = set(fold_data.groups("val")) | set(fold_data.groups("test"))
        for arch in archs:
            init = source_network(init_source, excluded, arch, seed).model if init_source is not None else None
            members.append(run := run_model(fold_data, fold_arrays, settings, arch, seed, init_model=init))
            score(k, arch, run, run.probabilities(True, "test"), (int(run.fit.best_epoch), int(run.fit.epochs_run)))
            for views in also_tta:
                variant = with_views(run, fold_arrays, views)
                score(k, view_variant(arch, variant.tta), variant, variant.probabilities(True, "test"),
                      (int(run.fit.best_epoch), int(run.fit.epochs_run)))
        if len(archs) >= 2:  # the mean of the fold's networks, trained above, built as the chapter deploys it
            mean = architectures_mean_run(members, fold_arrays)
            score(k, ensemble.NAME, mean, mean.probabilities(True, "test"), (None, None))
    return CVResult(pd.concat(per_image, ignore_index=True), pd.DataFrame(rows), data.task, list(data.classes), dict(settings))


def cv_summary(result: CVResult, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Per architecture: pooled out-of-fold accuracy and balanced accuracy (balanced: with a 95 %
    bootstrap CI resampling groups), the spread of the fold figures; and the CV choice (the highest
    pooled balanced accuracy among the architectures, not their view variants, :func:`view_variant`)."""

    index = {c: i for i, c in enumerate(result.classes)}
    labels = list(range(len(result.classes)))
    out: dict[str, Any] = {"task": result.task, "folds": int(result.folds["fold"].nunique()), "classes": result.classes, "archs": {}}
    for arch, df in result.per_image.groupby("arch", sort=False):
        y = df["label"].map(index).to_numpy(int)
        p = df["predicted"].map(index).to_numpy(int)
        report = classification_report(y, p, None, labels)

        def balanced(yy, pp):
            return float(classification_report(yy, pp, None, labels)["balanced_accuracy"])

        groups = df["group"].astype(str).to_numpy()
        ci = bootstrap_ci(balanced, y, p, n_boot=n_boot, seed=seed, groups=groups)
        fold_values = result.folds.loc[result.folds["arch"] == arch, "balanced accuracy"].to_numpy(float)
        out["archs"][str(arch)] = {
            "images": int(len(df)), "accuracy": float(report["accuracy"]), "balanced_accuracy": float(report["balanced_accuracy"]),
            "balanced_accuracy_ci95": [float(ci.low), float(ci.high)],
            "fold_balanced_accuracy": {"mean": float(fold_values.mean()), "sd": float(fold_values.std(ddof=1)) if len(fold_values) > 1 else 0.0,
                                       "min": float(fold_values.min()), "max": float(fold_values.max())},
        }
    models = [a for a in out["archs"] if VARIANT_MARK not in a]
    out["chosen"] = max(models, key=lambda a: out["archs"][a]["balanced_accuracy"])
    return out


def summary_table(summary: dict[str, Any]):
    """One row per architecture of :func:`cv_summary` (the chosen one marked)."""
    import pandas as pd

    rows = []
    for arch, s in summary["archs"].items():
        f = s["fold_balanced_accuracy"]
        rows.append({"task": summary["task"], "model": arch, "out-of-fold images": s["images"], "accuracy": s["accuracy"],
                     "balanced accuracy": s["balanced_accuracy"], "95% CI": f"{s['balanced_accuracy_ci95'][0]:.3f}-{s['balanced_accuracy_ci95'][1]:.3f}",
                     "fold mean +- SD": f"{f['mean']:.3f} +- {f['sd']:.3f}", "fold range": f"{f['min']:.3f}-{f['max']:.3f}",
                     "CV choice": arch == summary["chosen"]})
    return pd.DataFrame(rows)


def results_dir(task: str, root: str | Path | None = None) -> Path:
    """``<build>/results/us_cv/<task>`` (``root``: the results folder instead of the build's)."""

    return Path(root) / "us_cv" / task if root is not None else build_dir() / "results" / "us_cv" / task


def read(task: str, results_root: str | Path) -> dict | None:
    """The ``metrics.json`` ``fetal us cv`` wrote for ``task`` under ``results_root``, or None."""
    import json

    path = results_dir(task, results_root) / "metrics.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None


def read_variants(task: str, results_root: str | Path) -> list[tuple[str, dict]]:
    """Every CV of ``task`` under ``results_root``: ``us_cv/<task>`` (the one chapter 3 compares
    its choice with) first, then ``us_cv/<task>.<variant>`` (written with ``fetal us cv --results-dir`` to
    compare another recipe, e.g. whole images against head crops); ``[(folder name, metrics doc)]``."""
    import json

    root = Path(results_root) / "us_cv"
    folders = [root / task] + sorted(root.glob(f"{task}.*")) if root.is_dir() else []
    out = []
    for folder in folders:
        try:
            out.append((folder.name, json.loads((folder / "metrics.json").read_text(encoding="utf-8"))))
        except (OSError, ValueError):
            continue
    return out


def input_label(params: dict) -> str:
    """The input a CV's recipe gave the networks, in words: ``whole image 128x128`` or ``head crop 160x160 (margin 1.15)``."""
    crop = params.get("head_crop")
    if crop:
        return f"head crop {crop['size']}x{crop['size']} (margin {crop['margin']:g}{', aligned' if crop.get('align') else ''})"
    return f"whole image {params.get('input_rows')}x{params.get('input_cols')}"


def variants_table(variants: Sequence[tuple[str, dict]]):
    """One row per (CV, architecture) of :func:`read_variants`: the input, the training precision,
    the results folder (the task's own is the one :func:`compare` reads) and the out-of-fold figures."""
    import pandas as pd

    frames = []
    for name, doc in variants:
        params = (doc.get("provenance") or {}).get("parameters") or {}
        table = pd.DataFrame((doc.get("metrics") or {}).get("summary_table") or [])
        if table.empty:
            continue
        precision = (((doc.get("provenance") or {}).get("compute") or {}).get("precision") or {}).get("precision")
        table.insert(1, "input", input_label(params))
        table.insert(2, "precision", precision or "?")
        table.insert(3, "results", f"us_cv/{name}")
        frames.append(table)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def recipe_differences(doc: dict, settings: dict, profile: str) -> list[str]:
    """How the CV's recipe differs from ``settings`` (a task's, :func:`fetal_lib.us.pipeline.task_settings`;
    empty: the same recipe), in words."""
    prov = doc.get("provenance", {})
    params = prov.get("parameters", {})
    diffs = [f"profile {prov.get('profile')!r} (this run: {profile!r})"] if prov.get("profile") != profile else []
    for key in RECIPE_KEYS:
        if key not in params and key not in RECIPE_DEFAULTS:
            continue
        value, ours = params.get(key, RECIPE_DEFAULTS.get(key)), settings.get(key, RECIPE_DEFAULTS.get(key))
        if value != ours:
            diffs.append(f"{key} {value!r} (this run: {ours!r})")
    return diffs


def compare(task: str, validation_choice: str, archs: Sequence[str], doc: dict | None, settings: dict, profile: str,
            training_side_images: int, on_phantom: bool) -> dict[str, Any]:
    """The CV choice of ``doc`` (``fetal us cv``'s metrics for ``task``) set beside the model the
    chapter deploys (``validation_choice``, chosen on its validation split), for comparison only.

    The CV is comparable when it ran with this recipe, on the same data (as many out-of-fold images
    as the task's training side, real or phantom alike) and chose among ``archs``; ``agrees`` is
    None otherwise. Returns one row: task, deployed model, CV choice, whether comparable, why not, agrees."""
    row = {"task": task, "deployed (validation split)": validation_choice, "CV choice": None, "comparable": False,
           "CV": "none (no `fetal us cv` result for this task)", "agrees": None}
    if doc is None:
        return row
    metrics, prov = doc.get("metrics", {}), doc.get("provenance", {})
    diffs = recipe_differences(doc, settings, profile)
    chosen = metrics.get("chosen")
    images = {s.get("images") for s in (metrics.get("archs") or {}).values()}
    if bool(prov.get("on_phantom")) != bool(on_phantom):
        why = "it ran on " + ("a phantom" if prov.get("on_phantom") else "real data")
    elif diffs:
        why = "another recipe: " + "; ".join(diffs)
    elif images != {training_side_images}:
        why = f"other data ({', '.join(str(i) for i in sorted(images, key=str))} out-of-fold images; this training side {training_side_images})"
    elif chosen not in archs:
        why = f"its choice {chosen!r} is not among this run's models"
    else:
        return {**row, "CV choice": str(chosen), "comparable": True, "agrees": str(chosen) == validation_choice,
                "CV": f"{metrics.get('folds')}-fold CV of the training side (`fetal us cv`, {prov.get('started_utc', '?')})"}
    return {**row, "CV choice": None if chosen is None else str(chosen), "CV": f"not comparable: {why}"}


def comparison_table(choices: Mapping[str, str], docs: Mapping[str, dict | None], datasets: Mapping[str, Any], archs: Sequence[str],
                     per_task: Mapping[str, dict], profile: str):
    """One :func:`compare` row per task of ``choices`` (task -> the deployed model); empty when no task has a CV."""
    import pandas as pd

    if not any(docs.get(t) is not None for t in choices):
        return pd.DataFrame()
    return pd.DataFrame([compare(t, arch, archs, docs.get(t), per_task[t], profile,
                                 len(datasets[t].parts["train"]) + len(datasets[t].parts["val"]), datasets[t].source.is_phantom)
                         for t, arch in choices.items()])
