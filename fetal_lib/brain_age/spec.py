"""Chapter 5's declaration: its knobs, datasets, models, dependencies, headline figures and decisions."""

from __future__ import annotations

from fetal_lib.config.chapter_spec import ChapterSpec, Decision, Knob

SPEC = ChapterSpec(
    id="brain_age",
    number=5,
    title="Brain age from adult MRI",
    knobs=(
        Knob("seg_base_width", int, "channels at the first level (doubles per level)", ""),
        Knob("seg_depth", int, "resolution levels", ""),
        Knob("seg_epochs", int, "", "epochs"),
        Knob("seg_batch_size", int, "", "pixels"),
        Knob("seg_crop", int, "random training crops, voxels a side; 0 for whole volumes", ""),
        Knob("seg_nn_channel", bool, "also feed the image resampled by nearest neighbour (False: B-spline image only, as the source)", ""),
        Knob("seg_mask_channel", bool, "brain mask as an input channel (False: image only, as the source)", ""),
        Knob("seg_loss", str, "'ce' (the source's cross-entropy) or 'ce_dice' (cross-entropy + soft Dice)", ""),
        Knob("seg_precision", str, "training arithmetic: 'auto' (bfloat16 autocast only where the CPU has it natively and a probe measured it faster) | 'float32' | 'bfloat16'", ""),
        Knob("device", str, "'auto' (CUDA when torch sees a GPU, else the CPU), 'cpu' or 'cuda': where the networks train and predict", ""),
        Knob("seg_time_budget_s", float, "optional wall-time cap (s) on top of the epochs; 0: off (the published profiles leave it off)", "s"),
        Knob("seg_val_every", int, "score the validation subjects every this many epochs (and after the last)", ""),
        Knob("seg_cv_folds", int, "out-of-fold segmenters over all image subjects (the deployed recipe and epochs); 0 to skip", ""),
        Knob("seg_tta", str, "'hflip' (class probabilities averaged with the left-right mirror's) or 'none', as deployed", ""),
        Knob("reg_models", str, "", ""),
        Knob("reg_folds", int, "", ""),
        Knob("reg_inner_folds", int, "inner CV for the age-bias correction (within training folds)", ""),
        Knob("map_factor", int, "tissue maps pooled over blocks of map_factor^3 voxels", ""),
        Knob("pca_components", int, "", ""),
        Knob("deploy_model", str, "regressor saved for `fetal brain-age predict`", ""),
        Knob("deploy_features", str, "'soft' (class probabilities) or 'hard' (argmax labels) features at prediction time", ""),
        Knob("feature_correction", str, "'none' or 'tissue_mixing' (predicted -> reference tissue fractions, fitted on out-of-fold image subjects)", ""),
        Knob("reg_training_set", str, "deployed regressor's rows: 'reference' or 'reference+image_subjects' (their reference and out-of-fold predicted rows)", ""),
        Knob("deploy_selection", str, "'nested': the deployed recipe (model, features, correction, rows) chosen by CV on the image subjects, its error", ""),
        Knob("nested_models", str, "the regressors the nested selection compares (each with soft/hard features, a correction or not, the rows)", ""),
        Knob("nested_outer_folds", int, "", ""),
        Knob("nested_inner_folds", int, "", ""),
        Knob("n_bootstrap", int, "", ""),
        Knob("save_models", bool, "write build/models/brain_age (cpu/full only: a phantom model is no use)", ""),
    ),
)
