"""Chapter 3's tables, figures and sentences, built from the run's numbers."""

from __future__ import annotations

import time
from typing import Any, Mapping, Sequence

import numpy as np

from fetal_lib.us.cross_validation import input_label
from fetal_lib.us.floor import deployment_rows
from fetal_lib.data.imaging import read_image_gray
from fetal_lib.explain.gradcam_keras import gradcam
from fetal_lib.explain.overlay import overlay
from fetal_lib.explain.targets import Target
from fetal_lib.figures.classification import _auc_ci
from fetal_lib.metrics.classification import confusion_matrix
from fetal_lib.metrics.classification import expected_calibration_error, reliability_bins
from fetal_lib.metrics.classification import multiclass_roc
from fetal_lib.networks.keras.xception import XCEPTION_WIDTHS, is_full_size, scaled_width
from fetal_lib.training.checkpoint import smoothed_scores
from fetal_lib.us.classifier import UsClassifier, default_model_path
from fetal_lib.us.floor import floor_status
from fetal_lib.us.train import METRIC
from fetal_lib.us.train import gradcam_layer


def split_table(datasets: Mapping[str, Any]):
    """Per task and part: images, groups, and images per class."""
    import pandas as pd

    rows = []
    for task, d in datasets.items():
        for part in ("train", "val", "test"):
            labels = d.labels(part)
            rows.append({"task": task, "part": part, "images": int(len(labels)), "groups": int(len(set(d.groups(part)))),
                         **{c: int((labels == i).sum()) for i, c in enumerate(d.classes)}})
    table = pd.DataFrame(rows).fillna(0)
    return table.astype({c: int for c in table.columns if c not in ("task", "part")})


def results_sentence(results, tasks: Sequence[str]) -> str:
    """Per task: which model scored the highest balanced accuracy on test, and whether its CI
    separates it from the others (a pointer; the deployed model is chosen on validation)."""
    parts = []
    for task in tasks:
        part = results[results["task"] == task].sort_values("balanced accuracy", ascending=False)
        if part.empty:
            continue
        top = part.iloc[0]
        parts.append(f"**{task}**: {top['model']} reaches the highest test balanced accuracy, {top['balanced accuracy']:.3f} "
                     f"(CI {top['balanced accuracy CI']}), macro AUC {top['AUC (macro)']:.3f} (CI {top['AUC CI']}).")
    return " ".join(parts) + (" The test split decides nothing: the deployed model of each task is the one with the best "
                              "validation balanced accuracy (below). Overlapping CIs mean this test split cannot rank the models.")


def xception_sentence(options: Mapping[str, Any], weights_path: str | None) -> str:
    """Which Xception the chapter trains: its size (Keras's full network, or the reduced width and
    middle-flow depth of ``options``) and its initial weights."""

    width, middle = float(options.get("width", 1.0)), int(options.get("middle_blocks", 8))
    if is_full_size(options):
        size = "Keras's full network (8 middle-flow blocks, up to 2048 channels)"
    else:
        changes = []
        if width != 1.0:
            changes.append(f"every layer {width:g} times as wide (up to {scaled_width(XCEPTION_WIDTHS['block14b'], width)} "
                           f"channels instead of {XCEPTION_WIDTHS['block14b']})")
        changes.append(f"{middle} middle-flow blocks instead of 8" if middle != 8 else "all 8 middle-flow blocks")
        size = (f"a reduced network: {' and '.join(changes)}, the same layers otherwise (the `full` profile trains "
                "Keras's full network)")
    start = (f"ImageNet weights from `{weights_path}`" if weights_path else
             "random initialisation (no ImageNet weights file given: nothing can be downloaded here)")
    return f"Xception: {size}; {start}."


def _panels(n: int, width: float = 4.6, height: float = 4.2):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False)
    return fig, axes[0]


def validation_curves_figure(tasks: Sequence[str], runs: Mapping[tuple[str, str], Any]):
    """One panel per task: each model's validation balanced accuracy per epoch (thin), the same
    averaged with its neighbouring epochs (thick, :func:`fetal_lib.training.checkpoint.smoothed_scores`)
    and the epoch its checkpoint kept (a star on the thin line)."""
    from matplotlib.ticker import MaxNLocator


    fig, axes = _panels(len(tasks), 4.6, 3.6)
    for ax, task in zip(axes, tasks):
        for i, ((t, arch), run) in enumerate((k, r) for k, r in runs.items() if k[0] == task):
            scores = list(run.fit.history.get(METRIC, []))
            if not scores:
                continue
            epochs = np.arange(1, len(scores) + 1)
            colour = f"C{i}"
            ax.plot(epochs, scores, color=colour, lw=0.8, alpha=0.6)
            ax.plot(epochs, smoothed_scores(scores), color=colour, lw=2.0, label=f"{arch} (kept: epoch {run.fit.best_epoch})")
            if 1 <= run.fit.best_epoch <= len(scores):
                ax.plot([run.fit.best_epoch], [scores[run.fit.best_epoch - 1]], marker="*", ms=12, color=colour, mec="k")
        ax.set(xlabel="epoch", ylabel="validation balanced accuracy", title=task, ylim=(0, 1.02))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.lines:
            ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def roc_figure(task: str, classes: Sequence[str], runs: Mapping[str, Any], seed: int = 0, n_boot: int = 200):
    """One panel per model: ROC curves per class (one against the rest) with AUC and its group-bootstrap CI."""

    fig, axes = _panels(len(runs))
    labels = list(range(len(classes)))
    for ax, (arch, run) in zip(axes, runs.items()):
        prob = run.probabilities(calibrated=True)
        roc = multiclass_roc(run.y_test, prob, labels)
        groups = run.groups_test if len(np.unique(run.groups_test)) > 1 else None
        keys = [k for k in roc.curves if k not in ("micro", "macro")] + (["macro"] if len(labels) > 2 else [])
        for key in keys:
            fpr, tpr = roc.curves[key]
            ci = _auc_ci(key, run.y_test, prob, labels, n_boot, seed, groups)
            name = classes[int(key)] if str(key).isdigit() else key
            ax.plot(fpr, tpr, lw=2.2 if key == "macro" else 1.4, ls="--" if key == "macro" else "-",
                    label=f"{name}: {roc.auc[key]:.3f} ({ci.low:.3f}-{ci.high:.3f})")
        ax.plot([0, 1], [0, 1], color="0.8", lw=1)
        ax.set(xlabel="false-positive rate", ylabel="true-positive rate", title=f"{task}: {arch}", xlim=(0, 1), ylim=(0, 1.01))
        ax.legend(fontsize=7, loc="lower right", title="AUC (95 % CI by group)", title_fontsize=7)
    fig.tight_layout()
    return fig


def confusion_figure(task: str, classes: Sequence[str], runs: Mapping[str, Any]):
    """One confusion matrix per model (rows: true class, columns: predicted), test split."""

    fig, axes = _panels(len(runs), 4.2, 3.9)
    for ax, (arch, run) in zip(axes, runs.items()):
        cm = confusion_matrix(run.y_test, run.probabilities().argmax(axis=1), list(range(len(classes))))
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=8, color="white" if v > cm.max() / 2 else "black")
        ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(classes)), classes, fontsize=7)
        ax.set(xlabel="predicted", ylabel="true", title=f"{task}: {arch}")
    fig.tight_layout()
    return fig


def reliability_figure(task: str, runs: Mapping[str, Any], n_bins: int = 10):
    """Observed accuracy against confidence per model, before (grey) and after (blue) the temperature, with ECE."""

    fig, axes = _panels(len(runs), 4.0, 3.8)
    for ax, (arch, run) in zip(axes, runs.items()):
        for calibrated, colour in ((False, "0.6"), (True, "tab:blue")):
            prob = run.probabilities(calibrated=calibrated)
            correct, conf = prob.argmax(axis=1) == run.y_test, prob.max(axis=1)
            bins = reliability_bins(correct, conf, n_bins)
            filled = bins.count > 0
            centres = (bins.edges[:-1] + bins.edges[1:]) / 2
            ece = expected_calibration_error(correct, conf, n_bins)
            ax.plot(centres[filled], bins.accuracy[filled], "o-", color=colour,
                    label=f"{'after' if calibrated else 'before'} T: ECE {ece:.3f}")
        ax.plot([0, 1], [0, 1], "k--", lw=1)
        ax.set(xlabel="confidence", ylabel="observed accuracy", title=f"{task}: {arch} (T = {run.temperature:.2f})", xlim=(0, 1),
               ylim=(0, 1.02))
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def efficiency_figure(eff):
    """Balanced accuracy against GFLOPs, parameters and inference ms per image, one point per task and model."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, x in zip(axes, ("GFLOPs per image", "parameters", "inference ms/image")):
        for model, part in eff.groupby("model"):
            ax.scatter(part[x], part["balanced accuracy"], label=model, s=30)
            for _, row in part.iterrows():
                ax.annotate(row["task"], (row[x], row["balanced accuracy"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set(xlabel=x, ylabel="balanced accuracy (test)")
    axes[0].legend(fontsize=8)
    fig.suptitle("Cost against accuracy (this machine)")
    fig.tight_layout()
    return fig


def gradcam_cases(run, per_class: int = 1) -> list[tuple[int, str]]:
    """(test index, label) of up to ``per_class`` correct and wrong test images of every class."""
    pred = run.probabilities().argmax(axis=1)
    picks = []
    for k, name in enumerate(run.classes):
        for correct in (True, False):
            idx = np.flatnonzero((run.y_test == k) & ((pred == k) == correct))[:per_class]
            picks += [(int(i), f"{name}, {'right' if correct else 'wrong: ' + run.classes[pred[i]]}") for i in idx]
    return picks


def gradcam_figure(task: str, data, runs: Mapping[str, Any], x_test: np.ndarray):
    """Rows: models; columns: the cases of :func:`gradcam_cases` of the first model (the same images for all).
    A model that is the mean of several seeds' networks (``task_seeds``) shows their maps averaged, each
    network's for its own predicted class."""
    import matplotlib.pyplot as plt


    first = next(iter(runs.values()))
    cases = gradcam_cases(first)
    if not cases:
        fig, ax = plt.subplots(figsize=(4, 1))
        ax.axis("off")
        ax.text(0, 0.5, "no test image to explain")
        return fig
    fig, axes = plt.subplots(len(runs), len(cases), figsize=(2.4 * len(cases), 2.5 * len(runs)), squeeze=False)
    images = x_test[[i for i, _ in cases]]
    for r, (arch, run) in enumerate(runs.items()):
        nets = [m.fit.model for m in run.members] or [run.fit.model]
        maps = np.mean([gradcam(net, gradcam_layer(arch), images, Target("class")) for net in nets], axis=0)
        pred = run.probabilities().argmax(axis=1)
        for c, ((i, label), heat) in enumerate(zip(cases, maps)):
            ax = axes[r, c]
            ax.imshow(overlay((images[c, ..., 0] * 255).astype(np.uint8), heat))
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{label}\n{arch}: {run.classes[pred[i]]}" if r else f"{label}", fontsize=7)
            if c == 0:
                ax.set_ylabel(arch + (f" (mean of {len(nets)} seeds)" if len(nets) > 1 else ""), fontsize=8)
    fig.suptitle(f"{task}: Grad-CAM of the predicted class (rows: models; the same test images)")
    fig.tight_layout()
    return fig


def head_crop_table(part_inputs: Mapping[str, Mapping[str, tuple]]):
    """Per head-cropped task and part (``part_inputs``: task -> part -> (inputs, heads found or None)):
    images, heads found, and the images classified whole instead."""
    import pandas as pd

    rows = []
    for task, parts in part_inputs.items():
        for part, (_, found) in parts.items():
            if found is None:
                continue
            rows.append({"task": task, "part": part, "images": int(len(found)), "head found": int(found.sum()),
                         "classified whole (no head)": int((~found).sum()), "head found (%)": 100.0 * float(found.mean()) if len(found) else 0.0})
    return pd.DataFrame(rows)


def head_crop_figure(task: str, data, finder, spec, per_class: int = 2):
    """Per class, ``per_class`` training images with the fitted head ellipse (green) beside the crop the network sees."""
    import cv2
    import matplotlib.pyplot as plt

    from fetal_lib.us.head_crop import head_input  # deferred: imports scipy

    picks = []
    for c in data.classes:
        picks += [it for it in data.part("train") if it.label == c][:per_class]
    fig, axes = plt.subplots(2, len(picks), figsize=(2.2 * len(picks), 4.6), squeeze=False)
    for j, item in enumerate(picks):
        image = read_image_gray(item.path)
        crop, head = head_input(image, finder, spec)
        shown = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        if head is not None:
            width = max(2, int(round(min(image.shape) / 150)))
            cv2.ellipse(shown, ((head.cx, head.cy), (2 * head.a, 2 * head.b), float(np.degrees(head.angle_rad))), (0, 220, 0), width)
        axes[0, j].imshow(shown)
        axes[0, j].set_title(f"{item.label}\n{'head found' if head is not None else 'NO head: whole image'}", fontsize=8)
        axes[1, j].imshow(crop, cmap="gray", vmin=0, vmax=1)
        axes[1, j].set_title(f"network input {crop.shape[0]}x{crop.shape[1]}", fontsize=8)
        for ax in axes[:, j]:
            ax.axis("off")
    fig.suptitle(f"{task}: chapter 1's HC18 network finds the head (top); the crop the classifier sees (bottom)")
    fig.tight_layout()
    return fig


def leak_sentence(image_level, leak) -> str:
    """How many source images the image-level split put on both sides, and the optimism it bought."""
    train = set(image_level.groups("train")) | set(image_level.groups("val"))
    shared = len(train & set(image_level.groups("test")))
    acc = leak.set_index("measure").loc["balanced accuracy"]
    return (f"The image-level split put {shared} of the {len(set(image_level.groups('test')))} test source images' copies "
            f"in training as well. Balanced accuracy: {acc['image-level split']:.3f} on it against "
            f"{acc['grouped split (by source image)']:.3f} on the grouped split, an optimism of "
            f"{acc['optimism (image-level - grouped)']:+.3f}.")


def save_models(runs: Mapping[tuple[str, str], Any], chosen: Mapping[str, str], datasets, profile: str,
                task_settings: Mapping[str, Mapping[str, Any]], all_scores, finder=None) -> tuple[dict, dict]:
    """Save each task's chosen model that clears the sanity floor on validation (:mod:`fetal_lib.us.floor`)
    as ``build/models/us_<task>.keras`` with its card (``task_settings``: per task, its settings,
    :func:`fetal_lib.us.pipeline.task_settings`; a head-cropped task's model is saved with ``finder``).

    A task whose chosen model is below the floor is not saved (its previously deployed model, if any,
    stays); the others are, so one weak task does not hold back the rest. Returns (task -> saved
    path, task -> {"arch", "value", "floor"} of the refused ones)."""
    from fetal_lib.us.head_crop import HeadCropSpec  # deferred: imports scipy

    floors, refused = {}, {}
    for task, arch in chosen.items():
        floor, value = floor_status(runs[(task, arch)])
        (floors if floor.holds(value) else refused)[task] = {"arch": arch, "value": value, "floor": floor.describe()}
    out = {}
    for task, arch in chosen.items():
        if task in refused:
            continue
        run = runs[(task, arch)]
        crop = task_settings[task].get("head_crop")
        clf = UsClassifier(run.fit.model, task, run.classes, tuple(run.config.input_size), run.temperature,
                           arch=run.config.arch, options=run.config.options, tta=run.tta,
                           head_crop=HeadCropSpec.from_dict(crop) if crop else None, finder=finder if crop else None)
        s = next(x for x in all_scores if x["task"] == task and x["model"] == arch)
        d = datasets[task]
        card = {**clf.card_fields(profile), "name": f"Fetal ultrasound classifier, {task} ({arch}, chapter 3)",
                "intended_use": "Research and teaching. Not a medical device.",
                "data": {"source": d.source.describe(), "classes": run.classes, "notes": d.notes},
                "split": {"method": "grouped by patient or source image, stratified by class, 70/15/15",
                          **{f"n_{p}": int(len(v)) for p, v in d.parts.items()}},
                "training": {**run.config.to_dict(), "seconds": run.fit.seconds, "best_epoch": run.fit.best_epoch},
                "metrics": {**{k: v for k, v in s.items() if k not in ("per_class", "confusion_matrix")},
                            "validation_balanced_accuracy": floors[task]["value"], "floor": floors[task]["floor"]},
                "settings": dict(task_settings[task])}
        out[task] = clf.save(default_model_path(task), card)
    return out, refused


def inputs_sentence(per_task: Mapping[str, Mapping[str, Any]]) -> str:
    """Per task, the input its networks see (whole image or head crop), and where a task follows another task's patient
    split (``task_split_from``), starts from its trained networks (``task_init``, ``task_head_init``) or draws its
    training images class-balanced (``task_class_weight`` sampled), in words (Markdown)."""
    def extras(c: Mapping[str, Any]) -> str:
        out = f", split as {c['split_from']} splits its patients" if c.get("split_from") else ""
        out += (f", each network started from {c['init_from']}'s trained network of its architecture (all but the classifier)"
                if c.get("init_from") else "")
        out += ", its classifier first fitted as a linear probe of those starting features" if c.get("head_init") == "probe" else ""
        return out + (", each epoch's training images drawn class-balanced with replacement (the loss unweighted)"
                      if c.get("class_weight") == "sampled" else "")

    return "; ".join(f"**{t}**: " + input_label(c) + extras(c) for t, c in per_task.items()) + "."


def per_class_caption(task: str, arch: str, classes: Sequence[str]) -> str:
    """The caption of a folded per-class table."""
    return f"Per-class precision, recall, F1 and AUC: {task}, {arch} ({len(classes)} classes; click to open)"


#: How the deployed model of every task is chosen (inside the build, on training-side data).
CHOSEN_BY = "validation split (highest balanced accuracy)"


def deployed_table(chosen: Mapping[str, str], runs: Mapping[tuple[str, str], Any]):
    """Per task, the deployed model, how it was chosen, its validation balanced accuracy and the floor
    (:func:`fetal_lib.us.floor.deployment_rows`)."""
    import pandas as pd

    table = pd.DataFrame(deployment_rows(chosen, runs))
    table.insert(2, "chosen by", [CHOSEN_BY] * len(table))
    return table


def cv_sentence(variants, comparison) -> str:
    """What the CV tables beside the deployment are: results of ``fetal us cv`` found on this machine,
    shown for comparison, never read by the choice (Markdown); ``variants``/``comparison``: the tables shown."""
    if variants.empty:
        return ("No `fetal us cv` result was found for this run's tasks; the deployment above does not need one.")
    text = ("The tables above are grouped cross-validations of the training side that `fetal us cv` wrote on this machine "
            "apart from the book. They are shown **for comparison only: they did not choose the deployed models**, which "
            "the validation split of this build chose.")
    if not comparison.empty:
        agree = comparison[comparison["comparable"]]
        if len(agree):
            text += (f" Where the CV ran with this recipe and data, it agrees with the validation choice on "
                     f"{int(agree['agrees'].sum())} of {len(agree)} tasks.")
    return text


def refused_message(task: str, refused: Mapping[str, Any]) -> str:
    """The warning for a task whose chosen model is below its floor (:func:`save_models`)."""
    return (f"{task}: the chosen model ({refused['arch']}) has validation balanced accuracy {refused['value']:.3f}, below its floor "
            f"({refused['floor']}): not deployed; the previously deployed us_{task}.keras, if any, stays in place.")


def headline_keys(tasks: Sequence[str]) -> list[str]:
    """The chapter's headline figures: per task, the deployed model's test accuracy and macro AUC."""
    return [k for t in tasks for k in (f"{t}_accuracy", f"{t}_auc_macro")]


def metrics_document(tasks: Sequence[str], chosen: Mapping[str, str], all_scores, runs, results, eff, leak, per_task, crop_table,
                     finder, refused, cv_docs, cv_comparison, settings: Mapping[str, Any], precision_choice, saved,
                     t_start: float) -> dict[str, Any]:
    """The chapter's ``metrics.json`` figures: the headline (:func:`headline_keys`) first, then every table,
    the deployment and how it was chosen, the CVs found beside it, training histories and costs;
    ``t_start``: ``time.perf_counter()`` when the chapter began."""
    headline = {}
    for t in tasks:
        s = next(x for x in all_scores if x["task"] == t and x["model"] == chosen[t])
        headline[f"{t}_accuracy"] = s["accuracy"]
        headline[f"{t}_auc_macro"] = s["auc_macro"]
    weights = settings.get("xception_weights")
    return {
        **headline,
        "results": results.to_dict("records"),
        "scores": all_scores,
        "efficiency": eff.to_dict("records"),
        "leak_demonstration": None if leak is None else leak.to_dict("records"),
        "inputs": {t: input_label(c) for t, c in per_task.items()},
        "head_crop": crop_table.to_dict("records"),
        "head_finder": finder.describe() if finder is not None else None,
        "deployed": dict(chosen),
        "deployed_chosen_by": {t: CHOSEN_BY for t in chosen},
        "refused_below_floor": refused,
        "cv": {t: (doc["metrics"] if doc is not None else None) for t, doc in cv_docs.items()},
        "cv_comparison": cv_comparison.to_dict("records"),
        "xception_weights": str(weights) if weights else "random initialisation",
        "training_seconds": float(sum(r.fit.seconds for r in runs.values())),
        "training": {f"{t}/{a}": {**r.config.to_dict(), "seconds": r.fit.seconds, "best_epoch": r.fit.best_epoch,
                                 "history": r.fit.history} for (t, a), r in runs.items()},
        "precision_choice": precision_choice.to_dict(),
        "model_paths": {k: str(v) for k, v in saved.items()},
        "chapter_seconds": time.perf_counter() - t_start,
    }
