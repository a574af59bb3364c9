"""A small private tmpfs to fill up: a full disk for the outbox's tests (root only)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_tmpfs(path: Path, mb: int) -> Iterator[Path]:
    """`path` as a tmpfs of `mb` MiB, unmounted on the way out; skipped when not root."""
    if os.geteuid() != 0:
        pytest.skip("a full disk is made with a private tmpfs, which needs root "
                    "(run the tests as root, as CI does)")
    path.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mb}m,mode=0755", "tmpfs",
                          str(path)], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def fill(directory: Path, name: str = "filler") -> Path:
    """Write a file in `directory` until its disk has not one byte left."""
    filler = directory / name
    with filler.open("ab", buffering=0) as fh:
        for chunk in (1 << 16, 1 << 12, 1):
            with contextlib.suppress(OSError):
                while True:
                    fh.write(b"\0" * chunk)
    return filler


def free_bytes(directory: Path) -> int:
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize
