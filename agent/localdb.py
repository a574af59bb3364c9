"""What the agent's own SQLite files (the outbox, store.db) share: made private before SQLite
makes them, IMMEDIATE write transactions, and a write repeated once when the disk reserve
gave back room. Opening store.db is its owner's (agent/storedb/)."""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final, ParamSpec, TypeVar

from agent.diskfull import is_disk_full, release_reserve

P = ParamSpec("P")
T = TypeVar("T")


FILE_MODE: Final = 0o600  # events, the consent key, names, pickup codes: the agent's only
DIR_MODE: Final = 0o700  # a state directory the agent makes itself (systemd makes its own)


def create_private(path: Path) -> None:
    """Create the database file `path` (and its directory) readable by this user only, before
    SQLite does: SQLite would make it 0644 under a usual umask, and it gives the -wal and -shm
    it creates later the mode of the database file. An existing file loses what others could
    do with it; its group's access (systemd's UMask=0027 gives one) is left as it is."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        with contextlib.suppress(OSError):  # not ours to change: SQLite says if it cannot open
            mode = stat.S_IMODE(os.stat(path).st_mode)
            if mode & 0o007:
                os.chmod(path, mode & ~0o007)
        return
    os.close(fd)  # an empty file is an empty SQLite database


@contextlib.contextmanager
def immediate(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction that takes the lock up front (a DEFERRED one would fail with
    "database is locked" when another process writes at the same time) and rolls back on
    any error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def retry_when_full(fn: Callable[P, T]) -> Callable[P, T]:
    """A write that meets a full disk releases the agent's disk reserve (see
    agent/outbox/reserve.py) and is made once more: a check-in or a roll-up must not fail for
    want of the space the reserve holds for exactly that. (SQLite may already have rolled the
    transaction back, so the whole write is repeated, not just its commit.)"""

    @functools.wraps(fn)
    def write(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except sqlite3.OperationalError as exc:
            if not is_disk_full(exc):
                raise
            release_reserve()  # False if the outbox gave it up already: room may be back
        return fn(*args, **kwargs)

    return write
