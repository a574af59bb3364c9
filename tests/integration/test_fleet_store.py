"""A virtual store's outbox without a broker: what it sends is the agent's batches, a refused
or unacknowledged batch goes back to the front in seq order, and only a PUBACK lets events
go — so upstream can see duplicates but never a gap."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from simulators.fleet.store import BATCH_EVENTS, WINDOW, VirtualStore


@dataclass
class Info:
    mid: int


class FakeClient:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def publish(self, topic: str, payload: bytes, qos: int, properties: Any = None) -> Info:
        self.sent.append((topic, payload))
        return Info(len(self.sent))


@dataclass
class Rc:
    is_failure: bool


def test_only_a_puback_lets_events_go_and_order_is_kept() -> None:
    store = VirtualStore("s1", [1883], v5=False)
    client = FakeClient()
    store._client = client  # type: ignore[assignment]
    store.connected = True
    store.commit(1200)
    store._send()
    # the agent's batches, at most BATCH_EVENTS each, on the agent's topic
    assert [len(json.loads(p)) for _, p in client.sent] == [BATCH_EVENTS, BATCH_EVENTS, 200]
    assert {t for t, _ in client.sent} == {"o2o/v1/s1/pi/events"}
    first = json.loads(client.sent[0][1])[0]
    assert (first["seq"], first["bootid"], first["source"]) == (
        1, store.bootid, "o2o-edge://s1/pi")
    assert len(store.inflight) == 3 <= WINDOW and store.backlog == 1200
    store._on_publish(client, None, 2, Rc(False), None)  # seqs 501-1000 acknowledged
    store._on_publish(client, None, 1, Rc(True), None)  # 1-500 refused: back in front
    assert store.stats.acked == 500 and store.stats.refused == 1
    assert [r.n for r in store.outbox] == list(range(1, 501))
    store._requeue()  # the connection dropped with 1001-1200 in flight
    assert [r.n for r in store.outbox] == [*range(1, 501), *range(1001, 1201)]
    assert store.backlog == 700 and not store.inflight and not store.rows
    store.commit(5)  # later commits go behind, with the next seqs
    assert [r.n for r in store.outbox][-6:] == [1200, 1201, 1202, 1203, 1204, 1205]
