"""Provenance: git state, package versions without importing heavy libraries, machine summary."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from importlib import metadata

import pytest

from fetal_lib.provenance import git_state, machine_summary, package_versions


def test_package_versions_match_metadata_and_absent_is_none():
    got = package_versions(("numpy", "no-such-distribution-xyz"))
    assert got == {"numpy": metadata.version("numpy"), "no-such-distribution-xyz": None}


def test_package_versions_does_not_import_tensorflow_or_torch():
    code = (
        "import sys; from fetal_lib.provenance import package_versions; v = package_versions(); "
        "print(v['torch'] is not None, 'torch' in sys.modules, 'tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[1:] == ["False", "False"]


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_git_state_sha_and_dirty_flag(tmp_path):
    assert git_state(tmp_path) == {"sha": "unknown", "dirty": None}
    env_git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "a.txt").write_text("1")
    subprocess.run(["git", "-C", str(tmp_path), "add", "a.txt"], check=True)
    subprocess.run([*env_git, "-C", str(tmp_path), "commit", "-qm", "x"], check=True)
    sha = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert git_state(tmp_path) == {"sha": sha, "dirty": False}
    (tmp_path / "a.txt").write_text("2")
    assert git_state(tmp_path) == {"sha": sha, "dirty": True}


def test_machine_summary_has_resources_but_no_host_name():
    summary = machine_summary()
    assert summary["cpu_count"] >= 1 and summary["ram_gib"] > 0
    text = json.dumps(summary)
    host = socket.gethostname()
    assert len(host) < 3 or host not in text


def test_the_machine_line_names_the_gpu_first_and_no_host(tmp_path, monkeypatch):
    from fetal_lib.provenance import describe_machine, gpu_names

    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'NVIDIA H200'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert gpu_names() == ["NVIDIA H200"]
    summary = {"cpu_model": "AMD EPYC", "cpu_usable": 16, "cpu_count": 16, "ram_gib": 128.0, "gpus": ["NVIDIA H200", "NVIDIA H200"]}
    assert describe_machine(summary) == "2x NVIDIA H200 GPU; AMD EPYC, 16 CPU cores, 128 GiB"
    assert describe_machine({**summary, "gpus": []}) == "AMD EPYC, 16 CPU cores, 128 GiB"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert gpu_names() == []  # no nvidia-smi: no GPU, no error
