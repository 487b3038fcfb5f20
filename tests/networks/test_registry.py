"""Every registered network passes the same checks: output shape, parameter count, a
forward and backward pass with finite gradients for every weight, save and load giving
identical outputs. A new architecture registered in ``networks.keras`` or
``networks.torch`` is tested here without a line of new test code."""

from __future__ import annotations

import numpy as np
import pytest

from fetal_lib.networks import keras as keras_nets
from fetal_lib.networks import torch as torch_nets


@pytest.mark.parametrize("name", torch_nets.names())
def test_torch_network(name: str, tmp_path) -> None:
    import torch

    entry = torch_nets.REGISTRY.entry(name)
    torch.manual_seed(0)
    model = torch_nets.create(name, **entry.example_options)
    x = torch.rand((2,) + entry.example_input_shape)
    out = model(x)
    assert tuple(out.shape) == (2,) + entry.example_output_shape
    assert sum(p.numel() for p in model.parameters()) == entry.example_parameters
    out.float().pow(2).mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    model.eval()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    again = torch_nets.create(name, **entry.example_options)
    again.load_state_dict(torch.load(tmp_path / "w.pt"))
    again.eval()
    with torch.no_grad():
        assert torch.equal(model(x), again(x))


def _weight_gradients(loss_of, weights) -> list[np.ndarray]:
    """d loss / d weight for every weight, by the backend's own autodiff (TensorFlow or PyTorch)."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_of()
        return [None if g is None else keras.ops.convert_to_numpy(g) for g in tape.gradient(loss, weights)]
    import torch

    loss = loss_of()
    grads = torch.autograd.grad(loss, [w.value for w in weights], allow_unused=True)
    return [None if g is None else g.detach().cpu().numpy() for g in grads]


@pytest.mark.keras_backends
@pytest.mark.parametrize("name", keras_nets.names())
def test_keras_network(name: str, tmp_path) -> None:
    import keras

    entry = keras_nets.REGISTRY.entry(name)
    keras.utils.set_random_seed(0)
    model = keras_nets.create(name, **entry.example_options)
    x = np.random.default_rng(0).uniform(0, 1, (2,) + entry.example_input_shape).astype(np.float32)
    if len(model.inputs) > 1:  # one input per plane (chapter 4): the same example shape for each
        x = [x * (k + 1) / len(model.inputs) for k in range(len(model.inputs))]
    out = model(x, training=False)
    assert tuple(out.shape) == (2,) + entry.example_output_shape
    assert model.count_params() == entry.example_parameters
    grads = _weight_gradients(lambda: keras.ops.mean(keras.ops.square(model(x, training=True))), model.trainable_weights)
    for w, g in zip(model.trainable_weights, grads):
        assert g is not None and np.isfinite(g).all(), w.path
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras", compile=False)
    np.testing.assert_array_equal(model.predict(x, verbose=0), again.predict(x, verbose=0))


def test_unknown_names_and_options_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="no torch network named 'vgg99'; known: attention_unet, ducknet, medsegdiff_v2, resunet3d, transunet, unext"):
        torch_nets.create("vgg99")
    with pytest.raises(ValueError, match="does not take these options"):
        torch_nets.create("resunet3d", widths=3)
    assert "unet" in keras_nets.names()
