"""``fetal bench us``: what each chapter-3 network costs on this machine.

Per architecture (``--arch``, default the profile's ``archs``), built at the profile's input size
for the task's class count: parameters, FLOPs per image (:func:`fetal_lib.us.efficiency.flops`,
2 x multiply-adds), inference milliseconds per image (forward pass only, after warm-up; batch 1
and batch ``--batch``), and training images/s (the profile's recipe: precision, XLA, class weights,
augmentation; :func:`fetal_lib.us.efficiency.training_images_per_s`) on ``--train-images``
letterboxed images of the task's training part for ``--train-steps`` batches after a warm-up.
An untrained network costs what a trained one costs, so no saved model is needed. The images
come from ``--data-source`` (default ``real``, as ``fetal us train``). Keras (and its backend) is
imported in :func:`run` only.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from fetal_lib.bench import FORMAT_HELP, add_keras_training_options, emit, peak_rss_mib, profile_overrides
from fetal_lib.config.options import add_data_dir, add_data_source, add_format, add_profile
from fetal_lib.networks.parameters import count_parameters
from fetal_lib.us.tasks import TASKS
from fetal_lib.networks.keras import create
from fetal_lib.training import keras_backend
from fetal_lib.us import efficiency, pipeline
from fetal_lib.us import pipeline
from fetal_lib.us.arrays import load_arrays
from fetal_lib.us.classifier import classifier_archs
from fetal_lib.us.pipeline import CHAPTER
from fetal_lib.us.tasks import load_task


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", choices=TASKS, default="planes", help="the task whose images and class count are used (default planes)")
    parser.add_argument("--arch", default=None, metavar="NAMES", help="comma-separated networks (default: the profile's archs)")
    add_profile(parser, "input size, widths and training settings (us_classification:) of the networks (default cpu)")
    add_data_dir(parser)
    add_data_source(parser, "the task's data set")  # the default of `fetal us train`
    parser.add_argument("--n-images", type=int, default=32, metavar="N", help="images timed for inference (default 32)")
    parser.add_argument("--batch", type=int, default=16, metavar="N", help="batch size of the batched inference figure (default 16)")
    add_keras_training_options(parser, 64, 4, "override a us_classification knob of the profile (e.g. precision=float32); repeatable")
    parser.add_argument("--skip-train", action="store_true", help="parameters, FLOPs and inference only")
    add_format(parser, ("text", "json"), "text", FORMAT_HELP)


def bench_arch(arch: str, settings: dict, x: np.ndarray, y: np.ndarray, num_classes: int, n_images: int, batch: int,
               train_steps: int | None, seed: int = 0) -> dict:
    """The figures of one architecture (``train_steps`` None: no training benchmark)."""

    config = pipeline.train_config(settings, arch, seed)
    model = create(arch, input_shape=config.input_shape, num_classes=num_classes, **config.options)
    xi = x[: max(1, n_images)]
    out = {
        "arch": arch,
        "options": config.options,
        "input_shape": list(config.input_shape),
        "parameters": count_parameters(model),
        "gflops_per_image": efficiency.flops(model, config.input_shape) / 1e9,
        "inference_ms_per_image_batch1": efficiency.inference_ms_per_image(model, xi, batch_size=1),
        "inference_batch": min(batch, len(xi)),
        "inference_ms_per_image_batched": efficiency.inference_ms_per_image(model, xi, batch_size=batch),
    }
    del model
    if train_steps:
        out.update({"train_images_per_s": efficiency.training_images_per_s(config, x, y, num_classes, steps=train_steps),
                    "batch_size": config.batch_size, "precision": config.precision, "jit_compile": config.jit_compile,
                    "augment": config.augment, "train_steps": train_steps})
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def run(args: argparse.Namespace) -> int:
    from fetal_lib.training.keras import configure  # looked up at call time: a test replaces it

    overrides = profile_overrides(CHAPTER, args.set)
    if overrides is None:
        return 2
    settings = pipeline.profile_settings(args.profile, overrides)
    archs = pipeline.split_names(args.arch) if args.arch else pipeline.split_names(settings["archs"])
    unknown = [a for a in archs if a not in classifier_archs()]
    if unknown or not archs:
        print(f"fetal: error: --arch: unknown network(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(classifier_archs())}",
              file=sys.stderr)
        return 2
    if min(args.n_images, args.batch, args.train_images, args.train_steps) < 1:
        print("fetal: error: --n-images, --batch, --train-images and --train-steps must be at least 1", file=sys.stderr)
        return 2
    configure(threads=args.threads)
    data = load_task(args.task, args.data_dir, args.data_source)
    size = (int(settings["input_rows"]), int(settings["input_cols"]))
    train_items = data.part("train")
    n = min(len(train_items), max(args.train_images, args.n_images))
    x = load_arrays(train_items[:n], size)
    y = data.labels("train")[:n]
    results = [bench_arch(a, settings, x, y, len(data.classes), args.n_images, args.batch,
                          None if args.skip_train else args.train_steps) for a in archs]

    out = {"data": data.source.describe(), "task": data.task, "classes": len(data.classes), "profile": args.profile,
           **keras_backend.describe(), "architectures": results}
    lines = [out["data"], f"task {data.task} ({len(data.classes)} classes), input {size[0]}x{size[1]}, profile {args.profile}, "
                          f"Keras on {out['keras_backend']} ({out['keras_device']})"]
    for r in results:
        line = (f"{r['arch']}: {r['parameters']:,} parameters, {r['gflops_per_image']:.4g} GFLOPs/image; inference "
                f"{r['inference_ms_per_image_batch1']:.1f} ms/image at batch 1, {r['inference_ms_per_image_batched']:.1f} at batch "
                f"{r['inference_batch']}")
        if "train_images_per_s" in r:
            line += (f"; training {r['train_images_per_s']:.1f} images/s (batch {r['batch_size']}, {r['precision']}"
                     f"{' XLA' if r['jit_compile'] else ''}{', augmented' if r['augment'] else ''})")
        lines.append(line)
    return emit(out, args.format, lines)
