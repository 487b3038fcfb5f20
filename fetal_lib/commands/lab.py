"""``fetal lab``: JupyterLab on 127.0.0.1 with the chapters as notebooks (``make lab``).

    fetal lab [--port N] [--data-dir DIR] [--browser]

Runs until interrupted (Ctrl-C); exit status is JupyterLab's (2 for bad input).
"""

from __future__ import annotations

import argparse
import subprocess

from fetal_lib.config.options import add_data_dir


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "lab",
        help="JupyterLab on 127.0.0.1 with notebooks/*.py open as notebooks (jupytext)",
        description="Start JupyterLab on 127.0.0.1 over the repository: notebooks/*.py open as notebooks (jupytext, "
        "paired with build/lab/*.ipynb, which keeps the outputs), kernels run this environment's Python in the "
        "repository root. Stop it with Ctrl-C.",
        epilog="A chapter's parameters cell chooses its data: profile = \"smoke\" and data_source = \"phantom\" "
        "(the default) run on phantoms; profile = \"cpu\" and data_source = \"auto\" or \"real\" on the data under "
        "--data-dir ($FETAL_DATA_DIR, else ./data).",
    )
    parser.add_argument("--port", type=int, default=8888, metavar="N", help="port on 127.0.0.1 (default: 8888)")
    add_data_dir(parser, "; passed to the kernels as $FETAL_DATA_DIR")
    parser.add_argument("--browser", action="store_true", help="open a web browser (default: print the URL only)")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from fetal_lib.errors import FetalInputError  # deferred: loaded when the command runs
    from fetal_lib.lab.server import lab_command, lab_environment, write_kernelspec  # deferred: loaded when the command runs

    if not 0 < args.port < 65536:
        raise FetalInputError(None, f"--port: {args.port} is not a port number (1-65535)")
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        raise FetalInputError(None, "JupyterLab is not installed in this environment (pip install -e '.' installs it)") from None
    write_kernelspec()
    try:
        return subprocess.call(lab_command(args.port, args.browser), env=lab_environment(args.data_dir))
    except KeyboardInterrupt:
        return 0
