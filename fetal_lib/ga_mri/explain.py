"""Where chapter 4's regressor looks, per plane: its own attention maps and Grad-CAM.

* :func:`attention_maps`: the sigmoid maps of the network's attention modules (one per plane, the
  module's own output, in [0, 1], not normalised), upsampled to the slice size.
* :func:`gradcam_maps`: Grad-CAM (:func:`fetal_lib.explain.gradcam_keras.gradcam`, target
  ``"regression"``: the predicted age itself) of each plane's last convolution: where a feature
  pushes the predicted age UP. Scaled to [0, 1] per map.
"""

from __future__ import annotations

import numpy as np

from fetal_lib.networks.keras.vgg_attention import PLANES, attention_layer, gradcam_layer
from fetal_lib.explain.gradcam_keras import gradcam
from fetal_lib.training.keras_backend import to_numpy


def attention_maps(model, inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Plane -> (N, rows, cols) attention maps of ``model`` for ``inputs`` (one array per plane, PLANES order)."""
    import keras
    from keras import ops


    outputs = [model.get_layer(attention_layer(p)).output for p in PLANES]
    probe = keras.Model(model.inputs, outputs)
    maps = probe([np.asarray(a, np.float32) for a in inputs], training=False)
    size = (int(inputs[0].shape[1]), int(inputs[0].shape[2]))
    return {p: to_numpy(ops.image.resize(ops.cast(m, "float32"), size, interpolation="bilinear", antialias=False,
                                         data_format="channels_last"))[..., 0] for p, m in zip(PLANES, maps)}


def gradcam_maps(model, inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Plane -> (N, rows, cols) Grad-CAM of the predicted age at each plane's last convolution."""

    return {p: gradcam(model, gradcam_layer(p), [np.asarray(a, np.float32) for a in inputs], target="regression") for p in PLANES}


def held_out_maps(p1, samples, volumes, chosen, centre: int) -> dict:
    """The arguments of :func:`fetal_lib.ga_mri.report.explain_figure` for volumes ``chosen`` (indices):
    each volume's matched slices at offset index ``centre`` seen by the protocol-1 network that did NOT
    train on it (``p1``: :class:`fetal_lib.ga_mri.pipeline.ByVolume` run with ``keep_models``), its
    attention maps, Grad-CAM and predicted age (days)."""
    att_rows, cam_rows, inputs_rows, pred_rows = [], [], [], []
    for i in chosen:
        k = next(f for f, (_, te) in enumerate(p1.folds) if volumes[i].id in set(samples.group[te]))
        model = p1.run.models[k]
        x = [volumes[i].slices[p][centre][None, ..., None].astype(np.float32) for p in PLANES]
        att_rows.append(attention_maps(model, x))
        cam_rows.append(gradcam_maps(model, x))
        inputs_rows.append(x)
        pred_rows.append(float(model.predict(x, verbose=0).reshape(-1)[0]))

    def stack(parts):
        return {p: np.concatenate([d[p] for d in parts]) for p in PLANES}

    return {"names": [volumes[i].name for i in chosen],
            "inputs": [np.concatenate([x[j] for x in inputs_rows]) for j in range(len(PLANES))],
            "attention": stack(att_rows), "cams": stack(cam_rows), "predicted_days": pred_rows,
            "true_days": [volumes[i].ga_days for i in chosen]}
