"""One task's network started from another task's trained network of the same architecture (issue 50).

Brain sub-planes have about 250 training images; the planes task (fetal abdomen, brain, femur, thorax)
has three times as many from the same machines, brain planes among them. The ``task_init`` knob
starts a task's networks from the source task's trained ones: every layer's weights are copied
where the two networks agree in shape, and the classifier (another class count) keeps its fresh
initialisation. The source network must never have trained on the target's validation or test
patients: the chapter aligns the two tasks' patient splits (``task_split_from``,
:func:`fetal_lib.us.tasks.align_split`), and ``fetal us cv`` trains a source network per fold
without the fold's held-out and validation patients.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TransferReport:
    """What :func:`transfer_weights` did: the layers whose weights were copied, and those left as built."""

    copied: tuple[str, ...]
    kept: tuple[str, ...]  # layers with weights whose shapes differ (the classifier)

    def describe(self) -> str:
        return f"{len(self.copied)} layers copied, {len(self.kept)} kept as built ({', '.join(self.kept) or 'none'})"


def transfer_weights(source, target) -> TransferReport:
    """Copy ``source``'s weights into ``target`` layer by layer, in order, where every weight's shape agrees.

    Both are Keras models of one architecture built for different class counts; a layer whose weights
    differ in shape (the classifier) keeps ``target``'s.

    Raises:
        ValueError: the two are not the same architecture (layer count or layer types differ, or a layer
            other than the classifier differs in its weights' shapes).
    """
    src_layers, dst_layers = list(source.layers), list(target.layers)
    if len(src_layers) != len(dst_layers):
        raise ValueError(f"cannot start {target.name} from {source.name}: {len(dst_layers)} layers against {len(src_layers)} "
                         "(not the same architecture)")
    copied, kept = [], []
    for src, dst in zip(src_layers, dst_layers):
        if type(src) is not type(dst):
            raise ValueError(f"cannot start {target.name} from {source.name}: layer {dst.name} is a {type(dst).__name__}, "
                             f"the source's {src.name} a {type(src).__name__} (not the same architecture)")
        weights, current = src.get_weights(), dst.get_weights()
        if not current:
            continue
        if len(weights) == len(current) and all(w.shape == c.shape for w, c in zip(weights, current)):
            dst.set_weights(weights)
            copied.append(dst.name)
        else:
            kept.append(dst.name)
    weighted = [layer.name for layer in dst_layers if layer.get_weights()]
    if not copied or kept not in ([], weighted[-1:]):
        raise ValueError(f"cannot start {target.name} from {source.name}: the weights of {', '.join(kept) or 'every layer'} differ in "
                         "shape (only the classifier, the last layer with weights, may)")
    return TransferReport(tuple(copied), tuple(kept))
