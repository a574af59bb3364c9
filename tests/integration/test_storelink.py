"""The store link against a real broker: signed orders applied from a retained document, each
refusal case refused and counted (never applied), key rotation, and after a restart without a
broker the store still checks in from what was cached; a retained old document replayed by the
broker later changes nothing."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from agent.bus.client import BusClient
from agent.keys import public_key_text
from agent.storelink.docs import sign
from tests.conftest import AgentProcess, wait_for, write_config

KEY = Ed25519PrivateKey.generate()
REPLIES = "o2o/v1/store-1/dev-1/cmd-reply/ops"  # inside the device's reply namespace


def link_extra(tmp_path: Path, link: str = "") -> str:
    """[link] trusting KEY (plus `link` lines) and the store's database in tmp_path."""
    return (f'[link]\npublic_keys = ["{public_key_text(KEY.public_key())}"]\n{link}'
            f'[kiosk]\nstore_db = "{tmp_path / "store.db"}"\n')


def linked_agent(tmp_path: Path, broker: Any, factory: list[AgentProcess],
                 more: str = "") -> tuple[Path, AgentProcess]:
    """The agent trusting KEY (plus `more` config lines), started and connected to `broker`."""
    cfg = write_config(tmp_path / "config.toml", url=broker.url,
                       extra=link_extra(tmp_path) + more)
    agent = AgentProcess(cfg)
    factory.append(agent)
    agent.start()
    wait_for(lambda: agent.status()["uplink"]["state"] == "connected", 20)
    return cfg, agent


def doc(kind: str, version: int, body: Any, key: Ed25519PrivateKey = KEY, **over: Any) -> bytes:
    now = time.time()
    args: dict[str, Any] = {"kind": kind, "store": "store-1", "device": "all",
                            "version": version, "issued": now - 5, "expires": now + 3600,
                            "body": body}
    args.update(over)
    return sign(key, **args)


def snapshot(version: int, name: str, key: Ed25519PrivateKey = KEY, **over: Any) -> bytes:
    return doc("orders", version, {"mode": "snapshot", "rows": [
        {"order_id": "A-1042", "code": "K7Q2M9", "first_name": name, "status": "ready"}]},
        key=key, **over)


def publish(broker: Any, topic: str, payload: bytes, retain: bool = False) -> None:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"upstream-{time.monotonic_ns()}")
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)
    c.disconnect()  # first: loop_stop alone waits out the loop's 1 s select
    c.loop_stop()


def retained(broker: Any, topic: str) -> dict[str, Any]:
    got: list[bytes] = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"reader-{time.monotonic_ns()}")
    c.on_message = lambda cl, u, msg: got.append(bytes(msg.payload))
    c.connect("127.0.0.1", broker.port)
    c.subscribe(topic, qos=1)
    c.loop_start()
    wait_for(lambda: bool(got), 10, what=f"retained {topic}")
    c.disconnect()  # first: loop_stop alone waits out the loop's 1 s select
    c.loop_stop()
    return dict(json.loads(got[-1]))


def checkin(tmp_path: Path) -> dict[str, Any]:
    with BusClient(tmp_path / "agent.sock") as bus:
        reply = bus.request({"op": "checkin", "request": {"kind": "pickup", "code": "K7Q2M9"}})
    return dict(reply["result"])


def link_status(agent: AgentProcess) -> dict[str, Any]:
    return dict(agent.status()["link"])


def test_signed_documents_over_a_real_broker(tmp_path: Path, mosquitto: Any,
                                            agent_factory: list[AgentProcess]) -> None:
    extra = link_extra(tmp_path)
    cfg = write_config(tmp_path / "config.toml", url=mosquitto.url, extra=extra)
    orders_topic = "o2o/v1/store-1/all/orders"
    publish(mosquitto, orders_topic, snapshot(1, "Anna"), retain=True)
    publish(mosquitto, "o2o/v1/store-1/dev-1/appointments", json.dumps(
        {"o2o": "doc/1", "kind": "appointments", "body": {}}).encode(), retain=True)
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()
    wait_for(lambda: link_status(agent)["applied"].get("orders/all") == 1, 20,
             what=lambda: f"orders applied: {link_status(agent)}")
    wait_for(lambda: link_status(agent)["refused"].get("unsigned") == 1, 10)
    answer = checkin(tmp_path)  # and the staff alert the pickup raised
    assert answer == {"outcome": "pickup.ready", "name": "Anna", "alert": answer.get("alert")}
    assert isinstance(answer["alert"], str) and answer["alert"]

    other = Ed25519PrivateKey.generate()
    bad = {
        "replayed": snapshot(1, "Mallory"),
        "older-version": snapshot(0, "Mallory"),
        "expired": snapshot(5, "Mallory", expires=time.time() - 1),
        "unknown-key": snapshot(5, "Mallory", key=other),
        "not-for-us": snapshot(5, "Mallory", store="store-9"),
        "malformed": b"{\"o2o\": \"doc/1\", oops",
    }
    for payload in bad.values():
        publish(mosquitto, orders_topic, payload)
    wait_for(lambda: all(link_status(agent)["refused"].get(r) == 1 for r in bad), 20,
             what=lambda: f"refusals: {link_status(agent)['refused']}")
    assert checkin(tmp_path)["name"] == "Anna"  # nothing of Mallory applied

    # key rotation, signed by the pinned key; then only the new key is trusted
    publish(mosquitto, "o2o/v1/store-1/all/keys", doc("keys", 1, {"keys": [public_key_text(
        other.public_key())]}))
    wait_for(lambda: link_status(agent)["applied"].get("keys/all") == 1, 10)
    publish(mosquitto, orders_topic, snapshot(2, "Ben", key=other))
    wait_for(lambda: link_status(agent)["applied"].get("orders/all") == 2, 10)
    assert checkin(tmp_path)["name"] == "Ben"
    assert agent.stop() == 0

    # offline: no broker configured; the cached orders still answer
    offline = write_config(tmp_path / "config.toml", url="", extra=extra)
    agent2 = AgentProcess(offline)
    agent_factory.append(agent2)
    agent2.start()
    assert checkin(tmp_path)["name"] == "Ben"
    assert agent2.stop() == 0
    # back online: the broker hands out the old retained version 1 — signed with the key
    # that was rotated out (the rotation survived the restarts) — which changes nothing
    agent3 = AgentProcess(write_config(tmp_path / "config.toml", url=mosquitto.url,
                                       extra=extra))
    agent_factory.append(agent3)
    agent3.start()
    wait_for(lambda: link_status(agent3)["refused"].get("unknown-key", 0) >= 1, 20,
             what=lambda: f"old retained document refused: {link_status(agent3)}")
    assert link_status(agent3)["applied"] == {"orders/all": 2, "keys/all": 1}
    assert checkin(tmp_path)["name"] == "Ben"
    assert agent3.stop() == 0


class Requester:
    """An upstream operator: MQTT 5 requests with a response topic and correlation data."""

    def __init__(self, broker: Any) -> None:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self._props = lambda corr: _props(Properties, PacketTypes, corr)
        self.answers: dict[bytes, dict[str, Any]] = {}
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="operator",
                             protocol=mqtt.MQTTv5)
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", broker.port)
        self.c.subscribe(REPLIES, qos=1)
        self.c.subscribe("o2o/v1/store-1/dev-1/events", qos=1)
        self.events = ""
        self.c.loop_start()
        time.sleep(0.3)

    def _on_message(self, c: Any, u: Any, msg: Any) -> None:
        if msg.topic.endswith("/events"):
            self.events += msg.payload.decode()
            return
        corr = bytes(getattr(msg.properties, "CorrelationData", b"") or b"")
        self.answers[corr] = json.loads(msg.payload)

    def ask(self, name: str, payload: bytes, corr: bytes, device: str = "dev-1") -> dict[str, Any]:
        self.c.publish(f"o2o/v1/store-1/{device}/cmd/{name}", payload, qos=1,
                       properties=self._props(corr)).wait_for_publish(10)
        wait_for(lambda: corr in self.answers, 10, what=f"answer to {name}")
        return self.answers[corr]

    def close(self) -> None:
        self.c.disconnect()  # first: loop_stop alone waits out the loop's 1 s select
        self.c.loop_stop()


def _props(Properties: Any, PacketTypes: Any, corr: bytes) -> Any:
    p = Properties(PacketTypes.PUBLISH)
    p.ResponseTopic = REPLIES
    p.CorrelationData = corr
    return p


def test_commands_request_response(tmp_path: Path, mosquitto: Any,
                                   agent_factory: list[AgentProcess]) -> None:
    _, agent = linked_agent(tmp_path, mosquitto, agent_factory)
    ops = Requester(mosquitto)
    version = int(time.time() * 1000)  # commands count up like any document

    def cmd(name: str, args: dict[str, Any] | None = None, **over: Any) -> bytes:
        nonlocal version
        version += 1
        return doc("cmd", version, {"name": over.pop("signed_name", name), "args": args or {}},
                   device=over.pop("device", "dev-1"), **over)

    try:
        ping = ops.ask("ping", cmd("ping"), b"c1")
        assert ping["ok"] and ping["command"] == "ping" and ping["result"]["pong"] is True
        st = ops.ask("status", cmd("status"), b"c2")
        assert st["ok"] and st["result"]["agent"]["store"] == "store-1"
        fleet = ops.ask("ping", cmd("ping", device="all"), b"c2b", device="all")
        assert fleet["ok"]  # a command for every device of the store
        assert ops.ask("set-log-level", cmd("set-log-level", {"level": "debug"}), b"c3")["ok"]
        bad = ops.ask("set-log-level", cmd("set-log-level", {"level": "loud"}), b"c4")
        assert not bad["ok"] and "level must be one of" in bad["error"]
        flush = ops.ask("flush", cmd("flush"), b"c5")
        assert flush["ok"] and "outbox_depth" in flush["result"]
        unknown = ops.ask("reboot-now", cmd("reboot-now"), b"c6")
        assert not unknown["ok"] and unknown["error"].startswith("unknown command; known:")
        moved = ops.ask("restart", cmd("restart", signed_name="ping"), b"c7")
        assert not moved["ok"] and "signed name" in moved["error"]
        replay = cmd("ping")
        assert ops.ask("ping", replay, b"c8")["ok"]
        again = ops.ask("ping", replay, b"c9")
        assert not again["ok"] and again["error"].startswith("replayed")
        forged = ops.ask("ping", cmd("ping", key=Ed25519PrivateKey.generate()), b"c10")
        assert not forged["ok"] and forged["error"].startswith("unknown-key")
        refused = ops.ask("status", cmd("status"), b"c10b")["result"]["link"]["refused"]
        assert refused == {"malformed": 1, "replayed": 1, "unknown-key": 1}
        assert ops.ask("reload-content", cmd("reload-content"), b"c11")["ok"]
        # the kiosk hears it as an event (it reloads its content bundle)
        wait_for(lambda: '"type":"o2o.link.command"' in ops.events.replace(" ", ""), 10,
                 what="the reload-content event upstream")
        erased = ops.ask("erase-subject", cmd("erase-subject", {"subject": "A-1042"}), b"c11b")
        assert erased["ok"] and erased["result"]["removed"]["outbox_events"] >= 0 \
            and set(erased["result"]["removed"]) >= {"orders", "consent_records"}
        nobody = ops.ask("erase-subject", cmd("erase-subject"), b"c11c")
        assert not nobody["ok"] and "subject must be" in nobody["error"]
        restart = ops.ask("restart", cmd("restart"), b"c12")
        assert restart["ok"] and restart["result"] == {"restarting": True}
        assert agent.proc is not None and agent.proc.wait(30) == 0  # systemd starts it again
    finally:
        ops.close()


def test_remote_config_applied_on_trial_and_rolled_back_when_the_broker_is_dead(
        tmp_path: Path, mosquitto: Any, agent_factory: list[AgentProcess]) -> None:
    import subprocess

    from tests.conftest import CLI, ROOT

    extra = link_extra(tmp_path, "config_trial_s = 5\n")
    cfg = write_config(tmp_path / "config.toml", url=mosquitto.url, extra=extra)

    def run() -> AgentProcess:  # what systemd does after each clean stop
        agent = AgentProcess(cfg)
        agent_factory.append(agent)
        agent.start()
        return agent

    def exited(agent: AgentProcess) -> None:
        assert agent.proc is not None and agent.proc.wait(30) == 0

    topic = "o2o/v1/store-1/dev-1/config"
    agent = run()
    wait_for(lambda: agent.status()["uplink"]["state"] == "connected", 20)
    # [metrics] is not applied live: the agent restarts into it
    publish(mosquitto, topic, doc("config", 1, {"sections": {"metrics": {
        "telemetry_interval_s": 30.0}}}, device="dev-1"))
    exited(agent)  # it restarts into the new config
    agent = run()
    wait_for(lambda: agent.status()["agent"]["config_trial"] is True, 10)
    wait_for(lambda: (tmp_path / "state/o2o-edge/remote-config.json").exists(), 20,
             what="the trial passed")
    st = agent.status()["agent"]
    assert st["config_version"] == 1 and "+ remote config v1" in st["config"]

    # a config that would not even load is refused before anything happens
    publish(mosquitto, topic, doc("config", 2, {"sections": {"device": {"store": "x"}}},
                                  device="dev-1"))
    wait_for(lambda: agent.status()["link"]["refused"].get("malformed") == 1, 10)
    # a config that cuts the device off: tried, rolled back, back on the last good one
    publish(mosquitto, topic, doc("config", 3, {"sections": {"mqtt": {
        "url": "mqtt://127.0.0.1:9"}}}, device="dev-1"))
    exited(agent)
    agent = run()
    assert agent.status()["agent"]["config_version"] == 3
    exited(agent)  # no connection within config_trial_s: rolled back and stopped
    res = subprocess.run([*CLI, "outbox", "export", "--config", str(cfg)], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    states = [json.loads(line)["data"] for line in res.stdout.splitlines()
              if json.loads(line)["type"] == "o2o.link.config"]
    assert states[-1]["state"] == "rolled-back" and states[-1]["version"] == 3
    agent = run()
    wait_for(lambda: agent.status()["uplink"]["state"] == "connected", 20)
    st = agent.status()["agent"]
    assert st["config_version"] == 1 and st["config_trial"] is False
    assert agent.stop() == 0


def test_content_bundle_delivered_signed_with_file_hashes(
        tmp_path: Path, mosquitto: Any, agent_factory: list[AgentProcess]) -> None:
    import base64
    import hashlib

    from agent.config import load_config
    from kiosk.app import KioskApp

    cfg, agent = linked_agent(tmp_path, mosquitto, agent_factory)
    extra = link_extra(tmp_path)
    picture = b"\x89PNG fake picture bytes"

    def bundle(version: int, title: str, data: bytes, digest: bytes | None = None) -> bytes:
        return doc("content", version, {
            "manifest": {"version": version, "pages": [{"id": "p", "title": {"en": title}}]},
            "files": {"img/p.png": {"sha256": hashlib.sha256(digest or data).hexdigest(),
                                    "data_b64": base64.b64encode(data).decode()}}})

    topic = "o2o/v1/store-1/all/content"
    publish(mosquitto, topic, bundle(1, "Delivered", picture), retain=True)
    current = tmp_path / "content" / "current"
    wait_for(lambda: (current / "manifest.json").exists(), 20, what="bundle installed")
    assert (current / "img/p.png").read_bytes() == picture
    assert KioskApp(load_config(str(cfg)), connect=False).bundle.pages["p"].title == {
        "en": "Delivered"}
    # a file that does not match its signed hash: refused whole, the old bundle stays
    publish(mosquitto, topic, bundle(2, "Tampered", b"other bytes", digest=picture))
    wait_for(lambda: link_status(agent)["refused"].get("bad-file-hash") == 1, 10)
    publish(mosquitto, topic, doc("content", 3, {"manifest": {"version": 3, "pages": []}}))
    wait_for(lambda: link_status(agent)["refused"].get("malformed") == 1, 10)
    assert current.resolve().name == "v1"
    assert agent.stop() == 0
    # offline after a reboot the kiosk still shows what was delivered
    offline = load_config(str(write_config(tmp_path / "config.toml", url="", extra=extra)))
    assert KioskApp(offline, connect=False).bundle.version == 1


def test_remote_config_for_a_touchpoint_is_applied_live_without_a_restart(
        tmp_path: Path, mosquitto: Any, agent_factory: list[AgentProcess]) -> None:
    from simulators.nfc_tags import TagEmulator, free_udp_port, ntag213

    uid = "04a1b2c3d4e5f6"
    with TagEmulator(free_udp_port()) as emu:
        nfc = (f'[nfc]\nenabled = true\nreader = "udp:127.0.0.1:{emu.port}"\n'
               f'targets = ["106A"]\nshelf_tags = ["{uid}=coffee-old"]\n')
        _, agent = linked_agent(tmp_path, mosquitto, agent_factory, nfc)

        taps: list[dict[str, Any]] = []

        def listen() -> None:
            with contextlib.suppress(Exception), BusClient(tmp_path / "agent.sock") as bus:
                for event in bus.subscribe():  # committed events, live
                    if event["type"] == "o2o.nfc.tap":
                        taps.append(event["data"]["tag"])

        threading.Thread(target=listen, daemon=True).start()

        def tap() -> dict[str, Any]:
            before = len(taps)
            emu.present(ntag213(bytes.fromhex(uid)))
            wait_for(lambda: len(taps) > before, 20, what="a tap")
            emu.remove()
            return taps[-1]

        wait_for(lambda: agent.status()["nfc"]["reader"]["state"] == "ready", 20)
        bootid = agent.status()["agent"]["bootid"]
        first = tap()
        publish(mosquitto, "o2o/v1/store-1/dev-1/config", doc("config", 4, {"sections": {
            "nfc": {"shelf_tags": [f"{uid}=coffee-new"]}}}, device="dev-1"))
        wait_for(lambda: agent.status()["agent"]["config_version"] == 4, 20,
                 what="the config applied")
        wait_for(lambda: agent.status()["nfc"]["reader"]["state"] == "ready", 20)
        second = tap()
        birth = retained(mosquitto, "o2o/v1/store-1/dev-1/state")
        st = agent.status()["agent"]
        assert agent.stop() == 0
    assert st["bootid"] == bootid and agent.proc is not None  # the same process throughout
    assert first.get("label") == "coffee-old" and second.get("label") == "coffee-new", \
        (first, second)
    assert (tmp_path / "state/o2o-edge/remote-config.json").exists()  # kept for a restart
    assert birth["config_version"] == 4 and birth["bootid"] == bootid  # announced at once


def test_large_content_files_come_by_hash_once_and_the_bundle_waits_for_them(
        tmp_path: Path, mosquitto: Any, agent_factory: list[AgentProcess]) -> None:
    import hashlib
    import os

    _, agent = linked_agent(tmp_path, mosquitto, agent_factory)
    video = os.urandom(3 * 1024 * 1024)  # more than a document may carry
    sha = hashlib.sha256(video).hexdigest()
    blob_topic = f"o2o/v1/store-1/all/blob/{sha}"
    current = tmp_path / "content" / "current"

    def bundle(version: int, size: int = len(video)) -> bytes:
        return doc("content", version, {
            "manifest": {"version": version, "pages": [{"id": "p", "title": {"en": "Film"}}]},
            "files": {"media/loop.mp4": {"sha256": sha, "size": size}}})

    publish(mosquitto, "o2o/v1/store-1/all/content", bundle(1), retain=True)
    wait_for(lambda: link_status(agent)["waiting"] == {"content/all": 1}, 20,
             what=lambda: f"the bundle waiting: {link_status(agent)}")
    assert not current.exists()
    # a blob that does not hash to its name is refused, the bundle keeps waiting
    publish(mosquitto, blob_topic, video[:-1] + b"\0", retain=True)
    wait_for(lambda: link_status(agent)["refused"].get("bad-file-hash") == 1, 10)
    assert link_status(agent)["waiting"] == {"content/all": 1}
    publish(mosquitto, blob_topic, video, retain=True)
    wait_for(lambda: (current / "media/loop.mp4").exists(), 20, what="bundle installed")
    assert (current / "media/loop.mp4").read_bytes() == video
    assert link_status(agent)["waiting"] == {}
    # the next bundle names the same file: installed at once from what the device has
    publish(mosquitto, blob_topic, b"", retain=True)  # upstream cleared the retained blob
    publish(mosquitto, "o2o/v1/store-1/all/content", bundle(2), retain=True)
    wait_for(lambda: current.resolve().name == "v2", 20, what="v2 installed")
    assert (current / "media/loop.mp4").read_bytes() == video
    # a manifest whose size disagrees with the file the device has: refused
    publish(mosquitto, "o2o/v1/store-1/all/content", bundle(3, size=5))
    wait_for(lambda: link_status(agent)["refused"].get("bad-file-hash") == 2, 10)
    assert current.resolve().name == "v2"
    assert agent.stop() == 0
