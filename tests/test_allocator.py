"""keep_freed_memory: sets glibc's thresholds where there is a glibc, and is safe to call again."""

from __future__ import annotations

import platform

import pytest

from fetal_lib import allocator


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_keep_freed_memory_sets_thresholds_once():
    assert allocator.keep_freed_memory() is True
    assert allocator.keep_freed_memory() is True  # idempotent


def test_keep_freed_memory_without_mallopt(monkeypatch):
    """On a C library without mallopt (macOS, musl builds) it reports False instead of failing."""
    import ctypes

    class NoMallopt:
        def __init__(self, *args, **kwargs):
            pass

    monkeypatch.setattr(allocator, "_done", False)
    monkeypatch.setattr(ctypes, "CDLL", NoMallopt)
    assert allocator.keep_freed_memory() is False
