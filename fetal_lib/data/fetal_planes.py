"""FETAL_PLANES_DB (Burgos-Artizzu et al., Sci Rep 2020; Zenodo 3904280): maternal-fetal US planes.

Two on-disk layouts are read, with the same label table ``FETAL_PLANES_DB_data.csv``
(``;``-separated; header and values carry trailing spaces, which are stripped):
``Image_name;Patient_num;Plane;Brain_plane;Operator;US_Machine;Train``.

(a) Roboflow re-export (the development copy)::

    <root>/images/PatientNNNNN_PlaneK_i_of_n_png.rf.<hash>.jpg   640x640 grayscale JPEG
    <root>/roboflow_export_index.csv      ``image,fpdb_image_name`` (file -> official Image_name)
    <root>/FETAL_PLANES_DB_data.csv

    Without the index CSV the official name is the file-name part before ``_png.rf.``.

(b) The official Zenodo release::

    <root>/Images/<Image_name>.png
    <root>/FETAL_PLANES_DB_data.csv       every row is a record; its image must exist

Planes: Fetal brain, Fetal thorax, Fetal abdomen, Fetal femur, Maternal cervix, Other;
brain sub-planes: Trans-thalamic, Trans-cerebellum, Trans-ventricular, Other, Not A Brain.
The split group is the patient (``"Patient00711"``).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from fetal_lib.data.tables import read_csv_text
from fetal_lib.errors import FetalInputError

LABEL_CSV = "FETAL_PLANES_DB_data.csv"
INDEX_CSV = "roboflow_export_index.csv"
ROBOFLOW_DIR = "images"
ZENODO_DIR = "Images"
COLUMNS = ("Image_name", "Patient_num", "Plane", "Brain_plane", "Operator", "US_Machine", "Train")
INDEX_COLUMNS = ("image", "fpdb_image_name")
PLANES = ("Fetal abdomen", "Fetal brain", "Fetal femur", "Fetal thorax", "Maternal cervix", "Other")
BRAIN_PLANES = ("Trans-thalamic", "Trans-cerebellum", "Trans-ventricular", "Other", "Not A Brain")

_RF_RE = re.compile(r"^(?P<name>.+?)_(?:png|jpg|jpeg)\.rf\.[0-9a-fA-F]+\.\w+$")
_IMAGE_EXT = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class FetalPlanesRecord:
    """One FETAL_PLANES_DB image.

    Attributes:
        image_path: absolute path of the image file.
        image_name: official ``Image_name`` (``"Patient00711_Plane6_2_of_4"``).
        patient_id: ``"Patient00711"`` (zero-padded ``Patient_num``); the split group.
        plane: ``Plane`` (e.g. ``"Fetal brain"``).
        brain_plane: ``Brain_plane`` (``"Not A Brain"`` for non-brain planes).
        operator: ``Operator`` (``"Op. 1"`` ... ``"Other"``).
        machine: ``US_Machine``.
        official_train: the authors' train/test flag (``Train == 1``).
    """

    image_path: Path
    image_name: str
    patient_id: str
    plane: str
    brain_plane: str
    operator: str
    machine: str
    official_train: bool

    @property
    def group(self) -> str:
        """Split group (the patient)."""
        return self.patient_id


def _read_table(path: Path, delimiter: str, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    text = read_csv_text(path)
    reader = csv.reader(text.splitlines(), delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise FetalInputError(path, "empty CSV") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise FetalInputError(path, f"missing column(s) {missing}; header is {header}")
    rows = []
    for line, values in enumerate(reader, start=2):
        values = [v.strip() for v in values]
        if not any(values):
            continue
        if len(values) < len(header):
            values += [""] * (len(header) - len(values))
        rows.append((line, dict(zip(header, values))))
    return rows


def read_label_table(root: str | Path) -> dict[str, dict[str, str]]:
    """``FETAL_PLANES_DB_data.csv`` as {Image_name: row} (stripped strings)."""
    path = Path(root) / LABEL_CSV
    table: dict[str, dict[str, str]] = {}
    for line, row in _read_table(path, ";", COLUMNS):
        name = row["Image_name"]
        if not name:
            raise FetalInputError(path, f"line {line}: empty Image_name")
        try:
            int(row["Patient_num"])
        except ValueError:
            raise FetalInputError(path, f"line {line}: Patient_num {row['Patient_num']!r} is not an integer") from None
        if row["Train"] not in ("0", "1"):
            raise FetalInputError(path, f"line {line}: Train must be 0 or 1, got {row['Train']!r}")
        row["_line"] = str(line)
        table[name] = row
    return table


def _record(image_path: Path, row: dict[str, str]) -> FetalPlanesRecord:
    return FetalPlanesRecord(
        image_path=image_path,
        image_name=row["Image_name"],
        patient_id=f"Patient{int(row['Patient_num']):05d}",
        plane=row["Plane"],
        brain_plane=row["Brain_plane"],
        operator=row["Operator"],
        machine=row["US_Machine"],
        official_train=row["Train"] == "1",
    )


def official_name(filename: str) -> str | None:
    """Roboflow file name -> official Image_name (``None`` if it is not a Roboflow name)."""
    match = _RF_RE.match(filename)
    return match.group("name") if match else None


def layout(root: str | Path) -> str:
    """``"roboflow"`` or ``"zenodo"`` (raises FetalInputError if neither)."""
    root = Path(root)
    if (root / ROBOFLOW_DIR).is_dir():
        return "roboflow"
    if (root / ZENODO_DIR).is_dir():
        return "zenodo"
    raise FetalInputError(root, f"neither {ROBOFLOW_DIR}/ (Roboflow export) nor {ZENODO_DIR}/ (Zenodo release) found")


def load(root: str | Path) -> list[FetalPlanesRecord]:
    """Read the FETAL_PLANES_DB records under ``root`` (either layout), sorted by image name.

    Raises:
        FetalInputError: a CSV missing or missing a column, an image listed but absent, or an
            image whose official name is not in the label table (each naming the file).
    """
    root = Path(root).expanduser().resolve()
    kind = layout(root)
    table = read_label_table(root)
    label_csv = root / LABEL_CSV
    records: list[FetalPlanesRecord] = []
    if kind == "zenodo":
        folder = root / ZENODO_DIR
        for name, row in table.items():
            image_path = folder / f"{name}.png"
            if not image_path.is_file():
                raise FetalInputError(image_path, f"image listed in {LABEL_CSV} (line {row['_line']}) is missing")
            records.append(_record(image_path, row))
        return sorted(records, key=lambda r: r.image_name)

    folder = root / ROBOFLOW_DIR
    index_path = root / INDEX_CSV
    mapping: dict[str, tuple[str, str]] = {}  # file -> (official name, where it came from)
    if index_path.is_file():
        for line, row in _read_table(index_path, ",", INDEX_COLUMNS):
            image = folder / row["image"]
            if not image.is_file():
                raise FetalInputError(image, f"image listed in {INDEX_CSV} (line {line}) is missing")
            mapping[row["image"]] = (row["fpdb_image_name"], f"{INDEX_CSV} line {line}")
    else:
        for image in sorted(folder.iterdir()):
            if image.suffix.lower() in _IMAGE_EXT:
                name = official_name(image.name)
                if name is None:
                    raise FetalInputError(image, "not a Roboflow file name (<Image_name>_png.rf.<hash>.jpg) and no index CSV")
                mapping[image.name] = (name, "file name")
    for filename, (name, where) in mapping.items():
        row = table.get(name)
        if row is None:
            raise FetalInputError(folder / filename, f"official name {name!r} (from {where}) is not in {label_csv}")
        records.append(_record(folder / filename, row))
    return sorted(records, key=lambda r: (r.image_name, r.image_path.name))
