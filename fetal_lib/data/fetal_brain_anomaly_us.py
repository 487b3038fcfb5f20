"""Fetal brain abnormality detection (Roboflow Universe ``cv-pyvkz/fetal-abnormality-object-detection`` v1).

On-disk layout (a Roboflow YOLO export, unchanged)::

    <root>/data.yaml                        ``names: ['abnormal', 'normal']`` (class id = position)
    <root>/{train,valid,test}/images/<stem>.jpg
    <root>/{train,valid,test}/labels/<stem>.txt   YOLO boxes: ``class cx cy w h`` (normalised 0..1)

File stems are ``<source>_png.rf.<hash>``: Roboflow's augmented copies of one source image
share ``<source>``. Abnormal sources are named ``<anomaly>-<case>`` (``mild-ventriculomegaly-18b``);
normal ones are FETAL_PLANES_DB brain planes ``PatientNNNNN_Plane3_i_of_n``, grouped by patient
(one patient's planes are spread over the export's splits, so the export split leaks).

Split group: the patient for ``Patient...`` files, else the source image. Augmented copies
of a source therefore always fall in one split.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from fetal_lib.errors import FetalInputError

EXPORT_SPLITS = ("train", "valid", "test")
IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp")

_RF_RE = re.compile(r"^(?P<source>.+?)_(?:png|jpg|jpeg|bmp)\.rf\.[0-9a-zA-Z]+$")
_PATIENT_RE = re.compile(r"^(?P<patient>Patient\d+)_")

#: Misspellings in the export's file names -> one canonical anomaly name.
ANOMALY_ALIASES = {
    "anold-chiari-maformation": "arnold-chiari-malformation",
    "anold-chiari-malformation": "arnold-chiari-malformation",
    "cerebellah-hypoplasia": "cerebellar-hypoplasia",
    "colphocephaly": "colpocephaly",
    "hydracenphaly": "hydranencephaly",
    "hydracenphay": "hydranencephaly",
    "intracnanial-hemorrdge": "intracranial-hemorrhage",
    "intracranial-hemorrdge": "intracranial-hemorrhage",
    "m-magna": "mega-cisterna-magna",
    "polencephaly": "porencephaly",
    "vein-of-galen": "vein-of-galen-malformation",
}


@dataclass(frozen=True)
class AnomalyUSRecord:
    """One image of the YOLO export.

    Attributes:
        image_path, label_path: absolute paths.
        label: ``"abnormal"``/``"normal"`` from the box classes (majority, ties -> first box);
            ``None`` when the label file has no box.
        boxes: ``((class_name, cx, cy, w, h), ...)`` normalised to the image size (0..1).
        anomaly_type: canonical anomaly (``"mild-ventriculomegaly"``) or ``"normal"``.
        source_image: the name part before ``_png.rf.`` (shared by augmented copies).
        group: split group: ``PatientNNNNN`` for normal planes, else ``source_image``.
        export_split: the export's folder (``train``/``valid``/``test``).
    """

    image_path: Path
    label_path: Path
    label: str | None
    boxes: tuple[tuple[str, float, float, float, float], ...]
    anomaly_type: str
    source_image: str
    group: str
    export_split: str


def read_class_names(root: str | Path) -> list[str]:
    """Class names from ``data.yaml`` (list or {id: name} mapping)."""
    import yaml

    path = Path(root) / "data.yaml"
    if not path.is_file():
        raise FetalInputError(path, "file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise FetalInputError(path, f"not readable YAML ({exc})") from None
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names)]
    if not isinstance(names, list) or not names:
        raise FetalInputError(path, "no 'names' list of classes")
    return [str(n) for n in names]


def source_image(stem: str) -> str:
    """``"mild-ventriculomegaly-18b_png.rf.<hash>"`` -> ``"mild-ventriculomegaly-18b"`` (else the stem)."""
    match = _RF_RE.match(stem)
    return match.group("source") if match else stem


def anomaly_type(source: str) -> str:
    """Anomaly from a source name: the leading letters/hyphens before the case number.

    ``"mild-ventriculomegaly-18b"`` -> ``"mild-ventriculomegaly"``; ``"polencephaly24a"`` ->
    ``"porencephaly"`` (misspellings are mapped by :data:`ANOMALY_ALIASES`); ``"Patient..."`` -> ``"normal"``.
    """
    if _PATIENT_RE.match(source):
        return "normal"
    match = re.match(r"^[A-Za-z]+(?:-[A-Za-z]+)*", source)
    prefix = (match.group(0) if match else source).lower()
    for suffix in ("-image",):
        prefix = prefix.removesuffix(suffix)
    return ANOMALY_ALIASES.get(prefix, prefix)


def group_of(source: str) -> str:
    """Split group of a source image: the patient for ``PatientNNNNN_...``, else the source."""
    match = _PATIENT_RE.match(source)
    return match.group("patient") if match else source


def read_boxes(path: Path, names: list[str]) -> tuple[tuple[str, float, float, float, float], ...]:
    """Parse a YOLO label file into ``(class_name, cx, cy, w, h)`` tuples."""
    if not path.is_file():
        raise FetalInputError(path, "label file missing")
    boxes = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 5:
            raise FetalInputError(path, f"line {n}: expected 'class cx cy w h', got {line!r}")
        try:
            cls = int(parts[0])
            cx, cy, w, h = (float(p) for p in parts[1:5])
        except ValueError:
            raise FetalInputError(path, f"line {n}: not numbers: {line!r}") from None
        if not 0 <= cls < len(names):
            raise FetalInputError(path, f"line {n}: class id {cls} not in data.yaml names {names}")
        boxes.append((names[cls], cx, cy, w, h))
    return tuple(boxes)


def majority_label(boxes: tuple[tuple[str, float, float, float, float], ...]) -> str | None:
    """Most frequent box class; a tie goes to the class of the first box; no box -> None."""
    if not boxes:
        return None
    counts: dict[str, int] = {}
    for box in boxes:
        counts[box[0]] = counts.get(box[0], 0) + 1
    best = max(counts.values())
    return next(b[0] for b in boxes if counts[b[0]] == best)


def load(root: str | Path) -> list[AnomalyUSRecord]:
    """All images of the export under ``root`` (sorted by split then name).

    Raises:
        FetalInputError: no data.yaml, no split folder, a missing or malformed label file.
    """
    root = Path(root).expanduser().resolve()
    names = read_class_names(root)
    records = []
    found = False
    for split in EXPORT_SPLITS:
        images = root / split / "images"
        if not images.is_dir():
            continue
        found = True
        for image in sorted(images.iterdir()):
            if image.suffix.lower() not in IMAGE_EXT:
                continue
            label_path = root / split / "labels" / f"{image.stem}.txt"
            boxes = read_boxes(label_path, names)
            source = source_image(image.stem)
            records.append(
                AnomalyUSRecord(
                    image_path=image,
                    label_path=label_path,
                    label=majority_label(boxes),
                    boxes=boxes,
                    anomaly_type=anomaly_type(source),
                    source_image=source,
                    group=group_of(source),
                    export_split=split,
                )
            )
    if not found:
        raise FetalInputError(root, f"no {{{','.join(EXPORT_SPLITS)}}}/images folder")
    return records
