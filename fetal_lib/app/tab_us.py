"""The "Ultrasound classification" tab: an image and a task (standard plane, brain plane, normal vs
abnormal brain) -> the class, the calibrated probability of every class, Grad-CAM, the model card.

Each task's model is chapter 3's ``us_<task>.keras`` (:class:`fetal_lib.us.classifier.UsClassifier`);
the image is read and classified exactly as ``fetal us classify IMAGE --task T`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fetal_lib.app.cards import CardSummary
from fetal_lib.app.layout import TabLayout, build_tab, reply
from fetal_lib.app.slots import Slot, load_slot
from fetal_lib.errors import FetalInputError
from fetal_lib.app import events
from fetal_lib.app.events import IMAGE_BUTTONS
from fetal_lib.explain.gradcam_keras import gradcam
from fetal_lib.explain.overlay import overlay
from fetal_lib.explain.targets import Target
from fetal_lib.transforms.letterbox import letterbox, unletterbox
from fetal_lib.us.arrays import read_for_classification
from fetal_lib.us.classifier import UsClassifier
from fetal_lib.us.classifier import read_images
from fetal_lib.us.train import gradcam_layer

TITLE = "Ultrasound classification"
ACTION = "classify"
#: The tasks chapter 3 deploys, with what the page calls them.
TASKS = {
    "planes": "Standard plane (abdomen, brain, femur, thorax)",
    "brain_planes": "Brain plane (trans-cerebellum, trans-thalamic, trans-ventricular)",
    "anomaly": "Brain plane: normal or abnormal",
    "anomaly_type": "Brain anomaly type (normal, or which anomaly)",
}


def load_models(models_dir: Path, device: str = "auto") -> list[Slot]:
    """One classifier per task of :data:`TASKS` (absent ones with the command that trains them); Keras
    models, so ``device`` (for the PyTorch tabs) does not apply."""

    return [load_slot(task, label, Path(models_dir) / f"us_{task}.keras", lambda p, t=task: UsClassifier.load(p, t))
            for task, label in TASKS.items()]


@dataclass
class UsAnswer:
    """One classified image.

    Attributes:
        filename: the image's name.
        task: the task's key.
        predicted: the most probable class; confidence: its calibrated probability.
        probabilities: class -> calibrated probability (``softmax(logits / T)``), in the model's class order.
        row: what ``fetal us classify`` prints for this image (``p_<class>`` columns).
        gradcam_rgb: Grad-CAM of the predicted class over the image (None if the network has no 2-D layer).
        warnings: reading notes (a colour image converted to grey ...).
        card: the model's card summary.
    """

    filename: str
    task: str
    predicted: str
    confidence: float
    probabilities: dict[str, float]
    row: dict
    gradcam_rgb: np.ndarray | None
    card: CardSummary
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def gradcam_layer_of(classifier) -> str | None:
    """The layer Grad-CAM explains: the registered network's own, else the last layer with a 2-D feature map."""
    if classifier.arch:

        try:
            return gradcam_layer(classifier.arch)
        except (ValueError, KeyError):
            pass
    for layer in reversed(classifier.model.layers[1:]):
        shape = getattr(layer, "output", None)
        if shape is not None and len(getattr(shape, "shape", ())) == 4:
            return layer.name
    return None


def _gradcam(classifier, image: np.ndarray, class_index: int) -> tuple[np.ndarray | None, str | None]:

    layer = gradcam_layer_of(classifier)
    if layer is None:
        return None, "Grad-CAM not available: the network has no 2-D feature map to explain."
    if classifier.head_crop is not None:  # the network saw the head crop: explain it on the crop
        x, head = classifier.network_input(image)
        geometry = None if head is not None else letterbox(image, classifier.input_size, interpolation="area")[1]
    else:
        x, geometry = letterbox(image, classifier.input_size, interpolation="area")  # the network input (fetal_lib.us.arrays.to_input)
    try:
        maps = gradcam(classifier.model, layer, x[None, ..., None], Target("class", class_index=class_index))
    except Exception as exc:  # noqa: BLE001 - Grad-CAM is an extra: the classification stands
        return None, f"Grad-CAM not available for this network ({type(exc).__name__}: {str(exc).strip()[:160]})."
    if geometry is None:
        return overlay(np.round(x * 255).astype(np.uint8), np.clip(maps[0], 0.0, 1.0)), None
    return overlay(image, np.clip(unletterbox(maps[0], geometry), 0.0, 1.0)), None


def predict(slot: Slot, image_path: str | Path) -> UsAnswer:
    """Classify one image as ``fetal us classify IMAGE --model <slot's model>`` does.

    Raises:
        FetalInputError: missing, empty or not a readable image.
    """

    path = Path(image_path)
    ready, errors = read_images([path])
    if errors:
        raise FetalInputError(*errors[0])
    classifier = slot.model
    row = classifier.predict_images(ready)[0]
    probabilities = {c: float(row[col]) for c, col in zip(classifier.classes, classifier.probability_columns)}
    k = classifier.classes.index(row["predicted"])
    heat, note = _gradcam(classifier, ready[0][1], k)
    return UsAnswer(path.name, slot.key, row["predicted"], float(row["confidence"]), probabilities, row, heat, slot.card,
                    list(row["warnings"]), [note] if note else [])


def answer_markdown(a: UsAnswer) -> str:
    """The answer as the page shows it (probabilities to 4 decimals, most probable first)."""
    lines = [f"### {a.predicted} ({a.confidence:.1%})", "", f"{a.filename}, task {a.task} ({TASKS.get(a.task, a.task)}). "
             "Probabilities are calibrated (temperature scaling on the validation split).", "",
             "| Class | Probability |", "|---|---|"]
    lines += [f"| {c} | {p:.4f} |" for c, p in sorted(a.probabilities.items(), key=lambda kv: -kv[1])]
    lines += [f"\n**Note:** {w}" for w in a.warnings] + [f"\n{n}" for n in a.notes]
    return "\n".join(lines)


def respond(slot: Slot, uploads, path) -> tuple:
    """The Classify button: (answer markdown, probabilities, Grad-CAM picture, card markdown, file, preview).

    A refused request gives its message instead of the answer; the upload is deleted either way and
    the file and preview components are cleared (returned as None).
    """

    return reply(slot, uploads, ACTION, lambda: predict(slot, events.upload_path(path, "an ultrasound image")),
                 (path,), lambda a: (answer_markdown(a), a.probabilities, a.gradcam_rgb), 2)


def _files(gr) -> list:
    return [gr.File(label="Ultrasound image (PNG, JPEG)", file_types=["image"], type="filepath", elem_id="us-image")]


def _pictures(gr) -> list:

    with gr.Row():
        probabilities = gr.Label(label="Calibrated probabilities", num_top_classes=8, elem_id="us-probabilities")
        gradcam = gr.Image(label="Grad-CAM of the predicted class", interactive=False, buttons=IMAGE_BUTTONS,
                           elem_id="us-gradcam")
    return [probabilities, gradcam]


def build(slots: list[Slot], uploads) -> None:
    """The tab's components and events (inside ``gr.Blocks`` and a ``gr.Tab``)."""

    build_tab(TabLayout("us", "us", TITLE, _files, "Uploaded image", "Classify", "classify", _pictures,
                        lambda slot, *values: respond(slot, uploads, *values), selector="Task", selector_id="task",
                        reader=read_for_classification), slots)
