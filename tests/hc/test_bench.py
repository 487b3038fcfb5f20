"""`fetal bench hc`: importable without TensorFlow; prints its figures."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.keras_backends  # also run with KERAS_BACKEND=torch by `make test`


def test_import_does_not_load_tensorflow():
    code = "import sys, fetal_lib.bench.hc, fetal_lib.commands.hc, fetal_lib.cli; fetal_lib.cli.build_parser(); print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_bench_runs_on_phantom(intensity_model_path, phantom_root, capsys, monkeypatch):
    pytest.importorskip("keras")
    from fetal_lib.cli import main

    root = phantom_root("hc18")
    code = main(["bench", "hc", "--model", str(intensity_model_path), "--data-dir", str(root.parent), "--profile", "smoke",
                 "--n-images", "3", "--train-images", "8", "--train-steps", "2", "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["inference"]["n_images"] == 3 and out["inference"]["ms_per_image_mean"] > 0
    assert out["training"]["train_images_per_s"] > 0 and out["training"]["input_shape"] == [64, 96]


@pytest.mark.slow
def test_bench_set_overrides_the_training_settings(phantom_root, capsys):
    pytest.importorskip("keras")
    from fetal_lib.cli import main

    root = phantom_root("hc18")
    code = main(["bench", "hc", "--skip-inference", "--data-dir", str(root.parent), "--profile", "smoke",
                 "--train-images", "8", "--train-steps", "1", "--set", "precision=mixed_bfloat16", "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["training"]["precision"] == "mixed_bfloat16" and out["training"]["jit_compile"] is False


def test_bench_bad_set_is_one_clear_error(phantom_root, capsys):
    from fetal_lib.cli import main

    root = phantom_root("hc18")
    code = main(["bench", "hc", "--skip-inference", "--data-dir", str(root.parent), "--set", "colour=red"])
    err = capsys.readouterr().err
    assert code == 2 and "--set" in err and "unknown hc18 setting 'colour'" in err
