"""``verify``: real data reports as it is; corrupted copies are each named in one line; read-only.

Corruption tests build a data root in tmp_path whose files are symlinks into the real data,
except the few replaced by corrupted copies. Nothing is ever written into the real data root
(checked by a size/mtime listing before and after).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pytest

from fetal_lib.data.verify import verify
from fetal_lib.errors import FetalInputError


# ---------------------------------------------------------------------------- helpers


def link_files(src_root: Path, dst_root: Path, rels: Iterable[str]) -> None:
    """Mirror the listed files (relative POSIX paths) of ``src_root`` as symlinks under ``dst_root``."""
    for rel in rels:
        dst = dst_root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.symlink_to(src_root / rel)


def replace_with(dst_root: Path, rel: str, data: bytes) -> Path:
    """Replace the symlink ``rel`` by a real file holding ``data`` (never writes through the link)."""
    path = dst_root / rel
    if path.is_symlink() or path.exists():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def listing(root: Path, follow: bool) -> dict[str, tuple[int, int]]:
    """{relative path: (size, mtime_ns)} of every entry under ``root``."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=follow):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.stat() if follow else p.lstat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def hc18_subset(real: Path, n_train: int = 5, n_test: int = 2) -> list[str]:
    images = sorted(p.name for p in (real / "training_set").glob("*HC.png"))[:n_train]
    rels = [f"training_set/{n}" for n in images]
    rels += [f"training_set/{n[:-4]}_Annotation.png" for n in images]
    rels += [f"test_set/{p.name}" for p in sorted((real / "test_set").glob("*.png"))[:n_test]]
    return rels + ["training_set_pixel_size_and_HC.csv", "test_set_pixel_size.csv"]


def brain_age_subset(real: Path, n: int = 3) -> list[str]:
    ids = sorted(p.name.split("_")[0] for p in (real / "images").glob("*.nii.gz"))[:n]
    rels = [f"meta/{p.name}" for p in sorted((real / "meta").glob("*.csv"))]
    for sid in ids:
        rels += [f"images/{sid}_T1w_unbiased.nii.gz", f"masks/{sid}_T1w_brain_mask.nii.gz",
                 f"segs_refs/{sid}_T1w_seg.nii.gz"]
    return rels


def csv_with(real_csv: Path, edit: Callable[[list[str]], list[str]]) -> bytes:
    lines = real_csv.read_bytes().decode().split("\r\n")
    return "\r\n".join(edit(lines)).encode()


# ---------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def real_root(real_dataset) -> Path:
    return real_dataset("hc18").parent


@pytest.fixture(scope="module")
def real_report(real_root):
    """One full verification of the real data root per test module (about 15 s on 2 cores)."""
    before = listing(real_root, follow=False)
    report = verify(real_root)
    assert listing(real_root, follow=False) == before, "verify changed the data root"
    print(f"\nverify of {real_root}: {report.to_dict()['n_checked']} files in {report.wall_s:.1f} s")
    return report


def test_real_data_reports_hc18_partial_and_no_corruption(real_report, real_root):
    hc18 = real_report["hc18"]
    n_train = len([p for p in (real_root / "hc18/training_set").glob("*HC.png")])
    assert n_train == 752  # independent count of the copy here
    assert (hc18.status, hc18.n_present, hc18.n_expected) == ("partial", n_train, 999)
    assert hc18.describe_status() == "partial (752 of 999 training images)"
    assert real_report.ok and real_report.problems == []
    assert any("training_set_pixel_size_and_HC.csv: sha256 differs from the release" in n for n in hc18.notes)


def test_real_data_counts_match_an_independent_listing(real_report, real_root):
    expected_present = {
        "fetal_planes": len(list((real_root / "fetal_planes/images").glob("*.jpg"))),
        "fetal_brain_anomaly_us": len(list(real_root.glob("fetal_brain_anomaly_us/*/images/*.jpg"))),
        "brain_age": len(list((real_root / "brain_age/images").glob("*.nii.gz"))),
    }
    for name, n in expected_present.items():
        assert real_report[name].n_present == n, name
    assert real_report["brain_age"].status == "partial"
    atlases = real_report["fetal_brain_atlases"]
    n_nifti = len(list((real_root / "fetal_brain_atlases").rglob("*.nii.gz")))
    assert sum(g.present for g in atlases.groups if g.name != "licence") == n_nifti == 95
    assert real_report["fetal_brain_anomaly_16class"].status == "missing"


def test_real_report_is_json_serialisable(real_report):
    data = json.loads(json.dumps(real_report.to_dict()))
    assert data["ok"] is True
    by_name = {d["name"]: d for d in data["datasets"]}
    assert by_name["hc18"]["n_present"] == 752 and by_name["hc18"]["status"] == "partial"
    train_csv = next(c for c in by_name["hc18"]["csv"] if c["path"] == "training_set_pixel_size_and_HC.csv")
    assert train_csv == {"path": "training_set_pixel_size_and_HC.csv", "rows": 752, "expected_rows": 999,
                         "rows_absent_files": 0, "sha256_matches": False, "sha256_source": "release"}
    assert {d["name"] for d in data["datasets"]} >= {"hc18", "brain_age", "fetal_planes"}


# ---------------------------------------------------------------------------- corruption


def test_corrupt_png_truncated_nifti_and_csv_missing_column_are_each_named_once(real_dataset, tmp_path):
    hc18, brain_age = real_dataset("hc18"), real_dataset("brain_age")
    root = tmp_path / "data"
    link_files(hc18, root / "hc18", hc18_subset(hc18))
    link_files(brain_age, root / "brain_age", brain_age_subset(brain_age))
    real_before = {d: listing(d, follow=False) for d in (hc18, brain_age)}

    png_rel = hc18_subset(hc18)[0]
    data = bytearray((hc18 / png_rel).read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # corrupt the middle, keep the PNG trailer
    bad_png = replace_with(root / "hc18", png_rel, bytes(data))
    bad_csv = replace_with(root / "hc18", "training_set_pixel_size_and_HC.csv", csv_with(
        hc18 / "training_set_pixel_size_and_HC.csv",
        lambda lines: [",".join(f for i, f in enumerate(line.split(",")) if i != 1) for line in lines]))
    nii_rel = next(r for r in brain_age_subset(brain_age) if r.startswith("images/"))
    raw = (brain_age / nii_rel).read_bytes()
    bad_nii = replace_with(root / "brain_age", nii_rel, raw[: len(raw) // 2])

    tmp_before = listing(root, follow=False)
    report = verify(root, ["hc18", "brain_age"])
    assert listing(root, follow=False) == tmp_before
    assert {d: listing(d, follow=False) for d in real_before} == real_before

    assert not report.ok
    problems = report.problems
    assert len(problems) == 3, problems
    for path in (bad_png, bad_csv, bad_nii):
        assert sum(line.startswith(f"{path}: ") for line in problems) == 1, (path, problems)
    line = {p.split(": ")[0]: p for p in problems}
    assert "sha256 mismatch" in line[str(bad_png)]
    assert "missing column(s) 'pixel size(mm)'" in line[str(bad_csv)]
    assert "truncated" in line[str(bad_nii)] or "not a readable NIfTI" in line[str(bad_nii)]
    assert report["hc18"].status == "partial" and report["hc18"].n_present == 5

    # The same through the command line: exit 1, each corrupt file named in exactly one line.
    cli = subprocess.run([sys.executable, "-m", "fetal_lib.cli", "data", "verify", "--data-dir", str(root),
                          "hc18", "brain_age"], capture_output=True, text=True, timeout=300)
    assert cli.returncode == 1, cli.stdout + cli.stderr
    out_lines = cli.stdout.split("\nnotes (")[0].splitlines()  # the problem lines, before the notes
    for path in (bad_png, bad_csv, bad_nii):
        assert sum(line.startswith(f"{path}: ") for line in out_lines) == 1, cli.stdout
    assert listing(root, follow=False) == tmp_before
    assert {d: listing(d, follow=False) for d in real_before} == real_before


def test_csv_content_problems(real_dataset, tmp_path):
    hc18 = real_dataset("hc18")
    root = tmp_path / "data"
    rels = hc18_subset(hc18)
    link_files(hc18, root / "hc18", rels)
    first_image = rels[0].split("/")[1]

    def negative_and_dropped(lines):
        out = []
        for line in lines:
            if line.startswith(first_image + ","):
                continue  # a present image loses its row
            out.append(line)
        fields = out[2].split(",")
        fields[1] = "-0.1"
        out[2] = ",".join(fields)
        return out

    train_csv = replace_with(root / "hc18", "training_set_pixel_size_and_HC.csv",
                             csv_with(hc18 / "training_set_pixel_size_and_HC.csv", negative_and_dropped))
    test_csv = replace_with(root / "hc18", "test_set_pixel_size.csv",
                            csv_with(hc18 / "test_set_pixel_size.csv", lambda ls: [x.replace(",", ";") for x in ls]))
    report = verify(root, ["hc18"])
    problems = report.problems
    assert any(p.startswith(f"{train_csv}: 1 non-positive") and "'-0.1'" in p for p in problems), problems
    assert any(p.startswith(f"{root / 'hc18' / rels[0]}: no row in training_set_pixel_size_and_HC.csv")
               for p in problems), problems
    assert any(p.startswith(f"{test_csv}: missing column(s)") and "separator ','" in p for p in problems), problems
    n_rows = len((hc18 / "training_set_pixel_size_and_HC.csv").read_text().splitlines()) - 2
    assert any(f"{train_csv}: {n_rows - 5 + 1} of {n_rows} rows name files absent here" in n
               for n in report["hc18"].notes), report["hc18"].notes


def test_nifti_of_wrong_dimension_and_bad_yolo_labels(real_dataset, tmp_path):
    import SimpleITK as sitk

    brain_age = real_dataset("brain_age")
    anomaly = real_dataset("fetal_brain_anomaly_us")
    root = tmp_path / "data"
    link_files(brain_age, root / "brain_age", brain_age_subset(brain_age, n=1))
    flat = root / "brain_age/images/sub-CC000000_T1w_unbiased.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((8, 8), np.float32)), str(flat))
    labels = sorted(p.relative_to(anomaly).as_posix() for p in anomaly.glob("valid/labels/*.txt"))[:2]
    link_files(anomaly, root / "fetal_brain_anomaly_us", labels + ["data.yaml"])
    bad_label = replace_with(root / "fetal_brain_anomaly_us", labels[0], b"7 0.5 0.5 0.2 0.2\n")
    bad_yaml = replace_with(root / "fetal_brain_anomaly_us", "data.yaml", b"names: [abnormal, normal]\n")

    report = verify(root, ["brain_age", "fetal_brain_anomaly_us"])
    problems = report.problems
    assert any(p.startswith(f"{flat}: expected a 3D volume, got 2D") for p in problems), problems
    assert any(p.startswith(f"{bad_label}: line 1: class 7 outside 0..1") for p in problems), problems
    assert any(p.startswith(f"{bad_yaml}: missing key(s) nc") for p in problems), problems
    assert len(problems) == 3, problems


def test_missing_dataset_is_not_an_error_and_unknown_name_is(tmp_path):
    report = verify(tmp_path, ["hc18", "fetal_brain_anomaly_16class"])
    assert report.ok
    assert [d.status for d in report.datasets] == ["missing", "missing"]
    assert report["hc18"].n_expected == 999
    with pytest.raises(FetalInputError, match="no manifest for dataset 'nope'"):
        verify(tmp_path, ["nope"])


def test_fetal_planes_zenodo_layout_is_recognised(tmp_path):
    """What `fetal data fetch fetal_planes` writes (Images/*.png + the ';' label table) verifies as partial."""
    import cv2

    ds = tmp_path / "fetal_planes"
    (ds / "Images").mkdir(parents=True)
    for name in ("Patient00001_Plane1_1_of_15", "Patient00001_Plane1_2_of_15"):
        assert cv2.imwrite(str(ds / "Images" / f"{name}.png"), np.full((8, 10), 128, np.uint8))
    rows = ["Image_name;Patient_num;Plane;Brain_plane;Operator;US_Machine;Train "]
    rows += [f"Patient00001_Plane1_{i}_of_15;1;Other;Not A Brain;Other;Aloka;1 " for i in (1, 2, 3)]
    (ds / "FETAL_PLANES_DB_data.csv").write_text("\n".join(rows) + "\n")

    report = verify(tmp_path, ["fetal_planes"])
    planes = report["fetal_planes"]
    assert report.ok, report.problems
    assert (planes.layout, planes.status, planes.n_present, planes.n_expected) == ("zenodo", "partial", 2, 12400)
    assert [g.name for g in planes.groups] == ["zenodo_images"]
    assert any("1 of 3 rows name files absent here" in n for n in planes.notes), planes.notes


def test_phantom_is_decoded_but_not_compared_with_release_checksums(real_dataset, tmp_path):
    """A folder marked PHANTOM.txt holds synthetic files: no checksum problem, decoding still checked."""
    import cv2

    hc18 = real_dataset("hc18")
    root = tmp_path / "data"
    rels = hc18_subset(hc18, n_train=2, n_test=0)
    link_files(hc18, root / "hc18", rels)
    synthetic = cv2.imencode(".png", np.full((20, 30), 100, np.uint8))[1].tobytes()
    replace_with(root / "hc18", rels[0], synthetic)
    bad = replace_with(root / "hc18", rels[1], synthetic[:-20])  # truncated: still a problem
    (root / "hc18" / "PHANTOM.txt").write_text("PHANTOM: synthetic\n")

    report = verify(root, ["hc18"])
    hc = report["hc18"]
    assert hc.phantom and "partial (phantom)" in report.format_text()
    assert report.problems == [f"{bad}: truncated PNG (no IEND chunk at the end)"]
    assert any("a synthetic phantom" in n for n in hc.notes)
    assert not any("does not describe" in n for n in hc.notes)


def test_differences_from_recorded_copy_are_one_summary_note(real_dataset, tmp_path):
    import cv2

    anomaly = real_dataset("fetal_brain_anomaly_us")
    images = sorted(p.relative_to(anomaly).as_posix() for p in anomaly.glob("valid/images/*.jpg"))[:3]
    root = tmp_path / "data"
    link_files(anomaly, root / "fetal_brain_anomaly_us", images)
    for rel in images[:2]:  # re-encoded: decodes fine, bytes differ from the recorded copy
        img = cv2.imread(str(anomaly / rel), cv2.IMREAD_GRAYSCALE)
        replace_with(root / "fetal_brain_anomaly_us", rel, cv2.imencode(".jpg", img)[1].tobytes())
    report = verify(root, ["fetal_brain_anomaly_us"])
    assert report.ok, report.problems
    notes = [n for n in report["fetal_brain_anomaly_us"].notes if "differ from the checksums recorded" in n]
    assert len(notes) == 1 and notes[0].split(": ")[1].startswith("2 file(s)")
