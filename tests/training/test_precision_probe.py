"""The bfloat16 probe: cached per machine, refreshed when the machine key changes, real on torch."""

from __future__ import annotations

import json

import pytest

from fetal_lib.training import precision_probe


def test_a_matching_cache_entry_is_used_without_measuring(tmp_path, monkeypatch):
    path = tmp_path / "probe.json"
    key = precision_probe.machine_key("torch")
    path.write_text(json.dumps({"torch": {"float32_s_per_step": 0.2, "bfloat16_s_per_step": 0.1, "machine_key": key}}))
    monkeypatch.setattr(precision_probe.subprocess, "run", lambda *a, **k: pytest.fail("the probe ran despite a cached answer"))
    result = precision_probe.measured("torch", path=path)
    assert result.speedup == pytest.approx(2.0) and result.machine_key == key


def test_a_stale_key_measures_again_and_rewrites_the_cache(tmp_path, monkeypatch):
    path = tmp_path / "probe.json"
    path.write_text(json.dumps({"torch": {"float32_s_per_step": 9, "bfloat16_s_per_step": 1, "machine_key": "another machine"},
                                "keras": {"kept": True}}))

    class Done:
        returncode, stderr = 0, ""
        stdout = 'noise\n{"float32": 0.3, "bfloat16": 0.6}\n'

    monkeypatch.setattr(precision_probe.subprocess, "run", lambda *a, **k: Done())
    result = precision_probe.measured("torch", path=path)
    assert result.speedup == pytest.approx(0.5)
    doc = json.loads(path.read_text())
    assert doc["torch"]["machine_key"] == precision_probe.machine_key("torch") and doc["keras"] == {"kept": True}
    assert not list(tmp_path.glob("*.tmp"))


def test_a_failed_probe_is_an_error_naming_the_framework(tmp_path, monkeypatch):
    class Failed:
        returncode, stdout, stderr = 1, "", "Traceback ...\nImportError: no torch here"

    monkeypatch.setattr(precision_probe.subprocess, "run", lambda *a, **k: Failed())
    with pytest.raises(RuntimeError, match="torch precision probe failed: ImportError: no torch here"):
        precision_probe.measured("torch", path=tmp_path / "p.json")
    assert not (tmp_path / "p.json").exists()


def test_keras_figures_weigh_bfloat16_against_the_float32_a_chapter_would_get(tmp_path, monkeypatch):
    path = tmp_path / "probe.json"
    key = precision_probe.machine_key("keras")
    path.write_text(json.dumps({"keras": {"float32_s_per_step": 0.6, "float32_xla_s_per_step": 0.3, "bfloat16_s_per_step": 0.4,
                                          "machine_key": key}}))
    result = precision_probe.measured("keras", path=path)
    assert result.speedup_over(False) == pytest.approx(1.5) and result.speedup_over(True) == pytest.approx(0.75)
    assert result.to_dict()["speedup_over_xla"] == pytest.approx(0.75)
    torch_only = precision_probe.ProbeResult("torch", 0.2, 0.1, "k")
    assert torch_only.speedup_over(True) == torch_only.speedup == pytest.approx(2.0)  # no XLA figure: float32 as it is


def test_the_torch_probe_times_both_precisions_on_this_machine():
    figures = precision_probe._probe_torch()
    assert set(figures) == {"float32", "bfloat16"} and all(0 < v < 30 for v in figures.values())


def test_the_cache_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FETAL_PROBE_CACHE", str(tmp_path / "x.json"))
    assert precision_probe.cache_path() == tmp_path / "x.json"
    monkeypatch.delenv("FETAL_PROBE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert precision_probe.cache_path() == tmp_path / "fetal_lib" / "precision_probe.json"


def test_the_command_line_refuses_an_unknown_framework(capsys):
    assert precision_probe.main(["jax"]) == 2 and "usage" in capsys.readouterr().err
