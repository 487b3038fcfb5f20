"""Chapter 3's declaration: its knobs, datasets, models, dependencies, headline figures and decisions."""

from __future__ import annotations

from fetal_lib.config.chapter_spec import ChapterSpec, Decision, Knob

SPEC = ChapterSpec(
    id="us_classification",
    number=3,
    title="Fetal ultrasound classification",
    knobs=(
        Knob("tasks", str, "comma-separated: planes, brain_planes, anomaly, anomaly_type, anomaly16", ""),
        Knob("archs", str, "comma-separated registry names", ""),
        Knob("arch_options", dict, "per architecture, its constructor options (widths)", ""),
        Knob("input_rows", int, "whole-image input size (pixels)", "pixels"),
        Knob("input_cols", int, "", "pixels"),
        Knob("head_crop_tasks", str, "comma-separated tasks classified on a crop around the fetal head (chapter 1's network finds it); '' for none", ""),
        Knob("head_crop_margin", float, "the crop's half-side in major semi-axes of the fitted head ellipse", ""),
        Knob("head_crop_size", int, "the crop's side (network input pixels)", "pixels"),
        Knob("head_crop_align", bool, "turn the crop so that the head's major axis is horizontal", ""),
        Knob("head_finder", str, "the HC18 model that finds the head; empty: chapter 1's build/models/hc18_unet.keras", ""),
        Knob("epochs", int, "the same for every model and task", "epochs"),
        Knob("batch_size", int, "", "pixels"),
        Knob("learning_rate", float, "", ""),
        Knob("augment", bool, "", ""),
        Knob("tta", str, "test-time views averaged into every prediction: 'hflip' (the left-right mirror) or ''", ""),
        Knob("precision", str, "'auto' (bfloat16 only where the CPU has it natively and a probe measured it faster), 'float32' or 'mixed_bfloat16'", ""),
        Knob("jit_compile", bool, "XLA made all three slower on 2 cores (plain CNN 131 vs 199 images/s, Xception 2.7 vs 14)", ""),
        Knob("class_weight", str, "'balanced' or 'none'", ""),
        Knob("checkpoint", str, "the epoch kept: 'smoothed' (validation balanced accuracy averaged with the neighbouring epochs'), 'best' or 'last'", ""),
        Knob("xception_weights", str, "path of a local ImageNet weights file for Xception; empty for random initialisation", ""),
        Knob("leak_task", str, "the task of the leak demonstration (image-level against grouped split)", ""),
        Knob("leak_arch", str, "", ""),
        Knob("n_bootstrap", int, "", ""),
        Knob("save_models", bool, "write build/models/us_<task>.keras with its card (the model chosen by CV, else validation; never for a phantom)", ""),
    ),
)
