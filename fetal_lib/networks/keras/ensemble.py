"""Several trained classifiers as one Keras network: the mean of their calibrated probabilities.

Chapter 3 trains three architectures per task; their ensemble (:mod:`fetal_lib.us.ensemble`) is
deployed as one network so that ``fetal us classify``, the app and the model card treat it like
any other classifier. Each member is built through the registry (its ``name`` and ``options``) and
named ``member<i>_<name>``; :class:`TemperedSoftmaxMean` turns each member's logits into
probabilities with the member's own temperature (fitted on validation), averages them, and returns
their logarithm, so the network still outputs logits: ``softmax`` of its output is the mean
probability (up to the 1e-12 floor), and a temperature fitted on top works as for one network.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import keras
from keras import ops

FLOOR = 1e-12  # the smallest mean probability whose logarithm is taken (log(0) would be -inf)


@keras.saving.register_keras_serializable(package="fetal_lib")
class TemperedSoftmaxMean(keras.layers.Layer):
    """``log(mean_i softmax(logits_i / T_i))`` of a list of (N, K) logits, in float32 (no weights)."""

    def __init__(self, temperatures: Sequence[float], **kwargs):
        super().__init__(**kwargs)
        self.temperatures = [float(t) for t in temperatures]
        if not self.temperatures or not all(t > 0 for t in self.temperatures):
            raise ValueError(f"temperatures must be positive numbers, one per member, got {temperatures}")

    def call(self, inputs):
        if len(inputs) != len(self.temperatures):
            raise ValueError(f"{len(inputs)} members' logits for {len(self.temperatures)} temperatures")
        probs = [ops.softmax(ops.cast(x, "float32") / t, axis=-1) for x, t in zip(inputs, self.temperatures)]
        return ops.log(ops.maximum(ops.mean(ops.stack(probs, axis=0), axis=0), FLOOR))

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self) -> dict:
        return {**super().get_config(), "temperatures": self.temperatures}


def member_name(index: int, arch: str) -> str:
    """The name of member ``index`` (an architecture's registry name) inside the ensemble."""
    return f"member{index}_{arch}"


def create(input_shape: tuple[int, int, int] = (128, 128, 1), num_classes: int = 2,
           members: Sequence[Mapping[str, Any]] = (), temperatures: Sequence[float] | None = None, name: str = "ensemble"):
    """Build the uncompiled ensemble returning log mean probabilities (usable as logits).

    Args:
        input_shape: (rows, cols, channels), shared by every member.
        num_classes: K, shared by every member.
        members: two or more ``{"name": registry name, "options": factory options}`` (input shape and
            class count are added); a member may itself be an ensemble (e.g. one architecture's seeds).
        temperatures: each member's temperature (default 1 each).

    Raises:
        ValueError: fewer than two members, or a temperature count that differs.
    """
    from fetal_lib.networks.keras import create as build

    members = [dict(m) for m in members]
    if len(members) < 2:
        raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
    temperatures = [1.0] * len(members) if temperatures is None else list(temperatures)
    if len(temperatures) != len(members):
        raise ValueError(f"{len(temperatures)} temperatures for {len(members)} members")
    image = keras.Input(tuple(input_shape), name="image")
    logits = [build(m["name"], **{**dict(m.get("options") or {}), "input_shape": tuple(input_shape), "num_classes": int(num_classes),
                                  "name": member_name(i, m["name"])})(image)
              for i, m in enumerate(members)]
    return keras.Model(image, TemperedSoftmaxMean(temperatures, name="mean_probability")(logits), name=name)


def copy_member_weights(ensemble, trained: Sequence[Any]) -> None:
    """Give member ``i`` of ``ensemble`` the weights of the trained network ``trained[i]`` (same architecture).

    Raises:
        ValueError: a count or a weight shape that differs.
    """
    nets = [layer for layer in ensemble.layers if isinstance(layer, keras.Model)]
    if len(nets) != len(trained):
        raise ValueError(f"the ensemble has {len(nets)} members, {len(trained)} trained networks given")
    for net, source in zip(nets, trained):
        net.set_weights(source.get_weights())
