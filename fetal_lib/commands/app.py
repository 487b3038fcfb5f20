"""``fetal app``: one local web page (Gradio) for every trained model of the compendium.

    fetal app [--host 127.0.0.1] [--port 7860] [--models-dir DIR] [--max-upload-mb 50] [--device auto|cpu|cuda]

One tab per task (head circumference, ultrasound classification, gestational age from MRI, brain
age); a tab whose model is missing says which command trains it. Gradio is started offline (no
analytics, no share link, no hub) and only on this machine unless ``--host`` says otherwise.
Gradio, TensorFlow and PyTorch are imported when the app starts, not by ``fetal --help``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fetal_lib.app.settings import DEFAULT_HOST, DEFAULT_MAX_UPLOAD_MB, DEFAULT_PORT
from fetal_lib.config.options import add_device


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("app", help="a local web page for every trained model: upload an image, get the answer",
                              description="Serve one web page (Gradio, offline) with a tab per task: head circumference "
                              "(chapters 1-2), ultrasound classification (chapter 3), gestational age from fetal brain MRI "
                              "(chapter 4), brain age (chapter 5). Each answer carries its model card's name, data and "
                              "date. Uploads are kept in a temporary folder only while they are processed. Ctrl-C stops.")
    p.add_argument("--host", default=DEFAULT_HOST, metavar="HOST",
                   help=f"address to listen on (default {DEFAULT_HOST}: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, metavar="PORT", help=f"TCP port (default {DEFAULT_PORT})")
    p.add_argument("--models-dir", type=Path, default=None, metavar="DIR",
                   help="folder of the trained models (default: build/models, where `make book` puts them)")
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB, metavar="MB",
                   help=f"largest upload accepted, in MiB (default {DEFAULT_MAX_UPLOAD_MB:g})")
    add_device(p, "auto; the PyTorch models (chapter 2's winner, brain age)")
    p.set_defaults(func=handle_app)


def handle_app(args: argparse.Namespace) -> int:
    from fetal_lib.app.server import serve  # deferred: loaded when the command runs
    from fetal_lib.app.settings import AppSettings  # deferred: loaded when the command runs

    return serve(AppSettings(args.host, args.port, args.models_dir, args.max_upload_mb, args.device or "auto"))
