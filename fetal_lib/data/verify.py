"""``fetal data verify``: check a data root against the manifests, read-only.

Per dataset: status ``complete`` / ``partial`` (n of N, the full release's count) / ``missing``,
and every problem as one line ``<path>: <problem>``: a checksum that differs from the
release's, an image or NIfTI that does not decode (truncated PNG/JPEG/.nii.gz), a NIfTI of the
wrong dimension or with non-positive spacing (mm), a malformed YOLO label or data.yaml, a CSV
without a required column, with malformed rows or non-positive pixel sizes, or a file without
its CSV row. Notes (not errors): checksums that differ from a copy we recorded ("known"), a
CSV whose checksum differs from the release's (the copies here keep only the rows of the files
present), CSV rows naming absent files, files the manifest does not describe.

Nothing is written to disk. TensorFlow and PyTorch are never imported.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from fetal_lib.data import manifests as _manifests
from fetal_lib.errors import FetalInputError
from fetal_lib.io import file_sha256
from fetal_lib.paths import data_root
from fetal_lib.data.imaging import check_image
from fetal_lib.data.imaging import read_nifti

COMPLETE, PARTIAL, MISSING = "complete", "partial", "missing"
PHANTOM_MARKER = "PHANTOM.txt"  # written at the top of every synthetic phantom (fetal_lib.data.phantoms)
_PHANTOM_FILES = {PHANTOM_MARKER, "PHANTOM_truth.csv"}


@dataclass
class GroupCount:
    """Files of one manifest group: how many are present, how many the full release has."""

    name: str
    label: str
    present: int
    expected: int | None


@dataclass
class DatasetReport:
    """The verification of one dataset."""

    name: str
    root: str
    status: str
    n_present: int
    n_expected: int | None
    summary_label: str
    layout: str | None = None
    phantom: bool = False
    groups: list[GroupCount] = field(default_factory=list)
    csv: list[dict[str, Any]] = field(default_factory=list)
    n_checked: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def describe_status(self) -> str:
        if self.status == PARTIAL and self.n_expected:
            return f"partial ({self.n_present} of {self.n_expected} {self.summary_label})"
        if self.status == COMPLETE:
            return f"complete ({self.n_present} {self.summary_label})"
        return self.status


@dataclass
class VerifyReport:
    """The verification of a data root: one DatasetReport per dataset asked for."""

    data_root: str
    datasets: list[DatasetReport]
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no file is corrupt (a partial or missing dataset is not an error)."""
        return all(d.ok for d in self.datasets)

    @property
    def problems(self) -> list[str]:
        return [p for d in self.datasets for p in d.problems]

    def __getitem__(self, name: str) -> DatasetReport:
        for d in self.datasets:
            if d.name == name:
                return d
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "data_root": self.data_root,
            "ok": self.ok,
            "wall_s": round(self.wall_s, 3),
            "n_checked": sum(d.n_checked for d in self.datasets),
            "datasets": [dict(asdict(d), ok=d.ok, summary=d.describe_status()) for d in self.datasets],
        }

    def format_text(self) -> str:
        """A compact table, then one line per problem, then the notes."""
        rows = [("dataset", "status", "present (of the full release)", "details")]
        for d in self.datasets:
            files = f"{d.n_present} of {d.n_expected}" if d.n_expected else str(d.n_present)
            files += f" {d.summary_label}"
            details = ", ".join(
                f"{g.label} {g.present}/{g.expected}" if g.expected is not None else f"{g.label} {g.present}"
                for g in d.groups
            )
            if d.layout:
                details = f"[{d.layout} layout] {details}"
            rows.append((d.name, d.status + (" (phantom)" if d.phantom else ""), files, details))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = [f"data root: {self.data_root}"]
        lines += ["  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows]
        problems = self.problems
        if problems:
            lines.append(f"\n{len(problems)} problem(s):")
            lines += problems
        notes = [n for d in self.datasets for n in d.notes]
        if notes:
            lines.append(f"\nnotes ({len(notes)}, not errors):")
            lines += notes
        n_checked = sum(d.n_checked for d in self.datasets)
        verdict = "OK: no corrupt file" if self.ok else f"FAILED: {len(problems)} problem(s)"
        lines.append(f"\n{verdict}; checked {n_checked} files in {self.wall_s:.1f} s")
        return "\n".join(lines)


# ---------------------------------------------------------------------------- files


@dataclass
class _Job:
    dataset: str
    path: Path  # under the data root (symlinks not resolved, so messages name the user's path)
    rel: str
    kind: str  # image | nifti | yolo | yaml | text | csv
    spec: dict[str, Any]
    sha256: str | None
    sha_source: str


@dataclass
class _Result:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    known_mismatch: bool = False  # differs from a checksum recorded from a copy we hold (not the release)
    csv: dict[str, Any] | None = None
    referenced: dict[str, set[str]] = field(default_factory=dict)  # group -> rel paths named by a CSV row


def _list_files(root: Path) -> list[str]:
    """Every file under ``root`` (following symlinks) as a POSIX path relative to it, sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames.sort()
        rel_dir = Path(dirpath).relative_to(root)
        for fn in filenames:
            out.append((rel_dir / fn).as_posix())
    return sorted(out)


def _check_checksum(job: _Job, result: _Result) -> bool | None:
    """Compare the file's SHA-256 with the manifest's; return whether it matches (None: no checksum)."""
    if not job.sha256:
        return None
    try:
        got = file_sha256(job.path)
    except OSError as exc:
        result.problems.append(f"{job.path}: unreadable ({exc.strerror or exc})")
        return None
    same = got == job.sha256.lower()
    if job.kind == "csv":
        if job.sha_source == "release":
            result.notes.append(
                f"{job.path}: sha256 matches the release" if same else
                f"{job.path}: sha256 differs from the release's (checked by structure and content instead; "
                "the copies here keep only the rows of the files present)"
            )
        elif not same:
            result.known_mismatch = True
        return same
    if same:
        return same
    if job.sha_source == "release":
        result.problems.append(f"{job.path}: sha256 mismatch: {got[:16]}... but the release has {job.sha256[:16]}...")
    else:
        result.known_mismatch = True  # summarised once per dataset
    return same


def _check_image(job: _Job, result: _Result) -> None:

    try:
        rows, cols = check_image(job.path)
    except FetalInputError as err:
        result.problems.append(f"{job.path}: {err.problem}")
        return
    if rows <= 0 or cols <= 0:
        result.problems.append(f"{job.path}: image has no pixels ({rows}x{cols})")


def _check_nifti(job: _Job, result: _Result) -> None:

    try:
        image = read_nifti(job.path, ndim=job.spec.get("ndim", 3))
    except FetalInputError as err:
        result.problems.append(f"{job.path}: {err.problem}")
        return
    spacing = tuple(float(s) for s in image.GetSpacing())
    if not all(math.isfinite(s) and s > 0 for s in spacing):
        result.problems.append(f"{job.path}: non-positive voxel spacing {spacing} mm")


def _check_yolo(job: _Job, result: _Result) -> None:
    n_classes = int(job.spec.get("n_classes") or 0)
    try:
        text = job.path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        result.problems.append(f"{job.path}: unreadable YOLO label file ({exc})")
        return
    for i, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            cls, *vals = int(parts[0]), *map(float, parts[1:])
        except ValueError:
            result.problems.append(f"{job.path}: line {i} is not 'class x y w h' numbers: {line.strip()[:60]!r}")
            return
        if len(vals) < 4 or (len(vals) > 4 and len(vals) % 2):
            result.problems.append(f"{job.path}: line {i} has {len(parts)} fields; YOLO needs 5 (class cx cy w h)")
            return
        if n_classes and not 0 <= cls < n_classes:
            result.problems.append(f"{job.path}: line {i}: class {cls} outside 0..{n_classes - 1}")
            return
        if not all(-1e-6 <= v <= 1 + 1e-6 for v in vals):
            result.problems.append(f"{job.path}: line {i}: coordinates not normalised to [0, 1]")
            return


def _check_yaml(job: _Job, result: _Result) -> None:
    import yaml

    try:
        content = yaml.safe_load(job.path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        result.problems.append(f"{job.path}: not readable YAML ({str(exc).splitlines()[0]})")
        return
    missing = [k for k in job.spec.get("required_keys", []) if not isinstance(content, dict) or k not in content]
    if missing:
        result.problems.append(f"{job.path}: missing key(s) {', '.join(missing)}")


def _check_text(job: _Job, result: _Result) -> None:
    try:
        if job.path.stat().st_size == 0:
            result.problems.append(f"{job.path}: file is empty")
    except OSError as exc:
        result.problems.append(f"{job.path}: unreadable ({exc.strerror or exc})")


def _fmt_row(template: str, row: dict[str, str]) -> str | None:
    try:
        return template.format(**row)
    except (KeyError, IndexError, ValueError):
        return None


def _check_csv(job: _Job, result: _Result, check_row_files: bool, root: Path) -> None:
    spec = job.spec
    info: dict[str, Any] = {"path": spec["path"], "rows": 0, "expected_rows": spec.get("expected_rows")}
    result.csv = info
    try:
        raw = job.path.read_bytes()
    except OSError as exc:
        result.problems.append(f"{job.path}: unreadable ({exc.strerror or exc})")
        return
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
        result.notes.append(f"{job.path}: not UTF-8; read as Latin-1")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=spec["sep"])
    header = next(reader, None)
    if not header:
        result.problems.append(f"{job.path}: empty CSV (no header)")
        return
    names = [h.strip() for h in header]
    missing = [c for c in spec["columns"] if c not in names]
    if missing:
        sep = spec["sep"]
        result.problems.append(
            f"{job.path}: missing column(s) {', '.join(repr(c) for c in missing)} "
            f"(separator {sep!r}; header has: {', '.join(repr(n) for n in names)})"
        )
        return
    bad_shape: list[int] = []
    bad_value: list[str] = []
    n_bad_value = 0
    positive = spec.get("positive_columns") or []
    templates = spec.get("row_files") or []
    absent = 0
    referenced: set[str] = set()
    n_rows = 0
    for line_no, fields in enumerate(reader, start=2):
        if not fields or all(not f.strip() for f in fields):
            continue
        n_rows += 1
        if len(fields) != len(names):
            bad_shape.append(line_no)
            continue
        row = {k: v.strip() for k, v in zip(names, fields)}
        for col in positive:
            value = row[col]
            try:
                number = float(value)
                good = math.isfinite(number) and number > 0
            except ValueError:
                good = False
            if not good:
                n_bad_value += 1
                if len(bad_value) < 3:
                    bad_value.append(f"line {line_no}: {col} = {value!r}")
        if templates:
            rels = [_fmt_row(t, row) for t in templates]
            referenced.update(r for r in rels if r)
            if check_row_files and any(r is None or not (root / r).is_file() for r in rels):
                absent += 1
    info["rows"] = n_rows
    if bad_shape:
        shown = ", ".join(str(n) for n in bad_shape[:5])
        result.problems.append(
            f"{job.path}: {len(bad_shape)} row(s) with a field count other than the header's {len(names)} (lines {shown})"
        )
    if n_bad_value:
        result.problems.append(
            f"{job.path}: {n_bad_value} non-positive or non-numeric value(s) in {', '.join(positive)} "
            f"({'; '.join(bad_value)})"
        )
    if templates and check_row_files:
        info["rows_absent_files"] = absent
        if absent:
            result.notes.append(
                f"{job.path}: {absent} of {n_rows} rows name files absent here (a partial copy; not an error)"
            )
    for group in spec.get("covers") or []:
        result.referenced.setdefault(group, set()).update(referenced)


_CHECKERS = {"image": _check_image, "nifti": _check_nifti, "yolo": _check_yolo, "yaml": _check_yaml, "text": _check_text}


def _run_job(job: _Job, layout_row_check: bool, root: Path) -> _Result:
    result = _Result()
    same = _check_checksum(job, result)
    if job.kind == "csv":
        _check_csv(job, result, layout_row_check, root)
        if result.csv is not None:
            result.csv["sha256_matches"] = same
            result.csv["sha256_source"] = job.sha_source if same is not None else None
    else:
        _CHECKERS[job.kind](job, result)
    prefix = f"{job.path}: "
    own = [p for p in result.problems if p.startswith(prefix)]
    if own:  # a corrupt file: its notes (e.g. a checksum differing from a recorded copy) add nothing
        result.notes = [n for n in result.notes if not (n.startswith(prefix) and "sha256" in n)]
        result.known_mismatch = False
    if len(own) > 1:  # one line per file: join its problems
        result.problems = [p for p in result.problems if not p.startswith(prefix)]
        result.problems.insert(0, prefix + "; ".join(p[len(prefix):] for p in own))
    return result


# ---------------------------------------------------------------------------- datasets


def _plan_dataset(manifest: dict[str, Any], root: Path) -> tuple[DatasetReport, list[_Job], dict[str, list[str]]]:
    """Classify the files of one dataset; return its report skeleton, the jobs, files per group."""
    name = manifest["name"]
    groups = manifest["groups"]
    summary = manifest.get("summary_group")
    summary_names = [summary] if isinstance(summary, str) else list(summary or [])
    report = DatasetReport(name=name, root=str(root), status=MISSING, n_present=0, n_expected=None,
                           summary_label="files")
    by_group: dict[str, list[str]] = {g["name"]: [] for g in groups}
    if not root.is_dir():
        report.n_expected = _expected_total(groups, summary_names, None)
        report.summary_label = _summary_label(groups, summary_names, None)
        return report, [], by_group
    files = _list_files(root)
    csv_specs = {spec["path"]: spec for spec in manifest.get("csv") or []}
    report.phantom = (root / PHANTOM_MARKER).is_file()
    extras = set(manifest.get("extra_files") or []) | (_PHANTOM_FILES if report.phantom else set())
    patterns = [(g, re.compile(g["pattern"])) for g in groups]
    other: list[str] = []
    for rel in files:
        if rel in csv_specs or rel in extras:
            continue
        for group, rx in patterns:
            if rx.fullmatch(rel):
                by_group[group["name"]].append(rel)
                break
        else:
            other.append(rel)

    # Active layout: that of the first summary group with files (datasets with several layouts).
    chosen = next((s for s in summary_names if by_group.get(s)), summary_names[0] if summary_names else None)
    layout = next((g.get("layout") for g in groups if g["name"] == chosen), None)
    report.layout = layout
    active = [g for g in groups if g.get("layout") in (None, layout)]
    report.groups = [GroupCount(g["name"], g.get("label", g["name"]), len(by_group[g["name"]]), g.get("expected"))
                     for g in active]
    if chosen is not None:
        g = next(g for g in groups if g["name"] == chosen)
        report.n_present, report.n_expected = len(by_group[chosen]), g.get("expected")
        report.summary_label = g.get("label", chosen)
    else:
        report.n_present = sum(c.present for c in report.groups)
        report.n_expected = _expected_total(groups, [], layout)
        report.summary_label = "files"
    if not any(c.present for c in report.groups):
        report.status = MISSING
    elif all(c.expected is None or c.present >= c.expected for c in report.groups):
        report.status = COMPLETE
    else:
        report.status = PARTIAL
    for c in report.groups:
        if c.expected is not None and c.present > c.expected:
            report.notes.append(f"{root}: {c.present} {c.label}, more than the release's {c.expected}")
    if other:
        shown = ", ".join(other[:3]) + (" ..." if len(other) > 3 else "")
        report.notes.append(f"{root}: {len(other)} file(s) the manifest does not describe ({shown})")

    checks = manifest.get("checksums") or {}
    sums = checks.get("sha256") or {}
    source = checks.get("source", "none")
    if report.phantom:  # synthetic stand-in: never the release's bytes; decode and structure only
        sums = {}
        report.notes.append(f"{root}: a synthetic phantom ({PHANTOM_MARKER}): files decoded and CSVs checked, "
                            "checksums not compared")
    jobs: list[_Job] = []
    for group in active:
        for rel in by_group[group["name"]]:
            jobs.append(_Job(name, root / rel, rel, group["kind"], group, sums.get(rel), source))
    if report.status != MISSING:
        for rel, spec in csv_specs.items():
            if spec.get("layout") not in (None, layout):
                continue
            if (root / rel).is_file():
                jobs.append(_Job(name, root / rel, rel, "csv", spec, sums.get(rel), source))
            else:
                report.problems.append(f"{root / rel}: required CSV is missing")
    return report, jobs, by_group


def _expected_total(groups: list[dict], summary_names: list[str], layout: str | None) -> int | None:
    if summary_names:
        return next((g.get("expected") for g in groups if g["name"] == summary_names[0]), None)
    values = [g.get("expected") for g in groups if g.get("layout") in (None, layout)]
    return sum(values) if values and all(v is not None for v in values) else None


def _summary_label(groups: list[dict], summary_names: list[str], layout: str | None) -> str:
    if summary_names:
        return next((g.get("label", g["name"]) for g in groups if g["name"] == summary_names[0]), "files")
    return "files"


@contextlib.contextmanager
def _quiet_native_stderr():
    """Silence C libraries (libpng "bad adaptive filter value" ...) writing to file descriptor 2.

    Their failures become problem lines anyway. Yields a stream on the original stderr for
    the progress bar; restores descriptor 2 on exit. A no-op where fd 2 cannot be duplicated.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield sys.stderr
        return
    stream = os.fdopen(os.dup(saved), "w", encoding=getattr(sys.stderr, "encoding", None) or "utf-8",
                       errors="replace")
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield stream
    finally:
        stream.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
        stream.close()


def verify(
    data_dir: str | Path | None = None,
    names: Iterable[str] | None = None,
    *,
    progress: bool = False,
    manifest_dir: Path | None = None,
    workers: int | None = None,
) -> VerifyReport:
    """Verify datasets under the data root against their manifests (read-only).

    Args:
        data_dir: the data root (``--data-dir``; else ``$FETAL_DATA_DIR``; else ``./data``).
        names: dataset names (default: every manifest).
        progress: show a tqdm bar on stderr (only when stderr is a terminal).
        manifest_dir: where the YAML manifests are (default: ``data_manifests/``).
        workers: threads for hashing and decoding (default: CPU count, at most 4).

    Returns:
        VerifyReport; ``report.ok`` is False when any file is corrupt.

    Raises:
        FetalInputError: an unknown dataset name or a broken manifest.
    """
    start = time.perf_counter()
    root = data_root(data_dir)
    wanted = list(names) if names else _manifests.available_names(manifest_dir)
    manifests = [_manifests.load_manifest(n, manifest_dir) for n in dict.fromkeys(wanted)]
    reports: list[DatasetReport] = []
    plans = []
    for manifest in manifests:
        ds_root = root / manifest["dir"]
        report, jobs, by_group = _plan_dataset(manifest, ds_root)
        reports.append(report)
        plans.append((manifest, report, jobs, by_group, ds_root))
    all_jobs = [(job, plan) for plan in plans for job in plan[2]]
    n_workers = workers or max(1, min(4, os.cpu_count() or 1))

    def run(item):
        job, plan = item
        manifest, report, _, _, ds_root = plan
        row_check = job.kind == "csv" and job.spec.get("row_files_layout") in (None, report.layout)
        return _run_job(job, row_check, ds_root)

    from tqdm import tqdm

    show = progress and sys.stderr.isatty()
    results: list[_Result] = []
    with _quiet_native_stderr() as err_stream:
        bar = tqdm(total=len(all_jobs), desc="verify", unit="file", disable=not show, file=err_stream, leave=False)
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            for res in pool.map(run, all_jobs):
                results.append(res)
                bar.update(1)
        bar.close()

    referenced: dict[int, dict[str, set[str]]] = {}
    known_mismatch: dict[int, list[Path]] = {}
    for (job, plan), res in zip(all_jobs, results):
        report = plan[1]
        report.n_checked += 1
        if res.known_mismatch:
            known_mismatch.setdefault(id(report), []).append(job.path)
        report.problems.extend(res.problems)
        report.notes.extend(res.notes)
        if res.csv is not None:
            report.csv.append(res.csv)
        for group, rels in res.referenced.items():
            referenced.setdefault(id(report), {}).setdefault(group, set()).update(rels)
    for manifest, report, _, by_group, ds_root in plans:
        differ = known_mismatch.get(id(report), [])
        if differ:
            shown = ", ".join(str(p.relative_to(ds_root)) for p in differ[:3]) + (" ..." if len(differ) > 3 else "")
            report.notes.append(
                f"{ds_root}: {len(differ)} file(s) decode fine but differ from the checksums recorded from the "
                f"development copy (another release or export?): {shown}"
            )
        refs = referenced.get(id(report), {})
        for spec in manifest.get("csv") or []:
            for group in spec.get("covers") or []:
                if group not in refs or group not in {c.name for c in report.groups}:
                    continue
                for rel in by_group[group]:
                    if rel not in refs[group]:
                        csvs = ", ".join(s["path"] for s in manifest["csv"] if group in (s.get("covers") or []))
                        report.problems.append(f"{ds_root / rel}: no row in {csvs}")
                refs.pop(group)  # report each group once even if several CSVs cover it
    return VerifyReport(data_root=str(root), datasets=reports, wall_s=time.perf_counter() - start)
