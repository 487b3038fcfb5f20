"""The one configuration type of the training harness (both frameworks).

A chapter's own training configuration (network size, loss, augmentation) stays in the
chapter's package and hands the harness this object (``loop_config()``): what every training
loop shares. Times in seconds, rates per optimiser step.
"""

from __future__ import annotations

from dataclasses import dataclass

from fetal_lib.training.checkpoint import check_mode

PRECISIONS = ("float32", "bfloat16")
SCHEDULES = ("cosine", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """What a training loop needs to know, whatever the network.

    ``lr_floor`` is where the cosine decay ends, as a fraction of ``learning_rate``
    (:mod:`fetal_lib.training.schedule`). ``precision`` ``"bfloat16"`` means Keras's
    ``mixed_bfloat16`` policy or torch's autocast, with float32 weights either way, and the
    saved model is float32. ``compile`` asks for XLA (Keras ``jit_compile``, float32 only)
    or ``torch.compile``. ``device`` ``"auto"`` takes a GPU when one is visible.
    ``checkpoint`` ``"best"`` keeps the weights of the epoch with the highest validation
    score; ``"last"`` keeps the final ones; ``"smoothed"`` the epoch whose validation score,
    averaged with its neighbouring scored epochs', is highest (:mod:`fetal_lib.training.checkpoint`).
    """

    epochs: int = 10
    batch_size: int = 8
    learning_rate: float = 1e-3
    lr_schedule: str = "cosine"
    lr_floor: float = 0.0
    time_budget_s: float | None = None  # optional wall-time cap; None or 0: off
    precision: str = "float32"
    compile: bool = False
    threads: int = 2
    seed: int = 0
    device: str = "auto"
    val_every: int = 1
    checkpoint: str = "best"

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)} (resolve 'auto' first), got {self.precision!r}")
        check_mode(self.checkpoint)
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(SCHEDULES)}, got {self.lr_schedule!r}")
        if not 0.0 <= self.lr_floor <= 1.0:
            raise ValueError(f"lr_floor is a fraction of the learning rate in [0, 1], got {self.lr_floor}")

    @property
    def cap_s(self) -> float | None:
        """The wall-time cap in seconds, or None when off."""
        return float(self.time_budget_s) if self.time_budget_s else None
