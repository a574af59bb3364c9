"""The fleet's end-to-end check: every event every store committed is in PostgreSQL exactly
once, per store no seq missing; what is missing is attributed.

A missing event the store had a PUBACK for was lost upstream (broker or collector); one it
had no PUBACK for is still in the store's outbox (late, not lost); stored more than once by
seq under different ids would be the store's fault (it never is: ids are made once).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from simulators.fleet.store import VirtualStore


@dataclass
class FleetCheck:
    stores: int = 0
    committed: int = 0
    stored: int = 0
    lost_after_puback: int = 0  # acknowledged to a store, not in the database
    not_yet_sent: int = 0  # never acknowledged: still in a store's outbox
    double_seqs: int = 0  # a seq stored under two ids
    unknown_sources: int = 0  # events in the database from no store of this fleet
    examples: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return (self.stored == self.committed and self.lost_after_puback == 0
                and self.not_yet_sent == 0 and self.double_seqs == 0)

    def line(self) -> str:
        return (f"{self.stores} stores: {self.committed} committed, {self.stored} stored once; "
                f"lost after PUBACK {self.lost_after_puback}, not yet sent "
                f"{self.not_yet_sent}, seqs stored twice {self.double_seqs}"
                + (f" ({'; '.join(self.examples[:3])})" if self.examples else ""))


def check(db: Any, stores: list[VirtualStore]) -> FleetCheck:
    """`db`: a psycopg connection to the collectors' database."""
    out = FleetCheck(stores=len(stores))
    by_boot = {s.bootid: s for s in stores}
    rows = db.execute("SELECT bootid, count(*), count(DISTINCT seq) FROM events "
                      "WHERE type <> 'o2o.probe' GROUP BY bootid").fetchall()
    counts = {str(b): (int(n), int(d)) for b, n, d in rows}
    for bootid, (n, _) in counts.items():
        if bootid not in by_boot:
            out.unknown_sources += n
    for store in stores:
        out.committed += store.stats.committed
        n, distinct = counts.get(store.bootid, (0, 0))
        out.stored += distinct
        out.double_seqs += n - distinct
        if distinct == store.stats.committed:
            continue
        have = {int(r[0]) for r in db.execute(
            "SELECT seq FROM events WHERE bootid = %s", (store.bootid,)).fetchall()}
        missing = set(range(1, store.stats.committed + 1)) - have
        lost = missing & store.stats.acked_seqs
        out.lost_after_puback += len(lost)
        out.not_yet_sent += len(missing) - len(lost)
        if lost:
            out.examples.append(f"{store.store}: {len(lost)} acknowledged, e.g. seq "
                                f"{min(lost)}")
    return out
