"""`o2o-edge collect --broker URL --db URL`: the reference collector — a QoS 1 persistent
subscriber to every store's events that stores them idempotently by id and reports gaps and
duplicates per device and boot (`--report`)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from typing import Any
from urllib.parse import urlsplit


def add_parser(sub: Any) -> None:
    from agent.cli import collect as me

    p = sub.add_parser("collect", help="the reference collector: events from the broker into "
                                       "a database, deduplicated, with gap and duplicate "
                                       "reports")
    p.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="mqtt://HOST:PORT")
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
    p.add_argument("--duration", type=float, default=0.0, help="stop after N seconds (0: run)")
    p.add_argument("--report", action="store_true", help="print the report and exit")
    p.set_defaults(handler=me.cmd_collect)


def cmd_collect(args: argparse.Namespace) -> int:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from agent.collector.store import EventStore

    try:
        store = EventStore(args.db)
    except ValueError as exc:
        print(f"o2o-edge collect: {exc}", file=sys.stderr)
        return 2
    if args.report:
        print(json.dumps(store.report(), indent=2))
        store.close()
        return 0
    parts = urlsplit(args.broker)
    topic = f"$share/{args.shared}/{args.topic}" if args.shared else args.topic
    v5 = args.protocol == "5"
    client = (mqtt.Client(CallbackAPIVersion.VERSION2, client_id=args.client_id,
                          protocol=mqtt.MQTTv5) if v5 else
              mqtt.Client(CallbackAPIVersion.VERSION2, client_id=args.client_id,
                          protocol=mqtt.MQTTv311, clean_session=False))
    stats = {"new": 0, "duplicates": 0}

    def on_connect(c: Any, u: Any, flags: Any, rc: Any, props: Any) -> None:
        if not rc.is_failure and not flags.session_present:
            c.subscribe(topic, qos=1)  # a kept session still has it (and what is queued)

    def on_message(c: Any, u: Any, msg: Any) -> None:
        new, dup = store.add_batch(bytes(msg.payload))  # stored before paho acknowledges
        stats["new"] += new
        stats["duplicates"] += dup

    client.on_connect = on_connect
    client.on_message = on_message
    host, port = parts.hostname or "127.0.0.1", parts.port or 1883
    if v5:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = args.session_expiry  # kept while we are away
        client.connect(host, port, clean_start=False, properties=props)
    else:
        client.connect(host, port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    client.loop_start()
    try:
        deadline = time.monotonic() + args.duration if args.duration else None
        while not stop.wait(0.2):
            if deadline is not None and time.monotonic() > deadline:
                break
    except KeyboardInterrupt:
        pass
    finally:
        client.loop_stop()
        client.disconnect()
        print(json.dumps({"stored": store.count(), **stats,
                          "unreadable_messages": store.bad_messages}))
        store.close()
    return 0
