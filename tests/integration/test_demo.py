"""The demo as a new user runs it, against a broker it did not start (as one already running on
127.0.0.1:1883 would be): one timeline in store time that never runs backwards, told in words
(no sequence numbers, ids or outcome codes), every answer the kiosk gives judged against the
scenario, a closing summary — and nothing retained left behind on that broker."""

from __future__ import annotations

import re
import subprocess
import threading
from pathlib import Path

from simulators.brokers import PrivateBroker
from simulators.scenario.expected import expected
from simulators.scenario.model import load
from tests.conftest import CLI, ROOT, need

DEMO = ROOT / "simulators" / "scenarios" / "demo_morning.toml"
STAMP = re.compile(r"^(\d\d:\d\d)  ")
RAW = re.compile(
    r"#\d|…|\b[a-z]+\.[a-z]+\b|\b[A-Z]-\d{4}\b|shelf-|card-\d|app:|eddystone|"
    r"[0-9a-f]{12}|not-found|FAULT"
)


def _retained(url: str, wait_s: float = 2.0) -> list[str]:
    """Topics holding a retained message on the broker at `url`."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    host, port = url.removeprefix("mqtt://").rsplit(":", 1)
    topics: list[str] = []
    done = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="retained-check")
    client.on_connect = lambda c, *_: c.subscribe("#", qos=1)
    client.on_subscribe = lambda *_: done.set()

    def on_message(c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        if msg.retain and msg.payload:
            topics.append(msg.topic)

    client.on_message = on_message
    client.connect(host, int(port))
    client.loop_start()
    try:
        assert done.wait(10), "no SUBACK from the broker"
        done.clear()
        done.wait(wait_s)  # retained messages come right after the SUBACK
    finally:
        client.disconnect()  # first: loop_stop alone waits out the loop's 1 s select
        client.loop_stop()
    return topics


def test_the_demo_tells_one_ordered_story_and_leaves_the_broker_as_it_found_it(
    mosquitto: PrivateBroker, tmp_path: Path
) -> None:
    need("dbus-daemon", "dbus")
    res = subprocess.run(
        [
            *CLI,
            "demo",
            "--broker",
            mosquitto.url,
            "--speed",
            "600",
            "--workdir",
            str(tmp_path / "demo"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    out = res.stdout
    assert res.returncode == 0, out[-4000:] + res.stderr[-2000:]
    assert "Traceback" not in out + res.stderr
    timeline = [line for line in out.splitlines() if STAMP.match(line)]
    # one timeline, in store time: the clock never goes back
    stamps = [line[:5] for line in timeline]
    assert len(timeline) > 20 and stamps == sorted(stamps), "\n".join(timeline)
    # words, not identifiers
    raw = [line for line in timeline if RAW.search(line)]
    assert not raw, "\n".join(raw)
    # every answer the kiosk gave, judged against the scenario, and all as it expects
    sc = load(DEMO)
    ex = expected(sc)
    judged = [line for line in timeline if "as the scenario expects" in line]
    answers = len(ex.checkins) + len(ex.loyalty) + ex.arrivals
    assert len(judged) == answers and not [j for j in judged if "NOT as" in j], "\n".join(judged)
    assert f"the kiosk: {answers} of {answers} answers as the scenario expects" in out
    # the demo's loyalty card is registered: the kiosk greets its holder
    assert "Dana's loyalty card on the reader; the kiosk says “Welcome back, Dana" in out
    # the closing summary
    summary = out[out.index("The day in short") :]
    for said in (
        "what happened:",
        "fault 10:00-10:50: the network to the broker is cut",
        "fault 11:15-11:30: the NFC reader is unplugged — 1 tap meanwhile never read",
        "events arrived, each once",
        "all as expected",
        "why the count of events differs between runs",
    ):
        assert said in summary, summary
    # a broker the demo did not start keeps no retained message of it
    assert _retained(mosquitto.url) == []
