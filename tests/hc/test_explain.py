"""HC18 Grad-CAM: maps come back in the image's own pixels; the cases shown are the right ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.keras_backends  # also run with KERAS_BACKEND=torch by `make test`

from fetal_lib.hc.explain import explained_cases, gradcam


def test_explained_cases_are_best_median_and_worst_with_missing_heads_worst() -> None:
    df = pd.DataFrame({"filename": [f"{i}.png" for i in range(9)],
                       "hc_abs_diff_mm": [5.0, 1.0, 3.0, np.nan, 2.0, 9.0, 0.5, 4.0, 7.0]})
    picks = explained_cases(df, n_worst=3)
    labels = {label: row["filename"] for label, row in picks}
    assert labels["best"] == "6.png"  # 0.5 mm
    assert labels["median"] == "2.png"  # 8 found, sorted 0.5 1 2 3 4 5 7 9: the lower median 3.0 mm
    assert labels["worst #1"] == "3.png"  # no head found
    assert [label for label, _ in picks] == ["best", "median", "worst #1", "worst #2", "worst #3"]


def test_gradcam_map_is_in_original_pixels() -> None:
    from fetal_lib.hc.measure import HCModel
    from fetal_lib.networks.keras import create

    model = HCModel(create("unet", input_shape=(32, 48, 1), filters=4, depth=2), {"threshold": 0.0})
    image = (np.random.default_rng(0).uniform(0, 255, (60, 75))).astype(np.uint8)
    heat = gradcam(model, image, layer="bottleneck_relu2")
    assert heat.shape == image.shape
    assert heat.min() >= 0.0 and heat.max() <= 1.0 and np.isfinite(heat).all()


def test_gradcam_names_a_missing_layer() -> None:
    from fetal_lib.hc.measure import HCModel
    from fetal_lib.networks.keras import create

    model = HCModel(create("unet", input_shape=(32, 32, 1), filters=4, depth=2))
    with pytest.raises(ValueError, match="no layer"):
        gradcam(model, np.zeros((32, 32), np.uint8), layer="nope")
