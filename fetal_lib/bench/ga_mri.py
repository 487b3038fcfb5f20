"""``fetal bench ga``: what chapter 4's regressor costs on this machine.

At the profile's slice size and widths (``fetal_mri_ga:``): parameters, training samples/s (one
sample = three slices; the profile's batch, precision and augmentation; random slices, as an
untrained network costs what a trained one costs) after a warm-up step, inference ms per sample
and per volume (the matched triples ``fetal ga predict`` averages), and the predicted training
seconds of the chapter (every protocol's trainings and the deployed model, from the volume count
given or found under the data root). TensorFlow is imported in the functions only.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from fetal_lib.bench import FORMAT_HELP, add_keras_training_options, emit, peak_rss_mib, profile_overrides
from fetal_lib.config.options import add_format, add_profile
from fetal_lib.networks.parameters import count_parameters
from fetal_lib.ga_mri.train import build_model, training_batches
from fetal_lib.networks.keras.vgg_attention import PLANES
from fetal_lib.training import keras_backend
from fetal_lib.training.keras import train_epoch, uses_xla

CHAPTER = "fetal_mri_ga"


def training_samples_per_epoch_total(n_volumes: int, samples_per_volume: int, folds: int, families: int = 2) -> int:
    """Training samples of ONE epoch summed over every training the chapter runs: protocol 1 and 3
    (``folds`` trainings on (folds-1)/folds of the samples each), protocol 2 (each family's model
    trains on the others: the samples once over all of them when there are two families) and the
    deployed model (all samples)."""
    n = n_volumes * samples_per_volume
    cross = n * (families - 1) if families >= 2 else 0
    return int(round(2 * (folds - 1) * n + cross + n))


def training_runs(folds: int, families: int = 2) -> int:
    """Trainings the chapter runs: protocols 1 and 3 (``folds`` each), protocol 2 (one per family) and the deployed model."""
    return 2 * folds + families + 1


def bench_training(config, steps: int = 4, seed: int = 0, repeats: int = 3) -> dict:
    """Training samples/s of ``config`` (a GaTrainConfig) on random slices, fed as the chapter feeds them:
    the median of ``repeats`` timed epochs of ``steps`` batches each, after one warm-up epoch of as many
    (a single epoch of 4 batches, under a second, read 0.5-1.3x the chapter's own rate on the same VM)."""
    if min(steps, repeats) < 1:
        raise ValueError(f"steps and repeats must be at least 1, got {steps} and {repeats}")
    import keras


    rng = np.random.default_rng(seed)
    n = config.batch_size * steps
    planes = {p: rng.uniform(0, 1, (n, config.size, config.size, 1)).astype(np.float32) for p in PLANES}
    y = rng.uniform(140, 270, n)
    model = build_model(config, config.precision)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=keras.losses.Huber(config.huber_delta_days),
                  jit_compile=uses_xla(config.loop_config()))
    batches = training_batches(planes, y, config)
    train_epoch(model, batches)  # warm-up: tracing (one epoch of ``steps`` batches)
    timed = []
    for epoch in range(1, repeats + 1):
        t0 = time.perf_counter()
        train_epoch(model, batches, epoch=epoch)  # fed as the chapter feeds it
        timed.append(time.perf_counter() - t0)
    seconds = float(np.median(timed))
    inputs = [planes[p][: config.batch_size] for p in PLANES]
    model.predict(inputs, verbose=0)
    t1 = time.perf_counter()
    for _ in range(3):
        model.predict(inputs, batch_size=config.batch_size, verbose=0)
    ms = 1000 * (time.perf_counter() - t1) / (3 * config.batch_size)
    return {"train_samples_per_s": steps * config.batch_size / seconds, "inference_ms_per_sample": ms,
            "parameters": count_parameters(model)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_profile(parser, "slice size, widths and training settings (fetal_mri_ga:) of the network (default cpu)")
    parser.add_argument("--volumes", type=int, default=31, metavar="N",
                        help="volumes the chapter trains on, for the predicted time (default 31: the real atlases with a T2 image)")
    add_keras_training_options(parser, None, 4, "override a fetal_mri_ga knob of the profile (e.g. precision=float32); repeatable")
    add_format(parser, ("text", "json"), "text", FORMAT_HELP)


def run(args: argparse.Namespace) -> int:
    from fetal_lib.ga_mri import pipeline  # deferred: imports pandas
    from fetal_lib.training.keras import configure  # looked up at call time: a test replaces it

    overrides = profile_overrides(CHAPTER, args.set)
    if overrides is None:
        return 2
    if min(args.volumes, args.train_steps) < 1:
        print("fetal: error: --volumes and --train-steps must be at least 1", file=sys.stderr)
        return 2
    configure(threads=args.threads)
    settings = pipeline.profile_settings(args.profile, overrides)
    config = pipeline.train_config(settings)
    figures = bench_training(config, args.train_steps)
    n_offsets = len(pipeline.preprocess_config(settings).offsets_mm)
    per_epoch = training_samples_per_epoch_total(args.volumes, int(settings["samples_per_volume"]), int(settings["folds"]))
    # each epoch also predicts its training samples once (the learning curve): about a third of a training pass
    seconds = config.epochs * per_epoch * (1 + 1 / 3) / figures["train_samples_per_s"]

    out = {**keras_backend.describe(), "profile": args.profile, "size": config.size, "options": config.options, "precision": config.precision,
           "batch_size": config.batch_size, **figures, "inference_ms_per_volume": figures["inference_ms_per_sample"] * n_offsets,
           "volumes": args.volumes, "epochs": config.epochs, "training_samples_per_epoch_all_trainings": per_epoch,
           "predicted_training_s": seconds, "peak_rss_mib": peak_rss_mib()}
    lines = [f"vgg_attention at {config.size}x{config.size} per plane, profile {args.profile}, Keras on {out['keras_backend']} "
             f"({out['keras_device']}): {figures['parameters']:,} parameters",
             f"training {figures['train_samples_per_s']:.1f} samples/s (3 slices each; batch {config.batch_size}, {config.precision})",
             f"inference {figures['inference_ms_per_sample']:.2f} ms/sample, {out['inference_ms_per_volume']:.1f} ms/volume "
             f"({n_offsets} matched triples; reading and preprocessing not included)",
             f"chapter training: {config.epochs} epochs x {per_epoch} samples over all its trainings -> about "
             f"{seconds / 60:.1f} min", f"peak memory {out['peak_rss_mib']:.0f} MiB"]
    return emit(out, args.format, lines)
