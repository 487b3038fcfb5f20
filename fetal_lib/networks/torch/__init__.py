"""PyTorch architectures in plain torch (no torchvision, no timm), one file each.

``create(name, **options)`` builds a ``torch.nn.Module`` by registry name and ``names()`` lists
them; chapter 2's five 2-D head segmenters are registered
here too (``fetal_lib.torch_segmenter.SEGMENTERS``).
"""

from __future__ import annotations

from fetal_lib.networks.registry import Entry, Registry

REGISTRY = Registry("torch", [
    Entry("resunet3d", "fetal_lib.networks.torch.resunet3d:create",
          "3-D Res-U-Net returning per-voxel class logits (chapter 5: background, CSF, GM, WM)",
          example_options={"in_channels": 1, "num_classes": 4, "base_width": 2, "depth": 3},
          example_input_shape=(1, 16, 16, 16), example_output_shape=(4, 16, 16, 16), example_parameters=5776),
    Entry("attention_unet", "fetal_lib.networks.torch.attention_unet:create",
          "2-D Attention U-Net (Oktay 2018): U-Net with additive attention gates on the skips, per-pixel logits",
          example_options={"base_width": 2, "depth": 3},
          example_input_shape=(1, 32, 48), example_output_shape=(1, 32, 48), example_parameters=2005),
    Entry("unext", "fetal_lib.networks.torch.unext:create",
          "2-D UNeXt (Valanarasu 2022): 3 conv stages + 2 tokenised shifted-MLP stages, additive skips, per-pixel logits",
          example_options={"widths": [4, 8, 8, 16, 16]},
          example_input_shape=(1, 64, 96), example_output_shape=(1, 64, 96), example_parameters=11653),
    Entry("transunet", "fetal_lib.networks.torch.transunet:create",
          "2-D TransUNet (Chen 2021): residual CNN to 1/16, Transformer on the 1/16 tokens, cascaded upsampler with skips, "
          "per-pixel logits",
          example_options={"img_size": (32, 48), "encoder_widths": (4, 8, 8, 16), "hidden_size": 16, "num_layers": 1, "num_heads": 2,
                           "mlp_dim": 32, "head_width": 16, "decoder_widths": (8, 8, 4, 4)},
          example_input_shape=(1, 32, 48), example_output_shape=(1, 32, 48), example_parameters=16049),
    Entry("ducknet", "fetal_lib.networks.torch.ducknet:create",
          "2-D DUCK-Net (Dumitru 2023): DUCK blocks of six parallel branches, strided-conv second down-sampling path added "
          "per level, per-pixel logits",
          example_options={"starting_filters": 2, "depth": 3},
          example_input_shape=(1, 32, 48), example_output_shape=(1, 32, 48), example_parameters=35807),
    Entry("medsegdiff_v2", "fetal_lib.networks.torch.medsegdiff:create",
          "MedSegDiff-V2 (Wu 2024) conditional diffusion segmenter: predicts the noise in the noisy mask x_t (input: image "
          "channels + x_t) through an anchor condition and a frequency-domain SS-Former; DDIM sampling gives a probability "
          "and an uncertainty",
          example_options={"base_width": 8, "depth": 3, "timesteps": 100},
          example_input_shape=(2, 32, 48), example_output_shape=(1, 32, 48), example_parameters=125601),
])
names = REGISTRY.names
create = REGISTRY.create
