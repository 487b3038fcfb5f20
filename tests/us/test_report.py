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


def test_the_validation_curves_mark_the_kept_epoch_on_each_models_curve() -> None:
    from types import SimpleNamespace

    import matplotlib

    matplotlib.use("Agg")
    import numpy as np

    from fetal_lib.training.checkpoint import smoothed_scores

    def fake(scores, kept):
        return SimpleNamespace(fit=SimpleNamespace(history={"val_balanced_accuracy": scores}, best_epoch=kept))

    runs = {("planes", "plain_cnn"): fake([0.2, 0.9, 0.4, 0.6], 3), ("planes", "xception"): fake([0.5, 0.7, 0.8, 0.8], 4),
            ("anomaly", "plain_cnn"): fake([0.6, 0.7], 2)}
    fig = report.validation_curves_figure(["planes", "anomaly"], runs)
    planes, anomaly = fig.axes
    assert [t.get_text() for t in planes.get_legend().get_texts()] == ["plain_cnn (kept: epoch 3)", "xception (kept: epoch 4)"]
    thin, thick, star = planes.lines[:3]
    np.testing.assert_allclose(thick.get_ydata(), smoothed_scores([0.2, 0.9, 0.4, 0.6]))
    assert list(star.get_xdata()) == [3] and list(star.get_ydata()) == [0.4]
    assert len(anomaly.lines) == 3 and anomaly.get_title() == "anomaly"
    fig.canvas.draw()
    ticks = [t for t in anomaly.get_xticks() if anomaly.get_xlim()[0] <= t <= anomaly.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)  # epochs, not 1.25, 1.5, ...


def test_the_inputs_sentence_says_which_task_starts_from_another():
    from fetal_lib.us import report as us_report

    text = us_report.inputs_sentence({"planes": {"head_crop": None, "input_rows": 128, "input_cols": 128},
                                      "brain_planes": {"head_crop": {"margin": 1.15, "size": 128, "align": False},
                                                       "input_rows": 128, "input_cols": 128, "split_from": "planes", "init_from": "planes"}})
    first, second = text.split("; ")
    assert "split as" not in first and "started from" not in first
    assert "split as planes splits its patients" in second and "started from planes's trained network" in second


def test_the_inputs_sentence_says_which_task_draws_its_images_class_balanced():
    from fetal_lib.us import report as us_report

    whole = {"head_crop": None, "input_rows": 128, "input_cols": 128}
    text = us_report.inputs_sentence({"planes": {**whole, "class_weight": "balanced"}, "anomaly": {**whole, "class_weight": "sampled"}})
    first, second = text.split("; ")
    assert "class-balanced" not in first and "drawn class-balanced with replacement" in second
