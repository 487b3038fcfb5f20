"""Provenance of a chapter run: code version, packages, machine (no host name).

Everything here is cheap and import-free: package versions are read with
``importlib.metadata`` (TensorFlow and PyTorch are never imported to ask them).
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from fetal_lib.paths import REPO_ROOT
from fetal_lib.machine import cpu_flags, cpu_model, native_bf16

# Distribution names whose versions every metrics.json records (absent ones are None).
PACKAGES = (
    "fetal-lib",
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "SimpleITK",
    "nibabel",
    "opencv-python-headless",
    "matplotlib",
    "tensorflow-cpu",
    "tensorflow",
    "keras",
    "torch",
    "captum",
    "papermill",
    "jupytext",
    "jupyter-book",
)


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (None when not installed); nothing is imported."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@lru_cache(maxsize=4)
def package_sha256(root: Path | None = None) -> str:
    """SHA-256 over the relative paths and bytes of every file of the ``fetal_lib`` package
    (``__pycache__`` left out); computed once per process. It names the code that ran where the git
    state cannot (a copy of the tree on another machine, an unpacked release)."""
    root = Path(root) if root is not None else Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def git_state(repo: Path = REPO_ROOT) -> dict[str, Any]:
    """``{"sha": <40 hex> | "unknown", "dirty": bool | None}`` of the repository at ``repo``.

    ``dirty`` is True when the work tree differs from the commit (modified tracked files or
    untracked, non-ignored files such as a new notebook);
    outside a git checkout (e.g. an unpacked release) both are unknown.
    """
    sha = _git(["rev-parse", "HEAD"], repo)
    if not sha:
        return {"sha": "unknown", "dirty": None}
    status = _git(["status", "--porcelain"], repo)
    return {"sha": sha, "dirty": None if status is None else bool(status)}


def _total_ram_gib() -> float | None:
    try:
        pages = os.sysconf("SC_PHYS_PAGES")
        page_size = os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return round(pages * page_size / 2**30, 1)


def gpu_names() -> list[str]:
    """The NVIDIA GPUs of this machine as ``nvidia-smi`` names them ([] where there is none or no
    ``nvidia-smi``): asked without importing a framework."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def describe_machine(summary: dict[str, Any]) -> str:
    """One line for a reader: ``NVIDIA H200 GPU; AMD EPYC, 16 CPU cores, 128 GiB`` (no host name)."""
    gpus = summary.get("gpus") or []
    cpu = f"{summary.get('cpu_model', 'unknown CPU')}, {summary.get('cpu_usable') or summary.get('cpu_count')} CPU cores"
    if summary.get("ram_gib"):
        cpu += f", {summary['ram_gib']:g} GiB"
    if not gpus:
        return cpu
    counted = {name: gpus.count(name) for name in dict.fromkeys(gpus)}
    return "; ".join([", ".join(f"{n}x {name}" if n > 1 else name for name, n in counted.items()) + " GPU", cpu])


def machine_summary() -> dict[str, Any]:
    """CPU model and its bfloat16 flags, CPU count, RAM (GiB), the NVIDIA GPUs, OS and Python version;
    deliberately no host or user name."""

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        usable = os.cpu_count()
    return {
        "cpu_model": cpu_model(),
        "cpu_native_bf16": native_bf16(cpu_flags()),
        "cpu_count": os.cpu_count(),
        "cpu_usable": usable,
        "ram_gib": _total_ram_gib(),
        "gpus": gpu_names(),
        "machine": platform.machine(),
        "system": platform.system(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
    }
