"""Chapter 3: fetal ultrasound classification with a plain CNN, a separable-convolution CNN and Xception (Keras 3).

Modules:

* ``tasks``: the classification tasks (which images, which labels) of the chapter's data sets.
* ``arrays``: images read, resized to the network input and cached as arrays, with their labels.
* ``train``: :class:`~fetal_lib.us.train.UsTrainConfig` and training through the shared Keras
  harness (augmentation, balanced class weights, the epoch kept by validation balanced accuracy
  smoothed over neighbouring epochs).
* ``calibration``: temperature scaling of the logits (Guo et al. 2017), fitted on the validation split.
* ``efficiency``: parameters, FLOPs, inference and training speed of the three networks.
* ``classifier``: a trained network with its temperature and classes, saved and loaded as one.
* ``pipeline``: the chapter's runs end to end, from a profile.
* ``chapter``: the chapter's set-up in one call (:func:`~fetal_lib.us.chapter.start`).
* ``cross_validation``: grouped K-fold CV of the training side (``fetal us cv``), shown beside the
  validation choice for comparison.
* ``report``: the chapter's tables and figures.

The networks themselves are registered in :mod:`fetal_lib.networks.keras` (``plain_cnn``,
``separable_cnn``, ``xception``); they return logits.
"""
