"""The broker ACL template (systemd/mosquitto-o2o-edge.conf and .acl) on a private Mosquitto
with mutual TLS and a throwaway CA: each device's certificate (CN "STORE/DEVICE") publishes
only under its own topics and is sent only its own and its store's downstream; another
store's device with the same device id gets nothing of the first store's; the platform
reaches every store; a real agent enrolled with `o2o-edge enroll` works through it unchanged."""

from __future__ import annotations

import json
import re
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from agent.cli.main import main
from agent.keys import public_key_text
from agent.storelink.docs import sign
from simulators.brokers import BrokerUnavailable, PrivateMosquitto
from simulators.pki import CertFiles, TestCA
from tests.ca_signing import sign_request
from tests.conftest import ROOT, AgentProcess, emit_lines, wait_for, write_config

CONF = ROOT / "systemd" / "mosquitto-o2o-edge.conf"
ACL = ROOT / "systemd" / "mosquitto-o2o-edge.acl"
DEVICES = ("store-1/dev-1", "store-1/dev-2", "store-2/dev-1")


def rendered_acl() -> str:
    """The template with its per-device block written out for each device, as the template
    says to when a certificate is issued."""
    text = ACL.read_text()
    block_at = text.index("# user STORE/DEVICE")
    block = "\n".join(line.removeprefix("# ") for line in text[block_at:].splitlines())
    out = [text]
    for cn in DEVICES:
        store, device = cn.split("/")
        out.append(block.replace("STORE", store).replace("DEVICE", device))
    return "\n\n".join(out) + "\n"


@pytest.fixture
def pki(tmp_path: Path) -> tuple[TestCA, dict[str, CertFiles]]:
    ca = TestCA(tmp_path / "pki")
    return ca, {cn: ca.issue(cn, server=False) for cn in (*DEVICES, "o2o-platform")}


@pytest.fixture
def broker(tmp_path: Path, pki: tuple[TestCA, dict[str, CertFiles]]) -> Any:
    ca, _ = pki
    server = ca.issue("broker", server=True)
    acl = tmp_path / "o2o-edge.acl"
    acl.write_text(rendered_acl())
    files = {"cafile": ca.ca_file, "certfile": server.cert, "keyfile": server.key, "acl_file": acl}
    lines = []  # the template's settings; its listener is the private broker's own port
    for line in CONF.read_text().splitlines():
        key = line.split(" ", 1)[0]
        if line.startswith("#") or not line.strip() or key == "listener":
            continue
        lines.append(f"{key} {files[key]}" if key in files else line)
    assert "require_certificate true" in lines and "use_identity_as_username true" in lines
    try:
        b = PrivateMosquitto(tmp_path / "acl-broker", extra_conf="\n".join(lines))
    except BrokerUnavailable as exc:
        pytest.skip(str(exc))
    b.start()
    yield b
    b.kill()


class Client:
    """One certificate's MQTT 5 client: what the broker answers to its publishes and what it
    is sent."""

    def __init__(self, port: int, ca: TestCA, cert: CertFiles, client_id: str) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.acks: dict[int, str] = {}
        self.lock = threading.Lock()
        self.up = threading.Event()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        ctx = ssl.create_default_context(cafile=str(ca.ca_file))
        ctx.load_cert_chain(str(cert.cert), str(cert.key))
        self.c.tls_set_context(ctx)
        self.c.on_connect = lambda c, u, f, rc, p: rc.is_failure or self.up.set()
        self.c.on_disconnect = lambda *a: self.up.clear()
        self.c.on_message = self._on_message
        self.c.on_publish = self._on_publish
        self.c.connect("localhost", port)
        self.c.loop_start()
        assert self.up.wait(10), f"{cert.cert.name} could not connect"

    def _on_message(self, c: Any, u: Any, msg: Any) -> None:
        with self.lock:
            self.got.append((msg.topic, bytes(msg.payload)))

    def _on_publish(self, c: Any, u: Any, mid: int, rc: Any, props: Any) -> None:
        with self.lock:
            self.acks[mid] = str(rc)

    def subscribe(self, *filters: str) -> None:
        done = threading.Event()
        self.c.on_subscribe = lambda *a: done.set()
        self.c.subscribe([(f, 1) for f in filters])
        assert done.wait(10), "no SUBACK"

    def publish(self, topic: str, payload: bytes = b"x") -> str:
        """The broker's answer to a QoS 1 publish: its PUBACK reason."""
        mid = self.c.publish(topic, payload, qos=1).mid
        wait_for(lambda: mid in self.acks, 10, what=f"PUBACK for {topic}")
        return self.acks[mid]

    def topics(self) -> list[str]:
        with self.lock:
            return [t for t, _ in self.got]

    def close(self) -> None:
        self.c.disconnect()  # first: loop_stop alone waits out the loop's 1 s select
        self.c.loop_stop()


def test_a_device_publishes_only_under_its_own_topics(
    broker: Any, pki: tuple[TestCA, dict[str, CertFiles]]
) -> None:
    ca, certs = pki
    platform = Client(broker.port, ca, certs["o2o-platform"], "platform")
    platform.subscribe("o2o/v1/#")
    dev = Client(broker.port, ca, certs["store-1/dev-1"], "dev-1")
    try:
        own = [
            "o2o/v1/store-1/dev-1/events",
            "o2o/v1/store-1/dev-1/state",
            "o2o/v1/store-1/dev-1/telemetry",
            "o2o/v1/store-1/dev-1/cmd-reply/q1",
            "o2o/v1/store-1/all/cmd-reply/q2",
        ]
        forged = [
            "o2o/v1/store-1/dev-2/events",  # another device of its store
            "o2o/v1/store-2/dev-1/events",  # the same device id in another store
            "o2o/v1/store-1/dev-2/cmd-reply/q1",
            "o2o/v1/store-1/dev-1/config",  # its own downstream: upstream's to write
            "o2o/v1/store-1/all/orders",
            "o2o/v1/store-1/all/cmd/ping",
            "o2o/v1/store-1/dev-1",
            "elsewhere/x",
        ]
        for topic in forged:
            assert dev.publish(topic) == "Not authorized", topic
        for topic in own:
            assert dev.publish(topic) == "Success", topic
        # the platform is sent what the device may publish, and nothing it may not
        wait_for(
            lambda: set(own) <= set(platform.topics()),
            10,
            what=lambda: f"the device's own topics at the platform: {platform.topics()}",
        )
        assert not set(forged) & set(platform.topics())
        # a second device choosing the first's client id does not take its session over:
        # the broker uses each certificate's CN as the client id
        other = Client(broker.port, ca, certs["store-1/dev-2"], "store-1/dev-1")
        try:
            assert other.publish("o2o/v1/store-1/dev-1/events") == "Not authorized"
            assert dev.up.is_set() and dev.publish("o2o/v1/store-1/dev-1/events") == "Success"
        finally:
            other.close()
    finally:
        dev.close()
        platform.close()


def test_a_device_is_sent_only_its_own_and_its_stores_downstream(
    broker: Any, pki: tuple[TestCA, dict[str, CertFiles]]
) -> None:
    ca, certs = pki
    devices = {cn: Client(broker.port, ca, certs[cn], cn.split("/")[1]) for cn in DEVICES}
    platform = Client(broker.port, ca, certs["o2o-platform"], "platform")
    try:
        for cn, dev in devices.items():  # each asks for everything it might want
            dev.subscribe(
                "o2o/v1/#",
                "o2o/v1/store-1/all/orders",
                "o2o/v1/store-1/dev-1/#",
                "o2o/v1/+/all/#",
                f"o2o/v1/{cn}/#",
            )
        sent = [
            "o2o/v1/store-1/all/orders",
            "o2o/v1/store-1/all/cmd/ping",
            "o2o/v1/store-1/dev-1/config",
            "o2o/v1/store-1/dev-2/orders",
            "o2o/v1/store-2/all/orders",
            "o2o/v1/store-2/dev-1/cmd/status",
            "o2o/v1/store-1/dev-1/events",
            "o2o/v1/store-1/all/cmd-reply/q1",
        ]
        for topic in sent:
            assert platform.publish(topic, json.dumps({"to": topic}).encode()) in (
                "Success",
                "No matching subscribers",
            )
        for cn in DEVICES:  # the last message each may read: all before it have arrived
            platform.publish(f"o2o/v1/{cn}/content", b"end")
        for cn, dev in devices.items():
            wait_for(
                lambda d=dev, c=cn: f"o2o/v1/{c}/content" in d.topics(),
                10,
                what=f"{cn}'s last message",
            )
        got = {
            cn: sorted(set(dev.topics()) - {f"o2o/v1/{cn}/content"}) for cn, dev in devices.items()
        }
        assert got == {
            "store-1/dev-1": [
                "o2o/v1/store-1/all/cmd/ping",
                "o2o/v1/store-1/all/orders",
                "o2o/v1/store-1/dev-1/config",
                "o2o/v1/store-1/dev-1/events",
            ],
            "store-1/dev-2": [
                "o2o/v1/store-1/all/cmd/ping",
                "o2o/v1/store-1/all/orders",
                "o2o/v1/store-1/dev-2/orders",
            ],
            "store-2/dev-1": ["o2o/v1/store-2/all/orders", "o2o/v1/store-2/dev-1/cmd/status"],
        }
    finally:
        for dev in devices.values():
            dev.close()
        platform.close()


def test_an_enrolled_agent_syncs_through_the_acl(
    tmp_path: Path,
    broker: Any,
    pki: tuple[TestCA, dict[str, CertFiles]],
    agent_factory: list[AgentProcess],
    capsys: pytest.CaptureFixture[str],
) -> None:
    ca, certs = pki
    key = Ed25519PrivateKey.generate()
    extra = (
        f'ca_file = "{ca.ca_file}"\n'
        f'[link]\npublic_keys = ["{public_key_text(key.public_key())}"]\n'
        f'[kiosk]\nstore_db = "{tmp_path / "store.db"}"\n'
    )
    url = f"mqtts://localhost:{broker.port}"
    cfg = write_config(tmp_path / "config.toml", url=url, extra=extra)
    # enrolment: the device's request, the fleet's CA signs it, the device installs it
    assert main(["enroll", "request", "--config", str(cfg)]) == 0
    (tmp_path / "signed.pem").write_bytes(sign_request(ca, capsys.readouterr().out.encode()))
    assert main(["enroll", "install", str(tmp_path / "signed.pem"), "--config", str(cfg)]) == 0
    assert "set in [mqtt]: cert_file" in capsys.readouterr().out
    cert = f'cert_file = "{tmp_path / "device.pem"}"\nkey_file = "{tmp_path / "device.key"}"\n'
    cfg = write_config(tmp_path / "config.toml", url=url, extra=cert + extra)
    platform = Client(broker.port, ca, certs["o2o-platform"], "platform")
    platform.subscribe("o2o/v1/store-1/dev-1/#")
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    try:
        agent.start()
        emit_lines(cfg, [json.dumps({"type": "o2o.nfc.tap", "data": {"i": i}}) for i in range(5)])
        wait_for(
            lambda: agent.status()["outbox"]["depth"] == 0,
            30,
            what=lambda: f"events sent: {agent.status()['uplink']}",
        )
        wait_for(lambda: "o2o/v1/store-1/dev-1/events" in platform.topics(), 10)
        assert "o2o/v1/store-1/dev-1/state" in platform.topics()  # its birth message
        now = time.time()
        orders = sign(
            key,
            "orders",
            "store-1",
            "all",
            1,
            now - 5,
            now + 3600,
            {
                "mode": "snapshot",
                "rows": [
                    {"order_id": "A-1", "code": "K7Q2M9", "first_name": "Ana", "status": "ready"}
                ],
            },
        )
        assert platform.publish("o2o/v1/store-1/all/orders", orders) == "Success"
        wait_for(
            lambda: agent.status()["link"]["applied"].get("orders/all") == 1,
            20,
            what=lambda: f"the store's orders applied: {agent.status()['link']}",
        )
        assert not agent.status()["link"]["refused"]
        log = agent.log.read_text()
        assert not re.search(r"not authori[sz]ed", log, re.I), log[-2000:]
        assert agent.stop() == 0
    finally:
        platform.close()
