"""HC18 head-circumference pipeline: preprocessing, U-Net training, post-processing, measurement.

Importing this package (or ``fetal_lib.bench.hc``) never imports Keras or its backend; the modules
that train or run the network import Keras inside their functions.
"""
