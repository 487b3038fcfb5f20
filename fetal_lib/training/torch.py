"""The PyTorch training harness: threads and seeds, the device (the rule of
:mod:`fetal_lib.devices`: the network moves to the run's device, every batch to the
network's), bfloat16 autocast, the cosine schedule, and an epoch loop with validation every few epochs, best- or last-epoch
checkpoint, optional wall-time cap, a tqdm line per epoch (and a line per epoch to ``$FETAL_EPOCH_LOG``: fetal_lib.training.progress), and a log line per scored epoch.

The chapter builds its network, gives one epoch of batches at a time (on the CPU or already on
the device) and its loss; the loop does the rest. The weights stay float32 (autocast computes in
bfloat16 only inside). The epoch's losses are summed on the device and read once an epoch, so a
GPU never waits for the host between steps.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from fetal_lib.training.checkpoint import CheckpointSelector
from fetal_lib.training.config import TrainConfig
from fetal_lib.training.progress import report_epoch
from fetal_lib.devices import autocast, prepare, to_network
from fetal_lib.devices import resolve_device
from fetal_lib.machine import thread_count
from fetal_lib.training.schedule import cosine_lr, training_progress


def configure(threads: int = 2, seed: int = 0) -> None:
    """Use ``threads`` CPU threads (at most the cores this process may use) and seed torch on every
    device (call before building the network)."""
    import torch

    torch.set_num_threads(thread_count(threads))
    torch.manual_seed(int(seed))


def select_device(requested: str = "auto") -> str:
    """The device a run trains on (:func:`fetal_lib.devices.resolve_device`)."""

    return resolve_device(requested)


@dataclass
class FitResult:
    """A trained network (eval mode) and what happened (seconds of wall time)."""

    model: Any
    history: list[dict] = field(default_factory=list)  # per epoch: epoch, loss, seconds, and the validation scores when scored
    seconds: float = 0.0
    time_capped: bool = False  # the wall-time cap ended training before config.epochs
    best_epoch: int = 0
    device: str = "cpu"


def fit(
    model,
    epoch_batches: Callable[[int], Iterable[tuple[Any, Any]]],
    batches_per_epoch: int,
    loss_fn: Callable[[Any, Any], Any],
    config: TrainConfig,
    validate: Callable[[Any], dict[str, float]] | None = None,
    score: Callable[[dict[str, float]], float] | None = None,
    desc: str = "epoch",
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> FitResult:
    """Train ``model`` with Adam for ``config.epochs`` epochs (or until the optional cap).

    Args:
        model: the network (moved to the selected device here).
        epoch_batches: ``epoch_batches(epoch)`` yields that epoch's ``(inputs, targets)`` tensors.
        batches_per_epoch: how many it yields (for the schedule and the progress bar).
        loss_fn: ``loss_fn(float32 outputs, targets)`` -> scalar tensor.
        config: the loop's settings (``checkpoint`` ``"best"`` or ``"smoothed"`` needs ``validate``
            and ``score``; smoothing is over the scored epochs, every ``val_every``).
        validate: scores of the model on validation data (e.g. Dice per tissue), computed every
            ``config.val_every`` epochs and after the last one; merged into the history rows.
        score: the one number (higher is better) a ``"best"`` or ``"smoothed"`` checkpoint is chosen by.
        log: called with a line for the first and last epochs and every scored epoch.
        clock: seconds for the cap and the timings (tests inject their own).
    """
    import torch


    device = select_device(config.device)
    prepare(device)
    model = model.to(device)
    training_model = torch.compile(model) if config.compile else model
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    total_steps = max(1, config.epochs * batches_per_epoch)
    keep_best = config.checkpoint in ("best", "smoothed") and validate is not None and score is not None
    selector = CheckpointSelector(config.checkpoint)
    step = 0
    history: list[dict] = []
    start = clock()
    for epoch in range(config.epochs):
        model.train()
        t0 = clock()
        batches: Iterable = epoch_batches(epoch)
        if progress:
            from tqdm.auto import tqdm

            batches = tqdm(batches, total=batches_per_epoch, desc=f"{desc} {epoch + 1}/{config.epochs}", leave=False)
        losses = []
        for inputs, targets in batches:
            inputs, targets = to_network((inputs, targets), model)
            optimiser.zero_grad()
            with autocast(device, config.precision):
                outputs = training_model(inputs)
            loss = loss_fn(outputs.float(), targets)
            loss.backward()
            optimiser.step()
            step += 1
            if config.lr_schedule == "cosine":
                progress_now = training_progress(step / total_steps, clock() - start, config.cap_s)
                for group in optimiser.param_groups:
                    group["lr"] = cosine_lr(config.learning_rate, progress_now, config.lr_floor)
            losses.append(loss.detach())
        mean_loss = float(torch.stack(losses).double().mean()) if losses else 0.0  # one read of the device an epoch
        row: dict = {"epoch": epoch + 1, "loss": mean_loss, "seconds": clock() - t0}
        out_of_time = config.cap_s is not None and clock() - start > config.cap_s
        last = out_of_time or epoch + 1 == config.epochs
        scored = validate is not None and (last or (epoch + 1) % max(1, config.val_every) == 0)
        if scored:
            row.update(validate(model))
            if keep_best:
                selector.offer(epoch + 1, score(row), lambda: copy.deepcopy(model.state_dict()))
        history.append(row)
        report_epoch(desc, epoch + 1, config.epochs, clock() - start,
                     **{k: v for k, v in row.items() if k not in ("epoch", "seconds")})
        if log is not None and (last or epoch == 0 or scored):
            log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        if out_of_time:
            break
    best_epoch, best_state = selector.finish()
    if keep_best and best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return FitResult(model=model, history=history, seconds=clock() - start, time_capped=len(history) < config.epochs,
                     best_epoch=int(best_epoch) if keep_best else len(history), device=device)
