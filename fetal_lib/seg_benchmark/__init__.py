"""Chapter 2: the HC18 segmentation benchmark of five PyTorch architectures.

The networks live in :mod:`fetal_lib.networks.torch`; the split, the letterboxed input, the
post-processing and the head circumference come from :mod:`fetal_lib.hc`, so the benchmark and
chapter 1 measure the same thing on the same subjects. Here: augmentation and loss in torch
(:mod:`.augment`, :mod:`.losses`), training one architecture (:mod:`.train`; how each network
turns an image into a probability map is :mod:`fetal_lib.torch_segmenter`), the whole benchmark
(:mod:`.pipeline`), the chapter's tables (:mod:`.report`) and its set-up in one call (:mod:`.chapter`).
"""
