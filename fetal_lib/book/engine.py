"""A papermill engine that reports a chapter's progress as it runs.

It is papermill's own nbclient engine, with two hooks: the execution manager's ``cell_start``
and ``cell_complete`` tell a :class:`~fetal_lib.book.progress.ChapterProgress` which cell runs,
and the kernel's stdout (papermill's ``stdout_file``) feeds it the lines the cell prints.
The executed notebook is exactly what the plain engine writes.

What the kernel process writes to its own stderr, outside any cell's output (TensorFlow's C++
start-up lines "oneDNN custom operations are on", "All log messages before absl::InitializeLog()"),
goes to a log file instead of the console when the caller gives one (``kernel_stderr``).

It also asks the kernel manager for CurveZMQ transport encryption where pyzmq and the
kernelspec support it (``transport_encryption = "auto"``): the kernel's messages are then
encrypted, and ipykernel no longer warns that it runs "over TCP without encryption".
"""

from __future__ import annotations

from typing import Any

from papermill.engines import NBClientEngine, papermill_engines

ENGINE_NAME = "fetal-progress"


class _StdoutSink:
    """The file-like papermill writes the kernel's stdout to: hands each chunk to the progress."""

    def __init__(self, progress: Any):
        self.progress = progress

    def write(self, text: str) -> int:
        self.progress.output(text)
        return len(text)

    def flush(self) -> None:
        pass


class ProgressEngine(NBClientEngine):
    """``NBClientEngine`` plus two keywords: ``progress`` (a ChapterProgress, or None) and
    ``kernel_stderr`` (an open file that takes what the kernel process writes to its own stderr
    outside any cell's output: TensorFlow's C++ start-up lines; None leaves it on the console)."""

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, log_output: bool = False, stdout_file: Any = None,
                                 stderr_file: Any = None, start_timeout: int = 60, execution_timeout: int | None = None,
                                 progress: Any = None, kernel_stderr: Any = None, **kwargs: Any) -> Any:
        from papermill.clientwrap import PapermillNotebookClient
        from papermill.log import logger
        from papermill.utils import merge_kwargs, remove_args

        if progress is not None:
            start, complete = nb_man.cell_start, nb_man.cell_complete

            def cell_start(cell: Any, cell_index: int | None = None, **kw: Any) -> Any:
                progress.cell_start(cell_index or 0)
                return start(cell, cell_index, **kw)

            def cell_complete(cell: Any, cell_index: int | None = None, **kw: Any) -> Any:
                progress.cell_done(cell_index or 0)
                return complete(cell, cell_index, **kw)

            nb_man.cell_start, nb_man.cell_complete = cell_start, cell_complete
            progress.begin(nb_man.nb.cells)
            stdout_file = _StdoutSink(progress)
        # as NBClientEngine.execute_managed_notebook (papermill 2.7), plus the kernel's stderr and config
        kwargs = remove_args(["input_path"], **kwargs)
        safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
        safe_kwargs.setdefault("config", kernel_config())
        final_kwargs = merge_kwargs(
            safe_kwargs,
            timeout=execution_timeout if execution_timeout else kwargs.get("timeout"),
            startup_timeout=start_timeout,
            kernel_name=kernel_name,
            log=logger,
            log_output=log_output,
            stdout_file=stdout_file,
            stderr_file=stderr_file,
        )
        launch = {"stderr": kernel_stderr} if kernel_stderr is not None else {}
        return PapermillNotebookClient(nb_man, **final_kwargs).execute(**launch)


def kernel_config() -> Any:
    """Traitlets config: CurveZMQ encryption of the kernel's sockets when pyzmq has Curve, else none."""
    import zmq
    from traitlets.config import Config

    config = Config()
    if zmq.has("curve"):
        config.KernelManager.transport_encryption = "auto"
    return config


papermill_engines.register(ENGINE_NAME, ProgressEngine)
