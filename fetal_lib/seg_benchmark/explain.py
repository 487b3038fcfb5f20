"""Grad-CAM of the chapter-2 networks (Captum's ``LayerGradCam`` through
:func:`fetal_lib.explain.gradcam_torch.gradcam`) on one HC18 image, in its original pixels.

The explained layer is each network's :meth:`gradcam_layer` (the last decoder block before the
1x1 head, or for MedSegDiff-V2 what its module names); the score, as in chapter 1, is the
logit summed over the pixels the network labels as head. The diffusion model has no logit of
its own: it is explained through :meth:`gradcam_view`, its one-step estimate of the clean mask
from a fixed noisy mask at a fixed step, as a function of the image.
"""

from __future__ import annotations

import numpy as np
from fetal_lib.explain.targets import Target
from fetal_lib.transforms.letterbox import letterbox, unletterbox


def explained_network(segmenter):
    """(module whose output is explained as logits, layer) of a :class:`TorchSegmenter`."""
    net = segmenter.net
    if segmenter.is_diffusion:
        return net.gradcam_view(segmenter.rows, segmenter.cols), net.gradcam_layer()
    return net, net.gradcam_layer()


def gradcam(hc_model, image: np.ndarray) -> np.ndarray:
    """Grad-CAM map in [0, 1] of one grey uint8 image in its original pixels (``hc_model``: an
    :class:`~fetal_lib.hc.measure.HCModel` around a :class:`TorchSegmenter`; threshold from it)."""
    from fetal_lib.explain.gradcam_torch import gradcam as torch_gradcam  # deferred: imports torch

    segmenter = hc_model.model
    x, geometry = letterbox(image, (segmenter.rows, segmenter.cols))
    module, layer = explained_network(segmenter)
    maps = torch_gradcam(module, layer, x[None, None].astype(np.float32), Target("segmentation", threshold=hc_model.threshold))
    return np.clip(unletterbox(maps[0], geometry), 0.0, 1.0)
