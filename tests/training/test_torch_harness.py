"""The torch harness on a tiny regression: it learns, keeps the best or last epoch, honours
the cap, runs bfloat16 autocast with float32 weights, and logs scored epochs."""

from __future__ import annotations

import pytest
import torch

from fetal_lib.training.config import TrainConfig
from fetal_lib.training.torch import configure, fit, select_device


def _problem():
    configure(threads=1, seed=0)
    x = torch.randn(64, 3)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
    model = torch.nn.Linear(3, 1)

    def epoch_batches(epoch: int):
        for i in range(0, 64, 16):
            yield x[i : i + 16], y[i : i + 16]

    return model, epoch_batches, x, y


@pytest.mark.slow
def test_fit_learns_and_logs_scored_epochs() -> None:
    model, batches, x, y = _problem()
    lines: list[str] = []

    def validate(m):
        with torch.no_grad():
            return {"val_neg_mse": -float(torch.nn.functional.mse_loss(m(x), y))}

    result = fit(model, batches, 4, torch.nn.functional.mse_loss, TrainConfig(epochs=30, learning_rate=0.05, val_every=10, checkpoint="last"),
                 validate, log=lines.append)
    assert result.history[-1]["loss"] < 0.05 * result.history[0]["loss"]
    assert [row["epoch"] for row in result.history if "val_neg_mse" in row] == [10, 20, 30]
    assert len(lines) == 4 and lines[0].startswith("epoch=1 ")  # first, 10, 20, 30
    assert result.device == "cpu" and not result.model.training and result.best_epoch == 30


@pytest.mark.slow
def test_best_checkpoint_restores_the_best_scored_weights() -> None:
    model, batches, x, y = _problem()
    scores = iter([0.2, 0.9, 0.1])
    saved = []

    def validate(m):
        saved.append({k: v.clone() for k, v in m.state_dict().items()})
        return {"s": next(scores)}

    result = fit(model, batches, 4, torch.nn.functional.mse_loss, TrainConfig(epochs=3, learning_rate=0.05), validate, score=lambda r: r["s"])
    assert result.best_epoch == 2
    for k, v in result.model.state_dict().items():
        assert torch.equal(v, saved[1][k])


@pytest.mark.slow
def test_smoothed_checkpoint_restores_the_plateau_not_the_spike() -> None:
    model, batches, x, y = _problem()
    scores = iter([0.1, 0.9, 0.2, 0.6, 0.7, 0.65, 0.3])  # scored every 2nd epoch and after the last
    saved = {}

    def validate(m):
        saved[len(saved)] = {k: v.clone() for k, v in m.state_dict().items()}
        return {"s": next(scores)}

    result = fit(model, batches, 4, torch.nn.functional.mse_loss, TrainConfig(epochs=13, learning_rate=0.05, val_every=2, checkpoint="smoothed"),
                 validate, score=lambda r: r["s"])
    assert [row["epoch"] for row in result.history if "s" in row] == [2, 4, 6, 8, 10, 12, 13]
    assert result.best_epoch == 10  # the 5th scored epoch: mean of 0.6, 0.7, 0.65
    for k, v in result.model.state_dict().items():
        assert torch.equal(v, saved[4][k])


@pytest.mark.slow
def test_cap_ends_training_and_says_so() -> None:
    model, batches, _, _ = _problem()
    now = [0.0]

    def slow_batches(epoch):
        now[0] += 0.15  # each epoch takes 0.15 s by the injected clock
        yield from batches(epoch)

    result = fit(model, slow_batches, 4, torch.nn.functional.mse_loss, TrainConfig(epochs=100, time_budget_s=0.3), clock=lambda: now[0])
    assert result.time_capped and len(result.history) == 3  # 0.45 s > 0.3 s after the third epoch


@pytest.mark.slow
def test_bfloat16_autocast_keeps_float32_weights() -> None:
    model, batches, _, _ = _problem()
    result = fit(model, batches, 4, torch.nn.functional.mse_loss, TrainConfig(epochs=2, precision="bfloat16"))
    assert all(p.dtype == torch.float32 for p in result.model.parameters())


def test_select_device() -> None:
    assert select_device("cpu") == "cpu"
    assert select_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device must be"):
        select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            select_device("cuda")
