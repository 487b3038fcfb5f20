"""The "Papermill by hand" commands of docs/reproduce.md, run as written (outputs moved to a temporary folder)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from fetal_lib.paths import REPO_ROOT


def readme_commands() -> list[list[str]]:
    """The shell commands of the docs/reproduce.md block that follows "**Papermill by hand.**"."""
    text = (REPO_ROOT / "docs" / "reproduce.md").read_text()
    block = re.search(r"\*\*Papermill by hand\.\*\*.*?```bash\n(.*?)```", text, re.S)
    assert block, "docs/reproduce.md: no Papermill by hand block"
    return [shlex.split(cmd) for cmd in block.group(1).replace("\\\n", " ").strip().splitlines()]


@pytest.mark.slow
def test_papermill_by_hand_runs_chapter_0_and_records_the_changed_knob(tmp_path):
    commands = readme_commands()
    assert [c[0] for c in commands] == [".venv/bin/jupytext", ".venv/bin/papermill"]
    env = {**os.environ, "FETAL_BUILD_DIR": str(tmp_path / "build"), "PYTHONPATH": str(REPO_ROOT)}
    for cmd in commands:
        tool = cmd[0].rsplit("/", 1)[1]
        args = [a.replace("build/lab/", f"{tmp_path}/") for a in cmd[1:]]
        done = subprocess.run([sys.executable, "-m", tool, *args], cwd=REPO_ROOT, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    executed = json.loads((tmp_path / "00_data.out.ipynb").read_text())
    assert any(c.get("outputs") for c in executed["cells"] if c["cell_type"] == "code")
    doc = json.loads((tmp_path / "results" / "data" / "metrics.json").read_text())
    assert doc["provenance"]["overrides"] == {"n_samples": 2}
    assert doc["provenance"]["on_phantom"] is True
