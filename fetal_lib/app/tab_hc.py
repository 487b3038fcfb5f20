"""The "Head circumference" tab: an ultrasound image and its pixel size -> HC, BPD, OFD (mm), GA from
HC (Hadlock), the fitted ellipse drawn on the image, the Grad-CAM overlay, and the model card.

Chapter 1's Keras U-Net (``hc18_unet.keras``) and, when present, chapter 2's winner
(``seg_benchmark/best.pt``) are served; both are :class:`fetal_lib.hc.measure.HCModel` and measure
exactly as ``fetal hc measure`` does (read grey, check the pixel size, segment, fit the ellipse).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fetal_lib.app.cards import CardSummary
from fetal_lib.app.layout import TabLayout, build_tab, reply
from fetal_lib.app.slots import Slot, load_slot
from fetal_lib.errors import FetalInputError
from fetal_lib.app import events
from fetal_lib.app.events import IMAGE_BUTTONS
from fetal_lib.data.imaging import read_image_gray
from fetal_lib.explain.overlay import overlay
from fetal_lib.ga_mri.predictor import weeks_days

TITLE = "Head circumference"
ACTION = "measure"
#: (key, label, file under the models folder)
MODELS = (
    ("hc18_unet", "Chapter 1: HC18 U-Net (Keras)", "hc18_unet.keras"),
    ("seg_winner", "Chapter 2: the segmentation benchmark's winner (PyTorch)", "seg_benchmark/best.pt"),
)
WINNER_HINT = "`fetal book --profile cpu --only seg_benchmark` (chapter 2 saves its winner as seg_benchmark/best.pt)"
#: Hadlock's formula was fitted on second- and third-trimester fetuses.
HADLOCK_FROM_WEEKS = 14.0


def _load_winner(path: Path, device: str = "auto"):
    from fetal_lib.hc.measure import HCModel  # deferred: imports scipy

    if not path.is_file():
        raise FetalInputError(path, f"no chapter-2 winner here; make it with {WINNER_HINT}")
    return HCModel.load(path, device=device)


def load_models(models_dir: Path, device: str = "auto") -> list[Slot]:
    """Both HC models (absent ones with the command that makes them); each loaded once, the chapter-2
    winner (PyTorch) on ``device``."""
    from fetal_lib.hc.measure import HCModel  # deferred: imports scipy

    loaders = {"hc18_unet": HCModel.load, "seg_winner": lambda p: _load_winner(p, device)}
    return [load_slot(key, label, Path(models_dir) / rel, loaders[key]) for key, label, rel in MODELS]


@dataclass
class HcAnswer:
    """One measured image.

    Attributes:
        filename: the image's name.
        pixel_size_mm: mm per pixel, as given.
        hc_mm, bpd_mm, ofd_mm: head circumference, biparietal (2b) and occipitofrontal (2a) diameters, mm.
        ga_weeks: gestational age from HC by Hadlock (weeks).
        row: the HC18 submission row plus ``hc_mm`` (what ``fetal hc measure`` prints).
        warnings: the fit's checks that failed (the measurement deserves a look).
        ellipse_rgb: the image with the fitted ellipse drawn.
        gradcam_rgb: the Grad-CAM overlay (None when the network offers no layer to explain; see ``notes``).
        notes: what else the page should say.
        card: the model's card summary.
    """

    filename: str
    pixel_size_mm: float
    hc_mm: float
    bpd_mm: float
    ofd_mm: float
    ga_weeks: float
    row: dict
    warnings: list[str]
    ellipse_rgb: np.ndarray
    gradcam_rgb: np.ndarray | None
    card: CardSummary
    notes: list[str] = field(default_factory=list)

    @property
    def ga_weeks_days(self) -> str:

        return weeks_days(self.ga_weeks * 7.0)


def _pixel_size(path: Path, value) -> float:
    from fetal_lib.hc.measure import check_pixel_size  # deferred: imports scipy

    if value is None or (isinstance(value, str) and not value.strip()) or (isinstance(value, float) and math.isnan(value)):
        raise FetalInputError(path, "no pixel size given: enter the image's pixel size in mm (HC18 lists it per image)")
    return check_pixel_size(path, value)


def _gradcam(hc_model, image: np.ndarray) -> tuple[np.ndarray | None, str | None]:
    """The Grad-CAM overlay of the network's head segmentation, or why there is none."""

    try:
        if hasattr(hc_model.model, "predict_nhwc"):  # a chapter-2 torch segmenter
            from fetal_lib.seg_benchmark.explain import gradcam  # local: the only statement of its branch
        elif hasattr(hc_model, "refiner"):  # chapter 1's cascade: the second stage, which drew the measured outline
            from fetal_lib.hc.explain import gradcam_second_stage as gradcam  # deferred: imports pandas
        else:
            from fetal_lib.hc.explain import gradcam  # deferred: imports pandas
        return overlay(image, gradcam(hc_model, image)), None
    except Exception as exc:  # noqa: BLE001 - e.g. a network without the explained layer: the measurement stands
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        return None, f"Grad-CAM not available for this network ({type(exc).__name__}{': ' + first if first else ''})."


def predict(slot: Slot, image_path: str | Path, pixel_size) -> HcAnswer:
    """Measure one image as ``fetal hc measure IMAGE --pixel-size MM --model <slot's model>`` does.

    Raises:
        FetalInputError: not a readable image, a missing or non-positive pixel size, or no head found.
    """
    from fetal_lib.hc.measure import draw_overlay  # deferred: imports scipy
    from fetal_lib.metrics.biometry import bpd_mm, ga_weeks_from_hc_hadlock, ofd_mm  # deferred: imports scipy

    path = Path(image_path)
    image = read_image_gray(path)
    pixel = _pixel_size(path, pixel_size)
    hc_model = slot.model
    try:
        m = hc_model.measure_array(image, pixel, filename=str(path))
    except FetalInputError as err:
        raise FetalInputError(path, err.problem) from None
    ga = float(ga_weeks_from_hc_hadlock(m.hc_mm))
    heat, note = _gradcam(hc_model, image)
    notes = [note] if note else []
    if ga < HADLOCK_FROM_WEEKS:
        notes.append(f"GA below {HADLOCK_FROM_WEEKS:g} weeks: Hadlock's formula was fitted on second- and third-trimester "
                     "fetuses; read it with caution.")
    ellipse = draw_overlay(image, m.drawn_ellipses(), label=f"HC {m.hc_mm:.1f} mm")
    if m.first_ellipse is not None:
        notes.append("Two-stage model: the first stage's ellipse (orange) placed the second look, whose ellipse (green) is measured.")
    return HcAnswer(path.name, pixel, float(m.hc_mm), float(bpd_mm(m.ellipse, pixel)), float(ofd_mm(m.ellipse, pixel)), ga,
                    m.row(), list(m.warnings), ellipse, heat, slot.card, notes)


def answer_markdown(a: HcAnswer) -> str:
    """The answer as the page shows it (values in mm to 0.01)."""
    lines = [f"### HC {a.hc_mm:.2f} mm", "", "| Measure | Value |", "|---|---|",
             f"| HC (head circumference) | {a.hc_mm:.2f} mm |",
             f"| BPD (biparietal diameter, 2b) | {a.bpd_mm:.2f} mm |",
             f"| OFD (occipitofrontal diameter, 2a) | {a.ofd_mm:.2f} mm |",
             f"| GA from HC (Hadlock 1984) | {a.ga_weeks:.2f} weeks ({a.ga_weeks_days}) |",
             "", f"{a.filename}, pixel size {a.pixel_size_mm:g} mm. Ellipse centre ({a.row['center_x_mm']:.2f}, "
             f"{a.row['center_y_mm']:.2f}) mm, semi-axes {a.row['semi_axes_a_mm']:.2f} and {a.row['semi_axes_b_mm']:.2f} mm, "
             f"angle {a.row['angle_rad']:.3f} rad."]
    if a.warnings:
        lines += ["", "**Check this fit:** " + "; ".join(a.warnings) + "."]
    lines += [f"\n{n}" for n in a.notes]
    return "\n".join(lines)


def respond(slot: Slot, uploads, path, pixel_size) -> tuple:
    """The Measure button: (answer markdown, ellipse picture, Grad-CAM picture, card markdown, file, preview).

    A refused request gives its message instead of the answer; the upload is deleted either way and
    the file and preview components are cleared (returned as None).
    """

    return reply(slot, uploads, ACTION, lambda: predict(slot, events.upload_path(path, "an ultrasound image"), pixel_size),
                 (path,), lambda a: (answer_markdown(a), a.ellipse_rgb, a.gradcam_rgb), 2)


def _files(gr) -> list:
    return [gr.File(label="Ultrasound image (PNG, JPEG)", file_types=["image"], type="filepath", elem_id="hc-image")]


def _controls(gr) -> list:
    return [gr.Number(label="Pixel size (mm per pixel)", value=None, elem_id="hc-pixel-size")]


def _pictures(gr) -> list:

    with gr.Row():
        ellipse = gr.Image(label="Fitted ellipse", interactive=False, buttons=IMAGE_BUTTONS, elem_id="hc-ellipse")
        gradcam = gr.Image(label="Grad-CAM (where the network looks)", interactive=False, buttons=IMAGE_BUTTONS,
                           elem_id="hc-gradcam")
    return [ellipse, gradcam]


def build(slots: list[Slot], uploads) -> None:
    """The tab's components and events (inside ``gr.Blocks`` and a ``gr.Tab``)."""
    build_tab(TabLayout("hc", "hc", TITLE, _files, "Uploaded image", "Measure", "measure", _pictures,
                        lambda slot, *values: respond(slot, uploads, *values), controls=_controls, selector="Model"), slots)
