"""One compiled Keras network trained again and again from new starting weights, its training step traced once.

Tracing a model's training step (and TensorFlow's optimisation of the graph) takes seconds on 2 cores:
chapter 4's network spent 7-10 s of its first epoch on it, against about 2 s for a whole later epoch
(2026-11-29, the AVX-512 BF16 EPYC, float32), and the chapter trains that network 13 times. Each newly
built model pays it again. :class:`CompiledNetwork` keeps the compiled network of one recipe and restarts it
for the next training instead: every variable (the weights and the dropout's seed state) copied from a
newly built network, and the optimizer's variables put back to their values before the first step. A
training then computes, bit for bit, what a newly built and compiled network computes
(tests/training/test_keras_reuse.py), and the caller hands out a network of its own
(:func:`copy_variables` into the newly built one), never the one that the next training restarts.

TensorFlow only (:func:`reuses`): Keras on torch runs eagerly (nothing to trace), and draws an unseeded
dropout's masks from torch's global generator, which a network's first ``fit`` moves on by other draws than
its later ones do, so a restarted network would not repeat a new one's training there.
"""

from __future__ import annotations

from typing import Any, Callable, Hashable

import numpy as np

from fetal_lib.training import keras_backend


def reuses() -> bool:
    """Whether trainings restart a kept compiled network here: on TensorFlow (see the module docstring)."""
    return keras_backend.name() == "tensorflow"


def copy_variables(target, source) -> None:
    """Assign every variable of ``source`` (weights, seed states) to the same variable of ``target``: the same
    network, built alike.

    Raises:
        ValueError: the two networks' variables differ in number, name or shape.
    """
    targets, sources = list(target.variables), list(source.variables)
    if len(targets) != len(sources) or any(t.shape != s.shape or t.name != s.name for t, s in zip(targets, sources)):
        raise ValueError(f"cannot copy the variables of {source.name} into {target.name}: they are not the same network")
    for t, s in zip(targets, sources):
        t.assign(s)


class CompiledNetwork:
    """The last compiled network of a recipe (``key``), restarted for each training; see the module docstring.

    Use: :meth:`for_recipe` (builds and compiles on a new recipe: it draws random numbers, so seed afterwards), then
    seed and build the starting network as a training without reuse would, and :meth:`restart` from it: the random
    numbers drawn from the seed on are those of a training without reuse (Keras on torch draws the dropout's masks
    from torch's global generator, which a second build would move on).
    """

    def __init__(self) -> None:
        self.key: Hashable | None = None
        self.model: Any = None
        self.optimizer_start: list[np.ndarray] = []
        self.reused = 0  # trainings that reused the compiled network (for tests and timings)

    def for_recipe(self, key: Hashable, build_compiled: Callable[[], Any]):
        """The compiled network of ``key``: the kept one, else ``build_compiled()`` (the kept one is dropped).
        It belongs to this object: :meth:`restart` it before each training, and hand out copies only."""
        if key != self.key or self.model is None:
            self.model, self.key = None, None
            model = build_compiled()
            model.optimizer.build(model.trainable_variables)  # what fit builds before its first step
            self.optimizer_start = [np.array(keras_backend.to_numpy(v)) for v in model.optimizer.variables]
            self.model, self.key = model, key
        else:
            self.reused += 1
        return self.model

    def restart(self, fresh):
        """The kept network starting as ``fresh`` (a newly built network of the recipe): its variables copied, the
        optimizer's put back to their values before the first step. Returns the kept network."""
        if self.model is None:
            raise RuntimeError("no compiled network: call for_recipe first")
        copy_variables(self.model, fresh)
        for variable, value in zip(self.model.optimizer.variables, self.optimizer_start):
            variable.assign(value)
        return self.model

    def clear(self) -> None:
        """Drop the kept network (the next training builds and compiles anew); the count of reuses restarts."""
        self.key, self.model, self.optimizer_start, self.reused = None, None, [], 0
