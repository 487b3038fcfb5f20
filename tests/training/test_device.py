"""The device rule (fetal_lib.devices) and every PyTorch path that must follow it.

CI has no GPU, so a network "elsewhere" stands in for one on CUDA: :class:`ElsewhereNet` keeps its
weights on torch's ``meta`` device and raises, as torch does on a GPU, when an input is not on the
device of its weights. It computes its answer with a CPU twin, so the path can finish and be
checked. At f60a673 the chapter-2 predictor fed such a network CPU tensors and crashed (it did on
an H200); these tests fail there.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fetal_lib import devices as device_mod
from fetal_lib.training.config import TrainConfig
from fetal_lib.devices import (GpuInfo, NoGpuError, device_of, random_normal, resolve_device, to_device, to_host,
                                       to_network)

ELSEWHERE = torch.device("meta")


class ElsewhereNet(nn.Module):
    """A network whose weights live on ``meta`` (a stand-in for a GPU) and which refuses inputs from
    another device. ``inner`` (on the CPU, not a registered submodule, so ``.to()`` moves only the
    weights that say where the network is) computes the output from a CPU copy of the input's shape."""

    def __init__(self, inner: nn.Module, **attributes):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1, device=ELSEWHERE))
        object.__setattr__(self, "inner", inner)
        object.__setattr__(self, "seen", [])
        for name, value in attributes.items():
            object.__setattr__(self, name, value)

    def _check(self, *tensors: torch.Tensor) -> None:
        for t in tensors:
            if t.device != self.anchor.device:
                raise RuntimeError(f"Expected all tensors to be on the same device: input on {t.device}, "
                                   f"weights on {self.anchor.device}")
            self.seen.append(t.device)

    def forward(self, x: torch.Tensor, *rest) -> torch.Tensor:
        self._check(x, *[r for r in rest if isinstance(r, torch.Tensor)])
        return self.inner(torch.full(tuple(x.shape), 0.5))


class ElsewhereDiffusion(ElsewhereNet):
    """The diffusion model's sampling interface, on ``meta``."""

    def sample(self, image, steps=5, n_samples=4, eta=0.0, generator=None):
        self._check(image)
        noise = random_normal((image.shape[0], 1, *image.shape[2:]), generator, like=image)
        self._check(noise)
        p = torch.sigmoid(self.inner(torch.full(tuple(image.shape), 0.5)))
        return p, torch.zeros_like(p)


def _segmenter(net, arch="attention_unet", rows=16, cols=24):
    from fetal_lib.torch_segmenter import TorchSegmenter

    return TorchSegmenter(net, arch, {}, rows, cols)


# ----------------------------------------------------------------------------- the rule itself


def test_resolve_device_names_the_missing_gpu(monkeypatch) -> None:
    monkeypatch.setattr(device_mod, "cuda_available", lambda: False)
    assert resolve_device("cpu") == "cpu" and resolve_device("auto") == "cpu" and resolve_device(None) == "cpu"
    with pytest.raises(NoGpuError, match="no CUDA GPU on this machine"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="auto, cpu, cuda"):
        resolve_device("tpu")
    monkeypatch.setattr(device_mod, "cuda_available", lambda: True)
    assert resolve_device("auto") == "cuda" and resolve_device("cuda") == "cuda" and resolve_device("cpu") == "cpu"


def test_to_device_moves_nested_batches_and_leaves_the_rest() -> None:
    batch = {"x": torch.ones(2), "pair": (torch.zeros(1), [torch.ones(1), "label"]), "n": 3}
    moved = to_device(batch, ELSEWHERE)
    assert moved["x"].device == ELSEWHERE and moved["pair"][0].device == ELSEWHERE and moved["pair"][1][0].device == ELSEWHERE
    assert moved["pair"][1][1] == "label" and moved["n"] == 3 and isinstance(moved["pair"], tuple)
    net = nn.Linear(2, 1).to(ELSEWHERE)
    assert device_of(net) == ELSEWHERE and to_network(torch.ones(3), net).device == ELSEWHERE
    assert device_of(nn.ReLU()) == torch.device("cpu")  # no weights: the CPU
    assert to_host(torch.ones(2, dtype=torch.bfloat16)).dtype == torch.float32


def test_random_normal_is_the_seeds_noise_on_any_device() -> None:
    reference = torch.randn((2, 3), generator=torch.Generator().manual_seed(7))
    here = random_normal((2, 3), torch.Generator().manual_seed(7), like=torch.zeros(1, dtype=torch.float64))
    assert here.dtype == torch.float64 and torch.allclose(here.float(), reference)
    there = random_normal((2, 3), torch.Generator().manual_seed(7), like=torch.zeros(1, device=ELSEWHERE))
    assert there.device == ELSEWHERE and tuple(there.shape) == (2, 3)


def test_gpu_info_decides_bfloat16_by_compute_capability() -> None:
    assert GpuInfo("NVIDIA H200", 139.8, (9, 0)).bf16 and GpuInfo("A100", 40, (8, 0)).bf16
    assert not GpuInfo("Tesla V100", 16, (7, 0)).bf16
    assert "compute capability 9.0" in GpuInfo("NVIDIA H200", 139.8, (9, 0)).describe()


# ----------------------------------------------------------------------------- the paths that must follow it


def test_chapter2_predictor_feeds_the_network_on_its_device() -> None:
    net = ElsewhereNet(nn.Conv2d(1, 1, 3, padding=1))
    prob, unc = _segmenter(net).predict_with_uncertainty(np.random.default_rng(0).random((3, 16, 24, 1), dtype=np.float32))
    assert prob.shape == (3, 16, 24, 1) and unc is None and set(net.seen) == {ELSEWHERE}


def test_chapter2_diffusion_sampling_draws_noise_for_the_network_on_its_device() -> None:
    net = ElsewhereDiffusion(nn.Conv2d(1, 1, 3, padding=1))
    prob, unc = _segmenter(net, "medsegdiff_v2").predict_with_uncertainty(np.zeros((2, 16, 24, 1), np.float32))
    assert prob.shape == (2, 16, 24, 1) and unc.shape == prob.shape and set(net.seen) == {ELSEWHERE}


def test_medsegdiff_samples_are_the_same_for_one_seed_whatever_generator_device() -> None:
    from fetal_lib.networks import torch as torch_nets

    torch.manual_seed(0)
    net = torch_nets.create("medsegdiff_v2", base_width=4, depth=2, channel_mult=(1, 2), cond_width=4,
                            cond_channel_mult=(1, 2), ssformer_blocks=1, heads=1, nbp_hidden=4, nbp_blocks=1).eval()
    x = torch.rand(1, 1, 16, 16)
    a, _ = net.sample(x, steps=2, n_samples=2, generator=torch.Generator().manual_seed(3))
    b, _ = net.sample(x, steps=2, n_samples=2, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


@pytest.mark.slow  # it runs the training loop (two tiny epochs)
def test_harness_and_chapter2_validation_run_with_the_network_elsewhere(monkeypatch) -> None:
    """The loop puts the network on the run's device (here the stand-in), every training batch and
    every validation image follows it through the predictor."""
    from fetal_lib.seg_benchmark.train import mean_dice
    from fetal_lib.training import torch as harness

    monkeypatch.setattr(harness, "select_device", lambda requested="auto": "meta")
    harness.configure(1, 0)
    net = ElsewhereNet(nn.Conv2d(1, 1, 3, padding=1))
    x = torch.rand(8, 1, 16, 24)
    y = (x > 0.5).float()
    x_val = np.random.default_rng(1).random((2, 16, 24, 1), dtype=np.float32)
    y_val = (x_val > 0.5).astype(np.float32)

    def validate(model):
        return {"val_dice": mean_dice(_segmenter(model).predict_nhwc(x_val), y_val)}

    def loss(out, target):  # the stand-in answers on the CPU; the targets went to the network's device
        assert target.device == ELSEWHERE
        return out.pow(2).mean()

    result = harness.fit(net, lambda epoch: [(x[:4], y[:4]), (x[4:], y[4:])], 2, loss,
                         TrainConfig(epochs=2, checkpoint="best"), validate, lambda row: row["val_dice"])
    assert result.device == "meta" and len(result.history) == 2 and "val_dice" in result.history[-1]
    assert set(net.seen) == {ELSEWHERE} and len(net.seen) == 2 * 2 + 2  # 2 epochs of 2 batches, 2 validations of one chunk


def test_brain_age_segmenter_prediction_and_mirror_follow_the_network() -> None:
    from fetal_lib.brain_age import segmentation

    net = ElsewhereNet(nn.Conv3d(2, 4, 1), config={"in_channels": 2})
    images = np.random.default_rng(0).random((1, 8, 8, 8), dtype=np.float32)
    masks = np.ones((1, 8, 8, 8), np.uint8)
    proba = segmentation.constrained_proba(net, images, masks, tta=True)
    assert proba.shape == (1, 4, 8, 8, 8) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert set(net.seen) == {ELSEWHERE} and len(net.seen) == 2  # the volume and its mirror


def test_brain_age_fold_ensemble_feeds_every_member_on_its_device() -> None:
    from fetal_lib.brain_age import fold_ensemble, segmentation

    members = [ElsewhereNet(nn.Conv3d(2, 4, 1), config={"in_channels": 2}) for _ in range(2)]
    ensemble = fold_ensemble.mean_probability_ensemble(members)
    images = np.random.default_rng(0).random((1, 8, 8, 8), dtype=np.float32)
    proba = segmentation.constrained_proba(ensemble, images, np.ones((1, 8, 8, 8), np.uint8))
    assert proba.shape == (1, 4, 8, 8, 8) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert all(m.seen == [ELSEWHERE] for m in members)


def test_gradcam_moves_the_batch_to_the_network() -> None:
    from fetal_lib.explain.gradcam_torch import gradcam

    seen = []

    class Recording(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3, padding=1)
            self.head = nn.Conv2d(2, 1, 1)

        def forward(self, x):
            seen.append(x.device)
            return self.head(torch.relu(self.conv(x)))

    model = Recording()
    maps = gradcam(model, model.conv, np.random.default_rng(0).random((1, 1, 8, 8), dtype=np.float32), "segmentation")
    assert maps.shape == (1, 8, 8) and maps.dtype == np.float32 and set(seen) == {device_of(model)}


# ----------------------------------------------------------------------------- commands: --device cuda without a GPU


@pytest.mark.parametrize("argv", [
    ["seg", "train", "--arch", "unext", "--device", "cuda", "--data-source", "phantom", "--profile", "smoke"],
    ["seg", "evaluate", "--arch", "unext", "--device", "cuda"],
    ["brain-age", "train", "--device", "cuda", "--data-source", "phantom", "--profile", "smoke"],
    ["brain-age", "predict", "--device", "cuda", "a.nii.gz", "--mask", "m.nii.gz"],
    ["hc", "measure", "--device", "cuda", "image.png", "--pixel-size", "0.1"],
])
def test_device_cuda_without_a_gpu_exits_2_with_one_line_and_writes_nothing(argv, monkeypatch, tmp_path, capsys) -> None:
    from fetal_lib import cli

    monkeypatch.setattr(device_mod, "cuda_available", lambda: False)
    monkeypatch.setenv("FETAL_BUILD_DIR", str(tmp_path / "build"))
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--device cuda" in err[0] and "no CUDA GPU" in err[0]
    assert not (tmp_path / "build").exists() and list(tmp_path.iterdir()) == []


def test_app_settings_refuse_cuda_without_a_gpu(monkeypatch) -> None:
    from fetal_lib.app.settings import AppSettings
    from fetal_lib.errors import FetalInputError

    monkeypatch.setattr(device_mod, "cuda_available", lambda: False)
    with pytest.raises(FetalInputError, match="--device cuda.*no CUDA GPU"):
        AppSettings(device="cuda").check()
    assert AppSettings(device="auto").check().device == "auto"
