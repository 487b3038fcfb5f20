"""``fetal doctor``: what this machine is (its CPU, and the CUDA GPU torch sees, if any), what
precision ``auto`` resolves to here, how fast each chapter's networks train here, and how long
each chapter's training will take on it. On a GPU machine the PyTorch chapters are measured on the
GPU (their ``device`` knob is ``auto``), so ``--profile full`` predicts the GPU run; a chapter that
cannot be measured here (e.g. a Keras chapter on a machine without TensorFlow) says why and the
others are still measured.

The predictions are measured, not looked up: each chapter's main networks train for a few
batches on this machine (:func:`fetal_lib.bench.hc.bench_training`,
:func:`fetal_lib.bench.brain_age.bench_training`), and the profile's epochs and the data's image
counts turn the rates into training time. What a chapter does besides training (evaluation,
figures) is added from its last run on this machine when ``<build>/results/<chapter>/metrics.json``
holds one of the same profile; otherwise it is said to be unknown.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

from fetal_lib.training import precision as precision_mod
from fetal_lib.book.chapters import spec_of
from fetal_lib.config.profiles import chapter_knobs
from fetal_lib.data import fetal_brain_atlases
from fetal_lib.data.sources import resolve
from fetal_lib.devices import gpu_info
from fetal_lib.hc import pipeline as hc_pipeline
from fetal_lib.paths import build_dir
from fetal_lib.training import keras_backend
from fetal_lib.training import torch as harness
from fetal_lib.us.tasks import load_task
from fetal_lib.us.train import build_model


DETECT = "detect"


def machine_report(cpuinfo: str | Path = precision_mod.CPUINFO, gpu: Any = DETECT, keras_choice: Any = DETECT) -> dict[str, Any]:
    """CPU model, usable cores, the frameworks' relevant CPU flags, the CUDA GPU (``gpu``: a
    :class:`~fetal_lib.devices.GpuInfo`, None for none, or detected from torch), the Keras
    backend (``keras_choice``: ``(backend, reason)``, or :func:`fetal_lib.training.keras_backend.choose`),
    where the PyTorch and Keras chapters run, and what ``auto`` resolves to for each framework on the
    device it trains on."""

    flags = precision_mod.cpu_flags(cpuinfo)
    if gpu == DETECT:
        gpu = gpu_info()
    if keras_choice == DETECT:
        keras_choice = keras_backend.choose(torch_sees_cuda=lambda: gpu is not None)
    backend, backend_reason = keras_choice
    keras_on_gpu = gpu is not None and (backend == "torch" or keras_backend.tensorflow_sees_gpu())  # tensorflow-cpu: never
    keras_gpu = gpu if keras_on_gpu else None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        usable = os.cpu_count()
    return {
        "cpu_model": precision_mod.cpu_model(cpuinfo),
        "cpu_usable": usable,
        "flags": {f: f in flags for f in precision_mod.REPORTED_FLAGS},
        "native_bf16": precision_mod.native_bf16(flags),
        "threads": 2,  # what the chapters' CPU work uses (TensorFlow intra-op, torch.set_num_threads)
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


def last_run_overhead_s(chapter_id: str, profile: str, results_root: Path | None = None) -> float | None:
    """Seconds the chapter's last run here spent outside training (None when there is no such run)."""

    path = (results_root or build_dir() / "results") / chapter_id / "metrics.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    prov, metrics = doc.get("provenance", {}), doc.get("metrics", {})
    if prov.get("profile") != profile or prov.get("on_phantom") or "training_seconds" not in metrics:
        return None
    return max(0.0, float(prov["wall_time_s"]) - float(metrics["training_seconds"]))


def hc18_estimate(profile: str, data_dir: str | None) -> dict[str, Any]:
    """Chapter 1: training images/s of the main U-Net and of the audit arms' network; training seconds."""
    from fetal_lib.hc import pipeline  # local: another import in this function's module binds the same name
    from fetal_lib.bench.hc import bench_training  # looked up at call time: a test replaces it
    from fetal_lib.training.keras import configure  # looked up at call time: a test replaces it

    configure(threads=2)
    settings = pipeline.profile_settings(profile)
    data = pipeline.load_data(data_dir, "phantom" if profile == "smoke" else "auto", 0, int(settings["max_images"]))
    n_train = len(data.parts["train"])
    records = data.part("train")
    main = bench_training(pipeline.train_config(settings), records, 32, 16)
    audit = bench_training(pipeline.train_config(settings, audit=True), records, 32, 16)
    seconds = (int(settings["epochs"]) * n_train / main["train_images_per_s"]
               + 3 * int(settings["audit_epochs"]) * n_train / audit["train_images_per_s"])
    return {
        "data": data.source.describe(),
        "networks": {
            "main U-Net": {**_rate(main["train_images_per_s"], "images/s"), "epochs": int(settings["epochs"]), "images_per_epoch": n_train,
                           "input": main["input_shape"], "precision": main["precision"]},
            "audit arms (x3)": {**_rate(audit["train_images_per_s"], "images/s"), "epochs": int(settings["audit_epochs"]),
                                "images_per_epoch": n_train, "input": audit["input_shape"], "precision": audit["precision"]},
        },
        "training_s": seconds,
    }


def brain_age_estimate(profile: str, data_dir: str | None) -> dict[str, Any]:
    """Chapter 5: subjects/s of the Res-U-Net segmenter; training seconds of the main model and the CV folds."""
    from fetal_lib.brain_age import dataset, pipeline  # local: another import in this function's module binds the same name
    from fetal_lib.bench.brain_age import bench_training  # looked up at call time: a test replaces it


    settings = chapter_knobs(spec_of("brain_age"), profile)
    source = resolve("brain_age", data_dir, "phantom" if profile == "smoke" else "auto")
    subjects = [s for s in dataset.load(source.root) if s.image_path is not None and s.mask_path is not None]
    n_train = sum(1 for s in subjects if s.role == "seg_train")
    cfg = pipeline.seg_train_config(settings)
    rate = bench_training(cfg)["subjects_per_s"]
    folds = int(settings.get("seg_cv_folds") or 0)
    cv_subjects = len(subjects) * (folds - 1) / folds if folds >= 2 else 0
    # the out-of-fold segmenters train with the deployed recipe, epochs included
    seconds = (cfg.epochs * n_train + folds * cfg.epochs * cv_subjects) / rate
    return {
        "data": source.describe(),
        "networks": {"Res-U-Net segmenter": {**_rate(rate, "subjects/s"), "epochs": cfg.epochs, "subjects_per_epoch": n_train,
                                             "cv_folds": folds, "cv_epochs": cfg.epochs if folds >= 2 else 0,
                                             "crop": cfg.crop, "precision": cfg.precision}},
        "training_s": seconds,
    }


def seg_benchmark_estimate(profile: str, data_dir: str | None) -> dict[str, Any]:
    """Chapter 2: training images/s of each architecture at the profile's size; training seconds of all of them."""
    from fetal_lib.hc.dataset import load_arrays  # local: another import in this function's module binds the same name
    from fetal_lib.seg_benchmark import pipeline  # local: another import in this function's module binds the same name
    from fetal_lib.bench.seg_benchmark import bench_training  # looked up at call time: a test replaces it

    harness.configure(threads=2)
    settings = pipeline.profile_settings(profile)
    data = hc_pipeline.load_data(data_dir, "phantom" if profile == "smoke" else "auto", 0, int(settings["max_images"]))
    n_train = len(data.parts["train"])
    networks, seconds = {}, 0.0
    for arch in pipeline.parse_archs(settings["archs"]):
        config = pipeline.train_config(settings, arch)
        x, y = load_arrays(data.part("train")[:32], config.input_shape, "filled")
        rate = bench_training(config, x, y, steps=4)["train_images_per_s"]
        networks[arch] = {**_rate(rate, "images/s"), "epochs": config.epochs, "images_per_epoch": n_train,
                          "input": list(config.input_shape), "precision": config.precision}
        seconds += config.epochs * n_train / rate
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
        networks[arch] = {**_rate(rate, "images/s"), "epochs": config.epochs, "trainings": len(runs),
                          "images_per_epoch_all_trainings": images, "validation_ms_per_image": round(validation_ms, 2),
                          "val_images_per_epoch_all_trainings": val_images, "input": list(size), "precision": config.precision}
        seconds += config.epochs * (images / rate + val_images * validation_ms / 1000.0)
    return {"data": "; ".join(sorted({d.source.describe() for d in tasks.values()})), "networks": networks, "training_s": seconds}


def fetal_mri_ga_estimate(profile: str, data_dir: str | None) -> dict[str, Any]:
    """Chapter 4: training samples/s of the regressor; training seconds of every protocol and the deployed model."""
    from fetal_lib.ga_mri import pipeline  # deferred: imports pandas
    from fetal_lib.bench.ga_mri import bench_training, training_samples_per_epoch_total  # looked up at call time: a test replaces it
    from fetal_lib.training.keras import configure  # looked up at call time: a test replaces it

    configure(threads=2)
    settings = pipeline.profile_settings(profile)
    source = resolve("fetal_brain_atlases", data_dir, "phantom" if profile == "smoke" else "auto")
    n_volumes = sum(1 for r in fetal_brain_atlases.load(source.root) if r.srr_path is not None)
    config = pipeline.train_config(settings)
    rate = bench_training(config)["train_samples_per_s"]
    per_epoch = training_samples_per_epoch_total(n_volumes, int(settings["samples_per_volume"]), int(settings["folds"]))
    return {"data": source.describe(),
            "networks": {"vgg_attention": {**_rate(rate, "samples/s"), "epochs": config.epochs, "samples_per_epoch_all_trainings": per_epoch,
                                           "input": [config.size, config.size], "precision": config.precision}},
            "training_s": config.epochs * per_epoch * (1 + 1 / 3) / rate}


def _rate(value: float, unit: str) -> dict[str, Any]:
    return {"rate": round(float(value), 2), "unit": unit}


ESTIMATES: dict[str, Callable[[str, str | None], dict[str, Any]]] = {"hc18": hc18_estimate, "seg_benchmark": seg_benchmark_estimate,
                                                                      "us_classification": us_classification_estimate,
                                                                      "fetal_mri_ga": fetal_mri_ga_estimate,
                                                                      "brain_age": brain_age_estimate}


def chapter_estimates(profile: str, data_dir: str | None, chapters: list[str] | None = None, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Per chapter: measured rates, predicted training seconds, and the prediction of the whole chapter
    (training + the last local run's other work) where a last run exists."""
    out = {}
    for chapter_id in chapters or list(ESTIMATES):
        if progress:
            progress(f"measuring {chapter_id} ...")
        try:
            est = ESTIMATES[chapter_id](profile, data_dir)
        except Exception as exc:  # noqa: BLE001 - one chapter that cannot be measured here must not hide the others
            out[chapter_id] = {"error": f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:300]}"}
            continue
        overhead = last_run_overhead_s(chapter_id, profile)
        est["other_work_s_last_run"] = overhead
        est["predicted_chapter_s"] = None if overhead is None else est["training_s"] + overhead
        out[chapter_id] = est
    return out


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
        for name, net in est["networks"].items():
            extra = ", ".join(f"{k} {v}" for k, v in net.items() if k not in ("rate", "unit"))
            lines.append(f"  {name}: {net['rate']:.2f} {net['unit']} ({extra})")
        lines.append(f"  predicted training time: {est['training_s'] / 60:.1f} min")
        if est["predicted_chapter_s"] is None:
            lines.append("  predicted chapter time: training + evaluation and figures (not known until the chapter has run once here)")
        else:
            lines.append(f"  predicted chapter time: {est['predicted_chapter_s'] / 60:.1f} min "
                         f"(training + {est['other_work_s_last_run'] / 60:.1f} min of other work in its last run here)")
    return "\n".join(lines)
