"""HC18 head-circumference pipeline: U-Net training, post-processing, measurement (its letterbox and
augmentation are shared: :mod:`fetal_lib.transforms`).

Importing this package (or ``fetal_lib.bench.hc``) never imports Keras or its backend; the modules
that train or run the network import Keras inside their functions.
"""
