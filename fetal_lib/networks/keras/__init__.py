"""Keras 3 architectures (import TensorFlow/Keras lazily: only these modules do).

``create(name, **options)`` builds one by name, ``names()`` lists them.
"""

from __future__ import annotations

from fetal_lib.networks.registry import Entry, Registry

REGISTRY = Registry(
    "keras",
    [
        Entry(
            "unet",
            "fetal_lib.networks.keras.unet:build_unet",
            "2-D U-Net with a sigmoid foreground map (chapter 1; block='source' keeps the source's bug)",
            example_options={"input_shape": (32, 32, 1), "filters": 4, "depth": 2},
            example_input_shape=(32, 32, 1),
            example_output_shape=(32, 32, 1),
            example_parameters=7637,
        ),
    ],
)


names = REGISTRY.names  # registered architectures, sorted
create = REGISTRY.create  # create(name, /, **options): build one (its factory's keyword arguments)
