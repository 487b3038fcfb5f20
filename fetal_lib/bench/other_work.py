"""``fetal bench other-work``: how fast this machine does the chapters' work other than training.

A chapter's wall time is training plus everything else: reading and resizing images, one network
forward pass at a time over the evaluation splits, ellipse fits, distance transforms for HD95,
small linear algebra for the regressions and the bootstraps. That work does not slow down the way
training does: on the 2-core AMD EPYC with AVX-512 BF16, held to AVX2 and one core by
``tools/emulate_avx2.sh``, chapter 1's training took 4.1x as long (bfloat16 against float32) and its
other work 1.4x (304 s against 217). ``fetal doctor`` scales a reference run's other work by this
probe's seconds here over the reference machine's, not by the training rates.

The probe is a fixed mix of that work on synthetic arrays (nothing is read from disk), each part
timed as the median of a few repeats. Imports nothing heavy at import time.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Callable

import numpy as np

from fetal_lib.bench import FORMAT_HELP, emit
from fetal_lib.config.options import add_format
from fetal_lib.machine import thread_count

REPEATS = 9
IMAGE_SHAPE = (540, 800)  # an HC18 ultrasound image, pixels
NETWORK_INPUT = (8, 1, 96, 144)  # a batch at chapter 1's input size


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (first-call allocations, lazy initialisation)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _synthetic_image(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A speckled image with an elliptical head and the head's mask (bool), both IMAGE_SHAPE."""
    rows, cols = IMAGE_SHAPE
    y, x = np.mgrid[:rows, :cols]
    mask = ((x - cols / 2) / 220.0) ** 2 + ((y - rows / 2) / 160.0) ** 2 <= 1.0
    image = np.clip(rng.gamma(2.0, 30.0, IMAGE_SHAPE) + 80.0 * mask, 0, 255).astype(np.uint8)
    return image, mask


def probe_parts(repeats: int = REPEATS, seed: int = 0) -> dict[str, float]:
    """Seconds (median of ``repeats``) of each part of the probe:

    * ``image_io``: decode a PNG of IMAGE_SHAPE and resize it to the network's input (OpenCV)
    * ``postprocess``: connected components, the largest component's contour and its ellipse fit (OpenCV)
    * ``distances``: the Euclidean distance transform of the mask and its complement (SciPy; HD95)
    * ``linear_algebra``: a least-squares fit of 500 rows x 200 features and 200 bootstrap means (NumPy)
    * ``network_forward``: a float32 forward pass of a small convolution stack (PyTorch) on NETWORK_INPUT,
      with the chapters' thread count
    """
    import cv2
    import torch
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    image, mask = _synthetic_image(rng)
    ok, png = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError("OpenCV could not encode the probe's synthetic image")
    mask_u8 = mask.astype(np.uint8)
    x_rows = rng.standard_normal((500, 200))
    y_rows = rng.standard_normal(500)
    values = rng.standard_normal(500)

    def image_io():
        decoded = cv2.imdecode(png, cv2.IMREAD_GRAYSCALE)
        return cv2.resize(decoded, (NETWORK_INPUT[3], NETWORK_INPUT[2]), interpolation=cv2.INTER_AREA)

    def postprocess():
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask_u8)
        largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA])) if n > 1 else 0
        contours, _ = cv2.findContours((labels == largest).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        return cv2.fitEllipse(max(contours, key=len))

    def distances():
        return ndimage.distance_transform_edt(~mask), ndimage.distance_transform_edt(mask)

    def linear_algebra():
        coef = np.linalg.lstsq(x_rows, y_rows, rcond=None)[0]
        picks = rng.integers(0, len(values), (200, len(values)))
        return coef, values[picks].mean(axis=1)

    threads_before = torch.get_num_threads()
    torch.set_num_threads(thread_count(2))
    try:
        net = torch.nn.Sequential(
            torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.ReLU(),
            torch.nn.MaxPool2d(2), torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(32, 32, 3, padding=1),
            torch.nn.ReLU(), torch.nn.Upsample(scale_factor=2), torch.nn.Conv2d(32, 1, 1)).eval()
        batch = torch.from_numpy(rng.standard_normal(NETWORK_INPUT).astype(np.float32))

        def network_forward():
            with torch.no_grad():
                return net(batch)

        parts = {"image_io": image_io, "postprocess": postprocess, "distances": distances,
                 "linear_algebra": linear_algebra, "network_forward": network_forward}
        return {name: _median_seconds(fn, repeats) for name, fn in parts.items()}
    finally:
        torch.set_num_threads(threads_before)


def probe_seconds(repeats: int = REPEATS) -> float:
    """The probe's total seconds (the sum of :func:`probe_parts`): lower is faster."""
    return float(sum(probe_parts(repeats).values()))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=int, default=REPEATS, metavar="N", help=f"repeats per part, the median kept (default {REPEATS})")
    add_format(parser, ("text", "json"), "text", FORMAT_HELP)


def run(args: argparse.Namespace) -> int:
    if args.repeats < 1:
        print(f"fetal: error: --repeats must be at least 1, got {args.repeats}", file=sys.stderr)
        return 2
    parts = probe_parts(args.repeats)
    result: dict[str, Any] = {"parts_ms": {name: round(1000 * s, 2) for name, s in parts.items()},
                              "total_ms": round(1000 * sum(parts.values()), 2), "threads": thread_count(2)}
    lines = [f"{name}: {ms:.2f} ms" for name, ms in result["parts_ms"].items()]
    lines.append(f"other-work probe: {result['total_ms']:.2f} ms in all ({result['threads']} thread(s) for the network; "
                 "fetal doctor scales a reference run's other work by this figure's ratio)")
    return emit(result, args.format, lines)
