"""The ultrasound classifiers' sanity floor (fetal_lib.us.floor), shared by chapter 3 and `fetal us train`."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from fetal_lib.training.floor import BelowFloorError
from fetal_lib.us import floor as us_floor
from fetal_lib.us.pipeline import ModelRun


def _run(task: str, y_val: np.ndarray, predicted: np.ndarray, k: int, arch: str = "plain_cnn") -> ModelRun:
    """A ModelRun whose validation logits predict ``predicted`` (a margin of 3 on the winning class)."""
    logits = np.zeros((len(y_val), k))
    logits[np.arange(len(y_val)), predicted] = 3.0
    empty = np.zeros((0, k))
    return ModelRun(task, arch, [f"c{i}" for i in range(k)], None, None, 1.7, np.asarray(y_val), logits,
                    np.zeros(0, int), empty, np.zeros(0), [], 0.0)


def test_the_floor_is_chance_plus_the_margin() -> None:
    assert us_floor.deployment_floor(3).bound == pytest.approx(1 / 3 + us_floor.FLOOR_MARGIN, abs=1e-6)
    assert us_floor.deployment_floor(2).describe() == "validation balanced accuracy >= 0.6"
    with pytest.raises(ValueError, match="at least 2 classes"):
        us_floor.deployment_floor(1)


def test_validation_balanced_accuracy_matches_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 60)
    predicted = np.where(rng.random(60) < 0.6, y, rng.integers(0, 4, 60))
    run = _run("planes", y, predicted, 4)
    assert us_floor.validation_balanced_accuracy(run) == pytest.approx(balanced_accuracy_score(y, predicted))


def test_check_deployable_passes_good_models_and_names_every_broken_one() -> None:
    y = np.array([0, 0, 1, 1, 2, 2])
    good = _run("planes", y, y, 3)
    chance = _run("brain_planes", y, np.zeros(6, int), 3, arch="xception")  # balanced accuracy 1/3
    ok = us_floor.check_deployable({"planes": good})
    assert ok["planes"]["value"] == pytest.approx(1.0) and ok["planes"]["floor"].startswith("validation balanced accuracy >=")
    with pytest.raises(BelowFloorError) as err:
        us_floor.check_deployable({"planes": good, "brain_planes": chance})
    message = str(err.value)
    assert "brain_planes (xception, 3 classes)" in message and "planes (plain_cnn" not in message
    assert "0.3333" in message and "NOT deployed" in message


def test_save_models_refuses_only_the_tasks_below_the_floor(tmp_path, monkeypatch) -> None:
    from fetal_lib.us import report

    monkeypatch.setenv("FETAL_BUILD_DIR", str(tmp_path))
    y = np.array([0, 1, 0, 1])
    runs = {("anomaly", "xception"): _run("anomaly", y, 1 - y, 2, arch="xception")}  # balanced accuracy 0
    saved, refused = report.save_models(runs, {"anomaly": "xception"}, {}, "cpu", {}, [])
    assert saved == {} and refused["anomaly"]["value"] == 0.0 and refused["anomaly"]["arch"] == "xception"
    assert "0.6" in refused["anomaly"]["floor"]
    assert not any(tmp_path.rglob("*.keras")) and not any(tmp_path.rglob("*.json"))


def test_deployment_rows_say_whether_each_model_clears_its_floor() -> None:
    y = np.array([0, 1, 2, 0, 1, 2])
    runs = {("planes", "xception"): _run("planes", y, y, 3), ("anomaly", "plain_cnn"): _run("anomaly", y[:4] % 2, np.zeros(4, int), 2)}
    rows = us_floor.deployment_rows({"planes": "xception", "anomaly": "plain_cnn"}, runs)
    assert [r["clears the floor"] for r in rows] == [True, False]
    assert rows[1]["validation balanced accuracy"] == pytest.approx(0.5)
