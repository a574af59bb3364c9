"""The store database file (`[kiosk] store_db`: orders, appointments, loyalty, consent, KPIs,
the store link's cached documents) checked when the agent starts, as the outbox is: a damaged
file is moved aside (`store.db.corrupt-<time>`, its -wal and -shm with it) and the agent goes on
with a fresh one, instead of stopping (under systemd: a restart loop).

Damage met later, by a query of the running agent (pages that went bad after the check), is
marked beside the file (`store.db.damaged`) and made the agent's health problem: the watchdog
has systemd restart it, and the start moves the marked file aside whatever its check says (a
quick check does not compare indexes with their tables, so it may find nothing).

What a fresh file lacks comes back from upstream: the store link's documents are retained on
the broker and sent again; orders imported by hand must be imported again. Only the agent,
which owns the file, checks and moves it — never the CLI, which may run beside it.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from agent.contracts.events import AGENT_STORE_DB_QUARANTINED, Quarantined
from agent.envelope import PRIORITY_CRITICAL, PendingEvent, make_pending
from agent.outbox.dbfile import integrity_problem, is_corruption, quarantine, refuse_foreign
from agent.statepaths import MARK_SUFFIX as MARK_SUFFIX
from agent.statepaths import damage_mark
from agent.storedb.migrations import MIGRATIONS, version_of

log = logging.getLogger(__name__)

# store.db is small (a few MiB of orders and documents): its check takes milliseconds; the
# bound keeps a huge or slow file from holding the start up for long
CHECK_BUDGET_S: Final = 10.0
BUSY_TIMEOUT_MS: Final = 5_000  # a CLI import may hold the write lock for a moment
QUARANTINED_EVENT: Final = AGENT_STORE_DB_QUARANTINED  # the notice's type, for its readers
KEY: Final = "[kiosk] store_db"  # the setting named when the file is refused
NEWER_SCHEMA: Final = "written by a newer o2o-edge"  # how read_only_check's answer begins


@dataclass(frozen=True, slots=True)
class MovedAside:
    """A damaged store database moved aside at start."""

    path: Path
    moved_to: Path
    reason: str

    def notice(self, now: float | None = None) -> PendingEvent:
        """The upstream event that says so."""
        data: Quarantined = {"moved_to": str(self.moved_to), "reason": self.reason}
        return make_pending(AGENT_STORE_DB_QUARANTINED, data,
                            time.time() if now is None else now, PRIORITY_CRITICAL)


def is_damage(exc: BaseException) -> bool:
    """An SQLite error that says the file is damaged (not locked, full or unreachable)."""
    return is_corruption(exc)


def mark_damaged(path: Path, why: str) -> None:
    """Note damage met while running, for the next start to move the file aside."""
    with contextlib.suppress(OSError):  # a full disk: the start-time check is still there
        damage_mark(path).write_text(f"met while running: {why}\n")


def problem_of(path: Path) -> str | None:
    """What is wrong with the database at `path` (None: intact, empty or not there yet).
    Errors that are not damage (permissions, a directory) are raised: they are the
    operator's to fix and `run` names them."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    try:
        conn = sqlite3.connect(str(path), isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            return integrity_problem(conn, CHECK_BUDGET_S)
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        if not is_corruption(exc):
            raise
        return str(exc)


def check_at_start(path: Path) -> MovedAside | None:
    """Move a damaged store database aside so that a fresh one is made where it was. A file
    that is no database at all (the config file, named by mistake) is refused, never moved:
    ConfigError, which `run` says in one line (exit 2)."""
    refuse_foreign(path, KEY)
    mark = damage_mark(path)
    try:
        with mark.open("rb") as fh:
            why: str | None = fh.read(300).decode(errors="replace").strip() or "marked damaged"
    except OSError:
        why = None
    if why is None or not path.is_file():
        why = problem_of(path)
    if why is None:
        mark.unlink(missing_ok=True)
        return None
    moved = quarantine(path, key=KEY)
    mark.unlink(missing_ok=True)
    log.error("store database %s unusable (%s); moved to %s, starting a fresh one: documents "
              "retained upstream come back, orders imported by hand must be imported again",
              path, why, moved)
    return MovedAside(path, moved, why)


def read_only_check(path: Path) -> str:
    """"ok", or what is wrong with the file (damage, or a schema of a newer o2o-edge), read
    only: for `o2o-edge doctor`, which may run beside the agent."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            verdict = str(conn.execute("PRAGMA quick_check").fetchone()[0])
            found, latest = version_of(conn), MIGRATIONS[-1].version
            if verdict == "ok" and found > latest:
                return (f"{NEWER_SCHEMA} (schema version {found}; this one "
                        f"knows up to {latest})")
            return verdict
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return str(exc)
