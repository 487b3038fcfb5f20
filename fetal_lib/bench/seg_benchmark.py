"""``fetal bench seg``: per chapter-2 architecture, parameters, training images/s, inference ms per
image and peak memory, at the profile's widths and input size.

Training: a fresh network of the profile's options (``--set`` overrides the ``seg_benchmark:``
knobs) trains on ``--train-images`` letterboxed HC18 images as the chapter trains it (the torch
augmentation of chapter 1, BCE + soft Dice on the logits, or the diffusion model's own noise
loss; Adam; bfloat16 autocast exactly when the profile's precision resolves to bfloat16 on the
device that trains: the profile's ``device``, CUDA when ``auto`` sees a GPU, with the training
images and their augmentation on it); a few warm-up batches, then ``--train-steps`` timed batches, augmentation included.
Inference: ``--n-images`` letterboxed images one at a time through
:meth:`~fetal_lib.torch_segmenter.TorchSegmenter.predict_nhwc` (one network pass per
image; the diffusion model with the profile's DDIM sampling), after a warm-up. The weights are
untrained (random): the timing of a forward pass does not depend on them, so nothing needs to be
trained first; the chapter's test-time flips (``tta``) multiply the passes and are not included.
Peak memory is the process's resident set so far (it only grows, architecture after architecture).
An architecture whose training or inference raises is reported with its error and the others
are still measured; the exit status is then 1.
The images come from ``--data-source`` (default ``real``, as ``fetal seg train``). PyTorch is
imported in :func:`run` only.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from fetal_lib.bench import FORMAT_HELP, emit, peak_rss_mib
from fetal_lib.config.options import add_data_dir, add_data_source, add_format, add_profile
from fetal_lib.networks.parameters import count_parameters
from fetal_lib.devices import autocast, resolve_device
from fetal_lib.devices import resolve_device
from fetal_lib.errors import FetalInputError
from fetal_lib.hc import pipeline as hc_pipeline
from fetal_lib.hc.dataset import load_arrays
from fetal_lib.seg_benchmark import pipeline
from fetal_lib.seg_benchmark.options import check_archs, registered_archs
from fetal_lib.seg_benchmark.options import settings_from_args
from fetal_lib.torch_segmenter import DIFFUSION
from fetal_lib.torch_segmenter import TorchSegmenter
from fetal_lib.training import torch as harness

WARMUP_STEPS = 2  # untimed training batches first (allocations, autocast caches)
WARMUP_PASSES = 1  # untimed inference passes first


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", default=None, metavar="NAMES",
                        help="comma-separated architectures (default: the profile's archs that are registered)")
    add_profile(parser, "widths, input size and precision of the seg_benchmark: section (default cpu)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a seg_benchmark knob of the profile, e.g. precision=bfloat16 (repeatable; not arch_options)")
    add_data_dir(parser)
    add_data_source(parser, "HC18")  # the default of `fetal seg train`
    parser.add_argument("--n-images", type=int, default=10, metavar="N", help="images timed for inference, one at a time (default 10)")
    parser.add_argument("--train-images", type=int, default=32, metavar="N", help="images the training batches are drawn from (default 32)")
    parser.add_argument("--train-steps", type=int, default=4, metavar="N",
                        help=f"timed training batches after {WARMUP_STEPS} warm-up batches (default 4)")
    parser.add_argument("--threads", type=int, default=2, metavar="N", help="PyTorch CPU threads (default 2)")
    parser.add_argument("--skip-train", action="store_true", help="inference only")
    parser.add_argument("--skip-inference", action="store_true", help="training only")
    add_format(parser, ("text", "json"), "text", FORMAT_HELP)


def _batches(x, y, batch_size: int, generator):
    """Endless (images, masks) batches of ``batch_size`` in shuffled order (the arrays tiled if fewer)."""
    import torch

    n = x.shape[0]
    while True:
        order = torch.randperm(n, generator=generator, device=generator.device)
        if n < batch_size:
            order = order.repeat((batch_size + n - 1) // n)
        for k in range(0, len(order) - batch_size + 1, batch_size):
            idx = order[k : k + batch_size]
            yield x[idx], y[idx]


def bench_training(config, x: np.ndarray, y: np.ndarray, steps: int, warmup_steps: int = WARMUP_STEPS) -> dict:
    """Training throughput (images/s) of a fresh ``config.arch`` on letterboxed (N, rows, cols, 1)
    images and filled masks, timed over ``steps`` batches after ``warmup_steps``."""
    import torch

    from fetal_lib.seg_benchmark.augment import augment_batch  # deferred: imports torch
    from fetal_lib.seg_benchmark.losses import bce_dice_from_logits  # deferred: imports torch
    from fetal_lib.seg_benchmark.train import build_network  # looked up at call time: a test replaces it


    device = resolve_device(config.device)
    torch.manual_seed(int(config.seed))
    net = build_network(config).to(device)
    net.train()
    diffusion = config.arch in DIFFUSION
    optimiser = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    generator = torch.Generator(device=device).manual_seed(int(config.seed))
    aug = config.augment_config()
    # the training set and its augmentation on the device that trains, as fetal_lib.seg_benchmark.train does
    x_t = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32)).to(device)
    y_t = torch.from_numpy(np.ascontiguousarray(y.transpose(0, 3, 1, 2), dtype=np.float32)).to(device)
    batches = _batches(x_t, y_t, int(config.batch_size), generator)

    def step():
        xb, yb = next(batches)
        if config.augment:
            xb, yb = augment_batch(xb, yb, aug, generator)
        optimiser.zero_grad()
        with autocast(device, config.precision):
            if diffusion:
                out = net.training_loss(xb, (yb > 0.5).float())
            else:
                out = net(xb)
        loss = out.float() if diffusion else bce_dice_from_logits(out.float(), yb)
        loss.backward()
        optimiser.step()
        return loss.detach()

    for _ in range(max(0, warmup_steps)):
        float(step())  # float(): the device has finished the step
    t0 = time.perf_counter()
    losses = [step() for _ in range(max(1, steps))]
    final_loss = float(losses[-1])  # waits for the device's last step
    seconds = time.perf_counter() - t0
    seen = max(1, steps) * int(config.batch_size)
    return {
        "images": seen,
        "batch_size": int(config.batch_size),
        "warmup_batches": max(0, warmup_steps),
        "seconds": seconds,
        "train_images_per_s": seen / seconds,
        "precision": config.precision,
        "augment": bool(config.augment),
        "loss": "diffusion noise loss (training_loss)" if diffusion else "BCE + soft Dice",
        "final_loss": final_loss,
        "device": device,
    }


def bench_inference(config, x: np.ndarray, warmup_passes: int = WARMUP_PASSES) -> dict:
    """Milliseconds per letterboxed image through an untrained ``config.arch``, one image per call."""
    import torch

    from fetal_lib.seg_benchmark.train import build_network  # looked up at call time: a test replaces it


    torch.manual_seed(int(config.seed))
    net = build_network(config).to(resolve_device(config.device)).eval()
    rows, cols = config.input_shape
    seg = TorchSegmenter(net, config.arch, dict(config.options), rows, cols, config.sampling)
    for _ in range(max(0, warmup_passes)):
        seg.predict_nhwc(x[:1])
    times = []
    for i in range(x.shape[0]):
        t0 = time.perf_counter()
        seg.predict_nhwc(x[i : i + 1])
        times.append(1000 * (time.perf_counter() - t0))
    out = {
        "n_images": len(times),
        "ms_per_image_mean": float(np.mean(times)),
        "ms_per_image_median": float(np.median(times)),
        "weights": "untrained (random): timing only",
        "passes_per_image": 1,
    }
    if seg.is_diffusion:
        out["sampling"] = config.sampling.to_dict()
    return out


def _arch_names(arch_option: str | None, settings: dict) -> tuple[list[str], list[str]]:
    """(architectures to bench, the profile's that are skipped because not registered yet)."""

    if arch_option:
        return check_archs(arch_option), []
    try:
        wanted = pipeline.parse_archs(settings["archs"])
    except ValueError as exc:
        raise FetalInputError(None, f"the profile's archs: {exc}") from None
    ready = registered_archs()
    names = [a for a in wanted if a in ready]
    if not names:
        raise FetalInputError(None, f"none of the profile's archs ({', '.join(wanted)}) is registered yet; available: {', '.join(ready)}")
    return names, [a for a in wanted if a not in ready]


def _guarded(arch: str, what: str, failed: list[str], fn, *args) -> dict:
    """``fn(*args)``, or ``{"error": ...}`` (printed, and ``"<arch> <what>"`` added to ``failed``) if it
    raises: one architecture that cannot run must not hide the figures of the others."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - reported per architecture; the exit status says it
        message = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:300]}"
        print(f"fetal: error: bench seg: {arch} {what} failed: {message}", file=sys.stderr, flush=True)
        failed.append(f"{arch} {what}")
        return {"error": message}


def _line(arch: str, r: dict) -> str:
    parts = [f"{arch}: {r['parameters']:,} parameters"]
    for what in ("training", "inference"):
        if "error" in r.get(what, {}):
            parts.append(f"{what} FAILED ({r[what]['error']})")
            r = {k: v for k, v in r.items() if k != what}
    if "training" in r:
        t = r["training"]
        parts.append(f"training {t['train_images_per_s']:.2f} images/s ({t['images']} images in {t['seconds']:.1f} s, "
                     f"batch {t['batch_size']}, {t['precision']}{', with augmentation' if t['augment'] else ''})")
    if "inference" in r:
        i = r["inference"]
        extra = f", DDIM {i['sampling']['steps']} steps x {i['sampling']['n_samples']} samples" if "sampling" in i else ""
        parts.append(f"inference {i['ms_per_image_mean']:.1f} ms/image mean ({i['ms_per_image_median']:.1f} median) over "
                     f"{i['n_images']} images{extra}")
    parts.append(f"peak RSS so far {r['peak_rss_mib_so_far']:.0f} MiB")
    return "; ".join(parts)


def run(args: argparse.Namespace) -> int:

    for name in ("n_images", "train_images", "train_steps", "threads"):
        if getattr(args, name) < 1:
            raise FetalInputError(None, f"--{name.replace('_', '-')}: needs at least 1, got {getattr(args, name)}")
    settings = settings_from_args(args.profile, args.set)
    names, skipped = _arch_names(args.arch, settings)


    harness.configure(args.threads, 0)
    choice = pipeline.precision_choice(settings)
    data = hc_pipeline.load_data(args.data_dir, args.data_source, 0, int(settings["max_images"]))
    shape = (int(settings["input_rows"]), int(settings["input_cols"]))
    train_recs = data.part("train")[: max(1, args.train_images)]
    test_recs = data.part("test") or data.part("val")
    infer_recs = (list(test_recs) * (1 + args.n_images // max(1, len(test_recs))))[: args.n_images]
    x_train = y_train = x_infer = None
    if not args.skip_train:
        x_train, y_train = load_arrays(train_recs, shape, "filled")
    if not args.skip_inference:
        x_infer, _ = load_arrays(infer_recs, shape, None)
    out: dict = {
        "target": "seg",
        "data": data.source.describe(),
        "profile": args.profile,
        "threads": args.threads,
        "input_shape": list(shape),
        "precision": choice.to_dict(),
        "weights": "untrained (random init): the figures time the networks, they say nothing of accuracy",
        "architectures": {},
    }
    if skipped:
        out["skipped_not_registered"] = skipped
    failed: list[str] = []
    for arch in names:
        config = pipeline.train_config(settings, arch, seed=0)
        print(f"bench seg: {arch} ...", file=sys.stderr, flush=True)
        from fetal_lib.seg_benchmark.train import build_network  # looked up at call time: a test replaces it

        r: dict = {"options": dict(config.options), "parameters": count_parameters(build_network(config))}
        if x_train is not None:
            r["training"] = _guarded(arch, "training", failed, bench_training, config, x_train, y_train, args.train_steps)
        if x_infer is not None:
            r["inference"] = _guarded(arch, "inference", failed, bench_inference, config, x_infer)
        r["peak_rss_mib_so_far"] = round(peak_rss_mib(), 1)
        out["architectures"][arch] = r
    out["peak_rss_mib"] = round(peak_rss_mib(), 1)
    lines = [out["data"],
             (f"profile {args.profile}: input {shape[0]}x{shape[1]}, {args.threads} thread(s), precision {choice.precision} "
              f"({choice.reason}); untrained weights (timing only); inference is one network pass per image "
              "(the chapter's test-time flips not included)")]
    lines += [_line(arch, r) for arch, r in out["architectures"].items()]
    if skipped:
        lines.append(f"skipped (not registered yet): {', '.join(skipped)}")
    lines.append(f"peak memory {out['peak_rss_mib']:.0f} MiB (RSS)")
    if failed:
        out["failed"] = failed
        lines.append(f"FAILED: {', '.join(failed)} (see the errors above)")
    emit(out, args.format, lines)
    return 1 if failed else 0
