"""The fleet at size (`-m slow`): a thousand virtual stores on the 3-node NATS cluster, a node
lost and back, a tenth of the stores cut off for longer than their keepalive, and the
thundering herd — the whole cluster down while every store builds hours of backlog, then all
of them reconnecting at once. Every event every store committed is stored exactly once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.collector.store import EventStore
from simulators.brokers import BrokerUnavailable
from simulators.cluster import NatsCluster
from simulators.fleet.check import FleetCheck
from simulators.fleet.fleet import Fleet
from simulators.netcut import NetworkCut
from tests.integration.test_fleet import _collector, _stop, _stored, _subscribed
from tests.integration.test_fleet_collectors import pg_url

__all__ = ["pg_url"]
STORES = 1000
BACKLOG = 200  # per store: ~9 store hours at the soak's rate


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    try:
        c = NatsCluster(tmp_path / "cluster")
    except BrokerUnavailable as exc:
        pytest.skip(str(exc))
    c.start()
    yield c
    for node in c.nodes:
        node.kill()


@pytest.mark.slow
def test_a_thousand_stores_and_a_thundering_herd(cluster: NatsCluster, pg_url: str) -> None:
    EventStore(pg_url).close()
    collectors = [_collector(cluster.nodes[2].url, pg_url, 0, "--protocol", "3.1.1")]
    _subscribed(cluster.ports[2], pg_url)
    # a tenth of the stores reach n2 through a store router that goes dead for 40 s: longer
    # than their keepalive, so they find out, and their reconnects hear nothing meanwhile
    cut = NetworkCut("127.0.0.1", cluster.ports[1]).start()
    fleet = Fleet(cluster.ports, STORES, v5_share=0.0, rate=0.1, backoff_max_s=30.0,
                  port_of=lambda i: [cut.port] if i % 10 == 0 else cluster.ports)
    behind_cut = fleet.stores[::10]
    figures: dict[str, float] = {}

    async def run() -> FleetCheck:
        await fleet.start(ramp_s=20.0)
        figures["connected_s"] = await fleet.wait(
            lambda: fleet.connected() == STORES, 120, "not all connected")
        fleet.feed()
        await asyncio.sleep(10)
        cluster.kill(1)  # a node lost under load, and back
        await asyncio.sleep(5)
        await asyncio.to_thread(cluster.restart, 1)
        await fleet.drain(120)
        connects = sum(s.stats.connects for s in behind_cut)
        cut.cut()
        await asyncio.sleep(40)
        assert not any(s.connected for s in behind_cut)  # each found its link dead
        figures["backlog_behind_cut"] = sum(s.backlog for s in behind_cut)
        cut.restore()
        figures["cut_drained_s"] = await fleet.drain(180)
        assert sum(s.stats.connects for s in behind_cut) >= connects + len(behind_cut)
        # the outage: the whole cluster down, every store's backlog growing
        for node in cluster.nodes:
            node.kill()
        for store in fleet.stores:
            store.commit(BACKLOG)
        await asyncio.sleep(2)
        began = time.monotonic()
        await asyncio.to_thread(cluster.start)
        await fleet.drain(600)
        figures["herd_drained_s"] = time.monotonic() - began
        fleet.feed(False)
        await fleet.drain(120)
        await fleet.stop()
        return await _stored(pg_url, fleet, 600)

    try:
        result = asyncio.run(run())
    finally:
        errs = _stop(collectors)
        cut.stop()
    assert all("Traceback" not in e for e in errs), errs
    print(figures, result.line())
    assert result.committed >= STORES * BACKLOG
    assert result.exact, result.line()
