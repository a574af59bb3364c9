"""A disk reserve: a file of really allocated blocks kept beside the outbox.

When the disk fills up (a runaway log, a full SD card), SQLite cannot grow the outbox or its
write-ahead log and every new event would be refused. The writer then releases the reserve
first: the space it held takes the next events — and the store database's check-ins and
roll-ups — while staff are told the disk is full. The reserve is taken again once the disk
has room for it twice over, so one full disk never costs the next one its reserve.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from agent.diskfull import install_reserve
from agent.diskfull import release_reserve as release_reserve  # store.py's, the tests'

log = logging.getLogger(__name__)


class DiskReserve:
    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        self.releases = 0

    def install(self) -> DiskReserve:
        """Make this the reserve `release_reserve()` gives back (one per process)."""
        install_reserve(self)
        return self

    @property
    def held(self) -> bool:
        try:
            return self.path.stat().st_size >= self.size
        except OSError:
            return False

    def take(self) -> bool:
        """Allocate the reserve if it is not held and the disk can spare it twice over."""
        if self.size <= 0 or self.held:
            return self.size > 0
        try:
            st = os.statvfs(self.path.parent)
        except OSError:
            return False
        if st.f_bavail * st.f_frsize < 2 * self.size:
            return False
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.size)  # real blocks, not a sparse file
            finally:
                os.close(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                self.path.unlink()
            log.warning("could not take the %d MiB disk reserve %s: %s", self.size >> 20,
                        self.path, exc)
            return False
        return True

    def release(self) -> bool:
        """Give the reserved space back to the disk; False if there was none to give."""
        if not self.path.exists():
            return False
        try:
            self.path.unlink()
        except OSError:
            return False
        self.releases += 1
        log.warning("the disk is full: released the %d MiB reserve beside the outbox so "
                    "events keep being kept; free disk space on the device", self.size >> 20)
        return True
