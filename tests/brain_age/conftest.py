"""A tiny trained model folder (segmenter + regressor) built once per session from real subjects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def build_tiny_model(root: Path, dest: Path, n_seg: int = 3, n_reg: int = 30) -> Path:
    """Train a 2-level Res-U-Net (image, nearest-neighbour image and mask channels) for two short epochs on ``n_seg`` image subjects and a ridge on
    ``n_reg`` regression subjects' reference segmentations; save both to ``dest``."""
    from fetal_lib.brain_age import dataset, features, pipeline, regression, segmentation

    subjects = dataset.load(root)
    img_subs = [s for s in subjects if s.image_path is not None][:n_seg]
    data = pipeline.prepare_images(img_subs)
    cfg = segmentation.TrainConfig(base_width=2, depth=2, epochs=2, batch_size=1, crop=32, seed=0, nn_channel=True, mask_channel=True, loss="ce_dice")
    model = segmentation.train(data.intensities(cfg.intensity_names()), data.segs, cfg, masks=data.masks).model
    segmentation.save(model, dest, extra={"preprocessing": {"spacing_mm": [3.0, 3.0, 3.0], "size": [64, 64, 64]}, "features": "soft"})
    reg_subs = [s for s in subjects if s.role == "regression"][:n_reg]
    segs, sp = pipeline.prepare_reference_segs(reg_subs)
    f = features.feature_matrix(segs, sp, 3)
    age = np.array([s.age_years for s in reg_subs])
    regression.save(regression.fit_deployable("maps_ridge", age, f["volumes"], f["maps"], 3), dest)
    return dest


@pytest.fixture(scope="session")
def tiny_model(real_dataset, tmp_path_factory) -> Path:
    root = real_dataset("brain_age")
    return build_tiny_model(root, tmp_path_factory.mktemp("brain_age_model"))
