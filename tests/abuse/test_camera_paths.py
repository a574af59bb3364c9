"""A `[qr] camera` that is a FIFO, with a real agent: the agent answers, says why the camera is
refused, and stops on SIGTERM (OpenCV blocked for ever opening the FIFO)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import AgentProcess, wait_for


def test_an_agent_with_a_fifo_as_camera_says_so_and_stops(
        tmp_path: Path, agent_factory: list[AgentProcess]) -> None:
    fifo = tmp_path / "camera.fifo"
    os.mkfifo(fifo)
    cfg = tmp_path / "config.toml"
    cfg.write_text(f"""
[device]
store = "store-1"
id = "dev-1"

[outbox]
path = "{tmp_path / 'outbox.db'}"

[kiosk]
store_db = "{tmp_path / 'store.db'}"

[mqtt]
url = ""

[metrics]
listen = ""

[qr]
enabled = true
camera = "{fifo}"

[bus]
socket = "{tmp_path / 'agent.sock'}"
""")
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()
    wait_for(lambda: agent.status()["qr"]["camera"]["state"] == "not-a-camera", 15,
             what=lambda: f"the FIFO refused: {agent.status()['qr']['camera']}")
    camera = agent.status()["qr"]["camera"]
    assert "is a FIFO" in camera["last_error"] and "set [qr] camera" in camera["last_error"]
    assert agent.stop() == 0
