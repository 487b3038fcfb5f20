"""Chapter 2's declaration: its knobs, datasets, models, dependencies, headline figures and decisions."""

from __future__ import annotations

from fetal_lib.config import common_knobs as common
from fetal_lib.config.chapter_spec import ChapterSpec, Decision, Knob

# The chapter run that reproduces what the build decides.
BUILD = "fetal book --profile cpu --only seg_benchmark"
VALIDATION = "the validation split of chapter 1's subject-level split"

SPEC = ChapterSpec(
    id="seg_benchmark",
    number=2,
    title="Segmentation benchmark",
    knobs=(
        common.archs("the architectures benchmarked (comma-separated registry names), trained in this order"),
        common.arch_options("per architecture, its constructor options (widths); the profile's comments give the papers' sizes"),
        common.input_rows("rows of the letterboxed input, as chapter 1"),
        common.input_cols("columns of the letterboxed input, as chapter 1"),
        common.epochs("the training budget, the same for every architecture"),
        common.epochs("the deployed architecture trains on to this many epochs in all before deployment (0: deployed as benchmarked)",
                      "winner_epochs"),
        Knob("deploy_arch", str, "the architecture deployed (best.pt) and trained on to winner_epochs: auto (this run's validation "
             "winner) or one of archs, fixed with the evidence in the profile so that every machine deploys the same", ""),
        common.batch_size(),
        common.learning_rate(),
        common.augment("augment training images as chapter 1 does"),
        common.augment("also flip training images upside down (as chapter 1: off, the probe is at the top)", "augment_vflip"),
        common.precision("torch"),
        common.device(),
        common.val_every("validation Dice every this many epochs (and after the last)"),
        common.tta("test-time flips averaged, comma-separated, as chapter 1's tta"),
        common.threshold_grid(),
        Knob("ddim_steps", int, "MedSegDiff-V2: DDIM denoising steps per sample at inference", "steps"),
        Knob("diffusion_samples", int, "MedSegDiff-V2: samples per image (their mean is the probability, their SD the uncertainty)",
             "samples"),
        common.max_images(),
        common.save("save_models", "write build/models/seg_benchmark/<arch>.pt and best.pt with their cards (never for a phantom model)"),
    ),
    datasets=("hc18",),
    models=("seg_benchmark/<arch>.pt", "seg_benchmark/best.pt"),
    needs=(),  # chapter 1's data, split and biometry (code), not its model
    headlines=("best_architecture_dice", "best_architecture_hc_abs_diff_mean_mm", "best_dice_any_architecture"),
    decisions=(
        Decision("the epoch kept and the probability threshold of each network", "build", VALIDATION,
                 "best validation Dice at the scored epochs (val_every and the last); lowest mean HC error among threshold_grid",
                 BUILD),
        Decision("the deployed architecture (best.pt, what `fetal hc measure --model` uses) where deploy_arch is auto "
                 "(full and smoke)", "build", VALIDATION,
                 "lowest mean HC error on validation (ties, and networks that found no head, by validation Dice)", BUILD),
        Decision("deploy_arch transunet in cpu (the same on every machine)", "profile",
                 "the validation split of three cpu builds at 96x160 (664ccf7 in bfloat16 and under tools/emulate_avx2.sh in "
                 "float32; a fresh clone at 9e5ae58 in bfloat16)",
                 "each chose TransUNet on validation (7 epochs: 2.40 mm against Attention U-Net's 2.73, UNeXt 3.02, MedSegDiff-V2 "
                 "3.75, DUCK-Net 4.43 at 9e5ae58); at 128x192 the winner had changed with the machine's precision (Attention "
                 "U-Net 2.24 against TransUNet's 2.28 mm in bfloat16 at 7923fa4, TransUNet in float32 at fc0f603)",
                 "fetal book --profile cpu --only seg_benchmark --set deploy_arch=auto"),
        Decision("the winner's deployed weights: as benchmarked or continued to winner_epochs", "build", VALIDATION,
                 "the lower mean HC error on validation of the two; the benchmarked one on a tie", BUILD),
        Decision("epochs; arch_options widths", "profile", "speed only (`fetal bench seg`), before any score was seen",
                 "float32 on a 2-core Xeon: DUCK-Net 8.6 training images/s, the others 33-69; at 8 epochs the chapter took "
                 "32 min (abcf7e4: 161 s an epoch for the five), over its 30-minute target at 10 or 12",
                 "fetal bench seg"),
        Decision("input_rows/input_cols 96x160 (transunet's img_size with them)", "profile",
                 "the validation split (chapter runs 7923fa4 at 128x192 and 664ccf7 at 96x160; issue 48, for speed)",
                 "rule fixed before the run: the deployed network's validation HC error at most 0.06 mm above 1.980 mm, every "
                 "architecture's validation Dice within 0.01, and faster: TransUNet continued 1.892 mm deployed (Attention "
                 "U-Net continued 1.980 before); Dice 0.970/0.960/0.968/0.943/0.956 against 0.971/0.962/0.970/0.951/0.965; "
                 "476 s against 668 on the AVX-512 BF16 machine",
                 "fetal book --profile cpu --only seg_benchmark (128x192: input_rows, input_cols and transunet's img_size "
                 "in profiles/cpu.yaml)"),
        Decision("winner_epochs", "profile",
                 "the validation split (8024735's Attention U-Net continued from its benchmark epochs)",
                 "25 epochs in all 1.88 mm, 35 in all 1.94 mm mean HC error; averaging its probabilities with other benchmark "
                 "networks' (best of 20 sets of two or three): 1.91 mm",
                 "fetal seg train --arch attention_unet --continue-from build/models/seg_benchmark/attention_unet.pt "
                 "--set epochs=18 && fetal seg evaluate --arch attention_unet --split val"),
        Decision("arch_options: medsegdiff_v2 prediction x0", "profile",
                 "the validation split, the first cpu run of this chapter",
                 "predicting the noise (epsilon, the paper's) reached validation Dice 0.44 in 12 CPU epochs, below the sanity "
                 "floor; predicting the clean mask (x0) 0.96",
                 "fetal seg train --arch medsegdiff_v2 --profile cpu"),
    ),
)
