"""Sub-commands of ``fetal``: one module each, exposing ``register(subparsers)``."""

from __future__ import annotations

import importlib


class CommandImportError(RuntimeError):
    """A command's module failed to import: the command would silently vanish from ``fetal --help``."""


def _import_command(module_name: str, command: str):
    """Import a command's module, or raise :class:`CommandImportError` naming the command and the reason."""
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise CommandImportError(f"the '{command}' command could not be loaded ({module_name}): {type(exc).__name__}: {exc}") from exc
