"""The fleet's end-to-end check attributes what is missing: an event a store had a PUBACK for
and PostgreSQL lacks was lost upstream; one without a PUBACK is still in the store's outbox;
a seq stored under two ids is counted. Stores that never ran, rows written by hand."""

from __future__ import annotations

import json

import psycopg

from agent.collector.store import EventStore
from simulators.fleet.check import check
from simulators.fleet.store import VirtualStore
from tests.integration.test_fleet_collectors import pg_url

__all__ = ["pg_url"]


def test_missing_events_are_attributed(pg_url: str) -> None:
    ok, lossy, late = (VirtualStore(name, [1883], v5=True) for name in ("ok", "lossy", "late"))
    for store in (ok, lossy, late):
        store.commit(10)
    ok.stats.acked_seqs.update(range(1, 11))
    lossy.stats.acked_seqs.update(range(1, 11))  # all acknowledged: 3 lost upstream
    late.stats.acked_seqs.update(range(1, 7))  # 7-10 never acknowledged: not yet sent
    upstream = EventStore(pg_url)
    try:
        for store, seqs in ((ok, range(1, 11)), (lossy, [1, 2, 3, 4, 8, 9, 10]),
                            (late, range(1, 7))):
            rows = [json.loads(store.outbox[s - 1].body) for s in seqs]
            upstream.add_batch(json.dumps(rows).encode())
        # the same seq of `ok` a second time under another id: a store's fault
        again = json.loads(ok.outbox[0].body) | {"id": "ANOTHERID"}
        upstream.add_batch(json.dumps([again]).encode())
    finally:
        upstream.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        result = check(conn, [ok, lossy, late])
    assert (result.committed, result.stored) == (30, 23)
    assert (result.lost_after_puback, result.not_yet_sent, result.double_seqs) == (3, 4, 1)
    assert not result.exact
    assert "lossy: 3 acknowledged, e.g. seq 5" in result.line()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert check(conn, [ok]).double_seqs == 1 and check(conn, [late]).exact is False
