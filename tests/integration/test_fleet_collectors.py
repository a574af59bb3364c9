"""Collectors that scale out: several `o2o-edge collect` in one MQTT 5 shared subscription,
writing to PostgreSQL idempotently by event id. One SIGKILLed mid-run loses nothing: what it
had read but not committed was not acknowledged, and the broker delivers it again when the
collector's kept session comes back. The per-device report is right across collectors."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.collector.store import EventStore
from tests.conftest import CLI, ROOT, throwaway_postgres, wait_for

DEVICES = 20
BATCHES = 60  # per device
PER_BATCH = 25


@pytest.fixture
def pg_url() -> Iterator[str]:
    with throwaway_postgres("o2o_fleet") as url:
        yield url


def _collector(url: str, db: str, n: int) -> subprocess.Popen[str]:
    return subprocess.Popen([*CLI, "collect", "--broker", url, "--db", db, "--shared", "fleet",
                             "--client-id", f"collector-{n}"], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _batch(device: int, b: int) -> bytes:
    return json.dumps([
        {"specversion": "1.0", "id": f"E{device:03d}x{b * PER_BATCH + i:05d}",
         "source": f"o2o-edge://s{device:03d}/pi", "type": "o2o.kiosk.view",
         "time": "2026-12-02T10:00:00.000Z", "bootid": f"B{device:03d}",
         "seq": b * PER_BATCH + i + 1, "data": {}} for i in range(PER_BATCH)]).encode()


def test_shared_collectors_lose_nothing_when_one_is_killed(mosquitto: Any, pg_url: str) -> None:
    store = EventStore(pg_url)  # the tables exist before three collectors race to make them
    collectors = [_collector(mosquitto.url, pg_url, n) for n in range(3)]
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fleet-pub", protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    try:
        # until every collector has joined the group, a message may go to none of them
        probe = 0

        def joined() -> bool:
            nonlocal probe
            probe += 1
            pub.publish("o2o/v1/probe/pi/events", json.dumps([{
                "id": f"P{probe}", "source": "o2o-edge://probe/pi", "bootid": "P",
                "seq": probe, "type": "o2o.probe", "time": "2026-12-02T10:00:00Z"}]),
                qos=1).wait_for_publish(10)
            time.sleep(0.2)
            return store.count("o2o.probe") >= 6
        wait_for(joined, 30, what="three collectors in the shared subscription")
        infos = []
        for b in range(BATCHES):
            for d in range(DEVICES):
                infos.append(pub.publish(f"o2o/v1/s{d:03d}/pi/events", _batch(d, b), qos=1))
            if b == BATCHES // 3:
                collectors[1].send_signal(signal.SIGKILL)  # mid-run, mid-batch
                collectors[1].communicate(timeout=10)
        for info in infos:
            info.wait_for_publish(30)
        total = DEVICES * BATCHES * PER_BATCH
        # its kept session holds what it had not acknowledged: it comes back for it
        collectors[1] = _collector(mosquitto.url, pg_url, 1)
        wait_for(lambda: store.count("o2o.kiosk.view") >= total, 60,
                 what=lambda: f"{store.count('o2o.kiosk.view')} of {total} stored")
    finally:
        pub.loop_stop()
        pub.disconnect()
        outs = []
        for c in collectors:
            c.send_signal(signal.SIGTERM)
            outs.append(c.communicate(timeout=30))
    assert all("Traceback" not in err for _, err in outs), outs
    report = [r for r in store.report() if r["bootid"] != "P"]
    store.close()
    assert len(report) == DEVICES
    for r in report:
        assert (r["events"], r["first_seq"], r["last_seq"], r["gaps"]) == \
            (BATCHES * PER_BATCH, 1, BATCHES * PER_BATCH, []), r
    # each of the three stored a share: the load was spread
    stored = [json.loads(out.strip().splitlines()[-1])["new"] for out, _ in outs]
    assert all(n > 0 for n in stored[::2]), stored


def test_one_statement_batch_keeps_out_what_postgres_would_refuse(pg_url: str) -> None:
    """A message PostgreSQL would refuse (a lone surrogate, a NUL) is counted and kept out;
    the other messages of the same transaction are stored, a repeated id counted once."""
    store = EventStore(pg_url)
    good = _batch(1, 0)
    surrogate = b'[{"id":"S1","source":"o2o-edge://s/\\ud800","bootid":"BS","seq":1,' \
                b'"type":"o2o.kiosk.view","time":"t"}]'
    nul = b'[{"id":"N1","source":"o2o-edge://s/pi","bootid":"BN\\u0000","seq":1,' \
          b'"type":"o2o.kiosk.view","time":"t"}]'
    try:
        assert store.add_batches([good, surrogate, nul, _batch(2, 0), good]) == \
            (2 * PER_BATCH, PER_BATCH)
        assert store.bad_messages == 2
        (r1,) = [r for r in store.report() if r["bootid"] == "B001"]
        assert (r1["events"], r1["gaps"], r1["duplicates"]) == (PER_BATCH, [], PER_BATCH)
    finally:
        store.close()
