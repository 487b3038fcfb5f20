"""Which epoch's weights a training run keeps: the best validation score, the last epoch, or
the best validation score smoothed over neighbouring epochs.

``"smoothed"`` answers a small validation set's noise. On 82 validation images one image is
more than a point of accuracy, so the single best epoch is often a lucky one: a spike that the
epochs before and after it do not share (chapter 3's planes Xception peaked at 0.954 at epoch 9
of 20 and scored 0.88-0.92 at every later epoch). Smoothing scores each scored epoch by the mean
of its own score and its neighbours' (the previous and the next scored epoch; the first and the
last epochs have one neighbour), and keeps the weights of the epoch with the highest mean: a
plateau beats a spike. Ties go to the earliest epoch, as for ``"best"``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

CHECKPOINTS = ("best", "last", "smoothed")


def check_mode(mode: str) -> None:
    """Refuse a checkpoint rule that is not one of :data:`CHECKPOINTS`."""
    if mode not in CHECKPOINTS:
        raise ValueError(f"checkpoint must be one of {', '.join(CHECKPOINTS)}, got {mode!r}")


def smoothed_scores(scores: Sequence[float]) -> list[float]:
    """Each score averaged with its neighbours (window 3, centred; two at the ends; one alone)."""
    n = len(scores)
    out = []
    for i in range(n):
        window = scores[max(0, i - 1): min(n, i + 2)]
        out.append(float(sum(window) / len(window)))
    return out


def chosen_index(scores: Sequence[float], mode: str) -> int:
    """Index (0-based, among the scored epochs) that ``mode`` keeps; the first of equal scores."""
    check_mode(mode)
    if not scores:
        raise ValueError("no scored epoch to choose from")
    if mode == "last":
        return len(scores) - 1
    ranked = smoothed_scores(scores) if mode == "smoothed" else [float(s) for s in scores]
    return max(range(len(ranked)), key=lambda i: (ranked[i], -i))


class CheckpointSelector:
    """Keeps the weights :func:`chosen_index` would choose, while training runs.

    Call :meth:`offer` after every scored epoch with a ``snapshot`` function that copies the
    current weights (called only when they may be kept), then :meth:`finish`. ``"smoothed"``
    holds the newest epoch's copy until its next neighbour's score is known, so it keeps at most
    two copies of the weights at a time.
    """

    def __init__(self, mode: str) -> None:
        check_mode(mode)
        self.mode = mode
        self.scores: list[float] = []
        self._best: tuple[float, int, Any] = (-float("inf"), 0, None)  # (score it was chosen by, epoch, weights)
        self._pending: tuple[int, Any] | None = None  # smoothed: the newest epoch, its window not yet complete

    def _consider(self, score: float, epoch: int, weights: Any) -> None:
        if score > self._best[0]:
            self._best = (score, epoch, weights)

    def offer(self, epoch: int, score: float, snapshot: Callable[[], Any]) -> None:
        """Record a scored epoch (1-based ``epoch``; ``score`` higher is better)."""
        self.scores.append(float(score))
        if self.mode == "last":
            self._best = (float(score), int(epoch), snapshot())
        elif self.mode == "best":
            if float(score) > self._best[0]:
                self._best = (float(score), int(epoch), snapshot())
        else:
            if self._pending is not None:  # the previous epoch's window (before it if any, itself, this one) is complete
                window = self.scores[-3:]
                self._consider(sum(window) / len(window), *self._pending)
            self._pending = (int(epoch), snapshot())

    def finish(self) -> tuple[int, Any]:
        """The kept epoch (1-based; 0 if none was offered) and its weights (None if none)."""
        if self.mode == "smoothed" and self._pending is not None:
            window = self.scores[-2:]  # the last epoch and the one before it, if any
            self._consider(sum(window) / len(window), *self._pending)
            self._pending = None
        return self._best[1], self._best[2]
