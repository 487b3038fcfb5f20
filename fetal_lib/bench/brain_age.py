"""``fetal bench brain-age``: seconds per subject of ``fetal brain-age predict`` and peak memory.

Times the whole per-subject path (read + check NIfTI, preprocess, segment, features, regress)
on real subjects with images (``<data root>/brain_age``), after loading the models once.
Imports nothing heavy at import time.
"""

from __future__ import annotations

import argparse
import time

from fetal_lib.bench import FORMAT_HELP, emit, peak_rss_mib
from fetal_lib.config.options import add_data_dir, add_data_source, add_format
from fetal_lib.brain_age import dataset
from fetal_lib.brain_age import segmentation
from fetal_lib.brain_age.predict import load_predictor
from fetal_lib.data.sources import resolve


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_dir(parser)
    add_data_source(parser, "the brain-age data")  # the default of `fetal brain-age train`
    parser.add_argument("--model", default=None, metavar="DIR", help="model folder (default: <build>/models/brain_age)")
    parser.add_argument("-n", "--subjects", type=int, default=10, metavar="N", help="subjects to time (default 10)")
    parser.add_argument("--threads", type=int, default=2, metavar="N", help="CPU threads (default 2)")
    add_format(parser, ("text", "json"), "text", FORMAT_HELP)


def run(args: argparse.Namespace) -> int:

    src = resolve("brain_age", args.data_dir, source=args.data_source)
    subjects = [s for s in dataset.load(src.root) if s.image_path is not None and s.mask_path is not None]
    subjects = subjects[: max(1, args.subjects)]
    t0 = time.perf_counter()
    predictor = load_predictor(args.model, threads=args.threads)
    load_s = time.perf_counter() - t0
    predictor(subjects[0].image_path, subjects[0].mask_path)  # warm-up (first-call allocations)
    times = []
    for s in subjects:
        t = time.perf_counter()
        predictor(s.image_path, s.mask_path)
        times.append(time.perf_counter() - t)
    result = {
        "target": "brain-age predict",
        "data": "phantom" if src.is_phantom else "real",
        "subjects": len(times),
        "threads": args.threads,
        "model_load_s": round(load_s, 3),
        "seconds_per_subject_mean": round(sum(times) / len(times), 3),
        "seconds_per_subject_max": round(max(times), 3),
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }
    return emit(result, args.format, [
        f"brain-age predict on {result['subjects']} {result['data']} subject(s), {args.threads} thread(s): "
        f"{result['seconds_per_subject_mean']:.3f} s/subject (max {result['seconds_per_subject_max']:.3f} s), "
        f"model load {result['model_load_s']:.2f} s, peak memory {result['peak_rss_mib']:.0f} MiB (RSS)"])


def bench_training(cfg, n_subjects: int = 6, epochs: int = 3, size: int = 64) -> dict:
    """Training throughput of the segmenter of ``cfg`` (subjects, i.e. random crops, per second).

    Trains ``epochs`` epochs on ``n_subjects`` random volumes of ``size``^3 (the speed of a
    convolution does not depend on the values) and times the epochs after the first, which pays
    the one-off allocations.
    """
    import numpy as np


    rng = np.random.default_rng(0)
    n_intensity = len(cfg.intensity_names())
    shape = (n_subjects, n_intensity, size, size, size) if n_intensity > 1 else (n_subjects, size, size, size)
    images = rng.standard_normal(shape).astype(np.float32)
    segs = rng.integers(0, 4, (n_subjects, size, size, size)).astype(np.uint8)
    masks = np.ones((n_subjects, size, size, size), np.uint8)
    run_cfg = segmentation.TrainConfig(**{**segmentation.config_dict(cfg), "epochs": max(2, epochs), "time_budget_s": None, "val_every": 10**6})
    result = segmentation.train(images, segs, run_cfg, masks=masks if cfg.mask_channel else None)
    timed = [h["seconds"] for h in result.history[1:]]
    return {"subjects_per_s": n_subjects * len(timed) / sum(timed), "crop": cfg.crop, "base_width": cfg.base_width,
            "batch_size": cfg.batch_size, "precision": cfg.precision}
