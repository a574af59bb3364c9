"""The agent's footprint with BLE, NFC and QR on: OpenCV, FFmpeg, numpy, zxing-cpp and
sqlite-utils are not in the agent's memory (its QR camera's process holds them), the agent's
resident memory is well under the 80 MiB goal and reported in its status, and stopping the
agent stops its camera process."""

from __future__ import annotations

import os
from pathlib import Path

from simulators.camera_files import blank, write_video
from simulators.nfc_tags import TagEmulator, free_udp_port
from tests.conftest import AgentProcess, wait_for, write_config

GOAL_MIB = 80.0  # issue 19: the agent with every touchpoint on


def _mapped(pid: int) -> set[str]:
    with open(f"/proc/{pid}/maps") as fh:
        return {line.split()[-1] for line in fh if "/" in line}


def _stacks(paths: set[str]) -> set[str]:
    names = ("cv2", "opencv", "numpy", "zxingcpp", "sqlite_utils")
    return {n for n in names for p in paths if f"site-packages/{n}" in p}


def test_the_agent_holds_no_camera_stack_and_reports_its_memory(
    tmp_path: Path, agent_factory: list[AgentProcess]
) -> None:
    video = tmp_path / "counter.avi"
    write_video(video, [blank((320, 240))] * 30, fps=15)
    (tmp_path / "adverts.jsonl").write_text("")
    with TagEmulator(free_udp_port()) as nfc:
        cfg = write_config(
            tmp_path / "config.toml",
            url="",
            extra=f"""
[qr]
enabled = true
camera = "{video}"
loop = true
fps_limit = 15
[nfc]
enabled = true
reader = "udp:127.0.0.1:{nfc.port}"
targets = ["106A"]
[ble]
enabled = true
replay = "{tmp_path / "adverts.jsonl"}"
replay_speed = 0
""",
        )
        agent = AgentProcess(cfg)
        agent_factory.append(agent)
        agent.start()
        wait_for(
            lambda: (
                agent.status()["qr"]["camera"]["state"] == "capturing"
                and agent.status()["nfc"]["reader"]["state"] == "ready"
            ),
            60,
            what=lambda: f"the camera and the reader up: {agent.status()['qr']['camera']}",
        )
        wait_for(lambda: agent.status()["qr"]["frames_decoded"] > 0, 30, what="frames decoded")
        assert agent.proc is not None
        st = agent.status()
        camera_pid = st["qr"]["camera"]["pid"]
        assert _stacks(_mapped(agent.proc.pid)) == set()
        assert {"cv2", "numpy", "zxingcpp"} <= _stacks(_mapped(camera_pid))
        assert 10 < st["agent"]["rss_mib"] < GOAL_MIB, st["agent"]
        assert st["qr"]["camera"]["rss_mib"] > 10, st["qr"]["camera"]
        assert agent.stop() == 0
    assert not os.path.exists(f"/proc/{camera_pid}")
