"""FETAL_PLANES_DB loader: Roboflow re-export and Zenodo layouts, and bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import pandas as pd
import pytest

from fetal_lib.data import fetal_planes
from fetal_lib.errors import FetalInputError


@pytest.mark.real_data
def test_real_roboflow_layout(real_dataset):
    root = real_dataset("fetal_planes")
    records = fetal_planes.load(root)
    assert len(records) == 1116  # 562 until 2026-11-26, then the images of more patients
    assert all(r.image_path.is_absolute() and r.image_path.is_file() for r in records)
    # independent join with pandas (strip the trailing spaces of header and values)
    table = pd.read_csv(root / "FETAL_PLANES_DB_data.csv", sep=";", dtype=str)
    table.columns = [c.strip() for c in table.columns]
    table = table.apply(lambda col: col.str.strip()).set_index("Image_name")
    index = pd.read_csv(root / "roboflow_export_index.csv", dtype=str).set_index("image")
    for r in records[::7]:
        assert index.loc[r.image_path.name, "fpdb_image_name"] == r.image_name
        row = table.loc[r.image_name]
        assert r.plane == row["Plane"] and r.brain_plane == row["Brain_plane"]
        assert r.operator == row["Operator"] and r.machine == row["US_Machine"]
        assert r.official_train == (row["Train"] == "1")
        assert r.patient_id == f"Patient{int(row['Patient_num']):05d}" == r.group
    planes = {r.plane for r in records}
    assert planes == {"Fetal brain", "Fetal thorax", "Fetal abdomen", "Fetal femur"}
    assert {r.brain_plane for r in records if r.plane == "Fetal brain"} <= set(fetal_planes.BRAIN_PLANES)
    assert 1 < len({r.patient_id for r in records}) < len(records)


def test_phantom_layout_and_planes(phantom_root, phantom_records):
    records, truth = phantom_records("fetal_planes", fetal_planes.load)
    for r in records:
        t = truth.loc[r.image_path.name]
        assert (r.image_name, r.plane, r.brain_plane) == (t["Image_name"], t["plane"], t["brain_plane"])
    assert {r.plane for r in records} == {"Fetal brain", "Fetal thorax", "Fetal abdomen", "Fetal femur"}
    assert len({r.patient_id for r in records}) >= 5
    header = (phantom_root("fetal_planes") / "FETAL_PLANES_DB_data.csv").read_text().splitlines()[0]
    assert header.endswith("Train ")  # trailing space like the real table


def _to_zenodo(src: Path, dest: Path) -> None:
    """Rebuild the official layout (Images/<Image_name>.png + label CSV) from a Roboflow-layout copy."""
    (dest / "Images").mkdir(parents=True)
    index = pd.read_csv(src / "roboflow_export_index.csv")
    table = pd.read_csv(src / "FETAL_PLANES_DB_data.csv", sep=";", dtype=str)
    for image, name in zip(index["image"], index["fpdb_image_name"]):
        cv2.imwrite(str(dest / "Images" / f"{name}.png"), cv2.imread(str(src / "images" / image), cv2.IMREAD_GRAYSCALE))
    keep = table[table["Image_name"].isin(set(index["fpdb_image_name"]))]
    keep.to_csv(dest / "FETAL_PLANES_DB_data.csv", sep=";", index=False)


def test_zenodo_layout_gives_the_same_records(phantom_root, tmp_path):
    src = phantom_root("fetal_planes")
    _to_zenodo(src, tmp_path / "z")
    robo = fetal_planes.load(src)
    zen = fetal_planes.load(tmp_path / "z")
    assert fetal_planes.layout(tmp_path / "z") == "zenodo"
    strip = lambda rs: [(r.image_name, r.patient_id, r.plane, r.brain_plane, r.operator, r.machine, r.official_train) for r in rs]
    assert strip(robo) == strip(zen)
    assert all(r.image_path.suffix == ".png" and r.image_path.parent.name == "Images" for r in zen)
    next(iter((tmp_path / "z" / "Images").iterdir())).unlink()
    with pytest.raises(FetalInputError, match="missing"):
        fetal_planes.load(tmp_path / "z")


def test_without_index_csv_names_come_from_file_names(phantom_root, tmp_path):
    dest = tmp_path / "fp"
    shutil.copytree(phantom_root("fetal_planes"), dest)
    with_index = fetal_planes.load(dest)
    (dest / "roboflow_export_index.csv").unlink()
    assert fetal_planes.load(dest) == with_index


@pytest.fixture
def fp_copy(phantom_copy) -> Path:
    return phantom_copy("fetal_planes")


def test_missing_column(fp_copy):
    csv_path = fp_copy / "FETAL_PLANES_DB_data.csv"
    lines = csv_path.read_text().splitlines()
    csv_path.write_text("\n".join(";".join(l.split(";")[:-1]) for l in lines) + "\n")
    with pytest.raises(FetalInputError) as err:
        fetal_planes.load(fp_copy)
    assert err.value.path == csv_path and "Train" in str(err.value)


def test_missing_image_and_unknown_name(fp_copy):
    first = fetal_planes.load(fp_copy)[0]
    first.image_path.unlink()
    with pytest.raises(FetalInputError) as err:
        fetal_planes.load(fp_copy)
    assert err.value.path == first.image_path
    # an image whose official name is not in the label table
    (fp_copy / "roboflow_export_index.csv").unlink()
    cv2.imwrite(str(fp_copy / "images" / "Patient99999_Plane3_1_of_1_png.rf.0123abcd.jpg"), cv2.imread(str(next((fp_copy / "images").iterdir()))))
    with pytest.raises(FetalInputError, match="not in"):
        fetal_planes.load(fp_copy)


def test_no_layout(tmp_path):
    with pytest.raises(FetalInputError):
        fetal_planes.load(tmp_path)
