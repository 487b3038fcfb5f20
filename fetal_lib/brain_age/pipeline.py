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

from fetal_lib.brain_age import features, preprocess, segmentation
from fetal_lib.brain_age.dataset import Subject
from fetal_lib.training.floor import Floor

TISSUE_NAMES = {1: "CSF", 2: "GM", 3: "WM"}

# The sanity floor of the deployed segmenter on the validation subjects (fetal_lib.training.floor):
# below it the chapter stops and deploys nothing. Real Cam-CAN: every tissue's Dice at least
# 0.75 (working models score 0.85-0.96; the source reports 0.79-0.92). Phantom: what a 1-epoch
# smoke model clears.
FLOORS = {
    "real": tuple(Floor(f"dice_{name.lower()}", 0.75, "min") for name in ("CSF", "GM", "WM")),
    "phantom": tuple(Floor(f"dice_{name.lower()}", 0.05, "min") for name in ("CSF", "GM", "WM")),
}
FLOOR_ADVICE = ("Look at the training log (epochs run, loss, validation Dice): if a wall-time cap (seg_time_budget_s) cut "
                "training short, remove it or give more epochs; on a CPU without native bfloat16 train in float32 "
                "(seg_precision=auto does; `fetal doctor` shows what this machine resolves to).")


def precision_choice(requested: str, flags=None):
    """The torch training precision ``requested`` ("auto", "float32", "bfloat16") resolves to on this CPU."""
    from fetal_lib.training.precision import resolve

    return resolve(str(requested), "torch", flags)


def check_floor(val_dice: dict[str, float], is_phantom: bool, what: str) -> dict[str, float]:
    """``{"dice_csf": .., "dice_gm": .., "dice_wm": ..}`` from ``{"CSF": ..}``; raises ``BelowFloorError``
    below :data:`FLOORS`. Call it before saving: a segmenter below the floor is never deployed."""
    from fetal_lib.training.floor import check

    scores = {f"dice_{k.lower()}": float(v) for k, v in val_dice.items()}
    check(scores, FLOORS["phantom" if is_phantom else "real"], what, FLOOR_ADVICE)
    return scores
SOURCE_VAL_DICE = {"CSF": 0.789, "GM": 0.882, "WM": 0.915}
SOURCE_HOLDOUT = {"mae_years": 6.90, "r2": 0.81}


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

    from fetal_lib.metrics.segmentation import dice, hd95_mm

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

    from fetal_lib.metrics.uncertainty import bootstrap_ci

    rows = []
    for name in TISSUE_NAMES.values():
        t = table[table["tissue"] == name]
        d = bootstrap_ci(np.mean, t["dice"].to_numpy(), n_boot=n_boot, seed=seed)
        h = bootstrap_ci(np.mean, t["hd95_mm"].to_numpy(), n_boot=n_boot, seed=seed)
        rows.append({"tissue": name, "n": len(t), "dice": d.estimate, "dice_ci_low": d.low, "dice_ci_high": d.high,
                     "hd95_mm": h.estimate, "hd95_ci_low": h.low, "hd95_ci_high": h.high,
                     "source_val_dice": SOURCE_VAL_DICE[name]})
    return pd.DataFrame(rows)


def segmentation_cv(data: ImageSet, cfg: segmentation.TrainConfig, n_splits: int, seed: int = 0, progress: bool = False, log=None) -> np.ndarray:
    """Out-of-fold class probabilities (N, 4, D, H, W) float32 for every image subject (K-fold over
    subjects, stratified by age); :func:`segmentation.labels_of` turns them into label maps."""
    from fetal_lib.brain_age.regression import age_folds

    proba = np.zeros((len(data.segs), 4) + data.segs.shape[1:], np.float32)
    inputs = data.intensities(cfg.intensity_names())
    for k, (tr, te) in enumerate(age_folds(data.ages, n_splits, seed)):
        if log:
            log(f"segmentation CV fold {k + 1}/{n_splits}: train {len(tr)}, test {len(te)}")
        res = segmentation.train(inputs[tr], data.segs[tr], cfg, masks=data.masks[tr], progress=progress)
        proba[te] = segmentation.constrained_proba(res.model, inputs[te], data.masks[te], spacing_mm=data.spacing_mm[0])
    return proba


def regression_cv(models: Sequence[str], age: np.ndarray, feats: dict, n_splits: int, inner_splits: int, seed: int, n_components: int, progress: bool = False):
    """Run :func:`regression.cross_validate` for each model; returns {name: CVResult} and a summary table."""
    import pandas as pd

    from fetal_lib.brain_age import regression
    from fetal_lib.metrics.regression import mae, pearson_r, r2
    from fetal_lib.metrics.uncertainty import bootstrap_ci

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
