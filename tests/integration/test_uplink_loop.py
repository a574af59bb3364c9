"""paho driven from the agent's event loop (link.py, pump.py) against a real broker: no network
thread, and a 30 MiB downstream message read in short turns of the loop, so the loop — which
feeds the systemd watchdog and reads every PUBACK — is never held long by it."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.config import load_config
from agent.uplink.client import BoundedClient
from agent.uplink.inbox import Inbox
from agent.uplink.link import ConnInfo, LinkCallbacks, MqttLink
from agent.uplink.pump import READ_SLICE_BYTES
from simulators.pki import TestCA
from tests.conftest import write_config
from tests.integration.test_storelink import publish
from tests.integration.test_tls import tls_broker

TOPIC = "o2o/v1/store-1/all/blob"
# the thread rule says 100 ms; a read's CPU time here is ~15 ms at most (the buffer's pages
# touched, the payload decoded), but once reached 100 ms with the machine loaded to five times
# its cores: the bound leaves that room. Slicing itself is what the count of reads checks.
MAX_TURN_S = 0.2


def publish_tls(broker: Any, ca_file: str, topic: str, payload: bytes) -> None:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"upstream-{time.monotonic_ns()}")
    c.tls_set(ca_certs=ca_file)
    c.connect("localhost", broker.port)
    c.loop_start()
    c.publish(topic, payload, qos=1, retain=True).wait_for_publish(30)
    c.disconnect()  # first: loop_stop alone waits out the loop's 1 s select
    c.loop_stop()


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_a_30_mib_downstream_message_is_read_in_short_turns_of_the_loop(
        tmp_path: Path, mosquitto: Any, monkeypatch: pytest.MonkeyPatch, tls: bool) -> None:
    """Over TLS too: decrypted bytes the selector cannot see (SSLSocket.pending) get their
    turn, or the message would wait for the next bytes on the wire."""
    film = os.urandom(30 * 1024 * 1024)
    sha = hashlib.sha256(film).hexdigest()
    if tls:
        ca = TestCA(tmp_path / "pki")
        broker = tls_broker(tmp_path, ca, mutual=False)
        publish_tls(broker, str(ca.ca_file), f"{TOPIC}/{sha}", film)
        url, extra = f"mqtts://localhost:{broker.port}", f'ca_file = "{ca.ca_file}"\n'
    else:
        publish(mosquitto, f"{TOPIC}/{sha}", film, retain=True)
        url, extra = mosquitto.url, ""
    try:
        cfg = load_config(str(write_config(tmp_path / "config.toml", url=url, extra=extra)))
        _read_30_mib(cfg, film, monkeypatch)
    finally:
        if tls:
            broker.kill()


def _read_30_mib(cfg: Any, film: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    turns: list[float] = []  # CPU time of each read (a loaded machine's waits do not count)
    loop_read = BoundedClient.loop_read

    def counted(self: BoundedClient, max_packets: int = 1) -> Any:
        began = time.thread_time()
        try:
            return loop_read(self, max_packets)
        finally:
            turns.append(time.thread_time() - began)

    monkeypatch.setattr(BoundedClient, "loop_read", counted)
    connected: list[ConnInfo] = []

    async def main() -> tuple[bytes, list[str]]:
        got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def handler(topic: str, payload: bytes, response: str, corr: bytes) -> None:
            if not got.done():
                got.set_result(payload)

        link = MqttLink(cfg, "BOOT", LinkCallbacks(
            connected=connected.append, disconnected=lambda why: None,
            puback=lambda mid, rc: None, reset=lambda: None))
        inbox = Inbox(handler, lambda topics: None)
        inbox.bind(asyncio.get_running_loop())
        link.inbox = inbox
        link.downstream_topics = [f"{TOPIC}/#"]
        run = asyncio.create_task(link.run())
        try:
            payload = await asyncio.wait_for(got, 60)
            threads = [t.name for t in threading.enumerate()]
        finally:
            await link.close()
            await asyncio.wait_for(run, 10)  # ends by itself once disconnected
            await inbox.close()
        return payload, threads

    payload, threads = asyncio.run(main())
    assert connected, "the link never connected"
    assert payload == film
    assert "mqtt-link" not in threads, threads  # no network thread
    longest = max(turns)
    print(f"30 MiB read in {len(turns)} turns of the loop; longest {longest * 1000:.0f} ms")
    # the message came in many slices, none holding the loop long
    assert len(turns) >= len(film) // READ_SLICE_BYTES, len(turns)
    assert longest < MAX_TURN_S, f"one read held the loop {longest * 1000:.0f} ms"


def test_an_idle_connection_is_kept_by_pingreqs_from_the_loop(
        tmp_path: Path, mosquitto: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing to send: the loop's timer sends PINGREQs, so the broker (which drops a client
    silent for 1.5 keepalives) keeps the connection."""
    cfg = load_config(str(write_config(tmp_path / "config.toml", url=mosquitto.url)))
    # 1 s (the configuration's floor is 5 s): the test need not idle for long
    cfg = dataclasses.replace(cfg, mqtt=dataclasses.replace(cfg.mqtt, keepalive_s=1))
    pings = 0
    send_pingreq = BoundedClient._send_pingreq

    def counted(self: BoundedClient) -> Any:
        nonlocal pings
        pings += 1
        return send_pingreq(self)

    monkeypatch.setattr(BoundedClient, "_send_pingreq", counted)
    connects: list[ConnInfo] = []
    lost: list[str] = []

    async def main() -> None:
        link = MqttLink(cfg, "BOOT", LinkCallbacks(
            connected=connects.append, disconnected=lost.append,
            puback=lambda mid, rc: None, reset=lambda: None))
        run = asyncio.create_task(link.run())
        try:
            deadline = time.monotonic() + 10
            while not connects and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.sleep(4)  # idle, over twice what the broker tolerates
            assert link.state == "connected" and not lost, (link.last_error, lost)
        finally:
            await link.close()
            await asyncio.wait_for(run, 10)

    asyncio.run(main())
    assert len(connects) == 1, connects
    assert pings >= 2, pings
