"""Tiny models for the app's tests, saved with cards in a models folder as the chapters save theirs.

Nothing is trained: each model has known weights (or a seeded initialisation), so a test compares
the app's answer with the library's own answer for the same file and the same model.

* head circumference: an *intensity* network (a 1x1 convolution named like the U-Net's Grad-CAM
  layer, then a steep sigmoid): "head" where the image is bright;
* ultrasound classification: a *brightness* network per task (mean intensity -> the class whose
  centre is nearest), with a 2-D layer for Grad-CAM;
* gestational age: chapter 4's network at tiny widths, untrained (it answers its target mean);
* brain age: chapter 5's Res-U-Net at tiny widths, seeded and untrained, and a linear regressor
  fitted on synthetic tissue volumes, so the predicted age depends on the subject.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

# The tests run offline, as the app does: set before gradio (and huggingface_hub) are imported.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytest.importorskip("gradio")
pytest.importorskip("tensorflow")
pytest.importorskip("torch")
pytest.importorskip("SimpleITK")

GA_MEAN_DAYS = 203.0
CARD_DATA = {"source": "none: a model with fixed weights made by the tests", "dataset": "tests/app/conftest.py"}


def _card(name: str, metrics: dict | None = None) -> dict:
    from fetal_lib.model_card import common_fields

    card = {**common_fields("keras", "none", {}, {}, "smoke"), "name": name, "data": dict(CARD_DATA),
            "intended_use": "Tests only."}
    card["architecture"] = None  # load the file's own architecture
    if metrics:
        card["metrics"] = metrics
    return card


def save_hc_model(path: Path) -> Path:
    """The intensity network as ``hc18_unet.keras`` with its card."""
    import keras

    from fetal_lib.hc.explain import GRADCAM_LAYER
    from fetal_lib.model_card import save_keras

    inputs = keras.Input((256, 384, 1))
    features = keras.layers.Conv2D(1, 1, name=GRADCAM_LAYER)(inputs)
    outputs = keras.layers.Conv2D(1, 1, activation="sigmoid", name="head")(features)
    model = keras.Model(inputs, outputs, name="intensity")
    model.get_layer(GRADCAM_LAYER).set_weights([np.ones((1, 1, 1, 1), np.float32), np.zeros(1, np.float32)])
    model.get_layer("head").set_weights([np.full((1, 1, 1, 1), 40.0, np.float32), np.array([-20.0], np.float32)])
    card = _card("Test HC model (bright = head)", {"split": "test", "hc_abs_diff_mean_mm": 2.5, "n": 3})
    return save_keras(model, path, card)


def brightness_model(size: tuple[int, int], k: int):
    """Logit j = 100 (2 c_j m - c_j^2) for the mean intensity m: class j wins nearest its centre c_j."""
    import keras

    inputs = keras.Input((*size, 1))
    features = keras.layers.Conv2D(1, 1, name="last_conv")(inputs)
    logits = keras.layers.Dense(k, name="logits")(keras.layers.GlobalAveragePooling2D()(features))
    model = keras.Model(inputs, logits, name="brightness")
    model.get_layer("last_conv").set_weights([np.ones((1, 1, 1, 1), np.float32), np.zeros(1, np.float32)])
    centres = np.linspace(0.1, 0.9, k)
    model.get_layer("logits").set_weights([(200 * centres)[None, :].astype(np.float32), (-100 * centres**2).astype(np.float32)])
    return model


def save_us_models(folder: Path) -> dict[str, Path]:
    """A brightness classifier per app task as ``us_<task>.keras`` with its card."""
    from fetal_lib.us.classifier import UsClassifier
    from fetal_lib.us.tasks import BRAIN_PLANE_CLASSES, PLANE_CLASSES

    classes = {"planes": PLANE_CLASSES, "brain_planes": BRAIN_PLANE_CLASSES, "anomaly": ["normal", "abnormal"],
               "anomaly_type": ["normal", "arachnoid-cyst", "encephalocele", "other"]}
    out = {}
    for task, names in classes.items():
        clf = UsClassifier(brightness_model((48, 64), len(names)), task, names, (48, 64), temperature=2.0)
        card = {**clf.card_fields("smoke"), "name": f"Test {task} classifier (brightness)", "data": dict(CARD_DATA),
                "metrics": {"accuracy": 0.5, "ece": 0.1}}
        out[task] = clf.save(folder / f"us_{task}.keras", card)
    return out


def save_ga_model(path: Path) -> Path:
    """Chapter 4's network at tiny widths (untrained: it answers GA_MEAN_DAYS) as ``ga_mri.keras``."""
    import keras

    from fetal_lib.ga_mri.predictor import GaPredictor
    from fetal_lib.ga_mri.volumes import PreprocessConfig
    from fetal_lib.networks.keras import create

    keras.utils.set_random_seed(0)
    options = {"input_shape": (32, 32, 1), "widths": [2, 2, 4, 4, 4], "batch_norm": True, "dense": 4,
               "target_mean_days": GA_MEAN_DAYS, "target_sd_days": 35.0}
    predictor = GaPredictor(create("vgg_attention", **options), PreprocessConfig(size=32, fov_mm=128.0, offsets_mm=(-4.0, 0.0, 4.0)))
    card = {**predictor.card_fields("smoke", options), "name": "Test GA model (untrained)", "data": dict(CARD_DATA),
            "metrics": {"protocol1_mae_days": 9.9}}
    return predictor.save(path, card)


def save_brain_age_model(folder: Path) -> Path:
    """Chapter 5's Res-U-Net (tiny, seeded, untrained) and a linear regressor on synthetic volumes, with a card."""
    import torch

    from fetal_lib.brain_age import regression, segmentation
    from fetal_lib.model_card import common_fields, write_card
    from fetal_lib.networks.torch import create

    torch.manual_seed(0)
    net = create("resunet3d", in_channels=2, num_classes=4, base_width=2, depth=2)
    net.eval()
    segmentation.save(net, folder, extra={"preprocessing": {"spacing_mm": [3.0, 3.0, 3.0], "size": [64, 64, 64]},
                                          "features": "soft"})
    rng = np.random.default_rng(0)
    volumes = np.column_stack([rng.uniform(100, 900, 40), rng.uniform(100, 900, 40), rng.uniform(100, 900, 40)])
    age = 20 + 0.05 * volumes[:, 0] - 0.02 * volumes[:, 1] + 0.01 * volumes[:, 2] + rng.normal(0, 1, 40)
    regression.save(regression.fit_deployable("linear", age, volumes), folder)
    card = {**common_fields("torch", "resunet3d", net.config, {}, "smoke"), "name": "Test brain-age models (untrained segmenter)",
            "data_status": "none: synthetic volumes made by the tests", "regressor": {"name": "linear", "cv_mae_years": 1.0}}
    write_card(folder / "model_card.json", card)
    return folder


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """A models folder with every tab's tiny model, laid out as ``build/models``."""
    folder = tmp_path_factory.mktemp("app_models")
    save_hc_model(folder / "hc18_unet.keras")
    save_us_models(folder)
    save_ga_model(folder / "ga_mri.keras")
    save_brain_age_model(folder / "brain_age")
    return folder


@pytest.fixture(scope="session")
def slots(models_dir):
    """Every tab's slots, loaded once (as the app loads them)."""
    from fetal_lib.app.blocks import load_all

    return load_all(models_dir, log=lambda line: None)


@pytest.fixture(scope="module")
def slot(request, slots):
    """The slot a tab's test module is about: the module's ``SLOT = (tab, key)`` (key None: the tab's first slot)."""
    tab, key = request.module.SLOT
    return next(s for s in slots[tab] if key is None or s.key == key)


@pytest.fixture(scope="session")
def hc18_image(real_dataset) -> tuple[Path, float]:
    """A real HC18 training image and its pixel size (mm)."""
    from fetal_lib.hc.measure import read_pixel_sizes

    root = real_dataset("hc18")
    name = "001_HC.png"
    return root / "training_set" / name, float(read_pixel_sizes(root / "training_set_pixel_size_and_HC.csv")[name])


@pytest.fixture(scope="session")
def planes_image(real_dataset) -> Path:
    """A real FETAL_PLANES_DB image."""
    return sorted((real_dataset("fetal_planes") / "images").glob("*"))[0]


@pytest.fixture(scope="session")
def atlas_volume(real_dataset) -> tuple[Path, Path]:
    """A real atlas T2 volume (30 weeks) and its brain mask."""
    folder = real_dataset("fetal_brain_atlases") / "Neurotypical_Gholipour2017" / "HarvardSTA30_Study1"
    return folder / "srr.nii.gz", folder / "mask.nii.gz"


@pytest.fixture(scope="session")
def brain_age_subject(real_dataset) -> tuple[Path, Path]:
    """A real brain-age T1 and its brain mask."""
    root = real_dataset("brain_age")
    image = sorted((root / "images").glob("*_T1w_unbiased.nii.gz"))[0]
    return image, root / "masks" / image.name.replace("_T1w_unbiased", "_T1w_brain_mask")


# ----------------------------------------------------------------------------- the server, in a subprocess

MAX_UPLOAD_MB = 2.0  # small, so the test can send a file over the limit
START_TIMEOUT_S = 300.0


class AppServer:
    """``fetal app`` started in a subprocess under the network guard, with its own temporary and working folders."""

    def __init__(self, models_dir: Path, base: Path):
        import os
        import subprocess
        import sys

        from fetal_lib.paths import REPO_ROOT

        self.models_dir = models_dir
        self.max_upload_mb = MAX_UPLOAD_MB
        self.tmp, self.cwd = base / "tmp", base / "cwd"
        self.tmp.mkdir()
        self.cwd.mkdir()
        self.netlog = base / "netguard.log"
        self.log = base / "server.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        env = {**os.environ, "TMPDIR": str(self.tmp), "FETAL_BUILD_DIR": str(base / "build"), "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
        cmd = [sys.executable, str(Path(__file__).with_name("netguard.py")), str(self.netlog), "--", "app", "--port", str(self.port),
               "--models-dir", str(models_dir), "--max-upload-mb", str(self.max_upload_mb)]
        self._log_fh = open(self.log, "w", encoding="utf-8")
        self.process = subprocess.Popen(cmd, cwd=self.cwd, env=env, stdout=self._log_fh, stderr=subprocess.STDOUT)
        self.models_before = snapshot(models_dir)

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        import time
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"fetal app exited with status {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"fetal app did not answer on {self.url} within {timeout:.0f} s:\n{self.log.read_text()[-3000:]}")

    def upload_folders(self) -> list[Path]:
        return sorted(self.tmp.glob("fetal-app-*"))

    def uploaded_files(self) -> list[Path]:
        return [p for folder in self.upload_folders() for p in folder.rglob("*") if p.is_file()]

    def peak_rss_mb(self) -> float:
        """The server's peak resident memory (VmHWM), MiB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
        return float("nan")

    def blocked(self) -> list[str]:
        return self.netlog.read_text().splitlines() if self.netlog.is_file() else []

    def stop(self) -> int:
        import signal
        import subprocess

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log_fh.close()
        return self.process.returncode


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder``: (size, mtime in ns)."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def app_server(models_dir, tmp_path_factory):
    """``fetal app`` on a free port with the tiny models. When it stops: exit status 0, its temporary
    folder gone, nothing written in its working folder or the models folder, no host but this one contacted."""
    server = AppServer(models_dir, tmp_path_factory.mktemp("app_server"))
    try:
        server.wait_ready()
    except RuntimeError:
        server.stop()
        raise
    yield server
    code = server.stop()
    assert code == 0, f"fetal app exited with status {code}:\n{server.log.read_text()[-3000:]}"
    assert server.upload_folders() == [], "the app's temporary folder was not removed"
    assert list(server.cwd.iterdir()) == [], f"the app wrote in its working folder: {list(server.cwd.iterdir())}"
    assert snapshot(models_dir) == server.models_before, "the app changed the models folder"
    assert server.blocked() == [], f"the server tried to reach other hosts: {server.blocked()}"
