"""The QR source with its camera process: codes in a video read by the real camera process
become scans in the agent; OpenCV and numpy are never loaded into the agent for it; a camera
process that crashes or refuses its settings is reported and raised for the supervisor; a
cancelled source leaves no process behind."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.config import Config, QrConfig
from agent.qr_source import CAMERA_PROCESS, QrSource
from drivers.errors import DriverError
from simulators.camera_files import blank, write_video
from simulators.qr_frames import make_frame


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def _until(pred: Any, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_codes_in_a_video_become_scans_through_the_camera_process(tmp_path: Path) -> None:
    shown = ["https://shop.example/p/778", "javascript:alert(1)"]
    frames = []
    for i, payload in enumerate(shown):
        frames += [make_frame(payload, (640, 480), ("jpeg",), seed=i).image] * 10
        frames += [blank((640, 480))] * 5
    video = tmp_path / "counter.avi"
    write_video(video, frames, fps=30)
    out: list[tuple[str, dict[str, Any]]] = []
    src = QrSource(
        Config(qr=QrConfig(camera=str(video), fps_limit=30, domains=["shop.example"])),
        lambda t, d: out.append((t, d)),
    )

    async def play() -> None:
        task = asyncio.create_task(src.run())
        try:
            # every frame read was decoded or, the decoder being slower, dropped for a newer one
            await _until(
                lambda: (
                    src.camera["state"] == "ended"
                    and src.counts["frames_decoded"] + src.camera["dropped"] == len(frames)
                ),
                60,
            )
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(play())
    assert [(t, d["class"]) for t, d in out] == [
        ("o2o.qr.scan", "product"),
        ("o2o.qr.scan", "rejected"),
    ]
    assert out[0][1]["product"] == "778" and out[1][1]["reason"] == "scheme-not-allowed"
    st = src.status()
    assert st["camera"]["frames"] == len(frames) and st["debounced"] == st["codes"] - 2 > 0
    assert st["decode_seconds"]["count"] == st["frames_decoded"] > 0
    assert st["decode_ms_avg"] is not None
    assert st["camera"]["pid"] == src.pid and st["camera"]["rss_mib"] > 10
    assert _gone(src.pid)


def test_the_agent_side_loads_no_opencv_or_numpy(tmp_path: Path) -> None:
    """The source, made and run for a camera that is not there, in a fresh interpreter."""
    code = f"""
import asyncio, sys
from agent.config import Config, QrConfig
from agent.services.touchpoints import make_qr
src = make_qr(Config(qr=QrConfig(enabled=True, camera={str(tmp_path / "none.avi")!r})),
              lambda t, d: None)
async def main():
    task = asyncio.create_task(src.run())
    while src.camera["opens"] < 1:
        await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
asyncio.run(main())
print(src.camera["state"], sorted(m for m in ("cv2", "numpy", "zxingcpp") if m in sys.modules))
"""
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["missing", "[]"]


def test_a_camera_process_that_crashes_is_raised_for_the_supervisor() -> None:
    src = QrSource(
        Config(qr=QrConfig()),
        lambda t, d: None,
        command=(sys.executable, "-c", "import os; os.abort()"),
    )
    with pytest.raises(DriverError, match="camera process ended"):
        asyncio.run(src.run())
    assert src.status()["camera"]["state"] == "failed"
    assert "exit code -6" in src.status()["camera"]["last_error"]


def test_settings_the_camera_process_refuses_are_named(tmp_path: Path) -> None:
    src = QrSource(
        Config(qr=QrConfig(camera=str(tmp_path / "none.avi"), decoder="nonesuch")),
        lambda t, d: None,
    )
    with pytest.raises(DriverError, match="unknown QR decoder 'nonesuch'"):
        asyncio.run(src.run())
    assert "use one of" in src.status()["camera"]["last_error"]


def test_a_line_that_is_not_the_camera_process_s_own_is_logged_and_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    script = (
        'print("hello"); print(\'{"t": 1.0, "s": 0.001, "codes": [["!!", null]]}\'); '
        'print(\'{"t": 1.0, "s": 0.002}\'); print(\'{"error": "ValueError: odd"}\')'
    )
    src = QrSource(Config(qr=QrConfig()), lambda t, d: None, command=(sys.executable, "-c", script))
    with pytest.raises(DriverError):
        asyncio.run(src.run())
    assert src.counts["frames_decoded"] == 1 and src.counts["decode_errors"] == 1
    assert len([r for r in caplog.records if "none of its own" in r.message]) == 2


def test_a_cancelled_source_stops_its_camera_process(tmp_path: Path) -> None:
    src = QrSource(Config(qr=QrConfig(camera=str(tmp_path / "none.avi"))), lambda t, d: None)

    async def run_then_cancel() -> None:
        task = asyncio.create_task(src.run())
        await _until(lambda: src.camera["state"] == "missing", 30)
        assert not _gone(src.pid)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(run_then_cancel())
    assert _gone(src.pid)


def test_the_camera_process_alone_says_how_it_is_started() -> None:
    res = subprocess.run(
        [*CAMERA_PROCESS], input="", capture_output=True, text=True, timeout=60, check=False
    )
    assert res.returncode == 2
    assert "started by the agent's QR source" in res.stdout


def test_a_camera_process_without_opencv_says_what_to_install(tmp_path: Path) -> None:
    blocker = tmp_path / "cv2.py"  # found before the real one: importing it fails
    blocker.write_text("raise ImportError('No module named cv2')\n")
    code = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import runpy; " + (
        "runpy.run_module('agent.qr_camera', run_name='__main__')"
    )
    src = QrSource(
        Config(qr=QrConfig(camera=str(tmp_path / "none.avi"))),
        lambda t, d: None,
        command=(sys.executable, "-c", code),
    )
    with pytest.raises(DriverError, match="needs OpenCV"):
        asyncio.run(src.run())
    assert "[qr] enabled = false" in src.status()["camera"]["last_error"]
