"""PyTorch architectures in plain torch (no torchvision, no timm), one file each.

``create(name, **options)`` builds a ``torch.nn.Module`` by registry name and ``names()`` lists
them; chapter 2 adds its five segmentation networks here.
"""

from __future__ import annotations

from fetal_lib.networks.registry import Entry, Registry

REGISTRY = Registry("torch", [
    Entry("resunet3d", "fetal_lib.networks.torch.resunet3d:create",
          "3-D Res-U-Net returning per-voxel class logits (chapter 5: background, CSF, GM, WM)",
          example_options={"in_channels": 1, "num_classes": 4, "base_width": 2, "depth": 3},
          example_input_shape=(1, 16, 16, 16), example_output_shape=(4, 16, 16, 16), example_parameters=5776),
])
names = REGISTRY.names
create = REGISTRY.create
