"""One virtual store: an agent's uplink without its hardware, on the fleet's event loop.

What goes on the wire is made by the agent's own code: the topics by its `Config`, each
event by `envelope.render` (bootid, seq from 1 without gaps), the messages by
`batching.build_batches`, the socket pumped by the uplink's `Pump` (paho without a network
thread), the reconnect delay by `drivers.retry.Backoff`. Committed events stay in an
in-memory outbox until their PUBACK; what was in flight when a connection dropped goes back
to it and is sent again (a duplicate upstream, never a gap).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent import __version__
from agent.config_schema import Config, DeviceConfig
from agent.envelope import make_pending, new_id, render, source_json, source_uri
from agent.uplink.batching import build_batches
from agent.uplink.client import BoundedClient
from agent.uplink.pump import Pump
from drivers.retry import Backoff

KEEPALIVE_S: Final = 15  # a cut link is noticed within 1.5x this (paho's keepalive)
CONNACK_TIMEOUT_S: Final = 10.0  # a broker (or a cut link) that never answers CONNECT
ACK_TIMEOUT_S: Final = 30.0  # a PUBACK missing this long: reconnect, as the agent does
WINDOW: Final = 4  # messages in flight per store (the agent's drain bounds it too)
BATCH_EVENTS: Final = 500  # the agent's batch_max_events default
BATCH_BYTES: Final = 256 * 1024
SESSION_EXPIRY_S: Final = 86400


class Row(NamedTuple):
    """An outbox row as build_batches reads it."""

    n: int  # seq
    created: float
    body: str


@dataclass
class StoreStats:
    committed: int = 0  # last seq committed (every seq 1..committed exists)
    acked: int = 0  # events whose PUBACK came
    connects: int = 0
    refused: int = 0  # PUBACKs with a failure reason (sent again)
    first_connect_s: float | None = None  # from start() to the first CONNACK
    drained_at: float | None = None  # monotonic time the outbox was last seen empty
    acked_seqs: set[int] = field(default_factory=set)
    ports: list[int] = field(default_factory=list)  # the node of each accepted connection


class VirtualStore:
    def __init__(self, store: str, ports: list[int], *, v5: bool, backoff_min_s: float = 0.5,
                 backoff_max_s: float = 30.0, rng: random.Random | None = None,
                 device: str = "pi", host: str = "127.0.0.1") -> None:
        cfg = Config(device=DeviceConfig(store=store, id=device))
        self.store = store
        self.device = device
        self.client_id = f"{store}-{device}"
        self.events_topic = f"{cfg.topic_base}/events"
        self.state_topic = f"{cfg.topic_base}/state"
        self.source = source_json(source_uri(store, device))
        self.bootid = new_id()  # a ULID, as the agent makes its boot id
        self.host = host
        self.ports = ports
        self.v5 = v5
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self.backoff = Backoff(backoff_min_s, backoff_max_s, self.rng)
        self.stats = StoreStats()
        self.outbox: deque[Row] = deque()
        self.inflight: dict[int, tuple[tuple[int, ...], float]] = {}  # mid -> (seqs, sent)
        self.rows: dict[int, Row] = {}  # seq -> row, while in flight
        self.connected = False
        self._node = self.rng.randrange(len(ports))  # stores spread over the nodes
        self._stop = asyncio.Event()
        self._kick = asyncio.Event()
        self._started = 0.0
        self._client: BoundedClient | None = None
        self._port = 0  # the node of the current connection

    # --- events --------------------------------------------------------------------------

    def commit(self, n: int, event_type: str = "o2o.kiosk.view") -> None:
        """`n` events captured now and committed, each with the next seq."""
        now = time.time()
        for _ in range(n):
            self.stats.committed += 1
            seq = self.stats.committed
            pending = make_pending(event_type, {"n": seq}, now)
            self.outbox.append(Row(seq, now, render(pending, self.source, self.bootid, seq)))
        self._kick.set()

    @property
    def backlog(self) -> int:
        return len(self.outbox) + len(self.rows)

    # --- the connection ------------------------------------------------------------------

    def _state(self, state: str, *, will: bool = False) -> bytes:
        # the agent's birth/death document (agent/uplink/link.py), its fields as it sends them
        doc: dict[str, Any] = {"state": state, "bootid": self.bootid, "version": __version__,
                               "store": self.store, "device": self.device,
                               "config_version": None, "connected_since": time.time()}
        if state == "offline":
            doc["cause"] = "connection-lost" if will else "stopped"
        if not will:
            doc["time"] = time.time()
        return json.dumps(doc, separators=(",", ":")).encode()

    def _make_client(self) -> BoundedClient:
        if self.v5:
            client = BoundedClient(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                   protocol=mqtt.MQTTv5)
        else:
            client = BoundedClient(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                   protocol=mqtt.MQTTv311, clean_session=False)
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    def _on_connect(self, client: Any, u: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            return
        self.connected = True
        self.stats.connects += 1
        self.stats.ports.append(self._port)
        if self.stats.first_connect_s is None:
            self.stats.first_connect_s = time.monotonic() - self._started
        client.publish(self.state_topic, self._state("online"), qos=1, retain=True)
        self._kick.set()

    def _on_disconnect(self, client: Any, u: Any, flags: Any, rc: Any, props: Any) -> None:
        self.connected = False
        self._kick.set()

    def _on_publish(self, client: Any, u: Any, mid: int, rc: Any, props: Any) -> None:
        entry = self.inflight.pop(mid, None)
        if entry is None:
            return  # the birth, or a message of an earlier connection
        seqs, _ = entry
        if rc.is_failure:  # refused: back to the outbox, in order
            self.stats.refused += 1
            self._back([self.rows.pop(s) for s in seqs])
        else:
            for s in seqs:
                self.rows.pop(s, None)
            self.stats.acked += len(seqs)
            self.stats.acked_seqs.update(seqs)
            if not self.outbox and not self.rows:
                self.stats.drained_at = time.monotonic()
        self._kick.set()

    def _requeue(self) -> None:
        """What was in flight goes back to the outbox, oldest first."""
        seqs = [s for entry in self.inflight.values() for s in entry[0]]
        self.inflight.clear()
        self._back([self.rows.pop(s) for s in seqs])

    def _back(self, rows: list[Row]) -> None:
        """Rows back into the outbox in seq order, among those already there (a refused
        batch may be older or newer than what waits): sent oldest first, as the agent does."""
        if rows:
            self.outbox = deque(sorted([*rows, *self.outbox], key=lambda r: r.n))

    def _send(self) -> None:
        client = self._client
        if client is None or not self.connected:
            return
        while self.outbox and len(self.inflight) < WINDOW:
            rows = [self.outbox.popleft() for _ in range(min(BATCH_EVENTS, len(self.outbox)))]
            batch = build_batches(rows, max_events=BATCH_EVENTS, max_bytes=BATCH_BYTES)[0]
            # rows past the first batch's size go back in front
            self.outbox.extendleft(reversed(rows[len(batch.rowids):]))
            for row in rows[:len(batch.rowids)]:
                self.rows[row.n] = row
            props = None
            if self.v5:
                props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                props.ContentType = "application/cloudevents-batch+json"
            info = client.publish(self.events_topic, batch.payload, qos=1, properties=props)
            self.inflight[info.mid] = (batch.rowids, time.monotonic())

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> Pump | None:
        client = self._client = self._make_client()
        client.will_set(self.state_topic, self._state("offline", will=True), qos=1,
                        retain=True)
        port = self._port = self.ports[self._node % len(self.ports)]
        try:
            if self.v5:
                props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
                props.SessionExpiryInterval = SESSION_EXPIRY_S
                client.connect(self.host, port, keepalive=KEEPALIVE_S, clean_start=False,
                               properties=props)
            else:
                client.connect(self.host, port, keepalive=KEEPALIVE_S)
        except OSError:
            return None
        pump = Pump(client, loop)
        pump.attach()
        return pump

    async def run(self) -> None:
        """Connect, send, reconnect with backoff (to the next node) until stop()."""
        loop = asyncio.get_running_loop()
        self._started = time.monotonic()
        while not self._stop.is_set():
            began = time.monotonic()
            pump = await self._connect(loop)
            if pump is not None:
                await self._serve(pump, began)
            self._requeue()
            self.connected = False
            if self._stop.is_set():
                break
            if time.monotonic() - began > 10.0:
                self.backoff.reset()  # a working connection, not a flapping one
            self._node += 1  # the next node of the cluster (one node: the same)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.backoff.next_delay())

    async def _serve(self, pump: Pump, began: float) -> None:
        client = self._client
        assert client is not None  # set by _connect
        try:
            while not pump.closed.is_set() and not self._stop.is_set():
                self._kick.clear()
                self._send()
                now = time.monotonic()
                if not self.connected and now - began > CONNACK_TIMEOUT_S:
                    break
                if any(now - sent > ACK_TIMEOUT_S for _, sent in self.inflight.values()):
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._kick.wait(), 1.0)
            if self._stop.is_set() and self.connected:
                client.publish(self.state_topic, self._state("offline"), qos=1, retain=True)
                client.disconnect()
                client.loop_write()
        finally:
            pump.detach()
            with contextlib.suppress(OSError):
                sock = client.socket()
                if sock is not None:
                    sock.close()

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
