"""Sub-commands of ``fetal``: one module each, exposing ``register(subparsers)``."""
