"""The deployed gestational-age regressor: a NIfTI volume (and its brain mask) -> GA in weeks+days.

:class:`GaPredictor` holds chapter 4's network and the preprocessing it was trained with (field of
view, slice size, offsets: all in its model card), reads a volume with
:func:`fetal_lib.ga_mri.volumes.read_volume` (bad files are refused with the file named), prepares
and slices it as the chapter did, predicts the matched slice triples (the i-th offset in every plane)
and reports their mean, with their spread, in days. This is what ``fetal ga predict`` runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from fetal_lib.ga_mri.grid import PreprocessConfig
from fetal_lib.errors import FetalInputError
from fetal_lib.ga_mri.samples import DAYS_PER_WEEK
from fetal_lib.networks.keras.vgg_attention import PLANES
from fetal_lib.model_card import common_fields
from fetal_lib.model_card import load_keras, read_card
from fetal_lib.model_card import save_keras
from fetal_lib.paths import build_dir

ARCH = "vgg_attention"
TRAIN_COMMAND = "fetal ga train --profile cpu"
BOOK_COMMAND = "fetal book --profile cpu --only fetal_mri_ga"


def default_model_path() -> Path:
    """``<build_dir>/models/ga_mri.keras``."""

    return build_dir() / "models" / "ga_mri.keras"


def weeks_days(days: float) -> str:
    """Gestational age as obstetricians write it: 218.4 days -> ``"31+1"`` (weeks+days, days rounded down)."""
    whole = int(np.floor(float(days) + 1e-9))
    return f"{whole // DAYS_PER_WEEK}+{whole % DAYS_PER_WEEK}"


@dataclass
class GaPrediction:
    """One volume's predicted gestational age (days) and what it was computed from."""

    image: str
    mask: str  # the mask file, or how the brain was found without one
    ga_days: float
    spread_days: float  # standard deviation of the matched slice triples' predictions
    brain_volume_ml: float
    cropped: bool  # the brain extends beyond the field of view
    inputs: list[np.ndarray] = field(repr=False, default_factory=list)  # PLANES order, (n_offsets, size, size, 1)

    @property
    def ga_weeks(self) -> float:
        return self.ga_days / DAYS_PER_WEEK

    def row(self) -> dict[str, Any]:
        """A CSV row."""
        return {"image": self.image, "mask": self.mask, "ga_weeks_days": weeks_days(self.ga_days), "ga_days": round(self.ga_days, 1),
                "ga_weeks": round(self.ga_weeks, 2), "spread_days": round(self.spread_days, 1),
                "brain_volume_ml": round(self.brain_volume_ml, 1), "brain_cropped_by_field_of_view": self.cropped}


class GaPredictor:
    """A trained regressor with its preprocessing (``preprocess``: a PreprocessConfig) and card."""

    def __init__(self, model, preprocess, card: Mapping[str, Any] | None = None):
        self.model = model
        self.preprocess = preprocess
        self.card = dict(card or {})

    def card_fields(self, profile: str, options: Mapping[str, Any]) -> dict:
        """Common card fields plus the preprocessing this predictor applies."""

        c = self.preprocess
        spec = {"planes": list(PLANES), "rows": c.size, "cols": c.size, "channels": 1,
                "preprocessing": {"size": c.size, "fov_mm": c.fov_mm, "offsets_mm": list(c.offsets_mm),
                                  "steps": "reoriented to RAS, intensities scaled inside the brain mask, zero outside, resampled "
                                           "to a fixed field of view centred on the mask's centre of mass"}}
        return common_fields("keras", ARCH, dict(options), spec, profile)

    def save(self, path: str | Path, card: Mapping[str, Any]) -> Path:
        """The network and its card, together, atomically."""

        return save_keras(self.model, path, card)

    @classmethod
    def load(cls, path: str | Path | None = None) -> GaPredictor:
        """A saved predictor (default :func:`default_model_path`).

        Raises:
            FetalInputError: the file or its card is missing (saying which command trains it), or the
                card is not chapter 4's.
        """

        path = Path(path) if path is not None else default_model_path()
        if not path.is_file():
            raise FetalInputError(path, f"no gestational-age model; train one with `{TRAIN_COMMAND}` (or the chapter: `{BOOK_COMMAND}`)")
        card = read_card(path)
        if not card or (card.get("architecture") or {}).get("name") != ARCH:
            raise FetalInputError(path, f"not a gestational-age model (its card names no {ARCH} network)")
        pre = (card.get("input") or {}).get("preprocessing") or {}
        try:
            config = PreprocessConfig(size=int(pre["size"]), fov_mm=float(pre["fov_mm"]), offsets_mm=tuple(float(o) for o in pre["offsets_mm"]))
        except (KeyError, TypeError, ValueError):
            raise FetalInputError(path, "its card records no preprocessing (size, fov_mm, offsets_mm)") from None
        return cls(load_keras(path), config, card)

    def inputs(self, image_path: str | Path, mask_path: str | Path | None = None):
        """The prepared volume and the network inputs (matched triples) of one file."""
        from fetal_lib.ga_mri import volumes as vol  # deferred: imports SimpleITK

        image, mask = vol.read_volume(image_path, mask_path)
        try:
            prepared = vol.prepare(image, mask, self.preprocess)
        except FetalInputError as err:  # name the file the problem is in
            raise FetalInputError(err.path or image_path, err.problem) from None
        slices = vol.plane_slices(prepared, self.preprocess.offsets_mm)
        return prepared, [np.asarray(slices[p], np.float32)[..., None] for p in PLANES]

    def predict(self, image_path: str | Path, mask_path: str | Path | None = None) -> GaPrediction:
        """Gestational age of one volume (see the module docstring)."""
        prepared, inputs = self.inputs(image_path, mask_path)
        days = np.asarray(self.model.predict(inputs, verbose=0), float).reshape(-1)
        return GaPrediction(str(image_path), str(mask_path) if mask_path else "none (brain found by Otsu threshold)",
                            float(days.mean()), float(days.std(ddof=1)) if days.size > 1 else 0.0,
                            float(prepared.brain_volume_ml), bool(prepared.cropped), inputs)
