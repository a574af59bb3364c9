"""The MQTT connection: paho-mqtt 2.x in a thread of its own, reconnecting with jittered backoff.

paho calls back from this thread; the callbacks given here must only hand the news over (no
locks shared with `publish()`: holding a lock around publish while on_publish takes it
deadlocks). Downstream messages too are only handed over (inbox.py): while this thread is
busy, no PUBACK is read and no PINGREQ sent. paho re-sends unacknowledged QoS 1 messages
after a reconnect from memory only; the outbox, not paho, is the source of truth.
"""

from __future__ import annotations

import contextlib
import json
import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent import __version__
from agent.config import Config
from agent.errors import AgentError, Reason
from agent.uplink.client import MAX_DOWNSTREAM_PACKET, BoundedClient
from agent.uplink.inbox import Downstream, Inbox
from drivers.retry import Backoff

log = logging.getLogger(__name__)

STABLE_S = 10.0
# what a TLS client meets when the port speaks plain MQTT: the broker reads the ClientHello
# as a malformed packet and closes, or answers bytes that are no TLS record
_NOT_TLS_ERRORS: Final = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError,
                          ssl.SSLEOFError, ssl.SSLZeroReturnError)
_NOT_TLS_REASONS: Final = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE",
                                     "UNEXPECTED_EOF_WHILE_READING", "HTTP_REQUEST",
                                     "PACKET_LENGTH_TOO_LONG", "UNKNOWN_PROTOCOL"})


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


def _not_a_tls_port(exc: OSError) -> bool:
    if isinstance(exc, _NOT_TLS_ERRORS):
        return True
    return isinstance(exc, ssl.SSLError) and str(exc.reason or "") in _NOT_TLS_REASONS


def _tls_context(cfg: Config) -> ssl.SSLContext:
    m = cfg.mqtt
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=m.ca_file or None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if m.cert_file:
        try:
            ctx.load_cert_chain(m.cert_file, m.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise AgentError(
                Reason.TLS, f"cannot load client certificate {m.cert_file} / {m.key_file}: {exc}"
            ) from exc
    return ctx


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
        self._stop = threading.Event()
        self._rebuild = threading.Event()
        self._thread: threading.Thread | None = None
        self._backoff = Backoff(cfg.mqtt.backoff_min_s, cfg.mqtt.backoff_max_s)
        # where downstream messages go (handed over, never handled on the network thread)
        self.inbox: Inbox | None = None
        self.downstream_topics: list[str] = []
        self.extra_topics: set[str] = set()  # wanted for a while (content blobs)
        self.client = self._make_client()

    # --- setup -------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        m = self.cfg.mqtt
        if self.v5:
            client: mqtt.Client = BoundedClient(
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
            client.tls_set_context(_tls_context(self.cfg))
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

    # --- paho callbacks (network thread) ------------------------------------------------

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
        if rc.is_failure and not self._stop.is_set() and not self._refused:
            self.last_error = f"connection lost: {rc}"
        if was == "connected":
            log.warning("uplink disconnected: %s", rc)
        self.cb.disconnected(self.last_error)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: Any) -> None:
        # handed over and back at once: the thread must go on reading PUBACKs (inbox.py)
        if self.inbox is None:
            return
        props = getattr(msg, "properties", None)
        try:
            self.inbox.offer(Downstream(
                msg.topic, bytes(msg.payload), str(getattr(props, "ResponseTopic", "") or ""),
                bytes(getattr(props, "CorrelationData", b"") or b""), bool(msg.retain)))
        except Exception:  # a fault of ours must not take the connection thread down
            log.exception("downstream message on %s not handed over", msg.topic[:200])

    def _on_oversized(self, topic: str, size: int) -> None:
        log.warning("dropped a downstream message of %d bytes on %s: over the %d bytes the "
                    "agent takes", size, topic[:200], MAX_DOWNSTREAM_PACKET)
        self.cb.oversized(topic, size)

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, rc: Any, props: Any
    ) -> None:
        self.cb.puback(mid, int(rc.value))

    # --- connection thread --------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mqtt-link", daemon=True)
        self._thread.start()

    def force_reconnect(self) -> None:
        """Drop the connection; the link thread reconnects and paho re-sends what is
        unacknowledged (with the DUP flag)."""
        self.last_error = "broker did not acknowledge in time; reconnecting"
        with contextlib.suppress(OSError, RuntimeError):
            self.client.disconnect()

    def rebuild(self) -> None:
        """Forget paho's queue of unacknowledged messages at the next reconnect (the outbox
        still has every row; used when the broker keeps dropping us over one message)."""
        self._rebuild.set()

    def _connect_once(self) -> None:
        m = self.cfg.mqtt
        # armed anew for each connection, so that what it says is true of this one
        self._attempt_time = time.time()
        self._refused = False
        self.client.will_set(self.state_topic, self._state_payload("offline", will=True), qos=1,
                             retain=True)
        if self.v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = m.session_expiry_s
            # nothing downstream is larger than a content blob: a broker must not send more
            props.MaximumPacketSize = MAX_DOWNSTREAM_PACKET
            self.client.connect(
                self.host, self.port, keepalive=m.keepalive_s, clean_start=False,
                properties=props,
            )
        else:
            self.client.connect(self.host, self.port, keepalive=m.keepalive_s)

    def _connect_error(self, exc: OSError) -> str:
        where = f"{self.host}:{self.port}"
        if self.tls and _not_a_tls_port(exc):
            return (f"TLS handshake with {where} failed — is this a TLS port? (the server "
                    f"does not speak TLS there: {exc}; mqtts:// needs the broker's TLS "
                    "listener)")
        if isinstance(exc, ssl.SSLError):
            detail = exc.reason or str(exc)
            if isinstance(exc, ssl.SSLCertVerificationError):
                detail = f"certificate verify failed: {exc.verify_message}"
            return (f"TLS handshake with {where} failed: {detail}"
                    " (check [mqtt] ca_file, cert_file, key_file and the broker's certificate)")
        return f"cannot reach broker {where}: {exc}"

    def _run(self) -> None:
        while not self._stop.is_set():
            self.state = "connecting"
            if self._rebuild.is_set():
                self._rebuild.clear()
                self.client = self._make_client()
                self.cb.reset()
            began = time.monotonic()
            try:
                self._connect_once()
            except OSError as exc:
                self.last_error = self._connect_error(exc)
            else:
                while not self._stop.is_set():
                    rc = self.client.loop(timeout=0.2)
                    if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                        if not self.last_error:
                            self.last_error = f"connection lost: {mqtt.error_string(rc)}"
                        break
                self.state = "disconnected"
                self.connected_since = None
            if self._stop.is_set():
                break
            if time.monotonic() - began > STABLE_S:
                self._backoff.reset()  # it was a working connection, not a flapping one
            delay = self._backoff.next_delay()
            log.info("uplink: %s; retrying in %.1fs", self.last_error, delay)
            self.cb.disconnected(self.last_error)
            self._stop.wait(delay)

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

    def stop(self, timeout: float = 5.0) -> None:
        """Say goodbye (retained offline state) when connected, then disconnect."""
        if self.state == "connected":
            try:
                info = self.client.publish(
                    self.state_topic, self._state_payload("offline"), qos=1, retain=True
                )
                deadline = time.monotonic() + min(timeout, 2.0)
                while not info.is_published() and time.monotonic() < deadline:
                    time.sleep(0.02)
            except (OSError, RuntimeError, ValueError):
                pass
        self._stop.set()
        with contextlib.suppress(OSError, RuntimeError):
            self.client.disconnect()
        if self._thread is not None:
            self._thread.join(timeout)
