"""`o2o-edge collect --broker URL --db URL`: the reference collector — a QoS 1 persistent
subscriber to every store's events that stores them idempotently by id and reports gaps and
duplicates per device and boot (`--report`).

`mqtts://` is TLS with the agent's own TLS setup (system CAs unless --ca-file), never a
plaintext fallback; plaintext to a host that is not this machine is refused unless
--allow-insecure, as the agent's [mqtt] does. paho is driven from this thread (no network
thread of its own) and acknowledges nothing by itself: the messages read are stored together,
in one transaction, and only then PUBACKed. So a message that cannot be stored stops the
collector before its PUBACK, and a collector killed mid-batch leaves its messages with the
broker (for its session, or another collector of a shared subscription where the broker hands
them over): nothing is lost, at most stored twice and counted as a duplicate.

Several collectors share the load with `--shared GROUP` (an MQTT shared subscription, each with
its own `--client-id`); the database makes them idempotent by event id."""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import threading
import time
from typing import Any, Final
from urllib.parse import urlsplit

from agent.config import is_loopback
from agent.config_checks import MQTT_MAX_EXPIRY, check_text
from agent.errors import AgentError, ConfigError, Reason

# the password from the environment, not argv, where `ps` shows it to every user
PASSWORD_ENV: Final = "O2O_EDGE_COLLECT_PASSWORD"  # noqa: S105 - a variable name
KEEPALIVE_S: Final = 30
BACKOFF_MAX_S: Final = 30.0  # reconnect after a lost connection: full jitter up to this
# Messages stored per transaction at most; the broker's window (our Receive Maximum on MQTT 5,
# max_ack_pending on NATS) bounds it too: unacknowledged, no more arrive.
BATCH_MESSAGES: Final = 500
RECEIVE_MAXIMUM: Final = 1000
BATCH_WAIT_S: Final = 0.05  # the oldest message read waits at most this for others
# Connections closed before any CONNACK tried again before giving up (about 15 s in all): a
# NATS node closes them while the cluster elects the leader of the sessions' stream.
EARLY_CLOSE_RETRIES: Final = 5


def add_parser(sub: Any) -> None:
    from agent.cli import collect as me

    p = sub.add_parser("collect", help="the reference collector: events from the broker into "
                                       "a database, deduplicated, with gap and duplicate "
                                       "reports")
    p.add_argument("--broker", default="mqtt://127.0.0.1:1883",
                   help="mqtt://HOST:PORT, or mqtts://HOST:PORT for TLS (default port 8883)")
    p.add_argument("--db", required=True, help="sqlite:///PATH or postgresql://USER@HOST/DB")
    p.add_argument("--topic", default="o2o/v1/+/+/events")
    p.add_argument("--client-id", default="o2o-collector",
                   help="its persistent session's name (default o2o-collector)")
    p.add_argument("--shared", metavar="GROUP",
                   help="join a shared subscription ($share/GROUP/...) where the broker has them")
    p.add_argument("--protocol", choices=["5", "3.1.1"], default="5",
                   help="MQTT version (3.1.1 for NATS' MQTT; default 5)")
    p.add_argument("--session-expiry", type=int, default=86400, metavar="S",
                   help="how long the broker keeps the session and its messages while the "
                        "collector is away (MQTT 5; default 86400)")
    p.add_argument("--ca-file", default="", metavar="PEM",
                   help="CA certificate(s) the broker's certificate must chain to "
                        "(mqtts://; default: the system's CAs)")
    p.add_argument("--cert-file", default="", metavar="PEM",
                   help="client certificate for mutual TLS (with --key-file)")
    p.add_argument("--key-file", default="", metavar="PEM", help="its private key")
    p.add_argument("--username", default="", help="MQTT user name")
    p.add_argument("--password", default=None,
                   help=f"MQTT password; better in ${PASSWORD_ENV}, which `ps` does not show")
    p.add_argument("--allow-insecure", action="store_true",
                   help="allow plaintext mqtt:// to a host that is not this machine")
    p.add_argument("--duration", type=float, default=0.0, help="stop after N seconds (0: run)")
    p.add_argument("--report", action="store_true", help="print the report and exit")
    p.set_defaults(handler=me.cmd_collect)


class _StoreFailed(Exception):
    """Raised out of on_message so paho does not acknowledge what was not stored."""


def _valid_filter(topic: str) -> bool:
    """An MQTT topic filter paho and the broker accept: '#' last and alone in its level, '+'
    alone in its level, no NUL, at most 65535 bytes."""
    if not topic or "\0" in topic or len(topic.encode()) > 65535:
        return False
    levels = topic.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return True


def _options(args: argparse.Namespace) -> tuple[str, int, bool]:
    """(host, port, tls) from the arguments, each mistake a ConfigError saying what to do."""
    for name in ("broker", "topic", "client_id", "shared", "ca_file", "cert_file", "key_file",
                 "username", "password"):
        value = getattr(args, name)
        if value and (problem := check_text(value)):
            raise ConfigError(f"--{name.replace('_', '-')}: must be {problem}")
    parts = urlsplit(args.broker)
    try:
        port = parts.port
    except ValueError:
        port = 0
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname or port == 0:
        raise ConfigError(f"--broker {args.broker!r}: give mqtt://HOST:PORT or "
                          "mqtts://HOST:PORT (a port from 1 to 65535)")
    tls = parts.scheme == "mqtts"
    host = parts.hostname
    if not tls and not is_loopback(host) and not args.allow_insecure:
        raise ConfigError(f"--broker {args.broker!r} is plaintext to a host that is not this "
                          "machine; use mqtts:// (with --ca-file if the broker's CA is not a "
                          "system one), or --allow-insecure if you really mean it")
    if bool(args.cert_file) != bool(args.key_file):
        raise ConfigError("--cert-file and --key-file go together (a client certificate and "
                          "its private key)")
    if not tls and (args.ca_file or args.cert_file or args.key_file):
        raise ConfigError("--ca-file, --cert-file and --key-file need an mqtts:// --broker")
    if not _valid_filter(args.topic):
        raise ConfigError(f"--topic {args.topic!r}: not an MQTT topic filter ('+' and '#' "
                          "only as a whole level, '#' last)")
    if args.shared is not None and (not args.shared or any(c in args.shared for c in "/+#")):
        raise ConfigError("--shared: a group name without '/', '+' or '#'")
    if not args.client_id or len(args.client_id.encode()) > 65535:
        raise ConfigError("--client-id: give a name (1-65535 bytes)")
    if not 0 <= args.session_expiry <= MQTT_MAX_EXPIRY:
        raise ConfigError(f"--session-expiry: 0 to {MQTT_MAX_EXPIRY} seconds")
    if not 0 <= args.duration < 1e9:  # also refuses nan
        raise ConfigError("--duration: seconds, 0 or more (0: run until stopped)")
    return host, port or (8883 if tls else 1883), tls


def _client(args: argparse.Namespace, tls: bool) -> Any:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from agent.tlsopts import client_tls_context

    v5 = args.protocol == "5"
    # manual_ack: a message is acknowledged once its transaction is committed, not on reading
    client = (mqtt.Client(CallbackAPIVersion.VERSION2, client_id=args.client_id,
                          protocol=mqtt.MQTTv5, manual_ack=True) if v5 else
              mqtt.Client(CallbackAPIVersion.VERSION2, client_id=args.client_id,
                          protocol=mqtt.MQTTv311, clean_session=False, manual_ack=True))
    password = args.password if args.password is not None else os.environ.get(PASSWORD_ENV)
    if args.username or password:
        client.username_pw_set(args.username or None, password or None)
    if tls:  # verified against the system CAs or --ca-file; never falls back to plaintext
        client.tls_set_context(client_tls_context(args.ca_file, args.cert_file, args.key_file))
    return client


def cmd_collect(args: argparse.Namespace) -> int:
    from agent.collector.store import EventStore

    try:
        store = EventStore(args.db)
    except ValueError as exc:
        print(f"o2o-edge collect: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:  # PostgreSQL's driver is the `collector` extra, not the device's
        print(f"o2o-edge collect: --db postgresql://... needs the PostgreSQL driver ({exc}): "
              "pip install 'o2o-edge[collector]'", file=sys.stderr)
        return 2
    try:
        if args.report:
            print(json.dumps(store.report(), indent=2))
            return 0
        host, port, tls = _options(args)
        return _collect(args, store, host, port, tls)
    finally:
        store.close()


def _collect(args: argparse.Namespace, store: Any, host: str, port: int, tls: bool) -> int:
    from paho.mqtt.client import MQTT_LOG_ERR
    from paho.mqtt.enums import MQTTErrorCode
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from agent.tlsopts import connect_problem

    client = _client(args, tls)
    topic = f"$share/{args.shared}/{args.topic}" if args.shared else args.topic
    v5 = args.protocol == "5"
    stats = {"new": 0, "duplicates": 0}
    refused: list[str] = []

    def on_connect(c: Any, u: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            refused.append(str(rc))
        elif not flags.session_present:
            c.subscribe(topic, qos=1)  # a kept session still has it (and what is queued)

    pending: list[tuple[int, int, bytes]] = []  # (mid, qos, payload) read, not yet stored
    first_read = 0.0

    def on_message(c: Any, u: Any, msg: Any) -> None:
        nonlocal first_read
        if not pending:
            first_read = time.monotonic()
        pending.append((msg.mid, msg.qos, bytes(msg.payload)))

    def flush(ack: bool = True) -> None:
        """Store what was read in one transaction, then acknowledge it (not when the
        connection it came on is gone: the broker sends it again, a duplicate)."""
        try:
            new, dup = store.add_batches([p for _, _, p in pending])
        except Exception as exc:
            raise _StoreFailed(str(exc)) from exc
        stats["new"] += new
        stats["duplicates"] += dup
        for mid, qos, _ in pending if ack else ():
            client.ack(mid, qos)
        pending.clear()

    def on_log(c: Any, u: Any, level: int, text: str) -> None:
        if level == MQTT_LOG_ERR:  # why a read failed: a TLS alert, a reset
            paho_errors.append(text)

    client.on_connect = on_connect
    client.on_message = on_message
    client.on_log = on_log
    paho_errors: list[str] = []
    accepted = False  # a CONNACK that accepted us came at least once
    where = f"{host}:{port}"

    def connect() -> None:
        if v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = args.session_expiry  # kept while we are away
            props.ReceiveMaximum = RECEIVE_MAXIMUM
            client.connect(host, port, keepalive=KEEPALIVE_S, clean_start=False,
                           properties=props)
        else:
            client.connect(host, port, keepalive=KEEPALIVE_S)

    try:
        connect()
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise AgentError(Reason.UPLINK, f"collect: cannot connect to {where}: "
                                        f"{connect_problem(exc, tls)}") from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    early_closes = 0  # connections closed before a CONNACK accepted us

    def early_close_problem() -> str:
        why = paho_errors[0] if paho_errors else "the connection was closed"
        return (f"the broker at {where} closed the connection before accepting it ({why}); "
                "check the client certificate (--cert-file, --key-file), the credentials "
                "and that the port speaks MQTT")

    deadline = time.monotonic() + args.duration if args.duration else None
    failure = ""
    attempt = 0
    try:
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            try:
                before = len(pending)
                rc = client.loop(timeout=0.01 if pending else 0.2)
                # stored when nothing more came (the broker's window is full, or the stores
                # are quiet), the batch is full, or its first message waited long enough
                if pending and (len(pending) == before or len(pending) >= BATCH_MESSAGES
                                or time.monotonic() - first_read >= BATCH_WAIT_S):
                    flush()
            except _StoreFailed as exc:
                failure = (f"cannot store events in {args.db} ({exc}); stopped without "
                           "acknowledging them: the broker keeps them for the next run")
                break
            if refused:
                failure = (f"the broker at {where} refused the connection: {refused[0]}; "
                           "check --username/--password (or $" + PASSWORD_ENV + ") and the "
                           "client certificate")
                break
            if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                accepted = accepted or client.is_connected()
                attempt = 0
                continue
            if pending:
                flush(ack=False)
            if not accepted:
                # closed before it ever accepted us: a TLS alert or credentials will not
                # change, so that is the end; a plain close may be a cluster node electing a
                # leader (NATS closes MQTT connections whose session it cannot load yet):
                # tried again quietly, a few times
                early_closes += 1
                if paho_errors or early_closes > EARLY_CLOSE_RETRIES:
                    failure = early_close_problem()
                    break
            attempt += 1  # lost: reconnect with full jitter, as the agent does
            delay = random.uniform(0, min(BACKOFF_MAX_S, 0.5 * 2**min(attempt, 8)))  # noqa: S311
            if accepted:
                print(f"o2o-edge collect: connection to {where} lost; retrying in "
                      f"{delay:.1f}s", file=sys.stderr, flush=True)
            if stop.wait(delay):
                break
            try:
                client.reconnect()
            except (OSError, ValueError) as exc:
                print(f"o2o-edge collect: {where}: {connect_problem(exc, tls)}",
                      file=sys.stderr, flush=True)
        if early_closes and not accepted and not failure:
            failure = early_close_problem()  # stopped while still trying
        if pending and not failure:
            flush()
            client.loop(timeout=0.1)  # the acknowledgements out before DISCONNECT
    except KeyboardInterrupt:
        pass
    except _StoreFailed as exc:
        failure = f"cannot store events in {args.db} ({exc})"
    finally:
        client.disconnect()
        print(json.dumps({"stored": store.count(), **stats,
                          "unreadable_messages": store.bad_messages}))
    if failure:
        print(f"o2o-edge collect: {failure}", file=sys.stderr)
        return 1
    return 0
