"""`make lab` / `fetal lab`: JupyterLab on 127.0.0.1, chapters opened as notebooks, kernels in the repository root."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from fetal_lib.cli import main
from fetal_lib.lab.server import KERNEL_MODULE, lab_command, lab_environment, write_kernelspec
from fetal_lib.paths import NOTEBOOK_DIR, REPO_ROOT

CHAPTER = "notebooks/01_hc18_unet.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, token: str, method: str = "GET", timeout: float = 10) -> tuple[int, dict]:
    req = urllib.request.Request(url, method=method, headers={"Authorization": f"token {token}"},
                                 data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        body = resp.read()
        return resp.status, (json.loads(body) if body else {})


def test_the_server_listens_on_loopback_only_over_the_repository():
    cmd = lab_command(9999)
    assert "--ServerApp.ip=127.0.0.1" in cmd and "--ServerApp.port=9999" in cmd and "--no-browser" in cmd
    assert f"--ServerApp.root_dir={REPO_ROOT}" in cmd and "--LabApp.extension_manager=readonly" in cmd
    assert "--no-browser" not in lab_command(9999, open_browser=True)


def test_the_kernels_get_the_data_root_and_our_kernelspec_first(tmp_path, monkeypatch):
    monkeypatch.setenv("FETAL_BUILD_DIR", str(tmp_path))
    env = lab_environment(tmp_path / "data", base={"JUPYTER_PATH": "/elsewhere"})
    assert env["FETAL_DATA_DIR"] == str((tmp_path / "data").resolve())
    assert env["JUPYTER_PATH"].split(os.pathsep) == [str(tmp_path / "lab" / "jupyter"), "/elsewhere"]
    assert "FETAL_DATA_DIR" not in lab_environment(None, base={})
    spec = json.loads((write_kernelspec(tmp_path / "lab") / "kernel.json").read_text())
    assert spec["argv"][0] == sys.executable and spec["argv"][spec["argv"].index("-m") + 1] == KERNEL_MODULE
    assert "{connection_file}" in spec["argv"]


def test_a_bad_port_is_refused(capsys):
    assert main(["lab", "--port", "0"]) == 2
    assert "--port: 0 is not a port number" in capsys.readouterr().err


@pytest.mark.slow
def test_the_lab_kernel_runs_in_the_repository_root(tmp_path, monkeypatch):
    """A kernel started from the notebooks' folder (as Lab starts it) works in the repository root."""
    from jupyter_client.manager import start_new_kernel

    monkeypatch.setenv("FETAL_BUILD_DIR", str(tmp_path))
    write_kernelspec()
    monkeypatch.setenv("JUPYTER_PATH", lab_environment(base={})["JUPYTER_PATH"])
    printed: list[str] = []

    def hook(msg: dict) -> None:
        if msg["msg_type"] == "stream":
            printed.append(msg["content"]["text"])

    km, kc = start_new_kernel(kernel_name="python3", cwd=str(NOTEBOOK_DIR))
    try:
        assert KERNEL_MODULE in km.kernel_spec.argv
        reply = kc.execute_interactive("import os, sys; print(os.getcwd()); print(sys.executable)", timeout=60, output_hook=hook)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert reply["content"]["status"] == "ok"
    assert "".join(printed).split() == [str(REPO_ROOT), sys.executable]


@pytest.mark.slow
def test_make_lab_opens_a_chapter_as_a_notebook(tmp_path):
    """`fetal lab` (what `make lab` runs) on a free port: the REST API opens chapter 1's .py as a
    notebook with its cells and parameters cell, and the server shuts down when asked."""
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_TOKEN": token, "FETAL_BUILD_DIR": str(tmp_path / "build"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "PYTHONPATH": str(REPO_ROOT)}
    before = sorted(p.name for p in NOTEBOOK_DIR.iterdir())
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "fetal_lib.cli", "lab", "--port", str(port)], cwd=tmp_path,
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if _get(f"{base}/api/status", token, timeout=2)[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            assert proc.poll() is None, (tmp_path / "lab.log").read_text()
            assert time.monotonic() < deadline, "JupyterLab did not answer within 90 s:\n" + (tmp_path / "lab.log").read_text()
            time.sleep(0.5)
        status, doc = _get(f"{base}/api/contents/{CHAPTER}?type=notebook&content=1", token)
        assert status == 200 and doc["type"] == "notebook" and doc["path"] == CHAPTER
        cells = doc["content"]["cells"]
        source = (REPO_ROOT / CHAPTER).read_text()
        assert len(cells) == source.count("\n# %%") + source.startswith("# %%")
        params = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
        assert len(params) == 1 and "results_dir" in params[0]["source"]
        assert doc["content"]["metadata"]["kernelspec"]["name"] == "python3"
        _, specs = _get(f"{base}/api/kernelspecs", token)
        assert KERNEL_MODULE in specs["kernelspecs"]["python3"]["spec"]["argv"]
        with pytest.raises(urllib.error.HTTPError):  # the token is required
            _get(f"{base}/api/status", "wrong-token")
        _get(f"{base}/api/shutdown", token, method="POST")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
        log.close()
    assert sorted(p.name for p in NOTEBOOK_DIR.iterdir()) == before, "opening a chapter wrote into notebooks/"


def test_every_chapter_is_paired_with_a_notebook_under_build_lab():
    """jupytext.toml pairs notebooks/NN_slug.py with build/lab/NN_slug.ipynb (outputs kept, git-ignored),
    and no chapter's own header overrides it (a `formats:` line there would)."""
    from jupytext.config import find_jupytext_configuration_file, load_jupytext_configuration_file
    from jupytext.paired_paths import paired_paths

    from fetal_lib.book.chapters import discover
    from fetal_lib.book.execute import read_source

    config = load_jupytext_configuration_file(find_jupytext_configuration_file(str(NOTEBOOK_DIR)))
    for chapter in discover():
        assert "formats" not in read_source(chapter.source).metadata.get("jupytext", {}), chapter.source.name
        paths = [p for p, _ in paired_paths(str(chapter.source), "py:percent", config.default_formats(str(chapter.source)))]
        assert paths == [str(chapter.source), str(REPO_ROOT / "build" / "lab" / f"{chapter.stem}.ipynb")]
