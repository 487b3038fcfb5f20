"""The "Brain age" tab: a T1 NIfTI and its brain mask -> predicted age, tissue volumes (CSF, GM, WM in
mL), the segmentation on three slices, and the model card.

The models are chapter 5's folder ``brain_age/`` (segmenter and regressor,
:func:`fetal_lib.brain_age.predict.load_predictor`); the subject is predicted exactly as
``fetal brain-age predict T1 --mask MASK`` does, and the picture shows the tissue labels the
volumes were computed from, on the model's 3 mm grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fetal_lib.app.cards import CardSummary
from fetal_lib.app.layout import TabLayout, build_tab, reply
from fetal_lib.app.slots import Slot, load_slot
from fetal_lib.app import events
from fetal_lib.app.events import IMAGE_BUTTONS
from fetal_lib.app.render import centre_of, label_overlay, mid_slices, montage
from fetal_lib.brain_age.predict import load_predictor

TITLE = "Brain age"
ACTION = "predict the brain age"
LABEL = "Chapter 5: 3D Res-U-Net tissue segmentation and age regression (PyTorch, scikit-learn)"
THREADS = 2
TISSUE_LEGEND = "CSF blue, GM orange, WM white"  # fetal_lib.app.render.TISSUE_COLOURS


def load_models(models_dir: Path, device: str = "auto") -> list[Slot]:
    """The chapter-5 model folder (absent: with the command that trains it), its segmenter on ``device``."""

    return [load_slot("brain_age", LABEL, Path(models_dir) / "brain_age",
                      lambda p: load_predictor(p, threads=THREADS, device=device))]


@dataclass
class BrainAgeAnswer:
    """One subject's brain age.

    Attributes:
        filename, mask: the T1's and the mask's names.
        row: what ``fetal brain-age predict --format json`` prints (``csf_ml``, ``gm_ml``, ``wm_ml``,
            ``predicted_age_years``, ``model``).
        segmentation_rgb: axial, coronal and sagittal slices through the brain's centre with the tissue labels.
        card: the model's card summary.
    """

    filename: str
    mask: str
    row: dict
    segmentation_rgb: np.ndarray
    card: CardSummary


def segmentation_picture(prediction) -> np.ndarray:
    """Three slices through the mask's centre, tissue labels blended over the preprocessed T1."""

    pre = prediction.preprocessed
    centre = centre_of(pre.mask)
    images = mid_slices(pre.image, centre)
    labels = mid_slices(prediction.labels, centre)
    return montage([(label_overlay(images[p], labels[p]), p) for p in images])


def predict(slot: Slot, image_path: str | Path, mask_path: str | Path) -> BrainAgeAnswer:
    """Predict one subject as ``fetal brain-age predict IMAGE --mask MASK --model <slot's folder>`` does.

    Raises:
        FetalInputError: a missing, corrupt or non-3-D file, a mask of another geometry, an empty mask.
    """
    prediction = slot.model.predict_detailed(image_path, mask_path)
    return BrainAgeAnswer(Path(image_path).name, Path(mask_path).name, prediction.row, segmentation_picture(prediction), slot.card)


def answer_markdown(a: BrainAgeAnswer) -> str:
    """The answer as the page shows it (volumes in mL and age in years, as the library rounds them: 0.01)."""
    r = a.row
    return "\n".join([f"### Predicted brain age {r['predicted_age_years']:.2f} years", "",
                      "| Quantity | Value |", "|---|---|",
                      f"| Predicted age | {r['predicted_age_years']:.2f} years |",
                      f"| CSF | {r['csf_ml']:.2f} mL |", f"| GM | {r['gm_ml']:.2f} mL |", f"| WM | {r['wm_ml']:.2f} mL |",
                      "", f"{a.filename}, mask {a.mask}; regressor {r['model']}. The predicted age is uncorrected: it "
                      "regresses towards the training mean age."])


def respond(slot: Slot, uploads, image_path, mask_path) -> tuple:
    """The Predict button: (answer markdown, segmentation picture, card markdown, image, mask, preview).

    A refused request gives its message instead of the answer; the uploads are deleted either way
    and the file and preview components are cleared (returned as None).
    """

    def go():
        return predict(slot, events.upload_path(image_path, "a T1 volume"), events.upload_path(mask_path, "its brain mask"))

    return reply(slot, uploads, ACTION, go, (image_path, mask_path), lambda a: (answer_markdown(a), a.segmentation_rgb), 1)


def _files(gr) -> list:
    return [gr.File(label="T1 brain MRI (NIfTI .nii or .nii.gz)", type="filepath", elem_id="ba-image"),
            gr.File(label="Brain mask (same grid)", type="filepath", elem_id="ba-mask")]


def _pictures(gr) -> list:

    return [gr.Image(label=f"Tissue segmentation on the model's 3 mm grid ({TISSUE_LEGEND})", interactive=False,
                     buttons=IMAGE_BUTTONS, elem_id="ba-segmentation")]


def build(slots: list[Slot], uploads) -> None:
    """The tab's components and events (inside ``gr.Blocks`` and a ``gr.Tab``)."""
    build_tab(TabLayout("brain_age", "ba", TITLE, _files, "Uploaded T1 (middle slices)", "Predict brain age", "brain_age",
                        _pictures, lambda slot, *values: respond(slot, uploads, *values), volume=True), slots)
