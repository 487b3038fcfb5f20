"""``fetal bench hc``: inference ms per image (network + post-processing) and training images/s.

Inference: the saved model (``--model``, default ``build/models/hc18_unet.keras``) measures
``--n-images`` HC18 images end to end (letterbox, network with its test-time flips,
un-letterbox, threshold, components, ellipse fit, checks) after a warm-up; the time to decode
the PNG is excluded and reported apart. Training: a fresh U-Net of the profile's size trains
on ``--train-images`` letterboxed images with augmentation for ``--train-steps`` batches after
a few warm-up batches. The images come from ``--data-source`` (default ``real``, as ``fetal hc
train``: fail if HC18 is absent). Keras (and its backend) is imported in :func:`run` only.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from fetal_lib.bench import FORMAT_HELP, add_keras_training_options, emit
from fetal_lib.config.options import add_data_dir, add_data_source, add_format, add_profile
from fetal_lib.networks.parameters import count_parameters
from fetal_lib.data import hc18
from fetal_lib.data.imaging import read_image_gray
from fetal_lib.data.sources import resolve
from fetal_lib.hc import pipeline
from fetal_lib.hc.dataset import load_arrays, training_batches
from fetal_lib.hc.train import build_model, compile_model
from fetal_lib.training import keras_backend
from fetal_lib.training.keras import train_epoch, uses_xla


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, metavar="PATH", help="trained model (default: build/models/hc18_unet.keras)")
    add_data_dir(parser)
    add_data_source(parser, "HC18")  # the default of `fetal hc train`
    add_profile(parser, "network size and settings for the training benchmark (default cpu)")
    parser.add_argument("--n-images", type=int, default=20, metavar="N", help="images timed for inference (default 20)")
    add_keras_training_options(parser, 32, 8, "override an hc18 setting of the profile for the training benchmark "
                               "(e.g. precision=mixed_bfloat16); repeatable")
    parser.add_argument("--skip-train", action="store_true", help="inference only")
    parser.add_argument("--skip-inference", action="store_true", help="training only")
    add_format(parser, ("text", "json"), "text", FORMAT_HELP)


def bench_inference(model, records, n_images: int) -> dict:
    """Time end-to-end measurement of ``n_images`` records (decode excluded); ms per image."""
    from fetal_lib.hc.postprocess import NoHeadFound  # deferred: imports scipy

    recs = list(records)[: max(1, n_images)]
    t0 = time.perf_counter()
    images = [read_image_gray(r.image_path) for r in recs]
    decode_ms = 1000 * (time.perf_counter() - t0) / len(recs)
    for _ in range(2):  # warm-up (graph tracing; a cascade's second stage too)
        model.probability(images[0])
    total, network, failed = [], [], 0
    for image, rec in zip(images, recs):
        t0 = time.perf_counter()
        prob = model.probability(image)
        t1 = time.perf_counter()
        try:
            model.fit(prob)
        except NoHeadFound:
            failed += 1
        t2 = time.perf_counter()
        total.append(1000 * (t2 - t0))
        network.append(1000 * (t1 - t0))
    return {
        "n_images": len(recs),
        "ms_per_image_mean": float(np.mean(total)),
        "ms_per_image_median": float(np.median(total)),
        "network_ms_mean": float(np.mean(network)),
        "postprocess_ms_mean": float(np.mean(total) - np.mean(network)),
        "decode_ms_mean": decode_ms,
        "tta": list(model.tta),
        "cascade": hasattr(model, "refiner"),  # chapter 1's two stages: "network" then holds both and the first stage's ellipse fit
        "no_head_found": failed,
    }


def bench_training(config, records, n_images: int, steps: int, warmup_steps: int = 4) -> dict:
    """Training throughput (images/s) of a fresh U-Net with augmentation, fed as the chapter feeds it
    (a ``PyDataset`` of shuffled, augmented batches), timed over whole epochs of at least ``steps``
    batches after at least ``warmup_steps`` (the first steps trace and compile the graph and are
    several times slower)."""

    recs = list(records)[: max(config.batch_size, n_images)]
    x, y = load_arrays(recs, config.input_shape, config.mask_mode)
    model = build_model(config, config.precision)
    compile_model(model, config)
    batches = training_batches(x, y, config.batch_size, config.seed, augment=config.augment, config=config.augment_config(),
                               workers=keras_backend.loader_workers())
    epoch = 0
    while epoch * len(batches) < max(1, warmup_steps):  # warm-up (graph building), whole epochs as the chapter trains
        train_epoch(model, batches, epoch=epoch)
        epoch += 1
    timed_epochs = max(1, -(-steps // len(batches)))  # at least ``steps`` batches, in whole epochs
    t0 = time.perf_counter()
    for _ in range(timed_epochs):  # augmentation timed too
        train_epoch(model, batches, epoch=epoch)
        epoch += 1
    seconds = time.perf_counter() - t0
    steps = timed_epochs * len(batches)
    seen = steps * config.batch_size
    return {
        "input_shape": list(config.input_shape),
        "filters": config.filters,
        "batch_size": config.batch_size,
        "images": seen,
        "seconds": seconds,
        "train_images_per_s": seen / seconds,
        "parameters": count_parameters(model),
        "precision": config.precision,
        "jit_compile": uses_xla(config.loop_config()),
    }


def run(args: argparse.Namespace) -> int:
    from fetal_lib.hc.measure import HCModel  # deferred: imports scipy
    from fetal_lib.training.keras import configure  # looked up at call time: a test replaces it

    try:
        overrides = pipeline.parse_overrides(args.set or [])
    except ValueError as exc:
        print(f"fetal: error: --set: {exc}", file=sys.stderr)
        return 2
    configure(threads=args.threads)
    source = resolve("hc18", args.data_dir, args.data_source)
    records = hc18.load(source.root, "train")

    out: dict = {"data": source.describe(), **keras_backend.describe()}
    if not args.skip_inference:
        model = HCModel.load(args.model)
        out["inference"] = bench_inference(model, records, args.n_images)
    if not args.skip_train:
        settings = pipeline.profile_settings(args.profile, overrides)
        config = pipeline.train_config(settings)
        out["training"] = bench_training(config, records, args.train_images, args.train_steps)
    lines = [out["data"], f"Keras on {out['keras_backend']} ({out['keras_device']})"]
    if "inference" in out:
        i = out["inference"]
        lines.append(f"inference: {i['ms_per_image_mean']:.1f} ms/image mean ({i['ms_per_image_median']:.1f} median) over {i['n_images']} images, "
                     + (f"both stages with the first stage's ellipse fit {i['network_ms_mean']:.1f} ms" if i.get("cascade") else
                        f"network {i['network_ms_mean']:.1f} ms (TTA {','.join(i['tta']) or 'none'})")
                     + f", post-processing {i['postprocess_ms_mean']:.1f} ms; "
                     f"PNG decode {i['decode_ms_mean']:.1f} ms not included")
    if "training" in out:
        t = out["training"]
        lines.append(f"training: {t['train_images_per_s']:.2f} images/s (input {t['input_shape'][0]}x{t['input_shape'][1]}, "
                     f"{t['filters']} filters, batch {t['batch_size']}, {t['precision']}{' XLA' if t['jit_compile'] else ''}, "
                     f"{t['images']} images in {t['seconds']:.1f} s, with augmentation)")
    return emit(out, args.format, lines)
