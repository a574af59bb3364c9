"""One BLE advert, from bleak's detection callback to paho's socket write, changes threads
twice: the event loop hands the event to the outbox writer (the commit, fsync'd), and the
writer hands the committed rows back to the loop, which batches and writes them to the broker.
Followed through a real agent, unmodified bleak over the fake BlueZ and a real broker
(tests/bench/ble_handoffs.py; `dev.py bench-ble` prints the same figures)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simulators.fake_bluez import PrivateBus
from tests.bench.ble_handoffs import STEPS, follow_one_advert


def test_one_ble_advert_reaches_the_broker_in_two_thread_handoffs(
        tmp_path: Path, bus: PrivateBus, mosquitto: Any) -> None:
    trace = follow_one_advert(tmp_path, bus.address, mosquitto.url)
    report = trace.report()
    assert trace.complete(), f"the advert was not followed to the broker: {report}"
    assert trace.threads["bleak callback"] == "event loop", report
    assert trace.handoffs() == [
        ("capture (outbox submit)", "outbox commit", "event loop -> outbox-writer"),
        ("commit fan-out to the uplink", "uplink woken", "outbox-writer -> event loop"),
    ], report
    assert trace.threads[STEPS[-1]] == "event loop", report
