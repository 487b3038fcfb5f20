"""Chapter 3's classification tasks: which images, which labels, and a split that never leaks.

``load_task(task)`` reads one data set through its loader, keeps the images of the task, labels
them, and splits them into train/val/test by *group* (stratified by class), so that no patient,
source image or copy of one picture is on two sides:

========== ============================================= ==================================================
task       images and classes                            group
========== ============================================= ==================================================
planes     FETAL_PLANES_DB: Fetal abdomen / brain /       the patient
           femur / thorax (Maternal cervix and Other
           dropped)
brain_     FETAL_PLANES_DB "Fetal brain" images:          the patient
planes     Trans-cerebellum / Trans-thalamic /
           Trans-ventricular (Brain_plane "Other" dropped)
anomaly    the fetal brain anomaly set (YOLO export):     the source image (Roboflow's augmented copies of
           normal vs abnormal (the loader's label)        one picture together); a ``PatientNNNNN_`` normal
                                                          plane: its patient
anomaly_   the same images: "normal" or the anomaly type  as ``anomaly``
type       of the file name; types with fewer than
           ``min_type_groups`` groups merged into "other"
anomaly16  the 16-class export (folder per class), if     the source image
           present (never a silent phantom)
========== ============================================= ==================================================

For the anomaly-set tasks the images are also compared with each other (a 24x24 thumbnail, up to
flips and quarter turns): two differently named files that hold the same picture are one group
(in the development copy ``colphocephaly-36c`` is ``moderate-ventriculomegaly-36b``), and when the
two names give different labels both are dropped. What was dropped or merged is said, in words,
in :attr:`TaskData.notes`.

``split="image"`` splits images ignoring their groups. It exists ONLY for the chapter's leak
demonstration (how much an image-level split flatters a model); never train a deployed model on it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fetal_lib.errors import FetalInputError
from fetal_lib.data import fetal_brain_anomaly_16class as a16
from fetal_lib.data import fetal_brain_anomaly_us as au
from fetal_lib.data import fetal_planes
from fetal_lib.data.imaging import read_image_gray
from fetal_lib.data.sources import SOURCES, holds_dataset, resolve
from fetal_lib.data.splits import check_disjoint, grouped_split
from fetal_lib.paths import data_root

TASKS = ("planes", "brain_planes", "anomaly", "anomaly_type", "anomaly16")
#: One line per task (for ``--help`` and the chapter).
TASK_DESCRIPTIONS = {
    "planes": "FETAL_PLANES_DB standard plane: fetal abdomen, brain, femur or thorax (split by patient)",
    "brain_planes": "FETAL_PLANES_DB brain plane: trans-cerebellum, trans-thalamic or trans-ventricular (split by patient)",
    "anomaly": "fetal brain anomaly set: normal or abnormal brain plane (split by source image; normal planes by patient)",
    "anomaly_type": "fetal brain anomaly set: normal or the anomaly type, rare types merged into 'other' (split as anomaly)",
    "anomaly16": "16-class Fetal Brain Abnormalities Ultrasound export, if present (split by source image)",
}
#: The data set each task reads (a folder name under the data root).
DATASET_OF = {
    "planes": "fetal_planes",
    "brain_planes": "fetal_planes",
    "anomaly": "fetal_brain_anomaly_us",
    "anomaly_type": "fetal_brain_anomaly_us",
    "anomaly16": "fetal_brain_anomaly_16class",
}
SPLITS = ("grouped", "image")
PLANE_CLASSES = ("Fetal abdomen", "Fetal brain", "Fetal femur", "Fetal thorax")
BRAIN_PLANE_CLASSES = ("Trans-cerebellum", "Trans-thalamic", "Trans-ventricular")
OTHER = "other"
NORMAL = "normal"
#: Thumbnail correlation (up to flips and quarter turns) from which two images are one picture.
DUPLICATE_THRESHOLD = 0.98


@dataclass(frozen=True)
class UsItem:
    """One image of a task.

    Attributes:
        path: the image file.
        label: its class (one of :attr:`TaskData.classes`).
        group: its split group: the patient (FETAL_PLANES_DB, and ``PatientNNNNN_`` files of the
            anomaly set), else the source image (Roboflow copies of one picture share it); groups
            joined because they hold the same picture are named ``a+b``.
    """

    path: Path
    label: str
    group: str


@dataclass
class TaskData:
    """One task's images, classes and split.

    Attributes:
        task: the task name (:data:`TASKS`).
        classes: class names; a label's index in this list is its class id.
        items: every image of the task.
        parts: ``{"train": idx, "val": idx, "test": idx}`` (sorted int arrays into ``items``).
        source: the :class:`~fetal_lib.data.sources.DatasetSource` read (real or phantom).
        split: ``"grouped"`` or ``"image"`` (the leak demonstration only).
        notes: what was dropped or merged, in words.
        records: the loader's records, parallel to ``items`` (operator, machine, export split ...).
        seed: the split's seed.
    """

    task: str
    classes: list[str]
    items: list[UsItem]
    parts: dict[str, np.ndarray]
    source: Any
    split: str = "grouped"
    notes: list[str] = field(default_factory=list)
    records: list = field(default_factory=list)
    seed: int = 0

    def _index(self, name: str | None) -> np.ndarray:
        if name is None:
            return np.arange(len(self.items))
        if name not in self.parts:
            raise KeyError(f"no part {name!r}; parts are {', '.join(self.parts)}")
        return self.parts[name]

    def part(self, name: str) -> list[UsItem]:
        """The items of part ``name`` (``"train"``, ``"val"``, ``"test"``)."""
        return [self.items[i] for i in self._index(name)]

    def labels(self, name: str | None = None) -> np.ndarray:
        """Class ids (int64 indices into :attr:`classes`) of part ``name`` (None: every item)."""
        lookup = {c: k for k, c in enumerate(self.classes)}
        return np.array([lookup[self.items[i].label] for i in self._index(name)], dtype=np.int64)

    def groups(self, name: str | None = None) -> np.ndarray:
        """Group ids (strings) of part ``name`` (None: every item)."""
        return np.array([self.items[i].group for i in self._index(name)], dtype=object)

    def paths(self, name: str | None = None) -> list[Path]:
        """Image paths of part ``name`` (None: every item)."""
        return [self.items[i].path for i in self._index(name)]

    def shared_groups(self, a: str, b: str) -> set[str]:
        """Groups with images in both parts ``a`` and ``b`` (empty for a grouped split)."""
        return set(self.groups(a)) & set(self.groups(b))

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per class in each part: ``{part: {class: n}}``."""
        out = {}
        for name in self.parts:
            labels = self.labels(name)
            out[name] = {c: int((labels == k).sum()) for k, c in enumerate(self.classes)}
        return out

    def summary(self) -> dict[str, Any]:
        """A JSON-ready description (for a model card or a results file)."""
        return {
            "task": self.task,
            "dataset": self.source.describe() if self.source is not None else None,
            "classes": list(self.classes),
            "split": self.split,
            "seed": self.seed,
            "images": {p: int(len(v)) for p, v in self.parts.items()},
            "groups": {p: int(len(set(self.groups(p)))) for p in self.parts},
            "per_class": self.counts(),
            "notes": list(self.notes),
        }


# ----------------------------------------------------------------------------- helpers


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _thumbnail_bank(paths: Sequence[Path], size: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Per image: its z-scored thumbnail (N, D) and those of its 8 flips/quarter turns (N, 8, D)."""
    import cv2


    base = np.zeros((len(paths), size * size), np.float32)
    views = np.zeros((len(paths), 8, size * size), np.float32)
    for i, path in enumerate(paths):
        thumb = cv2.resize(read_image_gray(path), (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
        k = 0
        for turns in range(4):
            rotated = np.rot90(thumb, turns)
            for flip in (False, True):
                v = (rotated[:, ::-1] if flip else rotated).ravel()
                views[i, k] = (v - v.mean()) / (v.std() + 1e-6)
                k += 1
        base[i] = views[i, 0]
    return base, views


def duplicate_sets(paths: Sequence[str | Path], threshold: float = DUPLICATE_THRESHOLD, size: int = 24) -> list[list[int]]:
    """Sets (index lists, each of two or more) of images that hold the same picture.

    Two images are the same picture when the correlation of their ``size`` x ``size`` grey
    thumbnails, maximised over the 8 flips and quarter turns, is at least ``threshold``. This
    finds re-uploads and plainly flipped copies; Roboflow's rotated or sheared augmentations of a
    picture are not found (they share a file-name source, which the loaders group already).
    """
    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        return []
    base, views = _thumbnail_bank(paths, size)
    n, dim = base.shape
    flat = views.reshape(n * 8, dim)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    chunk = 256
    for start in range(0, n, chunk):
        corr = (base[start : start + chunk] @ flat.T / dim).reshape(-1, n, 8).max(axis=2)
        rows, cols = np.nonzero(corr >= threshold)
        for r, c in zip(rows + start, cols):
            if r < c:
                a, b = find(int(r)), find(int(c))
                if a != b:
                    parent[max(a, b)] = min(a, b)
    sets: dict[int, list[int]] = {}
    for i in range(n):
        sets.setdefault(find(i), []).append(i)
    return [members for members in sets.values() if len(members) > 1]


def _merge_duplicates(paths: list[Path], labels: list[str], groups: list[str], sources: list[str],
                      notes: list[str]) -> tuple[list[str], set[str]]:
    """Join the groups of images that are one picture; return (new groups, sources to drop).

    A picture found under names that give different labels is dropped (all copies of those
    sources): its label is unknown.
    """
    parent: dict[str, str] = {g: g for g in groups}

    def find(g: str) -> str:
        while parent[g] != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    drop: set[str] = set()
    joined, conflicting = [], []
    for members in duplicate_sets(paths):
        names = sorted({sources[i] for i in members})
        if len(names) < 2:
            continue  # copies of one source: grouped already
        member_labels = sorted({labels[i] for i in members})
        if len(member_labels) > 1:
            drop.update(names)
            conflicting.append(f"{' = '.join(names)} ({' vs '.join(member_labels)})")
            continue
        roots = sorted({find(groups[i]) for i in members})
        for r in roots[1:]:
            parent[r] = roots[0]
        joined.append(" = ".join(names))
    if joined:
        notes.append(f"{_plural(len(joined), 'picture')} found under two or more names, each name's images kept in one "
                     f"group: {'; '.join(joined)}.")
    if conflicting:
        notes.append(f"{_plural(len(conflicting), 'picture')} found under names with different labels, dropped (all "
                     f"copies): {'; '.join(conflicting)}.")
    members: dict[str, list[str]] = {}
    for g in parent:
        members.setdefault(find(g), []).append(g)
    name_of = {root: "+".join(sorted(ms)) for root, ms in members.items()}
    return [name_of[find(g)] for g in groups], drop


def _resolve(task: str, data_dir, data_source: str):

    name = DATASET_OF[task]
    if task == "anomaly16" and data_source in ("auto", "real"):
        folder = data_root(data_dir) / name
        if not holds_dataset(name, folder):
            raise FetalInputError(
                folder, "the 16-class Fetal Brain Abnormalities Ultrasound export (Roboflow hritwik-trivedi-gkgrv, a folder "
                "per class under train/ valid/ test/) is absent: task anomaly16 cannot run on real data (see "
                f"data_manifests/{name}.yaml for how to get it; --data-source phantom runs the task on its phantom)")
    if data_source not in SOURCES:
        raise FetalInputError(None, f"unknown data source {data_source!r}; use one of {', '.join(SOURCES)}")
    return resolve(name, data_dir, data_source)


# ----------------------------------------------------------------------------- per data set


def _planes(root: Path, task: str, notes: list[str]):

    records = fetal_planes.load(root)
    kept, items = [], []
    if task == "planes":
        dropped = Counter(r.plane for r in records if r.plane not in PLANE_CLASSES)
        for r in records:
            if r.plane in PLANE_CLASSES:
                kept.append(r)
                items.append(UsItem(r.image_path, r.plane, r.group))
        classes = [c for c in PLANE_CLASSES if any(i.label == c for i in items)]
        absent = [c for c in PLANE_CLASSES if c not in classes]
        if dropped:
            notes.append("Dropped " + ", ".join(f"{_plural(n, 'image')} of plane {p!r}" for p, n in sorted(dropped.items()))
                         + f" (not one of the four planes {', '.join(PLANE_CLASSES)}).")
    else:
        brain = [r for r in records if r.plane == "Fetal brain"]
        dropped = Counter(r.brain_plane for r in brain if r.brain_plane not in BRAIN_PLANE_CLASSES)
        for r in brain:
            if r.brain_plane in BRAIN_PLANE_CLASSES:
                kept.append(r)
                items.append(UsItem(r.image_path, r.brain_plane, r.group))
        classes = [c for c in BRAIN_PLANE_CLASSES if any(i.label == c for i in items)]
        absent = [c for c in BRAIN_PLANE_CLASSES if c not in classes]
        if dropped:
            notes.append("Dropped " + ", ".join(f"{_plural(n, 'brain image')} whose Brain_plane is {p!r}"
                                                for p, n in sorted(dropped.items())) + ".")
    if absent:
        notes.append(f"No image of {', '.join(absent)} in this copy of the data: the task has {len(classes)} classes.")
    return classes, items, kept


def _anomaly(root: Path, task: str, min_type_groups: int, merge_duplicates: bool, notes: list[str]):

    records = au.load(root)
    unlabelled = [r for r in records if r.label is None]
    if unlabelled:
        notes.append(f"Dropped {_plural(len(unlabelled), 'image')} whose label file has no box (no label).")
    records = [r for r in records if r.label is not None]
    if task == "anomaly":
        raw = [r.label for r in records]
    else:  # anomaly_type: the file-name type; a normal-labelled image is "normal" whatever its name
        raw = [NORMAL if r.label == NORMAL else r.anomaly_type for r in records]
        mismatch = sum(1 for r in records if r.label != NORMAL and r.anomaly_type == NORMAL)
        if mismatch:
            notes.append(f"{_plural(mismatch, 'image')} labelled abnormal with a normal-plane name kept as type {OTHER!r}.")
            raw = [OTHER if (r.label != NORMAL and t == NORMAL) else t for r, t in zip(records, raw)]
        named = sum(1 for r in records if r.label == NORMAL and r.anomaly_type != NORMAL)
        if named:
            notes.append(f"{_plural(named, 'image')} labelled normal under an anomaly's file name kept as {NORMAL!r} (the label wins).")
    groups = [r.group for r in records]
    sources = [r.source_image for r in records]
    if merge_duplicates:
        groups, drop = _merge_duplicates([r.image_path for r in records], raw, groups, sources, notes)
        keep = [i for i, s in enumerate(sources) if s not in drop]
        records, raw, groups = [records[i] for i in keep], [raw[i] for i in keep], [groups[i] for i in keep]
    if task == "anomaly":
        classes = [c for c in ("normal", "abnormal") if c in raw]
        extra = sorted(set(raw) - set(classes))
        classes += extra
        labels = raw
    else:
        type_groups: dict[str, set[str]] = {}
        for t, g in zip(raw, groups):
            type_groups.setdefault(t, set()).add(g)
        rare = sorted(t for t, gs in type_groups.items() if t not in (NORMAL, OTHER) and len(gs) < min_type_groups)
        kept_types = sorted(t for t in type_groups if t not in (NORMAL, OTHER) and t not in rare)
        labels = [OTHER if t in rare else t for t in raw]
        if rare:
            notes.append(f"Anomaly types with fewer than {min_type_groups} source images merged into {OTHER!r}: "
                         + ", ".join(f"{t} ({len(type_groups[t])})" for t in rare) + ".")
        classes = ([NORMAL] if NORMAL in labels else []) + kept_types + ([OTHER] if OTHER in labels else [])
    items = [UsItem(r.image_path, lab, g) for r, lab, g in zip(records, labels, groups)]
    return classes, items, records


def _anomaly16(root: Path, merge_duplicates: bool, notes: list[str]):

    records = a16.load(root)
    labels = [r.label for r in records]
    groups = [r.group for r in records]
    if merge_duplicates:
        groups, drop = _merge_duplicates([r.image_path for r in records], labels, groups, [r.source_image for r in records], notes)
        keep = [i for i, r in enumerate(records) if r.source_image not in drop]
        records, labels, groups = [records[i] for i in keep], [labels[i] for i in keep], [groups[i] for i in keep]
    classes = a16.class_names(records)
    missing = [c for c in a16.CLASSES if c not in classes]
    if missing:
        notes.append(f"No image of {', '.join(missing)}: the task has {len(classes)} classes.")
    items = [UsItem(r.image_path, lab, g) for r, lab, g in zip(records, labels, groups)]
    return classes, items, records


# ----------------------------------------------------------------------------- the task


def load_task(
    task: str,
    data_dir: str | Path | None = None,
    data_source: str = "auto",
    seed: int = 0,
    split: str = "grouped",
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    min_type_groups: int = 8,
    merge_duplicates: bool | None = None,
) -> TaskData:
    """Read, label and split one task.

    Args:
        task: one of :data:`TASKS`.
        data_dir: data root (None or "": ``$FETAL_DATA_DIR``, else ``./data``).
        data_source: ``"auto"`` (real data if present, else the phantom; for ``anomaly16`` no
            phantom unless asked), ``"real"`` or ``"phantom"``.
        seed: seed of the split.
        split: ``"grouped"`` (by patient / source image, stratified by class) or ``"image"``
            (images split ignoring their groups, stratified by class): ONLY for the chapter's
            leak demonstration, which measures how much it flatters a model.
        fractions: (train, val, test) or (train, test) fractions of the groups (of the images
            for ``split="image"``).
        min_type_groups: ``anomaly_type``: an anomaly type with fewer source images (groups)
            than this is merged into ``"other"``.
        merge_duplicates: compare the images and keep one picture found under several names in
            one group (None: for the anomaly-set tasks, whose groups are source images; the
            FETAL_PLANES_DB tasks group whole patients).

    Raises:
        FetalInputError: unknown task, split or data source; a data set absent with
            ``data_source="real"``; ``anomaly16`` without its export (unless ``"phantom"``);
            too few groups to split.
    """

    if task not in TASKS:
        raise FetalInputError(None, f"unknown task {task!r}; known: {', '.join(TASKS)}")
    if split not in SPLITS:
        raise FetalInputError(None, f"unknown split {split!r}; use grouped (by patient/source image) or image (leak demonstration only)")
    source = _resolve(task, data_dir, data_source)
    if merge_duplicates is None:
        merge_duplicates = task in ("anomaly", "anomaly_type", "anomaly16")
    notes: list[str] = []
    if task in ("planes", "brain_planes"):
        classes, items, records = _planes(source.root, task, notes)
    elif task in ("anomaly", "anomaly_type"):
        classes, items, records = _anomaly(source.root, task, int(min_type_groups), bool(merge_duplicates), notes)
    else:
        classes, items, records = _anomaly16(source.root, bool(merge_duplicates), notes)
    if len(classes) < 2:
        raise FetalInputError(source.root, f"task {task}: {len(classes)} class(es) found ({', '.join(classes) or 'none'}); "
                              "a classifier needs at least 2")
    labels = [i.label for i in items]
    groups = [i.group for i in items]
    split_units = groups if split == "grouped" else [str(k) for k in range(len(items))]
    try:
        parts = grouped_split(split_units, fractions, seed, stratify=labels)
    except ValueError as exc:
        raise FetalInputError(source.root, f"task {task}: cannot split {_plural(len(set(split_units)), 'group')} ({exc})") from None
    if split == "grouped":
        check_disjoint(groups, parts)
    else:
        part_groups = [{groups[i] for i in idx} for idx in parts.values()]
        shared = {g for g in set(groups) if sum(g in pg for pg in part_groups) > 1}
        notes.append(f"IMAGE-LEVEL split (leak demonstration only): {len(shared)} of {len(set(groups))} groups have "
                     "images in more than one part.")
    notes.extend(_missing_class_notes(classes, labels, parts))
    return TaskData(task, list(classes), items, parts, source, split, notes, list(records), int(seed))


def _missing_class_notes(classes: Sequence[str], labels: Sequence[str], parts: dict[str, np.ndarray]) -> list[str]:
    """A note per part that holds no image of some class."""
    notes = []
    for name, idx in parts.items():
        present = {labels[i] for i in idx}
        missing = [c for c in classes if c not in present]
        if missing:
            notes.append(f"No {', '.join(missing)} image in {name} (too few groups of {'that class' if len(missing) == 1 else 'those classes'}).")
    return notes


def align_split(target: TaskData, source: TaskData) -> TaskData:
    """``target`` split as ``source`` splits the same groups: each of its images goes to the part that holds its
    group (patient) in ``source``, so that a network trained on ``source``'s training part never saw a ``target``
    validation or test patient (the ``task_split_from`` knob; :mod:`fetal_lib.us.transfer`).

    Raises:
        FetalInputError: a group of ``target`` that ``source`` does not hold, or a split that is not grouped.
    """
    import dataclasses

    if target.split != "grouped" or source.split != "grouped":
        raise FetalInputError(None, f"task {target.task}: only grouped splits can be aligned")
    where = {source.items[i].group: part for part, idx in source.parts.items() for i in idx}
    missing = sorted({it.group for it in target.items} - set(where))
    if missing:
        raise FetalInputError(source.source.root if source.source is not None else None,
                              f"task {target.task} cannot be split as task {source.task}: {_plural(len(missing), 'group')} of it "
                              f"({', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}) are not in {source.task}")
    parts = {p: np.array([i for i, it in enumerate(target.items) if where[it.group] == p], dtype=np.int64) for p in source.parts}
    check_disjoint([it.group for it in target.items], parts)
    labels = [it.label for it in target.items]
    stale = set(_missing_class_notes(target.classes, labels, target.parts))  # the notes of the split replaced
    kept = [n for n in target.notes if n not in stale]
    notes = kept + [f"Split as task {source.task} splits the same patients (task_split_from), so that a {source.task} network "
                    f"never trained on a {target.task} validation or test patient."] + _missing_class_notes(target.classes, labels, parts)
    return dataclasses.replace(target, parts=parts, notes=notes)
