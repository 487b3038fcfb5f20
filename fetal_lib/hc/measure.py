"""Measure head circumference on images: image -> probability -> ellipse (original pixels) -> HC18 row.

:class:`HCModel` wraps a saved network (chapter 1's Keras U-Net, or any of chapter 2's torch
segmenters, :class:`fetal_lib.torch_segmenter.TorchSegmenter`) and the inference settings recorded in its model card
(input size, threshold, test-time flips, checks, and, if the card has one, the size
calibration of :mod:`fetal_lib.hc.calibration`; off by default). :meth:`HCModel.measure` returns a :class:`Measurement` whose
:meth:`~Measurement.row` is the HC18 submission row plus ``hc_mm``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from fetal_lib.data.tables import positive_number
from fetal_lib.errors import FetalInputError
from fetal_lib.hc import postprocess
from fetal_lib.hc.band import BandConfig, band_to_image, sample_band
from fetal_lib.hc.calibration import SizeCalibration
from fetal_lib.transforms.letterbox import letterbox, unletterbox
from fetal_lib.metrics.biometry import Ellipse, ellipse_perimeter, ellipse_to_hc18_row, head_circumference_mm
from fetal_lib.data.hc18 import COL_FILENAME, COL_PIXEL, read_csv
from fetal_lib.data.imaging import read_image_gray
from fetal_lib.model_card import card_path, read_card
from fetal_lib.model_card import load_keras
from fetal_lib.paths import build_dir
from fetal_lib.torch_segmenter import TorchSegmenter
from fetal_lib.training.keras_backend import inference_function

HC18_COLUMNS = ("filename", "center_x_mm", "center_y_mm", "semi_axes_a_mm", "semi_axes_b_mm", "angle_rad")
COLUMNS = HC18_COLUMNS + ("hc_mm",)
MEASURED_RGB = (0, 255, 0)  # overlays: the measured ellipse
FIRST_STAGE_RGB = (255, 150, 0)  # overlays: a cascade's first-stage ellipse


def default_model_path() -> Path:
    """``<build_dir>/models/hc18_unet.keras``."""

    return build_dir() / "models" / "hc18_unet.keras"


@dataclass
class Measurement:
    """One measured image: the ellipse in original pixels (after the model's size calibration, if
    any), HC in mm, and check warnings."""

    filename: str
    pixel_size_mm: float
    ellipse: Ellipse
    hc_mm: float
    agreement: float
    warnings: list[str] = field(default_factory=list)
    mask: np.ndarray | None = None  # the chosen head region (bool, original shape)
    hc_uncalibrated_mm: float | None = None  # HC of the raw fit, before the size calibration
    first_ellipse: Ellipse | None = None  # a cascade's first-stage ellipse (original pixels), which placed the second look

    @property
    def hc_first_stage_mm(self) -> float | None:
        """HC (mm) of a cascade's first-stage ellipse (None for a one-stage model)."""
        return head_circumference_mm(self.first_ellipse, self.pixel_size_mm) if self.first_ellipse is not None else None

    def drawn_ellipses(self) -> list[tuple[Ellipse, tuple[int, int, int]]]:
        """The ellipses an overlay draws: the measured one (green) and a cascade's first stage (orange)."""
        out = [(self.first_ellipse, FIRST_STAGE_RGB)] if self.first_ellipse is not None else []
        return out + [(self.ellipse, MEASURED_RGB)]

    def row(self) -> dict[str, object]:
        """HC18 submission columns plus ``hc_mm``."""
        return {"filename": self.filename, **ellipse_to_hc18_row(self.ellipse, self.pixel_size_mm), "hc_mm": self.hc_mm}


def check_pixel_size(path: str | Path, pixel_size_mm: float | None) -> float:
    """A positive finite pixel size in mm, or a FetalInputError naming the image."""
    if pixel_size_mm is None:
        raise FetalInputError(path, "no pixel size given (use --pixel-size MM or --pixel-sizes CSV listing this file)")
    return positive_number(pixel_size_mm, path, f"pixel size {pixel_size_mm!r} is not a number",
                           f"pixel size must be a positive number of mm, got {pixel_size_mm}")


class HCModel:
    """A trained HC18 U-Net with its inference settings."""

    def __init__(self, model, settings: dict | None = None):
        settings = dict(settings or {})
        self.model = model
        self.input_shape = tuple(int(v) for v in model.input_shape[1:3])
        self.threshold = float(settings.get("threshold", postprocess.THRESHOLD))
        self.tta = list(settings.get("tta", ["hflip"]))
        self.min_agreement = float(settings.get("min_agreement", postprocess.MIN_AGREEMENT))
        self.min_axis_ratio = float(settings.get("min_axis_ratio", postprocess.MIN_AXIS_RATIO))
        self.calibration = SizeCalibration.from_dict(settings.get("hc_calibration"))
        self._predict = None

    @classmethod
    def load(cls, path: str | Path | None = None, device: str = "auto", first_stage_only: bool = False) -> "HCModel":
        """Load a saved model (default :func:`default_model_path`) and its card's settings: a
        ``.keras`` file (chapter 1) or a ``.pt`` torch segmenter with its card (chapter 2), the
        latter on ``device`` (``auto``: the GPU when torch sees one; a Keras model ignores it).
        When the card names a second stage (its ``cascade`` section), the result is the
        :class:`~fetal_lib.hc.cascade.CascadeHCModel` of both, unless ``first_stage_only``.

        Raises:
            FetalInputError: the model file (or the second stage the card names) is missing (says how to
                make one) or unreadable.
        """

        path = Path(path) if path is not None else default_model_path()
        if not path.is_file():
            raise FetalInputError(
                path,
                "no trained HC18 model here; make one with `fetal hc train --profile cpu` "
                "(or `fetal book --profile cpu --only hc18`), or pass --model PATH",
            )
        if path.suffix == ".pt":

            segmenter = TorchSegmenter.load(path, device=device)
            return cls._with_card_settings(segmenter, path)
        from fetal_lib.training.keras import configure  # looked up at call time: a test replaces it

        configure()
        try:
            model = load_keras(path)
        except Exception as exc:  # noqa: BLE001 - any failure to read the file is bad input
            raise FetalInputError(path, f"not a readable Keras model ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
        first = cls._with_card_settings(model, path)
        if first_stage_only:
            return first

        section = (read_card(path) or {}).get(CASCADE_KEY)
        return load_cascade(first, card_path(path), section) if section else first

    @classmethod
    def _with_card_settings(cls, network, path: Path) -> "HCModel":

        card = read_card(path)
        try:
            return cls(network, (card or {}).get("inference", {}))
        except (TypeError, ValueError) as exc:
            raise FetalInputError(card_path(path), f"inference settings are not valid ({exc})") from None

    def settings(self) -> dict:
        """The inference settings (for the model card)."""
        return {
            "threshold": self.threshold,
            "tta": self.tta,
            "min_agreement": self.min_agreement,
            "min_axis_ratio": self.min_axis_ratio,
            "hc_calibration": self.calibration.to_dict() if self.calibration else None,
        }

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        if hasattr(self.model, "predict_nhwc"):  # a torch segmenter
            return self.model.predict_nhwc(batch)
        if self._predict is None:

            self._predict = inference_function(self.model)
        return self._predict(batch)

    def predict_network(self, x: np.ndarray) -> np.ndarray:
        """Probabilities at the network size for letterboxed (N, rows, cols, 1) inputs, with TTA."""
        views = [x]
        if "hflip" in self.tta:
            views.append(x[:, :, ::-1])
        if "vflip" in self.tta:
            views.append(x[:, ::-1, :])
        out = self._forward(np.ascontiguousarray(np.concatenate(views, axis=0), dtype=np.float32))
        n = x.shape[0]
        prob = out[:n].copy()
        k = 1
        if "hflip" in self.tta:
            prob += out[k * n : (k + 1) * n][:, :, ::-1]
            k += 1
        if "vflip" in self.tta:
            prob += out[k * n : (k + 1) * n][:, ::-1, :]
            k += 1
        return prob / k

    def probability(self, image: np.ndarray) -> np.ndarray:
        """Head probability at the original image size for one uint8 (rows, cols) image."""
        x, geometry = letterbox(image, self.input_shape)
        prob = self.predict_network(x[None, ..., None])[0, ..., 0]
        return unletterbox(prob, geometry)

    def probability_and_first(self, image: np.ndarray) -> tuple[np.ndarray, "postprocess.HeadFit | None"]:
        """(:meth:`probability`, the first stage's head fit): None here; a cascade gives its first stage's."""
        return self.probability(image), None

    def fit(self, prob: np.ndarray, threshold: float | None = None) -> postprocess.HeadFit:
        """Post-process an original-size probability map with this model's settings."""
        return postprocess.fit_head(
            prob,
            threshold=self.threshold if threshold is None else threshold,
            min_agreement=self.min_agreement,
            min_axis_ratio=self.min_axis_ratio,
        )

    def calibrate(self, ellipse: Ellipse, pixel_size_mm: float) -> Ellipse:
        """The ellipse after this model's size calibration (unchanged if it has none)."""
        return self.calibration.apply(ellipse, pixel_size_mm) if self.calibration else ellipse

    def measure_array(self, image: np.ndarray, pixel_size_mm: float, filename: str = "image", keep_mask: bool = False) -> Measurement:
        """Measure one decoded image; raises FetalInputError(filename, "no head found ...")."""
        prob, first = self.probability_and_first(image)
        try:
            head = self.fit(prob)
        except postprocess.NoHeadFound as exc:
            raise FetalInputError(filename, str(exc)) from None
        ellipse = self.calibrate(head.ellipse, pixel_size_mm)
        warnings = list(head.warnings)
        if first is not None:
            warnings += stage_checks(head.ellipse, first.ellipse)
        return Measurement(
            filename=Path(filename).name,
            pixel_size_mm=pixel_size_mm,
            ellipse=ellipse,
            hc_mm=head_circumference_mm(ellipse, pixel_size_mm),
            agreement=head.agreement,
            warnings=warnings,
            mask=head.mask if keep_mask else None,
            hc_uncalibrated_mm=head_circumference_mm(head.ellipse, pixel_size_mm),
            first_ellipse=first.ellipse if first is not None else None,
        )

    def measure(self, path: str | Path, pixel_size_mm: float | None, keep_mask: bool = False) -> Measurement:
        """Read, check and measure one image file.

        Raises:
            FetalInputError: missing/unreadable image, bad pixel size, or no head found.
        """

        image = read_image_gray(path)
        pixel = check_pixel_size(path, pixel_size_mm)
        try:
            return self.measure_array(image, pixel, filename=str(path), keep_mask=keep_mask)
        except FetalInputError as exc:
            raise FetalInputError(path, exc.problem) from None


MAX_STAGE_DISAGREEMENT = 0.03  # a cascade whose two stages' HC differ by more than this fraction is flagged


def stage_checks(final: Ellipse, first: Ellipse) -> list[str]:
    """A cascade's plausibility check: a warning when the second look moved the head's circumference by more than
    :data:`MAX_STAGE_DISAGREEMENT` of the first stage's (the two stages disagree on where the skull is)."""
    p_final, p_first = ellipse_perimeter(final.a, final.b), ellipse_perimeter(first.a, first.b)
    change = p_final / p_first - 1.0
    if abs(change) <= MAX_STAGE_DISAGREEMENT:
        return []
    return [f"the two stages disagree: the second look changed the circumference by {100 * change:+.1f} % "
            f"(more than {100 * MAX_STAGE_DISAGREEMENT:.0f} %)"]


def read_pixel_sizes(csv_path: str | Path) -> dict[str, float | None]:
    """HC18-format pixel sizes: ``filename,pixel size(mm)`` (extra columns ignored).

    Values are kept raw-checked per file when measured (a bad value is an error for that image
    only); a missing file or column is a FetalInputError naming the CSV.
    """

    csv_path = Path(csv_path)
    sizes: dict[str, float | None] = {}
    for _, row in read_csv(csv_path, (COL_FILENAME, COL_PIXEL)):
        value = row.get(COL_PIXEL, "")
        try:
            sizes[Path(row[COL_FILENAME]).name] = float(value)
        except ValueError:
            sizes[Path(row[COL_FILENAME]).name] = value  # type: ignore[assignment]  # reported per image
    return sizes


def draw_overlay(image: np.ndarray, ellipses: Sequence[tuple[Ellipse, tuple[int, int, int]]], label: str | None = None) -> np.ndarray:
    """An RGB copy of ``image`` (grey, or already RGB) with ellipses drawn (colours as RGB tuples) and an optional label."""
    import cv2

    rgb = image.copy() if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    thickness = max(1, int(round(min(image.shape) / 270)))
    for ellipse, colour in ellipses:
        cv2.ellipse(rgb, ((ellipse.cx, ellipse.cy), (2 * ellipse.a, 2 * ellipse.b), math.degrees(ellipse.angle_rad)), colour, thickness, cv2.LINE_AA)
    if label:
        cv2.putText(rgb, label, (10, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2, cv2.LINE_AA)
    return rgb


CASCADE_KEY = "cascade"  # the model card's section naming the second stage
COMBINES = ("refined", "mean")


class CascadeHCModel(HCModel):
    """The first stage and the second: :meth:`probability` is the refined head probability.

    Threshold, checks and size calibration are the cascade's own (chosen on the validation split
    for the refined map); the first stage keeps its own settings for locating the head.
    """

    def __init__(self, first: HCModel, refiner, settings: dict | None = None):
        settings = dict(settings or {})
        super().__init__(first.model, {
            "threshold": settings.get("threshold", postprocess.THRESHOLD),
            "tta": first.tta,
            "min_agreement": settings.get("min_agreement", first.min_agreement),
            "min_axis_ratio": settings.get("min_axis_ratio", first.min_axis_ratio),
            "hc_calibration": settings.get("hc_calibration"),
        })
        self.first = first
        self.refiner = refiner
        self.band = BandConfig.from_dict(settings.get("band"))
        self.scales = [float(v) for v in settings.get("scales", [1.0])]
        if not self.scales or not all(0.5 < v < 1.5 for v in self.scales):
            raise ValueError(f"scales must be factors near 1, got {self.scales}")
        self.combine = str(settings.get("combine", "refined"))
        if self.combine not in COMBINES:
            raise ValueError(f"combine must be one of {', '.join(COMBINES)}, got {self.combine!r}")
        expected = (None, *self.band.shape, 1)
        got = tuple(refiner.input_shape)
        if tuple(got[1:]) != expected[1:]:
            raise ValueError(f"the second stage takes inputs of shape {got[1:]}, the band is {expected[1:]}")
        self._refine = None

    def settings(self) -> dict:
        """The cascade's inference settings (the card's ``cascade`` section adds the second stage's file)."""
        return {**super().settings(), "band": self.band.to_dict(), "scales": self.scales, "combine": self.combine}

    def band_probability(self, bands: np.ndarray) -> np.ndarray:
        """Second-stage head probabilities of (N, rows, cols) band images."""
        if self._refine is None:

            self._refine = inference_function(self.refiner)
        return self._refine(np.ascontiguousarray(bands[..., None], np.float32))[..., 0]

    def locate(self, image: np.ndarray, first_prob: np.ndarray | None = None) -> tuple[np.ndarray, postprocess.HeadFit | None]:
        """The first stage's probability map and its fitted head (None when it found none)."""
        prob = self.first.probability(image) if first_prob is None else first_prob
        try:
            return prob, self.first.fit(prob)
        except postprocess.NoHeadFound:
            return prob, None

    def probability_and_first(self, image: np.ndarray, first_prob: np.ndarray | None = None) -> tuple[np.ndarray, postprocess.HeadFit | None]:
        """(the cascade's head probability at the original size, the first stage's head fit).

        Where the first stage finds no head, its own map is returned (the fit then finds none either)."""
        prob, head = self.locate(image, first_prob)
        if head is None:
            return prob, None
        ellipses = [scaled(head.ellipse, f) for f in self.scales]
        bands = self.band_probability(np.stack([sample_band(image, e, self.band) for e in ellipses]))
        refined = np.mean([band_to_image(b, e, self.band, image.shape[:2]) for b, e in zip(bands, ellipses)], axis=0)
        return (0.5 * (refined + prob) if self.combine == "mean" else refined), head

    def probability(self, image: np.ndarray) -> np.ndarray:
        return self.probability_and_first(image)[0]


def scaled(ellipse, factor: float):
    """``ellipse`` with both semi-axes times ``factor`` (the same centre and angle)."""
    from fetal_lib.metrics.biometry import Ellipse  # deferred: imports scipy

    return Ellipse(ellipse.cx, ellipse.cy, ellipse.a * factor, ellipse.b * factor, ellipse.angle_rad)


def load_cascade(first: HCModel, card_path: Path, section: dict) -> CascadeHCModel:
    """The cascade a card's ``cascade`` section describes (second-stage file beside the card).

    Raises:
        FetalInputError: the second stage's file is missing or unreadable, or its settings are not valid.
    """

    if not isinstance(section, dict) or not section.get("model"):
        raise FetalInputError(card_path, f"its {CASCADE_KEY!r} section names no second-stage model file")
    path = card_path.parent / str(section["model"])
    if not path.is_file():
        raise FetalInputError(path, "the second-stage model the card names is missing (retrain, or measure with the first stage alone: --first-stage)")
    try:
        refiner = load_keras(path)
    except Exception as exc:  # noqa: BLE001 - any failure to read the file is bad input
        raise FetalInputError(path, f"not a readable Keras model ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    try:
        return CascadeHCModel(first, refiner, section.get("inference", {}))
    except (TypeError, ValueError) as exc:
        raise FetalInputError(card_path, f"the cascade's inference settings are not valid ({exc})") from None
