"""Manifests: every dataset has one, it is well formed, and its counts/checksums agree with the release."""

from __future__ import annotations

import re

import pytest
import yaml

from fetal_lib.data import manifests
from fetal_lib.errors import FetalInputError
from fetal_lib.paths import MANIFEST_DIR

NAMES = ["hc18", "fetal_planes", "fetal_brain_anomaly_us", "fetal_brain_anomaly_16class",
         "fetal_brain_atlases", "feta", "brain_age"]


def test_every_dataset_has_a_manifest_in_canonical_order():
    assert manifests.available_names() == NAMES
    assert list(manifests.all_manifests()) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_manifest_is_complete_and_small(name):
    path = MANIFEST_DIR / f"{name}.yaml"
    assert path.stat().st_size < 1_000_000
    m = manifests.load_manifest(name)
    assert m["name"] == name and m["dir"] == name
    for key in ("citation", "licence", "title", "layout", "counts_source"):
        assert isinstance(m[key], str) and len(m[key]) >= 9, key
    assert m["counts"] and all(isinstance(v, int) and v > 0 for v in m["counts"].values())
    assert m["access"]["url"].startswith("http")
    if m["access"]["kind"] == "open":
        assert m["download"]["base_url"].startswith("https://zenodo.org/records/")
    else:
        assert len(m["access"]["instructions"]) > 50
    for spec in m.get("csv") or []:
        assert spec["sep"] in {",", ";"} and spec["columns"]
    for group in m["groups"]:
        re.compile(group["pattern"])
        assert group["expected"] > 0


@pytest.mark.parametrize("name", [n for n in NAMES if n != "fetal_brain_anomaly_16class"])
def test_every_checksummed_file_is_described_by_a_group_a_csv_or_an_extra(name):
    m = manifests.load_manifest(name)
    described = {s["path"] for s in m.get("csv") or []} | set(m.get("extra_files") or [])
    rxs = [re.compile(g["pattern"]) for g in m["groups"]]
    undescribed = [p for p in m["checksums"]["sha256"] if p not in described and not any(r.fullmatch(p) for r in rxs)]
    assert undescribed == []
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in m["checksums"]["sha256"].values())


def test_hc18_release_counts_follow_from_the_release_file_list():
    m = manifests.load_manifest("hc18")
    assert m["checksums"]["source"] == "release"
    paths = list(m["checksums"]["sha256"])
    assert len(paths) == 2335
    counted = {g["name"]: sum(bool(re.fullmatch(g["pattern"], p)) for p in paths) for g in m["groups"]}
    assert counted == {"train_images": 999, "train_annotations": 999, "test_images": 335}
    assert m["counts"] == {"train_images": 999, "train_annotations": 999, "test_images": 335}
    assert {f["name"] for f in m["download"]["files"]} == {
        "training_set.zip", "test_set.zip", "training_set_pixel_size_and_HC.csv", "test_set_pixel_size.csv"}
    assert "1327317" in m["download"]["base_url"]


def test_hc18_checksums_equal_the_release_sums_file(real_dataset):
    sums_file = real_dataset("hc18") / "ZENODO_RELEASE.SHA256SUMS"
    release = {}
    for line in sums_file.read_text().splitlines():
        if line.strip():
            digest, path = line.split(None, 1)
            release[path.strip().removeprefix("./")] = digest
    assert manifests.load_manifest("hc18")["checksums"]["sha256"] == release


def test_fetal_planes_points_at_the_zenodo_archive():
    m = manifests.load_manifest("fetal_planes")
    assert "3904280" in m["download"]["base_url"]
    assert [f["name"] for f in m["download"]["files"]] == ["FETAL_PLANES_ZENODO.zip"]
    label_csv = next(s for s in m["csv"] if s["path"] == "FETAL_PLANES_DB_data.csv")
    assert label_csv["sep"] == ";" and "Brain_plane" in label_csv["columns"]


def test_unknown_dataset_names_the_manifest_and_lists_the_known_ones():
    with pytest.raises(FetalInputError) as err:
        manifests.load_manifest("no_such_set")
    assert "no_such_set.yaml" in str(err.value) and "hc18" in str(err.value)


def test_broken_manifest_is_one_clear_error(tmp_path):
    good = manifests.load_manifest("fetal_brain_anomaly_16class")
    broken = {k: v for k, v in good.items() if k != "licence"}
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(broken))
    with pytest.raises(FetalInputError, match=r"toy\.yaml: manifest lacks key\(s\): licence"):
        manifests.load_manifest("toy", manifest_dir=tmp_path)
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    with pytest.raises(FetalInputError, match=r"bad\.yaml: not valid YAML"):
        manifests.load_manifest("bad", manifest_dir=tmp_path)
