"""The agent renews its broker certificate before it expires, over its own connection, on a
private Mosquitto with mutual TLS and the broker ACL template: its request goes out on its
csr topic, `o2o-edge enroll answer` plays the fleet's CA (signing only a request whose CN is
the topic's device) and answers on the device's cert topic, the agent tries the new certificate and keeps
it once the broker took it, the old one is kept aside. The certificate it started with then
runs out and the broker restarts: the agent connects again, so it presents the new one, and
every event arrives. A certificate the broker does not trust (signed by a CA the device trusts
and the broker does not) is tried, refused, and the old one stays in use."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from agent.cli.main import main
from agent.contracts.status import Status
from simulators.brokers import BrokerUnavailable, PrivateMosquitto
from simulators.pki import TestCA
from tests.ca_signing import sign_request
from tests.conftest import CLI, ROOT, AgentProcess, emit_lines, wait_for, write_config
from tests.integration.test_broker_acl import CONF, Client, rendered_acl
from tests.integration.test_status_contract import _problems

CSR_TOPIC = "o2o/v1/store-1/dev-1/csr"
CERT_TOPIC = "o2o/v1/store-1/dev-1/cert"
FIRST_LIFE_S = 15.0  # the enrolled certificate's whole validity: it runs out during the test


def start_broker(tmp_path: Path, ca: TestCA) -> PrivateMosquitto:
    """The ACL template's settings with this CA: it alone signs the certificates it takes."""
    server = ca.issue("broker", server=True)
    acl = tmp_path / "o2o-edge.acl"
    acl.write_text(rendered_acl())
    files = {"cafile": ca.ca_file, "certfile": server.cert, "keyfile": server.key, "acl_file": acl}
    lines = []
    for line in CONF.read_text().splitlines():
        key = line.split(" ", 1)[0]
        if line.startswith("#") or not line.strip() or key == "listener":
            continue
        lines.append(f"{key} {files[key]}" if key in files else line)
    try:
        broker = PrivateMosquitto(tmp_path / "broker", extra_conf="\n".join(lines))
    except BrokerUnavailable as exc:
        pytest.skip(str(exc))
    broker.start()
    return broker


def enrolled_agent(tmp_path: Path, ca: TestCA, port: int, trusted: Path,
                   capsys: pytest.CaptureFixture[str]) -> tuple[Path, AgentProcess]:
    """A device enrolled with `o2o-edge enroll` for a certificate that lives FIRST_LIFE_S:
    within any renewal window from the start."""
    url = f"mqtts://localhost:{port}"
    extra = f'ca_file = "{trusted}"\n'
    cfg = write_config(tmp_path / "config.toml", url=url, extra=extra)
    assert main(["enroll", "request", "--config", str(cfg)]) == 0
    signed = sign_request(ca, capsys.readouterr().out.encode(), days=FIRST_LIFE_S / 86400)
    (tmp_path / "signed.pem").write_bytes(signed)
    assert main(["enroll", "install", str(tmp_path / "signed.pem"), "--config", str(cfg)]) == 0
    capsys.readouterr()
    pair = f'cert_file = "{tmp_path / "device.pem"}"\nkey_file = "{tmp_path / "device.key"}"\n'
    cfg = write_config(tmp_path / "config.toml", url=url, extra=pair + extra)
    return cfg, AgentProcess(cfg)


def ca_answers(platform: Client, ca: TestCA, days: float = 90) -> bytes:
    """What the fleet's CA does: the request on a device's csr topic, signed only for the
    device the topic names (only that device's certificate may write there)."""
    wait_for(lambda: CSR_TOPIC in platform.topics(), 30, what="the agent's renewal request")
    with platform.lock:
        csr_pem = next(p for t, p in platform.got if t == CSR_TOPIC)
    csr = x509.load_pem_x509_csr(csr_pem)
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "store-1/dev-1"
    signed = sign_request(ca, csr_pem, days=days)
    mid = platform.c.publish(CERT_TOPIC, signed, qos=1, retain=True).mid
    wait_for(lambda: mid in platform.acks, 10, what="the certificate published")
    return signed


def events_at(platform: Client) -> list[int]:
    """The taps upstream has, each once (by event id: a batch the broker took just before a
    reconnect may come again, and upstream drops it by its id)."""
    with platform.lock:
        batches = [json.loads(p) for t, p in platform.got if t.endswith("/events")]
    taps = {ev["id"]: ev["data"]["i"] for batch in batches for ev in batch
            if ev["type"] == "o2o.nfc.tap"}
    return sorted(taps.values())


def expiry(path: Path) -> dt.datetime:
    return x509.load_pem_x509_certificate(path.read_bytes()).not_valid_after_utc


def tap(cfg: Path, numbers: range) -> None:
    emit_lines(cfg, [json.dumps({"type": "o2o.nfc.tap", "data": {"i": i}}) for i in numbers])


def test_the_agent_renews_its_certificate_and_reconnects_with_it(
    tmp_path: Path, agent_factory: list[AgentProcess], capsys: pytest.CaptureFixture[str]
) -> None:
    ca = TestCA(tmp_path / "pki")
    broker = start_broker(tmp_path, ca)
    cfg, agent = enrolled_agent(tmp_path, ca, broker.port, ca.ca_file, capsys)
    first_expiry = expiry(tmp_path / "device.pem")
    platform = Client(broker.port, ca, ca.issue("o2o-platform", server=False), "platform")
    try:
        platform.subscribe("o2o/v1/+/+/csr", "o2o/v1/store-1/dev-1/events")
        agent_factory.append(agent)
        agent.start()
        tap(cfg, range(0, 5))
        # the fleet's CA: `o2o-edge enroll answer`, with the ACL template's o2o-enroll rights
        ca_key = tmp_path / "pki" / "ca.key"
        ca_key.write_bytes(ca.key.private_bytes(serialization.Encoding.PEM,
                                                serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
        service = ca.issue("o2o-enroll", server=False)
        answer_log = tmp_path / "answer.log"
        with answer_log.open("wb") as out:
            answerer = subprocess.Popen(
                [*CLI, "enroll", "answer", "--broker", f"mqtts://localhost:{broker.port}",
                 "--ca-cert", str(ca.ca_file), "--ca-key", str(ca_key), "--ca-file",
                 str(ca.ca_file), "--cert-file", str(service.cert), "--key-file",
                 str(service.key)], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            wait_for(lambda: "signed store-1/dev-1, valid until" in answer_log.read_text(), 30,
                     what=lambda: f"the CA's answer: {answer_log.read_text()}")
            tap(cfg, range(5, 10))  # while the agent tries the new certificate
            wait_for(lambda: (tmp_path / "device.pem.old").exists(), 30,
                     what=lambda: f"the renewal installed: {agent.log.read_text()[-1500:]}")
        finally:
            answerer.terminate()
            answerer.wait(10)
        # 90 days asked; the test CA's own certificate ends after two: the CA caps it there
        assert expiry(tmp_path / "device.pem") == ca.cert.not_valid_after_utc
        assert answer_log.read_text().count("signed store-1/dev-1") == 1  # asked once
        assert expiry(tmp_path / "device.pem.old") == first_expiry  # kept aside
        assert (tmp_path / "device.key.old").exists()
        assert not (tmp_path / "device.key.new").exists()
        assert not (tmp_path / "device.pem.new").exists()
        assert "certificate: renewed" in agent.log.read_text()
        assert not _problems(agent.status(), Status, "status")  # the contract's keys
        state = agent.status()["certificate"]
        assert state["renewals"] == 1 and not state["requested"]
        assert state["expires"] == expiry(tmp_path / "device.pem").timestamp()
        shown = subprocess.run([*CLI, "status", "--config", str(cfg)], capture_output=True,
                               text=True, cwd=ROOT, timeout=60).stdout
        assert f"certificate expires {ca.cert.not_valid_after_utc:%Y-%m-%d}" in shown
        assert "renewed=1" in shown
        wait_for(lambda: events_at(platform) == list(range(10)), 30,
                 what=lambda: f"every event once: {events_at(platform)}")
        # the first certificate runs out; the broker restarts and the agent must connect
        # again: only with the renewed certificate can it
        left = (first_expiry - dt.datetime.now(dt.UTC)).total_seconds()
        time.sleep(max(0.0, left + 1.0))  # a certificate's expiry is wall-clock time
        connects = agent.status()["uplink"]["connects"]
        broker.restart()
        platform.close()
        platform = Client(broker.port, ca, ca.issue("o2o-platform", server=False), "platform")
        platform.subscribe("o2o/v1/store-1/dev-1/events")
        wait_for(lambda: agent.status()["uplink"]["connects"] > connects, 30,
                 what=lambda: f"reconnected: {agent.status()['uplink']}")
        tap(cfg, range(10, 13))
        wait_for(lambda: events_at(platform) == [10, 11, 12], 30,
                 what=lambda: f"events after the restart: {events_at(platform)}")
        # the broker sends a message on before the agent has its PUBACK
        wait_for(lambda: agent.status()["outbox"]["depth"] == 0, 10, what="the outbox emptied")
        # the retained certificate, met again at the reconnect, is not "renewed" twice
        assert agent.log.read_text().count("certificate: renewed") == 1
        # nor asked for again, though the CA's cap leaves it due at once
        assert agent.log.read_text().count("renewal requested") == 1
        assert "is due for renewal already" in agent.log.read_text()
        assert agent.stop() == 0
    finally:
        platform.close()
        broker.kill()


def test_a_certificate_the_broker_refuses_is_not_kept(
    tmp_path: Path, agent_factory: list[AgentProcess], capsys: pytest.CaptureFixture[str]
) -> None:
    ca, stranger = TestCA(tmp_path / "pki"), TestCA(tmp_path / "other", name="other CA")
    broker = start_broker(tmp_path, ca)
    # the device trusts both CAs; the broker only the first: the second's certificates pass
    # the device's own checks and only the broker can say no
    trusted = tmp_path / "both.pem"
    trusted.write_bytes(ca.ca_file.read_bytes() + stranger.ca_file.read_bytes())
    cfg, agent = enrolled_agent(tmp_path, ca, broker.port, trusted, capsys)
    before = (tmp_path / "device.pem").read_bytes()
    platform = Client(broker.port, ca, ca.issue("o2o-platform", server=False), "platform")
    try:
        platform.subscribe("o2o/v1/+/+/csr", "o2o/v1/store-1/dev-1/events")
        agent_factory.append(agent)
        agent.start()
        tap(cfg, range(0, 3))
        ca_answers(platform, stranger)
        wait_for(lambda: "did not take the renewed certificate" in agent.log.read_text(), 30,
                 what=lambda: f"the trial refused: {agent.log.read_text()[-1500:]}")
        assert (tmp_path / "device.pem").read_bytes() == before
        assert not (tmp_path / "device.pem.new").exists()
        assert not (tmp_path / "device.pem.old").exists()
        tap(cfg, range(3, 6))  # with the old certificate again
        wait_for(lambda: events_at(platform) == list(range(6)), 30,
                 what=lambda: f"every event once: {events_at(platform)}")
        assert agent.stop() == 0
    finally:
        platform.close()
        broker.kill()


def test_the_ca_service_signs_only_for_the_device_that_asks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A device's certificate may write only its own csr topic (the ACL template); a request
    it sends there naming another device is refused by `o2o-edge enroll answer`, and nothing
    is published for the other device; its own request is answered."""
    ca = TestCA(tmp_path / "pki")
    broker = start_broker(tmp_path, ca)
    ca_key = tmp_path / "pki" / "ca.key"
    ca_key.write_bytes(ca.key.private_bytes(serialization.Encoding.PEM,
                                            serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    service = ca.issue("o2o-enroll", server=False)
    watcher = Client(broker.port, ca, ca.issue("o2o-platform", server=False), "platform")
    dev2 = Client(broker.port, ca, ca.issue("store-1/dev-2", server=False), "dev-2")
    answer_log = tmp_path / "answer.log"
    with answer_log.open("wb") as out:
        answerer = subprocess.Popen(
            [*CLI, "enroll", "answer", "--broker", f"mqtts://localhost:{broker.port}",
             "--ca-cert", str(ca.ca_file), "--ca-key", str(ca_key), "--ca-file",
             str(ca.ca_file), "--cert-file", str(service.cert), "--key-file",
             str(service.key)], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        watcher.subscribe("o2o/v1/+/+/cert")
        wait_for(lambda: "waiting for requests" in answer_log.read_text(), 30,
                 what=lambda: answer_log.read_text())
        dev1_cfg = write_config(tmp_path / "dev1.toml", url="mqtts://localhost:1")
        assert main(["enroll", "request", "--config", str(dev1_cfg), "--dir",
                     str(tmp_path)]) == 0
        as_dev1 = capsys.readouterr().out.encode()
        # dev-2 may not write dev-1's topic at all, and its own topic takes only its own name
        assert dev2.publish(CSR_TOPIC, as_dev1) == "Not authorized"
        assert dev2.publish("o2o/v1/store-1/dev-2/csr", as_dev1) == "Success"
        wait_for(lambda: "refused store-1/dev-2" in answer_log.read_text(), 30,
                 what=lambda: answer_log.read_text())
        assert "names 'store-1/dev-1' but came from 'store-1/dev-2'" in answer_log.read_text()
        dev2_cfg = write_config(tmp_path / "dev2.toml", url="mqtts://localhost:1",
                                device="dev-2")
        assert main(["enroll", "request", "--config", str(dev2_cfg), "--dir",
                     str(tmp_path)]) == 0
        assert dev2.publish("o2o/v1/store-1/dev-2/csr",
                            capsys.readouterr().out.encode()) == "Success"
        wait_for(lambda: "o2o/v1/store-1/dev-2/cert" in watcher.topics(), 30,
                 what=lambda: answer_log.read_text())
        assert CERT_TOPIC not in watcher.topics()  # nothing ever for dev-1
    finally:
        answerer.terminate()
        answerer.wait(10)
        dev2.close()
        watcher.close()
        broker.kill()
