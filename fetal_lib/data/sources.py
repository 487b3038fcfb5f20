"""Where a dataset comes from: the real data under the data root, or a cached phantom.

``resolve(name)`` is what every chapter and command calls first::

    src = resolve("hc18", data_dir, source="auto")
    records = hc18.load(src.root)

``source``: ``"auto"`` = the real dataset if ``<data_root>/<name>`` holds it, else a phantom;
``"real"`` = the real dataset or a FetalInputError; ``"phantom"`` = always the phantom.
Phantoms are written once to ``<build_dir>/phantoms/<name>`` (temporary folder + rename, so
a crash leaves no half phantom) and reused while their PHANTOM.txt matches this version.

``status`` is ``"complete"`` / ``"partial"`` from a cheap file count against the expected
counts of ``data_manifests/<name>.yaml`` (its ``groups`` patterns and ``expected``; built-in
defaults when no manifest is readable), or ``"phantom"``. It checks no file's content:
``fetal data verify`` does that.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from fetal_lib.errors import FetalInputError
from fetal_lib.paths import build_dir, data_root, shown
from fetal_lib.data import DATASET_NAMES

DATASETS = DATASET_NAMES
SOURCES = ("auto", "real", "phantom")
PHANTOM_SEED = 0
PHANTOM_SIZE = "small"

# Fallback expected counts (the full releases) when no manifest is readable:
# name -> [(group, regex on the POSIX path relative to the dataset root, expected, layout)].
_DEFAULT_GROUPS: dict[str, list[tuple[str, str, int, str | None]]] = {
    "hc18": [
        ("train_images", r"training_set/\d{3}_\d?HC\.png", 999, None),
        ("train_annotations", r"training_set/\d{3}_\d?HC_Annotation\.png", 999, None),
        ("test_images", r"test_set/\d{3}_\d?HC\.png", 335, None),
    ],
    "fetal_planes": [
        ("images", r"images/[^/]+\.jpg", 1638, "roboflow"),
        ("zenodo_images", r"Images/[^/]+\.png", 12400, "zenodo"),
    ],
    "fetal_brain_anomaly_us": [
        ("images", r"(train|valid|test)/images/[^/]+\.(jpg|jpeg|png)", 420, None),
        ("labels", r"(train|valid|test)/labels/[^/]+\.txt", 420, None),
    ],
    "fetal_brain_anomaly_16class": [("images", r"(train|valid|test)/[^/]+/[^/]+\.(jpg|jpeg|png)", 1768, None)],
    "fetal_brain_atlases": [
        ("srr", r"Neurotypical_[^/]+/[^/]+/srr\.nii\.gz", 31, None),
        ("mask", r"Neurotypical_[^/]+/[^/]+/mask\.nii\.gz", 32, None),
        ("parcellation", r"Neurotypical_[^/]+/[^/]+/parcellation\.nii\.gz", 32, None),
    ],
    "feta": [
        ("t2w", r"sub-[^/]+/anat/sub-[^/]+_T2w\.nii\.gz", 80, None),
        ("dseg", r"sub-[^/]+/anat/sub-[^/]+_dseg\.nii\.gz", 80, None),
    ],
    "brain_age": [
        ("segs_refs", r"segs_refs/sub-[^/]+_T1w_seg\.nii\.gz", 552, None),
        ("images", r"images/sub-[^/]+_T1w_unbiased\.nii\.gz", 552, None),
        ("masks", r"masks/sub-[^/]+_T1w_brain_mask\.nii\.gz", 552, None),
    ],
}


@dataclass(frozen=True)
class DatasetSource:
    """A resolved dataset.

    Attributes:
        name: dataset name (``"hc18"`` ...).
        root: absolute folder that the dataset's ``load(root)`` reads.
        is_phantom: True for a synthetic phantom.
        status: ``"complete"``, ``"partial"`` (fewer files than the full release) or ``"phantom"``.
        n_present, n_expected: the counted files of the summary group (``None`` if unknown).
    """

    name: str
    root: Path
    is_phantom: bool
    status: str
    n_present: int | None = None
    n_expected: int | None = None

    def describe(self, relative: bool = False) -> str:
        """One line for a chapter's header, e.g. ``hc18: real data, partial (752 of 999 files) at /data/hc18``.

        ``relative``: the folder as a book page prints it (``<data root>/hc18``, ``build/phantoms/hc18``),
        without the build machine's absolute path.
        """
        if relative:
            where = shown(self.root) if self.is_phantom else shown(self.root, data_dir=self.root.parent)
        else:
            where = str(self.root)
        if self.is_phantom:
            return f"{self.name}: PHANTOM (synthetic, seed {PHANTOM_SEED}) at {where}"
        count = f" ({self.n_present} of {self.n_expected} files)" if self.n_expected else ""
        return f"{self.name}: real data, {self.status}{count} at {where}"


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise FetalInputError(None, f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")


def holds_dataset(name: str, folder: Path) -> bool:
    """Cheap test that ``folder`` holds dataset ``name`` in a layout its loader reads."""
    if not folder.is_dir():
        return False
    if name == "hc18":
        return (folder / "training_set_pixel_size_and_HC.csv").is_file() or (folder / "test_set_pixel_size.csv").is_file()
    if name == "fetal_planes":
        return (folder / "FETAL_PLANES_DB_data.csv").is_file() and ((folder / "images").is_dir() or (folder / "Images").is_dir())
    if name == "fetal_brain_anomaly_us":
        return (folder / "data.yaml").is_file()
    if name == "fetal_brain_anomaly_16class":
        return any((folder / s).is_dir() and any(p.is_dir() for p in (folder / s).iterdir()) for s in ("train", "valid", "test"))
    if name == "fetal_brain_atlases":
        return any(folder.glob("*/*/parcellation.nii.gz"))
    if name == "feta":
        return (folder / "participants.tsv").is_file() and any(folder.glob("sub-*/anat/sub-*_T2w.nii*"))
    if name == "brain_age":
        return any((folder / "meta").glob("meta_data_*.csv"))
    return False


def _groups(name: str) -> tuple[list[tuple[str, str, int | None, str | None]], list[str]]:
    """(groups, summary group names) from the manifest, else the built-in defaults."""
    try:
        from fetal_lib.data.manifests import load_manifest  # looked up at call time: a test replaces it

        manifest = load_manifest(name)
        groups = [(g["name"], g["pattern"], g.get("expected"), g.get("layout")) for g in manifest["groups"]]
        summary = manifest.get("summary_group")
        summary_names = [summary] if isinstance(summary, str) else list(summary or [])
        if groups:
            return groups, summary_names
    except Exception:  # no/invalid manifest (another helper's file): fall back, never fail here
        pass
    groups = _DEFAULT_GROUPS[name]
    return list(groups), [groups[0][0]]


def count_files(name: str, root: Path) -> tuple[str, int | None, int | None]:
    """(status, n_present, n_expected) of a real dataset folder from a file count."""
    groups, summary_names = _groups(name)
    compiled = [(g, re.compile(g[1])) for g in groups]
    counts = {g[0]: 0 for g in groups}
    for dirpath, _dirs, files in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        for f in files:
            rel = f if rel_dir == "." else f"{rel_dir}/{f}"
            for g, rx in compiled:
                if rx.fullmatch(rel):
                    counts[g[0]] += 1
                    break
    chosen = next((s for s in summary_names if counts.get(s)), summary_names[0] if summary_names else groups[0][0])
    layout = next((g[3] for g in groups if g[0] == chosen), None)
    active = [g for g in groups if g[3] in (None, layout)]
    complete = all(g[2] is None or counts[g[0]] >= g[2] for g in active)
    expected = next((g[2] for g in groups if g[0] == chosen), None)
    return ("complete" if complete else "partial"), counts.get(chosen), expected


def phantom_dir(name: str) -> Path:
    """Where the cached phantom of ``name`` lives: ``<build_dir>/phantoms/<name>``."""
    return build_dir() / "phantoms" / name


def _phantom_current(folder: Path) -> bool:
    marker = folder / "PHANTOM.txt"
    if not marker.is_file():
        return False
    from fetal_lib.data.phantoms import PHANTOM_VERSION  # deferred: imports scipy

    text = marker.read_text(encoding="utf-8", errors="replace")
    return f"phantom_version: {PHANTOM_VERSION}\n" in text and f"seed: {PHANTOM_SEED}\n" in text and f"size: {PHANTOM_SIZE}\n" in text


def ensure_phantom(name: str) -> Path:
    """The cached phantom of ``name``, written (atomically) if absent or stale."""
    from fetal_lib.data import phantoms  # deferred: imports scipy

    _check_name(name)
    dest = phantom_dir(name)
    if _phantom_current(dest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".new", dir=dest.parent))
    try:
        built = phantoms.write(name, staging / name, seed=PHANTOM_SEED, size=PHANTOM_SIZE)
        if _phantom_current(dest):  # another process finished first
            return dest
        if dest.exists():  # stale or foreign: move aside, then swap in
            trash = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".old", dir=dest.parent))
            os.replace(dest, trash / name)
            shutil.rmtree(trash, ignore_errors=True)
        try:
            os.replace(built, dest)
        except OSError:
            if not _phantom_current(dest):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def resolve(name: str, data_dir: str | Path | None = None, source: str = "auto") -> DatasetSource:
    """Resolve dataset ``name`` to a folder its loader reads.

    Args:
        name: one of :data:`DATASETS`.
        data_dir: data root (``--data-dir``); default ``$FETAL_DATA_DIR`` or ``./data``.
        source: ``"auto"`` (real if present, else phantom), ``"real"`` or ``"phantom"``.

    Raises:
        FetalInputError: unknown name/source, or ``source="real"`` and the dataset is absent.
    """
    _check_name(name)
    if source not in SOURCES:
        raise FetalInputError(None, f"unknown data source {source!r}; use one of {', '.join(SOURCES)}")
    if source in ("auto", "real"):
        folder = data_root(data_dir) / name
        if holds_dataset(name, folder):
            if (folder / "PHANTOM.txt").is_file():
                return DatasetSource(name, folder, True, "phantom")
            status, present, expected = count_files(name, folder)
            return DatasetSource(name, folder, False, status, present, expected)
        if source == "auto" and folder.is_dir() and any(folder.iterdir()):
            warnings.warn(f"{folder}: present but not in a layout the {name} loader reads; using a phantom", stacklevel=2)
        if source == "real":
            raise FetalInputError(
                folder, f"dataset {name!r} not found there (see data_manifests/{name}.yaml for how to get it; "
                "`fetal data verify` checks it)"
            )
    return DatasetSource(name, ensure_phantom(name), True, "phantom")
