"""What ``fetal lab`` starts: JupyterLab on 127.0.0.1 over the repository, chapters as notebooks.

- ``notebooks/*.py`` open as notebooks through jupytext's contents manager (its Lab and server
  extensions ship with the ``jupytext`` package); ``jupytext.toml`` at the repository root pairs
  each with ``build/lab/NN_slug.ipynb`` (git-ignored), which keeps the outputs of an interactive
  run. Saving in Lab writes the ``.py`` (the source under version control) and that ``.ipynb``.
- Kernels are this environment's Python, started in the repository root
  (:mod:`fetal_lib.lab.kernel`), through a ``python3`` kernelspec written under
  ``<build>/lab/jupyter/`` and put first on ``JUPYTER_PATH`` for the Lab process only.
- ``--data-dir`` becomes ``$FETAL_DATA_DIR`` for the kernels (a chapter's ``data_dir = ""``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Mapping

from fetal_lib.paths import REPO_ROOT, build_dir
from fetal_lib.book.execute import ensure_kernel

KERNEL_MODULE = "fetal_lib.lab.kernel"


def lab_dir() -> Path:
    """``<build>/lab``: the kernelspec of ``fetal lab`` (and, by jupytext.toml, the paired notebooks)."""
    return build_dir() / "lab"


def write_kernelspec(root: Path | None = None) -> Path:
    """Write the ``python3`` kernelspec of ``fetal lab`` under ``root/jupyter/kernels/``; return its folder.

    It is this environment's own ipykernel spec (display name, encryption support, debugger)
    with the launcher replaced by :mod:`fetal_lib.lab.kernel`.
    """

    base = json.loads((ensure_kernel() / "kernel.json").read_text(encoding="utf-8"))
    argv = [sys.executable if i == 0 else a for i, a in enumerate(base.get("argv") or [sys.executable])]
    argv = [KERNEL_MODULE if a == "ipykernel_launcher" else a for a in argv]
    if KERNEL_MODULE not in argv:
        argv = [sys.executable, "-m", KERNEL_MODULE, "-f", "{connection_file}"]
    spec = {**base, "argv": argv, "display_name": "Python 3 (fetal, repository root)"}
    folder = Path(root or lab_dir()) / "jupyter" / "kernels" / "python3"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kernel.json").write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")
    return folder


def lab_command(port: int, open_browser: bool = False) -> list[str]:
    """``python -m jupyterlab`` on 127.0.0.1:``port`` over the repository root."""
    import zmq

    cmd = [
        sys.executable, "-m", "jupyterlab",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={REPO_ROOT}",
        "--LabApp.extension_manager=readonly",  # no extension search on PyPI from the browser
        "--LabApp.news_url=",  # no news feed
    ]
    if zmq.has("curve"):  # encrypted kernel sockets (and no "running over TCP without encryption" warning)
        cmd.append("--MappingKernelManager.transport_encryption=auto")
    if not open_browser:
        cmd.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers and CI run as root
    return cmd


def lab_environment(data_dir: str | Path | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The Lab process's environment: our kernelspec first on ``JUPYTER_PATH``; ``FETAL_DATA_DIR`` from ``data_dir``."""
    env = dict(os.environ if base is None else base)
    share = str(lab_dir() / "jupyter")
    env["JUPYTER_PATH"] = os.pathsep.join(p for p in (share, env.get("JUPYTER_PATH", "")) if p)
    if data_dir not in (None, ""):
        env["FETAL_DATA_DIR"] = str(Path(data_dir).expanduser().resolve())
    return env
