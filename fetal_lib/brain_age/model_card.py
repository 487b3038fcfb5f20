"""Model card of the deployed brain-age models (``MODEL_CARD.md`` + ``model_card.json``)."""

from __future__ import annotations

from pathlib import Path

from fetal_lib.io import write_json_atomic, write_text_atomic


def write(directory: str | Path, card: dict) -> Path:
    """Write ``model_card.json`` and a Markdown rendering ``MODEL_CARD.md`` into ``directory``.

    ``card`` keys used in the Markdown: data_status, profile, segmenter (config, history, val_dice),
    regressor (name, n_train, cv_mae_years, cv_r2, bias), preprocessing, provenance.
    """
    directory = Path(directory)
    write_json_atomic(directory / "model_card.json", card)
    write_text_atomic(directory / "MODEL_CARD.md", render(card))
    return directory / "MODEL_CARD.md"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def render(card: dict) -> str:
    """Markdown text of a model card."""
    seg = card.get("segmenter", {})
    reg = card.get("regressor", {})
    prep = card.get("preprocessing", {})
    lines = [
        "# Brain-age models (fetal compendium, chapter brain_age)",
        "",
        f"Trained by `notebooks/05_brain_age_mri.py`, profile `{card.get('profile')}`, data `{card.get('data_status')}`.",
        "",
        "## Intended use",
        "Research and teaching: tissue volumes (CSF, GM, WM in mL) and a predicted age (years) from a",
        "bias-corrected, MNI-aligned adult T1 MRI with its brain mask, as in the Cam-CAN teaching set",
        "(2 mm, 98x116x94). Not a clinical device. Predictions for other scanners, ages outside",
        f"{card.get('age_range_years', '?')} years, or other preprocessing are unvalidated.",
        "",
        "## Preprocessing",
        f"Intensity: zero mean, unit variance inside the brain mask. Resampling: {prep.get('spacing_mm')} mm on a "
        f"{prep.get('size')} grid centred on the volume (B-spline image, nearest-neighbour labels).",
        "",
        "## Segmenter: 3D Res-U-Net",
        f"Config: {seg.get('config')}. Training: {seg.get('train')}.",
        f"Trained on {seg.get('n_train')} subjects; validation Dice (n={seg.get('n_val')}): "
        + ", ".join(f"{k} {_fmt(v)}" for k, v in (seg.get('val_dice') or {}).items()),
        "",
        "## Regressor",
        f"Model `{reg.get('name')}` trained on {reg.get('n_train')} subjects' reference segmentations brought to "
        "the preprocessed grid (nearest neighbour). 5-fold CV: MAE "
        f"{_fmt(reg.get('cv_mae_years'))} years, R2 {_fmt(reg.get('cv_r2'))}. At prediction time its features come from "
        f"the segmenter's {'class probabilities (soft)' if reg.get('features') == 'soft' else 'argmax labels (hard)'}; "
        f"on predicted segmentations of the image subjects ({reg.get('predicted_seg_source', 'see the chapter')}): "
        f"MAE {_fmt(reg.get('predicted_seg_mae_years'))} years.",
        f"Age-bias correction (for group analyses; needs chronological age): {reg.get('bias')}.",
        "",
        "## Limitations",
        "- The regressor is trained on reference segmentations; at prediction time it sees Res-U-Net",
        "  segmentations (domain shift reported in the chapter).",
        "- The predicted age is uncorrected: it regresses towards the training mean age.",
        "- Cam-CAN data usage agreement: research use, no redistribution of the data.",
        "",
        "## Provenance",
        f"{card.get('provenance')}",
        "",
    ]
    return "\n".join(lines)
