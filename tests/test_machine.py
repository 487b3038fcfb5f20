"""fetal_lib.machine: thread counts capped at the usable cores, and tools/emulate_avx2.sh's stand-in CPU."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fetal_lib import machine

ROOT = Path(__file__).resolve().parent.parent


def test_threads_are_capped_at_the_usable_cores(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert machine.usable_cpus() == 1 and machine.thread_count(2) == 1 and machine.thread_count(0) == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert machine.thread_count(2) == 2 and machine.thread_count(8) == 4


@pytest.mark.skipif(shutil.which("taskset") is None, reason="taskset (util-linux) is not installed")
def test_the_avx2_emulation_hides_avx512_and_bfloat16_and_pins_one_core(tmp_path):
    code = ("import os; from fetal_lib import machine as m; f = m.cpu_flags(m.CPUINFO); "
            "print(m.usable_cpus(), 'avx2' in f, any(x.startswith(('avx512', 'amx')) for x in f), m.native_bf16(f), "
            "os.environ['ONEDNN_MAX_CPU_ISA'], os.environ['ATEN_CPU_CAPABILITY'], '(emulated' in m.cpu_model(m.CPUINFO))")
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    out = subprocess.run([str(ROOT / "tools" / "emulate_avx2.sh"), sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True, env=env).stdout.split()
    has_avx2 = "avx2" in machine.cpu_flags()
    assert out == ["1", str(has_avx2), "False", "[]", "AVX2", "avx2", "True"]
    assert not list(tmp_path.iterdir())  # its stand-in cpuinfo is removed
