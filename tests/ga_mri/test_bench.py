"""`fetal bench ga` and the doctor's chapter-4 estimate: figures printed, the training-sample count right."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.keras_backends  # also run with KERAS_BACKEND=torch by `make test`

from fetal_lib.bench.ga_mri import training_samples_per_epoch_total


def test_the_chapter_trains_on_ten_samples_per_sample_per_epoch_with_five_folds() -> None:
    # protocols 1 and 3: 5 trainings on 4/5 of N each (4N each); protocol 2: N over its two trainings; deployed: N
    assert training_samples_per_epoch_total(31, 16, 5) == 10 * 31 * 16
    assert training_samples_per_epoch_total(10, 4, 2, families=1) == (2 + 0 + 1) * 40


@pytest.mark.slow
def test_bench_ga_prints_its_figures_on_the_smoke_profile(capsys) -> None:
    pytest.importorskip("keras")
    from fetal_lib.cli import main

    assert main(["bench", "ga", "--profile", "smoke", "--train-steps", "1", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["train_samples_per_s"] > 0 and out["inference_ms_per_sample"] > 0 and out["parameters"] > 0
    assert out["predicted_training_s"] > 0
    assert main(["bench", "ga", "--volumes", "0"]) == 2


def test_the_chapter_runs_thirteen_trainings_at_five_folds():
    from fetal_lib.bench.ga_mri import training_runs

    assert training_runs(5) == 13 and training_runs(3, families=1) == 8  # 5 + 5 folds, 2 families, the deployed model


def test_bench_training_reports_the_median_of_its_timed_epochs(monkeypatch):
    pytest.importorskip("keras")
    from fetal_lib.bench import ga_mri as bench
    from fetal_lib.ga_mri import pipeline

    clock = iter([0.0, 1.0, 10.0, 14.0, 20.0, 22.0, 30.0, 30.0])  # three timed epochs of 1, 4 and 2 s; then the predictions
    monkeypatch.setattr(bench.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(bench, "train_epoch", lambda model, batches, epoch=0: 0.0)
    config = pipeline.train_config(pipeline.profile_settings("smoke"))
    out = bench.bench_training(config, steps=2, repeats=3)
    assert out["train_samples_per_s"] == pytest.approx(2 * config.batch_size / 2.0)  # the median epoch, 2 s
    with pytest.raises(ValueError, match="at least 1"):
        bench.bench_training(config, steps=2, repeats=0)
