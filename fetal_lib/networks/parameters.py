"""The size of a network: its number of parameters, for a PyTorch module or a Keras model.

Duck-typed (nothing here imports torch or Keras): a Keras model answers ``count_params()``, a
torch module ``parameters()``.
"""

from __future__ import annotations

import math
from typing import Any


def count_parameters(model: Any, trainable_only: bool | None = None) -> int:
    """Number of weights of ``model``.

    ``trainable_only=None`` counts as each framework does: a torch module's trainable parameters
    (``requires_grad``), a Keras model's ``count_params()`` (every weight, batch-norm statistics
    included). ``True``: the trainable weights only; ``False``: all of them.
    """
    if hasattr(model, "count_params"):  # Keras (checked first: a Keras 3 model on torch is also a torch module)
        if trainable_only:
            return int(sum(math.prod(w.shape) for w in model.trainable_weights))
        return int(model.count_params())
    trainable = trainable_only is None or trainable_only
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable))
