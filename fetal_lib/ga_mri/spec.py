"""Chapter 4's declaration: its knobs, datasets, models, dependencies, headline figures and decisions."""

from __future__ import annotations

from fetal_lib.config.chapter_spec import ChapterSpec, Decision, Knob

SPEC = ChapterSpec(
    id="fetal_mri_ga",
    number=4,
    title="Gestational age from fetal brain MRI",
    knobs=(
        Knob("dataset", str, "fetal_brain_atlases | feta", ""),
        Knob("size", int, "slice side in pixels", "pixels"),
        Knob("fov_mm", float, "field of view of every slice in mm (fixed: brain size is kept)", "mm"),
        Knob("offsets_mm", str, "slice positions along each plane's normal, mm from the brain centre", "mm"),
        Knob("samples_per_volume", int, "slice triples per volume (the matched ones first)", ""),
        Knob("arch_options", dict, "the network's widths, batch norm, dense head", ""),
        Knob("epochs", int, "13 trainings (5 + 2 + 5 folds and the deployed model), about 10 x 310 samples an epoch over", "epochs"),
        Knob("batch_size", int, "", "pixels"),
        Knob("learning_rate", float, "from random weights with batch norm (the source: 1e-4, fine-tuning ImageNet weights)", ""),
        Knob("huber_delta_days", float, "", "days"),
        Knob("augment", bool, "", ""),
        Knob("precision", str, "'auto' (bfloat16 only where the CPU has it natively and a probe measured it faster), 'float32' or 'mixed_bfloat16'", ""),
        Knob("jit_compile", bool, "", ""),
        Knob("folds", int, "protocol 1 and 3: number of folds", ""),
        Knob("ga_bins", int, "protocol 1: stratification bins of GA", ""),
        Knob("vgg16_weights", str, "path of a local ImageNet VGG16 no-top weights file; empty for random initialisation", ""),
        Knob("n_bootstrap", int, "", ""),
        Knob("save_model", bool, "write build/models/ga_mri.keras with its card (never for a phantom)", ""),
    ),
)
