"""`o2o-edge collect` over TLS, mutual TLS and passwords against private mosquittos: mqtts://
is TLS (never plaintext), verified against --ca-file or the system CAs; a refused login, an
untrusted certificate and a plaintext port are one line and exit 1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.collector.store import EventStore
from simulators.brokers import BrokerUnavailable, PrivateMosquitto
from simulators.pki import TestCA
from tests.conftest import CLI, ROOT, wait_for
from tests.integration.test_tls import tls_broker

EVENT = json.dumps([{"id": "E1", "source": "o2o-edge://store-1/dev-1", "bootid": "B",
                     "seq": 1, "type": "o2o.probe", "time": "2026-12-01T00:00:00Z"}])


def collect(*args: str, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("O2O_EDGE_")} | (env or {})
    return subprocess.run([*CLI, "collect", *args], capture_output=True, text=True, cwd=ROOT,
                          env=full, timeout=timeout)


def one_clear_line(res: subprocess.CompletedProcess[str], says: str) -> None:
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr and "this is a bug" not in res.stderr, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("o2o-edge")]
    assert len(lines) == 1 and says in lines[0], res.stderr


def publisher(port: int, ca: TestCA | None = None, client: Any = None) -> mqtt.Client:
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-publisher")
    if ca is not None:
        pub.tls_set(ca_certs=str(ca.ca_file), certfile=client and str(client.cert),
                    keyfile=client and str(client.key))
    pub.connect("localhost", port)
    pub.loop_start()
    return pub


def stored_over(url: str, db: Path, pub: mqtt.Client, *extra: str) -> str:
    """Run the collector until an event published on `pub` is stored; its stderr."""
    proc = subprocess.Popen([*CLI, "collect", "--broker", url, "--db", f"sqlite:///{db}",
                             "--client-id", "tls-collector", *extra], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    store = EventStore(f"sqlite:///{db}")
    try:
        def arrived() -> bool:
            assert proc.poll() is None, proc.communicate()[1]
            pub.publish("o2o/v1/store-1/dev-1/events", EVENT, qos=1).wait_for_publish(10)
            time.sleep(0.2)  # the probe's own pace: a publish every 200 ms until one lands
            return store.count() >= 1
        wait_for(arrived, 30, what="the collector stored an event over TLS")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        store.close()
    assert proc.returncode == 0 and "Traceback" not in err, err
    return err


@pytest.fixture
def ca(tmp_path: Path) -> TestCA:
    return TestCA(tmp_path / "pki")


@pytest.fixture
def tls(tmp_path: Path, ca: TestCA) -> Iterator[PrivateMosquitto]:
    broker = tls_broker(tmp_path, ca, mutual=False)
    yield broker
    broker.kill()


def test_mqtts_with_ca_file_stores_and_without_it_is_refused(
        tmp_path: Path, ca: TestCA, tls: PrivateMosquitto) -> None:
    url = f"mqtts://localhost:{tls.port}"
    pub = publisher(tls.port, ca)
    try:
        stored_over(url, tmp_path / "c.db", pub, "--ca-file", str(ca.ca_file))
    finally:
        pub.disconnect()  # first: loop_stop alone waits out the loop's 1 s select
        pub.loop_stop()
    connected = tls.log_path.read_text().count("New client connected")
    # the system CAs do not know this broker's: refused, and nothing went in plaintext
    res = collect("--broker", url, "--db", f"sqlite:///{tmp_path / 'd.db'}")
    one_clear_line(res, "not trusted")
    other = TestCA(tmp_path / "other", name="some other CA")
    res = collect("--broker", url, "--db", f"sqlite:///{tmp_path / 'd.db'}",
                  "--ca-file", str(other.ca_file))
    one_clear_line(res, "not trusted")
    assert tls.log_path.read_text().count("New client connected") == connected


def test_mqtts_to_a_plaintext_port_says_so(tmp_path: Path, mosquitto: Any) -> None:
    res = collect("--broker", f"mqtts://127.0.0.1:{mosquitto.port}",
                  "--db", f"sqlite:///{tmp_path / 'c.db'}", "--duration", "1")
    one_clear_line(res, "is this a TLS port?")


def test_mutual_tls_with_and_without_a_client_certificate(tmp_path: Path, ca: TestCA) -> None:
    broker = tls_broker(tmp_path, ca, mutual=True)
    try:
        dev = ca.issue("collector", server=False)
        pub = publisher(broker.port, ca, ca.issue("publisher", server=False))
        try:
            stored_over(f"mqtts://localhost:{broker.port}", tmp_path / "c.db", pub,
                        "--ca-file", str(ca.ca_file), "--cert-file", str(dev.cert),
                        "--key-file", str(dev.key))
        finally:
            pub.disconnect()  # first: loop_stop alone waits out the loop's 1 s select
            pub.loop_stop()
        res = collect("--broker", f"mqtts://localhost:{broker.port}", "--ca-file",
                      str(ca.ca_file), "--db", f"sqlite:///{tmp_path / 'd.db'}",
                      "--duration", "2")
        one_clear_line(res, "check the client certificate")
        res = collect("--broker", f"mqtts://localhost:{broker.port}", "--ca-file",
                      str(ca.ca_file), "--cert-file", str(dev.cert),
                      "--db", f"sqlite:///{tmp_path / 'd.db'}")
        assert res.returncode == 2 and "--key-file" in res.stderr
    finally:
        broker.kill()


def test_password_from_the_environment_and_a_refused_login(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    passwd.touch()
    made = subprocess.run(["mosquitto_passwd", "-b", str(passwd), "collector", "s3cret"],
                          capture_output=True, timeout=30)
    if made.returncode != 0:
        pytest.skip("mosquitto_passwd is not installed")
    try:
        broker = PrivateMosquitto(tmp_path / "auth", extra_conf=(
            f"allow_anonymous false\npassword_file {passwd}\n"))
    except BrokerUnavailable as exc:
        pytest.skip(str(exc))
    broker.start()
    try:
        db = f"sqlite:///{tmp_path / 'c.db'}"
        res = collect("--broker", broker.url, "--db", db, "--username", "collector",
                      env={"O2O_EDGE_COLLECT_PASSWORD": "wrong"})
        one_clear_line(res, "refused the connection")
        assert "O2O_EDGE_COLLECT_PASSWORD" in res.stderr  # where the password comes from
        res = collect("--broker", broker.url, "--db", db, "--username", "collector",
                      "--duration", "1", env={"O2O_EDGE_COLLECT_PASSWORD": "s3cret"})
        assert res.returncode == 0 and res.stderr == "", res.stderr
        assert json.loads(res.stdout)["stored"] == 0
    finally:
        broker.kill()


def test_the_collector_rides_out_a_broker_restart(tmp_path: Path, mosquitto: Any) -> None:
    """Driven from its own thread now: a lost connection is retried with backoff, the kept
    session resumes, and what is published after the restart is stored."""
    db = tmp_path / "c.db"
    proc = subprocess.Popen([*CLI, "collect", "--broker", mosquitto.url, "--db",
                             f"sqlite:///{db}", "--client-id", "restart-collector"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    store = EventStore(f"sqlite:///{db}")

    def stored(event_id: str, count: int) -> bool:
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="restart-publisher")
        pub.connect("127.0.0.1", mosquitto.port)
        pub.loop_start()
        try:
            pub.publish("o2o/v1/store-1/dev-1/events", EVENT.replace("E1", event_id),
                        qos=1).wait_for_publish(10)
        finally:
            pub.disconnect()  # first: loop_stop alone waits out the loop's 1 s select
            pub.loop_stop()
        time.sleep(0.2)  # the probe's own pace, as in stored_over
        return store.count() >= count  # the same id again is a duplicate, not a new row

    try:
        wait_for(lambda: stored("before", 1), 30, what="stored before the restart")
        mosquitto.restart()
        wait_for(lambda: stored("after", 2), 60, what="stored after the restart")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        store.close()
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert "lost; retrying" in err
