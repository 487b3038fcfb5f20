"""Execute one chapter: jupytext (``notebooks/NN_slug.py``) -> papermill -> executed ``.ipynb``.

Chapters run with the working directory set to the repository root (so ``./data`` is the
repository's ``data/`` folder), ``MPLBACKEND=Agg`` (figures are shown in the book as the
PNG files :class:`fetal_lib.results.ChapterRun` saved) and the Jupyter kernel
``python3`` of this Python (the venv's own kernelspec; ``JUPYTER_PATH`` is pointed at it so
a user-level kernelspec cannot substitute another interpreter).

The executed notebook replaces the target only when every cell succeeded: a failing
chapter leaves the previous executed notebook untouched, keeps its partial output under
``<build>/failed/`` for inspection, and raises :class:`ChapterExecutionError` naming the
chapter and the failing cell.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from fetal_lib.book.chapters import Chapter
from fetal_lib.book.reader import tag_for_reader, write_source_copy
from fetal_lib.training.progress import ENV_VAR as EPOCH_LOG

if TYPE_CHECKING:
    from fetal_lib.book.progress import ChapterProgress
from fetal_lib.errors import FetalInputError
from fetal_lib.io import atomic_path
from fetal_lib.paths import REPO_ROOT

KERNEL_NAME = "python3"
STANDARD_PARAMETERS = ("profile", "data_dir", "data_source", "results_dir", "seed")


class ChapterExecutionError(RuntimeError):
    """A cell of a chapter raised; ``str()`` names the chapter, the cell and the error."""

    def __init__(self, chapter: str, cell: str, error: str, partial: Path | None):
        self.chapter, self.cell, self.error, self.partial = chapter, cell, error, partial
        where = f"; partial notebook: {partial}" if partial else ""
        super().__init__(f"chapter {chapter!r} failed in {cell}: {error}{where}")


@dataclass(frozen=True)
class ExecutedChapter:
    """Outcome of a successful execution."""

    chapter: str
    notebook: Path
    seconds: float


def read_source(source: Path) -> Any:
    """The notebook of a jupytext percent ``.py`` file (FetalInputError if unreadable)."""
    import jupytext

    try:
        return jupytext.read(source, fmt="py:percent")
    except Exception as exc:  # jupytext raises assorted errors on bad input
        raise FetalInputError(source, f"cannot read as a jupytext percent notebook: {exc}") from None


def parameter_names(nb: Any) -> set[str] | None:
    """Names assigned in the cell tagged ``parameters`` (None when there is no such cell)."""
    import ast

    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            names: set[str] = set()
            for node in ast.parse(cell.source).body:
                targets = node.targets if isinstance(node, ast.Assign) else (
                    [node.target] if isinstance(node, ast.AnnAssign) else []
                )
                names.update(t.id for t in targets if isinstance(t, ast.Name))
            return names
    return None


def parameter_defaults(nb: Any) -> dict[str, Any]:
    """The literal values assigned in the ``parameters`` cell (``{}`` when there is none)."""
    import ast

    out: dict[str, Any] = {}
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            for node in ast.parse(cell.source).body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    try:
                        out[node.targets[0].id] = ast.literal_eval(node.value)
                    except ValueError:
                        continue  # not a literal: left out
            break
    return out


def check_parameters(chapter: Chapter, nb: Any, params: Mapping[str, Any], section_keys: set[str]) -> list[str]:
    """Validate the chapter's ``parameters`` cell against what the pipeline injects.

    Raises FetalInputError when the cell is missing or a profile knob of this chapter's own
    section is not a parameter (a typo there would silently do nothing). Returns warnings
    for standard parameters the chapter does not declare.
    """
    names = parameter_names(nb)
    if names is None:
        raise FetalInputError(chapter.source, 'no cell tagged "parameters" (# %% tags=["parameters"])')
    unknown = sorted(k for k in section_keys if k not in names)
    if unknown:
        raise FetalInputError(
            chapter.source,
            f"profile section {chapter.id!r} sets {', '.join(unknown)}, which the parameters cell does not define",
        )
    return [f"{chapter.id}: standard parameter {p!r} not in the parameters cell" for p in STANDARD_PARAMETERS if p not in names and p in params]


@contextlib.contextmanager
def kernel_environment(extra: Mapping[str, str] | None = None) -> Iterator[None]:
    """Environment the kernel inherits: Agg backend, this venv's kernelspec first, quiet TensorFlow."""
    prefix_kernels = Path(sys.prefix) / "share" / "jupyter"
    env = {
        "MPLBACKEND": "Agg",
        "JUPYTER_PATH": os.pathsep.join([str(prefix_kernels), os.environ.get("JUPYTER_PATH", "")]).rstrip(os.pathsep),
        "PYTHONHASHSEED": "0",
        "TQDM_DISABLE": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),  # TensorFlow C++ info/warning logs off (its pre-absl start-up lines still print)
        **(extra or {}),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def ensure_kernel() -> Path:
    """Make sure kernel ``python3`` resolves to this interpreter; install it under ``sys.prefix`` if not.

    Returns the kernelspec's folder.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    with kernel_environment():
        try:
            spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
            argv0 = spec.argv[0] if spec.argv else ""
            ok = argv0 in ("python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}") or (
                Path(argv0).resolve() == Path(sys.executable).resolve()
            )
            if ok:
                return Path(spec.resource_dir)
        except NoSuchKernel:
            pass
        from ipykernel.kernelspec import install

        return Path(install(prefix=sys.prefix, kernel_name=KERNEL_NAME))


def _failed_cell(exc: Any) -> str:
    first = next((ln for ln in str(getattr(exc, "source", "")).splitlines() if ln.strip()), "")
    return f"cell In [{getattr(exc, 'exec_count', '?')}] (`{first[:80]}`)"


def execute_chapter(
    chapter: Chapter,
    params: Mapping[str, Any],
    target: Path,
    section_keys: set[str] | None = None,
    failed_dir: Path | None = None,
    cwd: Path = REPO_ROOT,
    progress: "ChapterProgress | None" = None,
    timeout_s: int | None = None,
    env: Mapping[str, str] | None = None,
    kernel_log: Path | None = None,
) -> ExecutedChapter:
    """Execute ``chapter`` with ``params`` and write the executed notebook to ``target`` atomically.

    ``progress`` is told which cell runs and what it prints (see :mod:`fetal_lib.book.engine`);
    ``env`` is added to the kernel's environment (e.g. the ``--set`` overrides); ``kernel_log``
    takes what the kernel process writes to its stderr outside the cells (else the console).
    """
    import nbformat
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    from fetal_lib.book.engine import ENGINE_NAME  # deferred: imports papermill

    t0 = time.perf_counter()
    nb = read_source(chapter.source)
    for warning in check_parameters(chapter, nb, params, set(section_keys or ())):
        print(f"fetal book: warning: {warning}", file=sys.stderr)
    nb.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata.setdefault("language_info", {"name": "python"})
    ensure_kernel()

    with tempfile.TemporaryDirectory(prefix=f"fetal-{chapter.id}-") as tmp:
        src_ipynb = Path(tmp) / f"{chapter.stem}.ipynb"
        out_ipynb = Path(tmp) / f"{chapter.stem}.out.ipynb"
        nbformat.write(nb, src_ipynb)
        epoch_log = Path(tmp) / "epochs.log"
        if progress is not None:
            progress.epoch_log = epoch_log
        log_file = None
        if kernel_log is not None:
            Path(kernel_log).parent.mkdir(parents=True, exist_ok=True)
            log_file = open(kernel_log, "w", encoding="utf-8")
        try:
            with kernel_environment({EPOCH_LOG: str(epoch_log), **(env or {})}):
                pm.execute_notebook(
                    str(src_ipynb),
                    str(out_ipynb),
                    parameters=dict(params),
                    engine_name=ENGINE_NAME,
                    kernel_name=KERNEL_NAME,
                    language="python",
                    progress_bar=False,
                    cwd=str(cwd),
                    execution_timeout=timeout_s,
                    progress=progress,
                    kernel_stderr=log_file,
                )
        except PapermillExecutionError as exc:
            partial = None
            if failed_dir is not None and out_ipynb.exists():
                failed_dir.mkdir(parents=True, exist_ok=True)
                partial = failed_dir / chapter.executed_name
                shutil.copyfile(out_ipynb, partial)
            raise ChapterExecutionError(chapter.id, _failed_cell(exc), f"{exc.ename}: {exc.evalue}", partial) from None
        except Exception as exc:  # kernel died, timeout ...
            where = f" (the kernel's own messages: {kernel_log})" if kernel_log is not None else ""
            raise ChapterExecutionError(chapter.id, "kernel", f"{type(exc).__name__}: {exc}{where}", None) from None
        finally:
            if log_file is not None:
                log_file.close()

        executed = nbformat.read(out_ipynb, as_version=4)
        meta = executed.metadata.setdefault("papermill", {})
        meta["input_path"] = str(chapter.source.relative_to(REPO_ROOT) if chapter.source.is_relative_to(REPO_ROOT) else chapter.source)
        meta["output_path"] = str(target.name)
        executed.metadata["fetal"] = {"chapter": chapter.id, "profile": params.get("profile")}

        tag_for_reader(executed)  # parameters and set-up folded, papermill's injected cell off the page
        with atomic_path(target) as tmp_target:
            nbformat.write(executed, tmp_target)
        write_source_copy(chapter.source, target)  # the .py the site offers beside the .ipynb
    return ExecutedChapter(chapter.id, target, time.perf_counter() - t0)
