"""fetal_lib.app.server: the launch options keep the app offline and on this machine; bad options are
refused before anything starts (the server itself runs in tests/app/test_browser.py)."""

from __future__ import annotations

import pytest

from fetal_lib.app.server import launch_options, serve
from fetal_lib.app.settings import AppSettings
from fetal_lib.errors import FetalInputError


def test_launch_options() -> None:
    options = launch_options(AppSettings(port=8123, max_upload_mb=2))
    assert options["share"] is False and options["server_name"] == "127.0.0.1" and options["server_port"] == 8123
    assert options["max_file_size"] == 2 * 1024 * 1024
    assert options["enable_monitoring"] is False and options["run_history"] is False and options["ssr_mode"] is False
    assert options["footer_links"] == [] and options["mcp_server"] is False


def test_bad_options_stop_before_anything_starts(tmp_path, monkeypatch) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(FetalInputError, match="--port"):
        serve(AppSettings(port=0))
    assert list(tmp_path.iterdir()) == []  # no temporary folder was made
