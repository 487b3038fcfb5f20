"""fetal_lib.app.settings: options checked, Gradio kept offline."""

from __future__ import annotations

import os

import pytest

from fetal_lib.app.settings import OFFLINE_ENVIRONMENT, AppSettings, offline_environment
from fetal_lib.errors import FetalInputError


def test_defaults_serve_this_machine_only_from_the_build_models(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("FETAL_BUILD_DIR", str(tmp_path))
    s = AppSettings()
    assert (s.host, s.port, s.max_upload_mb) == ("127.0.0.1", 7860, 50.0)
    assert s.models == tmp_path / "models"
    assert s.is_loopback and s.max_upload_bytes == 50 * 1024 * 1024


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("localhost", True), ("::1", True), ("0.0.0.0", False),
                                            ("192.168.1.4", False), ("example.org", False)])
def test_loopback(host: str, loopback: bool) -> None:
    assert AppSettings(host=host).is_loopback is loopback


@pytest.mark.parametrize("settings, words", [(AppSettings(port=0), "--port"), (AppSettings(port=70000), "--port"),
                                             (AppSettings(max_upload_mb=0), "--max-upload-mb"),
                                             (AppSettings(max_upload_mb=float("nan")), "--max-upload-mb")])
def test_bad_options_are_one_line(settings: AppSettings, words: str) -> None:
    with pytest.raises(FetalInputError, match=words) as info:
        settings.check()
    assert "\n" not in str(info.value)


def test_a_file_as_models_dir_is_refused(tmp_path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(FetalInputError, match="is a file"):
        AppSettings(models_dir=tmp_path / "f").check()
    assert AppSettings(models_dir=tmp_path / "absent").check().models == tmp_path / "absent"  # absent: tabs say so


def test_offline_environment(monkeypatch, tmp_path) -> None:
    for key in [*OFFLINE_ENVIRONMENT, "GRADIO_TEMP_DIR"]:
        monkeypatch.delenv(key, raising=False)
    env = offline_environment(tmp_path)
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False" and os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["GRADIO_TEMP_DIR"] == str(tmp_path) and env["GRADIO_SHARE"] == "False"
