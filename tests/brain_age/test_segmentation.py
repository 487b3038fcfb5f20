"""Segmenter training, inference and save/load; the predict path's internal consistency."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("torch")

from fetal_lib.brain_age import dataset, features, preprocess, segmentation  # noqa: E402
from fetal_lib.brain_age.predict import load_predictor  # noqa: E402
from fetal_lib.errors import FetalInputError  # noqa: E402


def _toy(n=4, size=16, seed=0):
    rng = np.random.default_rng(seed)
    segs = np.zeros((n, size, size, size), np.uint8)
    c = size // 2
    z, y, x = np.mgrid[:size, :size, :size]
    for i in range(n):
        r = np.sqrt((z - c) ** 2 + (y - c) ** 2 + (x - c) ** 2) / rng.uniform(0.9, 1.1)
        segs[i][r < 7] = 1
        segs[i][r < 5.5] = 2
        segs[i][r < 3.5] = 3
    levels = np.array([-2.0, -1.0, 0.3, 1.2], np.float32)
    images = levels[segs] + rng.normal(0, 0.2, segs.shape).astype(np.float32)
    masks = (segs > 0).astype(np.uint8)
    return images, masks, segs


@pytest.mark.slow
def test_training_learns_a_toy_problem(tmp_path):
    images, masks, segs = _toy()
    cfg = segmentation.TrainConfig(base_width=4, depth=2, norm=False, epochs=60, batch_size=2, crop=None, seed=0, flip=False, lr=3e-3)
    res = segmentation.train(images, segs, cfg, val=(images[:1], masks[:1], segs[:1]))
    assert res.history[-1]["loss"] < res.history[0]["loss"] * 0.6
    d = segmentation.mean_dice(segmentation.predict(res.model, images, masks, spacing_mm=3.0), segs)
    assert min(d.values()) > 0.6, d
    # save / load gives the same predictions
    segmentation.save(res.model, tmp_path)
    back = segmentation.load(tmp_path)
    np.testing.assert_array_equal(segmentation.predict(back, images, masks), segmentation.predict(res.model, images, masks))


@pytest.mark.slow
def test_mask_channel_training_and_save_load(tmp_path):
    images, masks, segs = _toy(n=2)
    cfg = segmentation.TrainConfig(base_width=2, depth=2, epochs=2, batch_size=2, crop=None, seed=0, mask_channel=True, loss="ce_dice")
    with pytest.raises(ValueError, match="pass the brain masks"):
        segmentation.train(images, segs, cfg)
    res = segmentation.train(images, segs, cfg, masks=masks)
    assert res.model.config["in_channels"] == 2
    segmentation.save(res.model, tmp_path)
    back = segmentation.load(tmp_path)
    np.testing.assert_array_equal(segmentation.predict(back, images, masks), segmentation.predict(res.model, images, masks))
    with pytest.raises(ValueError, match="pass masks"):
        segmentation.predict_proba(back, images)
    # the mask channel is read: a different mask changes the probabilities
    p1 = segmentation.predict_proba(back, images, masks)
    p0 = segmentation.predict_proba(back, images, np.zeros_like(masks))
    assert not np.allclose(p1, p0)


def test_soft_dice_loss_matches_hard_dice():
    """With confident logits the soft Dice equals the metric's Dice (fetal_lib.metrics.segmentation)."""
    import torch

    from fetal_lib.metrics.segmentation import dice

    rng = np.random.default_rng(1)
    target = rng.integers(0, 4, (2, 8, 8, 8))
    pred = np.where(rng.random(target.shape) < 0.7, target, rng.integers(0, 4, target.shape))
    logits = torch.from_numpy(np.moveaxis(np.eye(4)[pred], -1, 1) * 60.0)
    loss = float(segmentation.soft_dice_loss(logits, torch.from_numpy(target)))
    expected = 1 - np.mean([dice(pred == k, target == k) for k in (1, 2, 3)])
    assert loss == pytest.approx(expected, abs=2e-3)  # the +1 smoothing moves it slightly
    # a perfect prediction has (almost) no loss; the loss is differentiable
    perfect = torch.from_numpy(np.moveaxis(np.eye(4)[target], -1, 1) * 60.0).requires_grad_()
    out = segmentation.soft_dice_loss(perfect, torch.from_numpy(target))
    out.backward()
    assert float(out.detach()) < 1e-3 and perfect.grad is not None


def test_allowed_region_margin():
    m = np.zeros((30, 30, 30), np.uint8)
    m[10:20, 10:20, 10:20] = 1
    a = segmentation.allowed_region(m, 3.0, 15.0)
    assert a[10, 10, 5] and not a[10, 10, 4]  # 5 voxels = 15 mm kept, 6 voxels = 18 mm dropped


def test_missing_model(tmp_path):
    with pytest.raises(FetalInputError, match="segmenter.json.*not found"):
        segmentation.load(tmp_path)
    with pytest.raises(FetalInputError, match="model folder not found"):
        load_predictor(tmp_path / "absent")


@pytest.mark.slow
def test_predict_path_is_consistent(tiny_model, real_dataset):
    root = real_dataset("brain_age")
    s = [x for x in dataset.load(root) if x.role == "seg_val"][0]
    pred = load_predictor(tiny_model)
    out = pred(s.image_path, s.mask_path)
    pre = preprocess.preprocess_files(s.image_path, s.mask_path)
    assert segmentation.input_names(pred.segmenter) == ("image", "image_nn", "mask")  # recorded in segmenter.json
    inputs = pre.intensities(("image", "image_nn"))
    proba = segmentation.constrained_proba(pred.segmenter, inputs, pre.mask)
    np.testing.assert_allclose(proba.sum(0), 1.0, rtol=1e-5)
    # the tiny model is saved with soft features: volumes are summed probabilities
    assert pred.soft_features
    vols = features.soft_tissue_volumes_ml(proba, pre.spacing_mm)
    for k in ("csf_ml", "gm_ml", "wm_ml"):
        assert out[k] == pytest.approx(vols[k], abs=0.01)
    expected_age = pred.regressor.predict(np.array([[vols["csf_ml"], vols["gm_ml"], vols["wm_ml"]]]),
                                          features.soft_tissue_maps(proba, 3).ravel()[None])[0]
    assert out["predicted_age_years"] == pytest.approx(expected_age, abs=0.01)
    # a saved feature correction is applied to the features before the regressor (the volumes reported stay as segmented)
    from fetal_lib.brain_age.correction import TissueMixing
    from fetal_lib.brain_age.predict import CORRECTION_FILE, load_correction
    from fetal_lib.io import write_json_atomic

    mixing = TissueMixing(((1.0, 0.0, 0.0), (0.0, 0.8, 0.2), (0.0, 0.0, 1.0)), 3, "test")
    write_json_atomic(tiny_model / CORRECTION_FILE, mixing.to_dict())
    try:
        corrected = load_predictor(tiny_model)
        assert corrected.correction == mixing
        out_c = corrected(s.image_path, s.mask_path)
        fixed = mixing.apply({"volumes": np.array([[vols["csf_ml"], vols["gm_ml"], vols["wm_ml"]]]),
                              "maps": features.soft_tissue_maps(proba, 3).ravel()[None]})
        assert out_c["gm_ml"] == out["gm_ml"]
        assert out_c["predicted_age_years"] == pytest.approx(pred.regressor.predict(fixed["volumes"], fixed["maps"])[0], abs=0.01)
        (tiny_model / CORRECTION_FILE).write_text("{not json")
        with pytest.raises(FetalInputError, match="unreadable feature correction"):
            load_correction(tiny_model)
    finally:
        (tiny_model / CORRECTION_FILE).unlink(missing_ok=True)
    # the model card's expected error (chapter 5's nested estimate) comes with every prediction
    from fetal_lib.brain_age.predict import format_text
    from fetal_lib.model_card import read_card

    card_file = tiny_model / "model_card.json"
    before = card_file.read_bytes() if card_file.is_file() else None
    write_json_atomic(card_file, {**(read_card(tiny_model) or {}), "regressor": {"expected_mae_years": 6.123, "expected_mae_how": "nested"}})
    try:
        row = load_predictor(tiny_model)(s.image_path, s.mask_path)
        assert row["expected_mae_years"] == 6.12 and "expected error: MAE 6.12 years" in format_text(row)
    finally:
        card_file.write_bytes(before) if before is not None else card_file.unlink()
    assert "expected_mae_years" not in out and "expected error" not in format_text(out)  # no card figure: none claimed
    # hard features: argmax labels, as a model saved with "features": "hard" uses them
    hard = dataclasses.replace(pred, soft_features=False)(s.image_path, s.mask_path)
    labels = segmentation.predict(pred.segmenter, inputs, pre.mask)
    assert hard["gm_ml"] == pytest.approx(features.tissue_volumes_ml(labels, pre.spacing_mm)["gm_ml"], abs=0.01)


@pytest.mark.slow
def test_channels_last_layout_gives_the_same_training_and_predictions():
    """The channels-last 3D layout is a speed choice: same losses and probabilities as the default layout."""
    images, masks, segs = _toy(n=2)
    runs = {}
    for layout in (True, False):
        cfg = segmentation.TrainConfig(base_width=2, depth=2, epochs=2, batch_size=2, crop=None, seed=0, mask_channel=True, channels_last=layout)
        res = segmentation.train(images, segs, cfg, masks=masks)
        runs[layout] = ([h["loss"] for h in res.history], segmentation.predict_proba(res.model, images, masks))
    np.testing.assert_allclose(runs[True][0], runs[False][0], rtol=1e-4)
    np.testing.assert_allclose(runs[True][1], runs[False][1], atol=1e-4)


def test_network_input_channels_and_errors():
    images = np.zeros((2, 3, 8, 8, 8), np.float32)
    images[:, 1] = 1.0
    masks = np.ones((2, 8, 8, 8), np.uint8)
    x = segmentation.network_input(images, masks, 4)
    assert x.shape == (2, 4, 8, 8, 8)
    np.testing.assert_array_equal(x[:, 1], 1.0)
    np.testing.assert_array_equal(x[:, 3], 1.0)  # the mask comes last
    assert segmentation.network_input(images, None, 3).shape == (2, 3, 8, 8, 8)
    assert segmentation.network_input(images[:, 0], masks, 2).shape == (2, 2, 8, 8, 8)  # 4D: one intensity channel
    with pytest.raises(ValueError, match="pass masks"):
        segmentation.network_input(images, None, 4)
    with pytest.raises(ValueError, match="reads 5 input channels"):
        segmentation.network_input(images, masks, 5)


@pytest.mark.slow
def test_nn_channel_training_records_inputs(tmp_path):
    images, masks, segs = _toy(n=2)
    stacked = np.stack([images, images + 0.5], axis=1)
    cfg = segmentation.TrainConfig(base_width=2, depth=2, epochs=1, batch_size=2, crop=None, seed=0, nn_channel=True, mask_channel=True)
    assert cfg.input_names() == ("image", "image_nn", "mask")
    with pytest.raises(ValueError, match="1 intensity channel"):
        segmentation.train(images, segs, cfg, masks=masks)
    res = segmentation.train(stacked, segs, cfg, masks=masks)
    assert res.model.config["in_channels"] == 3
    segmentation.save(res.model, tmp_path)
    back = segmentation.load(tmp_path)
    assert segmentation.intensity_names(back) == ("image", "image_nn")
    np.testing.assert_array_equal(segmentation.predict(back, stacked, masks), segmentation.predict(res.model, stacked, masks))
    # one subject: (C, D, H, W) intensities with a (D, H, W) mask
    one = segmentation.constrained_proba(back, stacked[0], masks[0])
    assert one.shape == (4,) + segs.shape[1:]


@pytest.mark.slow
def test_model_saved_before_inputs_were_recorded(tmp_path):
    """A segmenter.json without "inputs" (earlier models: image + mask) still loads and predicts."""
    import json

    images, masks, segs = _toy(n=1)
    cfg = segmentation.TrainConfig(base_width=2, depth=2, epochs=1, batch_size=1, crop=None, seed=0, mask_channel=True)
    res = segmentation.train(images, segs, cfg, masks=masks)
    segmentation.save(res.model, tmp_path)
    meta = json.loads((tmp_path / "segmenter.json").read_text())
    assert meta.pop("inputs") == ["image", "mask"]
    (tmp_path / "segmenter.json").write_text(json.dumps(meta))
    back = segmentation.load(tmp_path)
    assert segmentation.input_names(back) == ("image", "mask")
    np.testing.assert_array_equal(segmentation.predict(back, images, masks), segmentation.predict(res.model, images, masks))


@pytest.mark.slow
def test_a_wall_time_cap_that_cuts_training_short_is_reported():
    images, masks, segs = _toy(n=2, size=16)
    full = segmentation.train(images, segs, segmentation.TrainConfig(base_width=2, depth=2, epochs=2, batch_size=2, crop=None))
    assert len(full.history) == 2 and not full.time_capped
    capped = segmentation.train(images, segs, segmentation.TrainConfig(base_width=2, depth=2, epochs=3, batch_size=2, crop=None,
                                                                       time_budget_s=1e-9))
    assert len(capped.history) == 1 and capped.time_capped


@pytest.mark.slow
def test_bfloat16_autocast_trains_and_keeps_float32_weights():
    """bfloat16 (what auto picks on a CPU with native bfloat16; emulated, slowly, elsewhere) trains the
    same network with float32 weights and float32 predictions."""
    import torch

    images, masks, segs = _toy(n=2, size=16)
    cfg = segmentation.TrainConfig(base_width=2, depth=2, epochs=2, batch_size=2, crop=None, precision="bfloat16")
    result = segmentation.train(images, segs, cfg)
    assert all(p.dtype == torch.float32 for p in result.model.parameters())
    proba = segmentation.predict_proba(result.model, images)
    assert proba.dtype == np.float32 and np.isfinite(proba).all() and np.allclose(proba.sum(1), 1.0, atol=1e-5)
    assert np.isfinite([h["loss"] for h in result.history]).all()
    with pytest.raises(ValueError, match="resolve 'auto' first"):
        segmentation.train(images, segs, dataclasses.replace(cfg, precision="auto"))


def test_floor_stops_a_segmenter_below_it():
    from fetal_lib.brain_age import pipeline
    from fetal_lib.training.floor import BelowFloorError

    good = {"CSF": 0.85, "GM": 0.94, "WM": 0.96}
    assert pipeline.check_floor(good, False, "segmenter") == pytest.approx({"dice_csf": 0.85, "dice_gm": 0.94, "dice_wm": 0.96, "dice_mean": 0.9166667})
    with pytest.raises(BelowFloorError, match=r"dice_csf = 0\.6 \(needs dice_csf >= 0\.75\)"):
        pipeline.check_floor({**good, "CSF": 0.6}, False, "segmenter")
    pipeline.check_floor({**good, "CSF": 0.6}, True, "segmenter")  # the phantom has its own, lower floor
    untrained = {"CSF": 0.277, "GM": 0.0, "WM": 0.0}  # what one epoch on the phantom gives
    with pytest.raises(BelowFloorError, match="dice_mean"):
        pipeline.check_floor(untrained, True, "segmenter")


def test_seg_train_config_resolves_precision_from_the_cpu_flags():
    from fetal_lib.brain_age import pipeline

    settings = {"seg_base_width": 4, "seg_depth": 3, "seg_epochs": 5, "seg_batch_size": 2, "seg_crop": 0, "seg_nn_channel": True,
                "seg_mask_channel": True, "seg_loss": "ce_dice", "seg_val_every": 1, "seg_time_budget_s": 0, "seg_precision": "auto"}
    assert pipeline.seg_train_config(settings, flags=["avx2"]).precision == "float32"
    cfg = pipeline.seg_train_config(settings, flags=["avx2", "amx_bf16"])
    assert cfg.precision == "bfloat16" and cfg.crop is None and cfg.time_budget_s is None and cfg.epochs == 5


def test_mirror_tta_is_left_right_equivariant_and_saved_for_predict(tmp_path):
    import torch

    from fetal_lib.networks.torch import create

    torch.manual_seed(0)
    images, masks, _segs = _toy(n=2)
    model = create("resunet3d", in_channels=2, base_width=2, depth=2)
    model.input_names = ("image", "mask")
    mirrored = np.ascontiguousarray(images[..., ::-1])
    mirrored_masks = np.ascontiguousarray(masks[..., ::-1])
    plain = segmentation.constrained_proba(model, images, masks)
    tta = segmentation.constrained_proba(model, images, masks, tta=True)
    # the mean over a volume and its mirror, mirrored: TTA of the mirrored volume is the mirror of TTA
    np.testing.assert_allclose(segmentation.constrained_proba(model, mirrored, mirrored_masks, tta=True)[..., ::-1], tta, atol=1e-5)
    np.testing.assert_allclose(tta, 0.5 * (plain + segmentation.constrained_proba(model, mirrored, mirrored_masks)[..., ::-1]), atol=1e-5)
    assert not np.allclose(plain, tta)  # an untrained network is not symmetric
    np.testing.assert_allclose(tta.sum(axis=1), 1.0, atol=1e-5)
    segmentation.save(model, tmp_path, extra={"features": "hard", "tta": "hflip"})
    import json

    assert json.loads((tmp_path / "segmenter.json").read_text())["tta"] == "hflip"
    from fetal_lib.brain_age import regression

    rng = np.random.default_rng(0)
    regression.save(regression.fit_deployable("linear", rng.uniform(20, 80, 12), rng.normal(500, 50, (12, 3))), tmp_path)
    assert load_predictor(tmp_path).tta
    segmentation.save(model, tmp_path, extra={"features": "hard"})  # a model saved before TTA existed: none
    assert not load_predictor(tmp_path).tta
