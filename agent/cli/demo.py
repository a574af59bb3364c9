"""`o2o-edge demo`: the real agent with a simulated store, syncing to a broker on localhost or a
private mosquitto; halfway through a private broker is stopped for a while to show buffering."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.config import BusConfig, Config, DeviceConfig, MqttConfig, OutboxConfig
from simulators.brokers import BrokerUnavailable, PrivateMosquitto, port_open
from simulators.demo_source import simulated_store


class _Collector:
    """A QoS 1 subscriber counting the events that reach the broker."""

    def __init__(self, url: str, topic: str) -> None:
        host, port = url.split("//", 1)[1].rsplit(":", 1)
        self.ids: set[str] = set()
        self.messages = 0
        self.lock = threading.Lock()
        # a persistent session, as an upstream collector has: the broker queues for it
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"demo-collector-{port}",
                                  protocol=mqtt.MQTTv5)
        self.ready = threading.Event()
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda c, u, mid, codes, p: self.ready.set()
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        self.client.connect_async(host, int(port), clean_start=False, properties=props)
        self.client.reconnect_delay_set(1, 2)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        if not msg.topic.endswith("/events"):
            return
        batch = json.loads(msg.payload)
        with self.lock:
            self.messages += 1
            self.ids.update(e["id"] for e in batch)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _pick_broker(args: argparse.Namespace, workdir: Path) -> tuple[str, PrivateMosquitto | None]:
    if args.broker:
        return args.broker, None
    if not args.private and port_open("127.0.0.1", 1883):
        return "mqtt://127.0.0.1:1883", None
    try:
        broker = PrivateMosquitto(workdir / "broker")
        broker.start()
        return broker.url, broker
    except (BrokerUnavailable, RuntimeError) as exc:
        print(f"demo: no broker ({exc}); events stay buffered in the outbox")
        return "", None


def cmd_demo(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="o2o-edge-demo-") as tmp:
        workdir = Path(tmp)
        url, broker = _pick_broker(args, workdir)
        cfg = Config(
            device=DeviceConfig(store="demo-store", id=f"demo-pi-{int(time.time()) % 100000}"),
            outbox=OutboxConfig(path=workdir / "outbox.db"),
            mqtt=MqttConfig(url=url, backoff_min_s=0.2, backoff_max_s=2.0),
            bus=BusConfig(socket=workdir / "agent.sock"),
            source="demo",
        )
        collector = _Collector(url, f"{cfg.topic_base}/#") if url else None
        if collector is not None and not collector.ready.wait(10):
            print(f"demo: could not subscribe at {url}; upstream counts will stay at 0")
        print(f"demo: store={cfg.device.store} device={cfg.device.id} "
              f"broker={url or 'none'} outbox={cfg.outbox.path}")
        if broker is not None:
            print("demo: a private mosquitto was started; it will be stopped for a while "
                  "halfway to show events buffering and catching up")
        try:
            asyncio.run(_run(args, cfg, broker, collector))
        finally:
            if collector is not None:
                collector.stop()
            if broker is not None:
                broker.stop()
    return 0


async def _run(
    args: argparse.Namespace, cfg: Config, broker: PrivateMosquitto | None,
    collector: _Collector | None,
) -> None:
    from agent.daemon import Agent

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    agent = Agent(cfg, {"simulated-store": lambda cap: simulated_store(cap, rate=args.rate)})
    task = asyncio.create_task(agent.run(stop))
    await agent.ready.wait()
    start = time.monotonic()
    outage = (args.duration * 0.35, args.duration * 0.6) if broker is not None else None
    broker_down = False
    while not stop.is_set() and time.monotonic() - start < args.duration:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
        elapsed = time.monotonic() - start
        if outage and broker is not None:
            if not broker_down and outage[0] <= elapsed < outage[1]:
                await asyncio.to_thread(broker.stop)
                broker_down = True
                print("demo: >>> broker stopped: capture goes on, the outbox grows")
            elif broker_down and elapsed >= outage[1]:
                await asyncio.to_thread(broker.start)
                broker_down = False
                print("demo: >>> broker back: the backlog drains")
        st = agent.status()
        o, u = st["outbox"], st["uplink"]
        got = len(collector.ids) if collector else 0
        print(f"[{elapsed:5.1f}s] captured={o['seq']:5d}  outbox depth={o['depth']:5d}  "
              f"uplink={u['state']:<12} acked={u.get('acked_events', 0):5d}  "
              f"received upstream={got:5d}", flush=True)
    if broker_down and broker is not None:
        await asyncio.to_thread(broker.start)
    # stop the shoppers, then let the backlog drain before stopping the agent
    await agent.supervisor.stop(["simulated-store"])
    deadline = time.monotonic() + 15
    while cfg.mqtt.url and agent.status()["outbox"]["depth"] > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    stop.set()
    await task
    got = len(collector.ids) if collector else 0
    from agent.outbox import open_reader

    reader = open_reader(cfg.outbox.path)
    depth = reader.stats()["depth"]
    reader.close()
    print(f"demo: done. captured {agent.writer.seq} events this boot, "
          f"{depth} still buffered, {got} received upstream "
          f"(duplicates removed by id).")
