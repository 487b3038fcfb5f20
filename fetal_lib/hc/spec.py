"""Chapter 1's declaration: its knobs, datasets, models, dependencies, headline figures and decisions."""

from __future__ import annotations

from fetal_lib.config.chapter_spec import ChapterSpec, Decision, Knob

SPEC = ChapterSpec(
    id="hc18",
    number=1,
    title="Head circumference from ultrasound (HC18 U-Net)",
    knobs=(
        Knob("input_rows", int, "letterboxed network input (rows, cols); divisible by 2**depth", "pixels"),
        Knob("input_cols", int, "mixed_bfloat16, 600 s: 128x192 (25 epochs) 1.89 mm, 160x240 (16 epochs) 2.00 mm", "pixels"),
        Knob("filters", int, "channels of the first level (doubles per level)", ""),
        Knob("depth", int, "depth 5 (mixed_bfloat16, 600 s, 18 epochs): 2.03 mm on validation", ""),
        Knob("epochs", int, "the training budget", "epochs"),
        Knob("batch_size", int, "", "pixels"),
        Knob("learning_rate", float, "", ""),
        Knob("time_budget_s", float, "optional wall-time cap (s) on top of the epochs; 0 is off (the published profiles leave it off)", "s"),
        Knob("augment", bool, "", ""),
        Knob("augment_vflip", bool, "vertical flips in augmentation (HC18's probe is always at the top)", ""),
        Knob("loss_weight", str, "'none' or 'mm_per_pixel': weight each image's loss by its mm per network pixel", ""),
        Knob("precision", str, "training arithmetic: 'auto' (bfloat16 only where the CPU has it natively and a probe measured it faster), 'float32' or 'mixed_bfloat16'", ""),
        Knob("jit_compile", bool, "XLA-compiled training step (float32 only)", ""),
        Knob("tta", str, "test-time flips averaged: '', 'hflip' or 'hflip,vflip' (vflip only for a model trained with vertical flips)", ""),
        Knob("max_images", int, "0 means every training image", ""),
        Knob("threshold_grid", str, "probability thresholds tried on the validation split, comma-separated", ""),
        Knob("calibrate", bool, "deploy the size calibration (decided on training-side data: see its section)", ""),
        Knob("second_stage", bool, "train it; deployed only where validation prefers it to the first stage alone", ""),
        Knob("second_band_rows", int, "band samples across the skull (radius) and around it (angle), plus the angles repeated at each side", "pixels"),
        Knob("second_band_cols", int, "angular samples over the turn, plus second_band_pad repeated at each side", "pixels"),
        Knob("second_band_pad", int, "", ""),
        Knob("second_band_half_width", float, "the band spans 1 -/+ this times the first stage's ellipse", ""),
        Knob("second_filters", int, "", ""),
        Knob("second_epochs", int, "the validation band Dice peaked at epoch 6-9 of 10-15 (15 epochs of 12 filters: no better)", "epochs"),
        Knob("second_learning_rate", float, "", ""),
        Knob("second_jitter", float, "random error of the first stage's ellipse when a training band is drawn (fraction)", ""),
        Knob("second_scales", str, "test-time bands around the ellipse scaled by these factors, averaged", ""),
        Knob("second_combine", str, "auto | refined | mean (averaged with the first stage's map)", ""),
        Knob("audit_epochs", int, "audit arms (ours / source block / source masks): equal reduced budget", "epochs"),
        Knob("audit_time_budget_s", float, "optional wall-time cap per audit arm (s); 0 is off", "s"),
        Knob("audit_filters", int, "", ""),
        Knob("audit_input_rows", int, "", "pixels"),
        Knob("audit_input_cols", int, "", "pixels"),
        Knob("save_model", bool, "write build/models/hc18_unet.keras and its card (never for a phantom model)", ""),
    ),
)
