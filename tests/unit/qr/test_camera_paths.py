"""Camera paths that are no camera: refused by the driver with a reason, never handed to
OpenCV (which blocks for ever opening a FIFO)."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from drivers.qr.camera import FrameGrabber, not_a_camera
from tests.conftest import wait_for


@pytest.mark.parametrize("source", ["0", "12", "rtsp://127.0.0.1:8554/cam",
                                    "http://127.0.0.1/mjpg", "frames_%04d.png"])
def test_indexes_urls_and_sequences_may_be_opened(source: str) -> None:
    assert not_a_camera(source) == ""


def test_a_regular_file_or_a_missing_path_may_be_opened(tmp_path: Path) -> None:
    video = tmp_path / "v.avi"
    video.write_bytes(b"RIFF")
    assert not_a_camera(str(video)) == ""
    assert not_a_camera(str(tmp_path / "not-yet.avi")) == ""  # reported missing, tried again


def test_fifo_directory_socket_and_other_devices_are_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "cam.fifo"
    os.mkfifo(fifo)
    assert "a FIFO" in not_a_camera(str(fifo))
    assert "a directory" in not_a_camera(str(tmp_path))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(tmp_path / "s"))
        assert "a socket" in not_a_camera(str(tmp_path / "s"))
    finally:
        sock.close()
    assert "not a video device" in not_a_camera("/dev/null")


def test_the_grabber_on_a_fifo_says_so_and_stops_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "cam.fifo"
    os.mkfifo(fifo)
    grabber = FrameGrabber(str(fifo), backoff_min_s=0.05, backoff_max_s=0.1).start()
    try:
        wait_for(lambda: grabber.state == "not-a-camera", 10,
                 what=lambda: f"the FIFO refused ({grabber.status()})")
        assert "is a FIFO" in grabber.last_error and "[qr] camera" in grabber.last_error
        assert grabber.opens == 0 and grabber.get(timeout=0.1) is None
    finally:
        started = time.monotonic()
        grabber.stop()
    assert time.monotonic() - started < 5
    assert grabber._thread is not None and not grabber._thread.is_alive()
