"""Letterboxed arrays and targets from real HC18 records; training batches."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.keras_backends  # also run with KERAS_BACKEND=torch by `make test`

from fetal_lib.data import hc18
from fetal_lib.hc.dataset import load_arrays


@pytest.fixture(scope="module")
def records(real_dataset):
    recs = hc18.load(real_dataset("hc18"), "train")
    return [recs[0], recs[100], recs[400]]


def test_filled_and_outline_targets(records, tmp_path):
    x, y = load_arrays(records, (64, 96), "filled")
    assert x.shape == y.shape == (3, 64, 96, 1) and x.dtype == np.float32
    assert 0 <= x.min() and x.max() <= 1
    # filled target covers the head area: its mean matches the full-size mask's area fraction
    for i, rec in enumerate(records):
        full = hc18.load_mask(rec)
        inner = y[i, :, 1:95, 0]  # 800x540 -> 64x95 + 1 column of padding
        assert inner.mean() == pytest.approx(full.mean(), rel=0.05)
    _, yo = load_arrays(records, (64, 96), "outline")
    assert yo.max() == pytest.approx(2.0, abs=0.5)  # the source's 0/2 scaling
    assert (yo > 0).mean() < (y > 0.5).mean()  # an outline is thin, a head is not
    # cache: second call reads the same arrays back
    x1, y1 = load_arrays(records, (64, 96), "filled", cache_dir=tmp_path)
    x2, y2 = load_arrays(records, (64, 96), "filled", cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    xi, yi = load_arrays(records, (64, 96), None)
    assert yi is None and xi.shape == (3, 64, 96, 1)
    with pytest.raises(ValueError):
        load_arrays(records, (64, 96), "rings")


def test_mm_per_input_pixel_is_pixel_size_over_the_letterbox_scale(records):
    from fetal_lib.data.imaging import read_image_gray
    from fetal_lib.hc.dataset import mm_per_input_pixel

    got = mm_per_input_pixel(records, (128, 192))
    for value, rec in zip(got, records):
        rows, cols = read_image_gray(rec.image_path).shape[:2]
        scale = min(128 / rows, 192 / cols)  # the letterbox fits the image by its tighter side
        assert value == pytest.approx(rec.pixel_size_mm / scale, rel=1e-12)
        assert value > rec.pixel_size_mm  # the network sees fewer, coarser pixels


def test_training_batches_yield_each_image_with_its_weight():
    from fetal_lib.hc.dataset import training_batches

    n = 12
    x = np.arange(n, dtype=np.float32)[:, None, None, None] * np.ones((1, 8, 8, 1), np.float32)
    weights = np.arange(n, dtype=np.float32) + 0.5
    seen = []
    for augment in (False, True):
        batches = training_batches(x, x.copy(), 4, seed=0, augment=augment, weights=weights)
        assert len(batches) == 3
        for xb, yb, wb in (batches[i] for i in range(len(batches))):
            assert xb.shape[0] == yb.shape[0] == wb.shape[0] == 4
            if not augment:  # without augmentation the image's value tells which image it is
                index = xb[:, 0, 0, 0].astype(int)
                np.testing.assert_allclose(wb, weights[index])
                seen.extend(index.tolist())
    assert sorted(seen) == list(range(n))  # shuffled, each image once per epoch
    with pytest.raises(ValueError, match="sample weights"):
        training_batches(x, x, 4, seed=0, weights=weights[:5])
