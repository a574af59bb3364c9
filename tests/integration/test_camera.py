"""The capture thread over real OpenCV on real files: codes in a generated MJPG video and a
PNG sequence decoded through the capture path; newest-frame-wins with drops counted; a
missing camera and the end of a file reported; region of interest and downscale."""

from __future__ import annotations

import time
from pathlib import Path

from drivers.qr.camera import FrameGrabber
from drivers.qr.decoders import make_decoder
from simulators.camera_files import blank, write_sequence, write_video
from simulators.qr_frames import frame_set
from tests.conftest import wait_for


def _scene(n: int) -> tuple[list, list[str]]:  # type: ignore[type-arg]
    """Blank counter, then each code held for 5 frames with blanks in between."""
    codes = frame_set(n, (640, 480), hard=False, seed=9)
    frames, shown = [], []
    for f in codes:
        frames += [blank((640, 480))] * 3 + [f.image] * 5
        shown.append(f.payload)
    return frames, shown


def test_codes_in_a_video_are_read_through_the_capture_thread(tmp_path: Path) -> None:
    frames, shown = _scene(6)
    video = tmp_path / "counter.avi"
    assert write_video(video, frames, fps=30) == len(frames)
    grabber = FrameGrabber(str(video), fps_limit=60).start()
    decoder = make_decoder("robust")
    seen: list[str] = []
    try:
        while True:  # until the file has ended and nothing more comes
            got = grabber.get(timeout=2)
            if got is None:
                break
            for code in decoder.decode(got.grey):
                text = code.payload.decode()
                if not seen or seen[-1] != text:
                    seen.append(text)
    finally:
        grabber.stop()
    assert seen == shown
    st = grabber.status()
    assert st["state"] == "ended" and st["frames"] == len(frames) and st["last_error"]


def test_newest_frame_wins_and_the_rest_are_counted(tmp_path: Path) -> None:
    frames, _ = _scene(3)
    pattern = write_sequence(tmp_path / "seq", frames)
    grabber = FrameGrabber(pattern).start()  # as fast as the files can be read
    try:
        wait_for(lambda: grabber.state == "ended", 30, what="sequence read")
        last = grabber.get(timeout=1)
    finally:
        grabber.stop()
    # nobody took frames while they were read: only the last one is left, the rest dropped
    assert last is not None and last.seq == len(frames)
    assert grabber.dropped == len(frames) - 1
    assert grabber.get(timeout=0.1) is None  # taken once


def test_missing_camera_is_reported_and_retried(tmp_path: Path) -> None:
    grabber = FrameGrabber(str(tmp_path / "no-such-camera.avi"), backoff_min_s=0.05,
                           backoff_max_s=0.1).start()
    try:
        wait_for(lambda: grabber.opens >= 3, 20, what="retries")
        st = grabber.status()
    finally:
        grabber.stop()
    assert st["state"] == "missing" and "cannot open" in st["last_error"]


def test_a_file_that_ends_is_replayed_when_looping(tmp_path: Path) -> None:
    frames, _ = _scene(1)
    video = tmp_path / "loop.avi"
    write_video(video, frames)
    grabber = FrameGrabber(str(video), loop=True, backoff_min_s=0.01,
                           backoff_max_s=0.02).start()
    try:
        wait_for(lambda: grabber.frames > 2 * len(frames), 20, what="second pass")
    finally:
        grabber.stop()
    assert grabber.opens >= 2


def test_region_of_interest_and_downscale() -> None:
    import numpy as np

    g = FrameGrabber("unused", roi=(100, 50, 400, 300), max_width=200)
    out = g._prepare(np.zeros((480, 640, 3), np.uint8))
    assert out.shape == (150, 200)
    start = time.monotonic()
    assert g.get(timeout=0.05) is None and time.monotonic() - start < 2
