"""The collector's batch path, attacked: messages on the events topic that are not JSON, a JSON
array of 100,000 tiny events, ids and seqs of the wrong type, a NUL or a lone surrogate where
the database cannot keep one. What a fleet relies on: whatever cannot be read is counted as
unreadable and kept out; every readable event beside it (in the same message or the same
transaction) is stored exactly once; the collector keeps running and says no traceback."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from agent.collector.store import EventStore
from tests.abuse.conftest import ABUSE
from tests.conftest import CLI, ROOT, throwaway_postgres, wait_for


def event(n: int, bootid: str = "B1", **over: Any) -> dict[str, Any]:
    seq = n
    e = {"specversion": "1.0", "id": f"{bootid}-{seq:06d}", "source": "o2o-edge://s1/pi",
         "type": "o2o.kiosk.view", "time": "2026-12-02T10:00:00.000Z", "bootid": bootid,
         "seq": seq, "data": {}}
    e.update(over)
    return e


def batch(*events: dict[str, Any]) -> bytes:
    return json.dumps(list(events)).encode()


# events the collector cannot keep as they are: each is counted, never stored under a
# made-up id ("None", "5") where it would clash with another as a "duplicate"
UNREADABLE = {
    "id null": event(1, id=None),
    "id number": event(1, id=5),
    "id object": event(1, id={"a": 1}),
    "id empty": event(1, id=""),
    "seq text": event(1, seq="1"),
    "seq float": event(1, seq=1.5),
    "seq bool": event(1, seq=True),
    "seq negative": event(1, seq=-1),
    "seq 2**63": event(1, seq=2**63),
    "bootid number": event(1, bootid=7),
    "source list": event(1, source=["o2o-edge://s1/pi"]),
    "type missing": {k: v for k, v in event(1).items() if k != "type"},
    "time number": event(1, time=1796000000),
    "NUL in id": event(1, id="B1-\x00"),
    "NUL in source": event(1, source="o2o-edge://s1/\x00"),
    "surrogate in type": event(1, type="o2o.\ud800"),
    "not an object": 42,
}


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'collected.db'}"
        return
    with throwaway_postgres("o2o_abuse") as url:
        yield url


def test_an_unreadable_event_is_counted_and_its_neighbours_stored(db_url: str) -> None:
    store = EventStore(db_url)
    try:
        messages = [b"not json", b"", b"\xff\xfe", b"[" * 100_000, b"null", b'"text"',
                    b'{"id": "x"}', b"[]"]
        seq = 0
        for bad in UNREADABLE.values():  # each between two good events of one message
            messages.append(json.dumps([event(seq + 1), bad, event(seq + 2)],
                                       ensure_ascii=True).encode())
            seq += 2
        assert store.add_batches(messages) == (seq, 0)
        assert store.bad_messages == 7 + len(UNREADABLE)  # "[]" holds nothing, and no fault
        (boot,) = store.report()
        assert (boot["events"], boot["gaps"], boot["duplicates"]) == (seq, [], 0)
        assert store.count() == seq  # nothing stored under an id made up from a wrong type
        assert store.add_batches([batch(event(1), event(2))]) == (0, 2)  # sent again
    finally:
        store.close()


def test_a_message_of_100k_tiny_events(db_url: str) -> None:
    store = EventStore(db_url)
    try:
        tiny = json.dumps([{}] * 100_000).encode()
        many = batch(*(event(i + 1, bootid="B2") for i in range(100_000)))
        t0 = time.monotonic()
        assert store.add_batches([tiny, many]) == (100_000, 0)
        took = time.monotonic() - t0
        assert store.bad_messages == 1 and store.count() == 100_000
        assert took < 60, f"{took:.1f} s for 100,000 events"
    finally:
        store.close()


FIELD = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8),
                  st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2),
                                                                      st.integers(), max_size=2))


@ABUSE
@given(fields=st.dictionaries(st.sampled_from(["id", "source", "bootid", "seq", "type",
                                                "time"]), FIELD, max_size=6))
def test_any_field_of_any_type_is_stored_as_sent_or_counted(tmp_path_factory: Any,
                                                           fields: dict[str, Any]) -> None:
    store = EventStore(f"sqlite:///{tmp_path_factory.mktemp('c') / 'c.db'}")
    try:
        hostile = {**event(2), **fields}
        text = json.dumps([event(1), hostile, event(3)], allow_nan=True).encode()
        new, dup = store.add_batches([text])
        texts = [hostile.get(k) for k in ("id", "source", "bootid", "type", "time")]
        readable = (all(isinstance(t, str) and "\x00" not in t for t in texts)
                    and texts[0] != "" and type(hostile["seq"]) is int
                    and 0 <= hostile["seq"] < 2**63)
        assert (new, dup, store.bad_messages) == ((3, 0, 0) if readable else (2, 0, 1))
    finally:
        store.close()


def test_the_running_collector_keeps_going_past_hostile_messages(
        tmp_path: Path, mosquitto: Any) -> None:
    db = f"sqlite:///{tmp_path / 'collected.db'}"
    collector = subprocess.Popen([*CLI, "collect", "--broker", mosquitto.url, "--db", db,
                                  "--client-id", "abuse-collector"], cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    store = EventStore(db)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="hostile", protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    topic = "o2o/v1/s1/pi/events"
    try:
        def subscribed() -> bool:
            pub.publish(topic, batch(event(1, bootid="P")), qos=1).wait_for_publish(10)
            time.sleep(0.1)
            return store.count() >= 1
        wait_for(subscribed, 30, what="the collector subscribed")
        hostile = [b"not json", b"\x00" * 1000, json.dumps([{}] * 100_000).encode(),
                   batch(event(1, id=None)), batch(event(1, bootid="B\x00"))]
        seq = 0
        for bad in hostile:
            pub.publish(topic, bad, qos=1).wait_for_publish(10)
            pub.publish(topic, batch(event(seq + 1), event(seq + 2, id=None),
                                     event(seq + 3)), qos=1).wait_for_publish(10)
            seq += 3
        wait_for(lambda: store.count() >= 1 + 2 * len(hostile), 30,
                 what=lambda: f"{store.count()} stored")
        assert collector.poll() is None  # still running
        boot = {r["bootid"]: r for r in store.report()}["B1"]
        assert boot["events"] == 2 * len(hostile)
        assert boot["gaps"] == [[n, n] for n in range(2, seq, 3)]  # the unreadable ones
    finally:
        pub.disconnect()  # first: loop_stop alone waits out the loop's 1 s select
        pub.loop_stop()
        collector.send_signal(signal.SIGTERM)
        out, err = collector.communicate(timeout=30)
        store.close()
    assert "Traceback" not in err, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["unreadable_messages"] == 2 * len(hostile)
    assert summary["stored"] == 1 + 2 * len(hostile)
