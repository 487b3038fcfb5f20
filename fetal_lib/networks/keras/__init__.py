"""Keras 3 architectures, one file each (TensorFlow/Keras are imported lazily, by those files only).

``create(name, **options)`` builds an uncompiled ``keras.Model`` by registry name; ``names()``
lists them. Chapters 3-4 add their classifiers and regressors here.
"""

from __future__ import annotations

from fetal_lib.networks.registry import Entry, Registry

_UNET = Entry("unet", "fetal_lib.networks.keras.unet:build_unet",
              "2-D U-Net with a sigmoid foreground map (chapter 1; block='source' keeps the source's bug)",
              example_options={"input_shape": (32, 32, 1), "filters": 4, "depth": 2},
              example_input_shape=(32, 32, 1), example_output_shape=(32, 32, 1), example_parameters=7637)

REGISTRY = Registry("keras", [_UNET])
names = REGISTRY.names  # registered architectures, sorted
create = REGISTRY.create  # create(name, /, **options): the factory's keyword arguments
