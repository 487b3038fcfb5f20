"""Letterboxed, cached input arrays, and the reader of users' images (every failure names the file)."""

from __future__ import annotations

import os
import struct
import zlib

import cv2
import numpy as np
import pytest

from fetal_lib.errors import FetalInputError
from fetal_lib.us.arrays import COLOUR_WARNING, load_arrays, read_for_classification, to_input
from fetal_lib.us.tasks import UsItem


def test_letterbox_keeps_aspect_and_pads_with_zeros(tmp_path):
    wide = np.full((20, 40), 255, np.uint8)  # 1:2 -> 16x32 inside a 32x32 input, 8 rows of padding above and below
    cv2.imwrite(str(tmp_path / "wide.png"), wide)
    x = load_arrays([UsItem(tmp_path / "wide.png", "a", "g")], (32, 32))
    assert x.shape == (1, 32, 32, 1) and x.dtype == np.float32
    assert np.all(x[0, :8] == 0) and np.all(x[0, 24:] == 0)
    assert np.allclose(x[0, 8:24], 1.0)
    np.testing.assert_array_equal(x[0, ..., 0], to_input(wide, (32, 32)))


def test_real_images_and_cache(real_dataset, tmp_path):
    images = sorted((real_dataset("fetal_planes") / "images").glob("*.jpg"))[:3]
    x = load_arrays(images, (48, 64), cache_dir=tmp_path)  # plain paths work too
    assert x.shape == (3, 48, 64, 1) and 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.5
    assert np.all(x[:, :, :8] == 0) and np.all(x[:, :, 56:] == 0)  # 640x640 -> 48x48 centred in 64 columns
    cached = list(tmp_path.glob("us_*.npy"))
    assert len(cached) == 1
    np.testing.assert_array_equal(load_arrays(images, (48, 64), cache_dir=tmp_path), x)
    load_arrays(images, (32, 32), cache_dir=tmp_path)  # another size: another key
    assert len(list(tmp_path.glob("us_*.npy"))) == 2


def test_cache_key_follows_the_files(tmp_path):
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), np.zeros((10, 10), np.uint8))
    first = load_arrays([path], (8, 8), cache_dir=tmp_path / "cache")
    cv2.imwrite(str(path), np.full((10, 10), 255, np.uint8))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    second = load_arrays([path], (8, 8), cache_dir=tmp_path / "cache")
    assert first.max() == 0 and second.min() == pytest.approx(1.0)  # the changed image is not served stale


def _png_without_end(path):
    data = cv2.imencode(".png", np.zeros((8, 8), np.uint8))[1].tobytes()
    path.write_bytes(data[:-12])  # IEND chunk cut off


@pytest.mark.parametrize("make,problem", [
    (lambda p: None, "file not found"),
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: p.write_text("hello, not an image"), "not a readable image"),
    (_png_without_end, "truncated PNG"),
    (lambda p: p.mkdir(), "is a folder"),
])
def test_bad_files_name_the_file(tmp_path, make, problem):
    path = tmp_path / "scan.png"
    make(path)
    with pytest.raises(FetalInputError) as err:
        read_for_classification(path)
    assert err.value.path == path and problem in err.value.problem
    assert str(err.value).startswith(str(path))


def test_zero_pixel_png_is_refused(tmp_path):
    """A PNG whose header says 0 x 0 pixels (hand-made: encoders refuse to write one)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    path = tmp_path / "zero.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 0, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    with pytest.raises(FetalInputError) as err:
        read_for_classification(path)
    assert err.value.path == path and "no pixels" in err.value.problem


def test_colour_is_converted_to_grey_and_noted(tmp_path):
    colour = np.zeros((10, 12, 3), np.uint8)
    colour[..., 2] = 200  # red in BGR
    cv2.imwrite(str(tmp_path / "doppler.png"), colour)
    warnings: list[str] = []
    grey = read_for_classification(tmp_path / "doppler.png", warnings)
    assert grey.shape == (10, 12) and grey.dtype == np.uint8
    assert int(grey[0, 0]) == int(round(0.299 * 200))  # luma of pure red
    assert warnings == [COLOUR_WARNING]
    cv2.imwrite(str(tmp_path / "grey_as_rgb.png"), np.full((10, 12, 3), 90, np.uint8))  # like the Roboflow JPEGs
    warnings = []
    assert int(read_for_classification(tmp_path / "grey_as_rgb.png", warnings)[0, 0]) == 90 and warnings == []
    bgra = np.dstack([np.full((6, 6, 3), 50, np.uint8), np.full((6, 6), 255, np.uint8)])
    cv2.imwrite(str(tmp_path / "alpha.png"), bgra)
    assert read_for_classification(tmp_path / "alpha.png").shape == (6, 6)


def test_sixteen_bit_is_scaled_to_uint8(tmp_path):
    cv2.imwrite(str(tmp_path / "deep.png"), (np.arange(64).reshape(8, 8) * 100).astype(np.uint16))
    image = read_for_classification(tmp_path / "deep.png")
    assert image.dtype == np.uint8 and image.min() == 0 and image.max() == 255
