"""fetal_lib.app.render: slices, overlays and montages, checked on arrays with known content."""

from __future__ import annotations

import numpy as np

from fetal_lib.app.render import (PANEL_ROWS, TISSUE_COLOURS, TITLE_ROWS, centre_of, grey_rgb, label_overlay, mid_slices, montage,
                                  to_uint8, volume_preview)


def test_to_uint8_scales_by_percentiles_and_keeps_uint8() -> None:
    a = np.linspace(0, 1000, 9999, dtype=np.float32).reshape(101, 99)
    g = to_uint8(a)
    assert g.dtype == np.uint8 and g.min() == 0 and g.max() == 255
    u = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert np.array_equal(to_uint8(u), u)
    assert not to_uint8(np.full((3, 3), 7.0)).any()
    assert to_uint8(np.full((2, 2), np.nan)).shape == (2, 2)


def test_mid_slices_orientation() -> None:
    v = np.zeros((4, 5, 6))
    v[3, :, :] = 1  # the top (highest z) slab
    s = mid_slices(v, (1, 2, 3))
    assert s["axial"].shape == (5, 6) and s["coronal"].shape == (4, 6) and s["sagittal"].shape == (4, 5)
    assert s["coronal"][0].all() and not s["coronal"][1:].any()  # z up: the top slab is the first row
    assert centre_of(v > 0) == (3, 2, 2) and centre_of(np.zeros((4, 6, 8))) == (2, 3, 4)


def test_label_overlay_colours_only_the_labels() -> None:
    grey = np.full((4, 4), 100, np.uint8)
    labels = np.zeros((4, 4), np.uint8)
    labels[0, 0], labels[1, 1] = 1, 3
    out = label_overlay(grey, labels, alpha=0.5)
    assert tuple(out[3, 3]) == (100, 100, 100)
    expected = np.round(0.5 * 100 + 0.5 * np.asarray(TISSUE_COLOURS[1], float))
    assert tuple(out[0, 0]) == tuple(expected.astype(int))


def test_montage_heights_and_titles() -> None:
    a = grey_rgb(np.zeros((10, 20), np.uint8))
    b = grey_rgb(np.zeros((20, 10), np.uint8))
    m = montage([(a, "a"), (b, "b")], rows=40, gap=3)
    assert m.shape == (40 + TITLE_ROWS, 80 + 3 + 20, 3)
    assert m[40:, :80].any()  # the title is written below the picture


def test_volume_preview_makes_voxels_square() -> None:
    v = np.random.default_rng(0).random((10, 20, 30)).astype(np.float32)
    iso = volume_preview(v, (1.0, 1.0, 1.0))
    aniso = volume_preview(v, (1.0, 1.0, 3.0))  # 3 mm slices: coronal and sagittal three times taller
    assert iso.shape[0] == aniso.shape[0] == PANEL_ROWS + TITLE_ROWS
    assert aniso.shape[1] < iso.shape[1]
