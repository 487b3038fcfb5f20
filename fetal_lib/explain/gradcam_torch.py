"""Grad-CAM for PyTorch networks, with Captum's ``LayerGradCam``.

Models return logits: (N, K) for classification, (N, K, *spatial) for segmentation (K = 1:
a sigmoid foreground; K > 1: softmax classes), (N,) or (N, K) for regression.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fetal_lib.explain import targets
from fetal_lib.devices import to_host, to_network


def _target_score(output: torch.Tensor, target: str, class_index: int | None, threshold: float) -> torch.Tensor:
    """One scalar per input whose gradient Grad-CAM follows."""
    n = output.shape[0]
    if target == "regression":
        return output.reshape(n, -1)[:, class_index or 0]
    # segmentation: the logit summed inside the predicted mask (the mask itself carries no gradient)
    if output.shape[1] == 1:
        logit = output[:, 0]
        mask = torch.sigmoid(logit) > threshold
    else:
        logit = output[:, class_index]
        mask = output.argmax(dim=1) == class_index
    return (logit * mask.detach()).reshape(n, -1).sum(dim=1)


def gradcam(model: nn.Module, layer: nn.Module, inputs: torch.Tensor | np.ndarray, target: targets.Target | str = "class", normalise: bool = True) -> np.ndarray:
    """Grad-CAM maps of ``layer`` for a batch, upsampled to the input size.

    Args:
        model: the network (put in eval mode for the computation, then restored).
        layer: the module whose output is explained (usually the last convolutional block).
        inputs: (N, C, *spatial) float batch, 2-D or 3-D (moved to the network's device; the maps come back on the CPU).
        target: a :class:`~fetal_lib.explain.targets.Target` or its kind; normalise: maps scaled to [0, 1].

    Returns:
        (N, *spatial) float32 array, non-negative (ReLU of the weighted channel sum).
    """
    from captum.attr import LayerGradCam


    target = targets.as_target(target)
    kind, class_index, threshold = target.kind, target.class_index, target.threshold
    x = torch.as_tensor(np.asarray(inputs) if not isinstance(inputs, torch.Tensor) else inputs, dtype=torch.float32)
    x = to_network(x, model)  # the device rule: the batch goes where the network is
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            probe = model(x[:1])
        n_outputs = int(probe.shape[1]) if probe.ndim > 1 else 1
        targets.check(kind, class_index, n_outputs)
        if kind == "class":
            forward = model
            if class_index is None:
                with torch.no_grad():
                    cam_target = model(x).argmax(dim=1).tolist()
            else:
                cam_target = [class_index] * x.shape[0]
        else:
            def forward(batch: torch.Tensor) -> torch.Tensor:
                return _target_score(model(batch), kind, class_index, threshold)

            cam_target = None
        attribution = LayerGradCam(forward, layer).attribute(x, target=cam_target, relu_attributions=True)
    finally:
        model.train(was_training)
    spatial = tuple(x.shape[2:])
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(spatial)]
    maps = F.interpolate(attribution.detach().float(), size=spatial, mode=mode, align_corners=False)[:, 0]
    maps = to_host(maps.clamp_min(0)).numpy().astype(np.float32)
    return targets.scale_per_map(maps) if normalise else maps
