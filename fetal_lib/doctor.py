"""``fetal doctor``: what this machine is (its CPU, and the CUDA GPU torch sees, if any), what
precision ``auto`` resolves to here, how fast each chapter's networks train here, and how long
each chapter's training will take on it. On a GPU machine the PyTorch chapters are measured on the
GPU (their ``device`` knob is ``auto``), so ``--profile full`` predicts the GPU run; a chapter that
cannot be measured here (e.g. a Keras chapter on a machine without TensorFlow) says why and the
others are still measured.

The predictions are measured, not looked up: each chapter's main networks train for a few
batches on this machine (:func:`fetal_lib.bench.hc.bench_training`,
:func:`fetal_lib.bench.brain_age.bench_training`), and the profile's epochs and the data's image
counts turn the rates into training time. The whole chapter's time is then predicted from a
reference: ``profiles/measured_times.json`` holds, per profile and chapter, a measured run (its wall
and training seconds) and the rates ``fetal doctor`` measured on the same machine
(``fetal doctor --save-reference`` writes it after a ``make book``). Here

* training: the rates' prediction times the reference's measured/predicted training ratio (what the
  few timed batches miss: validation passes, the first epoch's compilation, the second stage);
* other work (data, evaluation, figures): from this machine's last run of the chapter with the same
  profile (``<build>/results/<chapter>/metrics.json``) when there is one, else the reference's, scaled
  by the other-work probe (:mod:`fetal_lib.bench.other_work`: image I/O, post-processing, SciPy, NumPy
  and a float32 forward pass, timed here and beside the reference run). That work does not slow down
  as training does: held to AVX2 and one core, chapter 1 trained 4.1x slower and did its other work
  1.4x slower. A reference saved before the probe existed scales it by the training rates instead.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np

from fetal_lib.bench import other_work
from fetal_lib.machine import thread_count, usable_cpus
from fetal_lib.training import precision as precision_mod
from fetal_lib.book.chapters import spec_of
from fetal_lib.config.profiles import chapter_knobs, profile_seed
from fetal_lib.data import fetal_brain_atlases
from fetal_lib.data.sources import resolve
from fetal_lib.devices import gpu_info
from fetal_lib.hc import pipeline as hc_pipeline
from fetal_lib.paths import PROFILE_DIR, build_dir
from fetal_lib.training import chapter_backend, keras_backend
from fetal_lib.training import torch as harness
from fetal_lib.us.tasks import load_task
from fetal_lib.us.train import build_model


DETECT = "detect"
REFERENCE = PROFILE_DIR / "measured_times.json"


def machine_report(cpuinfo: str | Path = precision_mod.CPUINFO, gpu: Any = DETECT, keras_choice: Any = DETECT) -> dict[str, Any]:
    """CPU model, usable cores, the frameworks' relevant CPU flags, the CUDA GPU (``gpu``: a
    :class:`~fetal_lib.devices.GpuInfo`, None for none, or detected from torch), the Keras
    backend (``keras_choice``: ``(backend, reason)``, or :func:`fetal_lib.training.keras_backend.choose`),
    where the PyTorch and Keras chapters run, and what ``auto`` resolves to for each framework on the
    device it trains on."""

    flags = precision_mod.cpu_flags(cpuinfo)
    if gpu == DETECT:
        gpu = gpu_info()
    if keras_choice == DETECT:  # as the user left it: fetal's own automatic KERAS_BACKEND is decided again
        environ = os.environ if chapter_backend.user_choice(os.environ) else {k: v for k, v in os.environ.items() if k != keras_backend.ENV}
        keras_choice = keras_backend.choose(environ, torch_sees_cuda=lambda: gpu is not None)
    backend, backend_reason = keras_choice
    keras_on_gpu = gpu is not None and (backend == "torch" or keras_backend.tensorflow_sees_gpu())  # tensorflow-cpu: never
    keras_gpu = gpu if keras_on_gpu else None
    return {
        "cpu_model": precision_mod.cpu_model(cpuinfo),
        "cpu_usable": usable_cpus(),
        "flags": {f: f in flags for f in precision_mod.REPORTED_FLAGS},
        "native_bf16": precision_mod.native_bf16(flags),
        "threads": thread_count(2),  # what the chapters' CPU work uses (TensorFlow intra-op, torch.set_num_threads)
        "gpu": None if gpu is None else gpu.to_dict(),
        "torch_device": "cuda" if gpu is not None else "cpu",  # the PyTorch chapters' device auto
        "keras_backend": backend,
        "keras_backend_reason": backend_reason,
        "keras_device": "cuda" if keras_gpu is not None else "cpu",
        # this machine's answer includes the cached bfloat16 probe; an injected cpuinfo is decided by its flags alone.
        # keras_xla: for a chapter whose float32 step is XLA-compiled (chapter 1), bfloat16 is weighed against that.
        # torch on a GPU: the GPU's rule (compute capability), nothing timed on the CPU
        "precision_auto": {name: precision_mod.resolve("auto", fw, None if Path(cpuinfo) == precision_mod.CPUINFO else flags,
                                                       xla=xla and backend == "tensorflow", gpu=gpu if fw == "torch" else keras_gpu).to_dict()
                           for name, fw, xla in (("keras", "keras", False), ("keras_xla", "keras", True), ("torch", "torch", False))},
    }


def last_real_run(chapter_id: str, profile: str, results_root: Path | None = None) -> tuple[dict, dict] | None:
    """The provenance and metrics of the chapter's last run here with ``profile`` on real data (None: no such run)."""
    path = (results_root or build_dir() / "results") / chapter_id / "metrics.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    prov, metrics = doc.get("provenance", {}), doc.get("metrics", {})
    if prov.get("profile") != profile or prov.get("on_phantom") or "training_seconds" not in metrics:
        return None
    return prov, metrics


def last_run_overhead_s(chapter_id: str, profile: str, results_root: Path | None = None) -> float | None:
    """Seconds the chapter's last run here spent outside training (None when there is no such run)."""
    run = last_real_run(chapter_id, profile, results_root)
    if run is None:
        return None
    prov, metrics = run
    return max(0.0, float(prov["wall_time_s"]) - float(metrics["training_seconds"]))


def hc18_estimate(profile: str, data_dir: str | None) -> dict[str, Any]:
    """Chapter 1: training images/s of the main U-Net and of the audit arms' network; training seconds."""
    from fetal_lib.hc import pipeline  # local: another import in this function's module binds the same name
    from fetal_lib.bench.hc import bench_training  # looked up at call time: a test replaces it
    from fetal_lib.training.keras import configure  # looked up at call time: a test replaces it

    settings = pipeline.profile_settings(profile)
    backend, why = chapter_backend.apply_for_chapter(settings)  # as the chapter chooses; reported as it is (Keras may be imported)
    configure(threads=2)
    seed = profile_seed(profile, "hc18")  # the chapter's split and its audit arms' subjects are drawn from it
    data = pipeline.load_data(data_dir, "phantom" if profile == "smoke" else "auto", seed, int(settings["max_images"]))
    n_train = len(data.parts["train"])
    records = data.part("train")
    main = bench_training(pipeline.train_config(settings), records, 32, 16)
    audit = bench_training(pipeline.train_config(settings, audit=True), records, 32, 16)
    n_audit = len(data.with_training_subjects(float(settings.get("audit_train_fraction", 1.0)), seed).parts["train"])
    seconds = (int(settings["epochs"]) * n_train / main["train_images_per_s"]
               + 3 * int(settings["audit_epochs"]) * n_audit / audit["train_images_per_s"])
    networks = {
        "main U-Net": {**_rate(main["train_images_per_s"], "images/s"), "epochs": int(settings["epochs"]), "images_per_epoch": n_train,
                       "input": main["input_shape"], "precision": main["precision"]},
        "audit arms (x3)": {**_rate(audit["train_images_per_s"], "images/s"), "epochs": int(settings["audit_epochs"]),
                            "images_per_epoch": n_audit, "input": audit["input_shape"], "precision": audit["precision"]},
    }
    if settings.get("second_stage"):  # the cascade's second U-Net, on bands of the training images (one per image an epoch)
        from fetal_lib.hc import second_stage  # local: loads the band sampler and the cascade (Keras)

        band = second_stage.band_config(settings)
        second = bench_training(second_stage.train_config(settings, 0, band), records, 32, 16)
        seconds += int(settings["second_epochs"]) * n_train / second["train_images_per_s"]
        networks["second stage"] = {**_rate(second["train_images_per_s"], "bands/s"), "epochs": int(settings["second_epochs"]),
                                    "images_per_epoch": n_train, "input": second["input_shape"], "precision": second["precision"]}
    return {"data": data.source.describe(), "networks": networks, "training_s": seconds,
            "keras_backend": {"backend": keras_backend.name(), "reason": why}}


def brain_age_estimate(profile: str, data_dir: str | None) -> dict[str, Any]:
    """Chapter 5: subjects/s of the Res-U-Net segmenter; training seconds of the out-of-fold segmenters (the deployed one is their average)."""
    from fetal_lib.brain_age import dataset, pipeline  # local: another import in this function's module binds the same name
    from fetal_lib.bench.brain_age import bench_training  # looked up at call time: a test replaces it


    settings = chapter_knobs(spec_of("brain_age"), profile)
    source = resolve("brain_age", data_dir, "phantom" if profile == "smoke" else "auto")
    subjects = [s for s in dataset.load(source.root) if s.image_path is not None and s.mask_path is not None]
    cfg = pipeline.seg_train_config(settings)
    rate = bench_training(cfg)["subjects_per_s"]
    folds = pipeline.deployed_folds(settings)
    per_fold = len(subjects) * (folds - 1) / folds
    # the deployed segmenter is the out-of-fold segmenters averaged: folds x epochs x the subjects of a fold's training
    seconds = folds * cfg.epochs * per_fold / rate
    return {
        "data": source.describe(),
        "networks": {"Res-U-Net segmenter": {**_rate(rate, "subjects/s"), "epochs": cfg.epochs, "subjects_per_epoch": round(per_fold, 1),
                                             "cv_folds": folds, "cv_epochs": cfg.epochs,
                                             "crop": cfg.crop, "precision": cfg.precision}},
        "training_s": seconds,
    }


def seg_benchmark_estimate(profile: str, data_dir: str | None) -> dict[str, Any]:
    """Chapter 2: training images/s of each architecture at the profile's size; training seconds of all of them,
    and of the deployed architecture's continuation to ``winner_epochs``: at its own rate where the profile fixes it
    (``deploy_arch``), else at the median of the measured rates (the validation winner is not known beforehand)."""
    from fetal_lib.hc.dataset import load_arrays  # local: another import in this function's module binds the same name
    from fetal_lib.seg_benchmark import pipeline  # local: another import in this function's module binds the same name
    from fetal_lib.bench.seg_benchmark import bench_training  # looked up at call time: a test replaces it

    harness.configure(threads=2)
    settings = pipeline.profile_settings(profile)
    data = hc_pipeline.load_data(data_dir, "phantom" if profile == "smoke" else "auto", profile_seed(profile, "seg_benchmark"),
                                 int(settings["max_images"]))
    n_train = len(data.parts["train"])
    networks, seconds = {}, 0.0
    for arch in pipeline.parse_archs(settings["archs"]):
        config = pipeline.train_config(settings, arch)
        x, y = load_arrays(data.part("train")[:32], config.input_shape, "filled")
        rate = bench_training(config, x, y, steps=4)["train_images_per_s"]
        networks[arch] = {**_rate(rate, "images/s"), "epochs": config.epochs, "images_per_epoch": n_train,
                          "input": list(config.input_shape), "precision": config.precision}
        seconds += config.epochs * n_train / rate
    extra = int(settings.get("winner_epochs") or 0) - int(settings["epochs"])
    if extra > 0 and networks:
        fixed = pipeline.fixed_arch(settings, list(networks))
        rate = networks[fixed]["rate"] if fixed else float(np.median([net["rate"] for net in networks.values()]))
        seconds += extra * n_train / rate
    return {"data": data.source.describe(), "networks": networks, "training_s": seconds}


def us_classification_estimate(profile: str, data_dir: str | None) -> dict[str, Any]:
    """Chapter 3: training images/s and batched validation ms per image of each classifier at the
    profile's input (on the first task's images); seconds of every model on every task: the
    optimiser epochs and the validation pass after each epoch."""
    from fetal_lib.training.keras import configure  # looked up at call time: a test replaces it
    from fetal_lib.us import efficiency, pipeline  # local: another import in this function's module binds the same name
    from fetal_lib.us.arrays import load_arrays  # local: another import in this function's module binds the same name

    configure(threads=2)
    settings = pipeline.profile_settings(profile)
    source = "phantom" if profile == "smoke" else "auto"
    task_names = pipeline.split_names(settings["tasks"])
    tasks = {t: load_task(t, data_dir, source) for t in task_names}
    # every model on every task; the leak demonstration's training is not in the chapter's training_seconds,
    # so it counts among the other work of the last run (a plain CNN: seconds)
    trainings = {arch: list(task_names) for arch in pipeline.split_names(settings["archs"])}
    probe = tasks[task_names[0]]
    size = (int(settings["input_rows"]), int(settings["input_cols"]))
    items = probe.part("train")[:32]
    x, y = load_arrays(items, size), probe.labels("train")[: len(items)]
    networks, seconds = {}, 0.0
    for arch, runs in trainings.items():
        config = pipeline.train_config(settings, arch)
        rate = efficiency.training_images_per_s(config, x, y, len(probe.classes), steps=4)
        model = build_model(config, len(probe.classes), "float32")
        validation_ms = efficiency.inference_ms_per_image(model, x, batch_size=len(x), repeats=2)  # batched, as the harness validates
        images = sum(len(tasks[t].part("train")) for t in runs)
        val_images = sum(len(tasks[t].part("val")) for t in runs)
        epochs = {t: pipeline.task_epochs(settings, t) for t in runs}  # a task's own budget (task_epochs) or `epochs`
        seeds = {t: pipeline.task_seeds(settings, t) for t in runs}  # networks per architecture on a task (task_seeds)
        image_epochs = sum(len(tasks[t].part("train")) * epochs[t] * seeds[t] for t in runs)
        val_image_epochs = sum(len(tasks[t].part("val")) * epochs[t] * seeds[t] for t in runs)
        networks[arch] = {**_rate(rate, "images/s"), "epochs": config.epochs, "trainings": sum(seeds.values()),
                          **({"task_epochs": {t: e for t, e in epochs.items() if e != config.epochs}}
                             if any(e != config.epochs for e in epochs.values()) else {}),
                          **({"task_seeds": {t: n for t, n in seeds.items() if n != 1}} if any(n != 1 for n in seeds.values()) else {}),
                          "images_per_epoch_all_trainings": images, "image_epochs_all_trainings": image_epochs,
                          "validation_ms_per_image": round(validation_ms, 2), "val_images_per_epoch_all_trainings": val_images,
                          "input": list(size), "precision": config.precision}
        seconds += image_epochs / rate + val_image_epochs * validation_ms / 1000.0
    return {"data": "; ".join(sorted({d.source.describe() for d in tasks.values()})), "networks": networks, "training_s": seconds}


def fetal_mri_ga_estimate(profile: str, data_dir: str | None) -> dict[str, Any]:
    """Chapter 4: training samples/s of the regressor; training seconds of every protocol and the deployed model."""
    from fetal_lib.ga_mri import pipeline  # deferred: imports pandas
    from fetal_lib.bench.ga_mri import bench_training, training_runs, training_samples_per_epoch_total  # looked up at call time: a test replaces it
    from fetal_lib.ga_mri.train import CURVE_SAMPLES  # local: imports the Keras harness
    from fetal_lib.training.keras import configure  # looked up at call time: a test replaces it

    configure(threads=2)
    settings = pipeline.profile_settings(profile)
    source = resolve("fetal_brain_atlases", data_dir, "phantom" if profile == "smoke" else "auto")
    n_volumes = sum(1 for r in fetal_brain_atlases.load(source.root) if r.srr_path is not None)
    config = pipeline.train_config(settings)
    rate = bench_training(config)["train_samples_per_s"]
    per_epoch = training_samples_per_epoch_total(n_volumes, int(settings["samples_per_volume"]), int(settings["folds"]))
    curve = min(per_epoch, training_runs(int(settings["folds"])) * CURVE_SAMPLES) / 3  # the learning curve's predictions: about a third of a training step each
    return {"data": source.describe(),
            "networks": {"vgg_attention": {**_rate(rate, "samples/s"), "epochs": config.epochs, "samples_per_epoch_all_trainings": per_epoch,
                                           "input": [config.size, config.size], "precision": config.precision}},
            "training_s": config.epochs * (per_epoch + curve) / rate}


def _rate(value: float, unit: str) -> dict[str, Any]:
    return {"rate": round(float(value), 2), "unit": unit}


ESTIMATES: dict[str, Callable[[str, str | None], dict[str, Any]]] = {"hc18": hc18_estimate, "seg_benchmark": seg_benchmark_estimate,
                                                                      "us_classification": us_classification_estimate,
                                                                      "fetal_mri_ga": fetal_mri_ga_estimate,
                                                                      "brain_age": brain_age_estimate}


def read_reference(path: Path | None = None) -> dict[str, Any]:
    """``profiles/measured_times.json`` (or ``path``): profile -> {"machine", "chapters": chapter -> reference}; {} if absent."""
    try:
        return json.loads(Path(path or REFERENCE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


def speed_ratio(reference_rates: dict[str, float], networks: dict[str, Any]) -> float | None:
    """How many times longer the same networks train here than on the reference machine: the geometric
    mean of reference rate / rate here over the networks measured in both (None: none in common)."""
    ratios = [float(reference_rates[name]) / float(net["rate"]) for name, net in networks.items()
              if name in reference_rates and float(net["rate"]) > 0 and float(reference_rates[name]) > 0]
    if not ratios:
        return None
    return float(np.exp(np.mean(np.log(ratios))))


def other_work_ratio(reference: dict[str, Any], est: dict[str, Any]) -> float | None:
    """How many times longer the work other than training takes here than on the reference machine: the
    other-work probe's seconds here over the reference's (:mod:`fetal_lib.bench.other_work`); None where
    either lacks it (a reference saved before the probe existed)."""
    here, there = est.get("other_work_probe_s"), reference.get("other_work_probe_s")
    if not here or not there or float(here) <= 0 or float(there) <= 0:
        return None
    return float(here) / float(there)


def predict_chapter(est: dict[str, Any], reference: dict[str, Any] | None, local_other_s: float | None) -> dict[str, Any]:
    """The whole chapter's predicted seconds from this machine's estimate ``est``, the chapter's
    ``reference`` (measured wall and training seconds and the rates measured beside them, or None)
    and this machine's last run's other work (None: no run here). Returns the prediction's parts."""
    out: dict[str, Any] = {"predicted_chapter_s": None, "training_factor": 1.0, "other_work_s": local_other_s,
                           "other_work_from": "the last run here" if local_other_s is not None else None, "speed_ratio": None}
    if reference:
        out["training_factor"] = float(reference["training_s"]) / float(reference["predicted_training_s"])
        out["speed_ratio"] = speed_ratio(reference["rates"], est["networks"])
        probe_ratio = other_work_ratio(reference, est)
        ratio, by = (probe_ratio, "the other-work probe") if probe_ratio is not None else (out["speed_ratio"], "the training rates")
        if local_other_s is None and ratio is not None:
            out["other_work_s"] = (float(reference["wall_s"]) - float(reference["training_s"])) * ratio
            out["other_work_from"] = f"the reference run ({reference.get('machine', 'another machine')}) x {ratio:.2f} ({by})"
    if out["other_work_s"] is not None:
        out["predicted_chapter_s"] = est["training_s"] * out["training_factor"] + out["other_work_s"]
    return out


def measure_chapter(chapter_id: str, profile: str, data_dir: str | None) -> dict[str, Any]:
    """One chapter's estimate (``ESTIMATES[chapter_id]``), with the id of the process that measured it.
    Chapter 1 chooses its Keras backend on the CPU (:mod:`fetal_lib.training.chapter_backend`): where Keras is
    already imported here with another one, it is measured in a fresh process."""
    if chapter_id == "hc18" and "keras" in sys.modules:
        wanted, _ = chapter_backend.choose_for_chapter(hc_pipeline.profile_settings(profile))
        if wanted != keras_backend.name():
            return measure_in_fresh_process(chapter_id, profile, data_dir)
    return {**ESTIMATES[chapter_id](profile, data_dir), "measured_in_pid": os.getpid()}


def measure_in_fresh_process(chapter_id: str, profile: str, data_dir: str | None) -> dict[str, Any]:
    """:func:`measure_chapter` in a new Python process (spawned: nothing of this one's frameworks or threads).

    Measured one after another in one process, the frameworks disturb each other: on the 2-core AMD EPYC
    with AVX-512 BF16 chapter 2's PyTorch networks trained at half their speed (Attention U-Net 30 against
    60 images/s, DUCK-Net 8.4 against 15.5) right after chapter 1's TensorFlow U-Net had been timed, and
    the chapter itself trained them at about 66 and 20."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(measure_chapter, chapter_id, profile, data_dir).result()


def chapter_estimates(profile: str, data_dir: str | None, chapters: list[str] | None = None, progress: Callable[[str], None] | None = None,
                      reference_path: Path | None = None, isolate: bool = False) -> dict[str, Any]:
    """Per chapter: measured rates, predicted training seconds, and the prediction of the whole chapter
    (:func:`predict_chapter`: the reference's correction of the training time, and other work from the
    last run here or the reference's scaled to this machine); None where neither exists. With ``isolate``
    each chapter is measured in a fresh process (:func:`measure_in_fresh_process`; ``fetal doctor`` does
    so whenever it measures more than one chapter)."""
    references = read_reference(reference_path).get(profile, {})
    probe_s = other_work.probe_seconds()
    out = {}
    for chapter_id in chapters or list(ESTIMATES):
        if progress:
            progress(f"measuring {chapter_id} ...")
        try:
            est = measure_in_fresh_process(chapter_id, profile, data_dir) if isolate else measure_chapter(chapter_id, profile, data_dir)
        except Exception as exc:  # noqa: BLE001 - one chapter that cannot be measured here must not hide the others
            out[chapter_id] = {"error": f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:300]}"}
            continue
        est["other_work_probe_s"] = probe_s
        reference = references.get("chapters", {}).get(chapter_id)
        if reference is not None:
            reference = {**reference, "machine": references.get("machine", "another machine")}
        est.update(predict_chapter(est, reference, last_run_overhead_s(chapter_id, profile)))
        out[chapter_id] = est
    return out


def reference_entry(chapter_id: str, est: dict[str, Any], results_root: Path | None = None) -> dict[str, Any] | None:
    """The reference of one chapter: its last real run here (same profile as ``est`` was measured for)
    and the rates measured now; None when the chapter has no such run."""
    run = last_real_run(chapter_id, est.get("profile"), results_root)
    if run is None:
        return None
    prov, metrics = run
    return {"wall_s": round(float(prov["wall_time_s"]), 1), "training_s": round(float(metrics["training_seconds"]), 1),
            "predicted_training_s": round(float(est["training_s"]), 1),
            "rates": {name: net["rate"] for name, net in est["networks"].items()},
            **({"other_work_probe_s": round(float(est["other_work_probe_s"]), 4)} if est.get("other_work_probe_s") else {}),
            "commit": (prov.get("git") or {}).get("sha", "unknown")[:7], "started_utc": prov.get("started_utc")}


def save_reference(profile: str, machine: dict[str, Any], estimates: dict[str, Any], path: Path | None = None,
                   results_root: Path | None = None) -> list[str]:
    """Write this machine's references for ``profile`` (the chapters in ``estimates`` with a real run
    here) into ``path`` (default ``profiles/measured_times.json``), keeping the other profiles' and
    chapters', and keeping a chapter's entry that records a later run than the one here (a stale
    local build must not overwrite a newer measurement). Returns the chapters written."""
    path = Path(path or REFERENCE)
    doc = read_reference(path)
    if machine["native_bf16"]:
        flags = "native bfloat16 (" + ", ".join(machine["native_bf16"]) + ")"
    else:
        flags = "AVX-512, no native bfloat16" if machine["flags"].get("avx512f") else "AVX2 only" if machine["flags"].get("avx2") else "no AVX2"
    section = doc.setdefault(profile, {})
    section["machine"] = f"{machine['cpu_model']}, {machine['cpu_usable']} cores, {flags}"
    written = []
    for chapter_id, est in estimates.items():
        entry = None if "error" in est else reference_entry(chapter_id, {**est, "profile": profile}, results_root)
        if entry is not None and not _newer(section.get("chapters", {}).get(chapter_id), entry):
            section.setdefault("chapters", {})[chapter_id] = entry
            written.append(chapter_id)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    return written


def has_later_reference(profile: str, chapter_id: str, path: Path | None = None, results_root: Path | None = None) -> bool:
    """Whether the saved reference of ``chapter_id`` records a later run than the last real one here."""
    kept = read_reference(path).get(profile, {}).get("chapters", {}).get(chapter_id)
    run = last_real_run(chapter_id, profile, results_root)
    return run is not None and _newer(kept, {"started_utc": run[0].get("started_utc")})


def _newer(kept: dict[str, Any] | None, entry: dict[str, Any]) -> bool:
    """Whether the reference ``kept`` records a run that started after ``entry``'s (ISO UTC times)."""
    if not kept or not kept.get("started_utc") or not entry.get("started_utc"):
        return False
    return datetime.fromisoformat(str(kept["started_utc"])) > datetime.fromisoformat(str(entry["started_utc"]))


def format_report(machine: dict[str, Any], estimates: dict[str, Any], profile: str) -> str:
    """The report as text for people."""
    flags = ", ".join(f"{f} {'yes' if on else 'no'}" for f, on in machine["flags"].items())
    gpu = machine.get("gpu")
    lines = [
        f"CPU: {machine['cpu_model']}, {machine['cpu_usable']} usable core(s); the chapters' CPU work uses {machine['threads']} threads",
        f"flags: {flags}",
        f"native bfloat16: {', '.join(machine['native_bf16']) or 'no'}",
    ]
    if gpu:
        cc = ".".join(str(v) for v in gpu["capability"])
        lines.append(f"GPU: {gpu['name']}, {gpu['memory_gib']:.0f} GiB, compute capability {cc}"
                     + (f" ({gpu['count']} GPUs; the chapters use the first)" if gpu.get("count", 1) > 1 else ""))
        keras_where = "the GPU" if machine.get("keras_device") == "cuda" else "the CPU"
        lines.append(f"device auto: the PyTorch chapters (2, 5) train and predict on the GPU; the Keras chapters (1, 3, 4) on {keras_where}")
    else:
        lines.append("GPU: none that torch can use; every chapter runs on the CPU")
    if machine.get("keras_backend"):
        lines.append(f"Keras backend: {machine['keras_backend']} ({machine['keras_backend_reason']})")
    for fw, choice in machine["precision_auto"].items():
        lines.append(f"precision auto ({fw}): {choice['precision']}: {choice['reason']}")
    for chapter_id, est in estimates.items():
        if "error" in est:
            lines.append(f"\n{chapter_id} (profile {profile}): not measured here ({est['error']})")
            continue
        lines.append(f"\n{chapter_id} (profile {profile}; {est['data']})")
        if est.get("keras_backend"):
            lines.append(f"  Keras on {est['keras_backend']['backend']}: {est['keras_backend']['reason']}")
        for name, net in est["networks"].items():
            extra = ", ".join(f"{k} {v}" for k, v in net.items() if k not in ("rate", "unit"))
            lines.append(f"  {name}: {net['rate']:.2f} {net['unit']} ({extra})")
        lines.append(f"  predicted training time: {est['training_s'] / 60:.1f} min")
        if est.get("predicted_chapter_s") is None:
            lines.append("  predicted chapter time: training + evaluation and figures (unknown: no run of this profile here "
                         "and no reference in profiles/measured_times.json)")
        else:
            factor = est.get("training_factor", 1.0)
            lines.append(f"  predicted chapter time: {est['predicted_chapter_s'] / 60:.1f} min (training {est['training_s'] * factor / 60:.1f} min"
                         + (f", the timed batches' {est['training_s'] / 60:.1f} x {factor:.2f} as measured in the reference run" if abs(factor - 1) > 0.005 else "")
                         + f"; other work {est['other_work_s'] / 60:.1f} min, from {est['other_work_from']})")
    return "\n".join(lines)
