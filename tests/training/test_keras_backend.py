"""fetal_lib.training.keras_backend and the backend-neutral Keras pieces: every test here also runs
with KERAS_BACKEND=torch (`make test`); a model saved under one backend predicts the same under the
other (checked in a subprocess, since Keras fixes its backend at import)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytestmark = pytest.mark.keras_backends

from fetal_lib.training import keras_backend  # noqa: E402

OTHER = {"tensorflow": "torch", "torch": "tensorflow"}


def _installed(*distributions: str) -> bool:
    from importlib import metadata

    for name in distributions:
        try:
            metadata.version(name)
            return True
        except metadata.PackageNotFoundError:
            continue
    return False
REPO = Path(__file__).resolve().parents[2]


def test_name_is_the_backend_keras_runs_on() -> None:
    assert keras_backend.name() == keras.backend.backend() in keras_backend.BACKENDS
    assert keras_backend.device() == "CPU" or keras_backend.device().startswith("GPU:0")


def test_value_and_gradient_matches_the_analytic_derivative() -> None:
    from keras import ops

    x = np.array([[1.0, -2.0, 3.0]], np.float32)

    def forward(t):
        watched = ops.square(t) + 1.0  # w = x^2 + 1
        return watched, ops.sum(ops.sin(watched))  # d/dw sum(sin w) = cos w

    watched, grad = keras_backend.value_and_gradient(forward, x)
    np.testing.assert_allclose(keras_backend.to_numpy(watched), x**2 + 1, rtol=1e-6)
    np.testing.assert_allclose(keras_backend.to_numpy(grad), np.cos(x**2 + 1), rtol=1e-5)


def test_inference_function_returns_numpy_in_inference_mode() -> None:
    from keras import layers

    inputs = keras.Input((4,))
    model = keras.Model(inputs, layers.Dropout(0.9)(layers.Dense(2, kernel_initializer="ones")(inputs)))
    out = keras_backend.inference_function(model)(np.ones((3, 4), np.float32))
    assert isinstance(out, np.ndarray) and out.shape == (3, 2)
    np.testing.assert_allclose(out, 4.0)  # no dropout at inference


def test_scale_shift_is_rescaling_and_survives_saving(tmp_path) -> None:
    from fetal_lib.networks.keras.scale_shift import ScaleShift

    x = np.random.default_rng(0).uniform(0, 1, (2, 3, 3, 3)).astype(np.float32)
    inputs = keras.Input((3, 3, 3))
    model = keras.Model(inputs, ScaleShift(255.0, offset=[-1.0, -2.0, -3.0], name="scale")(inputs))
    expected = x * 255.0 + np.array([-1.0, -2.0, -3.0], np.float32)
    np.testing.assert_allclose(keras_backend.to_numpy(model(x)), expected, rtol=1e-6)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    np.testing.assert_allclose(keras_backend.to_numpy(again(x)), expected, rtol=1e-6)


OTHER_SIDE = """
import json, sys
import numpy as np
import keras
from fetal_lib.model_card import load_keras
from fetal_lib.training.keras_backend import inference_function, name
out = {}
for path in sys.argv[1:]:
    model = load_keras(path)
    x = np.load(path + ".x.npy", allow_pickle=False) if not path.endswith("multi.keras") else None
    if x is None:
        x = [np.load(path + f".x{k}.npy") for k in range(len(model.inputs))]
    out[path] = inference_function(model)(x).tolist()
print(json.dumps({"backend": name(), "predictions": out}))
"""


@pytest.mark.slow
def test_a_model_saved_under_one_backend_predicts_the_same_under_the_other(tmp_path) -> None:
    from fetal_lib.networks import keras as keras_nets
    from fetal_lib.training.keras_backend import inference_function, name

    here = name()
    rng = np.random.default_rng(0)
    mine: dict[str, np.ndarray] = {}
    for arch in keras_nets.names():
        entry = keras_nets.REGISTRY.entry(arch)
        keras.utils.set_random_seed(0)
        model = keras_nets.create(arch, **entry.example_options)
        x = rng.uniform(0, 1, (2,) + entry.example_input_shape).astype(np.float32)
        multi = len(model.inputs) > 1
        path = str(tmp_path / (f"{arch}.multi.keras" if multi else f"{arch}.keras"))
        if multi:
            x = [x * (k + 1) / len(model.inputs) for k in range(len(model.inputs))]
            for k, a in enumerate(x):
                np.save(path + f".x{k}.npy", a)
        else:
            np.save(path + ".x.npy", x)
        model.save(path)
        mine[path] = inference_function(model)(x)
    env = {**os.environ, "KERAS_BACKEND": OTHER[here], "PYTHONPATH": str(REPO)}
    if OTHER[here] == "tensorflow" and not _installed("tensorflow", "tensorflow-cpu"):
        pytest.skip("TensorFlow is not installed here")  # (FETAL_WITHOUT_TENSORFLOW blocks it in this process only, not in the child)
    done = subprocess.run([sys.executable, "-c", OTHER_SIDE, *mine], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    assert theirs["backend"] == OTHER[here]
    for path, prediction in mine.items():
        np.testing.assert_allclose(np.asarray(theirs["predictions"][path]), prediction, rtol=1e-4, atol=1e-4, err_msg=path)


def test_choose_takes_the_users_backend_else_torch_only_where_torch_alone_sees_a_gpu() -> None:
    yes, no = (lambda: True), (lambda: False)
    assert keras_backend.choose({"KERAS_BACKEND": "torch"}, yes, yes)[0] == "torch"
    assert keras_backend.choose({"KERAS_BACKEND": "tensorflow"}, yes, no)[0] == "tensorflow"
    backend, reason = keras_backend.choose({}, yes, no)
    assert backend == "torch" and "CUDA" in reason and reason.startswith("auto")
    assert keras_backend.choose({"KERAS_BACKEND": "auto"}, yes, yes)[0] == "tensorflow"  # TensorFlow sees the GPU itself
    assert keras_backend.choose({}, no, yes)[0] == "tensorflow"  # no CUDA for torch: the CPU default
    with pytest.raises(ValueError, match="KERAS_BACKEND='jax'"):
        keras_backend.choose({"KERAS_BACKEND": "jax"}, no, no)


def test_apply_choice_sets_the_environment_for_child_processes() -> None:
    env: dict = {}
    backend, _ = keras_backend.apply_choice(env)
    assert env["KERAS_BACKEND"] == backend in keras_backend.BACKENDS


def test_the_fetal_command_refuses_an_unknown_backend_in_one_line(monkeypatch, capsys) -> None:
    from fetal_lib.cli import main

    monkeypatch.setattr(keras_backend, "apply_choice", lambda: keras_backend.choose({"KERAS_BACKEND": "jax"}))
    assert main(["doctor", "--skip-bench"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "KERAS_BACKEND='jax' is not supported" in err[0]


def test_describe_records_backend_version_and_device() -> None:
    got = keras_backend.describe()
    assert got["keras_backend"] == keras.backend.backend() and got["keras_version"] == keras.__version__
    assert got["keras_device"] == keras_backend.device()


def test_xla_only_on_tensorflow() -> None:
    from fetal_lib.training.config import TrainConfig
    from fetal_lib.training.keras import uses_xla

    assert uses_xla(TrainConfig(compile=True)) == (keras.backend.backend() == "tensorflow")
    assert not uses_xla(TrainConfig(compile=True, precision="bfloat16"))
