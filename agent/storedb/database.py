"""The one owner of the store database file in a process.

Every part of the agent that keeps rows in store.db (check-in, the store link's cache,
consent, KPIs) goes through the StoreDatabase of that file: one connection, opened once,
shared behind one lock by the event loop and the worker jobs. Once, because closing any
descriptor of an SQLite file drops every POSIX lock the process holds on it, SQLite's
included (the outbox lost committed events that way); one lock, because the connection is
used from several threads and each use is short (milliseconds: the tables are small).

Opening the same file twice in one process gives the same owner (counted: the last
`close()` closes it), so parts built separately — the CLI's, the tests' — still share it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar, Final

from agent.localdb import create_private, immediate
from agent.storedb.filecheck import is_damage, mark_damaged
from agent.storedb.migrations import MIGRATIONS, Migration, migrate

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS: Final = 5_000  # another process (a CLI import) may hold the write lock


class StoreDatabase:
    """Use `StoreDatabase.open(path)`; repositories take it (or a path) in their
    constructors and use `reading()`, `writing()` and `erasing()`."""

    _owners: ClassVar[dict[tuple[int, int], StoreDatabase]] = {}
    _owners_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: Path, key: tuple[int, int], conn: sqlite3.Connection) -> None:
        self.path = path
        self._key = key
        self._conn = conn
        # re-entrant: a repository method that calls another of the same owner joins its
        # transaction instead of waiting for itself
        self._lock = threading.RLock()
        self._refs = 1
        # damage met while running (the start-time check cannot see pages that go bad
        # later): the agent's health then asks for a restart, which moves the file aside
        self.damage = ""

    @classmethod
    def open(cls, path: Path, migrations: Sequence[Migration] = MIGRATIONS) -> StoreDatabase:
        """The owner of the file at `path`, opened and migrated (to `migrations`) if this
        process has none yet, else the one it has. StoreDbTooNew (a ConfigError) for a file
        of a newer o2o-edge."""
        with cls._owners_lock:
            # before any connection: os.open of an existing file fails (O_EXCL) without
            # making a descriptor, so an owner already open is not disturbed
            create_private(path)
            st = os.stat(path)
            key = (st.st_dev, st.st_ino)
            owner = cls._owners.get(key)
            if owner is not None:
                owner._refs += 1
                return owner
            conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            try:
                # the timeout first: switching to WAL waits for a lock another process holds
                conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                conn.execute("PRAGMA journal_mode=WAL")
                migrate(conn, path, migrations)
            except BaseException:
                conn.close()  # not left to the garbage collector (Python 3.13 warns of it)
                raise
            owner = cls._owners[key] = cls(path, key, conn)
            return owner

    @property
    def closed(self) -> bool:
        return self._refs == 0

    def close(self) -> None:
        """Give back this reference; the last one closes the connection."""
        with self._owners_lock:
            if self._refs == 0:
                return
            self._refs -= 1
            if self._refs:
                return
            if self._owners.get(self._key) is self:
                del self._owners[self._key]
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def _noting_damage(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if is_damage(exc) and not self.damage:
                self.damage = str(exc)[:200]
                mark_damaged(self.path, self.damage)
                log.error("the store database %s is damaged (%s): restart the agent; it "
                          "moves the file aside and starts a fresh one", self.path, exc)
            raise

    @contextlib.contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection for reads, under the lock."""
        with self._lock, self._noting_damage():
            yield self._conn

    @contextlib.contextmanager
    def writing(self) -> Iterator[sqlite3.Connection]:
        """The connection in an IMMEDIATE transaction (committed at the end, rolled back on
        any error), under the lock; inside another write, part of it."""
        with self._lock, self._noting_damage():
            if self._conn.in_transaction:
                yield self._conn
                return
            with immediate(self._conn) as conn:
                yield conn

    @contextlib.contextmanager
    def erasing(self) -> Iterator[sqlite3.Connection]:
        """A write whose deleted rows leave no trace in the file: pages zeroed on delete,
        and the write-ahead log emptied into the file afterwards."""
        with self._lock, self._noting_damage():
            if self._conn.in_transaction:  # part of a write already under way
                with self.writing() as conn:
                    yield conn
                return
            # the connection is every part's: what the erasure sets, it puts back
            before = int(self._conn.execute("PRAGMA secure_delete").fetchone()[0])
            self._conn.execute("PRAGMA secure_delete = ON")
            try:
                with self.writing() as conn:
                    yield conn
            finally:
                self._conn.execute(f"PRAGMA secure_delete = {before}")
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


class Repository:
    """A table group's repository on the owner: given the StoreDatabase, it borrows it (who
    made it closes it); given a path, it opens (shares) the file's owner and its close()
    gives it back."""

    def __init__(self, store: Path | StoreDatabase) -> None:
        self._store, self._owns = attach(store)

    @property
    def damage(self) -> str:
        """Damage the store database met while running ("" if none)."""
        return self._store.damage

    def close(self) -> None:
        if self._owns:
            self._owns = False
            self._store.close()


def attach(store: Path | StoreDatabase) -> tuple[StoreDatabase, bool]:
    """The owner a repository uses, and whether the repository opened it (then its own
    close() gives it back); a StoreDatabase handed in is borrowed, closed by who made it."""
    if isinstance(store, StoreDatabase):
        return store, False
    return StoreDatabase.open(store), True
