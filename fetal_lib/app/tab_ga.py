"""The "Gestational age from MRI" tab: a T2 NIfTI volume (and optionally its brain mask) -> GA in
weeks+days, the three slices the network saw with its attention maps, and the model card.

The model is chapter 4's ``ga_mri.keras`` (:class:`fetal_lib.ga_mri.predictor.GaPredictor`); the
volume is predicted exactly as ``fetal ga predict VOLUME [--mask MASK]`` does. The picture shows,
per plane, the slice through the brain's centre with the plane's attention map
(:func:`fetal_lib.ga_mri.explain.attention_maps`) over it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fetal_lib.app.cards import CardSummary
from fetal_lib.app.layout import TabLayout, build_tab, reply
from fetal_lib.app.slots import Slot, load_slot
from fetal_lib.app import events
from fetal_lib.app.events import IMAGE_BUTTONS
from fetal_lib.app.render import montage
from fetal_lib.explain.overlay import overlay
from fetal_lib.ga_mri.explain import attention_maps
from fetal_lib.ga_mri.predictor import GaPredictor
from fetal_lib.networks.keras.vgg_attention import PLANES

TITLE = "Gestational age from MRI"
ACTION = "predict the gestational age"
LABEL = "Chapter 4: multi-planar VGG16 with attention (Keras)"


def load_models(models_dir: Path, device: str = "auto") -> list[Slot]:
    """The chapter-4 regressor (absent: with the command that trains it); a Keras model, so ``device``
    (for the PyTorch tabs) does not apply."""

    return [load_slot("ga_mri", LABEL, Path(models_dir) / "ga_mri.keras", GaPredictor.load)]


@dataclass
class GaAnswer:
    """One volume's gestational age.

    Attributes:
        filename, mask: the volume's name and the mask's (or how the brain was found without one).
        row: what ``fetal ga predict`` prints (``ga_weeks_days``, ``ga_days``, ``spread_days``, ``brain_volume_ml`` ...).
        attention_rgb: the three central slices with their attention maps.
        card: the model's card summary.
    """

    filename: str
    mask: str
    row: dict
    attention_rgb: np.ndarray
    card: CardSummary
    notes: list[str] = field(default_factory=list)


def attention_picture(predictor, prediction) -> np.ndarray:
    """Per plane, the slice at the offset nearest 0 mm with its attention map blended over it."""

    offsets = list(predictor.preprocess.offsets_mm)
    k = int(np.argmin(np.abs(np.asarray(offsets, float))))
    maps = attention_maps(predictor.model, prediction.inputs)
    panels = []
    for i, plane in enumerate(PLANES):
        image = prediction.inputs[i][k, ..., 0]
        panels.append((overlay(image, np.clip(maps[plane][k], 0.0, 1.0)), f"{plane}, offset {offsets[k]:g} mm"))
    return montage(panels)


def predict(slot: Slot, volume_path: str | Path, mask_path: str | Path | None = None) -> GaAnswer:
    """Predict one volume as ``fetal ga predict VOLUME [--mask MASK] --model <slot's model>`` does.

    Raises:
        FetalInputError: a missing, corrupt or non-3-D volume or mask, a mask of another geometry, an empty mask.
    """
    predictor = slot.model
    prediction = predictor.predict(volume_path, mask_path)
    row = prediction.row()
    notes = []
    if prediction.cropped:
        notes.append("The brain extends beyond the network's field of view: the prediction may be low.")
    if mask_path is None:
        notes.append("No mask given: the brain was found by an Otsu threshold, which suits a skull-stripped volume only.")
    return GaAnswer(Path(volume_path).name, Path(mask_path).name if mask_path else row["mask"], row,
                    attention_picture(predictor, prediction), slot.card, notes)


def answer_markdown(a: GaAnswer) -> str:
    """The answer as the page shows it."""
    r = a.row
    lines = [f"### GA {r['ga_weeks_days']} (weeks+days)", "", "| Quantity | Value |", "|---|---|",
             f"| Gestational age | {r['ga_weeks_days']} weeks+days ({r['ga_days']:.1f} days, {r['ga_weeks']:.2f} weeks) |",
             f"| Spread over the slice triples (SD) | {r['spread_days']:.1f} days |",
             f"| Brain volume (mask) | {r['brain_volume_ml']:.1f} mL |",
             "", f"{a.filename}, mask: {a.mask}."]
    lines += [f"\n{n}" for n in a.notes]
    return "\n".join(lines)


def respond(slot: Slot, uploads, volume_path, mask_path) -> tuple:
    """The Predict button: (answer markdown, attention picture, card markdown, volume, mask, preview).

    A refused request gives its message instead of the answer; the uploads are deleted either way
    and the file and preview components are cleared (returned as None).
    """

    def go():
        volume = events.upload_path(volume_path, "a T2 volume")
        return predict(slot, volume, events.upload_path(mask_path, "the brain mask") if mask_path else None)

    return reply(slot, uploads, ACTION, go, (volume_path, mask_path), lambda a: (answer_markdown(a), a.attention_rgb), 1)


def _files(gr) -> list:
    return [gr.File(label="T2 fetal brain volume (NIfTI .nii or .nii.gz)", type="filepath", elem_id="ga-volume"),
            gr.File(label="Brain mask (optional, same grid)", type="filepath", elem_id="ga-mask")]


def _pictures(gr) -> list:

    return [gr.Image(label="The slices the network saw, with its attention maps", interactive=False,
                     buttons=IMAGE_BUTTONS, elem_id="ga-attention")]


def build(slots: list[Slot], uploads) -> None:
    """The tab's components and events (inside ``gr.Blocks`` and a ``gr.Tab``)."""
    build_tab(TabLayout("ga", "ga", TITLE, _files, "Uploaded volume (middle slices)", "Predict gestational age",
                        "gestational_age", _pictures, lambda slot, *values: respond(slot, uploads, *values), volume=True), slots)
