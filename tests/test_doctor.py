"""`fetal doctor`: the machine report (injected /proc/cpuinfo), the command, the chapter estimates."""

from __future__ import annotations

import json

import pytest

from fetal_lib import doctor
from fetal_lib.cli import main


def test_machine_report_from_an_injected_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: sse2 avx2 fma\n")
    report = doctor.machine_report(info)
    assert report["cpu_model"] == "AMD EPYC" and report["native_bf16"] == []
    assert report["flags"]["avx2"] and not report["flags"]["avx512_bf16"] and not report["flags"]["amx_bf16"]
    assert report["precision_auto"]["keras"]["precision"] == "float32" and report["precision_auto"]["torch"]["precision"] == "float32"
    info.write_text("processor\t: 0\nmodel name\t: Xeon\nflags\t\t: avx2 avx512f avx512_bf16 amx_bf16\n")
    report = doctor.machine_report(info)
    assert report["native_bf16"] == ["avx512_bf16", "amx_bf16"]
    assert report["precision_auto"]["keras"]["precision"] == "mixed_bfloat16" and report["precision_auto"]["torch"]["precision"] == "bfloat16"


def test_machine_report_on_a_gpu_machine_from_an_injected_device(tmp_path):
    from fetal_lib.devices import GpuInfo

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Xeon\nflags\t\t: avx2 avx512f avx512_bf16 amx_bf16\n")
    report = doctor.machine_report(info, gpu=GpuInfo("NVIDIA H200", 139.8, (9, 0)))
    assert report["torch_device"] == "cuda" and report["gpu"]["name"] == "NVIDIA H200" and report["gpu"]["capability"] == [9, 0]
    torch_auto = report["precision_auto"]["torch"]
    assert torch_auto["precision"] == "bfloat16" and "NVIDIA H200" in torch_auto["reason"] and "CPU" not in torch_auto["reason"]
    text = doctor.format_report(report, {}, "full")
    assert "GPU: NVIDIA H200, 140 GiB, compute capability 9.0" in text and "on the GPU" in text
    old = doctor.machine_report(info, gpu=GpuInfo("Tesla V100", 16.0, (7, 0)))
    assert old["precision_auto"]["torch"]["precision"] == "float32" and "Tesla V100" in old["precision_auto"]["torch"]["reason"]
    none = doctor.machine_report(info, gpu=None)
    assert none["torch_device"] == "cpu" and none["gpu"] is None
    assert "GPU: none that torch can use" in doctor.format_report(none, {}, "cpu")


def test_a_chapter_that_cannot_be_measured_says_why_and_the_others_go_on(monkeypatch):
    def broken(profile, data_dir):
        raise ImportError("No module named 'tensorflow'")

    monkeypatch.setattr(doctor, "ESTIMATES", {"hc18": broken, "other": lambda p, d: {"data": "phantom", "networks": {}, "training_s": 60.0}})
    monkeypatch.setattr(doctor, "last_run_overhead_s", lambda *a, **k: None)
    est = doctor.chapter_estimates("full", None)
    assert est["hc18"] == {"error": "ImportError: No module named 'tensorflow'"} and est["other"]["training_s"] == 60.0
    text = doctor.format_report(doctor.machine_report(gpu=None), est, "full")
    assert "hc18 (profile full): not measured here (ImportError" in text and "predicted training time: 1.0 min" in text


def test_doctor_without_bench_prints_the_machine(capsys):
    assert main(["doctor", "--skip-bench", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["chapters"] == {} and doc["machine"]["precision_auto"]["keras"]["reason"].startswith("auto:")
    assert main(["doctor", "--skip-bench"]) == 0
    text = capsys.readouterr().out
    assert "precision auto (keras):" in text and "native bfloat16:" in text


def test_the_machine_report_tells_fetals_own_backend_choice_from_the_users(monkeypatch):
    from fetal_lib.training.chapter_backend import AUTO_MARK

    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.delenv(AUTO_MARK, raising=False)
    assert doctor.machine_report(gpu=None)["keras_backend_reason"].startswith("auto:")
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.setenv(AUTO_MARK, "tensorflow")  # as `fetal doctor` itself sets it before the report
    assert doctor.machine_report(gpu=None)["keras_backend_reason"].startswith("auto:")
    monkeypatch.delenv(AUTO_MARK)
    assert "set by the user" in doctor.machine_report(gpu=None)["keras_backend_reason"]


def test_doctor_refuses_an_unknown_chapter(capsys):
    assert main(["doctor", "--only", "no_such_chapter"]) == 2
    assert "unknown chapter(s) no_such_chapter" in capsys.readouterr().err


def test_overhead_comes_from_the_last_real_run_of_the_same_profile(tmp_path):
    folder = tmp_path / "hc18"
    folder.mkdir()
    doc = {"metrics": {"training_seconds": 600.0}, "provenance": {"profile": "cpu", "on_phantom": False, "wall_time_s": 900.0}}
    (folder / "metrics.json").write_text(json.dumps(doc))
    assert doctor.last_run_overhead_s("hc18", "cpu", tmp_path) == pytest.approx(300.0)
    assert doctor.last_run_overhead_s("hc18", "full", tmp_path) is None
    assert doctor.last_run_overhead_s("brain_age", "cpu", tmp_path) is None
    doc["provenance"]["on_phantom"] = True
    (folder / "metrics.json").write_text(json.dumps(doc))
    assert doctor.last_run_overhead_s("hc18", "cpu", tmp_path) is None


@pytest.mark.slow
def test_doctor_measures_the_brain_age_segmenter_on_the_smoke_profile(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("FETAL_BUILD_DIR", str(tmp_path))
    assert main(["doctor", "--profile", "smoke", "--only", "brain_age", "--format", "json"]) == 0
    est = json.loads(capsys.readouterr().out)["chapters"]["brain_age"]
    net = est["networks"]["Res-U-Net segmenter"]
    from fetal_lib.config.profiles import chapter_knobs
    from fetal_lib.book.chapters import spec_of

    assert net["rate"] > 0 and net["unit"] == "subjects/s" and net["epochs"] == chapter_knobs(spec_of("brain_age"), "smoke")["seg_epochs"]
    assert est["training_s"] > 0 and est["predicted_chapter_s"] is None  # no earlier run in this build folder


@pytest.mark.slow
def test_doctor_times_every_chapter3_classifier_on_every_task(capsys, tmp_path, monkeypatch):
    """Chapter 3's prediction: each network's measured rates times its training and validation images over all tasks."""
    monkeypatch.setenv("FETAL_BUILD_DIR", str(tmp_path))
    assert main(["doctor", "--profile", "smoke", "--only", "us_classification", "--format", "json"]) == 0
    est = json.loads(capsys.readouterr().out)["chapters"]["us_classification"]
    from fetal_lib.config.profiles import chapter_knobs
    from fetal_lib.book.chapters import spec_of
    from fetal_lib.us.tasks import load_task

    knobs = chapter_knobs(spec_of("us_classification"), "smoke")
    tasks = knobs["tasks"].split(",")
    images = sum(len(load_task(t, None, "phantom").part("train")) for t in tasks)
    val_images = sum(len(load_task(t, None, "phantom").part("val")) for t in tasks)
    assert sorted(est["networks"]) == sorted(knobs["archs"].split(","))
    seeds = {t: (knobs.get("task_seeds") or {}).get(t, 1) for t in tasks}  # networks per architecture on a task
    for net in est["networks"].values():
        assert net["rate"] > 0 and net["trainings"] == sum(seeds.values()) and net["images_per_epoch_all_trainings"] == images
        assert net["validation_ms_per_image"] > 0 and net["val_images_per_epoch_all_trainings"] == val_images
    loaded = {t: load_task(t, None, "phantom") for t in tasks}
    epochs = {t: (knobs.get("task_epochs") or {}).get(t, knobs["epochs"]) for t in tasks}  # a task's own budget, else epochs
    expected = sum(sum(epochs[t] * seeds[t] * (len(loaded[t].part("train")) / n["rate"]
                                    + len(loaded[t].part("val")) * n["validation_ms_per_image"] / 1000) for t in tasks)
                   for n in est["networks"].values())
    assert est["training_s"] == pytest.approx(expected, rel=0.01)  # the rates are rounded to 0.01 in the report
    assert est["predicted_chapter_s"] is None  # no earlier run in this build folder


def test_keras_on_torch_with_a_gpu_is_reported_on_the_gpu_with_the_gpus_precision(tmp_path):
    from fetal_lib.devices import GpuInfo

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Xeon\nflags\t\t: avx2 fma\n")  # no native bfloat16 on the CPU
    h100 = GpuInfo("NVIDIA H100", 79.2, (9, 0))
    report = doctor.machine_report(info, gpu=h100, keras_choice=("torch", "auto: torch sees a CUDA GPU and TensorFlow none"))
    assert report["keras_backend"] == "torch" and report["keras_device"] == "cuda"
    keras_auto = report["precision_auto"]["keras"]
    assert keras_auto["precision"] == "mixed_bfloat16" and "NVIDIA H100" in keras_auto["reason"]
    text = doctor.format_report(report, {}, "full")
    assert "the Keras chapters (1, 3, 4) on the GPU" in text and "Keras backend: torch (auto: torch sees" in text
    on_tf = doctor.machine_report(info, gpu=h100, keras_choice=("tensorflow", "KERAS_BACKEND=tensorflow set by the user"))
    assert on_tf["keras_device"] == "cpu" and on_tf["precision_auto"]["keras"]["precision"] == "float32"  # tensorflow-cpu: the CPU's rule
    assert "the Keras chapters (1, 3, 4) on the CPU" in doctor.format_report(on_tf, {}, "full")


def _estimate(training_s: float, rates: dict[str, float]) -> dict:
    return {"data": "real", "training_s": training_s, "networks": {n: {"rate": r, "unit": "images/s"} for n, r in rates.items()}}


def test_a_fresh_machine_is_predicted_from_the_reference_scaled_by_its_speed():
    # reference machine: 1,000 s measured training where the timed batches said 800, 300 s of other work;
    # here the two networks train 2x and 8x slower: the other work scales by their geometric mean, 4x
    reference = {"wall_s": 1300.0, "training_s": 1000.0, "predicted_training_s": 800.0, "rates": {"a": 20.0, "b": 80.0}}
    here = _estimate(4000.0, {"a": 10.0, "b": 10.0})
    out = doctor.predict_chapter(here, reference, local_other_s=None)
    assert out["speed_ratio"] == pytest.approx(4.0) and out["training_factor"] == pytest.approx(1.25)
    assert out["other_work_s"] == pytest.approx(1200.0)
    assert out["predicted_chapter_s"] == pytest.approx(4000.0 * 1.25 + 1200.0)
    # a run of the chapter here gives its own other work
    assert doctor.predict_chapter(here, reference, local_other_s=100.0)["predicted_chapter_s"] == pytest.approx(5100.0)
    # no reference and no run here: unknown; a network the reference did not measure is left out of the ratio
    assert doctor.predict_chapter(here, None, None)["predicted_chapter_s"] is None
    assert doctor.speed_ratio({"a": 20.0}, _estimate(1.0, {"a": 10.0, "c": 1.0})["networks"]) == pytest.approx(2.0)
    assert doctor.speed_ratio({"z": 20.0}, here["networks"]) is None


def test_other_work_is_scaled_by_the_probe_where_the_reference_has_it():
    # training 4x slower here, but the other-work probe only 1.5x: the reference's 300 s of other work become 450,
    # not 1,200 (held to AVX2 and one core, chapter 1 trained 4.1x slower and did its other work 1.4x slower)
    reference = {"wall_s": 1300.0, "training_s": 1000.0, "predicted_training_s": 800.0, "rates": {"a": 20.0, "b": 80.0},
                 "other_work_probe_s": 0.04, "machine": "m"}
    here = {**_estimate(4000.0, {"a": 10.0, "b": 10.0}), "other_work_probe_s": 0.06}
    out = doctor.predict_chapter(here, reference, local_other_s=None)
    assert doctor.other_work_ratio(reference, here) == pytest.approx(1.5) and out["speed_ratio"] == pytest.approx(4.0)
    assert out["other_work_s"] == pytest.approx(450.0) and "x 1.50 (the other-work probe)" in out["other_work_from"]
    assert out["predicted_chapter_s"] == pytest.approx(4000.0 * 1.25 + 450.0)
    # a reference saved before the probe existed: the training rates, as before, and it says so
    old = {k: v for k, v in reference.items() if k != "other_work_probe_s"}
    assert doctor.other_work_ratio(old, here) is None
    out = doctor.predict_chapter(here, old, None)
    assert out["other_work_s"] == pytest.approx(1200.0) and "(the training rates)" in out["other_work_from"]


def test_chapter_estimates_measure_the_probe_once_and_pass_it_on(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(doctor.other_work, "probe_seconds", lambda: calls.append(1) or 0.05)
    monkeypatch.setitem(doctor.ESTIMATES, "hc18", lambda profile, data_dir: _estimate(100.0, {"main U-Net": 10.0}))
    monkeypatch.setitem(doctor.ESTIMATES, "brain_age", lambda profile, data_dir: _estimate(50.0, {"seg": 3.0}))
    ref = tmp_path / "ref.json"
    ref.write_text(json.dumps({"cpu": {"machine": "m", "chapters": {"hc18": {
        "wall_s": 300.0, "training_s": 200.0, "predicted_training_s": 100.0, "rates": {"main U-Net": 10.0}, "other_work_probe_s": 0.025}}}}))
    monkeypatch.setattr(doctor, "last_run_overhead_s", lambda *a, **k: None)
    out = doctor.chapter_estimates("cpu", None, ["hc18", "brain_age"], reference_path=ref)
    assert calls == [1] and out["hc18"]["other_work_probe_s"] == out["brain_age"]["other_work_probe_s"] == 0.05
    assert out["hc18"]["other_work_s"] == pytest.approx(200.0)  # 100 s of other work there, the probe 2x slower here


def test_save_reference_records_the_last_real_run_and_keeps_other_profiles(tmp_path):
    results = tmp_path / "results"
    (results / "hc18").mkdir(parents=True)
    doc = {"metrics": {"training_seconds": 600.0},
           "provenance": {"profile": "cpu", "on_phantom": False, "wall_time_s": 900.0, "git": {"sha": "abcdef0123"}}}
    (results / "hc18" / "metrics.json").write_text(json.dumps(doc))
    path = tmp_path / "measured_times.json"
    path.write_text(json.dumps({"full": {"machine": "H100", "chapters": {}}}))
    machine = doctor.machine_report(gpu=None)
    estimates = {"hc18": _estimate(500.0, {"main U-Net": 15.0}), "brain_age": _estimate(50.0, {"seg": 3.0}), "us": {"error": "x"}}
    assert doctor.save_reference("cpu", machine, estimates, path, results) == ["hc18"]  # brain_age: no run here
    saved = json.loads(path.read_text())
    assert "full" in saved and saved["cpu"]["machine"].startswith(machine["cpu_model"])
    assert saved["cpu"]["chapters"]["hc18"] == {"wall_s": 900.0, "training_s": 600.0, "predicted_training_s": 500.0,
                                                "rates": {"main U-Net": 15.0}, "commit": "abcdef0", "started_utc": None}
    # what a machine twice as slow predicts from it: training 1,000 x 600/500, other work 300 x 2
    out = doctor.predict_chapter(_estimate(1000.0, {"main U-Net": 7.5}), saved["cpu"]["chapters"]["hc18"], None)
    assert out["predicted_chapter_s"] == pytest.approx(1200.0 + 600.0)
    # the other-work probe measured beside the rates is saved with them
    estimates["hc18"]["other_work_probe_s"] = 0.04567
    doctor.save_reference("cpu", machine, estimates, path, results)
    assert json.loads(path.read_text())["cpu"]["chapters"]["hc18"]["other_work_probe_s"] == 0.0457


def test_the_reference_in_the_repository_is_complete_for_the_cpu_profile():
    ref = doctor.read_reference()
    chapters = ref.get("cpu", {}).get("chapters", {})
    assert set(chapters) == set(doctor.ESTIMATES), "run `make book` then `fetal doctor --save-reference` to complete it"
    for name, entry in chapters.items():
        assert entry["wall_s"] > entry["training_s"] > 0 and entry["predicted_training_s"] > 0 and entry["rates"], name


def test_save_reference_keeps_an_entry_from_a_later_run_than_the_local_build(tmp_path):
    results = tmp_path / "results"
    (results / "hc18").mkdir(parents=True)
    local = {"metrics": {"training_seconds": 600.0},
             "provenance": {"profile": "cpu", "on_phantom": False, "wall_time_s": 900.0, "git": {"sha": "old0000"},
                            "started_utc": "2026-11-27T20:00:00+00:00"}}
    (results / "hc18" / "metrics.json").write_text(json.dumps(local))
    later = {"wall_s": 800.0, "training_s": 500.0, "predicted_training_s": 450.0, "rates": {"main U-Net": 16.0},
             "commit": "new0000", "started_utc": "2026-11-28T01:00:00+00:00"}
    path = tmp_path / "measured_times.json"
    path.write_text(json.dumps({"cpu": {"machine": "m", "chapters": {"hc18": later}}}))
    machine = doctor.machine_report(gpu=None)
    estimates = {"hc18": _estimate(500.0, {"main U-Net": 15.0})}
    assert doctor.save_reference("cpu", machine, estimates, path, results) == []
    assert json.loads(path.read_text())["cpu"]["chapters"]["hc18"] == later
    # a run here that is newer than the entry replaces it
    local["provenance"]["started_utc"] = "2026-11-28T02:00:00+00:00"
    (results / "hc18" / "metrics.json").write_text(json.dumps(local))
    assert doctor.save_reference("cpu", machine, estimates, path, results) == ["hc18"]
    assert json.loads(path.read_text())["cpu"]["chapters"]["hc18"]["commit"] == "old0000"
    local["provenance"]["started_utc"] = "2026-11-27T20:00:00+00:00"
    (results / "hc18" / "metrics.json").write_text(json.dumps(local))
    path.write_text(json.dumps({"cpu": {"machine": "m", "chapters": {"hc18": later}}}))
    assert doctor.has_later_reference("cpu", "hc18", path, results)
    assert not doctor.has_later_reference("cpu", "brain_age", path, results)  # no run here


@pytest.mark.parametrize("deploy_arch, continuation_rate", [("attention_unet", 10.0), ("ducknet", 5.0), ("auto", 20.0)])
def test_chapter2_prediction_counts_the_winners_continuation(monkeypatch, deploy_arch, continuation_rate):
    """The five architectures' epochs at their own rates, then winner_epochs - epochs more at the deployed
    architecture's rate where the profile fixes it, else at the median rate (the winner is not known before the run)."""
    from fetal_lib.bench import seg_benchmark as bench
    from fetal_lib.seg_benchmark import pipeline as seg_pipeline

    rates = {"attention_unet": 10.0, "unext": 40.0, "transunet": 20.0, "ducknet": 5.0, "medsegdiff_v2": 30.0}
    monkeypatch.setattr(bench, "bench_training", lambda config, x, y, steps: {"train_images_per_s": rates[config.arch]})
    settings = {**seg_pipeline.profile_settings("smoke"), "deploy_arch": deploy_arch}
    monkeypatch.setattr(seg_pipeline, "profile_settings", lambda profile, overrides=None: settings)
    est = doctor.seg_benchmark_estimate("smoke", None)
    n_train = est["networks"]["unext"]["images_per_epoch"]
    extra = settings["winner_epochs"] - settings["epochs"]
    assert extra > 0
    expected = sum(settings["epochs"] * n_train / r for r in rates.values()) + extra * n_train / continuation_rate
    assert est["training_s"] == pytest.approx(expected, rel=1e-9)


@pytest.mark.slow
def test_doctor_measures_each_chapter_in_its_own_fresh_process(capsys, tmp_path, monkeypatch):
    """Two chapters measured in one process disturb each other (chapter 2's torch networks at half speed after
    chapter 1's TensorFlow U-Net): with more than one chapter, each is measured in a process of its own."""
    import os

    monkeypatch.setenv("FETAL_BUILD_DIR", str(tmp_path))
    assert main(["doctor", "--profile", "smoke", "--only", "fetal_mri_ga,brain_age", "--format", "json"]) == 0
    chapters = json.loads(capsys.readouterr().out)["chapters"]
    pids = [chapters[c]["measured_in_pid"] for c in ("fetal_mri_ga", "brain_age")]
    assert all(chapters[c]["training_s"] > 0 for c in chapters)
    assert os.getpid() not in pids and pids[0] != pids[1]
    assert main(["doctor", "--profile", "smoke", "--only", "fetal_mri_ga", "--format", "json"]) == 0  # one chapter: here
    assert json.loads(capsys.readouterr().out)["chapters"]["fetal_mri_ga"]["measured_in_pid"] == os.getpid()


@pytest.mark.slow
def test_doctor_measures_chapter1_on_the_backend_the_chapter_would_choose(capsys, tmp_path, monkeypatch):
    """Chapter 1 chooses its Keras backend on the CPU (fetal_lib.training.chapter_backend): the doctor times its
    networks on that backend, reports it, and measures in a fresh process where Keras runs on another here."""
    import os

    import keras

    from fetal_lib.training import chapter_backend

    monkeypatch.setenv("FETAL_BUILD_DIR", str(tmp_path))
    here = keras.backend.backend()
    monkeypatch.setattr(chapter_backend, "choose_for_chapter", lambda settings, *a, **k: (here, "stub: the backend here"))
    assert main(["doctor", "--profile", "smoke", "--only", "hc18", "--format", "json"]) == 0
    est = json.loads(capsys.readouterr().out)["chapters"]["hc18"]
    assert est["keras_backend"]["backend"] == here and est["measured_in_pid"] == os.getpid()
    assert est["networks"]["main U-Net"]["rate"] > 0
    # the audit arms train on the smoke profile's audit_train_fraction (0.5) of the training subjects
    assert 0 < est["networks"]["audit arms (x3)"]["images_per_epoch"] < est["networks"]["main U-Net"]["images_per_epoch"]
    # ... the subjects the chapter draws with its seed (hc.report.audit_arms: the run's seed)
    from fetal_lib.config.profiles import profile_seed
    from fetal_lib.hc import pipeline as hc_pipeline

    seed = profile_seed("smoke", "hc18")
    fraction = float(hc_pipeline.profile_settings("smoke")["audit_train_fraction"])
    arms = hc_pipeline.load_data(None, "phantom", seed).with_training_subjects(fraction, seed)
    assert est["networks"]["audit arms (x3)"]["images_per_epoch"] == len(arms.parts["train"])
    other = {"tensorflow": "torch", "torch": "tensorflow"}[here]
    calls = []
    monkeypatch.setattr(chapter_backend, "choose_for_chapter", lambda settings, *a, **k: (other, "stub: the other backend"))
    monkeypatch.setattr(doctor, "measure_in_fresh_process", lambda *args: calls.append(args) or {"data": "x", "networks": {}, "training_s": 1.0})
    assert main(["doctor", "--profile", "smoke", "--only", "hc18", "--format", "json"]) == 0
    assert [c[:2] for c in calls] == [("hc18", "smoke")]
    text = doctor.format_report({"cpu_model": "m", "cpu_usable": 2, "flags": {}, "native_bf16": [], "threads": 2, "gpu": None,
                                 "keras_backend": here, "keras_backend_reason": "r", "precision_auto": {}},
                                {"hc18": {**est, "predicted_chapter_s": None}}, "smoke")
    assert f"Keras on {here}: " in text
