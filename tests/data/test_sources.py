"""Resolving a dataset to the real data or a cached phantom."""

from __future__ import annotations

import pytest

from fetal_lib.data import phantoms, sources
from fetal_lib.errors import FetalInputError


@pytest.fixture
def build(tmp_path, monkeypatch):
    monkeypatch.setenv("FETAL_BUILD_DIR", str(tmp_path / "build"))
    return tmp_path / "build"


@pytest.mark.real_data
@pytest.mark.parametrize(
    "name, status, present",
    [("hc18", "partial", 752), ("fetal_planes", "partial", 1116), ("brain_age", "partial", None), ("fetal_brain_atlases", None, None)],
)
def test_real_data_resolves_with_a_counted_status(real_dataset, build, name, status, present):
    folder = real_dataset(name)
    for source in ("auto", "real"):
        src = sources.resolve(name, data_dir=folder.parent, source=source)
        assert src.root == folder.resolve() and not src.is_phantom
        assert src.status in ("complete", "partial")
        if status:
            assert src.status == status
        if present:
            assert src.n_present == present and src.n_expected > present
        assert "real data" in src.describe()
    assert not build.exists()  # nothing written for real data


def test_absent_dataset_auto_gives_a_cached_phantom(tmp_path, build):
    empty_root = tmp_path / "data"
    empty_root.mkdir()
    src = sources.resolve("fetal_brain_anomaly_us", data_dir=empty_root)
    assert src.is_phantom and src.status == "phantom"
    assert src.root == build / "phantoms" / "fetal_brain_anomaly_us"
    assert phantoms.is_phantom(src.root) and "PHANTOM" in src.describe()
    marker = src.root / "PHANTOM.txt"
    stamp = marker.stat().st_mtime_ns
    again = sources.resolve("fetal_brain_anomaly_us", data_dir=empty_root, source="phantom")
    assert again == src and marker.stat().st_mtime_ns == stamp  # cached, not rewritten
    assert [p.name for p in (build / "phantoms").iterdir()] == ["fetal_brain_anomaly_us"]  # no temp left


def test_stale_or_foreign_phantom_folder_is_replaced(tmp_path, build):
    folder = build / "phantoms" / "fetal_brain_anomaly_us"
    folder.mkdir(parents=True)
    (folder / "junk.txt").write_text("half-written")
    src = sources.resolve("fetal_brain_anomaly_us", data_dir=tmp_path / "none", source="phantom")
    assert not (src.root / "junk.txt").exists() and phantoms.is_phantom(src.root)


def test_real_missing_and_bad_arguments(tmp_path, build):
    with pytest.raises(FetalInputError) as err:
        sources.resolve("hc18", data_dir=tmp_path, source="real")
    assert err.value.path == tmp_path.resolve() / "hc18"
    with pytest.raises(FetalInputError, match="unknown dataset"):
        sources.resolve("mnist", data_dir=tmp_path)
    with pytest.raises(FetalInputError, match="unknown data source"):
        sources.resolve("hc18", data_dir=tmp_path, source="web")
    assert not build.exists()


def test_a_phantom_under_the_data_root_is_reported_as_phantom(tmp_path, phantom_root, build):
    import shutil

    shutil.copytree(phantom_root("fetal_brain_anomaly_us"), tmp_path / "fetal_brain_anomaly_us")
    src = sources.resolve("fetal_brain_anomaly_us", data_dir=tmp_path, source="real")
    assert src.is_phantom and src.status == "phantom"


def test_partial_counts_without_manifest(tmp_path, monkeypatch, phantom_root):
    """Built-in expected counts are used when no manifest is readable."""
    import fetal_lib.data.manifests as manifests

    def no_manifest(name, *args, **kwargs):
        raise FetalInputError(None, "no manifest")

    monkeypatch.setattr(manifests, "load_manifest", no_manifest)
    root = phantom_root("hc18")
    status, present, expected = sources.count_files("hc18", root)
    assert status == "partial" and expected == 999
    assert present == sum(1 for p in (root / "training_set").glob("*HC.png"))


def test_unreadable_folder_warns_and_falls_back_to_phantom(tmp_path, build):
    (tmp_path / "fetal_brain_anomaly_us").mkdir()
    (tmp_path / "fetal_brain_anomaly_us" / "notes.txt").write_text("not the dataset")
    with pytest.warns(UserWarning, match="phantom"):
        src = sources.resolve("fetal_brain_anomaly_us", data_dir=tmp_path)
    assert src.is_phantom


def test_describe_for_a_page_prints_no_absolute_folder(tmp_path, build):
    from fetal_lib.paths import REPO_ROOT

    real = sources.DatasetSource("hc18", tmp_path / "somewhere" / "data" / "hc18", False, "partial", 752, 999)
    assert real.describe().endswith(f"at {real.root}")  # the command line keeps the full path
    assert real.describe(relative=True) == "hc18: real data, partial (752 of 999 files) at <data root>/hc18"
    phantom = sources.DatasetSource("hc18", build / "phantoms" / "hc18", True, "phantom")
    assert phantom.describe(relative=True).endswith("at $FETAL_BUILD_DIR/phantoms/hc18")  # the build folder is outside the repo here
    assert str(tmp_path) not in real.describe(relative=True) + phantom.describe(relative=True)
    in_repo = sources.DatasetSource("hc18", REPO_ROOT / "build" / "phantoms" / "hc18", True, "phantom")
    assert str(REPO_ROOT) not in in_repo.describe(relative=True)


def test_shown_paths_are_relative_to_the_data_root_the_build_folder_or_the_repository(tmp_path, build, monkeypatch):
    from fetal_lib.paths import REPO_ROOT, shown

    monkeypatch.setenv("FETAL_DATA_DIR", str(tmp_path / "data"))
    assert shown(tmp_path / "data" / "hc18" / "001_HC.png") == "<data root>/hc18/001_HC.png"
    assert shown(build / "models" / "ga_mri.keras") == "$FETAL_BUILD_DIR/models/ga_mri.keras"
    assert shown(REPO_ROOT / "notebooks" / "00_data.py") == "notebooks/00_data.py"
    assert shown("/elsewhere/w.h5") == "/elsewhere/w.h5"
    monkeypatch.delenv("FETAL_BUILD_DIR")
    assert shown(REPO_ROOT / "build" / "models" / "ga_mri.keras") == "build/models/ga_mri.keras"
