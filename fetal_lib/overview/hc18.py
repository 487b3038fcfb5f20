"""HC18 in chapter 0: images per split, the ellipse fitted to each filled annotation against the
challenge's reference HC, sample images, and the grey-level histograms the source started with."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fetal_lib.data import hc18
from fetal_lib.data.hc18 import HC18Record
from fetal_lib.metrics.biometry import Ellipse, fit_ellipse, head_circumference_mm
from fetal_lib.overview import figures

HISTOGRAM_IMAGES = 200  # images per split in the grey-level histograms


@dataclass
class ReferenceCheck:
    """The ellipse fitted to each training image's filled annotation, and its HC against the reference (mm)."""

    records: list[HC18Record]
    fits: list[Ellipse]
    hc_fit_mm: np.ndarray
    hc_ref_mm: np.ndarray

    @property
    def error_mm(self) -> np.ndarray:
        """Fitted minus reference HC (mm), per image."""
        return self.hc_fit_mm - self.hc_ref_mm

    @property
    def mae_mm(self) -> float:
        return float(np.abs(self.error_mm).mean())

    def table(self) -> pd.DataFrame:
        """Images, mean signed, mean and max absolute difference of fitted and reference HC (mm)."""
        err = self.error_mm
        return pd.DataFrame({
            "images": [len(err)],
            "mean fit - reference (mm)": [round(float(err.mean()), 3)],
            "mean |fit - reference| (mm)": [round(float(np.abs(err).mean()), 3)],
            "max |fit - reference| (mm)": [round(float(np.abs(err).max()), 3)],
        })

    def samples(self, n: int, seed: int):
        """``n`` training images (drawn with ``seed``) with their fitted ellipse drawn."""
        idx = figures.pick(len(self.records), n, seed)
        return figures.hc18_figure([self.records[i] for i in idx], [self.fits[i] for i in idx], self.hc_fit_mm[idx])


@dataclass
class HC18Overview:
    """HC18's training and test records (the training images carry the reference HC)."""

    train: list[HC18Record]
    test: list[HC18Record]
    frame: pd.DataFrame = field(init=False)  # one row per image: split, subject, pixel size (mm), HC (mm)

    def __post_init__(self) -> None:
        self.frame = pd.DataFrame([{"split": r.split, "subject": r.subject_id, "pixel_mm": r.pixel_size_mm, "hc_mm": r.hc_mm}
                                   for r in self.train + self.test])

    @property
    def groups(self) -> list[str]:
        """The split group of each training image (its subject)."""
        return [r.group for r in self.train]

    labels = None  # no class to stratify by

    def counts(self) -> pd.DataFrame:
        """Per split: images, subjects, most images of one subject, pixel size and HC ranges."""
        df = self.frame
        per_subject = df.groupby(["split", "subject"]).size().rename("images").reset_index()
        return pd.DataFrame({
            "images": df.groupby("split").size(),
            "subjects": df.groupby("split")["subject"].nunique(),
            "max images per subject": per_subject.groupby("split")["images"].max(),
            "pixel size min (mm)": df.groupby("split")["pixel_mm"].min().round(3),
            "pixel size max (mm)": df.groupby("split")["pixel_mm"].max().round(3),
            "HC min (mm)": df.groupby("split")["hc_mm"].min().round(1),
            "HC max (mm)": df.groupby("split")["hc_mm"].max().round(1),
        }).reset_index()

    def reference_check(self) -> ReferenceCheck:
        """Fit an ellipse to every training image's filled mask (the code that measures the networks)."""
        fits = [fit_ellipse(hc18.load_mask(r)) for r in self.train]
        hc_fit = np.array([head_circumference_mm(e, r.pixel_size_mm) for e, r in zip(fits, self.train)])
        return ReferenceCheck(self.train, fits, hc_fit, np.array([r.hc_mm for r in self.train], dtype=float))

    def metrics(self, check: ReferenceCheck) -> dict[str, Any]:
        return {"hc18_train_images": len(self.train),
                "hc18_train_subjects": int(self.frame.loc[self.frame.split == "train", "subject"].nunique()),
                "hc18_fit_vs_reference_mae_mm": check.mae_mm}

    def histograms(self, seed: int):
        """Grey levels of up to :data:`HISTOGRAM_IMAGES` images per split, inside and outside the training
        heads, and the filled masks' values: (figure, table of mask values)."""
        sample = {"train": [self.train[i] for i in figures.pick(len(self.train), min(len(self.train), HISTOGRAM_IMAGES), seed)],
                  "test": [self.test[i] for i in figures.pick(len(self.test), min(len(self.test), HISTOGRAM_IMAGES), seed)]}
        return figures.hc18_histograms(sample, [hc18.load_mask(r) for r in sample["train"]], sample["train"])


def load(root: str | Path) -> HC18Overview:
    """HC18's training and test records under ``root``."""
    return HC18Overview(hc18.load(root, split="train"), hc18.load(root, split="test"))
