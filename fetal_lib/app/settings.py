"""What ``fetal app`` is started with, and the environment that keeps Gradio offline.

Gradio reads its settings from environment variables when it is imported: :func:`offline_environment`
must run before ``import gradio`` (:func:`fetal_lib.app.server.serve` does). The app never opens a
share link, never sends analytics and never asks the Hugging Face hub for anything.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from fetal_lib.errors import FetalInputError
from fetal_lib.config.options import checked_device
from fetal_lib.paths import build_dir

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_MAX_UPLOAD_MB = 50.0
#: Requests that may wait in Gradio's queue (all tabs together); more are refused with "queue full".
QUEUE_SIZE = 64
#: Every file the app wrote is deleted after this many seconds at the latest (Gradio's cache
#: sweep, run every :data:`SWEEP_EVERY_S`); uploads are deleted as soon as their request ends.
MAX_FILE_AGE_S = 900
SWEEP_EVERY_S = 300

#: Set before Gradio is imported. GRADIO_TEMP_DIR is added by :func:`offline_environment`.
OFFLINE_ENVIRONMENT = {
    "GRADIO_ANALYTICS_ENABLED": "False",  # no telemetry, no version check
    "HF_HUB_OFFLINE": "1",  # huggingface_hub never reaches the network
    "GRADIO_SHARE": "False",
    "GRADIO_SSR_MODE": "False",  # no Node server
    "GRADIO_MCP_SERVER": "False",
    "GRADIO_RUN_HISTORY": "False",  # no run history kept in the browser
    "TF_CPP_MIN_LOG_LEVEL": "2",
}


@dataclass(frozen=True)
class AppSettings:
    """Options of ``fetal app``.

    Attributes:
        host: address the server listens on (default 127.0.0.1: this machine only).
        port: TCP port (1-65535).
        models_dir: folder of the trained models (default ``<build>/models``).
        max_upload_mb: largest file accepted, in MiB (larger uploads are refused in the page).
        device: where the PyTorch models run (``auto``: a CUDA GPU when torch sees one; ``cpu``; ``cuda``).
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    models_dir: Path | None = None
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB
    device: str = "auto"

    @property
    def models(self) -> Path:
        """The models folder: ``models_dir`` or ``<build>/models``."""

        return Path(self.models_dir) if self.models_dir is not None else build_dir() / "models"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def is_loopback(self) -> bool:
        """True if only this machine can reach the server."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def check(self) -> "AppSettings":
        """Refuse options the server cannot start with (FetalInputError, one line)."""
        if not 1 <= int(self.port) <= 65535:
            raise FetalInputError(None, f"--port must be 1-65535, got {self.port}")
        if not (self.max_upload_mb > 0):
            raise FetalInputError(None, f"--max-upload-mb must be a positive number of MiB, got {self.max_upload_mb}")
        if self.models.exists() and not self.models.is_dir():
            raise FetalInputError(self.models, "--models-dir is a file, not a folder")

        checked_device(self.device)  # --device cuda without a GPU: one line, before anything starts
        return self


def offline_environment(temp_dir: str | Path) -> dict[str, str]:
    """Set (in ``os.environ``) and return the variables that keep Gradio offline and its files in ``temp_dir``."""
    env = {**OFFLINE_ENVIRONMENT, "GRADIO_TEMP_DIR": str(temp_dir)}
    os.environ.update(env)
    return env
