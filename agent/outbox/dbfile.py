"""The outbox's SQLite file as a file: how it is opened, checked, moved aside when damaged,
and how its errors read (a full disk, damage).

A reader that meets damage tells the writer of its process (`report_corruption`), which owns
the file and moves it aside; the CLI has no writer and says so.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from agent.diskfull import is_disk_full as is_disk_full  # the outbox's readers and writer ask here
from agent.errors import ConfigError
from agent.localdb import create_private

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000
_CORRUPT_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
# the open-time integrity check reads every page (a 360 MiB outbox, 1M events: 7.3 s here
# from a cold cache, through SQLite only); past this it is cut short so that a huge file
# on a slow card cannot keep the agent from starting (damage in the unread part is met and
# quarantined when read)
CHECK_BUDGET_S: Final = 15.0

# Below the headroom free on its disk the outbox stops growing its file: new events take the
# pages of dropped ones (oldest lowest-priority first). A checkpoint must be able to move the
# write-ahead log's pages into the file, and the log must be able to grow to its usual size;
# without room for both neither a drop nor an acknowledged delete could ever be written again
# (measured: a tmpfs filled to 0 by the outbox could not delete one row). The log is
# checkpointed every wal_pages_for(headroom) pages, a third of the headroom, so that both fit.
HEADROOM_BYTES: Final = 6 * 1024 * 1024  # the most kept: room for a 4 MiB log (see below)
# The least kept: on a full disk acknowledged rows are deleted a few hundred at a time
# (store.ACK_CHUNK), each chunk checkpointed into place (256 rows of 2 KiB: ~150 pages;
# 2,000 rows did not fit in 900 KiB).
HEADROOM_MIN: Final = 1024 * 1024
# A small outbox never has more than its own size in the log, so it needs less: 3 x max_bytes
# (the file is ~1.5 x the bytes counted, and the log may hold all of it once); a small
# dedicated partition keeps a quarter of itself, not 6 MiB of 8 (which took no event at all).
HEADROOM_PER_MAX_BYTES: Final = 3
HEADROOM_FS_DIVISOR: Final = 4
# The page size of a new file. Every commit writes each page it changed to the log, and the
# kernel writes the 4 KiB blocks those bytes touch: an event committed on its own (its row,
# its two index entries, the row-number and counters pages) wrote ~6 blocks with 4 KiB pages,
# ~2 with 1 KiB ones (measured: 24 KiB -> 9 KiB per event; 2 KiB pages: 14 KiB). A typical
# event (~330 bytes) still fits a page; the file is 1.3-1.5x the bytes counted either way.
# A file made before keeps its page size (in WAL mode SQLite cannot change it in place).
PAGE_SIZE: Final = 1024
# The log's size in bytes at a checkpoint, at most (SQLite's default, 1000 pages of 4 KiB)
# and at least (64 pages of 4 KiB): the same for any page size.
LOG_BYTES_MAX: Final = 1000 * 4096
LOG_BYTES_MIN: Final = 64 * 4096


def headroom_for(max_bytes: int, fs_bytes: int) -> int:
    """Free bytes the outbox keeps on its disk for its write-ahead log."""
    return max(HEADROOM_MIN, min(HEADROOM_BYTES, HEADROOM_PER_MAX_BYTES * max_bytes,
                                 fs_bytes // HEADROOM_FS_DIVISOR))


def log_bytes_for(headroom: int) -> int:
    """The write-ahead log's size at a checkpoint for `headroom`: a third of it, so that the
    log's growth and the checkpoint's both fit."""
    return max(LOG_BYTES_MIN, min(LOG_BYTES_MAX, headroom // 3))


def wal_pages_for(headroom: int, page_size: int = PAGE_SIZE) -> int:
    """log_bytes_for(headroom) in pages of the file (wal_autocheckpoint counts pages)."""
    return log_bytes_for(headroom) // page_size


def is_corruption(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and (code & 0xFF) in _CORRUPT_CODES:
        return True
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


SQLITE_MAGIC: Final = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database


def foreign_file(path: Path) -> bool:
    """Whether `path` holds something that is not an SQLite database: a non-empty regular
    file whose first 16 bytes are neither SQLite's header nor zeros (a database whose first
    page was wiped). Such a file is someone else's (a config file named by mistake): it is
    never moved aside, overwritten or opened as a database."""
    try:
        with open(path, "rb") as fh:
            if not os.path.isfile(path):
                return False  # a directory or a device: SQLite says what is wrong with it
            head = fh.read(len(SQLITE_MAGIC))
    except OSError:
        return False  # missing or unreadable: opening it says so
    return bool(head) and head != SQLITE_MAGIC and head.strip(b"\x00") != b""


def refuse_foreign(path: Path, key: str) -> None:
    """Raise (exit 2, one line) when `path` holds something that is not a database of ours."""
    if foreign_file(path):
        raise ConfigError(f"{path} is not an o2o-edge database (it holds something else); "
                          f"point {key} at a new file")


def disk_free(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the disk holding `path`."""
    try:
        st = os.statvfs(path)
    except OSError:
        return 1 << 62  # cannot tell: SQLite's own errors will say when it is full
    return st.f_bavail * st.f_frsize


def disk_size(path: Path) -> int:
    """The size of the filesystem holding `path` (what a small partition can ever hold)."""
    try:
        st = os.statvfs(path)
    except OSError:
        return 1 << 62  # cannot tell: the outbox keeps its full headroom
    return st.f_blocks * st.f_frsize


# --- corruption met by a reader: the writer, who owns the file, moves it aside ------------

_on_corruption: dict[str, Callable[[int, str], None]] = {}


def watch_corruption(path: Path, handler: Callable[[int, str], None] | None) -> None:
    """`handler(inode, why)` is told of damage a reader of `path` met (None: nobody)."""
    key = os.path.realpath(path)
    if handler is None:
        _on_corruption.pop(key, None)
    else:
        _on_corruption[key] = handler


def report_corruption(path: Path, inode: int, why: str) -> bool:
    """Tell the writer of `path` (in this process) that the file with `inode` is damaged;
    False when no writer here owns it (the CLI, the agent stopped)."""
    handler = _on_corruption.get(os.path.realpath(path))
    if handler is None:
        return False
    handler(inode, why)
    return True


def inode_of(path: Path) -> int:
    try:
        return os.stat(path).st_ino
    except OSError:
        return -1


def connect(path: Path) -> sqlite3.Connection:
    """The writer's connection (read-only tools use agent.outbox.reader.connect_readonly)."""
    create_private(path)
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # both must precede the first table: drained space can be handed back, and a new
        # file writes less per commit (an existing one keeps its page size)
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise sqlite3.OperationalError(f"cannot switch {path} to WAL (got {mode})")
        conn.execute("PRAGMA synchronous = FULL")
    except BaseException:
        conn.close()  # on every path: Python 3.13 warns of a connection left to the GC
        raise
    return conn


def integrity_problem(conn: sqlite3.Connection, budget_s: float = CHECK_BUDGET_S) -> str | None:
    """What `PRAGMA quick_check` finds wrong (None: nothing), within `budget_s`.

    Only through SQLite: the file is never opened (and closed) beside the connection. Closing
    any descriptor of a file drops every POSIX lock the process holds on it, SQLite's
    included; another process then takes itself for the last one, checkpoints and resets the
    write-ahead log under this one, and what this process commits afterwards is lost (seen:
    three writer processes, one's committed events gone, after a read-ahead of the file)."""
    deadline = time.monotonic() + budget_s
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    try:
        verdict = str(conn.execute("PRAGMA quick_check(1)").fetchone()[0])
    except sqlite3.OperationalError as exc:
        if "interrupted" not in str(exc):
            raise
        log.warning("the outbox's integrity check was cut short after %.0f s; the rest of the "
                    "file is checked as it is read", budget_s)
        return None
    finally:
        conn.set_progress_handler(None, 0)
    return None if verdict == "ok" else verdict


def quarantine(path: Path, clock: float | None = None, key: str = "[outbox] path") -> Path:
    """Move a damaged database (and its WAL/SHM) aside with a timestamp; return the new name.
    Only a file that is a database (or a wiped one) is moved: anything else raises."""
    refuse_foreign(path, key)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(clock))
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    i = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{i}")
        i += 1
    os.replace(path, target)
    for suffix in ("-wal", "-shm"):
        side = Path(str(path) + suffix)
        if side.exists():
            os.replace(side, Path(str(target) + suffix))
    return target
