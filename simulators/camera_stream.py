"""A network camera for the simulated store: an MJPEG stream over HTTP on loopback that
OpenCV opens like any IP camera (`http://127.0.0.1:PORT/cam.mjpg`).

It shows an empty counter until `show(frame, seconds)` puts a code in front of it.
`unplug()` drops every viewer and refuses new ones (the camera is gone), `plug()` brings
it back; the agent has to notice and reopen the stream by itself.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2

from simulators.camera_files import blank

BOUNDARY = b"frame"


class CameraStream:
    def __init__(self, size: tuple[int, int] = (640, 480), fps: float = 15.0) -> None:
        self.size = size
        self.fps = fps
        self._lock = threading.Lock()
        self._idle = self._jpeg(blank(size))
        self._showing: tuple[bytes, float] | None = None
        self._plugged = threading.Event()
        self._plugged.set()
        self.viewers = 0
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                camera._serve(self)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="camera",
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/cam.mjpg"

    def start(self) -> CameraStream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._plugged.clear()
        self._server.shutdown()
        self._server.server_close()

    @staticmethod
    def _jpeg(frame: Any) -> bytes:
        ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            raise RuntimeError("could not encode a camera frame")
        return bytes(data.tobytes())

    def show(self, frame: Any, seconds: float) -> None:
        """Hold `frame` (BGR or grey) in front of the camera for `seconds`."""
        with self._lock:
            self._showing = (self._jpeg(frame), time.monotonic() + seconds)

    def hide(self) -> None:
        """Take away what is shown: the empty counter again."""
        with self._lock:
            self._showing = None

    def unplug(self) -> None:
        self._plugged.clear()

    def plug(self) -> None:
        self._plugged.set()

    @property
    def plugged(self) -> bool:
        return self._plugged.is_set()

    def _current(self) -> bytes:
        with self._lock:
            if self._showing is not None and time.monotonic() < self._showing[1]:
                return self._showing[0]
            self._showing = None
            return self._idle

    def _serve(self, req: BaseHTTPRequestHandler) -> None:
        if not self._plugged.is_set():
            req.send_error(503, "camera unplugged")
            return
        req.send_response(200)
        req.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}")
        req.end_headers()
        self.viewers += 1
        period = 1.0 / self.fps
        try:
            while self._plugged.is_set():
                jpg = self._current()
                req.wfile.write(b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\n"
                                + f"Content-Length: {len(jpg)}\r\n\r\n".encode() + jpg + b"\r\n")
                req.wfile.flush()
                time.sleep(period)
        except OSError:
            pass  # the viewer went away
