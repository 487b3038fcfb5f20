"""What a Grad-CAM explains (the scalar whose gradient weighs the layer's channels), and what
both frameworks' ``gradcam`` share.

Both frameworks' ``gradcam(model, layer, inputs, target, normalise)`` take a :class:`Target`
(or just its kind as a string) and, with ``normalise``, scale each map to [0, 1] by its
maximum (an all-zero map stays zero).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Kind = Literal["class", "segmentation", "regression"]
TARGETS: tuple[str, ...] = ("class", "segmentation", "regression")

DESCRIPTIONS = {
    "class": "the score of one class before softmax (default: the predicted class of each input)",
    "segmentation": "the logit summed over the pixels of the predicted mask (one class for multi-class outputs)",
    "regression": "the regression output (one column for multi-output models)",
}


@dataclass(frozen=True)
class Target:
    """What to explain.

    ``kind``: "class", "segmentation" or "regression" (:data:`DESCRIPTIONS`); ``class_index``:
    the class (default for "class": each input's predicted class; required for a multi-class
    segmentation) or the regression output column; ``threshold``: probability above which a
    pixel is in a sigmoid segmentation's mask.
    """

    kind: Kind = "class"
    class_index: int | None = None
    threshold: float = 0.5


def as_target(target: "Target | str") -> Target:
    """A :class:`Target` from itself or from its kind."""
    return target if isinstance(target, Target) else Target(str(target))


def check(target: str, class_index: int | None, n_outputs: int) -> None:
    """Refuse a target the model's output cannot give, with a message that says why.

    Args:
        target: one of :data:`TARGETS`.
        class_index: the class (classification, multi-class segmentation) or output column.
        n_outputs: number of output channels or classes of the model.

    Raises:
        ValueError: unknown target, or a class index the output does not have, or a
            multi-class segmentation without a class index.
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}; got {target!r}")
    if class_index is not None and not 0 <= class_index < n_outputs:
        raise ValueError(f"class_index {class_index} is out of range: the model has {n_outputs} output(s)")
    if target == "segmentation" and n_outputs > 1 and class_index is None:
        raise ValueError(f"a segmentation with {n_outputs} classes needs class_index (which class's mask to explain)")


def scale_per_map(maps: np.ndarray) -> np.ndarray:
    """Each map (axis 0) divided by its maximum, as float32; an all-zero map stays zero."""
    maps = np.asarray(maps, dtype=np.float32)
    peak = maps.reshape(maps.shape[0], -1).max(axis=1)
    scale = np.where(peak > 0, peak, 1.0).reshape((-1,) + (1,) * (maps.ndim - 1))
    return (maps / scale).astype(np.float32)
