"""A registry of architectures by name, one per framework (see ``networks.keras`` and ``networks.torch``).

Each entry names the factory (``"module:function"``, imported on first use so that listing
names imports neither framework), a one-line description, and a small example (options and
input shape, channels as the framework orders them) that the shared network tests build.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Entry:
    """One registered architecture."""

    name: str
    factory: str  # "package.module:function" returning an unbuilt-or-built model
    description: str
    example_options: dict[str, Any] = field(default_factory=dict)
    example_input_shape: tuple[int, ...] = ()  # without the batch axis
    example_output_shape: tuple[int, ...] = ()  # without the batch axis
    example_parameters: int = 0  # all weights of the example, recorded when registered: a change means the architecture changed

    def load_factory(self) -> Callable[..., Any]:
        module, function = self.factory.split(":")
        return getattr(importlib.import_module(module), function)


class Registry:
    """Architectures of one framework by name."""

    def __init__(self, framework: str, entries: list[Entry]):
        self.framework = framework
        self._entries = {e.name: e for e in entries}

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def entry(self, name: str) -> Entry:
        """The entry of ``name``; ValueError listing the known names otherwise."""
        try:
            return self._entries[name]
        except KeyError:
            raise ValueError(f"no {self.framework} network named {name!r}; known: {', '.join(self.names())}") from None

    def create(self, name: str, /, **options: Any) -> Any:
        """Build the network ``name`` with ``options`` (the factory's keyword arguments)."""
        factory = self.entry(name).load_factory()
        try:
            return factory(**options)
        except TypeError as err:
            raise ValueError(f"{self.framework} network {name!r} does not take these options {sorted(options)}: {err}") from None
