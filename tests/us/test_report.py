"""Chapter 3's sentences say what was run."""

from __future__ import annotations

from fetal_lib.us import report


def test_the_xception_sentence_names_its_size_and_its_weights() -> None:
    full = report.xception_sentence({}, None)
    assert "full network" in full and "random initialisation" in full
    reduced = report.xception_sentence({"width": 0.5, "middle_blocks": 4}, None)
    assert "0.5 times as wide" in reduced and "1024 channels instead of 2048" in reduced and "4 middle-flow blocks" in reduced
    half = report.xception_sentence({"width": 0.5}, None)
    assert "0.5 times as wide" in half and "all 8 middle-flow blocks" in half
    shallow = report.xception_sentence({"middle_blocks": 4}, None)
    assert "times as wide" not in shallow and "4 middle-flow blocks instead of 8" in shallow
    assert "ImageNet weights from `w.h5`" in report.xception_sentence({}, "w.h5")
