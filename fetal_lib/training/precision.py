"""Training precision chosen from the device that trains. On a CUDA GPU: bfloat16 autocast where
the GPU computes it natively (compute capability 8.0 or later), float32 otherwise; the reason names
the GPU, and nothing is timed on the host CPU. On the CPU: bfloat16 only where the CPU computes it
natively and a probe on this machine measured it faster.

A CPU without AVX-512 BF16 or AMX emulates bfloat16 and trains several times *slower* than in
float32, so ``"auto"``, the default of every profile, is float32 there (decided from the CPU's
flags, ``/proc/cpuinfo``; injectable for tests). Native flags are necessary but not sufficient:
some 2-core machines with them train twice as fast in bfloat16, while a 2-core Intel Xeon VM
with ``avx512_bf16`` (no AMX exposed) trained chapter 1's U-Net at half its float32 speed. So
where the flags allow it, ``auto`` also asks :mod:`fetal_lib.training.precision_probe` (a short
timed training of each precision, cached per machine) and takes bfloat16 only when it measured
at least ``MIN_SPEEDUP`` times as fast. The choice and its figures are recorded. Only the
arithmetic of training changes: the saved models are float32 either way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from fetal_lib.machine import CPUINFO, NATIVE_BF16_FLAGS, REPORTED_FLAGS, cpu_flags, cpu_model, native_bf16  # noqa: F401 (re-exported)
from fetal_lib.devices import training_gpu
from fetal_lib.training import keras_backend
from fetal_lib.training import precision_probe

# Per framework: the name of float32 and of bfloat16 training, and every name a user may set.
FRAMEWORK_NAMES = {
    "keras": {"float32": "float32", "bfloat16": "mixed_bfloat16"},
    "torch": {"float32": "float32", "bfloat16": "bfloat16"},
}
MIN_SPEEDUP = 1.25  # auto takes bfloat16 only if a probe measured it at least this many times as fast as float32


def _measured_speedup(framework: str, xla: bool = False) -> float | None:
    """bfloat16's speed as a multiple of float32's (``xla``: float32 with XLA) from the cached
    probe on this machine; None (the flags then decide alone, with a warning) if the probe cannot run."""
    import warnings


    try:
        return precision_probe.measured(framework).speedup_over(xla)
    except Exception as exc:  # noqa: BLE001 - a broken probe must not stop training
        warnings.warn(f"precision probe not run ({exc}); deciding bfloat16 from the CPU flags alone", RuntimeWarning, stacklevel=3)
        return None


def choices(framework: str) -> tuple[str, ...]:
    """Precision values a profile or ``--set precision=...`` may give for ``framework``."""
    names = FRAMEWORK_NAMES[framework]
    return ("auto", names["float32"], names["bfloat16"])


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a run trains in, what was asked for, and why."""

    framework: str  # "keras" | "torch"
    requested: str  # "auto" or an explicit name
    precision: str  # the framework's name: float32 | mixed_bfloat16 (keras) | bfloat16 (torch)
    reason: str
    speedup: float | None = None  # bfloat16's measured speed as a multiple of float32's (None: not measured)

    @property
    def is_bfloat16(self) -> bool:
        return self.precision != "float32"

    def to_dict(self) -> dict:
        return asdict(self)


def resolve(requested: str, framework: str, flags: Iterable[str] | None = None, speedup: float | None = None,
            xla: bool = False, gpu=None) -> PrecisionChoice:
    """Resolve ``requested`` ("auto", "float32" or the framework's bfloat16 name) for the device that trains:
    the GPU ``gpu`` (a :class:`fetal_lib.devices.GpuInfo`) when given, else this CPU.

    Args:
        requested: the profile's or user's value.
        framework: "keras" or "torch".
        flags: CPU flags to decide from (default: this machine's, :func:`cpu_flags`).
        speedup: bfloat16's training speed as a multiple of float32's. Default: measured on this
            machine by :func:`fetal_lib.training.precision_probe.measured` (cached) when ``flags``
            is this machine's; with injected ``flags`` and no ``speedup``, the flags alone decide.
        xla: the caller's float32 training is XLA-compiled (Keras ``jit_compile``): the probe then
            compares bfloat16 with that, the float32 it would otherwise get.
        gpu: the CUDA GPU that trains (None: the CPU trains). ``auto`` is then bfloat16 exactly when
            it computes bfloat16 natively; the CPU's flags and probe play no part.

    Raises:
        ValueError: an unknown framework or precision name.
    """
    if framework not in FRAMEWORK_NAMES:
        raise ValueError(f"framework must be one of {', '.join(FRAMEWORK_NAMES)}, got {framework!r}")
    allowed = choices(framework)
    if requested not in allowed:
        raise ValueError(f"precision must be one of {', '.join(allowed)}, got {requested!r}")
    names = FRAMEWORK_NAMES[framework]
    if gpu is not None:
        return _resolve_on_gpu(requested, names, framework, gpu)
    found = native_bf16(cpu_flags() if flags is None else flags)
    if requested == "auto":
        if found:
            if speedup is None and flags is None:
                speedup = _measured_speedup(framework, bool(xla))
            has = f"auto: the CPU has native bfloat16 ({', '.join(found)})"
            if speedup is None:
                return PrecisionChoice(framework, requested, names["bfloat16"], has)
            if speedup >= MIN_SPEEDUP:
                return PrecisionChoice(framework, requested, names["bfloat16"],
                                       f"{has} and a training probe ran it {speedup:.2f}x as fast as float32{' (XLA)' if xla else ''}", round(float(speedup), 3))
            return PrecisionChoice(framework, requested, names["float32"],
                                   f"{has}, but a training probe on this machine ran it at {speedup:.2f}x float32{' (XLA)' if xla else ''}'s speed "
                                   f"(bfloat16 needs {MIN_SPEEDUP:g}x), so float32", round(float(speedup), 3))
        return PrecisionChoice(framework, requested, names["float32"],
                               f"auto: the CPU has no native bfloat16 ({' / '.join(NATIVE_BF16_FLAGS)} absent), so bfloat16 would be emulated and slow")
    if requested == names["bfloat16"] and not found:
        return PrecisionChoice(framework, requested, requested,
                               "set explicitly; WARNING: this CPU has no native bfloat16, so it is emulated and training is slow")
    return PrecisionChoice(framework, requested, requested, "set explicitly")


def _resolve_on_gpu(requested: str, names: dict[str, str], framework: str, gpu) -> PrecisionChoice:
    """The choice on a CUDA GPU: native bfloat16 from compute capability 8.0 (Ampere) on."""
    where = f"the GPU {gpu.describe()}"
    if requested == "auto":
        if gpu.bf16:
            return PrecisionChoice(framework, requested, names["bfloat16"], f"auto: {where} computes bfloat16 natively")
        return PrecisionChoice(framework, requested, names["float32"],
                               f"auto: {where} has no native bfloat16 (compute capability below 8.0), so float32")
    if requested == names["bfloat16"] and not gpu.bf16:
        return PrecisionChoice(framework, requested, requested,
                               f"set explicitly; WARNING: {where} has no native bfloat16, so it is emulated and training is slow")
    return PrecisionChoice(framework, requested, requested, f"set explicitly, on {where}")


def resolve_for_device(requested: str, framework: str, device: str | None = "auto", flags: Iterable[str] | None = None) -> PrecisionChoice:
    """:func:`resolve` on the device the ``device`` knob (``auto``, ``cpu``, ``cuda``) trains on here: the
    GPU's rule on CUDA; the CPU's otherwise (or ``flags``, when given, which always mean a CPU)."""

    gpu = training_gpu(device) if flags is None else None
    return resolve(str(requested), framework, flags, gpu=gpu)


def resolve_for_keras(requested: str, flags: Iterable[str] | None = None, xla: bool = False) -> PrecisionChoice:
    """:func:`resolve` for a Keras chapter on the device its backend computes on: the GPU's rule where
    Keras sees a CUDA GPU, the CPU's otherwise (or ``flags``, when given, which always mean a CPU).
    ``xla`` counts only on TensorFlow (XLA is TensorFlow's compiler)."""
    gpu = None
    if flags is None:

        gpu = keras_backend.gpu()
        xla = bool(xla) and keras_backend.compiles_with_xla()
    return resolve(str(requested), "keras", flags, xla=bool(xla), gpu=gpu)


def resolve_knobs_for_keras(settings: Mapping[str, Any], flags: Iterable[str] | None = None) -> PrecisionChoice:
    """:func:`resolve_for_keras` of a Keras chapter's knobs: its ``precision``, with XLA where its
    ``jit_compile`` is on."""
    return resolve_for_keras(str(settings["precision"]), flags, xla=bool(settings.get("jit_compile")))
