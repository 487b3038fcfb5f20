"""Steps of the brain_age chapter, so that the chapter itself only narrates.

Data preparation in the preprocessed space, segmentation evaluation (Dice, HD95 per tissue,
bootstrap CIs), segmentation cross-validation, regression CV over several models, evaluation
of the deployed regressor on predicted segmentations, and saving the deployable models.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from fetal_lib import anchors

from fetal_lib.brain_age import features, preprocess, segmentation
from fetal_lib.brain_age.dataset import Subject
from fetal_lib.brain_age.fold_ensemble import FoldSegmenters, is_ensemble, members_of
from fetal_lib.training.floor import Floor
from fetal_lib.brain_age import dataset
from fetal_lib.brain_age import nested
from fetal_lib.brain_age.correction import fit_mixing
from fetal_lib.brain_age.predict import CORRECTION_FILE
from fetal_lib.data.sources import resolve
from fetal_lib.devices import record
from fetal_lib.io import write_json_atomic
from fetal_lib.metrics.regression import mae, pearson_r, r2
from fetal_lib.metrics.uncertainty import bootstrap_ci
from fetal_lib.model_card import common_fields
from fetal_lib.model_card import write_card
from fetal_lib.provenance import git_state, package_versions
from fetal_lib.training.floor import check
from fetal_lib.training.precision import resolve_for_device

TISSUE_NAMES = {1: "CSF", 2: "GM", 3: "WM"}

# The sanity floor of the deployed segmenter on the validation subjects (fetal_lib.training.floor):
# below it the chapter stops and deploys nothing. Real Cam-CAN: every tissue's Dice at least
# 0.75 (working models score 0.85-0.96; the source reports 0.79-0.92). Phantom: what a 1-epoch
# smoke model clears.
FLOORS = {
    "real": tuple(Floor(f"dice_{name.lower()}", 0.75, "min") for name in ("CSF", "GM", "WM")),
    # the phantom's thin white matter is not learnt by the smoke profile's tiny network, so the phantom floor is on
    # the mean: an untrained network scores about 0.09 there (CSF overlap only), 8 smoke epochs about 0.3
    "phantom": (Floor("dice_mean", 0.2, "min"),),
}
FLOOR_ADVICE = ("Look at the training log (epochs run, loss, validation Dice): if a wall-time cap (seg_time_budget_s) cut "
                "training short, remove it or give more epochs; on a CPU without native bfloat16 train in float32 "
                "(seg_precision=auto does; `fetal doctor` shows what this machine resolves to).")


def seg_train_config(settings: dict, seed: int = 0, flags=None) -> segmentation.TrainConfig:
    """The segmenter's :class:`~fetal_lib.brain_age.segmentation.TrainConfig` from the chapter's ``seg_*``
    parameters (its parameters cell, or a profile's ``brain_age:`` section over it); ``seg_precision``
    is resolved for the device that trains (or for ``flags``, on the CPU)."""
    g = settings
    return segmentation.TrainConfig(
        base_width=int(g["seg_base_width"]), depth=int(g["seg_depth"]), epochs=int(g["seg_epochs"]),
        batch_size=int(g["seg_batch_size"]), crop=int(g["seg_crop"]) or None, seed=int(seed),
        nn_channel=bool(g["seg_nn_channel"]), mask_channel=bool(g["seg_mask_channel"]), loss=str(g["seg_loss"]),
        val_every=int(g["seg_val_every"]), time_budget_s=float(g["seg_time_budget_s"]) if g.get("seg_time_budget_s") else None,
        precision=precision_choice(g.get("seg_precision", "auto"), flags, g.get("device")).precision,
        device=str(g.get("device") or "auto"),
    )


def precision_choice(requested: str, flags=None, device: str | None = "auto"):
    """The torch training precision ``requested`` ("auto", "float32", "bfloat16") resolves to on the
    device that trains (``device``: the GPU's rule on CUDA; on the CPU its flags, or ``flags`` when given)."""

    return resolve_for_device(requested, "torch", device, flags)


def device_choice(device: str | None = "auto") -> dict:
    """The device the ``device`` knob resolves to here, as the card and provenance record it."""

    return record(device)


def check_floor(val_dice: dict[str, float], is_phantom: bool, what: str) -> dict[str, float]:
    """``{"dice_csf": .., "dice_gm": .., "dice_wm": .., "dice_mean": ..}`` from ``{"CSF": ..}``; raises ``BelowFloorError``
    below :data:`FLOORS`. Call it before saving: a segmenter below the floor is never deployed."""

    scores = {f"dice_{k.lower()}": float(v) for k, v in val_dice.items()}
    scores["dice_mean"] = float(np.mean(list(scores.values())))
    check(scores, FLOORS["phantom" if is_phantom else "real"], what, FLOOR_ADVICE)
    return scores
def out_of_fold_scores(segmenters, data: "ImageSet", epochs: int, precision: str, is_phantom: bool, n_boot: int = 100,
                       seed: int = 0) -> tuple["pd.DataFrame", "pd.DataFrame", dict[str, float]]:
    """The out-of-fold segmentations of every image subject scored and checked against the sanity floor.

    Returns (per-subject Dice/HD95 table, per-tissue summary with bootstrap CIs, the floor's scores); raises
    ``BelowFloorError`` below :data:`FLOORS` (call it before saving anything)."""
    table = seg_metrics_table(segmentation.labels_of(segmenters.proba), data.segs, data.subjects, data.spacing_mm)
    summary = summarize_seg(table, n_boot=n_boot, seed=seed)
    trained = segmenters.deployed()
    scores = check_floor({str(r["tissue"]): float(r["dice"]) for _, r in summary.iterrows()}, is_phantom,
                         f"The Res-U-Net segmenters ({segmenters.folds} folds, {len(trained.history)} of {epochs} epochs, "
                         f"{precision}), out of fold")
    return table, summary, scores


# The source project's figures, from the anchors table (fetal_lib.anchors, with their bib key).
SOURCE_VAL_DICE = {t: anchors.get(f"brain_age.source.val_dice_{t.lower()}").value for t in ("CSF", "GM", "WM")}
SOURCE_HOLDOUT = {"mae_years": anchors.get("brain_age.source.holdout_mae").value,
                  "r2": anchors.get("brain_age.source.holdout_r2").value}


@dataclass
class ImageSet:
    """Subjects with images, in the preprocessed space (arrays zyx)."""

    subjects: list[Subject]
    images: np.ndarray  # (N, D, H, W) float32
    masks: np.ndarray  # (N, D, H, W) uint8
    segs: np.ndarray  # (N, D, H, W) uint8 reference labels
    spacing_mm: tuple[float, float, float]
    example_raw: tuple | None = None  # (image, mask, seg) SimpleITK of the first subject, for figures
    images_nn: np.ndarray | None = None  # (N, D, H, W) float32, the images resampled by nearest neighbour

    def intensities(self, names: Sequence[str] = ("image",)) -> np.ndarray:
        """Segmenter input: (N, D, H, W) for ``("image",)``, else (N, C, D, H, W) with the named channels."""
        arrays = dict(zip(preprocess.INTENSITY_CHANNELS, (self.images, self.images_nn)))  # one channel vocabulary
        for n in names:
            if n not in arrays:
                raise ValueError(f"unknown intensity channel {n!r}; choose from {', '.join(preprocess.INTENSITY_CHANNELS)}")
            if arrays[n] is None:
                raise ValueError(f"no intensity channel {n!r} in this image set")
        if tuple(names) == ("image",):
            return self.images
        return np.stack([arrays[n] for n in names], axis=1)

    @property
    def ages(self) -> np.ndarray:
        return np.array([s.age_years for s in self.subjects])

    def role_index(self, role: str) -> np.ndarray:
        return np.array([i for i, s in enumerate(self.subjects) if s.role == role], dtype=int)


def prepare_images(subjects: Sequence[Subject], spacing_mm=preprocess.SPACING_MM, size=preprocess.SIZE, progress: bool = False) -> ImageSet:
    """Preprocess every subject that has an image and a mask (reference seg resampled alongside)."""
    subs = [s for s in subjects if s.image_path is not None and s.mask_path is not None]
    it = subs
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(subs, desc="preprocess", unit="subject")
    X, XN, M, Y = [], [], [], []
    example = None
    spacing = None
    for s in it:
        image, mask, seg = preprocess.load_checked(s.image_path, s.mask_path, s.seg_path)
        if example is None:
            example = (image, mask, seg)
        p = preprocess.preprocess(image, mask, seg, spacing_mm, size)
        X.append(p.image)
        XN.append(p.image_nn)
        M.append(p.mask)
        Y.append(p.seg)
        spacing = p.spacing_mm
    return ImageSet(list(subs), np.stack(X), np.stack(M), np.stack(Y), spacing, example, images_nn=np.stack(XN))


def prepare_reference_segs(subjects: Sequence[Subject], spacing_mm=preprocess.SPACING_MM, size=preprocess.SIZE, progress: bool = False) -> tuple[np.ndarray, tuple]:
    """Reference segmentations brought to the preprocessed grid (nearest neighbour): (N, D, H, W), spacing."""
    it = subjects
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(subjects, desc="reference segmentations", unit="subject")
    out, sp = [], None
    for s in it:
        a, sp = preprocess.resample_seg_file(s.seg_path, spacing_mm, size)
        out.append(a)
    return np.stack(out), sp


def seg_metrics_table(pred: np.ndarray, ref: np.ndarray, subjects: Sequence[Subject], spacing_mm: Sequence[float]):
    """Per subject and tissue: Dice and HD95 (mm), plus predicted and reference volumes (mL)."""
    import pandas as pd

    from fetal_lib.metrics.segmentation import dice, hd95_mm  # deferred: imports scipy

    sp_zyx = tuple(reversed([float(s) for s in spacing_mm]))
    rows = []
    for p, r, s in zip(pred, ref, subjects):
        for lab, name in TISSUE_NAMES.items():
            rows.append({
                "subject_id": s.subject_id, "role": s.role, "age_years": s.age_years, "tissue": name,
                "dice": dice(p == lab, r == lab), "hd95_mm": hd95_mm(p == lab, r == lab, spacing=sp_zyx),
                "pred_ml": float((p == lab).sum()) * features.voxel_volume_ml(spacing_mm),
                "ref_ml": float((r == lab).sum()) * features.voxel_volume_ml(spacing_mm),
            })
    return pd.DataFrame(rows)


def summarize_seg(table, n_boot: int = 1000, seed: int = 0):
    """Per tissue: mean Dice and HD95 with 95% bootstrap CIs (subjects resampled)."""
    import pandas as pd


    rows = []
    for name in TISSUE_NAMES.values():
        t = table[table["tissue"] == name]
        d = bootstrap_ci(np.mean, t["dice"].to_numpy(), n_boot=n_boot, seed=seed)
        h = bootstrap_ci(np.mean, t["hd95_mm"].to_numpy(), n_boot=n_boot, seed=seed)
        rows.append({"tissue": name, "n": len(t), "dice": d.estimate, "dice_ci_low": d.low, "dice_ci_high": d.high,
                     "hd95_mm": h.estimate, "hd95_ci_low": h.low, "hd95_ci_high": h.high,
                     "source_val_dice": SOURCE_VAL_DICE[name]})
    return pd.DataFrame(rows)


def fold_segmenters(data: ImageSet, cfg: segmentation.TrainConfig, n_splits: int, seed: int = 0, progress: bool = False, log=None,
                    tta: bool = False, validate: bool = False) -> FoldSegmenters:
    """K segmenters over the image subjects (folds stratified by age), each trained on the other folds; the
    out-of-fold class probabilities of every subject (``tta``: left-right mirror averaged, as deployed). With
    ``validate`` each fold's network is also scored on its held-out fold every ``cfg.val_every`` epochs (its history).
    :meth:`FoldSegmenters.deployed` is the deployed segmenter (the members averaged)."""
    from fetal_lib.brain_age.regression import age_folds  # deferred: imports sklearn

    proba = np.zeros((len(data.segs), 4) + data.segs.shape[1:], np.float32)
    inputs = data.intensities(cfg.intensity_names())
    result = FoldSegmenters(proba=proba)
    for k, (tr, te) in enumerate(age_folds(data.ages, n_splits, seed)):
        if log:
            log(f"segmentation CV fold {k + 1}/{n_splits}: train {len(tr)}, test {len(te)}")
        val = (inputs[te], data.masks[te], data.segs[te]) if validate else None
        res = segmentation.train(inputs[tr], data.segs[tr], cfg, masks=data.masks[tr], val=val, progress=progress, log=log if validate else None)
        proba[te] = segmentation.constrained_proba(res.model, inputs[te], data.masks[te], spacing_mm=data.spacing_mm[0], tta=tta)
        result.fits.append(res)
        result.held_out.append(np.asarray(te))
    return result


def uses_tta(settings: dict) -> bool:
    """The profile's ``seg_tta`` (``hflip`` or ``none``; absent: ``none``) as a bool."""
    value = str(settings.get("seg_tta", "none"))
    if value not in ("hflip", "none"):
        raise ValueError(f"seg_tta must be hflip or none, not {value!r}")
    return value == "hflip"


def deployed_folds(settings: dict) -> int:
    """``seg_cv_folds``: the number of out-of-fold segmenters, whose average is deployed.

    Raises:
        ValueError: fewer than 2.
    """
    folds = int(settings["seg_cv_folds"])
    if folds < 2:
        raise ValueError(f"seg_cv_folds is {folds}: the deployed segmenter is the out-of-fold segmenters averaged, "
                         "so it needs at least 2 folds")
    return folds


def out_of_fold(data: ImageSet, cfg: segmentation.TrainConfig, settings: dict, seed: int = 0, log=None) -> np.ndarray:
    """The out-of-fold class probabilities of :func:`fold_segmenters` with the profile's ``seg_cv_folds`` and ``seg_tta``.

    Raises:
        ValueError: fewer than 2 folds.
    """
    return fold_segmenters(data, cfg, deployed_folds(settings), seed, log=log, tta=uses_tta(settings)).proba


def regression_models(settings: dict) -> list[str]:
    """The regressors of the knob ``reg_models`` (comma-separated), in its order.

    Raises:
        ValueError: ``deploy_model`` not among them.
    """
    models = [m.strip() for m in str(settings["reg_models"]).split(",") if m.strip()]
    if settings["deploy_model"] not in models:
        raise ValueError(f"deploy_model {settings['deploy_model']!r} must be one of reg_models {models}")
    return models


def regression_cv(models: Sequence[str], age: np.ndarray, feats: dict, n_splits: int, inner_splits: int, seed: int, n_components: int, progress: bool = False):
    """Run :func:`regression.cross_validate` for each model; returns {name: CVResult} and a summary table."""
    import pandas as pd

    from fetal_lib.brain_age import regression  # deferred: imports sklearn

    results, rows = {}, []
    it = models
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(models, desc="regression CV", unit="model")
    for name in it:
        r = regression.cross_validate(name, age, feats["volumes"], feats["maps"], n_splits, inner_splits, seed, n_components)
        results[name] = r
        ci = bootstrap_ci(lambda t, p: mae(t, p), age, r.predicted, seed=seed)
        gap_raw = r.predicted - age
        gap_cor = r.corrected - age
        rows.append({
            "model": name, "source": "source" if name in regression.SOURCE_MODELS else "ours",
            "numbers_per_brain": feats["volumes"].shape[1] + (feats["maps"].shape[1] if regression.uses_maps(name) else 0),
            "mae_years": ci.estimate, "mae_ci_low": ci.low, "mae_ci_high": ci.high, "r2": r2(age, r.predicted),
            "gap_vs_age_r_raw": pearson_r(age, gap_raw), "gap_vs_age_r_corrected": pearson_r(age, gap_cor),
            "mae_corrected_years": mae(age, r.corrected),
        })
    return results, pd.DataFrame(rows)


def model_card(profile: str, source, reg_age: np.ndarray, seg_model, cfg: segmentation.TrainConfig, trained: segmentation.TrainResult,
               n_train: int, n_val: int, val_dice: dict[str, float], deployed, deploy_model: str, deploy_features: str,
               map_factor: int, provenance: dict, regressor_metrics: dict | None = None, correction=None,
               training_set: str = "reference", tta: bool = False) -> dict:
    """The card of the deployed brain-age models (:mod:`fetal_lib.model_card`); ``regressor_metrics``
    adds what the chapter measured (CV MAE, MAE on predicted segmentations), which `fetal brain-age train` does not."""
    import dataclasses


    age_range = f"{np.min(reg_age):.0f}-{np.max(reg_age):.0f}"
    common = common_fields("torch", "resunet3d", seg_model.config,
                           {"shape": [len(cfg.input_names()), *preprocess.SIZE], "channels": list(cfg.input_names()),
                            "values": "T1 normalised to zero mean, unit variance in the brain mask; brain mask 0/1"}, profile)
    return {
        **common,
        "name": "Brain age from adult T1 MRI: 3D Res-U-Net tissue segmentation (CSF, GM, WM) -> regression of age (chapter brain_age)",
        "intended_use": "Research and teaching: tissue volumes (CSF, GM, WM in mL) and a predicted age (years) from a bias-corrected, "
                        "MNI-aligned adult T1 MRI with its brain mask, as in the Cam-CAN teaching set (2 mm, 98x116x94). Not a clinical "
                        f"device. Predictions for other scanners, ages outside {age_range} years, or other preprocessing are unvalidated.",
        "limitations": ["The regressor is trained on reference segmentations; at prediction time it sees Res-U-Net segmentations "
                        "(the domain shift, and the feature correction that narrows it where deployed, are reported in the chapter).",
                        "The predicted age is uncorrected: it regresses towards the training mean age; the age-bias correction "
                        "(for group analyses) needs the chronological age.",
                        "Cam-CAN data usage agreement: research use, no redistribution of the data."],
        "data_status": source.describe(),
        "age_range_years": age_range,
        "preprocessing": {"spacing_mm": list(preprocess.SPACING_MM), "size": list(preprocess.SIZE), "normalisation": "zero mean, unit variance in the brain mask"},
        "segmenter": {"config": seg_model.config, "train": segmentation.config_dict(cfg), "n_train": int(n_train), "n_val": int(n_val),
                      "members": len(members_of(seg_model)),
                      "members_combined": "class probabilities averaged" if is_ensemble(seg_model) else "one network",
                      "val_dice": val_dice,
                      "val_dice_of": ("out-of-fold segmentations: each image subject by the member that did not train on it"
                                      if is_ensemble(seg_model) else "the validation subjects"),
                      "epochs_run": len(trained.history), "time_capped": trained.time_capped,
                      "tta": "hflip" if tta else "none", "trained_on": device_choice(trained.device)},
        "regressor": {"name": deploy_model, "n_train": deployed.n_train, "training_set": training_set, "features": deploy_features,
                      "map_factor": int(map_factor),
                      "bias": dataclasses.asdict(deployed.bias), **(regressor_metrics or {})},
        "feature_correction": correction.to_dict() if correction is not None else None,
        "provenance": {**common["provenance"], **provenance},
    }


def save_deployable(directory: str | Path, seg_model, deployed, deploy_features: str, card: dict | None = None,
                    correction=None, tta: bool = False) -> Path:
    """Write the segmenter (with its feature kind and ``tta``: left-right mirror averaged at prediction),
    the regressor, the feature correction (or remove a stale one) and (if given) the model card into
    ``directory``, each atomically; ``fetal brain-age predict`` reads them back."""
    from fetal_lib.brain_age import regression  # deferred: imports sklearn

    directory = Path(directory)
    segmentation.save(seg_model, directory, extra={"preprocessing": {"spacing_mm": list(preprocess.SPACING_MM), "size": list(preprocess.SIZE)},
                                                   "features": deploy_features, "tta": "hflip" if tta else "none"})
    regression.save(deployed, directory)
    if correction is not None:
        write_json_atomic(directory / CORRECTION_FILE, correction.to_dict())
    else:
        (directory / CORRECTION_FILE).unlink(missing_ok=True)
    if card is not None:
        write_card(directory / "model_card.json", card)
    return directory


CORRECTIONS = ("none", "tissue_mixing")


def deployed_regressor(settings: dict, reg_age: np.ndarray, reg_feats: dict, data: ImageSet | None = None,
                       oof_proba: np.ndarray | None = None, seed: int = 0):
    """The deployed :class:`~fetal_lib.brain_age.regression.Regressor` (``deploy_model``, ``map_factor``):
    on the regression subjects' reference features (``reg_training_set: reference``), or with the
    image subjects added, reference and out-of-fold predicted (``reference+image_subjects``,
    :mod:`fetal_lib.brain_age.mixed_training`; needs ``data`` and ``oof_proba``, the predicted
    features soft or hard as ``deploy_features`` says).

    Raises:
        ValueError: an unknown training set; for the mixed one, a feature correction also asked for, or
            the image subjects' data missing.
    """
    from fetal_lib.brain_age import mixed_training, regression  # deferred: imports sklearn

    name, factor, n_comp = str(settings["deploy_model"]), int(settings["map_factor"]), int(settings["pca_components"])
    if mixed_training.check(str(settings.get("reg_training_set", "reference"))) == "reference":
        return regression.fit_deployable(name, reg_age, reg_feats["volumes"], reg_feats["maps"], factor, seed, n_comp)
    if str(settings["feature_correction"]) != "none":
        raise ValueError("reg_training_set reference+image_subjects already trains on predicted features: set feature_correction "
                         "to none (one remedy for the domain shift at a time)")
    if data is None or oof_proba is None:
        raise ValueError("reg_training_set reference+image_subjects needs the image subjects and their out-of-fold segmentations")
    img_reference = features.feature_matrix(data.segs, data.spacing_mm, factor)
    img_predicted = features.from_probabilities(oof_proba, data.spacing_mm, factor, soft=str(settings["deploy_features"]) == "soft")
    return mixed_training.fit(name, reg_age, reg_feats, data.ages, img_reference, img_predicted, factor, seed, n_comp)


def fit_correction(data: ImageSet, cfg: segmentation.TrainConfig, settings: dict, seed: int = 0, oof_proba: np.ndarray | None = None,
                   log=None):
    """The feature correction the profile's ``feature_correction`` asks for: None, or a
    :class:`~fetal_lib.brain_age.correction.TissueMixing` fitted on out-of-fold segmentations of every
    image subject (``oof_proba``, computed here with ``seg_cv_folds`` folds of the deployed recipe if not given).

    Raises:
        ValueError: an unknown correction, or ``tissue_mixing`` without at least 2 folds.
    """

    kind = str(settings["feature_correction"])
    if kind not in CORRECTIONS:
        raise ValueError(f"feature_correction must be one of {', '.join(CORRECTIONS)}, not {kind!r}")
    if kind == "none":
        return None
    if oof_proba is None:
        oof_proba = out_of_fold(data, cfg, settings, seed, log=log)
    factor = int(settings["map_factor"])
    predicted = features.from_probabilities(oof_proba, data.spacing_mm, factor, soft=settings["deploy_features"] == "soft")
    reference = features.feature_matrix(data.segs, data.spacing_mm, factor)
    return fit_mixing(predicted["maps"], reference["maps"],
                      f"out-of-fold {settings['deploy_features']} segmentations of {len(data.subjects)} image subjects")


def choose_recipe(settings: dict, reg_age: np.ndarray, reg_feats: dict, data: ImageSet, oof_proba: np.ndarray, seed: int = 0):
    """The recipe ``deploy_selection: nested`` deploys (:func:`fetal_lib.brain_age.nested.choose` over
    ``nested_models``, ``nested_outer_folds`` folds), from the image subjects' out-of-fold segmentations."""

    inputs = nested.inputs_of(reg_age, reg_feats, data.ages, image_features(data, oof_proba, int(settings["map_factor"])),
                              int(settings["pca_components"]))
    return nested.choose(inputs, nested.candidates(settings), int(settings["nested_outer_folds"]), seed)


def image_features(data: ImageSet, proba: np.ndarray, map_factor: int) -> dict[str, dict[str, np.ndarray]]:
    """The image subjects' features by source: ``reference`` (their reference segmentations), ``predicted_hard``
    (argmax of ``proba``, (N, 4, D, H, W) class probabilities) and ``predicted_soft`` (the probabilities)."""
    return {"reference": features.feature_matrix(data.segs, data.spacing_mm, map_factor),
            "predicted_hard": features.feature_matrix(segmentation.labels_of(proba), data.spacing_mm, map_factor),
            "predicted_soft": features.soft_feature_matrix(proba, data.spacing_mm, map_factor)}


def train_deployable(settings: dict, profile: str, data_dir: str | None, data_source: str, seed: int, model_dir: str | Path,
                     progress: bool = False, log=None) -> dict:
    """What `fetal brain-age train` does: the chapter's segmenter and deployed regressor, trained outside the book.

    The segmenter is the ``seg_cv_folds`` out-of-fold segmenters averaged (:mod:`fetal_lib.brain_age.fold_ensemble`,
    the profile's epochs each), checked on their out-of-fold Dice against :data:`FLOORS` (``BelowFloorError``:
    nothing is written); the deployed regressor (``deploy_model``) fitted as :func:`deployed_regressor` says
    (with ``deploy_selection: nested`` the four deploy knobs are the recipe :func:`choose_recipe` picks from the
    out-of-fold segmentations, as in the chapter); both saved with their card. Returns a summary (out-of-fold Dice,
    epochs, seconds, where the models went).
    """

    source = resolve("brain_age", data_dir, data_source)
    subjects = dataset.load(source.root)
    data = prepare_images(subjects, progress=progress)
    cfg = seg_train_config(settings, seed)
    segmenters = fold_segmenters(data, cfg, deployed_folds(settings), seed, progress=progress, log=log, tta=uses_tta(settings))
    trained, oof_proba = segmenters.deployed(), segmenters.proba
    _, oof_summary, _ = out_of_fold_scores(segmenters, data, cfg.epochs, cfg.precision, source.is_phantom, seed=seed)
    val_dice = {str(row["tissue"]): float(row["dice"]) for _, row in oof_summary.iterrows()}
    reg_subjects = [s for s in subjects if s.role == "regression"]
    reg_age = np.array([s.age_years for s in reg_subjects])
    reg_segs, grid_spacing = prepare_reference_segs(reg_subjects, progress=progress)
    feats = features.feature_matrix(reg_segs, grid_spacing, int(settings["map_factor"]))
    nested_rule = str(settings.get("deploy_selection", "profile")) == "nested"
    if nested_rule:  # the chapter's rule: the recipe with the lowest CV MAE on the image subjects' out-of-fold segmentations
        settings = {**settings, **choose_recipe(settings, reg_age, feats, data, oof_proba, seed).settings()}
    deploy_model, deploy_features = str(settings["deploy_model"]), str(settings["deploy_features"])
    deployed = deployed_regressor(settings, reg_age, feats, data, oof_proba, seed)
    correction = fit_correction(data, cfg, settings, seed, oof_proba=oof_proba, log=log)
    provenance = {"git": git_state(), "profile": profile, "seed": seed, "packages": package_versions(), "trained_by": "fetal brain-age train"}
    n_train, n_val = segmenters.subjects_per_member()
    card = model_card(profile, source, reg_age, trained.model, cfg, trained, n_train, n_val, val_dice, deployed, deploy_model,
                      deploy_features, int(settings["map_factor"]), provenance, correction=correction,
                      training_set=str(settings.get("reg_training_set", "reference")), tta=uses_tta(settings))
    save_deployable(model_dir, trained.model, deployed, deploy_features, card, correction=correction, tta=uses_tta(settings))
    return {"model_dir": str(model_dir), "data": source.describe(), "out_of_fold_dice": val_dice, "folds": segmenters.folds,
            "epochs_run": len(trained.history),
            "epochs": cfg.epochs, "precision": cfg.precision, "time_capped": trained.time_capped, "seg_seconds": round(trained.seconds, 1),
            "regressor": deploy_model, "n_regression_subjects": len(reg_subjects)}
