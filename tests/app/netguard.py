"""A network guard for the app's server process: any attempt to resolve or reach a host other than
this machine is recorded (one line in a log file) and refused.

Run as ``python netguard.py LOG -- <fetal arguments>``: the guard is installed, then ``fetal`` runs
in the same process, so every socket the app (Gradio, uvicorn, httpx, huggingface_hub) opens goes
through it. :func:`install` also guards the test process itself (the load test's client).
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import threading
from pathlib import Path
from typing import Callable

_lock = threading.Lock()


def is_local(host) -> bool:
    """True for this machine: loopback addresses, ``localhost``, and the unspecified address (binding)."""
    if host in (None, "", "localhost", b"localhost"):
        return True
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    try:
        address = ipaddress.ip_address(str(host).split("%")[0])
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def install(log: str | Path) -> Callable[[], None]:
    """Guard this process; returns a function that removes the guard."""
    log = Path(log)
    real_connect, real_connect_ex, real_getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def record(line: str) -> None:
        with _lock, open(log, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def refuse(what: str, target) -> None:
        record(f"{what} {target!r}")
        raise OSError(f"netguard: {what} {target!r} refused (only this machine may be reached)")

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not is_local(address[0]):
            refuse("connect", address)
        return real_connect(self, address)

    def connect_ex(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not is_local(address[0]):
            refuse("connect", address)
        return real_connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if not is_local(host):
            refuse("resolve", host)
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo

    def uninstall() -> None:
        socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = real_connect, real_connect_ex, real_getaddrinfo

    return uninstall


def main(argv: list[str]) -> int:
    log, sep, *fetal_args = argv
    if sep != "--":
        raise SystemExit("usage: python netguard.py LOG -- <fetal arguments>")
    Path(log).touch()
    install(log)
    from fetal_lib.cli import main as fetal

    return fetal(fetal_args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
