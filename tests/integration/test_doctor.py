"""`o2o-edge doctor` on this machine — no Bluetooth adapter, NFC reader or camera — with a
real broker, a closed port, a broker whose certificate is not trusted, a fresh config and an
invalid one: the right verdict and fix for each, and the exit status."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from simulators.pki import TestCA
from tests.conftest import CLI, ROOT, AgentProcess, write_config
from tests.integration.test_tls import tls_broker


def doctor(cfg: Path) -> tuple[int, dict[str, dict[str, Any]]]:
    res = subprocess.run([*CLI, "doctor", "--json", "--config", str(cfg)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    out = json.loads(res.stdout)
    assert "Traceback" not in res.stderr, res.stderr
    return res.returncode, {f["check"]: f for f in out["findings"]}


def test_a_machine_without_touchpoint_hardware(tmp_path: Path, mosquitto: Any,
                                               agent_factory: list[AgentProcess]) -> None:
    cfg = write_config(tmp_path / "config.toml", url=mosquitto.url, extra=f"""
[ble]
enabled = true
[nfc]
enabled = true
reader = "usb:054c:06c3"
[qr]
enabled = true
camera = "{tmp_path / 'no-camera.avi'}"
""")
    rc, found = doctor(cfg)
    assert rc == 1
    assert found["config"]["level"] == "ok" and found["broker"]["level"] == "ok"
    assert "connected to 127.0.0.1" in found["broker"]["message"]
    assert found["agent"]["level"] == "warn" and "systemctl start" in found["agent"]["fix"]
    assert found["bluetooth"]["level"] == "fail"  # no BlueZ on this machine's system bus
    assert "bluetooth" in found["bluetooth"]["fix"]
    assert found["nfc"] == {"check": "nfc", "level": "fail",
                            "message": "no NFC reader at 'usb:054c:06c3'",
                            "fix": found["nfc"]["fix"]} and "lsusb" in found["nfc"]["fix"]
    assert found["camera"]["level"] == "fail" and "cannot open" in found["camera"]["message"]
    assert found["disk"]["level"] == "ok" and found["outbox"]["level"] == "ok"
    assert found["clock"]["level"] in ("ok", "warn", "skip")
    # with the agent running, it is seen, and the doctor's broker probe does not take over
    # the agent's MQTT session (its own client id)
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()
    rc, found = doctor(cfg)
    assert found["agent"]["level"] == "ok" and "uplink connected" in found["agent"]["message"]
    assert agent.status()["uplink"]["connects"] == 1
    # human output: a fix under each problem
    res = subprocess.run([*CLI, "doctor", "--config", str(cfg)], capture_output=True,
                         text=True, cwd=ROOT, timeout=120)
    assert "FAIL  nfc" in res.stdout and "fix: plug one in" in res.stdout
    verdict = res.stdout.rstrip().splitlines()[-1]
    assert re.fullmatch(r"[1-9]\d* failures?( and [1-9]\d* warnings?)?: fix the FAIL lines "
                        r"above first", verdict), verdict


def test_broker_problems_and_config_problems(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    closed = write_config(tmp_path / "a" / "config.toml", url="mqtt://127.0.0.1:9")
    rc, found = doctor(closed)
    assert rc == 1 and found["broker"]["level"] == "fail"
    assert "cannot reach the broker at 127.0.0.1:9" in found["broker"]["message"]
    ca, other = TestCA(tmp_path / "pki"), TestCA(tmp_path / "pki-other")
    broker = tls_broker(tmp_path, ca, mutual=False)
    try:
        (tmp_path / "b").mkdir()
        untrusted = write_config(tmp_path / "b" / "config.toml",
                                 url=f"mqtts://localhost:{broker.port}",
                                 extra=f'ca_file = "{other.ca_file}"\n')
        rc, found = doctor(untrusted)
        assert found["broker"]["level"] == "fail"
        assert "is not trusted" in found["broker"]["message"]
        assert "ca_file" in found["broker"]["fix"]
    finally:
        broker.kill()
    (tmp_path / "c").mkdir()
    fresh = tmp_path / "c" / "config.toml"
    fresh.write_text((ROOT / "systemd/config.example.toml").read_text())
    rc, found = doctor(fresh)
    assert rc == 1 and found["config-store"]["level"] == "fail"
    assert found["broker"]["level"] == "warn"  # no url: buffered, said plainly
    bad = tmp_path / "c" / "bad.toml"
    bad.write_text('[mqtt]\nurl = "http://x"\n')
    rc, found = doctor(bad)
    assert rc == 2 and found["config"]["level"] == "fail" and "[mqtt] url" in \
        found["config"]["message"]


def test_bluetooth_verdicts_against_bluez_on_the_bus(tmp_path: Path, bus: Any) -> None:
    from simulators.bluez_player import FakeBlueZThread

    cfg = write_config(tmp_path / "config.toml", url="", extra="[ble]\nenabled = true\n")
    rc, found = doctor(cfg)  # nothing owns org.bluez on this bus yet
    assert rc == 1 and found["bluetooth"]["level"] == "fail"
    assert "not running" in found["bluetooth"]["message"]
    with FakeBlueZThread(bus.address) as bluez:
        rc, found = doctor(cfg)
        assert rc == 0 and found["bluetooth"]["level"] == "ok"  # warnings alone pass
        assert found["bluetooth-adapter"] == {
            "check": "bluetooth-adapter", "level": "ok",
            "message": "the adapter is present and powered", "fix": ""}
        bluez.call(bluez.fake.set_powered, False)
        rc, found = doctor(cfg)
        assert rc == 1 and found["bluetooth-adapter"]["level"] == "fail"
        assert found["bluetooth-adapter"]["message"] == "adapter hci0 is powered off"
        assert "power on" in found["bluetooth-adapter"]["fix"]
