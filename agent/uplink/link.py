"""The MQTT connection: paho-mqtt 2.x driven from the event loop, reconnecting with jittered
backoff.

There is no network thread: the socket is watched by the loop (pump.py), and only connect()
— DNS, TCP, the TLS handshake, which block — runs in a worker thread, the client untouched
by the loop meanwhile. paho calls back on the loop, from inside its read; the callbacks given
here must only hand the news over (`call_soon`: paho holds its own locks while it calls
back, and a publish from inside on_publish would take them again). Downstream messages too
are only handed over (inbox.py), so that the next read, and with it every PUBACK and PINGREQ,
is not held by a document being applied. paho re-sends unacknowledged QoS 1 messages after a
reconnect from memory only; the outbox, not paho, is the source of truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent import __version__
from agent.config import Config
from agent.uplink.client import MAX_DOWNSTREAM_PACKET, BoundedClient
from agent.uplink.inbox import Downstream, Inbox
from agent.uplink.pump import Pump
from agent.uplink.tls import connect_error, tls_context
from drivers.retry import Backoff

log = logging.getLogger(__name__)
_tls_context: Final = tls_context  # the name agent/tlsopts.py imports it by

STABLE_S = 10.0
GOODBYE_S: Final = 2.0  # how long a clean stop waits for the broker to take the death message
@dataclass(frozen=True, slots=True)
class ConnInfo:
    session_present: bool
    max_packet: int | None  # the broker's Maximum Packet Size (MQTT 5 CONNACK)
    receive_max: int | None  # how many QoS 1 messages it takes unacknowledged at once


@dataclass
class LinkCallbacks:
    connected: Callable[[ConnInfo], None]
    disconnected: Callable[[str], None]
    puback: Callable[[int, int], None]  # mid, reason code
    reset: Callable[[], None]  # a new paho client: nothing sent before is in flight any more
    oversized: Callable[[str, int], None] = lambda topic, size: None  # a message dropped


class MqttLink:
    def __init__(self, cfg: Config, bootid: str, callbacks: LinkCallbacks) -> None:
        self.cfg = cfg
        self.bootid = bootid
        self.cb = callbacks
        parts = urlsplit(cfg.mqtt.url)
        self.tls = parts.scheme == "mqtts"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (8883 if self.tls else 1883)
        self.v5 = cfg.mqtt.protocol == "5"
        self.state_topic = f"{cfg.topic_base}/state"
        self.events_topic = f"{cfg.topic_base}/events"
        self.state = "disconnected"
        self.last_error = ""
        self.connects = 0
        self.connected_since: float | None = None
        self._attempt_time = time.time()  # start of the connection the will is armed for
        self._refused = False  # this attempt's CONNACK was a refusal
        self._stopping = False
        self._stop = asyncio.Event()
        self._rebuild = False
        self._connecting: asyncio.Future[None] | None = None  # connect() in its worker
        # one thread of its own for connect(): the loop's shared pool would grow a thread
        # whenever a connect overlaps other jobs, and a refused broker is retried many times
        self._connector: ThreadPoolExecutor | None = None
        self._pump: Pump | None = None
        self._backoff = Backoff(cfg.mqtt.backoff_min_s, cfg.mqtt.backoff_max_s)
        # where downstream messages go (handed over, never handled inside paho's read)
        self.inbox: Inbox | None = None
        self.downstream_topics: list[str] = []
        self.extra_topics: set[str] = set()  # wanted for a while (content blobs)
        self._tls: ssl.SSLContext | None = None
        # the client certificate the TLS context holds, and the one the connection up now
        # was made with: a renewal on trial must know which of them the broker accepted
        self.client_cert = cfg.mqtt.cert_file
        self.connected_cert = ""
        self.attempts = 0  # connections begun, made or not
        self.client = self._make_client()

    # --- setup -------------------------------------------------------------------------

    def _make_client(self) -> BoundedClient:
        m = self.cfg.mqtt
        if self.v5:
            client = BoundedClient(
                CallbackAPIVersion.VERSION2, client_id=self.cfg.device.id, protocol=mqtt.MQTTv5,
                on_oversized=self._on_oversized,
            )
        else:
            client = BoundedClient(
                CallbackAPIVersion.VERSION2,
                client_id=self.cfg.device.id,
                protocol=mqtt.MQTTv311,
                clean_session=False,
                on_oversized=self._on_oversized,
            )
        if m.username:
            client.username_pw_set(m.username, m.password or None)
        if self.tls:
            self._tls = tls_context(self.cfg)
            self.client_cert = m.cert_file
            client.tls_set_context(self._tls)
        # the drain bounds what is in flight; paho must not hold messages back on top of it
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def _state_payload(self, state: str, *, will: bool = False) -> bytes:
        """Birth ("online"), death on a clean stop ("offline", cause "stopped") and the will
        ("offline", cause "connection-lost"). The broker publishes the will later, at a moment
        nobody can write into it: it carries the start of the connection it was armed for
        (`connected_since`), and no `time`; the broker's receive time is when it went offline."""
        doc: dict[str, Any] = {
            "state": state,
            "bootid": self.bootid,
            "version": __version__,
            "store": self.cfg.device.store,
            "device": self.cfg.device.id,
            "config_version": self.cfg.remote_version,
            "connected_since": self._attempt_time,
        }
        if state == "offline":
            doc["cause"] = "connection-lost" if will else "stopped"
        if not will:
            doc["time"] = time.time()
        return json.dumps(doc, separators=(",", ":")).encode()

    # --- paho callbacks (on the loop, inside paho's read) --------------------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        if rc.is_failure:
            self.last_error = f"broker refused the connection: {rc}"
            if rc.value in (0x86, 0x87, 4, 5):
                self.last_error += " (check [mqtt] username/password or the client certificate)"
            log.warning("%s", self.last_error)
            self._refused = True
            return
        self.state = "connected"
        self.connects += 1
        self.connected_cert = self.client_cert
        self.connected_since = time.time()
        self.last_error = ""
        max_packet = receive_max = None
        if props is not None and hasattr(props, "MaximumPacketSize"):
            max_packet = int(props.MaximumPacketSize)
        if props is not None and hasattr(props, "ReceiveMaximum"):
            receive_max = int(props.ReceiveMaximum)
        # birth: retained so that anyone subscribing later sees the device state
        client.publish(self.state_topic, self._state_payload("online"), qos=1, retain=True)
        if self.inbox is not None and self.downstream_topics:
            # every time: a broker that lost the session must learn them again; retained
            # documents arrive right after
            client.subscribe([(t, 1) for t in
                              [*self.downstream_topics, *sorted(self.extra_topics)]])
        log.info("uplink connected to %s:%s (session present: %s)", self.host, self.port,
                 bool(flags.session_present))
        self.cb.connected(ConnInfo(bool(flags.session_present), max_packet, receive_max))

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        was = self.state
        self.state = "disconnected"
        self.connected_since = None
        # the CONNACK's refusal says more than the closed connection that follows it
        if rc.is_failure and not self._stopping and not self._refused:
            self.last_error = f"connection lost: {rc}"
        if was == "connected":
            log.warning("uplink disconnected: %s", rc)
        self.cb.disconnected(self.last_error)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: Any) -> None:
        # handed over and back at once: the loop must go on reading PUBACKs (inbox.py)
        if self.inbox is None:
            return
        props = getattr(msg, "properties", None)
        try:
            self.inbox.offer(Downstream(
                msg.topic, bytes(msg.payload), str(getattr(props, "ResponseTopic", "") or ""),
                bytes(getattr(props, "CorrelationData", b"") or b""), bool(msg.retain)))
        except Exception:  # a fault of ours must not take the connection down
            log.exception("downstream message on %s not handed over", msg.topic[:200])

    def _on_oversized(self, topic: str, size: int) -> None:
        log.warning("dropped a downstream message of %d bytes on %s: over the %d bytes the "
                    "agent takes", size, topic[:200], MAX_DOWNSTREAM_PACKET)
        self.cb.oversized(topic, size)

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, rc: Any, props: Any
    ) -> None:
        self.cb.puback(mid, int(rc.value))

    # --- the connection, on the loop -----------------------------------------------------

    def force_reconnect(self) -> None:
        """Drop the connection; it is made again and paho re-sends what is unacknowledged
        (with the DUP flag)."""
        self.last_error = "broker did not acknowledge in time; reconnecting"
        with contextlib.suppress(OSError, RuntimeError):
            self.client.disconnect()

    def use_client_certificate(self, cert_file: str, key_file: str) -> None:
        """The next connection presents this certificate (a renewed one on trial, or the one
        in use before it, put back): loaded into the TLS context, which paho wraps every new
        socket with, and the connection dropped so that the next one is made with it. The
        session stays (same client id, clean start off); paho re-sends what is unacknowledged.
        Raises OSError or ssl.SSLError when the pair cannot be loaded: nothing changes then."""
        if self._tls is None:
            raise ValueError("the uplink is not mqtts://: there is no client certificate to change")
        self._tls.load_cert_chain(cert_file, key_file)
        self.client_cert = cert_file
        self.last_error = "reconnecting with another client certificate"
        with contextlib.suppress(OSError, RuntimeError):
            self.client.disconnect()

    def rebuild(self) -> None:
        """Forget paho's queue of unacknowledged messages at the next reconnect (the outbox
        still has every row; used when the broker keeps dropping us over one message)."""
        self._rebuild = True

    def _connect_blocking(self, props: Properties | None) -> None:
        """In a worker thread: DNS, TCP and the TLS handshake block. CONNECT is queued."""
        m = self.cfg.mqtt
        if props is not None:
            self.client.connect(self.host, self.port, keepalive=m.keepalive_s,
                                clean_start=False, properties=props)
        else:
            self.client.connect(self.host, self.port, keepalive=m.keepalive_s)

    async def _connect_once(self) -> None:
        m = self.cfg.mqtt
        # armed anew for each connection, so that what it says is true of this one
        self._attempt_time = time.time()
        self._refused = False
        self.attempts += 1
        self.client.will_set(self.state_topic, self._state_payload("offline", will=True), qos=1,
                             retain=True)
        props = None
        if self.v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = m.session_expiry_s
            # nothing downstream is larger than a content blob: a broker must not send more
            props.MaximumPacketSize = MAX_DOWNSTREAM_PACKET
        loop = asyncio.get_running_loop()
        if self._connector is None:
            self._connector = ThreadPoolExecutor(1, thread_name_prefix="mqtt-connect")
        self._connecting = loop.run_in_executor(self._connector, self._connect_blocking, props)
        # shielded: cancelled meanwhile, the worker still finishes, and close() waits for it
        await asyncio.shield(self._connecting)
        self._connecting = None

    async def run(self) -> None:
        """Connect, keep the connection, reconnect after a pause; until close()."""
        loop = asyncio.get_running_loop()
        try:
            while not self._stopping:
                self.state = "connecting"
                if self._rebuild:
                    self._rebuild = False
                    self.client = self._make_client()
                    self.cb.reset()
                began = time.monotonic()
                try:
                    await self._connect_once()
                except OSError as exc:
                    self._connecting = None
                    self.last_error = connect_error(exc, self.host, self.port, tls=self.tls)
                else:
                    pump = self._pump = Pump(self.client, loop)
                    pump.attach()
                    await pump.closed.wait()
                    pump.detach()
                    if not self.last_error:
                        self.last_error = "connection lost"
                    self.state = "disconnected"
                    self.connected_since = None
                if self._stopping:
                    break
                if time.monotonic() - began > STABLE_S:
                    self._backoff.reset()  # it was a working connection, not a flapping one
                delay = self._backoff.next_delay()
                log.info("uplink: %s; retrying in %.1fs", self.last_error, delay)
                self.cb.disconnected(self.last_error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
        finally:
            self._drop_socket()

    def _drop_socket(self) -> None:
        """No socket left open and watched, whatever ended the run (also a cancel)."""
        if self._pump is not None:
            self._pump.detach()
        with contextlib.suppress(OSError, RuntimeError, ValueError):
            sock = self.client.socket()
            if sock is not None:
                self.client._sock_close()  # paho's only "close now": disconnect() waits to write
        self.state = "disconnected"
        self.connected_since = None

    def publish(self, payload: bytes) -> int | None:
        """Publish one batch at QoS 1; returns its mid, or None if paho refused it now."""
        props = None
        if self.v5:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.ContentType = "application/cloudevents-batch+json"
        info = self.client.publish(self.events_topic, payload, qos=1, properties=props)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            self.last_error = f"publish failed: {mqtt.error_string(info.rc)}"
            return None
        return int(info.mid)

    def publish_reply(self, topic: str, correlation: bytes, payload: bytes) -> None:
        """An answer to a command: QoS 1 to the request's response topic."""
        props = None
        if self.v5 and correlation:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.CorrelationData = correlation
        self.client.publish(topic, payload, qos=1, properties=props)

    def want_topics(self, topics: set[str]) -> None:
        """Downstream topics wanted for a while (content files being fetched): subscribed
        now and on every connect until no longer wanted."""
        new, gone = topics - self.extra_topics, self.extra_topics - topics
        self.extra_topics = set(topics)
        if self.state == "connected" and self.inbox is not None:
            if new:
                self.client.subscribe([(t, 1) for t in sorted(new)])
            if gone:
                self.client.unsubscribe(sorted(gone))

    def resubscribe(self, topics: set[str]) -> None:
        """Subscribe again to topics already subscribed: the broker sends their retained
        messages anew (those the inbox had to drop). A reconnect does the same for all."""
        wanted = {*self.downstream_topics, *self.extra_topics}
        # a topic that matched one of our filters: subscribing to the filter brings it back
        filters = {f for f in wanted for t in topics if mqtt.topic_matches_sub(f, t)}
        if self.state == "connected" and filters:
            self.client.subscribe([(t, 1) for t in sorted(filters)])

    def announce(self, cfg: Config) -> None:
        """A configuration applied while connected: the retained birth says so at once
        (its [mqtt] section is the one this link already uses)."""
        self.cfg = cfg
        if self.state == "connected":
            self.client.publish(self.state_topic, self._state_payload("online"), qos=1,
                                retain=True)

    def publish_telemetry(self, payload: bytes) -> None:
        """Health for fleet monitoring: QoS 0, only while connected (never buffered)."""
        if self.state == "connected":
            self.client.publish(f"{self.cfg.topic_base}/telemetry", payload, qos=0)

    async def close(self, timeout: float = 5.0) -> None:
        """Say goodbye (retained offline state) when connected, then disconnect; on the loop.
        `run()` ends by itself once the socket is closed (or at once, between attempts)."""
        if self.state == "connected":
            try:
                info = self.client.publish(
                    self.state_topic, self._state_payload("offline"), qos=1, retain=True
                )
                deadline = time.monotonic() + min(timeout, GOODBYE_S)
                # the loop reads the PUBACK meanwhile: this only waits for it
                while not info.is_published() and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
            except (OSError, RuntimeError, ValueError):
                pass
        self._stopping = True
        self._stop.set()
        if self._connecting is not None:
            # a connect in its worker: let it end, then close what it opened (a client left
            # connected would take the next one's place at the broker: same client id)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._connecting), timeout)
            self._connecting = None
        with contextlib.suppress(OSError, RuntimeError):
            self.client.disconnect()
        pump = self._pump
        if pump is not None and self.client.socket() is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pump.closed.wait(), timeout)
        self._drop_socket()
        if self._connector is not None:
            self._connector.shutdown(wait=False)  # idle: any connect was waited for above
            self._connector = None
