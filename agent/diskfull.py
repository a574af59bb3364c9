"""A full disk, as every SQLite file of the agent meets it (the outbox, store.db): how SQLite
says so, and the process's one disk reserve that any writer may give back to get room.

It sits below both the outbox and agent/localdb.py, so that neither needs the other to handle
a full disk (the reserve itself is the outbox's: agent/outbox/reserve.py installs it here).
"""

from __future__ import annotations

from typing import Final, Protocol

SQLITE_FULL: Final = 13
# a full disk meets SQLite as SQLITE_FULL, or when the -shm cannot grow (the file opened
# after a clean stop) as SQLITE_IOERR_SHMSIZE (measured on a full tmpfs)
_FULL_IOERRS: Final = {(19 << 8) | 10}


def is_disk_full(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and ((code & 0xFF) == SQLITE_FULL or code in _FULL_IOERRS):
        return True
    return "database or disk is full" in str(exc).lower()


class Releasable(Protocol):
    def release(self) -> bool: ...


_installed: list[Releasable] = []


def install_reserve(reserve: Releasable) -> None:
    """Make `reserve` the one `release_reserve()` gives back (one per process)."""
    _installed[:] = [reserve]


def release_reserve() -> bool:
    """Release the process's disk reserve (the outbox writer's), for any writer in the agent
    that meets a full disk; False if there is none left to release."""
    return any(r.release() for r in _installed)
