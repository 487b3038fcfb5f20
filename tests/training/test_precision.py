"""Precision ``auto``: bfloat16 only on a CPU with native bfloat16 flags (the flag source is injected)."""

from __future__ import annotations

import pytest

from fetal_lib.training import precision

AMD_EPYC = "fpu vme sse sse2 avx f16c avx2 fma bmi2 sha_ni vaes"  # no AVX-512 at all
SAPPHIRE_RAPIDS = "sse2 avx2 fma avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8"


def _cpuinfo(tmp_path, flags: str, model: str = "Test CPU"):
    path = tmp_path / "cpuinfo"
    block = f"processor\t: 0\nmodel name\t: {model}\nflags\t\t: {flags}\n\n"
    path.write_text(block + block.replace("processor\t: 0", "processor\t: 1"))
    return path


def test_flags_and_model_are_read_from_cpuinfo(tmp_path):
    path = _cpuinfo(tmp_path, SAPPHIRE_RAPIDS, "Intel(R) Xeon(R) Platinum 8481C")
    assert precision.cpu_flags(path) == frozenset(SAPPHIRE_RAPIDS.split())
    assert precision.cpu_model(path) == "Intel(R) Xeon(R) Platinum 8481C"
    assert precision.cpu_flags(tmp_path / "absent") == frozenset() and precision.cpu_model(tmp_path / "absent") == "unknown"


@pytest.mark.parametrize("framework, bf16_name", [("keras", "mixed_bfloat16"), ("torch", "bfloat16")])
def test_auto_is_float32_without_native_bfloat16(framework, bf16_name):
    choice = precision.resolve("auto", framework, AMD_EPYC.split())
    assert choice.precision == "float32" and not choice.is_bfloat16
    assert "no native bfloat16" in choice.reason and choice.requested == "auto"


@pytest.mark.parametrize("framework, bf16_name", [("keras", "mixed_bfloat16"), ("torch", "bfloat16")])
@pytest.mark.parametrize("flag", ["avx512_bf16", "amx_bf16"])
def test_auto_is_bfloat16_with_either_flag(framework, bf16_name, flag):
    choice = precision.resolve("auto", framework, ["avx2", flag])
    assert choice.precision == bf16_name and choice.is_bfloat16 and flag in choice.reason


def test_avx512f_alone_is_not_native_bfloat16():
    assert precision.resolve("auto", "keras", ["avx2", "avx512f", "avx512_vnni"]).precision == "float32"


def test_explicit_values_are_kept_and_emulated_bfloat16_is_flagged():
    assert precision.resolve("float32", "keras", SAPPHIRE_RAPIDS.split()).precision == "float32"
    slow = precision.resolve("mixed_bfloat16", "keras", AMD_EPYC.split())
    assert slow.precision == "mixed_bfloat16" and "WARNING" in slow.reason and "emulated" in slow.reason
    assert "WARNING" not in precision.resolve("bfloat16", "torch", SAPPHIRE_RAPIDS.split()).reason


def test_bad_names_are_refused():
    with pytest.raises(ValueError, match="one of auto, float32, mixed_bfloat16"):
        precision.resolve("float16", "keras", [])
    with pytest.raises(ValueError, match="one of auto, float32, bfloat16"):
        precision.resolve("mixed_bfloat16", "torch", [])
    with pytest.raises(ValueError, match="framework"):
        precision.resolve("auto", "jax", [])


def test_default_flag_source_is_this_machine(tmp_path, monkeypatch):
    monkeypatch.setenv("FETAL_PROBE_CACHE", str(tmp_path / "probe.json"))
    monkeypatch.setattr(precision, "_measured_speedup", lambda framework, xla=False: 2.0)
    here = precision.resolve("auto", "keras")
    assert here.is_bfloat16 == bool(precision.native_bf16(precision.cpu_flags()))


@pytest.mark.parametrize("framework, bf16_name", [("keras", "mixed_bfloat16"), ("torch", "bfloat16")])
def test_native_flags_but_a_slow_probe_give_float32(framework, bf16_name):
    slow = precision.resolve("auto", framework, SAPPHIRE_RAPIDS.split(), speedup=0.5)
    assert slow.precision == "float32" and slow.speedup == 0.5 and "0.50x" in slow.reason and "avx512_bf16" in slow.reason
    fast = precision.resolve("auto", framework, SAPPHIRE_RAPIDS.split(), speedup=1.9)
    assert fast.precision == bf16_name and fast.speedup == 1.9 and "1.90x as fast" in fast.reason
    edge = precision.resolve("auto", framework, SAPPHIRE_RAPIDS.split(), speedup=precision.MIN_SPEEDUP)
    assert edge.is_bfloat16
    # without native flags the probe is never consulted: bfloat16 would be emulated
    assert precision.resolve("auto", framework, AMD_EPYC.split(), speedup=5.0).precision == "float32"


def test_this_machine_asks_the_probe_only_when_the_flags_allow_bfloat16(monkeypatch):
    asked = []
    monkeypatch.setattr(precision, "_measured_speedup", lambda framework, xla=False: asked.append((framework, xla)) or 0.5)
    choice = precision.resolve("auto", "torch")
    xla_choice = precision.resolve("auto", "keras", xla=True)
    if precision.native_bf16(precision.cpu_flags()):
        assert asked == [("torch", False), ("keras", True)] and choice.precision == "float32" and choice.speedup == 0.5
        assert "float32 (XLA)'s speed" in xla_choice.reason
    else:
        assert asked == [] and choice.precision == "float32"
    assert precision.resolve("float32", "torch").speedup is None and len(asked) <= 2


def test_auto_on_a_gpu_follows_its_compute_capability_and_times_nothing_on_the_cpu(monkeypatch) -> None:
    from fetal_lib.training import precision
    from fetal_lib.devices import GpuInfo

    def no_probe(*args, **kwargs):
        raise AssertionError("the CPU probe must not decide for a GPU")

    monkeypatch.setattr(precision, "_measured_speedup", no_probe)
    h200 = GpuInfo("NVIDIA H200", 139.8, (9, 0))
    choice = precision.resolve("auto", "torch", gpu=h200)
    assert choice.precision == "bfloat16" and "NVIDIA H200" in choice.reason and "compute capability 9.0" in choice.reason
    v100 = GpuInfo("Tesla V100", 16.0, (7, 0))
    assert precision.resolve("auto", "torch", gpu=v100).precision == "float32"
    forced = precision.resolve("bfloat16", "torch", gpu=v100)
    assert forced.precision == "bfloat16" and "WARNING" in forced.reason and "Tesla V100" in forced.reason
    assert precision.resolve("float32", "torch", gpu=h200).precision == "float32"
