"""Explanations of the brain-age pipeline: what the age regression weighs, where the segmenter looks.

* :func:`regression_weights`: the deployed regressor's coefficients in the units it reads: years per
  +1 SD of each volume, and per +0.1 of a block's tissue fraction (maps left unscaled,
  :class:`~fetal_lib.brain_age.regression.VolumeScaler`) or per +1 SD of it (a regressor that
  standardised every feature). For the tissue-map models they are laid back on
  the brain grid, one map per tissue (each feature is one tissue's fraction of a block of
  ``map_factor``^3 voxels); for the PCA variant the ridge weights are projected back through
  the components. Positive: more of that tissue there predicts an older brain.
* :func:`segmenter_gradcam`: Grad-CAM of the Res-U-Net for each tissue (the tissue's logit
  summed over the voxels it labels as that tissue) on one subject, at the last decoder block
  (full resolution). At the bottleneck the deployed segmenter's maps were empty for grey and
  white matter (a ReLU of negative channel sums; checked on a validation subject), so the
  default is the block whose features the output convolution reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from fetal_lib.brain_age.features import TISSUES
from fetal_lib.brain_age.regression import VolumeScaler
from fetal_lib.explain.targets import Target


@dataclass
class RegressionWeights:
    """Coefficients of a fitted brain-age regressor: years per +1 SD of each volume, years per ``map_unit`` of each block."""

    model: str
    volumes: dict[str, float]  # "csf_ml", "gm_ml", "wm_ml" -> years per SD of the volume
    maps: np.ndarray | None  # (3, d, h, w) years per map_unit of each block's tissue fraction; None for volume-only models
    map_unit: str = "+1 SD of the block's tissue fraction"


MAP_STEP = 0.1  # the map weights of an unscaled-maps regressor are shown per +0.1 of a block's tissue fraction


def regression_weights(regressor, grid_shape: Sequence[int]) -> RegressionWeights:
    """The linear weights of a deployed :class:`~fetal_lib.brain_age.regression.Regressor`.

    Args:
        regressor: a fitted regressor whose pipeline is a scaler (VolumeScaler or StandardScaler) [-> PCA] -> linear model.
        grid_shape: (D, H, W) voxels of the preprocessed grid the maps were pooled from.

    Raises:
        ValueError: the model is not linear in its standardised inputs (e.g. the cubic one).
    """
    steps = list(regressor.model.named_steps.values())
    linear = steps[-1]
    middle = steps[1:-1]
    if not hasattr(linear, "coef_") or any(type(s).__name__ not in ("PCA",) for s in middle):
        raise ValueError(f"model {regressor.name!r} is not linear in its standardised features; no weight map to show")
    weights = np.asarray(linear.coef_, dtype=float).ravel()
    for step in reversed(middle):  # PCA: back to the standardised feature space
        weights = weights @ step.components_
    volumes = dict(zip((f"{t}_ml" for t in TISSUES), weights[-3:].tolist()))
    maps, unit = None, RegressionWeights.map_unit
    if weights.size > 3:
        blocks = tuple(-(-int(s) // int(regressor.map_factor)) for s in grid_shape)
        expected = 3 * int(np.prod(blocks))
        if weights.size - 3 != expected:
            raise ValueError(f"the regressor has {weights.size - 3} map weights; a {tuple(grid_shape)} grid pooled by "
                             f"{regressor.map_factor} gives {expected}")
        maps = weights[:-3].reshape((3,) + blocks)
        if isinstance(steps[0], VolumeScaler):  # maps unscaled: years per unit fraction, shown per MAP_STEP
            maps, unit = maps * MAP_STEP, f"+{MAP_STEP:g} of the block's tissue fraction"
    return RegressionWeights(regressor.name, volumes, maps, unit)


def segmenter_gradcam(model, inputs: np.ndarray, layer=None, labels: Sequence[int] = (1, 2, 3)) -> np.ndarray:
    """Grad-CAM maps (len(labels), D, H, W) in [0, 1] of one subject, one per tissue label.

    Args:
        model: the trained Res-U-Net (``fetal_lib.networks.torch.resunet3d``).
        inputs: (C, D, H, W) network input of one subject (see ``segmentation.network_input``).
        layer: module explained (default: the last decoder block, at full resolution).
    """
    import torch

    from fetal_lib.explain.gradcam_torch import gradcam  # deferred: imports torch

    layer = layer if layer is not None else model.decoders[-1]
    x = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32)[None])
    return np.stack([gradcam(model, layer, x, Target("segmentation", class_index=int(k)))[0] for k in labels])
