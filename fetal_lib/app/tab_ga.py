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

from fetal_lib.app.cards import CardSummary, provenance_markdown
from fetal_lib.app.slots import Slot, load_slot

TITLE = "Gestational age from MRI"
ACTION = "predict the gestational age"
LABEL = "Chapter 4: multi-planar VGG16 with attention (Keras)"


def load_models(models_dir: Path, device: str = "auto") -> list[Slot]:
    """The chapter-4 regressor (absent: with the command that trains it); a Keras model, so ``device``
    (for the PyTorch tabs) does not apply."""
    from fetal_lib.ga_mri.predictor import GaPredictor

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
    from fetal_lib.app.render import montage
    from fetal_lib.explain.overlay import overlay
    from fetal_lib.ga_mri.explain import attention_maps
    from fetal_lib.networks.keras.vgg_attention import PLANES

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
    from fetal_lib.app import events

    card_md = provenance_markdown(slot.card, with_metrics=True)

    def go():
        volume = events.upload_path(volume_path, "a T2 volume")
        return predict(slot, volume, events.upload_path(mask_path, "the brain mask") if mask_path else None)

    try:
        a = events.run(ACTION, go)
    except events.Refused as refused:
        return refused.markdown, None, card_md, None, None, None
    finally:
        uploads.discard(volume_path, mask_path)
    return answer_markdown(a), a.attention_rgb, card_md, None, None, None


def build(slots: list[Slot], uploads) -> None:
    """The tab's components and events (inside ``gr.Blocks`` and a ``gr.Tab``)."""
    import gradio as gr

    from fetal_lib.app import events
    from fetal_lib.app.slots import missing_markdown

    slot = slots[0]
    if not slot.ready:
        gr.Markdown(missing_markdown(TITLE, slots), elem_id="ga-missing")
        return
    with gr.Row():
        with gr.Column(scale=1):
            volume = gr.File(label="T2 fetal brain volume (NIfTI .nii or .nii.gz)", type="filepath", elem_id="ga-volume")
            mask = gr.File(label="Brain mask (optional, same grid)", type="filepath", elem_id="ga-mask")
            preview = gr.Image(label="Uploaded volume (middle slices)", interactive=False, buttons=events.IMAGE_BUTTONS,
                               elem_id="ga-preview", height=220)
            upload_message = gr.Markdown(elem_id="ga-upload-message")
            submit = gr.Button("Predict gestational age", variant="primary", elem_id="ga-submit")
            gr.Markdown(events.UPLOAD_NOTE, elem_id="ga-notes")
        with gr.Column(scale=2):
            result = gr.Markdown(elem_id="ga-result")
            attention = gr.Image(label="The slices the network saw, with its attention maps", interactive=False,
                                 buttons=events.IMAGE_BUTTONS, elem_id="ga-attention")
            card = gr.Markdown(provenance_markdown(slot.card, with_metrics=True), elem_id="ga-card")

    def on_submit(volume_path, mask_path):
        return respond(slot, uploads, volume_path, mask_path)

    events.preview_volume_on_upload(volume, preview, upload_message)
    submit.click(on_submit, [volume, mask], [result, attention, card, volume, mask, preview],
                 concurrency_limit=1, concurrency_id="ga", api_name="gestational_age")
