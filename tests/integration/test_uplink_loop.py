"""paho driven from the agent's event loop (link.py, pump.py) against a real broker: no network
thread, and a 30 MiB downstream message read in short turns of the loop, so the loop — which
feeds the systemd watchdog and reads every PUBACK — is never held long by it."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agent.config import load_config
from agent.uplink.client import BoundedClient
from agent.uplink.inbox import Inbox
from agent.uplink.link import ConnInfo, LinkCallbacks, MqttLink
from agent.uplink.pump import READ_SLICE_BYTES
from tests.conftest import write_config
from tests.integration.test_storelink import publish

TOPIC = "o2o/v1/store-1/all/blob"
MAX_TURN_S = 0.1  # the thread rule: nothing holds the loop longer


def test_a_30_mib_downstream_message_is_read_in_short_turns_of_the_loop(
        tmp_path: Path, mosquitto: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    film = os.urandom(30 * 1024 * 1024)
    sha = hashlib.sha256(film).hexdigest()
    publish(mosquitto, f"{TOPIC}/{sha}", film, retain=True)
    cfg = load_config(str(write_config(tmp_path / "config.toml", url=mosquitto.url)))
    reads = 0
    loop_read = BoundedClient.loop_read

    def counted(self: BoundedClient, max_packets: int = 1) -> Any:
        nonlocal reads
        reads += 1
        return loop_read(self, max_packets)

    monkeypatch.setattr(BoundedClient, "loop_read", counted)
    connected: list[ConnInfo] = []

    async def main() -> tuple[bytes, float, list[str]]:
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
        longest = 0.0

        async def ticker() -> None:
            nonlocal longest
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.005)
                now = time.monotonic()
                longest, last = max(longest, now - last), now

        tick = asyncio.create_task(ticker())
        run = asyncio.create_task(link.run())
        try:
            payload = await asyncio.wait_for(got, 60)
            threads = [t.name for t in threading.enumerate()]
        finally:
            await link.close()
            await asyncio.wait_for(run, 10)  # ends by itself once disconnected
            tick.cancel()
            await inbox.close()
        return payload, longest, threads

    payload, longest, threads = asyncio.run(main())
    assert connected, "the link never connected"
    assert payload == film
    assert "mqtt-link" not in threads, threads  # no network thread
    print(f"30 MiB read in {reads} turns of the loop; longest turn {longest * 1000:.0f} ms")
    # the message came in many slices, none holding the loop long
    assert reads >= len(film) // READ_SLICE_BYTES, reads
    assert longest < MAX_TURN_S, f"the loop was held {longest * 1000:.0f} ms"
