"""TLS and mutual TLS to a real mosquitto with a CA made by the test; never plaintext."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulators.brokers import BrokerUnavailable, PrivateMosquitto
from simulators.pki import TestCA
from tests.conftest import AgentProcess, emit_lines, wait_for, write_config


def tls_broker(tmp_path: Path, ca: TestCA, mutual: bool) -> PrivateMosquitto:
    server = ca.issue("broker", server=True)
    conf = (f"cafile {ca.ca_file}\ncertfile {server.cert}\nkeyfile {server.key}\n"
            f"require_certificate {'true' if mutual else 'false'}\n"
            "log_type notice\nlog_type information\n")
    try:
        broker = PrivateMosquitto(tmp_path / "tls-broker", extra_conf=conf)
    except BrokerUnavailable as exc:
        pytest.skip(str(exc))
    broker.start()
    return broker


def emit(cfg: Path, n: int) -> None:
    emit_lines(cfg, [json.dumps({"type": "o2o.nfc.tap", "data": {"i": i}}) for i in range(n)])


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mtls"])
def test_tls_uplink_drains(tmp_path: Path, agent_factory: list[AgentProcess],
                           mutual: bool) -> None:
    ca = TestCA(tmp_path / "pki")
    broker = tls_broker(tmp_path, ca, mutual)
    try:
        extra = f'ca_file = "{ca.ca_file}"\n'
        if mutual:
            dev = ca.issue("dev-1", server=False)
            extra += f'cert_file = "{dev.cert}"\nkey_file = "{dev.key}"\n'
        cfg = write_config(tmp_path / "config.toml", url=f"mqtts://localhost:{broker.port}",
                           extra=extra)
        agent = AgentProcess(cfg)
        agent_factory.append(agent)
        agent.start()
        emit(cfg, 50)
        wait_for(lambda: agent.status()["outbox"]["depth"] == 0, 30, what="drained over TLS")
        assert agent.status()["uplink"]["acked_events"] >= 50
        assert agent.stop() == 0
    finally:
        broker.kill()


def test_wrong_ca_is_a_clear_error_and_never_plaintext(
    tmp_path: Path, agent_factory: list[AgentProcess]
) -> None:
    ca = TestCA(tmp_path / "pki")
    other = TestCA(tmp_path / "other", name="some other CA")
    broker = tls_broker(tmp_path, ca, mutual=False)
    try:
        cfg = write_config(tmp_path / "config.toml", url=f"mqtts://localhost:{broker.port}",
                           extra=f'ca_file = "{other.ca_file}"\n')
        agent = AgentProcess(cfg)
        agent_factory.append(agent)
        agent.start()
        emit(cfg, 5)
        wait_for(lambda: "TLS" in agent.status()["uplink"]["last_error"], 20,
                 what="TLS error in status")
        st = agent.status()
        assert "certificate verify failed" in st["uplink"]["last_error"]
        assert "ca_file" in st["uplink"]["last_error"]
        assert st["uplink"]["state"] != "connected"
        assert st["outbox"]["depth"] >= 5
        assert agent.stop() == 0
        log = broker.log_path.read_text()
        # the broker never saw an MQTT session from us: no plaintext fallback happened
        assert "New client connected" not in log
    finally:
        broker.kill()


def test_mtls_without_client_cert_is_refused(
    tmp_path: Path, agent_factory: list[AgentProcess]
) -> None:
    ca = TestCA(tmp_path / "pki")
    broker = tls_broker(tmp_path, ca, mutual=True)
    try:
        cfg = write_config(tmp_path / "config.toml", url=f"mqtts://localhost:{broker.port}",
                           extra=f'ca_file = "{ca.ca_file}"\n')
        agent = AgentProcess(cfg)
        agent_factory.append(agent)
        agent.start()
        emit(cfg, 3)
        wait_for(lambda: agent.status()["uplink"]["last_error"] != "", 20)
        st = agent.status()
        assert st["uplink"]["state"] != "connected" and st["outbox"]["depth"] >= 3
        assert "New client connected" not in broker.log_path.read_text()
        agent.stop()
    finally:
        broker.kill()
