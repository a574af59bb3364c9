"""Repeat visits: an opted-in app's visit (its exit, agent/kpi.py) is a repeat when the same
app visited before within the retention limit. Apps are known by the keyed hash of their
identifier only (the consent scheme's key, agent/consent.py), in the visitors table of the
store database (agent/storedb/ owns the file and its schema); the retention sweep drops an
app not seen within the limit, so "before" never reaches further back, and an erasure drops
the app's row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from agent.localdb import retry_when_full
from agent.storedb import Repository, StoreDatabase, subject_forms


class RepeatVisits(Repository):
    def __init__(self, store: Path | StoreDatabase, key_of: Callable[[str], str]) -> None:
        super().__init__(store)
        self.key_of = key_of

    @retry_when_full
    def seen(self, visits: Sequence[tuple[str, float]]) -> list[bool]:
        """(app identifier, when its visit ended) in order: whether each was a repeat."""
        out: list[bool] = []
        with self._store.writing() as db:
            for app, at in visits:
                key = self.key_of(app)
                row = db.execute("SELECT last FROM visitors WHERE subject = ?",
                                 (key,)).fetchone()
                out.append(row is not None)
                db.execute("INSERT INTO visitors VALUES (?, ?, ?, 1) ON CONFLICT(subject) DO "
                           "UPDATE SET last = max(last, excluded.last), visits = visits + 1",
                           (key, at, at))
        return out

    @retry_when_full
    def retention_sweep(self, cutoff: float) -> dict[str, int]:
        """Apps not seen since `cutoff`: their next visit is a first one again."""
        with self._store.writing() as db:
            n = db.execute("DELETE FROM visitors WHERE last < ?", (cutoff,)).rowcount
        return {"visitors": n}

    @retry_when_full
    def erase_rows_of(self, subject: str) -> dict[str, int]:
        keys = [self.key_of(f) for f in sorted(subject_forms(subject))]
        with self._store.erasing() as db:
            n = sum(db.execute("DELETE FROM visitors WHERE subject = ?", (k,)).rowcount
                    for k in keys)
        return {"visitors": n}
