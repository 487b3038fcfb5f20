"""Chapters executed on another machine (a GPU, say) rendered into this machine's book.

``fetal book --no-build`` on the other machine leaves, for each chapter it ran, the executed notebook
``book/chapters/NN_slug.ipynb`` and its results ``$FETAL_BUILD_DIR/results/<id>/`` (``metrics.json``,
figures, tables). Copied into one folder::

    DIR/chapters/NN_slug.ipynb
    DIR/results/<id>/metrics.json ...

:func:`import_executed` puts them in place here (``fetal book --import-executed DIR``, then the usual
site build). Each page already says where it ran: the chapter's box at its top names the machine (its
GPU first), the profile and every ``--set`` value; the import says whether the run's ``fetal_lib``
(its recorded SHA-256) and chapter source are this checkout's. The chapter's reuse key is removed, so the next
plain ``fetal book`` runs it again on this machine with this machine's profile, saying why.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from fetal_lib.book.cache import key_path
from fetal_lib.book.chapters import REGISTRY, find_source
from fetal_lib.book.reader import source_copy, write_source_copy
from fetal_lib.errors import FetalInputError
from fetal_lib.provenance import describe_machine, package_sha256


@dataclass(frozen=True)
class ImportedChapter:
    """One chapter put in place: its id, the notebook's name, and where it ran (profile, machine, --set)."""

    id: str
    notebook: str
    profile: str
    machine: str
    overrides: dict
    code: str = ""  # :func:`code_match`: whether the run's fetal_lib and chapter source are this checkout's

    def line(self) -> str:
        """``hc18: 01_hc18_unet.ipynb, profile full on NVIDIA H200 GPU; ... [set epochs=2]; fetal_lib and the
        chapter's source as in this checkout``."""
        sets = " ".join(f"{k}={v}" for k, v in self.overrides.items())
        return (f"{self.id}: {self.notebook}, profile {self.profile} on {self.machine}" + (f" [set {sets}]" if sets else "")
                + (f"; {self.code}" if self.code else ""))


def code_match(prov: dict, ran_source: Path | None, own_source: Path | None, local_sha256: str) -> str:
    """Whether a chapter executed elsewhere ran this checkout's code: its recorded ``fetal_lib_sha256``
    against ``local_sha256``, and the chapter source it ran from (``ran_source``) against ours."""
    recorded = prov.get("fetal_lib_sha256")
    package = ("fetal_lib not recorded (an older run)" if not recorded else
               "fetal_lib as in this checkout" if recorded == local_sha256 else "fetal_lib DIFFERS from this checkout")
    if ran_source is None or own_source is None or not ran_source.is_file() or not own_source.is_file():
        return f"{package}; chapter source not compared"
    same = ran_source.read_bytes() == own_source.read_bytes()
    return f"{package}; chapter source {'as in this checkout' if same else 'DIFFERS from this checkout'}"


def _chapter_of(notebook: Path) -> str:
    number = notebook.name[:2]
    for cid, (n, _title) in REGISTRY.items():
        if number.isdigit() and int(number) == n:
            return cid
    raise FetalInputError(notebook, f"not a chapter notebook (NN_slug.ipynb with NN one of "
                                    f"{', '.join(f'{n:02d}' for n, _ in REGISTRY.values())})")


def _metrics(folder: Path) -> dict:
    path = folder / "metrics.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FetalInputError(path, "missing: every executed chapter comes with its results folder and metrics.json") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise FetalInputError(path, f"not readable JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise FetalInputError(path, "not a metrics document (a JSON object)")
    return doc


def import_executed(source: Path, book_dir: Path, results_root: Path) -> list[ImportedChapter]:
    """Put every executed chapter under ``source`` in place in ``book_dir`` and ``results_root``.

    Everything is checked before anything is replaced: a chapter notebook without its results folder,
    an unreadable ``metrics.json`` or an empty ``source`` is one error naming the file, and nothing here
    changes.

    Raises:
        FetalInputError: ``source`` holds no executed chapter, or one of them is incomplete.
    """
    source = Path(source)
    notebooks = sorted((source / "chapters").glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise FetalInputError(source, "no executed chapter here (expected chapters/NN_slug.ipynb and results/<id>/)")
    found = []
    for notebook in notebooks:
        cid = _chapter_of(notebook)
        folder = source / "results" / cid
        doc = _metrics(folder)
        prov = doc.get("provenance") or {}
        found.append((notebook, folder, ImportedChapter(cid, notebook.name, str(doc.get("profile") or prov.get("profile") or "?"),
                                                        describe_machine(prov.get("machine") or {}),
                                                        dict(prov.get("overrides") or {}),
                                                        code_match(prov, notebook.with_suffix(".py"), find_source(cid), package_sha256()))))
    chapters_dir = Path(book_dir) / "chapters"
    chapters_dir.mkdir(parents=True, exist_ok=True)
    for notebook, folder, chapter in found:
        final = Path(results_root) / chapter.id
        staging = final.with_name(final.name + ".importing")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(folder, staging)
        for old in chapters_dir.glob(f"{notebook.name[:3]}*.ipynb"):
            old.unlink()  # a renamed notebook of the same chapter
        target = chapters_dir / notebook.name
        key_path(target).unlink(missing_ok=True)  # the next plain `fetal book` runs it here again
        tmp = target.with_suffix(".ipynb.importing")
        shutil.copyfile(notebook, tmp)
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
        tmp.replace(target)
        copied = notebook.with_suffix(".py")
        if copied.is_file():  # the source it ran from, offered beside the notebook
            shutil.copyfile(copied, source_copy(target))
        elif (own := find_source(chapter.id)) is not None:
            write_source_copy(own, target)
    return [chapter for _, _, chapter in found]
