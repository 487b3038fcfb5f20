"""Start the app: an app-owned temporary folder, Gradio kept offline, models loaded once, the page
served on the chosen host and port until Ctrl-C or SIGTERM, then the temporary folder removed."""

from __future__ import annotations

import signal
import sys
import time
from typing import Callable

from fetal_lib.app.settings import AppSettings, offline_environment
from fetal_lib.errors import FetalInputError
from fetal_lib.app.blocks import build_app, load_all
from fetal_lib.app.uploads import UploadCounter
from fetal_lib.app.uploads import UploadFolder


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _interrupt(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
    raise KeyboardInterrupt


def launch_options(settings: AppSettings, uploads=None) -> dict:
    """The keyword arguments of ``Blocks.launch``: never a share link, no telemetry, no monitoring
    endpoint, no run history, no server-side rendering, the upload size limit, and (given the
    app's :class:`~fetal_lib.app.uploads.UploadFolder`) the middleware that counts uploads."""
    app_kwargs = {}
    if uploads is not None:
        from starlette.middleware import Middleware


        app_kwargs["middleware"] = [Middleware(UploadCounter, uploads=uploads)]
    return {"server_name": settings.host, "server_port": int(settings.port), "share": False, "app_kwargs": app_kwargs,
            "max_file_size": settings.max_upload_bytes, "prevent_thread_lock": True, "quiet": True, "inbrowser": False,
            "show_error": False, "footer_links": [], "enable_monitoring": False, "run_history": False, "ssr_mode": False,
            "mcp_server": False, "strict_cors": True}


def serve(settings: AppSettings, log: Callable[[str], None] = _stderr) -> int:
    """Run the app until interrupted; returns the exit status (0).

    Raises:
        FetalInputError: bad options, or the port is taken.
    """

    settings.check()
    if not settings.is_loopback:
        log(f"fetal: warning: serving on {settings.host}: anyone who can reach this machine on port {settings.port} "
            "can upload images and use the models")
    for stale in UploadFolder.remove_stale():
        log(f"fetal app: removed {stale}, left by an app that did not stop cleanly")
    uploads = UploadFolder.create()
    offline_environment(uploads.root)  # before gradio is imported
    previous = signal.signal(signal.SIGTERM, _interrupt)
    demo = None
    try:

        slots = load_all(settings.models, log, settings.device)
        demo = build_app(slots, uploads, settings.models)
        try:
            demo.launch(**launch_options(settings, uploads))
        except OSError as exc:
            raise FetalInputError(None, f"cannot serve on {settings.host}:{settings.port} ({exc}); choose another --port") from None
        log(f"fetal app: serving http://{settings.host}:{settings.port} (uploads in {uploads.root}, deleted after use; "
            "Ctrl-C stops)")
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        log("fetal app: stopped")
    finally:
        if demo is not None:
            demo.close()
        uploads.remove()
        signal.signal(signal.SIGTERM, previous)
    return 0
