"""The QR camera's own process: frames read and decoded away from the agent, which starts it
(agent/qr_source.py), gets one line per decoded frame and classifies what was read.

OpenCV (with the FFmpeg it carries), numpy and zxing-cpp cost about 30 MiB of resident memory
to import and more once frames flow; here they are not in the agent's memory, and a native
crash in a video decoder (a broken stream, an odd camera) ends this process, which the agent
starts again, not the agent.
This module imports nothing of the agent: only the camera and decoder drivers.

Protocol, JSON lines both ways:
- stdin: one line with the settings (`Settings`), then nothing; its end (the agent stopped,
  or died) stops this process;
- stdout: `{"t": frame time, "s": decode seconds, "codes": [[payload base64, text|null,
  symbology]]}`
  per decoded frame (no "codes" when none was read), `{"error": text}` when the decoder
  failed on a frame, `{"camera": {...}}` (the frame grabber's status, with this process's
  resident memory as rss_mib) every STATUS_EVERY_S, and `{"fatal": text}` before exiting 2
  when the settings cannot be used.
"""

from __future__ import annotations

import base64
import json
import logging
import signal
import sys
import threading
import time
from typing import Any, BinaryIO, Final, TypedDict

from drivers.errors import DriverError
from drivers.qr.camera import FrameGrabber
from drivers.qr.decoders import make_decoder

log = logging.getLogger("agent.qr_camera")

STATUS_EVERY_S: Final = 0.5  # the agent's status shows the camera at most this late


class Settings(TypedDict):
    camera: str
    roi: list[int] | None  # x, y, w, h
    max_width: int
    loop: bool
    fps_limit: float
    decoder: str


class Lines:
    """stdout, one JSON object a line, flushed each: the agent reads them as they come."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out

    def send(self, obj: dict[str, Any]) -> None:
        self._out.write(json.dumps(obj, separators=(",", ":")).encode() + b"\n")
        self._out.flush()


def rss_mib() -> float:
    """This process's resident memory (MiB): the agent shows it beside the camera's state."""
    try:
        with open("/proc/self/status") as fh:
            kib = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
    except (OSError, StopIteration, ValueError):
        return 0.0
    return round(kib / 1024, 1)


def serve(settings: Settings, lines: Lines, stop: threading.Event) -> None:
    roi = settings["roi"]
    grabber = FrameGrabber(
        settings["camera"],
        roi=(roi[0], roi[1], roi[2], roi[3]) if roi else None,
        max_width=settings["max_width"],
        loop=settings["loop"],
        fps_limit=settings["fps_limit"],
        backoff_max_s=5.0,
    )
    decoder = make_decoder(settings["decoder"])
    grabber.start()
    errors = 0
    next_status = 0.0
    try:
        while not stop.is_set():
            got = grabber.get(timeout=STATUS_EVERY_S)
            if got is not None:
                started = time.perf_counter()
                try:
                    codes = decoder.decode(got.grey)
                except Exception as exc:  # one odd frame must not stop the camera
                    errors += 1
                    if errors & (errors - 1) == 0:  # 1st, 2nd, 4th...: not a flood
                        log.exception("QR decoder failed on a frame (%d so far)", errors)
                    lines.send({"error": f"{type(exc).__name__}: {exc}"[:200]})
                else:
                    line: dict[str, Any] = {
                        "t": got.t,
                        "s": round(time.perf_counter() - started, 6),
                    }
                    if codes:
                        line["codes"] = [
                            [base64.b64encode(c.payload).decode(), c.text, c.kind]
                            for c in codes
                        ]
                    lines.send(line)
            if time.monotonic() >= next_status:
                lines.send({"camera": {**grabber.status(), "rss_mib": rss_mib()}})
                next_status = time.monotonic() + STATUS_EVERY_S
    finally:
        grabber.stop()
        lines.send({"camera": {**grabber.status(), "rss_mib": rss_mib()}})


def main() -> int:
    # Ctrl-C at the agent's terminal reaches this process too: the agent stops it (stdin)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="qr camera: %(levelname)s %(message)s")
    lines = Lines(sys.stdout.buffer)
    try:
        settings: Settings = json.loads(sys.stdin.buffer.readline())
        settings["camera"]  # a line that is no settings fails here, named
    except (ValueError, TypeError, KeyError) as exc:
        lines.send(
            {
                "fatal": f"no camera settings on stdin ({exc}): this process is "
                "started by the agent's QR source"
            }
        )
        return 2
    stop = threading.Event()

    def until_stdin_ends() -> None:
        sys.stdin.buffer.read()
        stop.set()

    threading.Thread(target=until_stdin_ends, name="qr-camera-stdin", daemon=True).start()
    try:
        import cv2  # noqa: F401 - every camera is read through it: missing, say so at once

        serve(settings, lines, stop)
    except ImportError as exc:
        lines.send(
            {
                "fatal": f"the QR camera needs OpenCV, numpy and zxing-cpp ({exc}): install "
                "them in the agent's environment, or set [qr] enabled = false"
            }
        )
        return 2
    except DriverError as exc:
        lines.send({"fatal": str(exc)})
        return 2
    except BrokenPipeError:  # the agent is gone
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
