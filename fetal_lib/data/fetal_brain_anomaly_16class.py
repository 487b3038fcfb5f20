"""Fetal Brain Abnormalities Ultrasound, 16 classes (Roboflow ``hritwik-trivedi-gkgrv``, 1,768 images).

On-disk layout (a Roboflow folder-per-class classification export)::

    <root>/{train,valid,test}/<class name>/<source>_png.rf.<hash>.jpg

Class names are the folder names (e.g. ``mild-ventriculomegaly``, ``normal``). Augmented
copies of one source image share ``<source>`` (the part before ``_png.rf.`` or ``_jpg.rf.``),
which is the split group so that copies never straddle train and test.
This dataset is not on the development machine: the loader is tested on its phantom.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from fetal_lib.errors import FetalInputError

EXPORT_SPLITS = ("train", "valid", "test")
IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp")
#: The 16 class folders of the Roboflow export (spelled as in the export).
CLASSES = (
    "anold-chiari-malformation", "arachnoid-cyst", "cerebellah-hypoplasia", "colphocephaly",
    "encephalocele", "holoprosencephaly", "hydracenphaly", "intracranial-hemorrdge",
    "intracranial-tumor", "m-magna", "mild-ventriculomegaly", "moderate-ventriculomegaly",
    "normal", "polencephaly", "severe-ventriculomegaly", "vein-of-galen",
)

_RF_RE = re.compile(r"^(?P<source>.+?)_(?:png|jpg|jpeg|bmp)\.rf\.[0-9a-zA-Z]+$")


@dataclass(frozen=True)
class Anomaly16Record:
    """One image: ``label`` is its class folder, ``group`` its source image."""

    image_path: Path
    label: str
    source_image: str
    export_split: str

    @property
    def group(self) -> str:
        """Split group (the source image shared by augmented copies)."""
        return self.source_image


def source_image(stem: str) -> str:
    """``"normal-3_png.rf.<hash>"`` -> ``"normal-3"`` (a non-Roboflow stem is its own source)."""
    match = _RF_RE.match(stem)
    return match.group("source") if match else stem


def load(root: str | Path) -> list[Anomaly16Record]:
    """All images under ``root/{train,valid,test}/<class>/`` (sorted by split, class, name).

    Raises:
        FetalInputError: no split folder, or an image file directly in a split folder.
    """
    root = Path(root).expanduser().resolve()
    records = []
    found = False
    for split in EXPORT_SPLITS:
        folder = root / split
        if not folder.is_dir():
            continue
        found = True
        for entry in sorted(folder.iterdir()):
            if entry.is_file() and entry.suffix.lower() in IMAGE_EXT:
                raise FetalInputError(entry, "image outside a class folder (expected <split>/<class>/<image>)")
            if not entry.is_dir():
                continue
            for image in sorted(entry.iterdir()):
                if image.is_file() and image.suffix.lower() in IMAGE_EXT:
                    records.append(Anomaly16Record(image, entry.name, source_image(image.stem), split))
    if not found:
        raise FetalInputError(root, f"no {{{','.join(EXPORT_SPLITS)}}}/ folder")
    return records


def class_names(records: list[Anomaly16Record]) -> list[str]:
    """Sorted class names present in ``records``."""
    return sorted({r.label for r in records})
