"""Explanations: Grad-CAM for Keras and PyTorch networks, and heat-map overlays.

* :func:`fetal_lib.explain.gradcam_torch.gradcam` (Captum ``LayerGradCam``) and
  :func:`fetal_lib.explain.gradcam_keras.gradcam` (any Keras backend: the gradient from
  :mod:`fetal_lib.training.keras_backend`) take a model, the
  layer to explain and a batch of inputs, and return one map per input, upsampled to the
  input's size, non-negative, scaled to [0, 1] per input.
* Targets (:mod:`fetal_lib.explain.targets`): ``"class"`` (a class score, before softmax),
  ``"segmentation"`` (the logit summed inside the predicted mask) and ``"regression"``
  (the output itself).
* :func:`fetal_lib.explain.overlay.overlay` blends a map over a grey image.
"""
