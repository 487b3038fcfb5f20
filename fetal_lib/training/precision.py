"""Training precision chosen from the CPU: bfloat16 only where the CPU computes it natively.

A 2-core machine with AVX-512 BF16 or AMX trains the chapters' networks about twice as fast
in bfloat16 (Keras ``mixed_bfloat16``, torch CPU autocast); a CPU without them emulates
bfloat16 and trains several times *slower* than in float32. So ``"auto"``, the default of
every profile, resolves from the CPU's flags (``/proc/cpuinfo``; injectable for tests) and
records why. Only the arithmetic of training changes: the saved models are float32 either way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

# CPU flags (as /proc/cpuinfo spells them) that mean native bfloat16 arithmetic.
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# Flags worth printing when one asks why a machine is fast or slow.
REPORTED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")

# Per framework: the name of float32 and of bfloat16 training, and every name a user may set.
FRAMEWORK_NAMES = {
    "keras": {"float32": "float32", "bfloat16": "mixed_bfloat16"},
    "torch": {"float32": "float32", "bfloat16": "bfloat16"},
}
CPUINFO = Path("/proc/cpuinfo")


def choices(framework: str) -> tuple[str, ...]:
    """Precision values a profile or ``--set precision=...`` may give for ``framework``."""
    names = FRAMEWORK_NAMES[framework]
    return ("auto", names["float32"], names["bfloat16"])


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


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a run trains in, what was asked for, and why."""

    framework: str  # "keras" | "torch"
    requested: str  # "auto" or an explicit name
    precision: str  # the framework's name: float32 | mixed_bfloat16 (keras) | bfloat16 (torch)
    reason: str

    @property
    def is_bfloat16(self) -> bool:
        return self.precision != "float32"

    def to_dict(self) -> dict:
        return asdict(self)


def resolve(requested: str, framework: str, flags: Iterable[str] | None = None) -> PrecisionChoice:
    """Resolve ``requested`` ("auto", "float32" or the framework's bfloat16 name) for this CPU.

    Args:
        requested: the profile's or user's value.
        framework: "keras" or "torch".
        flags: CPU flags to decide from (default: this machine's, :func:`cpu_flags`).

    Raises:
        ValueError: an unknown framework or precision name.
    """
    if framework not in FRAMEWORK_NAMES:
        raise ValueError(f"framework must be one of {', '.join(FRAMEWORK_NAMES)}, got {framework!r}")
    allowed = choices(framework)
    if requested not in allowed:
        raise ValueError(f"precision must be one of {', '.join(allowed)}, got {requested!r}")
    names = FRAMEWORK_NAMES[framework]
    found = native_bf16(cpu_flags() if flags is None else flags)
    if requested == "auto":
        if found:
            return PrecisionChoice(framework, requested, names["bfloat16"], f"auto: the CPU has native bfloat16 ({', '.join(found)})")
        return PrecisionChoice(framework, requested, names["float32"],
                               f"auto: the CPU has no native bfloat16 ({' / '.join(NATIVE_BF16_FLAGS)} absent), so bfloat16 would be emulated and slow")
    if requested == names["bfloat16"] and not found:
        return PrecisionChoice(framework, requested, requested,
                               "set explicitly; WARNING: this CPU has no native bfloat16, so it is emulated and training is slow")
    return PrecisionChoice(framework, requested, requested, "set explicitly")
