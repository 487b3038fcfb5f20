"""The chapter-2 benchmark as library calls: every architecture trained, thresholded on
validation and scored on the test split of chapter 1, the same way.

The split (:func:`fetal_lib.hc.pipeline.load_data`), the letterboxed arrays
(:func:`fetal_lib.hc.dataset.load_arrays`), the threshold choice, the post-processing, the ellipse
and the HC in mm (:func:`fetal_lib.hc.pipeline.evaluate`) are chapter 1's, imported, never
re-derived. The knobs' values live in the ``seg_benchmark:`` section of ``profiles/<profile>.yaml``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from fetal_lib.torch_segmenter import SEGMENTERS, Sampling
from fetal_lib.seg_benchmark.train import SegTrainConfig, SegTrainResult
from fetal_lib.seg_benchmark.spec import SPEC
from fetal_lib.config.profiles import chapter_knobs
from fetal_lib.devices import record
from fetal_lib.hc import pipeline as hc_pipeline
from fetal_lib.hc.dataset import load_arrays
from fetal_lib.hc.pipeline import FLOOR_ADVICE, FLOORS
from fetal_lib.hc.pipeline import summarize
from fetal_lib.metrics.uncertainty import bootstrap_ci
from fetal_lib.names import checked_names
from fetal_lib.paths import build_dir
from fetal_lib.training.floor import BelowFloorError
from fetal_lib.training.floor import check
from fetal_lib.training.precision import resolve_for_device

CHAPTER = "seg_benchmark"


def profile_settings(profile: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The chapter's knobs as ``profiles/<profile>.yaml`` ``seg_benchmark:`` sets them, then ``overrides``."""

    return chapter_knobs(SPEC, profile, overrides)


def parse_archs(text: str | Sequence[str]) -> list[str]:
    """``"attention_unet,unext"`` -> names, each checked against :data:`SEGMENTERS`.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """

    names = checked_names(text, SEGMENTERS, "architecture")
    if not names:
        raise ValueError(f"no architecture given; known: {', '.join(SEGMENTERS)}")
    return names


def precision_choice(settings: dict[str, Any], flags=None):
    """The torch training precision the ``precision`` knob resolves to on the device that trains
    (the ``device`` knob: the GPU's rule on CUDA; on the CPU its flags, or ``flags`` when given)."""

    return resolve_for_device(settings["precision"], "torch", settings.get("device", "auto"), flags)


def device_choice(settings: dict[str, Any]) -> dict[str, Any]:
    """The device the ``device`` knob resolves to here, as the card and provenance record it."""

    return record(settings.get("device", "auto"))


def train_config(settings: dict[str, Any], arch: str, seed: int = 0) -> SegTrainConfig:
    """The training configuration of ``arch`` under ``settings`` (every architecture the same epochs)."""
    options = dict((settings.get("arch_options") or {}).get(arch) or {})
    return SegTrainConfig(
        arch=arch,
        options=options,
        input_shape=(int(settings["input_rows"]), int(settings["input_cols"])),
        **SPEC.typed(settings, "epochs", "batch_size", "learning_rate", "augment", "augment_vflip", "val_every"),
        precision=precision_choice(settings).precision,
        sampling=Sampling(steps=int(settings["ddim_steps"]), n_samples=int(settings["diffusion_samples"]), seed=int(seed)),
        val_samples=1,
        seed=int(seed),
        device=str(settings.get("device") or "auto"),
    )


@dataclass
class ArchRun:
    """One architecture trained and scored."""

    arch: str
    trained: SegTrainResult
    hc_model: Any  # fetal_lib.hc.measure.HCModel around the trained segmenter
    threshold_table: Any  # DataFrame (validation)
    val_df: Any  # evaluate() on validation at the chosen threshold
    test_df: Any  # evaluate() on test, with the AP column
    inference_ms_per_image: float  # whole path per test image: letterbox, network (with TTA), resize back


def add_ap_column(df) -> Any:
    """``df`` (from :func:`fetal_lib.hc.pipeline.evaluate`) with ``ap_iou``, each image's AP over the
    COCO IoU thresholds (:func:`fetal_lib.metrics.segmentation.ap_over_iou_thresholds`); its mean
    is the chapter's mAP."""
    from fetal_lib.metrics.segmentation import ap_over_iou_thresholds  # deferred: imports scipy

    out = df.copy()
    out["ap_iou"] = [ap_over_iou_thresholds(v) for v in out["iou"].clip(0, 1)]
    return out


@dataclass(frozen=True)
class Start:
    """Trained weights a training continues from: the network and the epochs behind it."""

    net: Any  # torch.nn.Module of the architecture being trained (copied, never changed)
    epochs: int


def start_of(run: ArchRun) -> Start:
    """Where a continuation of ``run`` starts: its network and :func:`total_epochs`."""
    return Start(run.trained.segmenter.net, total_epochs(run))


def run_arch(data, settings: dict[str, Any], arch: str, seed: int = 0, progress: bool = False,
             log: Callable[[str], None] | None = None, initial: Start | None = None) -> ArchRun:
    """Train ``arch`` on the train part, choose the threshold on validation, score the test part.

    ``initial``: trained weights of the same architecture that this training continues
    (``settings["epochs"]`` more epochs on a fresh cosine schedule) instead of starting from random weights."""
    from fetal_lib.hc.measure import HCModel  # deferred: imports scipy
    from fetal_lib.seg_benchmark.train import train  # looked up at call time: a test replaces it

    config = train_config(settings, arch, seed)
    if initial is not None:
        config.initial_epochs = int(initial.epochs)
    cache = build_dir() / "cache" / "hc18"
    x_tr, y_tr = load_arrays(data.part("train"), config.input_shape, "filled", cache, progress)
    x_va, y_va = load_arrays(data.part("val"), config.input_shape, "filled", cache, progress)
    trained = train(config, x_tr, y_tr, x_va, y_va, progress=progress, log=log,
                    initial=None if initial is None else initial.net)
    tta = [t.strip() for t in str(settings["tta"]).split(",") if t.strip()]
    hc_model = HCModel(trained.segmenter, {"tta": tta})
    val_recs, test_recs = data.part("val"), data.part("test")
    val_probs = hc_pipeline.probabilities(hc_model, val_recs)
    best, table = hc_pipeline.choose_threshold(hc_model, val_recs, hc_pipeline.parse_grid(settings["threshold_grid"]), val_probs)
    hc_model.threshold = best
    val_df = hc_pipeline.evaluate(hc_model, val_recs, val_probs)
    t0 = time.perf_counter()
    test_probs = hc_pipeline.probabilities(hc_model, test_recs)
    ms = 1000 * (time.perf_counter() - t0) / max(1, len(test_recs))
    test_df = add_ap_column(hc_pipeline.evaluate(hc_model, test_recs, test_probs))
    return ArchRun(arch, trained, hc_model, table, val_df, test_df, ms)


def total_epochs(run: ArchRun) -> int:
    """Epochs of training behind ``run``'s network: its own plus those of the weights it continued from."""
    return int(run.trained.config.initial_epochs) + len(run.trained.fit.history)


def extra_epochs(settings: dict[str, Any], run: ArchRun) -> int:
    """Epochs the winner trains on to reach ``settings["winner_epochs"]`` in all (0 or less: none)."""
    return int(settings.get("winner_epochs") or 0) - total_epochs(run)


def continue_winner(data, settings: dict[str, Any], run: ArchRun, seed: int = 0, progress: bool = False,
                    log: Callable[[str], None] | None = None) -> ArchRun | None:
    """The validation winner trained on to ``settings["winner_epochs"]`` epochs in all (continuing
    from its benchmark weights, with a fresh cosine schedule over the extra epochs), scored as
    every other run; None when ``winner_epochs`` is 0 or not above the epochs it already had."""
    extra = extra_epochs(settings, run)
    if extra <= 0:
        return None
    return run_arch(data, {**settings, "epochs": extra}, run.arch, seed, progress, log, initial=start_of(run))


def choose_deployed(benchmarked: ArchRun, continued: ArchRun | None) -> ArchRun:
    """Which of the winner's two networks ``best.pt`` gets: the lower mean HC error on validation
    (the test split decides nothing); the benchmarked one on a tie or when there is no other."""
    if continued is None:
        return benchmarked
    a, b = validation_scores(benchmarked), validation_scores(continued)
    better = math.isfinite(b["hc_abs_diff_mean_mm"]) and (
        not math.isfinite(a["hc_abs_diff_mean_mm"]) or b["hc_abs_diff_mean_mm"] < a["hc_abs_diff_mean_mm"])
    return continued if better else benchmarked


def deployment_table(benchmarked: ArchRun, continued: ArchRun | None, deployed: ArchRun, seed: int = 0):
    """The winner's candidates for ``best.pt`` side by side: epochs, validation figures (which
    decide) and test figures (reported), and which one is deployed."""
    import pandas as pd

    rows = []
    for label, run in (("benchmark", benchmarked), ("continued", continued)):
        if run is None:
            continue
        val = validation_scores(run)
        test = test_scores(run.test_df, seed)
        rows.append({"network": f"{run.arch}, {label}", "epochs": total_epochs(run),
                     "validation HC |diff| mean (mm)": val["hc_abs_diff_mean_mm"], "validation Dice": val["dice_mean"],
                     "test Dice": test["Dice"], "test HC |diff| mean (mm)": test["HC |diff| mean (mm)"],
                     "HC CI low (mm)": test["HC CI low (mm)"], "HC CI high (mm)": test["HC CI high (mm)"],
                     "training (min)": run.trained.fit.seconds / 60.0, "deployed": run is deployed})
    return pd.DataFrame(rows)


def test_scores(df, seed: int = 0) -> dict[str, Any]:
    """The chapter's test columns of one network from its per-image table (with ``ap_iou``): overlap
    means, HD95 and HC error in mm with the subject-bootstrap CI of the mean, failures."""

    s = summarize(df, seed=seed)
    ci = s.get("hc_abs_diff_ci95_mm") or [math.nan, math.nan]
    return {
        "Dice": float(df["dice"].mean()),
        "IoU": float(df["iou"].mean()),
        "recall": float(df["recall"].mean()),
        "precision": float(df["precision"].mean()),
        "mAP": float(df["ap_iou"].mean()),
        "HD95 (mm)": s["hd95_mean_mm"],
        "HC |diff| mean (mm)": s.get("hc_abs_diff_mean_mm", math.nan),
        "HC |diff| SD (mm)": s.get("hc_abs_diff_sd_mm", math.nan),
        "HC |diff| median (mm)": s.get("hc_abs_diff_median_mm", math.nan),
        "HC CI low (mm)": ci[0],
        "HC CI high (mm)": ci[1],
        "no head found": s["n_no_head_found"],
    }


def summary_row(run: ArchRun, seed: int = 0) -> dict[str, Any]:
    """The results-table row of one architecture: :func:`test_scores`, then its cost (parameters,
    training minutes and images/s, inference ms per image) and its validation figures."""
    fit = run.trained.fit
    val = validation_scores(run)
    return {
        "architecture": run.arch,
        **test_scores(run.test_df, seed),
        "parameters": run.trained.parameters,
        "epochs": total_epochs(run),
        "best epoch": fit.best_epoch,
        "training (min)": fit.seconds / 60.0,
        "training images/s": run.trained.train_images_per_s,
        "inference ms/image": run.inference_ms_per_image,
        "validation HC |diff| mean (mm)": val["hc_abs_diff_mean_mm"],
        "validation Dice": val["dice_mean"],
        "threshold": run.hc_model.threshold,
    }


def choose_best(rows: Sequence[dict[str, Any]]) -> str:
    """The architecture with the lowest mean HC error on the validation split (the test split
    decides nothing); ties, and architectures that found no head there, go by validation Dice."""
    if not rows:
        raise ValueError("no architecture to choose from")

    def key(row):
        hc = row["validation HC |diff| mean (mm)"]
        return (hc if math.isfinite(hc) else math.inf, -row.get("validation Dice", 0.0))

    return min(rows, key=key)["architecture"]


def paired_differences(runs: Sequence[ArchRun], column: str, seed: int = 0, n_boot: int = 1000):
    """Per-pair mean difference (row minus column architecture) of a per-image test column
    (``dice`` or ``hc_abs_diff_mm``) over the images both scored, with a subject-bootstrap 95 % CI.

    Returns:
        DataFrame: pair, mean difference, CI low, CI high, images, and whether the CI excludes zero
        (NaN and 0 images for a pair without a common image where both found a head).
    """
    import pandas as pd


    rows = []
    for i, a in enumerate(runs):
        for b in runs[i + 1 :]:
            left = a.test_df.set_index("filename")
            right = b.test_df.set_index("filename")
            both = left.index.intersection(right.index)
            diff = (left.loc[both, column] - right.loc[both, column]).to_numpy(float)
            keep = np.isfinite(diff)
            if not keep.any():  # neither found a head on any common image: nothing to compare
                rows.append({"pair": f"{a.arch} - {b.arch}", "mean difference": math.nan, "CI low": math.nan, "CI high": math.nan,
                             "images": 0, "CI excludes 0": False})
                continue
            groups = left.loc[both, "subject_id"].to_numpy()[keep]
            ci = bootstrap_ci(lambda v: float(np.mean(v)), diff[keep], n_boot=n_boot, seed=seed, groups=groups)
            rows.append({"pair": f"{a.arch} - {b.arch}", "mean difference": ci.estimate, "CI low": ci.low, "CI high": ci.high,
                         "images": int(keep.sum()), "CI excludes 0": bool(ci.low > 0 or ci.high < 0)})
    return pd.DataFrame(rows)


def model_card(run: ArchRun, data, profile: str, settings: dict[str, Any], test_row: dict[str, Any], seed: int, chosen: bool = False) -> dict:
    """The model card of one trained architecture (:mod:`fetal_lib.model_card`): what
    ``fetal hc measure --model`` needs to rebuild it and measure as the chapter did."""
    seg = run.trained.segmenter
    return {
        **seg.card_fields(profile),
        "name": f"HC18 head segmentation, {run.arch} (chapter 2)" + (", chosen on validation" if chosen else ""),
        "intended_use": "Research and teaching: head circumference (mm) on 2D fetal ultrasound standard planes like HC18's. Not a medical device.",
        "limitations": "Trained on HC18 (one centre); one head per image; the pixel size must be given. Widths reduced for a CPU "
                       "in the cpu profile (see architecture options).",
        "data": {"dataset": "HC18 (van den Heuvel et al., PLOS ONE 2018; Zenodo 1327317), CC BY 4.0",
                 "source": data.source.describe(), "is_phantom": bool(data.source.is_phantom), "n_images": len(data.records)},
        "split": {"method": "chapter 1's: grouped by subject, stratified by HC tercile, fractions 70/15/15", "seed": seed,
                  **{f"n_{k}": int(len(v)) for k, v in data.parts.items()}},
        "training": {**run.trained.config.to_dict(), "seconds": round(run.trained.fit.seconds, 1),
                     "best_epoch": run.trained.fit.best_epoch, "train_images_per_s": round(run.trained.train_images_per_s, 2),
                     "parameters": run.trained.parameters, "trained_on": device_choice({"device": run.trained.fit.device})},
        "inference": run.hc_model.settings(),
        "metrics": {"split": "test", **{k: v for k, v in test_row.items() if k != "architecture"}},
        "settings": settings,
    }


def validation_scores(run: ArchRun) -> dict[str, float]:
    """Validation Dice and mean HC error (mm) of one architecture at its chosen threshold."""
    val = run.val_df
    found = val[val["found"]]
    return {"dice_mean": float(val["dice"].mean()),
            "hc_abs_diff_mean_mm": float(found["hc_abs_diff_mm"].mean()) if len(found) else math.nan}


def check_floor(run: ArchRun, is_phantom: bool) -> dict[str, float]:
    """Chapter 1's sanity floor (:data:`fetal_lib.hc.pipeline.FLOORS`) on ``run``'s validation
    scores; raises ``BelowFloorError`` below it, so a broken network is never deployed."""

    scores = validation_scores(run)
    fit = run.trained.fit
    what = (f"The {run.arch} segmenter ({len(fit.history)} of {run.trained.config.epochs} epochs, "
            f"{run.trained.train_images_per_s:.1f} training images/s, {run.trained.config.precision})")
    check(scores, FLOORS["phantom" if is_phantom else "real"], what, FLOOR_ADVICE)
    return scores


def below_floor(run: ArchRun, is_phantom: bool) -> str | None:
    """The floor's message when ``run`` is below it, else None."""

    try:
        check_floor(run, is_phantom)
    except BelowFloorError as exc:
        return str(exc)
    return None


def run_archs(data, settings: dict[str, Any], archs: Sequence[str], seed: int = 0,
              log: Callable[[str], None] | None = None) -> dict[str, ArchRun]:
    """Every architecture of ``archs`` trained and scored in turn (:func:`run_arch`), each
    announced and summarised on ``log`` (one line: parameters, minutes, images/s, best epoch, threshold)."""
    say = log or (lambda _: None)
    runs = {}
    for arch in archs:
        say(f"--- {arch}")
        runs[arch] = r = run_arch(data, settings, arch, seed, log=log)
        say(f"{arch}: {r.trained.parameters:,} parameters, {r.trained.fit.seconds / 60:.1f} min, {r.trained.train_images_per_s:.1f} images/s, "
            f"best epoch {r.trained.fit.best_epoch}, threshold {r.hc_model.threshold:g}")
    return runs


def fixed_arch(settings: dict[str, Any], arch_names: Sequence[str]) -> str | None:
    """The architecture the ``deploy_arch`` knob fixes, or None for ``auto`` (this run's validation winner).

    Raises:
        ValueError: a name that is not among the benchmarked ``arch_names`` (the message names the knob).
    """
    name = str(settings.get("deploy_arch") or "auto").strip()
    if name == "auto":
        return None
    if name not in arch_names:
        raise ValueError(f"deploy_arch {name!r} is not among the benchmarked architectures ({', '.join(arch_names)}); "
                         "set one of them, or auto for this run's validation winner")
    return name


@dataclass
class Deployment:
    """The deployed architecture, its continuation (None when it trained no further) and which of the two is deployed."""

    best: str  # the architecture deployed: the profile's deploy_arch, else the validation winner
    benchmarked: ArchRun
    continued: ArchRun | None
    deployed: ArchRun
    row: dict[str, Any]  # :func:`summary_row` of the deployed network, with ``network`` (which of the two)
    validation_best: str  # this run's validation winner (:func:`choose_best`), whether or not it is deployed
    fixed: bool  # True when the profile's deploy_arch chose ``best``


def deploy_winner(data, settings: dict[str, Any], runs: dict[str, ArchRun], rows: Sequence[dict[str, Any]], seed: int = 0,
                  log: Callable[[str], None] | None = None) -> Deployment:
    """The architecture the profile fixes (``deploy_arch``), else the one chosen on validation
    (:func:`choose_best` over ``rows``), trained on to ``winner_epochs`` (:func:`continue_winner`);
    the better of its two networks on validation is deployed (:func:`choose_deployed`)."""
    validation_best = choose_best(rows)
    fixed = fixed_arch(settings, [row["architecture"] for row in rows])
    best = fixed or validation_best
    continued = continue_winner(data, settings, runs[best], seed, log=log)
    deployed = choose_deployed(runs[best], continued)
    network = "continued to " + str(total_epochs(deployed)) + " epochs" if deployed is continued else "benchmark weights"
    return Deployment(best, runs[best], continued, deployed, {**summary_row(deployed, seed), "network": network},
                      validation_best, fixed is not None)
