"""Privacy controls on the store's own data: consent per opted-in identifier (agent/consent.py),
a retention limit on every local table and the erasure of a data subject.

Retention: orders, appointments, loyalty cards, KPI roll-ups, granted consents and cached
upstream documents with people in them older than [privacy] retention_days are deleted by a
daily sweep (the outbox has its own TTL; the anonymous counting salts never leave memory).
The sweep and the erasure ask each table group of the store database for its own rows
(agent/storedb/groups.py): none of them is deleted from here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.checkin.db import StoreDb
from agent.consent import STATES, Consent
from agent.kpi import Kpis
from agent.repeat_visits import RepeatVisits
from agent.storedb import Repository, StoreDatabase, TableGroup, subject_forms
from agent.storelink.cache import LinkCache
from agent.storelink.docs import Doc

__all__ = ["STATES", "Privacy", "subject_forms"]


class Privacy(Repository):
    """Consent (as agent/consent.py answers it) and the sweep and erasure across every table
    group: `groups` are the other repositories of the same store database (the check-in
    tables, the link cache, the KPI roll-ups, the apps seen for repeat visits); without
    them, Privacy makes its own on the same owner."""

    def __init__(self, store: Path | StoreDatabase,
                 groups: Sequence[TableGroup] | None = None) -> None:
        super().__init__(store)
        self.consent = Consent(self._store)
        if groups is None:
            groups = (StoreDb(self._store), Kpis(self._store), LinkCache(self._store),
                      RepeatVisits(self._store, self.consent.key_of))
        self.groups: tuple[TableGroup, ...] = (*groups, self.consent)

    # --- consent: the bus's allow hook, the "consent" document, the status counts ---------

    @property
    def withdrawn(self) -> set[str]:
        return self.consent.withdrawn

    @property
    def withheld(self) -> int:
        return self.consent.withheld

    def key_of(self, subject: str) -> str:
        return self.consent.key_of(subject)

    def allows(self, event_type: str, data: Any) -> bool:
        return self.consent.allows(event_type, data)

    def apply_consent(self, doc: Doc) -> None:
        self.consent.apply_consent(doc)

    def erase(self, subject: str) -> int:
        """The subject's consent records only (see erase_subject for everything)."""
        return self.consent.erase(subject)

    # --- across the table groups ------------------------------------------------------------

    def sweep(self, retention_days: float, now: float | None = None) -> dict[str, int]:
        """Delete what is older than the retention limit from every local table; how many
        rows, per table. Each group in its own transaction: one that fails (a full disk)
        leaves the others swept, and the next sweep takes it again."""
        cutoff = (now or time.time()) - retention_days * 86400
        removed: dict[str, int] = {}
        for group in self.groups:
            removed.update(group.retention_sweep(cutoff))
        return removed

    def erase_subject(self, subject: str) -> dict[str, int]:
        """Remove a data subject from every table group: what the check-in tables had of it
        (loyalty, orders, appointments), the cached documents that named it, and its consent
        records (left as an anonymous withdrawal)."""
        removed: dict[str, int] = {}
        for group in self.groups:
            for what, n in group.erase_rows_of(subject).items():
                removed[what] = removed.get(what, 0) + n
        return removed
