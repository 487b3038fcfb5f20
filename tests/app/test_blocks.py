"""fetal_lib.app.blocks: one tab per task, fixed elem_ids, one queue worker per tab; without models,
every tab says which command trains its model."""

from __future__ import annotations

import pytest

from fetal_lib.app.blocks import TABS, build_app, load_all
from fetal_lib.app.settings import QUEUE_SIZE, offline_environment
from fetal_lib.app.uploads import UploadFolder

INPUT_IDS = ("hc-image", "hc-pixel-size", "hc-submit", "hc-preview", "hc-result", "hc-ellipse", "hc-gradcam", "hc-card",
             "us-image", "us-task", "us-submit", "us-result", "us-probabilities", "us-gradcam", "us-card",
             "ga-volume", "ga-mask", "ga-submit", "ga-result", "ga-attention", "ga-card",
             "ba-image", "ba-mask", "ba-submit", "ba-result", "ba-segmentation", "ba-card")


@pytest.fixture()
def uploads(tmp_path, monkeypatch):
    for key in ("GRADIO_TEMP_DIR", "GRADIO_ANALYTICS_ENABLED", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(key, raising=False)
    folder = UploadFolder.create(tmp_path)
    for key, value in offline_environment(folder.root).items():
        monkeypatch.setenv(key, value)
    return folder


def _elem_ids(demo) -> list[str]:
    return [c.get("props", {}).get("elem_id") for c in demo.config["components"]]


def test_without_models_every_tab_says_what_trains_it(tmp_path, uploads) -> None:
    lines: list[str] = []
    slots = load_all(tmp_path / "no_models", log=lines.append)
    problems = " ".join(s.problem for tab in slots.values() for s in tab)
    assert not any(s.ready for tab in slots.values() for s in tab)
    for command in ("fetal hc train", "fetal book --profile cpu --only seg_benchmark", "fetal us train --task planes",
                    "fetal us train --task brain_planes", "fetal us train --task anomaly", "fetal us train --task anomaly_type",
                    "fetal book --profile cpu --only fetal_mri_ga",
                    "fetal book --profile cpu --only brain_age"):
        assert command in problems, command
    assert len(lines) == 8 and all("not available" in line for line in lines)
    ids = _elem_ids(build_app(slots, uploads, tmp_path / "no_models"))
    assert {"tab-hc", "tab-us", "tab-ga", "tab-brain_age", "hc-missing", "us-missing", "ga-missing", "ba-missing"} <= set(ids)
    assert "hc-image" not in ids


def test_the_page_with_every_model(slots, models_dir, uploads) -> None:
    demo = build_app(slots, uploads, models_dir)
    ids = _elem_ids(demo)
    assert set(INPUT_IDS) <= set(ids) and [i for i in ids if i and i.startswith("tab-")] == [f"tab-{k}" for k, _ in TABS]
    assert len([i for i in ids if i]) == len({i for i in ids if i})  # unique
    workers = {fn.api_name: (fn.concurrency_id, fn.concurrency_limit) for fn in demo.fns.values() if fn.queue}
    assert workers["measure"] == ("hc", 1) and workers["classify"] == ("us", 1)
    assert workers["gestational_age"] == ("ga", 1) and workers["brain_age"] == ("brain_age", 1)
    assert demo._queue.max_size == QUEUE_SIZE
    assert demo.config["analytics_enabled"] is False
