"""Deterministic synthetic datasets ("phantoms") in each real dataset's exact on-disk layout.

``write(name, dest, seed=0, size="small")`` builds a phantom with known answers so that
loaders, chapters and tests take the same path with or without the real data:

- ``hc18``: ellipse heads in speckle noise (800x540), outline annotations drawn like the
  real ones, CSV with the analytic HC (Ramanujan perimeter x pixel size, mm); several images
  per subject (``NNN_2HC.png``).
- ``fetal_planes``: patients x planes (brain TT/TC/TV, thorax, abdomen, femur) with
  plane-dependent shapes, Roboflow re-export layout with the ``;``-separated label table.
- ``fetal_brain_anomaly_us``: normal vs abnormal (enlarged ventricles, cysts ...) brain
  planes, YOLO export with Roboflow-style augmented copies.
- ``fetal_brain_anomaly_16class``: folder-per-class export of the 16 classes.
- ``fetal_brain_atlases``: 48x56x48 volumes at 2 mm whose brain size and cortical folding grow
  with gestational age, with mask and 8-label parcellation (and a T2-like SRR).
- ``feta``: 8 subjects (GA 21-36 weeks) in the FeTA BIDS layout: ``participants.tsv``, T2 and
  FeTA-labelled dseg per subject (48x56x48 at 2 mm), brain size jittered about its GA, intensity
  scale varying 6-fold, half of them in LPS instead of RAS orientation, shifted by a few mm.
- ``brain_age``: meta CSVs, tissue segmentations whose GM shrinks and CSF grows with age,
  T1-like images and masks for the segmentation subjects (48x56x48 at 4 mm).

Every phantom has ``PHANTOM.txt`` (it is synthetic; its seed) and ``PHANTOM_truth.csv``
(the known answers) at its root; the loaders ignore both. The whole phantom is written to a
temporary folder beside ``dest`` and renamed, so an interrupted run leaves nothing half-written.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
from fetal_lib.data import DATASET_NAMES
from fetal_lib.metrics.biometry import ellipse_perimeter
from fetal_lib.data.brain_age import image_name, mask_name, seg_name
from fetal_lib.data.feta_bids import GA_COLUMNS, TO_ATLAS_LABELS
from fetal_lib.data.fetal_brain_anomaly_16class import CLASSES
from fetal_lib.data.hc18 import annotation_name

NAMES = DATASET_NAMES
SIZES = ("small", "medium")
#: Bump when a generator changes, so cached phantoms (fetal_lib.data.sources) are rewritten.
PHANTOM_VERSION = 2  # 2: the atlas phantom written with the real atlases' RAS direction


# --------------------------------------------------------------------------- helpers


def _rng(name: str, seed: int) -> np.random.Generator:
    salt = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)
    return np.random.default_rng([int(seed), salt])


def _hash(*parts: object) -> str:
    """A deterministic 32-hex 'Roboflow hash'."""
    return hashlib.md5("|".join(str(p) for p in parts).encode()).hexdigest()


def _scale(size: str) -> int:
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    return 1 if size == "small" else 3


def _write_png(path: Path, image: np.ndarray) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write {path}")


def _write_jpg(path: Path, gray: np.ndarray, quality: int = 90) -> None:
    """3-channel JPEG like the Roboflow exports."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    bgr = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    if not cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, quality]):
        raise OSError(f"could not write {path}")


def _write_csv(path: Path, header: list[str], rows: list[list[object]], delimiter: str = ",", newline: str = "\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, lineterminator=newline)
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8", newline="")


def _write_nifti(path: Path, array_zyx: np.ndarray, spacing_xyz: tuple[float, float, float], origin=(0.0, 0.0, 0.0),
                 direction: tuple[float, ...] | None = None) -> None:
    """Write a zyx array as NIfTI; spacing and origin in mm, direction (row-major 3x3) default identity."""
    import SimpleITK as sitk

    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(array_zyx)
    image.SetSpacing(tuple(float(s) for s in spacing_xyz))
    image.SetOrigin(tuple(float(o) for o in origin))
    if direction is not None:
        image.SetDirection(tuple(float(d) for d in direction))
    sitk.WriteImage(image, str(path), useCompression=True)


def _speckle(rng: np.random.Generator, shape: tuple[int, int], echo: np.ndarray, blur: float = 1.2) -> np.ndarray:
    """Ultrasound-like image: echogenicity map x Rayleigh speckle, smoothed, to uint8."""
    import cv2

    speckle = rng.rayleigh(1.0, size=shape).astype(np.float32) / 1.2533  # mean 1
    image = echo.astype(np.float32) * speckle
    image = cv2.GaussianBlur(image, (0, 0), blur)
    return np.clip(image, 0, 255).astype(np.uint8)


def _sector(shape: tuple[int, int], apex_row: float = -0.25, half_angle_deg: float = 38.0) -> np.ndarray:
    """Float32 fan (ultrasound sector) mask (1 inside, 0 outside) with its apex above the image."""
    return _sector_cached(tuple(shape), float(apex_row), float(half_angle_deg))


@functools.lru_cache(maxsize=8)
def _sector_cached(shape: tuple[int, int], apex_row: float, half_angle_deg: float) -> np.ndarray:
    rows, cols = shape
    yy, xx = np.mgrid[:rows, :cols]
    ay, ax = apex_row * rows, cols / 2
    ang = np.degrees(np.arctan2(xx - ax, yy - ay))
    rad = np.hypot(xx - ax, yy - ay)
    fan = ((np.abs(ang) <= half_angle_deg) & (rad <= rows * 1.22)).astype(np.float32)
    fan.setflags(write=False)
    return fan


def _draw_ellipse(img: np.ndarray, cx, cy, a, b, angle_deg, value, thickness=-1) -> None:
    import cv2

    cv2.ellipse(img, ((float(cx), float(cy)), (2.0 * a, 2.0 * b), float(angle_deg)), float(value), int(thickness), cv2.LINE_AA)


def _meta_text(name: str, seed: int, size: str) -> str:
    return (
        f"PHANTOM: synthetic stand-in for the dataset '{name}'.\n"
        f"Written by fetal_lib.data.phantoms.write(name={name!r}, seed={seed}, size={size!r}).\n"
        f"seed: {seed}\nsize: {size}\nphantom_version: {PHANTOM_VERSION}\n"
        "It is NOT real data: it has the real dataset's on-disk layout and known answers\n"
        "(PHANTOM_truth.csv). Any number computed on it is a phantom result.\n"
    )


# --------------------------------------------------------------------------- 2D brain drawing


def _brain_plane(
    rng: np.random.Generator,
    size: int,
    ventricle: float = 0.12,
    feature: str = "normal",
    plane: str = "trans-ventricular",
) -> tuple[np.ndarray, dict[str, tuple[float, float, float, float]]]:
    """A transverse fetal-head US image (uint8 size x size) and boxes (normalised cx, cy, w, h).

    ``ventricle`` is the atrial width as a fraction of the head's short axis (normal ~0.1).
    ``feature`` adds an anomaly (see the 16-class list); ``plane`` the brain plane's landmarks.
    Returns the image and {"head": box, "lesion": box}.
    """
    s = float(size)
    echo = np.full((size, size), 38.0, np.float32)
    cx, cy = s * rng.uniform(0.46, 0.54), s * rng.uniform(0.46, 0.54)
    a, b = s * rng.uniform(0.36, 0.42), s * rng.uniform(0.28, 0.33)
    ang = float(rng.integers(-20, 21))
    t = math.radians(ang)
    u = np.array([math.cos(t), math.sin(t)])  # major (fronto-occipital) axis
    v = np.array([-math.sin(t), math.cos(t)])

    def at(du: float, dv: float) -> tuple[float, float]:
        p = np.array([cx, cy]) + du * a * u + dv * b * v
        return float(p[0]), float(p[1])

    head_a, head_b = a, b
    if feature == "anold-chiari-malformation":  # 'lemon' head: narrower frontal part
        head_b = b * 0.9
    _draw_ellipse(echo, cx, cy, head_a, head_b, ang, 95.0)  # brain parenchyma
    _draw_ellipse(echo, cx, cy, head_a, head_b, ang, 215.0, thickness=max(2, int(s * 0.018)))  # skull
    lesion = None
    if feature == "hydracenphaly":
        _draw_ellipse(echo, cx, cy, head_a * 0.9, head_b * 0.88, ang, 18.0)
        lesion = (cx, cy, 1.8 * head_a, 1.8 * head_b)
    if feature != "holoprosencephaly":  # midline echo
        p0, p1 = at(-0.85, 0), at(0.85, 0)
        import cv2

        cv2.line(echo, (int(p0[0]), int(p0[1])), (int(p1[0]), int(p1[1])), 170.0, max(1, int(s * 0.006)), cv2.LINE_AA)
    # lateral ventricle atrium (dark) with choroid plexus (bright), on the far side
    vw = ventricle * 2 * b
    vx, vy = at(-0.35, 0.45)
    if feature == "holoprosencephaly":
        vx, vy = at(0.0, 0.0)
        _draw_ellipse(echo, vx, vy, 0.55 * a, 0.45 * b, ang, 20.0)
        lesion = (vx, vy, 1.2 * a, 1.0 * b)
    elif feature == "colphocephaly":
        _draw_ellipse(echo, *at(-0.5, 0.35), 0.35 * a, 0.22 * b, ang + 10, 20.0)
        lesion = (*at(-0.5, 0.35), 0.75 * a, 0.5 * b)
    elif feature != "hydracenphaly":
        _draw_ellipse(echo, vx, vy, 0.28 * a, vw / 2, ang, 22.0)
        _draw_ellipse(echo, vx, vy, 0.12 * a, vw / 4, ang, 150.0)
        if ventricle > 0.16:
            lesion = (vx, vy, 0.6 * a, vw * 1.2)
    if plane == "trans-thalamic":
        for side in (-1, 1):
            _draw_ellipse(echo, *at(0.05, side * 0.16), 0.13 * a, 0.09 * b, ang, 60.0)
        _draw_ellipse(echo, *at(0.4, 0), 0.08 * a, 0.05 * b, ang, 25.0)  # cavum septi pellucidi
    elif plane == "trans-cerebellum":
        for side in (-1, 1):
            _draw_ellipse(echo, *at(-0.6, side * 0.14), 0.12 * a, 0.12 * b, ang, 140.0)
        _draw_ellipse(echo, *at(-0.82, 0), 0.08 * a, 0.18 * b, ang, 25.0)  # cisterna magna
    # anomalies
    if feature == "arachnoid-cyst":
        p = at(0.35, -0.45)
        _draw_ellipse(echo, *p, 0.16 * a, 0.2 * b, 0, 15.0)
        lesion = (*p, 0.35 * a, 0.42 * b)
    elif feature == "cerebellah-hypoplasia":
        for side in (-1, 1):
            _draw_ellipse(echo, *at(-0.62, side * 0.08), 0.06 * a, 0.06 * b, ang, 140.0)
        lesion = (*at(-0.62, 0), 0.3 * a, 0.3 * b)
    elif feature == "m-magna":
        p = at(-0.78, 0)
        _draw_ellipse(echo, *p, 0.16 * a, 0.32 * b, ang, 15.0)
        lesion = (*p, 0.35 * a, 0.65 * b)
    elif feature == "encephalocele":
        p = at(-1.05, 0)
        _draw_ellipse(echo, *p, 0.2 * a, 0.22 * b, ang, 80.0)
        _draw_ellipse(echo, *p, 0.2 * a, 0.22 * b, ang, 200.0, thickness=2)
        lesion = (*p, 0.45 * a, 0.45 * b)
    elif feature == "intracranial-hemorrdge":
        p = at(0.25, 0.35)
        _draw_ellipse(echo, *p, 0.13 * a, 0.1 * b, 30, 235.0)
        lesion = (*p, 0.3 * a, 0.25 * b)
    elif feature == "intracranial-tumor":
        p = at(0.2, -0.3)
        _draw_ellipse(echo, *p, 0.2 * a, 0.18 * b, 0, 180.0)
        _draw_ellipse(echo, *p, 0.1 * a, 0.08 * b, 0, 60.0)
        lesion = (*p, 0.42 * a, 0.38 * b)
    elif feature == "polencephaly":
        p = at(-0.1, 0.6)
        _draw_ellipse(echo, *p, 0.22 * a, 0.12 * b, ang + 50, 15.0)
        lesion = (*p, 0.45 * a, 0.3 * b)
    elif feature == "vein-of-galen":
        p = at(-0.3, 0)
        _draw_ellipse(echo, *p, 0.1 * a, 0.12 * b, 0, 12.0)
        lesion = (*p, 0.25 * a, 0.28 * b)
    elif feature == "anold-chiari-malformation":
        p = at(-0.65, 0)
        _draw_ellipse(echo, *p, 0.07 * a, 0.25 * b, ang, 140.0)  # 'banana' cerebellum
        lesion = (*p, 0.2 * a, 0.55 * b)
    echo *= _sector((size, size), apex_row=-0.15, half_angle_deg=48.0) * 0.85 + 0.15
    image = _speckle(rng, (size, size), echo, blur=max(0.6, s / 400))
    head_box = (cx / s, cy / s, min(1.0, 2 * head_a * 1.02 / s), min(1.0, 2 * head_b * 1.1 / s))
    boxes = {"head": head_box}
    if lesion is not None:
        lx, ly, lw, lh = lesion
        boxes["lesion"] = (
            float(np.clip(lx / s, 0, 1)),
            float(np.clip(ly / s, 0, 1)),
            float(min(1.0, lw / s)),
            float(min(1.0, lh / s)),
        )
    return image, boxes


def _augment(rng: np.random.Generator, image: np.ndarray, boxes: dict, copy: int) -> tuple[np.ndarray, dict]:
    """Roboflow-like augmented copy: copy 0 unchanged, others flipped and/or brightness-jittered."""
    if copy == 0:
        return image, boxes
    out = image.astype(np.float32)
    if copy % 2 == 1:
        out = out[:, ::-1]
        boxes = {k: (1.0 - bx, by, bw, bh) for k, (bx, by, bw, bh) in boxes.items()}
    out = out * rng.uniform(0.8, 1.2) + rng.uniform(-15, 15)
    return np.clip(out, 0, 255).astype(np.uint8), boxes


# --------------------------------------------------------------------------- hc18


def _hc18_image(rng: np.random.Generator, shape, cx, cy, a, b, angle) -> np.ndarray:
    echo = np.full(shape, 45.0, np.float32)
    yy = np.linspace(0, 1, shape[0], dtype=np.float32)[:, None]
    echo += 25.0 * np.sin(6.0 * yy + rng.uniform(0, 6))  # maternal tissue layers
    _draw_ellipse(echo, cx, cy, a * 1.02, b * 1.02, angle, 30.0)  # amniotic fluid rim
    _draw_ellipse(echo, cx, cy, a, b, angle, 85.0)  # brain
    _draw_ellipse(echo, cx, cy, a, b, angle, 210.0, thickness=max(3, int(0.04 * b)))  # skull
    t = math.radians(angle)
    import cv2

    p0 = (int(cx - 0.8 * a * math.cos(t)), int(cy - 0.8 * a * math.sin(t)))
    p1 = (int(cx + 0.8 * a * math.cos(t)), int(cy + 0.8 * a * math.sin(t)))
    cv2.line(echo, p0, p1, 150.0, 2, cv2.LINE_AA)  # midline echo
    for _ in range(3):  # a few internal structures
        du, dv = rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5)
        _draw_ellipse(echo, cx + du * a * math.cos(t) - dv * b * math.sin(t), cy + du * a * math.sin(t) + dv * b * math.cos(t),
                      0.12 * a, 0.08 * b, angle + rng.uniform(-30, 30), rng.choice([40.0, 140.0]))
    echo *= _sector(shape) * 0.9 + 0.1
    return _speckle(rng, shape, echo, blur=1.5)


def _write_hc18(dest: Path, rng: np.random.Generator, scale: int) -> list[list[object]]:
    """Training: ~24 images (several per subject); test: 4. Returns truth rows."""
    import cv2


    shape = (540, 800)
    truth = []

    def one(filename: str, folder: Path, a_mm: float, b_mm: float, split: str) -> tuple[float, float]:
        a_px = rng.uniform(85, 235)
        pixel = float(f"{a_mm / a_px:.12g}")
        a, b = a_mm / pixel, b_mm / pixel
        angle = int(rng.integers(-90, 91))  # cv2 draws whole degrees
        cx = rng.uniform(a + 8, shape[1] - a - 8)
        cy = rng.uniform(min(a, 260) + 5, shape[0] - min(a, 260) - 5) if a < 265 else shape[0] / 2
        cy = float(np.clip(cy, b + 5, shape[0] - b - 5)) if 2 * b + 10 < shape[0] else shape[0] / 2
        _write_png(folder / filename, _hc18_image(rng, shape, cx, cy, a, b, angle))
        hc = round(ellipse_perimeter(a, b) * pixel, 2)
        if split == "train":
            outline = np.zeros(shape, np.uint8)
            cv2.ellipse(outline, ((float(cx), float(cy)), (2 * a, 2 * b), float(angle)), 255, 3, cv2.LINE_8)
            _write_png(folder / annotation_name(filename), outline)
        truth.append([filename, split, f"{cx:.4f}", f"{cy:.4f}", f"{a:.4f}", f"{b:.4f}", angle, pixel, f"{hc:.2f}"])
        return pixel, hc

    train_rows, test_rows = [], []
    n_train, subject = 24 * scale, 0
    while len(train_rows) < n_train:
        reps = int(min(rng.choice([1, 1, 1, 2, 2, 3]), n_train - len(train_rows)))
        a_mm = rng.uniform(12, 50)  # semi-major axis in mm: HC ~ 70-290 mm
        b_mm = a_mm * rng.uniform(0.74, 0.9)
        for k in range(1, reps + 1):
            filename = f"{subject:03d}_HC.png" if k == 1 else f"{subject:03d}_{k}HC.png"
            a_k, b_k = a_mm * rng.uniform(0.98, 1.02), b_mm * rng.uniform(0.98, 1.02)
            pixel, hc = one(filename, dest / "training_set", a_k, b_k, "train")
            train_rows.append([filename, f"{pixel:.12g}", f"{hc:.2f}".rstrip("0").rstrip(".")])
        subject += 1
    for i in range(4 * scale):
        a_mm = rng.uniform(12, 50)
        pixel, _ = one(f"{i:03d}_HC.png", dest / "test_set", a_mm, a_mm * rng.uniform(0.74, 0.9), "test")
        test_rows.append([f"{i:03d}_HC.png", f"{pixel:.12g}"])
    _write_csv(dest / "training_set_pixel_size_and_HC.csv", ["filename", "pixel size(mm)", "head circumference (mm)"], train_rows, newline="\r\n")
    _write_csv(dest / "test_set_pixel_size.csv", ["filename", "pixel size(mm)"], test_rows, newline="\r\n")
    return [["filename", "split", "cx_px", "cy_px", "a_px", "b_px", "angle_deg", "pixel_size_mm", "hc_mm"], *truth]


# --------------------------------------------------------------------------- fetal_planes

_PLANE_SPECS = (  # (plane number, Plane, Brain_plane)
    (3, "Fetal brain", "Trans-thalamic"),
    (3, "Fetal brain", "Trans-cerebellum"),
    (3, "Fetal brain", "Trans-ventricular"),
    (6, "Fetal thorax", "Not A Brain"),
    (2, "Fetal abdomen", "Not A Brain"),
    (5, "Fetal femur", "Not A Brain"),
)


def _body_plane(rng: np.random.Generator, size: int, plane: str) -> np.ndarray:
    import cv2

    s = float(size)
    echo = np.full((size, size), 40.0, np.float32)
    cx, cy = s * rng.uniform(0.45, 0.55), s * rng.uniform(0.45, 0.55)
    if plane == "Fetal femur":
        length, ang = s * rng.uniform(0.45, 0.6), rng.uniform(-25, 25)
        _draw_ellipse(echo, cx, cy, length / 2, s * 0.018, ang, 235.0)  # bright bone
        t = math.radians(ang)
        shadow = np.zeros_like(echo)
        _draw_ellipse(shadow, cx - 0.0 * math.sin(t), cy + s * 0.08, length / 2, s * 0.07, ang, 1.0)
        echo = np.where(shadow > 0.5, echo * 0.35, echo)
        _draw_ellipse(echo, cx, cy - s * 0.12, length * 0.6, s * 0.1, ang, 75.0)  # soft tissue
    else:
        r = s * rng.uniform(0.3, 0.36)
        _draw_ellipse(echo, cx, cy, r, r * rng.uniform(0.88, 0.98), rng.uniform(0, 180), 100.0)
        _draw_ellipse(echo, cx, cy, r, r * 0.95, 0, 190.0, thickness=max(2, int(s * 0.01)))  # skin line
        spine = (cx + r * 0.05, cy + r * 0.72)
        _draw_ellipse(echo, *spine, r * 0.1, r * 0.08, 0, 230.0)
        if plane == "Fetal thorax":
            heart = (cx - r * 0.2, cy - r * 0.15)
            _draw_ellipse(echo, *heart, r * 0.42, r * 0.36, 30, 60.0)
            p = (int(heart[0]), int(heart[1]))
            d = int(r * 0.35)
            cv2.line(echo, (p[0] - d, p[1]), (p[0] + d, p[1]), 160.0, 3)
            cv2.line(echo, (p[0], p[1] - d), (p[0], p[1] + d), 160.0, 3)
            for k in range(5):  # ribs
                t0 = math.radians(30 + 25 * k)
                _draw_ellipse(echo, cx + 0.92 * r * math.cos(t0), cy + 0.92 * r * math.sin(t0), r * 0.06, r * 0.03, 25 * k, 220.0)
        else:  # abdomen: stomach bubble and umbilical vein
            _draw_ellipse(echo, cx - r * 0.35, cy - r * 0.1, r * 0.26, r * 0.18, 20, 15.0)
            cv2.ellipse(echo, (int(cx + r * 0.15), int(cy - r * 0.05)), (int(r * 0.3), int(r * 0.12)), 40, 0, 180, 20.0, 4)
    echo *= _sector((size, size), apex_row=-0.15, half_angle_deg=48.0) * 0.85 + 0.15
    return _speckle(rng, (size, size), echo, blur=max(0.6, s / 400))


def _write_fetal_planes(dest: Path, rng: np.random.Generator, scale: int, seed: int) -> list[list[object]]:
    size = 640
    n_patients = 10 * scale
    index_rows, label_rows, truth = [], [], [["image", "Image_name", "patient_num", "plane", "brain_plane"]]
    operators, machines = ["Op. 1", "Op. 2", "Op. 3", "Other"], ["Voluson E6", "Aloka", "Voluson S10", "Other"]
    for p in range(n_patients):
        pnum = 1000 + 7 * p
        train_flag = 1 if p < int(round(0.6 * n_patients)) else 0
        operator, machine = operators[p % 4], machines[(p // 2) % 4]
        specs = list(_PLANE_SPECS)
        if p % 3 == 2:  # not every patient has every plane
            specs.pop(int(rng.integers(len(specs))))
        by_plane: dict[int, list[tuple[str, str]]] = {}
        for number, plane, brain in specs:
            by_plane.setdefault(number, []).append((plane, brain))
        # extra official rows that the re-export leaves out (like the real 12,400-row table)
        by_plane.setdefault(1, []).append(("Other", "Not A Brain"))
        by_plane.setdefault(4, []).append(("Maternal cervix", "Not A Brain"))
        for number, items in sorted(by_plane.items()):
            for i, (plane, brain) in enumerate(items, start=1):
                name = f"Patient{pnum:05d}_Plane{number}_{i}_of_{len(items)}"
                label_rows.append([name, pnum, plane, brain, operator, machine, f"{train_flag} "])
                if number in (1, 4):
                    continue
                if plane == "Fetal brain":
                    image, _ = _brain_plane(rng, size, ventricle=rng.uniform(0.08, 0.12), plane=brain.lower())
                else:
                    image = _body_plane(rng, size, plane)
                filename = f"{name}_png.rf.{_hash(seed, name)}.jpg"
                _write_jpg(dest / "images" / filename, image)
                index_rows.append([filename, name])
                truth.append([filename, name, pnum, plane, brain])
    _write_csv(dest / "roboflow_export_index.csv", ["image", "fpdb_image_name"], index_rows, newline="\r\n")
    header = ["Image_name", "Patient_num", "Plane", "Brain_plane", "Operator", "US_Machine", "Train "]
    _write_csv(dest / "FETAL_PLANES_DB_data.csv", header, label_rows, delimiter=";")
    return truth


# --------------------------------------------------------------------------- anomaly US (YOLO)

_US_ANOMALIES = (  # (file prefix, ventricle fraction or None, feature)
    ("mild-ventriculomegaly", 0.2, "normal"),
    ("moderate-ventriculomegaly", 0.26, "normal"),
    ("severe-ventriculomegaly", 0.34, "normal"),
    ("arachnoid-cyst", None, "arachnoid-cyst"),
    ("m-magna", None, "m-magna"),
    ("encephalocele", None, "encephalocele"),
)


def _write_anomaly_us(dest: Path, rng: np.random.Generator, scale: int, seed: int) -> list[list[object]]:
    size = 256
    sources = []  # (source name, label, anomaly prefix, feature, ventricle)
    n_abnormal = 12 * scale
    for k in range(n_abnormal):
        prefix, vent, feature = _US_ANOMALIES[k % len(_US_ANOMALIES)]
        case = f"{18 + k}{'abc'[k % 3]}"
        ventricle = vent * rng.uniform(0.95, 1.1) if vent else rng.uniform(0.08, 0.12)
        sources.append((f"{prefix}-{case}", "abnormal", prefix, feature, ventricle))
    n_patients = 6 * scale
    for p in range(n_patients):
        n_planes = 2
        for i in range(1, n_planes + 1):
            sources.append((f"Patient{700 + 3 * p:05d}_Plane3_{i}_of_{n_planes}", "normal", "normal", "normal", rng.uniform(0.08, 0.12)))
    order = rng.permutation(len(sources))
    n = len(sources)
    n_valid, n_test = max(2, round(0.2 * n)), max(2, round(0.1 * n))
    split_of = {}
    for rank, j in enumerate(order):
        split_of[j] = "valid" if rank < n_valid else "test" if rank < n_valid + n_test else "train"
    truth = [["image", "export_split", "source_image", "label", "anomaly_prefix", "ventricle_fraction"]]
    names = ["abnormal", "normal"]
    for j, (source, label, prefix, feature, ventricle) in enumerate(sources):
        split = split_of[j]
        image, boxes = _brain_plane(rng, size, ventricle=ventricle, feature=feature, plane="trans-ventricular")
        copies = 3 if split == "train" else 1
        for c in range(copies):
            img_c, boxes_c = _augment(rng, image, boxes, c)
            stem = f"{source}_png.rf.{_hash(seed, source, c)}"
            _write_jpg(dest / split / "images" / f"{stem}.jpg", img_c)
            box = boxes_c["lesion"] if label == "abnormal" and "lesion" in boxes_c else boxes_c["head"]
            line = f"{names.index(label)} " + " ".join(f"{v:.6g}" for v in box)
            (dest / split / "labels").mkdir(parents=True, exist_ok=True)
            (dest / split / "labels" / f"{stem}.txt").write_text(line, encoding="utf-8")
            truth.append([f"{split}/images/{stem}.jpg", split, source, label, prefix, f"{ventricle:.4f}"])
    (dest / "data.yaml").write_text(
        "train: ../train/images\nval: ../valid/images\ntest: ../test/images\n\nnc: 2\n"
        "names: ['abnormal', 'normal']\n\nroboflow:\n  workspace: phantom\n  project: fetal-abnormality-object-detection\n"
        "  version: 1\n  license: CC BY 4.0\n  url: none (synthetic phantom)\n",
        encoding="utf-8",
    )
    (dest / "README.dataset.txt").write_text("# Fetal abnormality object detection (PHANTOM: synthetic)\n", encoding="utf-8")
    return truth


# --------------------------------------------------------------------------- anomaly 16 classes


def _write_anomaly_16class(dest: Path, rng: np.random.Generator, scale: int, seed: int) -> list[list[object]]:

    size = 256
    ventricles = {"mild-ventriculomegaly": 0.2, "moderate-ventriculomegaly": 0.26, "severe-ventriculomegaly": 0.34}
    truth = [["image", "export_split", "class", "source_image"]]
    plan = [("train", 2 * scale, 3), ("valid", 1, 1), ("test", 1, 1)]  # (split, sources per class, copies)
    for cls in CLASSES:
        k = 0
        for split, n_sources, copies in plan:
            for _ in range(n_sources):
                source = f"{cls}-{20 + k}{'abc'[k % 3]}"
                k += 1
                vent = ventricles.get(cls, rng.uniform(0.08, 0.12)) * rng.uniform(0.95, 1.08)
                feature = "normal" if cls in ventricles or cls == "normal" else cls
                image, boxes = _brain_plane(rng, size, ventricle=vent, feature=feature, plane="trans-ventricular")
                for c in range(copies):
                    img_c, _ = _augment(rng, image, boxes, c)
                    fname = f"{source}_png.rf.{_hash(seed, source, c)}.jpg"
                    _write_jpg(dest / split / cls / fname, img_c)
                    truth.append([f"{split}/{cls}/{fname}", split, cls, source])
    return truth


# --------------------------------------------------------------------------- fetal brain atlases


def _centred_grid(shape: tuple[int, int, int], spacing: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z, y, x) coordinates in mm of a zyx grid of ``shape``, origin at its centre."""
    nz, ny, nx = shape
    return np.meshgrid(
        (np.arange(nz) - (nz - 1) / 2) * spacing,
        (np.arange(ny) - (ny - 1) / 2) * spacing,
        (np.arange(nx) - (nx - 1) / 2) * spacing,
        indexing="ij",
    )


def _atlas_volume(ga: float, shape=(48, 56, 48), spacing=2.0, seed_phase: float = 0.0) -> tuple[np.ndarray, np.ndarray, float]:
    """(parcellation uint16 zyx, srr float32 zyx, folding amplitude) at gestational age ``ga`` weeks."""
    z, y, x = _centred_grid(shape, spacing)
    g = ga - 21.0
    ax, ay, az = 21.0 + 1.15 * g, 27.0 + 1.5 * g, 18.0 + 1.05 * g  # semi-axes, mm
    az0 = 4.0  # brain centre a little above the volume centre
    xn, yn, zn = x / ax, y / ay, (z - az0) / az
    rho = np.sqrt(xn**2 + yn**2 + zn**2)
    # cortical folding: radial modulation growing with GA (lissencephalic at 21 weeks)
    amp = 0.0 if g <= 2 else min(0.09, 0.006 * (g - 2))
    freq = 3 + 0.35 * g
    theta = np.arctan2(np.sqrt(xn**2 + yn**2), zn)
    phi = np.arctan2(yn, xn)
    fold = np.sin(freq * theta + seed_phase) * np.sin(freq * phi)
    s = rho / (1.0 + amp * fold)
    thick = 2.6 / min(ax, ay, az) + 0.02  # cortex thickness, relative
    lab = np.zeros(shape, np.uint16)
    lab[rho <= 1.0 + amp + 0.07] = 4  # extra-axial CSF
    lab[s <= 1.0] = 5  # cortex
    lab[s <= 1.0 - thick] = 1  # white matter
    vscale = 1.0 - 0.3 * (g / 17.0)  # ventricles relatively larger early
    for side in (-1, 1):
        dg = ((xn - side * 0.2) / 0.16) ** 2 + ((yn + 0.05) / 0.22) ** 2 + ((zn + 0.2) / 0.18) ** 2 <= 1
        lab[dg] = 6  # deep grey matter
        ve = ((xn - side * 0.28) / (0.11 * vscale)) ** 2 + ((yn + 0.05) / (0.5 * vscale)) ** 2 + ((zn - 0.12) / (0.14 * vscale)) ** 2 <= 1
        lab[ve] = 2  # lateral ventricle
    cc = (np.abs(xn) <= 0.3) & (np.abs(yn + 0.02) <= 0.38) & (zn >= 0.3) & (zn <= 0.3 + max(0.1, 2.2 * spacing / az))
    lab[cc] = 8
    cb = (xn / 0.45) ** 2 + ((yn + 0.72) / 0.24) ** 2 + ((zn + 0.55) / 0.28) ** 2 <= 1
    lab[cb] = 3
    bs = ((xn / 0.12) ** 2 + ((yn + 0.35) / 0.14) ** 2 <= 1) & (zn <= -0.25) & (zn >= -1.3)
    lab[bs] = 7
    t2 = np.array([0, 760, 1000, 600, 1050, 480, 560, 540, 500], np.float32)
    srr = t2[lab]
    return lab, srr, amp


#: The real atlases' direction (RAS: x right-to-left flipped, y flipped), so that the phantom's cerebellum is posterior
ATLAS_DIRECTION = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)


def _write_atlases(dest: Path, rng: np.random.Generator, scale: int) -> list[list[object]]:
    from scipy.ndimage import gaussian_filter

    spacing = 2.0 if scale == 1 else 1.0
    shape = (48, 56, 48) if scale == 1 else (96, 112, 96)
    truth = [["atlas", "name", "ga_weeks", "brain_volume_ml", "folding_amplitude", "has_srr"]]
    origin = tuple(-(n - 1) / 2 * spacing for n in shape[::-1])
    for atlas, stem, gas in (("Gholipour2017", "HarvardSTA", range(21, 39)), ("Wu2021", "Chinese", range(22, 36))):
        for ga in gas:
            name = f"{stem}{ga}_Study1"
            folder = dest / f"Neurotypical_{atlas}" / name
            lab, srr, amp = _atlas_volume(ga + (0.3 if atlas == "Wu2021" else 0.0), shape, spacing, seed_phase=float(rng.uniform(0, 1)))
            mask = (lab > 0).astype(np.uint16)
            _write_nifti(folder / "parcellation.nii.gz", lab, (spacing,) * 3, origin, ATLAS_DIRECTION)
            _write_nifti(folder / "mask.nii.gz", mask, (spacing,) * 3, origin, ATLAS_DIRECTION)
            has_srr = not (atlas == "Wu2021" and ga == 35)  # as the real release: Chinese35 has no SRR
            if has_srr:
                img = gaussian_filter(srr, 0.6) + rng.normal(0, 15, srr.shape).astype(np.float32)
                _write_nifti(folder / "srr.nii.gz", np.clip(img, 0, None).astype(np.float32), (spacing,) * 3, origin, ATLAS_DIRECTION)
            vol_ml = float(mask.sum()) * spacing**3 / 1000.0
            truth.append([atlas, name, ga, f"{vol_ml:.3f}", f"{amp:.4f}", int(has_srr)])
    (dest / "Neurotypical_Gholipour2017" / "LICENSE").write_text("PHANTOM: synthetic volumes, no licence restrictions.\n", encoding="utf-8")
    return truth


# --------------------------------------------------------------------------- FeTA (BIDS)


def _write_feta(dest: Path, rng: np.random.Generator, scale: int) -> list[list[object]]:
    """FeTA-like subjects: atlas-phantom anatomy at a jittered size, random intensity scale.

    Odd subjects are ``rec-mial`` in RAS orientation (as the real volumes), even ones
    ``rec-irtk`` in LPS orientation (array flipped so the anatomy is the same in physical space),
    each shifted by a few mm: preprocessing must reorient and centre them.
    """
    import json

    from scipy.ndimage import gaussian_filter


    spacing = 2.0 if scale == 1 else 1.0
    shape = (48, 56, 48) if scale == 1 else (96, 112, 96)
    n = 8 * scale
    to_feta = np.zeros(9, np.uint16)
    for feta_label, atlas_label in TO_ATLAS_LABELS.items():
        to_feta[atlas_label] = feta_label
    to_feta[8] = 3  # corpus callosum: white matter in FeTA
    half = [(k - 1) / 2 * spacing for k in shape[::-1]]  # x, y, z
    truth = [["subject", "rec", "ga_weeks", "brain_volume_ml", "intensity_scale", "orientation"]]
    rows = []
    for k in range(n):
        subject = f"sub-{k + 1:03d}"
        ga = round(float(np.clip(21.0 + 15.0 * k / (n - 1) + rng.uniform(-0.4, 0.4), 21.0, 36.0)), 1)
        size_ga = float(np.clip(ga + rng.normal(0.0, 0.8), 20.5, 36.0))  # brains of one GA differ in size
        atlas_lab, srr, _ = _atlas_volume(size_ga, shape, spacing, seed_phase=float(rng.uniform(0, 1)))
        dseg = to_feta[atlas_lab]
        gain = float(rng.uniform(0.5, 3.0))
        t2 = gaussian_filter(srr * gain, 0.6) + rng.normal(0, 15 * gain, srr.shape).astype(np.float32)
        t2 = np.clip(t2, 0, None).astype(np.float32)
        shift = rng.uniform(-8.0, 8.0, 3)
        if k % 2 == 0:  # RAS: i -> right, j -> anterior (the cerebellum of _atlas_volume is at -y)
            rec, orient, direction = "mial", "RAS", (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
            origin = (half[0] + shift[0], half[1] + shift[1], -half[2] + shift[2])
        else:  # LPS with the array flipped left-right and front-back: the same anatomy in space
            rec, orient, direction = "irtk", "LPS", None
            origin = (-half[0] + shift[0], -half[1] + shift[1], -half[2] + shift[2])
            dseg, t2 = dseg[:, ::-1, ::-1].copy(), t2[:, ::-1, ::-1].copy()
        anat = dest / subject / "anat"
        _write_nifti(anat / f"{subject}_rec-{rec}_T2w.nii.gz", t2, (spacing,) * 3, origin, direction)
        _write_nifti(anat / f"{subject}_rec-{rec}_dseg.nii.gz", dseg, (spacing,) * 3, origin, direction)
        vol_ml = float((dseg > 0).sum()) * spacing**3 / 1000.0
        rows.append([subject, "Neurotypical", f"{ga:.1f}"])
        truth.append([subject, rec, f"{ga:.1f}", f"{vol_ml:.3f}", f"{gain:.4f}", orient])
    _write_csv(dest / "participants.tsv", ["participant_id", "Pathology", GA_COLUMNS[0]], rows, delimiter="\t")
    description = {"Name": "FeTA phantom (synthetic)", "BIDSVersion": "1.6.0", "DatasetType": "raw"}
    (dest / "dataset_description.json").write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
    return truth


# --------------------------------------------------------------------------- brain age


def _brain_age_subject(rng: np.random.Generator, age: float, shape=(48, 56, 48), spacing=4.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(seg uint8, T1 float32, mask uint8) zyx; GM shrinks and CSF grows with age (years)."""
    z, y, x = _centred_grid(shape, spacing)
    head = rng.uniform(0.94, 1.06)
    ax, ay, az = 68 * head, 84 * head, 62 * head
    xn, yn, zn = x / ax, y / ay, (z - 6) / az
    rho = np.sqrt(xn**2 + yn**2 + zn**2)
    t = (age - 18.0) / 70.0  # 0 at 18 y, 1 at 88 y
    csf_t = 0.05 + 0.07 * t + rng.normal(0, 0.005)  # sulcal CSF shell, relative
    gm_t = 0.26 - 0.09 * t + rng.normal(0, 0.008)  # cortical GM thickness, relative
    fold = 0.02 * np.sin(7 * np.arctan2(yn, xn)) * np.sin(5 * np.arctan2(np.sqrt(xn**2 + yn**2), zn))
    seg = np.zeros(shape, np.uint8)
    seg[rho <= 1.0] = 1
    seg[rho + fold <= 1.0 - csf_t] = 2
    seg[rho + fold <= 1.0 - csf_t - gm_t] = 3
    vs = 0.09 + 0.09 * t  # ventricles grow with age
    for side in (-1, 1):
        seg[((xn - side * 0.2) / 0.18) ** 2 + ((yn - 0.05) / 0.45) ** 2 + ((zn - 0.1) / vs) ** 2 <= 1] = 1
        seg[((xn - side * 0.22) / 0.14) ** 2 + ((yn + 0.05) / 0.18) ** 2 + ((zn + 0.25) / 0.14) ** 2 <= 1] = 2  # deep GM
    t1_levels = np.array([0, 120, 255, 340], np.float32)
    t1 = t1_levels[seg]
    skull = (rho > 1.06) & (rho <= 1.2)
    t1[skull] = 160.0
    t1 = t1 * rng.uniform(0.95, 1.05) + rng.normal(0, 12, shape).astype(np.float32)
    t1[rho > 1.2] = np.abs(rng.normal(0, 3, int((rho > 1.2).sum())))
    mask = (rho + fold <= 1.0 - csf_t / 2).astype(np.uint8) | (seg >= 2)
    return seg, np.clip(t1, 0, None).astype(np.float32), mask.astype(np.uint8)


def _write_brain_age(dest: Path, rng: np.random.Generator, scale: int) -> list[list[object]]:

    spacing = 4.0
    shape = (48, 56, 48)
    origin = (-94.0, -110.0, -70.0)
    roles = (("segmentation_train", 8 * scale), ("segmentation_val", 2 * scale), ("regression_train", 30 * scale))
    truth = [["subject_id", "role", "age", "sex", "csf_ml", "gm_ml", "wm_ml"]]
    k = 0
    for role, n in roles:
        rows = []
        for _ in range(n):
            age = int(rng.integers(18, 89))
            sex_code = int(rng.integers(1, 3))
            subject = f"CC{max(1, (age - 8) // 10)}{10000 + 37 * k:05d}"
            k += 1
            seg, t1, mask = _brain_age_subject(rng, age, shape, spacing)
            _write_nifti(dest / "segs_refs" / seg_name(subject), seg, (spacing,) * 3, origin)
            if role.startswith("segmentation"):
                _write_nifti(dest / "images" / image_name(subject), t1, (spacing,) * 3, origin)
                _write_nifti(dest / "masks" / mask_name(subject), mask.astype(np.float32), (spacing,) * 3, origin)
            rows.append([int(rng.integers(0, 650)), subject, age, sex_code, "MALE" if sex_code == 1 else "FEMALE"])
            ml = [float((seg == lab).sum()) * spacing**3 / 1000 for lab in (1, 2, 3)]
            truth.append([subject, role, age, "M" if sex_code == 1 else "F", *(f"{v:.2f}" for v in ml)])
        _write_csv(dest / "meta" / f"meta_data_{role}.csv", ["", "subject_id", "age", "gender_code", "gender_text"], rows)
    return truth


# --------------------------------------------------------------------------- entry point

_WRITERS: dict[str, Callable[[Path, np.random.Generator, int, int], list[list[object]]]] = {
    "hc18": lambda d, r, sc, sd: _write_hc18(d, r, sc),
    "fetal_planes": _write_fetal_planes,
    "fetal_brain_anomaly_us": _write_anomaly_us,
    "fetal_brain_anomaly_16class": _write_anomaly_16class,
    "fetal_brain_atlases": lambda d, r, sc, sd: _write_atlases(d, r, sc),
    "feta": lambda d, r, sc, sd: _write_feta(d, r, sc),
    "brain_age": lambda d, r, sc, sd: _write_brain_age(d, r, sc),
}


def write(name: str, dest: str | Path, seed: int = 0, size: str = "small") -> Path:
    """Write the phantom of dataset ``name`` to folder ``dest`` (the dataset root) and return it.

    Deterministic for a given (name, seed, size). ``dest`` must not exist or be empty; the
    phantom is built in a temporary sibling folder and renamed onto ``dest``.

    Raises:
        ValueError: unknown name or size. FileExistsError: ``dest`` is a non-empty folder.
    """
    if name not in _WRITERS:
        raise ValueError(f"unknown dataset {name!r}; phantoms exist for {', '.join(NAMES)}")
    scale = _scale(size)
    dest = Path(dest).expanduser().resolve()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise FileExistsError(f"{dest}: exists and is not an empty folder; not overwriting")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        truth = _WRITERS[name](tmp, _rng(name, seed), scale, seed)
        _write_csv(tmp / "PHANTOM_truth.csv", [str(h) for h in truth[0]], truth[1:])
        (tmp / "PHANTOM.txt").write_text(_meta_text(name, seed, size), encoding="utf-8")
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        if dest.exists():
            dest.rmdir()
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def is_phantom(root: str | Path) -> bool:
    """True if ``root`` holds a phantom (a ``PHANTOM.txt`` at its top)."""
    return (Path(root) / "PHANTOM.txt").is_file()
