"""Deployed brain-age prediction: T1 + brain mask -> tissue volumes (mL) and predicted age (years).

Image -> preprocessing (normalise in the mask, 3 mm, 64^3) -> Res-U-Net class probabilities (averaged
with the left-right mirror's when ``segmenter.json`` says ``"tta": "hflip"``) ->
tissue volumes and maps -> regressor. The features are *soft* (from the probabilities) or *hard*
(from the argmax labels), as recorded in ``segmenter.json`` by the chapter that trained the models. The models live in ``default_model_dir()``
(``<build>/models/brain_age``), written by the brain_age chapter.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fetal_lib.errors import FetalInputError
from fetal_lib.brain_age import features, preprocess, segmentation
from fetal_lib.brain_age.correction import TissueMixing
from fetal_lib.brain_age.dataset import pair_batch
from fetal_lib.model_card import read_card
from fetal_lib.paths import build_dir

if TYPE_CHECKING:
    import numpy as np

CSV_COLUMNS = ("subject_id", "csf_ml", "gm_ml", "wm_ml", "predicted_age_years")


def default_model_dir() -> Path:
    """``<build_dir>/models/brain_age``."""

    return build_dir() / "models" / "brain_age"


CORRECTION_FILE = "feature_correction.json"


@dataclass
class Predictor:
    """Loaded segmenter + regressor + the preprocessing grid they were trained on."""

    segmenter: object
    regressor: object
    spacing_mm: tuple[float, float, float]
    size: tuple[int, int, int]
    model_dir: Path
    soft_features: bool = False  # volumes and maps from class probabilities rather than argmax labels
    correction: object = None  # fetal_lib.brain_age.correction.TissueMixing applied to the features before the regressor
    tta: bool = False  # class probabilities averaged with the left-right mirror's (as the chapter scored the segmenter)
    expected_mae_years: float | None = None  # the error to expect, from the model card (chapter 5's headline: nested, carried to the cohort)

    def __call__(self, image_path: str | Path, mask_path: str | Path) -> dict:
        """Predict one subject; raises FetalInputError naming the bad file."""
        return self.predict_detailed(image_path, mask_path).row

    def predict_detailed(self, image_path: str | Path, mask_path: str | Path) -> Prediction:
        """Predict one subject and keep what the prediction was made from (the preprocessed
        volume and the tissue labels); raises FetalInputError naming the bad file."""

        pre = preprocess.preprocess_files(image_path, mask_path, spacing_mm=self.spacing_mm, size=self.size)
        inputs = pre.intensities(segmentation.intensity_names(self.segmenter))
        proba = segmentation.constrained_proba(self.segmenter, inputs, pre.mask, spacing_mm=pre.spacing_mm[0], tta=self.tta)
        feats = features.from_probabilities([proba], pre.spacing_mm, self.regressor.map_factor, soft=self.soft_features)
        age_feats = self.correction.apply(feats) if self.correction is not None else feats
        age = float(self.regressor.predict(age_feats["volumes"], age_feats["maps"])[0])
        vols = dict(zip(("csf_ml", "gm_ml", "wm_ml"), (float(v) for v in feats["volumes"][0])))
        row = {
            "image": str(image_path),
            "mask": str(mask_path),
            **{k: round(val, 2) for k, val in vols.items()},
            "predicted_age_years": round(age, 2),
            "model": self.regressor.name,
        }
        if self.expected_mae_years is not None:
            row["expected_mae_years"] = round(self.expected_mae_years, 2)
        return Prediction(row=row, preprocessed=pre, labels=segmentation.labels_of(proba))


@dataclass
class Prediction:
    """One subject's prediction (:meth:`Predictor.predict_detailed`).

    Attributes:
        row: what :meth:`Predictor.__call__` returns (volumes in mL, age in years, rounded to 0.01).
        preprocessed: the subject on the model's grid (:class:`fetal_lib.brain_age.preprocess.Preprocessed`).
        labels: (D, H, W) uint8 tissue labels on that grid (0 background, 1 CSF, 2 GM, 3 WM): the
            argmax of the class probabilities the volumes were computed from.
    """

    row: dict
    preprocessed: object
    labels: np.ndarray


def load_predictor(model_dir: str | Path | None = None, threads: int = 2, device: str = "auto") -> Predictor:
    """Load the models from ``model_dir`` (default :func:`default_model_dir`), the segmenter on ``device``
    (``auto``: the GPU when torch sees one; preprocessing and regression stay on the CPU).

    Raises:
        FetalInputError: the folder or a model file is missing or unreadable.
    """
    from fetal_lib.brain_age import regression, segmentation  # deferred: imports sklearn

    model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
    if not model_dir.is_dir():
        raise FetalInputError(model_dir, "model folder not found (train it with: fetal book --profile cpu --only brain_age)")
    seg = segmentation.load(model_dir, threads=threads, device=device)
    reg = regression.load(model_dir)
    meta = json.loads((model_dir / "segmenter.json").read_text())
    prep = meta.get("preprocessing", {})
    spacing = tuple(float(s) for s in prep.get("spacing_mm", (3.0, 3.0, 3.0)))
    size = tuple(int(s) for s in prep.get("size", (64, 64, 64)))
    soft = meta.get("features", "hard") == "soft"

    expected = ((read_card(model_dir) or {}).get("regressor") or {}).get("expected_mae_years")
    return Predictor(segmenter=seg, regressor=reg, spacing_mm=spacing, size=size, model_dir=model_dir, soft_features=soft,
                     correction=load_correction(model_dir), tta=meta.get("tta", "none") == "hflip",
                     expected_mae_years=float(expected) if isinstance(expected, (int, float)) else None)


def load_correction(model_dir: Path):
    """The feature correction saved beside the regressor (``feature_correction.json``), or None."""

    path = Path(model_dir) / CORRECTION_FILE
    if not path.is_file():
        return None
    try:
        return TissueMixing.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
        raise FetalInputError(path, f"unreadable feature correction ({exc})") from None


def format_text(result: dict) -> str:
    """Human-readable lines for one prediction."""
    return (
        f"image: {result['image']}\n"
        f"CSF: {result['csf_ml']:.1f} mL\nGM: {result['gm_ml']:.1f} mL\nWM: {result['wm_ml']:.1f} mL\n"
        f"predicted age: {result['predicted_age_years']:.1f} years (model {result['model']})"
        + (f"\nexpected error: MAE {result['expected_mae_years']:.2f} years (the model card's estimate)"
           if result.get("expected_mae_years") is not None else "")
    )


def batch_csv(rows: list[dict]) -> str:
    """CSV text with :data:`CSV_COLUMNS`, one row per subject."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in rows:
        w.writerow([r["subject_id"]] + [f"{r[c]:.2f}" for c in CSV_COLUMNS[1:]])
    return buf.getvalue()


def run_batch(predictor: Predictor, images_dir, masks_dir, progress: bool = False, on_error=None) -> tuple[list[dict], list[FetalInputError]]:
    """Predict every ``sub-<ID>_T1w_unbiased.nii.gz`` of ``images_dir`` with its mask in ``masks_dir``.

    A subject whose files are bad is skipped (its FetalInputError collected and passed to
    ``on_error``); the others still run.
    """

    pairs = pair_batch(images_dir, masks_dir)
    it = pairs
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(pairs, desc="brain-age predict", unit="subject")
    rows, errors = [], []
    for sid, img, msk in it:
        try:
            r = predictor(img, msk)
        except FetalInputError as err:
            errors.append(err)
            if on_error is not None:
                on_error(err)
            continue
        r["subject_id"] = sid
        rows.append(r)
    return rows, errors
