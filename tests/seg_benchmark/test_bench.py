"""`fetal bench seg`: figures per architecture through the CLI on the phantom, and the training and
inference timers on small arrays (the diffusion branch with a stand-in network, since the
registry's diffusion model is not needed to check what the bench calls). Nothing asserts a speed."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fetal_lib.cli import main  # noqa: E402
from fetal_lib.bench import seg_benchmark as bench  # noqa: E402
from fetal_lib.torch_segmenter import Sampling  # noqa: E402
from fetal_lib.seg_benchmark.train import SegTrainConfig  # noqa: E402


@pytest.fixture(autouse=True)
def build(tmp_path, monkeypatch):
    monkeypatch.setenv("FETAL_BUILD_DIR", str(tmp_path / "build"))
    return tmp_path / "build"


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread (the CLI test passes --threads 1): on a shared machine two threads of these
    tiny networks wait on each other, seconds per batch instead of milliseconds."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _arrays(n=3, rows=32, cols=64):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (n, rows, cols, 1)).astype(np.float32)
    yy, xx = np.mgrid[:rows, :cols]
    y = np.repeat((((yy - rows / 2) / (rows / 3)) ** 2 + ((xx - cols / 2) / (cols / 3)) ** 2 <= 1)[None, ..., None], n, 0).astype(np.float32)
    return x, y


@pytest.mark.slow  # times a few training steps, as tests/hc/test_bench.py
def test_bench_seg_prints_figures_for_each_architecture(capsys):
    code = main(["bench", "seg", "--profile", "smoke", "--data-source", "phantom", "--arch", "attention_unet,unext",
                 "--train-steps", "2", "--n-images", "2", "--threads", "1", "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    doc = json.loads(out)
    assert doc["target"] == "seg" and doc["input_shape"] == [64, 96] and "PHANTOM" in doc["data"]
    assert "untrained" in doc["weights"] and doc["precision"]["precision"] in ("float32", "bfloat16")
    assert list(doc["architectures"]) == ["attention_unet", "unext"]
    for arch, r in doc["architectures"].items():
        assert r["parameters"] > 0, arch
        assert r["training"]["train_images_per_s"] > 0 and r["training"]["images"] == 2 * 8, arch  # 2 timed batches of the smoke batch size
        assert r["training"]["precision"] == doc["precision"]["precision"]
        assert r["inference"]["ms_per_image_mean"] > 0 and r["inference"]["n_images"] == 2, arch
        assert "untrained" in r["inference"]["weights"]
    assert doc["architectures"]["unext"]["options"] == {"widths": [4, 8, 8, 16, 16]}  # the smoke profile's widths
    assert doc["peak_rss_mib"] > 0 and doc["threads"] == 1


def test_bench_seg_refuses_unknown_architectures_and_bad_settings(capsys):
    assert main(["bench", "seg", "--data-source", "phantom", "--arch", "unext,vgg"]) == 2
    assert "unknown architecture 'vgg'; known: attention_unet" in capsys.readouterr().err
    assert main(["bench", "seg", "--data-source", "phantom", "--set", "arch_options=x"]) == 2
    assert "arch_options" in capsys.readouterr().err
    assert main(["bench", "seg", "--data-source", "phantom", "--train-steps", "0"]) == 2
    assert "--train-steps" in capsys.readouterr().err


def test_default_architectures_are_the_profiles_registered_ones():
    from fetal_lib.seg_benchmark.options import registered_archs

    names, skipped = bench._arch_names(None, {"archs": "unext,transunet,attention_unet"})
    ready = registered_archs()
    assert names == [a for a in ("unext", "transunet", "attention_unet") if a in ready]
    assert skipped == [a for a in ("unext", "transunet", "attention_unet") if a not in ready]


@pytest.mark.slow  # times a few training steps, as tests/hc/test_bench.py
def test_training_and_inference_timers_on_small_arrays():
    x, y = _arrays()
    config = SegTrainConfig(arch="unext", options={"widths": [4, 8, 8, 16, 16]}, input_shape=(32, 64), batch_size=4,
                            precision="float32")
    t = bench.bench_training(config, x, y, steps=2, warmup_steps=1)
    assert t["images"] == 8 and t["train_images_per_s"] > 0 and np.isfinite(t["final_loss"])  # 3 images tiled into batches of 4
    assert t["loss"] == "BCE + soft Dice"
    i = bench.bench_inference(config, x[:2])
    assert i["n_images"] == 2 and i["ms_per_image_mean"] > 0 and "sampling" not in i


class _FakeDiffusion(torch.nn.Module):
    """Stands in for MedSegDiff-V2: the two methods the bench calls, recording their arguments."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)
        self.calls = []

    def training_loss(self, image, mask, generator=None):
        self.calls.append(("training_loss", tuple(image.shape), sorted(torch.unique(mask).tolist()), torch.is_autocast_enabled("cpu")))
        return ((self.conv(image) - mask) ** 2).mean()

    @torch.no_grad()
    def sample(self, image, steps=5, n_samples=4, eta=0.0, generator=None):
        self.calls.append(("sample", steps, n_samples))
        p = torch.sigmoid(self.conv(image))
        return p, torch.zeros_like(p)


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_the_diffusion_branch_uses_its_own_loss_and_sampling(monkeypatch, precision):
    from fetal_lib.seg_benchmark import train

    made = []
    monkeypatch.setattr(train, "build_network", lambda config: made.append(_FakeDiffusion()) or made[-1])
    x, y = _arrays(n=4)
    config = SegTrainConfig(arch="medsegdiff_v2", input_shape=(32, 64), batch_size=2, precision=precision,
                            sampling=Sampling(steps=3, n_samples=2, seed=0))
    t = bench.bench_training(config, x, y, steps=1, warmup_steps=1)
    assert t["loss"].startswith("diffusion") and t["images"] == 2
    calls = made[0].calls
    assert [c[0] for c in calls] == ["training_loss", "training_loss"]
    assert all(c[1] == (2, 1, 32, 64) and set(c[2]) <= {0.0, 1.0} for c in calls)  # the image alone, a binary mask
    assert all(c[3] == (precision == "bfloat16") for c in calls)  # autocast exactly when the config says bfloat16
    i = bench.bench_inference(config, x[:2])
    assert i["sampling"] == {"steps": 3, "n_samples": 2, "seed": 0}
    assert made[1].calls == [("sample", 3, 2)] * 3  # one warm-up, then one call per image


@pytest.mark.slow  # times a few training steps, as tests/hc/test_bench.py
def test_an_architecture_that_fails_is_reported_and_the_others_still_measured(capsys, monkeypatch):
    measure = bench.bench_training

    def failing_for_unext(config, *args, **kwargs):
        if config.arch == "unext":
            raise RuntimeError("Expected both inputs to be Half, Float or Double tensors but got BFloat16 and BFloat16")
        return measure(config, *args, **kwargs)

    monkeypatch.setattr(bench, "bench_training", failing_for_unext)
    code = main(["bench", "seg", "--profile", "smoke", "--data-source", "phantom", "--arch", "unext,attention_unet",
                 "--train-steps", "1", "--skip-inference", "--threads", "1", "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "fetal: error: bench seg: unext training failed: RuntimeError: Expected both inputs" in err
    doc = json.loads(out)
    assert doc["failed"] == ["unext training"]
    assert "error" in doc["architectures"]["unext"]["training"] and doc["architectures"]["unext"]["parameters"] > 0
    assert doc["architectures"]["attention_unet"]["training"]["train_images_per_s"] > 0
    assert "inference" not in doc["architectures"]["attention_unet"]
