"""Chapter 2: the HC18 segmentation benchmark of five PyTorch architectures.

The networks live in :mod:`fetal_lib.networks.torch`; the split, the letterboxed input, the
post-processing and the head circumference come from :mod:`fetal_lib.hc`, so the benchmark and
chapter 1 measure the same thing on the same subjects. Here: augmentation and loss in torch
(:mod:`.augment`, :mod:`.losses`), how each network turns an image into a probability map
(:mod:`.predictor`), training one architecture (:mod:`.train`) and the whole benchmark
(:mod:`.pipeline`), and the chapter's tables (:mod:`.report`).
"""
