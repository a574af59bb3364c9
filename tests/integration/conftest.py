"""Real brokers and a real QoS 1 subscriber for the integration tests."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.contracts.bus import CloudEvent
from simulators.brokers import (
    BrokerUnavailable,
    PrivateBroker,
    PrivateMosquitto,
    PrivateNats,
    PrivateRabbitMQ,
)
from simulators.fake_bluez import BusUnavailable, PrivateBus


class Subscriber:
    """A persistent-session QoS 1 subscriber, the way an upstream collector would be."""

    def __init__(self, url: str, topic: str, client_id: str, v5: bool = True) -> None:
        host, port = url.split("//", 1)[1].rsplit(":", 1)
        self.ids: Counter[str] = Counter()
        self.events: dict[str, dict[str, Any]] = {}
        self.retained: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self.connected = threading.Event()  # set when the subscription is confirmed
        self.errors: list[str] = []  # messages it could not read (reported by failing tests)
        self.subscribed = False
        self.received = 0
        self.sessions_lost = 0
        if v5:
            self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                      protocol=mqtt.MQTTv5)
        else:
            self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                      protocol=mqtt.MQTTv311, clean_session=False)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.on_disconnect = lambda *a: self.connected.clear()
        self.topic = topic
        self.client.reconnect_delay_set(0.1, 1.0)
        if v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
            self.client.connect_async(host, int(port), clean_start=False, properties=props)
        else:
            self.client.connect_async(host, int(port))
        self.client.loop_start()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            return
        if self.subscribed and not flags.session_present:
            self.sessions_lost += 1  # the broker forgot us: what was queued for us is gone
        if flags.session_present and self.subscribed:
            # the broker kept the session and its subscription: subscribing again would
            # replace it, and some brokers (NATS's MQTT on JetStream) then skip what was
            # queued for it in the meantime
            self.connected.set()
        else:
            client.subscribe(self.topic, qos=1)

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        # ready only once the broker confirmed the subscription: before that, a broker may
        # acknowledge a publish that it routes nowhere (RabbitMQ does)
        if all(not c.is_failure for c in codes):
            self.subscribed = True
            self.connected.set()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        if msg.topic.endswith("/state"):
            with self.lock:
                self.retained[msg.topic] = msg.payload
            return
        self.received += 1
        try:
            batch = json.loads(msg.payload)
            ids = [ev["id"] for ev in batch]
        except (ValueError, TypeError, KeyError) as exc:
            # kept, not raised: an exception here would stop paho's network thread
            self.errors.append(f"{msg.topic}: {exc}: {msg.payload[:200]!r}")
            return
        with self.lock:
            for ev_id, ev in zip(ids, batch, strict=True):
                self.ids[ev_id] += 1
                self.events[ev_id] = ev

    def health(self) -> str:
        """What a failing test says about this subscriber."""
        thread = getattr(self.client, "_thread", None)
        return (f"subscriber: {self.received} messages, connected={self.connected.is_set()}, "
                f"network thread alive={thread is not None and thread.is_alive()}, "
                f"sessions lost by the broker={self.sessions_lost}, errors={self.errors[:3]}")

    def unique(self) -> set[str]:
        with self.lock:
            return set(self.ids)

    def duplicates(self) -> int:
        with self.lock:
            return sum(c - 1 for c in self.ids.values())

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def running_broker(kind: type[PrivateBroker], workdir: Path) -> Iterator[PrivateBroker]:
    """A private broker for one test, skipped (saying why) when the program is missing."""
    try:
        broker = kind(workdir)
    except BrokerUnavailable as exc:
        pytest.skip(str(exc))
    broker.start()
    yield broker
    broker.kill()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[PrivateBroker]:
    yield from running_broker(PrivateMosquitto, tmp_path / "mosquitto")


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[PrivateBroker]:
    yield from running_broker(PrivateNats, tmp_path / "nats")


@pytest.fixture(scope="session")
def rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateBroker]:
    # one node for the session: an Erlang node takes ~20 s to boot; each test uses its own
    # client ids and topics, and a test that crashes it starts it again
    yield from running_broker(PrivateRabbitMQ, tmp_path_factory.mktemp("rabbit"))


@pytest.fixture
def bus(monkeypatch: pytest.MonkeyPatch) -> Iterator[PrivateBus]:
    """A private dbus-daemon used as the system bus (what bleak connects to)."""
    try:
        b = PrivateBus()
    except BusUnavailable as exc:
        pytest.skip(str(exc))
    b.start()
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", b.address)
    yield b
    b.stop()


@pytest.fixture
def subscribers() -> Iterator[list[Subscriber]]:
    subs: list[Subscriber] = []
    yield subs
    for s in subs:
        s.close()


async def next_event(stream: AsyncIterator[CloudEvent], event_type: str,
                     match: Callable[[dict[str, Any]], bool], within: float) -> CloudEvent:
    """The next event of `event_type` whose data matches, waited for at most `within`."""
    deadline = time.monotonic() + within
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no {event_type} within {within} s"
        event = await asyncio.wait_for(anext(stream), left)
        if event["type"] == event_type and match(event["data"]):
            return event
