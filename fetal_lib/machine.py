"""The machine's CPU facts, read from ``/proc/cpuinfo``: model name, flags, and which flags give native bfloat16."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

# The CPU description read for flags and model name. FETAL_CPUINFO names another file in the same
# format: tools/emulate_avx2.sh uses it to stand in for a CPU without native bfloat16.
CPUINFO = Path(os.environ.get("FETAL_CPUINFO") or "/proc/cpuinfo")
# CPU flags (as /proc/cpuinfo spells them) that mean native bfloat16 arithmetic.
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# Flags worth printing when one asks why a machine is fast or slow.
REPORTED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def cpu_flags(cpuinfo: str | Path = CPUINFO) -> frozenset[str]:
    """The CPU flags of the first processor in ``cpuinfo`` (empty if the file is unreadable)."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("flags", "Features"):  # x86 / arm
            return frozenset(value.split())
    return frozenset()


def cpu_model(cpuinfo: str | Path = CPUINFO) -> str:
    """The CPU's model name from ``cpuinfo`` ("unknown" if absent)."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "unknown"
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "model name":
            return value.strip()
    return "unknown"


def native_bf16(flags: Iterable[str]) -> list[str]:
    """The flags among ``flags`` that give native bfloat16 (empty: none)."""
    flags = set(flags)
    return [f for f in NATIVE_BF16_FLAGS if f in flags]


def usable_cpus() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. under ``taskset``; at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def thread_count(requested: int) -> int:
    """``requested`` threads, capped at :func:`usable_cpus`: more threads than cores slow training
    (two threads on one core trained chapter 1's U-Net at 3.6 images/s, one thread at 6.2)."""
    return max(1, min(int(requested), usable_cpus()))
