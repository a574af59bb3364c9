"""One BLE advert followed from bleak's detection callback to paho's socket write: the thread
each step runs on, and how many times the advert changes threads on the way (hand-offs).

The agent runs in this process against a private Mosquitto, its BLE source on unmodified
bleak over the fake BlueZ (a private D-Bus). The steps are observed by wrapping the functions
that do them — here, in the bench; nothing in the product knows it is watched. A step is
recorded the first time it handles the followed advert's event (an opted-in app with a
major/minor of its own, so nothing else carries its identity).

    python -m tests.bench.ble_handoffs      (also part of `dev.py bench-ble`)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

APP_UUID = "2f234454-cf6d-4a0f-adf2-f4911ba9ffa6"
MAJOR, MINOR = 4242, 17
MARK = f"app:{APP_UUID}:{MAJOR}:{MINOR}"  # the presence event's id: only this advert's
ADDRESS = "4A:00:00:00:42:42"

# in the order the advert's event takes them
STEPS = ("bleak callback", "BLE source", "capture (outbox submit)", "outbox commit",
         "commit fan-out to the uplink", "uplink woken", "batch built", "publish",
         "socket write")


class Trace:
    def __init__(self) -> None:
        self.threads: dict[str, str] = {}
        self.loop_ident: int | None = None
        self.lock = threading.Lock()

    def see(self, step: str) -> None:
        me = threading.current_thread()
        with self.lock:
            if step in self.threads:
                return
            if step == "uplink woken" and "commit fan-out to the uplink" not in self.threads:
                return  # a wake for an earlier commit, not for the followed event
            name = "event loop" if threading.get_ident() == self.loop_ident else me.name
            self.threads[step] = name

    def complete(self) -> bool:
        return all(s in self.threads for s in STEPS)

    def handoffs(self) -> list[tuple[str, str, str]]:
        """(from step, to step, "thread -> thread") for each change of thread."""
        out = []
        for a, b in itertools.pairwise(STEPS):
            ta, tb = self.threads.get(a), self.threads.get(b)
            if ta and tb and ta != tb:
                out.append((a, b, f"{ta} -> {tb}"))
        return out

    def report(self) -> dict[str, Any]:
        return {"steps": {s: self.threads.get(s, "(not seen)") for s in STEPS},
                "handoffs": len(self.handoffs()),
                "which": [f"{a} -> {b}: {how}" for a, b, how in self.handoffs()],
                "goal": "<= 2"}


def _wrap(owner: Any, name: str, before: Callable[..., None]) -> Callable[[], None]:
    """Replace owner.name by a function that calls `before(*args)` first; returns the undo."""
    original = getattr(owner, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with contextlib.suppress(Exception):  # watching must never change what happens
            before(*args, **kwargs)
        return original(*args, **kwargs)

    setattr(owner, name, wrapped)
    return lambda: setattr(owner, name, original)


def _marked(value: Any) -> bool:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return MARK.encode() in bytes(value)
    return MARK in str(value)


@contextlib.contextmanager
def watching(trace: Trace) -> Iterator[None]:
    """Wrap each step's function (before the agent is built: bound methods are taken then)."""
    import paho.mqtt.client as mqtt

    import agent.uplink.batching as batching
    import drivers.ble.scanner as scanner_mod
    from agent.outbox.writer import OutboxWriter
    from agent.presence.ble_source import BleSource
    from agent.uplink.drain import Uplink
    from agent.uplink.link import MqttLink

    real_advert = scanner_mod.Advert

    def advert(*args: Any, **kwargs: Any) -> Any:
        adv = real_advert(*args, **kwargs)
        if adv.address == ADDRESS:
            trace.see("bleak callback")
        return adv

    def on_batches(result: Any) -> None:
        if any(_marked(b.payload) for b in result):
            trace.see("batch built")

    real_build = batching.build_batches

    def build(*args: Any, **kwargs: Any) -> Any:
        result = real_build(*args, **kwargs)
        with contextlib.suppress(Exception):
            on_batches(result)
        return result

    undo: list[Callable[[], None]] = []
    # the batcher by every name it is bound to in the uplink's modules
    for mod in [m for n, m in list(sys.modules.items()) if n.startswith("agent.uplink")]:
        if getattr(mod, "build_batches", None) is real_build:
            mod.build_batches = build
            undo.append(lambda mod=mod: setattr(mod, "build_batches", real_build))
    scanner_mod.Advert = advert  # type: ignore[misc]
    undo.append(lambda: setattr(scanner_mod, "Advert", real_advert))
    undo.append(_wrap(BleSource, "on_advert", lambda self, adv: adv.address == ADDRESS
                      and trace.see("BLE source")))
    undo.append(_wrap(OutboxWriter, "submit", lambda self, events: _marked(
        [e.data_json for e in events]) and trace.see("capture (outbox submit)")))
    if hasattr(OutboxWriter, "_committed"):
        def committed(self: Any, rows: Any, first_n: int) -> None:
            if _marked(rows):
                trace.see("outbox commit")
        undo.append(_wrap(OutboxWriter, "_committed", committed))
    undo.append(_wrap(Uplink, "notify_committed", lambda self, cs: _marked(
        [c.body for c in cs]) and trace.see("commit fan-out to the uplink")))
    undo.append(_wrap(Uplink, "_on_committed", lambda self, *a: trace.see("uplink woken")))
    undo.append(_wrap(MqttLink, "publish", lambda self, payload: _marked(payload)
                      and trace.see("publish")))
    undo.append(_wrap(mqtt.Client, "_sock_send", lambda self, buf: _marked(buf)
                      and trace.see("socket write")))
    try:
        yield
    finally:
        for u in reversed(undo):
            u()


def _config(tmp: Path, url: str) -> Any:
    from agent.config import load_config

    path = tmp / "config.toml"
    path.write_text(
        f'[device]\nstore = "bench"\nid = "handoffs"\n[outbox]\npath = "{tmp}/outbox.db"\n'
        f'[mqtt]\nurl = "{url}"\nbackoff_min_s = 0.1\nbackoff_max_s = 1.0\n'
        f'[bus]\nsocket = "{tmp}/agent.sock"\n[metrics]\nlisten = ""\n'
        f'[ble]\nenabled = true\nmode = "active"\napp_uuids = ["{APP_UUID}"]\n')
    return load_config(str(path))


async def _advertise_until(fake: Any, done: Callable[[], bool], timeout: float) -> None:
    from drivers.ble.models import IBeacon
    from simulators.ble_frames import encode

    manufacturer, service = encode(IBeacon(APP_UUID, MAJOR, MINOR, -59))
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            return
        if fake.discovering:
            fake.advertise(ADDRESS, -55, manufacturer, service)
        await asyncio.sleep(0.05)


def follow_one_advert(tmp: Path, bus_address: str, broker_url: str,
                      timeout: float = 30.0) -> Trace:
    """The agent against `broker_url` and a fake BlueZ on the D-Bus at `bus_address` (which
    must be DBUS_SYSTEM_BUS_ADDRESS already); advertise the app until its presence event has
    been written to the broker's socket, or `timeout`."""
    from simulators.fake_bluez import FakeBlueZ
    from tests.conftest import agent_in_thread

    trace = Trace()
    with watching(trace), agent_in_thread(_config(tmp, broker_url)) as (_agent, loop):
        got = threading.Event()
        loop.call_soon_threadsafe(lambda: (setattr(trace, "loop_ident", threading.get_ident()),
                                           got.set()))
        got.wait(10)

        async def run() -> None:
            fake = FakeBlueZ(bus_address)
            await fake.start()
            try:
                await _advertise_until(fake, trace.complete, timeout)
            finally:
                await fake.stop()

        asyncio.run(run())
    return trace


def measure() -> dict[str, Any]:
    """A private broker and D-Bus of its own; the report of one followed advert."""
    from simulators.brokers import PrivateMosquitto
    from simulators.fake_bluez import PrivateBus

    tmp = Path(tempfile.mkdtemp(prefix="o2o-handoffs-"))
    bus = PrivateBus()
    bus.start()
    broker = PrivateMosquitto(tmp / "mosquitto")
    broker.start()
    saved = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
    os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = bus.address
    try:
        return follow_one_advert(tmp, bus.address, broker.url).report()
    finally:
        if saved is None:
            os.environ.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
        else:
            os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = saved
        broker.kill()
        bus.stop()


def main() -> int:
    report = measure()
    print(json.dumps(report, indent=2))
    return 0 if "(not seen)" not in report["steps"].values() else 1


if __name__ == "__main__":
    sys.exit(main())
