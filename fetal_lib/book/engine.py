"""A papermill engine that reports a chapter's progress as it runs.

It is papermill's own nbclient engine, with two hooks: the execution manager's ``cell_start``
and ``cell_complete`` tell a :class:`~fetal_lib.book.progress.ChapterProgress` which cell runs,
and the kernel's stdout (papermill's ``stdout_file``) feeds it the lines the cell prints.
The executed notebook is exactly what the plain engine writes.

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
    """``NBClientEngine`` plus a ``progress`` keyword (a ChapterProgress, or None for none)."""

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, progress: Any = None, **kwargs: Any) -> Any:
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
            kwargs["stdout_file"] = _StdoutSink(progress)
        kwargs.setdefault("config", kernel_config())
        return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)


def kernel_config() -> Any:
    """Traitlets config: CurveZMQ encryption of the kernel's sockets when pyzmq has Curve, else none."""
    import zmq
    from traitlets.config import Config

    config = Config()
    if zmq.has("curve"):
        config.KernelManager.transport_encryption = "auto"
    return config


papermill_engines.register(ENGINE_NAME, ProgressEngine)
