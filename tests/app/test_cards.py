"""fetal_lib.app.cards: name, data and date of every card the chapters write, and the disclaimer."""

from __future__ import annotations

import json
import os

from fetal_lib.app.cards import DISCLAIMER, NOT_RECORDED, provenance_markdown, read_summary, summarize

HC_CARD = {"name": "HC18 U-Net", "data": {"dataset": "HC18, CC BY 4.0", "source": "hc18: real data, complete at /d"},
           "provenance": {"created_utc": "2026-10-30T12:01:02+00:00"},
           "metrics": {"split": "test", "hc_abs_diff_mean_mm": 2.345678, "per_image": [1, 2], "ok": True}}


def test_a_chapter_card() -> None:
    s = summarize(HC_CARD, "/m/hc18_unet.keras")
    assert s.name == "HC18 U-Net" and s.date == "2026-10-30"
    assert s.data == "hc18: real data, complete at /d; HC18, CC BY 4.0"
    assert s.metrics == {"split": "test", "hc_abs_diff_mean_mm": 2.345678}  # lists and booleans are not test figures


def test_brain_age_card_data_status_and_regressor_figures() -> None:
    card = {"name": "Brain age", "data_status": "brain_age: real data", "provenance": {"created_utc": "2026-01-02T00:00:00"},
            "regressor": {"name": "maps_ridge", "n_train": 40, "cv_mae_years": 6.1}, "segmenter": {"val_dice": {"csf": 0.8}}}
    s = summarize(card, "/m/brain_age")
    assert (s.data, s.date) == ("brain_age: real data", "2026-01-02")
    assert s.metrics == {"cv_mae_years": 6.1, "val_dice csf": 0.8}


def test_no_card_gives_the_file_name_and_date(tmp_path) -> None:
    model = tmp_path / "m.keras"
    model.write_bytes(b"x")
    os.utime(model, (0, 86400 * 365))
    s = read_summary(model)
    assert s.name == "m.keras (no model card found)" and s.data == NOT_RECORDED
    assert s.date.startswith("1971-01-01 (file date")


def test_card_read_beside_the_model(tmp_path) -> None:
    (tmp_path / "us_planes.card.json").write_text(json.dumps({"name": "planes", "data": "FETAL_PLANES_DB"}))
    s = read_summary(tmp_path / "us_planes.keras")
    assert (s.name, s.data) == ("planes", "FETAL_PLANES_DB")


def test_markdown_carries_name_data_date_figures_and_the_disclaimer() -> None:
    md = provenance_markdown(summarize(HC_CARD, "/m/x.keras"), with_metrics=True)
    for text in ("HC18 U-Net", "HC18, CC BY 4.0", "2026-10-30", "hc_abs_diff_mean_mm 2.346", DISCLAIMER):
        assert text in md
    assert "not a medical device" in DISCLAIMER
