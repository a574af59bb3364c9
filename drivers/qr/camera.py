"""Frames from a camera (a V4L2 device by index or path) or from a video / image-sequence
file (the simulator), read in a thread of their own.

The consumer always gets the newest frame: a one-frame slot that the capture thread
overwrites, counting the frames nobody looked at (`dropped`). Frames are turned grey,
cropped to a region of interest and scaled down in the capture thread, so the decoder gets
exactly what it needs. A camera that is missing or goes away, or a file that ends, is
reported in `status()` and opened again with backoff (a file is replayed when `loop`).
A path that is no camera and no file (a FIFO, a directory, a socket, a character device
other than V4L2's) is never handed to OpenCV, which blocks for ever opening a FIFO: it is
refused with the state `not-a-camera`.
"""

from __future__ import annotations

import os
import re
import stat
import threading
import time
from dataclasses import dataclass
from typing import Any, Final

from drivers.retry import Backoff


@dataclass(frozen=True)
class Grabbed:
    grey: Any  # uint8 H x W
    seq: int  # frames read since start, this one included
    t: float  # time.time() when it was read


def open_capture(source: str) -> Any:
    """cv2.VideoCapture for "0", "/dev/video0" (V4L2), a network camera (http://, rtsp://)
    or a file / "frames_%04d.png"."""
    import cv2

    if re.fullmatch(r"\d+", source):
        return cv2.VideoCapture(int(source), cv2.CAP_V4L2)
    if source.startswith("/dev/video"):
        return cv2.VideoCapture(source, cv2.CAP_V4L2)
    return cv2.VideoCapture(source)


V4L2_MAJOR: Final = 81  # Linux's video4linux character devices (/dev/video*, by any link)
NOT_A_CAMERA_FIX: Final = ("set [qr] camera to a camera (0, /dev/video0), a stream URL "
                           "(rtsp://...) or a video file")


def not_a_camera(source: str) -> str:
    """Why `source` cannot be a camera ("" when it may be opened): a camera index, a URL, an
    image-sequence pattern, a regular file, a V4L2 device, or a path not there (yet: reported
    as missing and tried again) may be; anything else would hang or fail inside OpenCV."""
    if source.isdigit() or "://" in source or "%" in source:
        return ""
    try:
        st = os.stat(source)
    except OSError:
        return ""  # missing or unreadable: OpenCV's open fails at once and says "missing"
    if stat.S_ISREG(st.st_mode):
        return ""
    if stat.S_ISCHR(st.st_mode):
        if os.major(st.st_rdev) == V4L2_MAJOR or os.path.realpath(source).startswith(
                "/dev/video"):
            return ""
        return "a character device that is not a video device"
    kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a directory" if stat.S_ISDIR(st.st_mode)
            else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a file")
    return f"{kind}, not a camera or a video file"


def is_live(source: str) -> bool:
    """A camera (local device or network stream), as opposed to a recorded file: when it
    stops giving frames it is lost and reopened, not finished."""
    return source.isdigit() or source.startswith("/dev/video") or "://" in source


class FrameGrabber:
    def __init__(self, source: str, roi: tuple[int, int, int, int] | None = None,
                 max_width: int = 0, loop: bool = False, fps_limit: float = 0.0,
                 backoff_min_s: float = 0.5, backoff_max_s: float = 30.0) -> None:
        """`roi` = (x, y, w, h) in camera pixels; `max_width` scales larger frames down;
        `fps_limit` paces a file to that rate (a camera paces itself)."""
        self.source = source
        self.roi = roi
        self.max_width = max_width
        self.loop = loop
        self.fps_limit = fps_limit
        self._backoff = Backoff(backoff_min_s, backoff_max_s)
        self._cond = threading.Condition()
        self._slot: Grabbed | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.state = "starting"
        self.last_error = ""
        self.frames = 0
        self.dropped = 0
        self.opens = 0

    # --- consumer side -------------------------------------------------------------------

    def start(self) -> FrameGrabber:
        self._thread = threading.Thread(target=self._run, name="camera", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(10)

    def get(self, timeout: float | None = None) -> Grabbed | None:
        """The newest frame not yet taken, waiting up to `timeout`; None if none came."""
        with self._cond:
            if self._slot is None:
                self._cond.wait_for(lambda: self._slot is not None or self._stop.is_set(),
                                    timeout)
            frame, self._slot = self._slot, None
            return frame

    def status(self) -> dict[str, Any]:
        return {"source": self.source, "state": self.state, "frames": self.frames,
                "dropped": self.dropped, "opens": self.opens, "last_error": self.last_error}

    # --- capture thread ------------------------------------------------------------------

    def _prepare(self, frame: Any) -> Any:
        import cv2

        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
        if self.roi is not None:
            x, y, w, h = self.roi
            grey = grey[y:y + h, x:x + w]
        if self.max_width and grey.shape[1] > self.max_width:
            scale = self.max_width / grey.shape[1]
            grey = cv2.resize(grey, (self.max_width, max(1, int(grey.shape[0] * scale))),
                              interpolation=cv2.INTER_AREA)
        return grey

    def _put(self, grey: Any) -> None:
        self.frames += 1
        with self._cond:
            if self._slot is not None:
                self.dropped += 1  # the consumer is slower than the camera: newest wins
            self._slot = Grabbed(grey, self.frames, time.time())
            self._cond.notify()

    def _run(self) -> None:
        while not self._stop.is_set():
            why = not_a_camera(self.source)
            if why:  # looked at again each round: the path may become a camera later
                self.state = "not-a-camera"
                self.last_error = f"{self.source!r} is {why}: {NOT_A_CAMERA_FIX}"
                self._stop.wait(self._backoff.next_delay())
                continue
            cap = open_capture(self.source)
            self.opens += 1
            try:
                if not cap.isOpened():
                    self.state = "missing"
                    self.last_error = f"cannot open {self.source!r} (no such camera or file)"
                else:
                    self._read_all(cap)
            finally:
                cap.release()
            if self.state == "ended" and not self.loop:
                return
            self._stop.wait(self._backoff.next_delay())

    def _read_all(self, cap: Any) -> None:
        self.state = "capturing"
        period = 1.0 / self.fps_limit if self.fps_limit > 0 else 0.0
        next_due = time.monotonic()
        while not self._stop.is_set():
            ok, frame = cap.read()
            if not ok or frame is None:
                is_file = not is_live(self.source)
                self.state = "ended" if is_file else "lost"
                self.last_error = "end of file" if is_file else "the camera stopped giving frames"
                return
            self._backoff.reset()
            grey = self._prepare(frame)
            if grey.size == 0:  # nothing of the picture is in the region of interest
                h, w = frame.shape[:2]
                self.state = "roi-outside-frame"
                self.last_error = (f"the region of interest {self.roi} is outside the camera's "
                                   f"{w}x{h} picture: fix [qr] roi (x,y,width,height)")
                self.dropped += 1
            else:
                self.state = "capturing"
                self._put(grey)
            if period:
                next_due += period
                self._stop.wait(max(0.0, next_due - time.monotonic()))
