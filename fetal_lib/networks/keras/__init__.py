"""Keras 3 architectures, one file each (TensorFlow/Keras are imported lazily, by those files only).

``create(name, **options)`` builds an uncompiled ``keras.Model`` by registry name; ``names()``
lists them. Chapter 3 adds its three classifiers (plain_cnn, separable_cnn, xception) and their ensemble, chapter 4 its
regressors.
"""

from __future__ import annotations

from fetal_lib.networks.registry import Entry, Registry

_UNET = Entry("unet", "fetal_lib.networks.keras.unet:build_unet",
              "2-D U-Net with a sigmoid foreground map (chapter 1; block='source' keeps the source's bug)",
              example_options={"input_shape": (32, 32, 1), "filters": 4, "depth": 2},
              example_input_shape=(32, 32, 1), example_output_shape=(32, 32, 1), example_parameters=7637)

_PLAIN_CNN = Entry("plain_cnn", "fetal_lib.networks.keras.plain_cnn:create",
                   "chapter 3's plain CNN: Conv2D(3x3)-BN-ReLU-MaxPool blocks, global average pooling, dropout, class logits",
                   example_options={"input_shape": (32, 32, 1), "num_classes": 3, "widths": (4, 8, 16)},
                   example_input_shape=(32, 32, 1), example_output_shape=(3,), example_parameters=1639)
_SEPARABLE_CNN = Entry("separable_cnn", "fetal_lib.networks.keras.separable_cnn:create",
                       "chapter 3's separable CNN: the plain CNN with SeparableConv2D (first block plain on a grey input), class logits",
                       example_options={"input_shape": (32, 32, 1), "num_classes": 3, "widths": (4, 8, 16)},
                       example_input_shape=(32, 32, 1), example_output_shape=(3,), example_parameters=467)
_XCEPTION = Entry("xception", "fetal_lib.networks.keras.xception:create",
                  "Xception (Chollet 2017; keras.applications, no top, average pooling) + dropout + class logits; grey input "
                  "rescaled to [-1, 1] and repeated to 3 channels inside the model (width and middle_blocks reduce it; the "
                  "defaults are Keras's full network)",
                  example_options={"input_shape": (71, 71, 1), "num_classes": 3},
                  example_input_shape=(71, 71, 1), example_output_shape=(3,), example_parameters=20867627)

_VGG_ATTENTION = Entry("vgg_attention", "fetal_lib.networks.keras.vgg_attention:create",
                       "chapter 4's gestational-age regressor: a VGG16 per plane (axial, coronal, sagittal; widths an option) with "
                       "a 1x1-conv sigmoid attention, the planes concatenated, Dense -> Dropout -> days",
                       example_options={"input_shape": (32, 32, 1), "widths": (2, 2, 4, 4, 4), "dense": 8, "batch_norm": True},
                       example_input_shape=(32, 32, 1), example_output_shape=(1,), example_parameters=4706)

_ENSEMBLE = Entry("ensemble", "fetal_lib.networks.keras.ensemble:create",
                  "chapter 3's ensemble: two or more registered classifiers (members: name and options) on one input, the log "
                  "of the mean of their softmax probabilities, each at its own temperature (usable as logits)",
                  example_options={"input_shape": (32, 32, 1), "num_classes": 3, "temperatures": [1.0, 2.0],
                                   "members": [{"name": "plain_cnn", "options": {"widths": (4, 8, 16)}},
                                               {"name": "separable_cnn", "options": {"widths": (4, 8, 16)}}]},
                  example_input_shape=(32, 32, 1), example_output_shape=(3,), example_parameters=1639 + 467)

REGISTRY = Registry("keras", [_UNET, _PLAIN_CNN, _SEPARABLE_CNN, _XCEPTION, _VGG_ATTENTION, _ENSEMBLE])
names = REGISTRY.names  # registered architectures, sorted
create = REGISTRY.create  # create(name, /, **options): the factory's keyword arguments


def register_layers() -> None:
    """Import the modules whose custom layers a stored architecture may name (``ScaleShift``,
    ``TemperedSoftmaxMean``), so that ``keras.saving.load_model`` finds them (imports Keras)."""
    import fetal_lib.networks.keras.ensemble  # noqa: F401
    import fetal_lib.networks.keras.scale_shift  # noqa: F401
