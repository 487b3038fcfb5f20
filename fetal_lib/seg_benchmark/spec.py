"""Chapter 2's declaration: its knobs, datasets, models, dependencies, headline figures and decisions."""

from __future__ import annotations

from fetal_lib.config.chapter_spec import ChapterSpec, Decision, Knob

SPEC = ChapterSpec(
    id="seg_benchmark",
    number=2,
    title="Segmentation benchmark",
    knobs=(
        Knob("archs", str, "comma-separated registry names, trained in this order", ""),
        Knob("arch_options", dict, "per architecture, its constructor options (widths); the profile's comments give the papers' sizes", ""),
        Knob("input_rows", int, "letterboxed input, as chapter 1", "pixels"),
        Knob("input_cols", int, "", "pixels"),
        Knob("epochs", int, "the same for every architecture", "epochs"),
        Knob("winner_epochs", int, "the validation winner trains on to this many epochs in all before deployment (0: deployed as benchmarked)", "epochs"),
        Knob("batch_size", int, "", "pixels"),
        Knob("learning_rate", float, "", ""),
        Knob("augment", bool, "", ""),
        Knob("augment_vflip", bool, "as chapter 1: the probe is at the top of every HC18 image", ""),
        Knob("precision", str, "'auto' (bfloat16 autocast only where the CPU has it natively and a probe measured it faster), 'float32' or 'bfloat16'", ""),
        Knob("device", str, "'auto' (CUDA when torch sees a GPU, else the CPU), 'cpu' or 'cuda': where the networks train and predict", ""),
        Knob("val_every", int, "validation Dice every this many epochs (and after the last)", ""),
        Knob("tta", str, "test-time flips averaged, as chapter 1", ""),
        Knob("threshold_grid", str, "probability thresholds tried on validation", ""),
        Knob("ddim_steps", int, "MedSegDiff-V2: DDIM steps per sample at inference", ""),
        Knob("diffusion_samples", int, "MedSegDiff-V2: samples per image (their mean is the probability, their SD the uncertainty)", ""),
        Knob("max_images", int, "0 means every training image", ""),
        Knob("save_models", bool, "write build/models/seg_benchmark/<arch>.pt and best.pt with their cards (never for a phantom model)", ""),
    ),
)
