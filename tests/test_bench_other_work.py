"""The other-work probe (``fetal bench other-work``): what ``fetal doctor`` scales a reference run's
work other than training by."""

from __future__ import annotations

import json
import os

import pytest

from fetal_lib.bench import other_work
from fetal_lib.cli import main


def test_the_probe_times_each_part_of_the_other_work():
    parts = other_work.probe_parts(repeats=2)
    assert set(parts) == {"image_io", "postprocess", "distances", "linear_algebra", "network_forward"}
    assert all(0 < s < 10 for s in parts.values())


def test_the_probe_measures_work_not_a_constant(monkeypatch):
    # the same probe with each part doing its work twice over takes longer: the figure follows the work
    once = other_work.probe_seconds(repeats=3)
    real = other_work._median_seconds

    def twice(fn, repeats):
        return real(lambda: (fn(), fn()), repeats)

    monkeypatch.setattr(other_work, "_median_seconds", twice)
    assert other_work.probe_seconds(repeats=3) > 1.3 * once


def test_the_probe_restores_torchs_thread_count():
    import torch

    before = torch.get_num_threads()
    other_work.probe_parts(repeats=1)
    assert torch.get_num_threads() == before


def test_the_synthetic_head_is_the_ellipse_the_postprocessing_fits():
    import cv2
    import numpy as np

    image, mask = other_work._synthetic_image(np.random.default_rng(0))
    assert image.shape == mask.shape == other_work.IMAGE_SHAPE and image.dtype == np.uint8
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    (cx, cy), axes, _ = cv2.fitEllipse(max(contours, key=len))
    assert (cx, cy) == pytest.approx((400, 270), abs=1) and sorted(axes) == pytest.approx([320, 440], abs=2)


def test_bench_other_work_prints_json_and_text(capsys):
    assert main(["bench", "other-work", "--repeats", "1", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["total_ms"] == pytest.approx(sum(doc["parts_ms"].values()), abs=0.05) and doc["threads"] >= 1
    assert main(["bench", "other-work", "--repeats", "1"]) == 0
    assert "other-work probe:" in capsys.readouterr().out


def test_bench_other_work_refuses_zero_repeats(capsys):
    assert main(["bench", "other-work", "--repeats", "0"]) == 2
    assert "--repeats must be at least 1" in capsys.readouterr().err
