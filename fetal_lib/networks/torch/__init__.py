"""PyTorch architectures in plain torch (no torchvision/timm).

``create(name, **options)`` builds one by name, ``names()`` lists them.
"""

from __future__ import annotations

from fetal_lib.networks.registry import Entry, Registry

REGISTRY = Registry(
    "torch",
    [
        Entry(
            "resunet3d",
            "fetal_lib.networks.torch.resunet3d:create",
            "3-D Res-U-Net returning per-voxel class logits (chapter 5: background, CSF, GM, WM)",
            example_options={"in_channels": 1, "num_classes": 4, "base_width": 2, "depth": 3},
            example_input_shape=(1, 16, 16, 16),
            example_output_shape=(4, 16, 16, 16),
            example_parameters=5776,
        ),
    ],
)


names = REGISTRY.names  # registered architectures, sorted
create = REGISTRY.create  # create(name, /, **options): build one (its factory's keyword arguments)
