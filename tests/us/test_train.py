"""Training chapter 3's classifiers: the config, balanced class weights, the augmentation, the
batches, and (slow) short runs through the harness keeping the best validation balanced accuracy."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.keras_backends  # also run with KERAS_BACKEND=torch by `make test`

from fetal_lib.us.train import (
    UsTrainConfig,
    class_weights,
    gradcam_layer,
    sample_weights,
)


def test_config_round_trips_and_maps_onto_the_loop_config() -> None:
    config = UsTrainConfig(arch="separable_cnn", options={"widths": (4, 8)}, input_size=[64, 48], epochs=3, precision="mixed_bfloat16",
                           label_smoothing=0.1, time_budget_s=60.0)
    data = json.loads(json.dumps(config.to_dict()))
    assert data["input_size"] == [64, 48] and data["options"] == {"widths": [4, 8]}
    again = UsTrainConfig.from_dict(data)
    assert again.input_size == (64, 48) and again.input_shape == (64, 48, 1) and again.to_dict() == data
    loop = config.loop_config()
    assert (loop.epochs, loop.batch_size, loop.precision, loop.checkpoint, loop.lr_floor, loop.cap_s) == (3, 16, "bfloat16", "smoothed", 0.05, 60.0)
    assert UsTrainConfig().loop_config().precision == "float32"
    aug = config.augment_config()
    assert aug.flip_lr and not aug.flip_ud and aug.rotation_deg == 10.0 and aug.scale == (0.9, 1.1) and aug.shift_fraction == 0.05


@pytest.mark.parametrize("kwargs, message", [
    ({"arch": "vgg99"}, "registered Keras network"),
    ({"precision": "auto"}, "resolve 'auto' first"),
    ({"class_weight": "inverse"}, "class_weight"),
    ({"checkpoint": "median"}, "checkpoint must be one of best, last, smoothed"),
    ({"label_smoothing": 1.0}, "label_smoothing"),
    ({"mixup": -0.2}, "mixup alpha must be a number >= 0"),
    ({"rotation_deg": 200}, "rotation_deg must be a number of degrees"),
    ({"weights_path": "x.h5"}, "xception backbone only"),
    ({"arch": "xception", "options": {"width": 0.5}, "weights_path": "x.h5"}, "fit the full network only"),
    ({"arch": "xception", "options": {"middle_blocks": 4}, "weights_path": "x.h5"}, "fit the full network only"),
    ({"options": {"num_classes": 3}}, "come from the run"),
    ({"epochs": 0}, ">= 1"),
])
def test_config_refuses_bad_values(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        UsTrainConfig(**kwargs)


def test_from_dict_refuses_unknown_keys() -> None:
    with pytest.raises(ValueError, match="unknown UsTrainConfig keys: colour"):
        UsTrainConfig.from_dict({"colour": "red"})


def test_balanced_class_weights_make_every_class_weigh_the_same() -> None:
    y = np.array([0] * 6 + [1] * 3 + [3] * 1)  # class 2 absent
    w = class_weights(y, 4)
    assert w[2] == 0.0
    np.testing.assert_allclose(w[[0, 1, 3]], 10 / (3 * np.array([6, 3, 1])))
    per_image = sample_weights(y, 4)
    assert per_image.mean() == pytest.approx(1.0)
    totals = np.bincount(y, weights=per_image, minlength=4)
    np.testing.assert_allclose(totals[[0, 1, 3]], totals[0])
    assert sample_weights(y, 4, "none") is None


def test_gradcam_layers_are_named_per_architecture() -> None:
    assert gradcam_layer("plain_cnn") == gradcam_layer("separable_cnn") == "last_conv"
    assert gradcam_layer("xception") == "block14_sepconv2_act"
    with pytest.raises(ValueError, match="names no Grad-CAM layer"):
        gradcam_layer("unet")


def test_augmentation_keeps_shape_and_range_and_flips_only_left_right() -> None:
    from fetal_lib.transforms.augment import AugmentConfig
    from fetal_lib.us.train import augment_image

    rng = np.random.default_rng(1)
    image = np.random.default_rng(0).uniform(0, 1, (16, 24, 1)).astype(np.float32)
    out = augment_image(image, rng=rng)
    assert out.shape == image.shape and out.min() >= 0 and out.max() <= 1 and not np.allclose(out, image)
    flips_only = AugmentConfig(flip_lr=True, flip_ud=False, rotation_deg=0.0, scale=(1.0, 1.0), shift_fraction=0.0, gain=(1.0, 1.0),
                               offset=(0.0, 0.0), gamma=(1.0, 1.0), noise_sd=0.0)
    seen = set()
    for _ in range(12):
        out = augment_image(image, flips_only, rng)
        mirrored = np.allclose(out, image[:, ::-1], atol=1e-5)
        assert mirrored or np.allclose(out, image, atol=1e-5)
        seen.add(mirrored)
    assert seen == {True, False}


def test_batches_carry_one_hot_labels_and_sample_weights() -> None:
    from fetal_lib.us.train import training_batches

    x = np.random.default_rng(0).uniform(0, 1, (10, 16, 16, 1)).astype(np.float32)
    y = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2, 2])
    config = UsTrainConfig(input_size=(16, 16), batch_size=4, augment=False)
    batches = list(training_batches(x, y, config, 3, sample_weights(y, 3)))
    assert len(batches) == 2 and all(b[0].shape == (4, 16, 16, 1) for b in batches)  # full batches only
    for images, onehot, w in batches:
        rows = [int(np.argmin(np.abs(x - im).sum(axis=(1, 2, 3)))) for im in images]
        np.testing.assert_array_equal(onehot.argmax(axis=1), y[rows])
        np.testing.assert_allclose(w, sample_weights(y, 3)[rows], rtol=1e-6)


def test_train_refuses_arrays_that_do_not_fit_before_building() -> None:
    from fetal_lib.us.train import train

    config = UsTrainConfig(input_size=(16, 16), epochs=1)
    x = np.zeros((4, 16, 16, 1), np.float32)
    y = np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"training images must be \(N, 16, 16, 1\)"):
        train(config, np.zeros((4, 16, 8, 1), np.float32), y, x, y, num_classes=2)
    with pytest.raises(ValueError, match=r"validation labels must be in 0\.\.1"):
        train(config, x, y, x, np.array([0, 1, 2, 1]), num_classes=2)
    with pytest.raises(ValueError, match="integers"):
        train(config, x, y.astype(float), x, y, num_classes=2)


def _bright_or_dark(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class 1: a bright square on the left half; class 0: on the right half (unbalanced 3:1)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.25).astype(int)
    x = rng.uniform(0, 0.2, (n, 16, 16, 1)).astype(np.float32)
    for i, label in enumerate(y):
        col = rng.integers(1, 4) if label else rng.integers(9, 12)
        row = rng.integers(2, 10)
        x[i, row:row + 4, col:col + 4, 0] = 0.9
    return x, y


@pytest.mark.slow
def test_training_keeps_the_best_validation_balanced_accuracy_epoch() -> None:
    from fetal_lib.us.train import METRIC, balanced_accuracy, predict_logits, train

    x, y = _bright_or_dark(64, 0)
    xv, yv = _bright_or_dark(32, 1)
    config = UsTrainConfig(arch="plain_cnn", options={"widths": (4, 8)}, input_size=(16, 16), epochs=2, batch_size=8, learning_rate=1e-2,
                           augment=True, jit_compile=False, label_smoothing=0.1)
    result = train(config, x, y, xv, yv, num_classes=2)
    assert result.epochs_run == 2 and len(result.history[METRIC]) == 2 and result.train_images_per_s > 0
    assert result.best_epoch == int(np.argmax(result.history[METRIC])) + 1
    score = balanced_accuracy(yv, predict_logits(result.model, xv).argmax(axis=1), 2)
    assert score == pytest.approx(max(result.history[METRIC]))
    assert result.model.output.shape[1:] == (2,)


@pytest.mark.slow
def test_mixed_bfloat16_training_returns_a_float32_separable_model() -> None:
    import keras

    from fetal_lib.us.train import train

    x, y = _bright_or_dark(16, 2)
    config = UsTrainConfig(arch="separable_cnn", options={"widths": (4, 8)}, input_size=(16, 16), epochs=1, batch_size=8,
                           precision="mixed_bfloat16", class_weight="none", augment=False, mixup=0.4)
    result = train(config, x, y, x, y, num_classes=3)  # class 2 absent: still K = 3 logits
    assert keras.mixed_precision.global_policy().name == "float32"
    assert all(layer.dtype_policy.name == "float32" for layer in result.model.layers)
    assert result.model.output.shape[1:] == (3,) and result.epochs_run == 1


def test_task_learning_rate_gives_a_task_its_own_rate_which_a_cv_reads_as_its_recipe() -> None:
    from fetal_lib.us import cross_validation as cv
    from fetal_lib.us import pipeline

    settings = {**pipeline.profile_settings("smoke"), "learning_rate": 0.001, "task_learning_rate": {"brain_planes": 0.0003}}
    assert pipeline.task_settings(settings, "brain_planes")["learning_rate"] == 0.0003
    assert pipeline.task_settings(settings, "planes")["learning_rate"] == 0.001
    assert pipeline.train_config(pipeline.task_settings(settings, "brain_planes"), "plain_cnn").learning_rate == 0.0003
    assert pipeline.task_learning_rate({**settings, "task_learning_rate": None}, "brain_planes") == 0.001
    assert pipeline.task_learning_rate({**settings, "task_learning_rate": {"planes": 1}}, "planes") == 1.0  # a whole number is a rate
    with pytest.raises(ValueError, match="unknown task.*brain_plane"):
        pipeline.task_learning_rate({**settings, "task_learning_rate": {"brain_plane": 0.1}}, "planes")
    for bad in (0, -0.001, float("nan"), True, "0.001"):
        with pytest.raises(ValueError, match="brain_planes: the learning rate must be a positive number"):
            pipeline.task_learning_rate({**settings, "task_learning_rate": {"brain_planes": bad}}, "brain_planes")
    # a CV run at the task's own rate is not the recipe of a chapter at the common rate, and is that of one at the same rate
    doc = {"provenance": {"profile": "smoke", "parameters": pipeline.task_settings(settings, "brain_planes")}}
    assert cv.recipe_differences(doc, pipeline.task_settings(settings, "brain_planes"), "smoke") == []
    assert cv.recipe_differences(doc, pipeline.task_settings({**settings, "task_learning_rate": {}}, "brain_planes"),
                                 "smoke") == ["learning_rate 0.0003 (this run: 0.001)"]


def test_task_epochs_give_a_task_its_own_budget_and_refuse_unknown_tasks_or_bad_budgets() -> None:
    from fetal_lib.us import pipeline

    settings = {**pipeline.profile_settings("smoke"), "epochs": 7, "task_epochs": {"anomaly": 3}}
    assert pipeline.task_settings(settings, "anomaly")["epochs"] == 3
    assert pipeline.task_settings(settings, "planes")["epochs"] == 7
    assert pipeline.train_config(pipeline.task_settings(settings, "anomaly"), "plain_cnn").epochs == 3
    assert pipeline.task_epochs({**settings, "task_epochs": None}, "anomaly") == 7
    with pytest.raises(ValueError, match="unknown task.*anomaly_typo"):
        pipeline.task_epochs({**settings, "task_epochs": {"anomaly_typo": 3}}, "planes")
    for bad in (0, 2.5, True, "10"):
        with pytest.raises(ValueError, match="positive whole number"):
            pipeline.task_epochs({**settings, "task_epochs": {"anomaly": bad}}, "anomaly")


def test_task_label_smoothing_gives_a_task_its_own_smoothing_which_reaches_the_loss_and_the_cv_recipe() -> None:
    from fetal_lib.us import cross_validation as cv
    from fetal_lib.us import pipeline

    settings = {**pipeline.profile_settings("smoke"), "task_label_smoothing": {"brain_planes": 0.1}}
    brain = pipeline.task_settings(settings, "brain_planes")
    assert brain["label_smoothing"] == 0.1 and pipeline.task_settings(settings, "planes")["label_smoothing"] == 0.0
    assert pipeline.train_config(brain, "xception").label_smoothing == 0.1
    assert pipeline.train_config(pipeline.task_settings(settings, "planes"), "xception").label_smoothing == 0.0
    assert pipeline.task_label_smoothing({**settings, "task_label_smoothing": None}, "brain_planes") == 0.0
    with pytest.raises(ValueError, match="unknown task.*plane_s"):
        pipeline.task_label_smoothing({**settings, "task_label_smoothing": {"plane_s": 0.1}}, "planes")
    for bad in (1, 1.0, -0.1, float("nan"), True, "0.1"):
        with pytest.raises(ValueError, match=r"brain_planes: the label smoothing must be a number in \[0, 1\)"):
            pipeline.task_label_smoothing({**settings, "task_label_smoothing": {"brain_planes": bad}}, "brain_planes")
    # a CV written before the knob existed ran without smoothing: the recipe of a chapter at 0, not of one at 0.1
    old = {k: v for k, v in brain.items() if k != "label_smoothing"}
    doc = {"provenance": {"profile": "smoke", "parameters": old}}
    assert cv.recipe_differences(doc, pipeline.task_settings({**settings, "task_label_smoothing": {}}, "brain_planes"), "smoke") == []
    assert cv.recipe_differences(doc, brain, "smoke") == ["label_smoothing 0.0 (this run: 0.1)"]


def test_task_mixup_gives_a_task_its_own_alpha_which_mixes_its_training_batches_and_is_a_cv_recipe_key() -> None:
    from fetal_lib.us import cross_validation as cv
    from fetal_lib.us import pipeline
    from fetal_lib.us.train import training_batches

    settings = {**pipeline.profile_settings("smoke"), "task_mixup": {"brain_planes": 0.2}}
    brain = pipeline.task_settings(settings, "brain_planes")
    assert brain["mixup"] == 0.2 and pipeline.task_settings(settings, "planes")["mixup"] == 0.0
    config = pipeline.train_config(brain, "plain_cnn")
    assert config.mixup == 0.2 and pipeline.train_config(pipeline.task_settings(settings, "planes"), "plain_cnn").mixup == 0.0
    with pytest.raises(ValueError, match="unknown task.*plane_s"):
        pipeline.task_mixup({**settings, "task_mixup": {"plane_s": 0.2}}, "planes")
    for bad in (-1, float("nan"), True, "0.2"):
        with pytest.raises(ValueError, match="brain_planes: the mixup alpha must be a number >= 0"):
            pipeline.task_mixup({**settings, "task_mixup": {"brain_planes": bad}}, "brain_planes")
    # the batches: soft targets that still sum to 1 where mixed, one-hot where not
    x = np.random.default_rng(0).random((32, 8, 8, 1), dtype=np.float32)
    y = np.arange(32) % 3
    mixed = training_batches(x, y, UsTrainConfig(input_size=(8, 8), mixup=1.0, augment=False), 3)
    plain = training_batches(x, y, UsTrainConfig(input_size=(8, 8), augment=False), 3)
    soft = np.concatenate([mixed[i][1] for i in range(len(mixed))])
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-6)
    assert ((soft > 0) & (soft < 1)).any()
    assert set(np.unique(np.concatenate([plain[i][1] for i in range(len(plain))]))) == {0.0, 1.0}
    # a CV written before the knob existed ran unmixed
    old = {k: v for k, v in brain.items() if k != "mixup"}
    doc = {"provenance": {"profile": "smoke", "parameters": old}}
    assert cv.recipe_differences(doc, pipeline.task_settings({**settings, "task_mixup": {}}, "brain_planes"), "smoke") == []
    assert cv.recipe_differences(doc, brain, "smoke") == ["mixup 0.0 (this run: 0.2)"]


def test_task_rotation_deg_gives_a_task_its_own_rotation_range_which_reaches_the_augmentation_and_the_cv_recipe() -> None:
    from fetal_lib.us import cross_validation as cv
    from fetal_lib.us import pipeline

    settings = {**pipeline.profile_settings("smoke"), "task_rotation_deg": {"brain_planes": 20}}
    brain = pipeline.task_settings(settings, "brain_planes")
    assert brain["rotation_deg"] == 20.0 and pipeline.task_settings(settings, "planes")["rotation_deg"] == 10.0
    assert pipeline.train_config(brain, "plain_cnn").augment_config().rotation_deg == 20.0
    assert pipeline.train_config(pipeline.task_settings(settings, "planes"), "plain_cnn").augment_config().rotation_deg == 10.0
    for bad in (-1, 181, float("nan"), True, "20"):
        with pytest.raises(ValueError, match="brain_planes: the rotation range must be a number of degrees"):
            pipeline.task_rotation_deg({**settings, "task_rotation_deg": {"brain_planes": bad}}, "brain_planes")
    # the range reaches the images: a bright bar turned by up to 20 degrees moves more pixels than by up to 10 on average
    from fetal_lib.transforms.augment import AugmentConfig, augment_image
    image = np.zeros((32, 32, 1), np.float32)
    image[15:17, 2:30] = 1.0

    def moved(rotation):
        config = AugmentConfig(flip_lr=False, flip_ud=False, rotation_deg=rotation, scale=(1.0, 1.0), shift_fraction=0.0,
                               gain=(1.0, 1.0), offset=(0.0, 0.0), gamma=(1.0, 1.0), noise_sd=0.0)
        rng = np.random.default_rng(0)
        return np.mean([np.abs(augment_image(image, config, rng) - image).sum() for _ in range(40)])

    assert moved(20.0) > 1.3 * moved(10.0) > 0
    # a CV written before the knob existed turned its images by up to 10 degrees
    old = {k: v for k, v in brain.items() if k != "rotation_deg"}
    doc = {"provenance": {"profile": "smoke", "parameters": old}}
    assert cv.recipe_differences(doc, pipeline.task_settings({**settings, "task_rotation_deg": {}}, "brain_planes"), "smoke") == []
    assert cv.recipe_differences(doc, brain, "smoke") == ["rotation_deg 10.0 (this run: 20.0)"]


def test_sampled_class_balance_draws_every_class_equally_and_leaves_the_loss_unweighted() -> None:
    from fetal_lib.us import train as train_mod

    y = np.repeat([0, 1, 2], [40, 12, 8])
    assert train_mod.sample_weights(y, 3, "sampled") is None and train_mod.draw_weights(y, 3, "balanced") is None
    assert train_mod.draw_weights(y, 3, "none") is None
    w = train_mod.draw_weights(y, 3, "sampled")
    p = w / w.sum()
    np.testing.assert_allclose([p[y == c].sum() for c in range(3)], 1 / 3)  # each class 1/3 of every draw
    config = UsTrainConfig(arch="plain_cnn", options={"widths": [4]}, input_size=(8, 8), epochs=1, batch_size=6,
                           class_weight="sampled", augment=False)
    x = np.random.default_rng(0).random((60, 8, 8, 1)).astype(np.float32)
    batches = train_mod.training_batches(x, y, config, 3)
    drawn = np.concatenate([batches[i][1].argmax(axis=1) for i in range(len(batches))])
    assert len(batches[0]) == 2  # no loss weights
    assert len(drawn) == 60 and np.bincount(drawn, minlength=3)[0] < 40  # the majority drawn less often than it holds
    with pytest.raises(ValueError, match="class_weight must be one of balanced, sampled, none"):
        train_mod.draw_weights(y, 3, "inverse")
    with pytest.raises(ValueError, match="class_weight must be one of balanced, sampled, none"):
        UsTrainConfig(arch="plain_cnn", options={"widths": [4]}, input_size=(8, 8), class_weight="inverse")


def test_task_class_weight_reaches_the_train_config_and_the_cv_recipe() -> None:
    from fetal_lib.us import cross_validation as cv
    from fetal_lib.us import pipeline

    settings = {**pipeline.profile_settings("smoke"), "task_class_weight": {"brain_planes": "sampled"}}
    brain = pipeline.task_settings(settings, "brain_planes")
    assert brain["class_weight"] == "sampled" and pipeline.task_settings(settings, "planes")["class_weight"] == "balanced"
    assert pipeline.train_config(brain, "plain_cnn").class_weight == "sampled"
    with pytest.raises(ValueError, match="brain_planes: the class balance must be one of balanced, sampled, none"):
        pipeline.task_class_weight({**settings, "task_class_weight": {"brain_planes": "inverse"}}, "brain_planes")
    doc = {"provenance": {"profile": "smoke", "parameters": pipeline.task_settings({**settings, "task_class_weight": {}},
                                                                                    "brain_planes")}}
    assert cv.recipe_differences(doc, brain, "smoke") == ["class_weight 'balanced' (this run: 'sampled')"]
    assert pipeline.task_class_weight({}, "planes") == UsTrainConfig().class_weight  # partial settings: the config's default


def test_each_images_class_weight_is_scikit_learns_balanced_sample_weight() -> None:
    from sklearn.utils.class_weight import compute_sample_weight

    from fetal_lib.us import train as train_mod

    y = np.random.default_rng(3).choice(4, size=57, p=[0.5, 0.3, 0.15, 0.05])
    expected = compute_sample_weight("balanced", y)
    np.testing.assert_allclose(train_mod.image_class_weights(y, 4), expected)
    np.testing.assert_allclose(train_mod.sample_weights(y, 4, "balanced"), expected, rtol=1e-6)
    np.testing.assert_allclose(train_mod.draw_weights(y, 4, "sampled"), expected)
    assert train_mod.sample_weights(y, 4, "sampled") is None and train_mod.draw_weights(y, 4, "balanced") is None
