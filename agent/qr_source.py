"""The QR source: camera frames -> decoded codes -> `o2o.qr.scan` events.

The camera is read and its frames decoded in a process of its own (agent/qr_camera.py): OpenCV,
numpy and zxing-cpp stay out of the agent's memory, and a crash in a video decoder is that
process's, started again by the supervisor. Its lines are read on the event loop (a reader on
the pipe: no thread waits on it). The same payload seen again within [qr] debounce_s of its
last sighting is the same scan (a code held in front of the camera for ten seconds is one
scan). Every payload is classified; the event carries the class and what was recognised
(order, link parts, loyalty card), and for a rejected payload only its reason, length and a
short hash — never the payload itself.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import contextlib
import itertools
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, cast

from agent.config import Config
from agent.contracts.events import QR_SCAN, QrScan
from agent.contracts.status import DriverStatus, Histogram, QrStatus
from agent.qr_policy import qr_policy
from drivers.errors import DriverError, DriverReason
from drivers.qr.camera import Grabbed
from drivers.qr.classify import classify

if TYPE_CHECKING:
    from drivers.qr.decoders import QrDecoder

log = logging.getLogger(__name__)

Emit = Callable[[str, Any], object]
SEEN_LIMIT = 1024  # payloads remembered for debouncing
# decode time buckets (seconds, upper bounds) for o2o_qr_decode_seconds: a plain frame takes
# well under a millisecond here and a few on a Pi; the robust decoder's budget is 60 ms;
# a second means the worker is starved
DECODE_BUCKETS_S: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
CAMERA_PROCESS: Final = (sys.executable, "-m", "agent.qr_camera")
LINE_MAX: Final = 1 << 20  # a line this long from the camera process is not one of its lines
STOP_WAIT_S: Final = 5.0  # the camera process's time to stop once asked (its stdin closed)


class DecodeTimes:
    """Decode times as a histogram: bucket counts, a sum and a count — constant memory
    however long the camera runs. Written by the decode worker, read by status()."""

    def __init__(self, bounds: tuple[float, ...] = DECODE_BUCKETS_S) -> None:
        self.bounds = bounds
        self._counts = [0] * (len(bounds) + 1)  # the last one: above every bound
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        i = bisect.bisect_left(self.bounds, seconds)
        with self._lock:
            self._counts[i] += 1
            self._sum += seconds

    def snapshot(self) -> Histogram:
        """Cumulative counts per upper bound ("+Inf" last), as Prometheus wants them."""
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative = list(itertools.accumulate(counts))
        les = [repr(b) for b in self.bounds] + ["+Inf"]
        return {"buckets": [(le, n) for le, n in zip(les, cumulative, strict=True)],
                "sum": round(total, 6), "count": cumulative[-1]}


def parse_roi(text: str) -> tuple[int, int, int, int] | None:
    if not text:
        return None
    x, y, w, h = (int(v) for v in text.split(","))
    return x, y, w, h


class QrSource:
    def __init__(self, cfg: Config, emit: Emit, decoder: QrDecoder | None = None,
                 clock: Callable[[], float] = time.time,
                 command: Sequence[str] = CAMERA_PROCESS) -> None:
        """`decoder`: for frames handed to on_frame in this process (tests); run() has the
        camera process read and decode them. `command` starts that process."""
        q = cfg.qr
        self.cfg = cfg
        self.emit = emit
        self.clock = clock
        self.command = tuple(command)
        self.decoder = decoder
        self.policy = qr_policy(cfg)
        self._seen: dict[bytes, float] = {}
        # the frame grabber's status, as the camera process last sent it
        self.camera: dict[str, Any] = {"source": q.camera, "state": "starting", "frames": 0,
                                       "dropped": 0, "opens": 0, "last_error": ""}
        self.pid = 0
        self.counts = {"frames_decoded": 0, "codes": 0, "scans": 0, "debounced": 0,
                       "rejected": 0, "decode_errors": 0}
        self.decode_ms_total = 0.0
        self.decode_times = DecodeTimes()

    def status(self) -> QrStatus:
        c = self.counts
        n = c["frames_decoded"]
        # the driver's part is its own dict (drivers know nothing of the agent's contracts)
        return {"camera": cast(DriverStatus, dict(self.camera)),
                "frames_decoded": n, "codes": c["codes"], "scans": c["scans"],
                "debounced": c["debounced"], "rejected": c["rejected"],
                "decode_errors": c["decode_errors"],
                "decode_ms_avg": round(self.decode_ms_total / n, 2) if n else None,
                "decode_seconds": self.decode_times.snapshot()}

    def settings(self) -> dict[str, Any]:
        """What the camera process is told (agent/qr_camera.py Settings)."""
        q = self.cfg.qr
        roi = parse_roi(q.roi)
        return {"camera": q.camera, "roi": list(roi) if roi else None,
                "max_width": q.max_width, "loop": q.loop, "fps_limit": q.fps_limit,
                "decoder": q.decoder}

    async def run(self) -> None:
        """One life of the camera process: until cancelled (it is stopped), or until it ends
        on its own, which raises (the supervisor starts it again, with backoff)."""
        loop = asyncio.get_running_loop()
        proc = subprocess.Popen(self.command, stdin=subprocess.PIPE,  # noqa: S603 - ours
                                stdout=subprocess.PIPE, close_fds=True)
        assert proc.stdin is not None and proc.stdout is not None
        self.pid = proc.pid
        fd = proc.stdout.fileno()
        os.set_blocking(fd, False)
        ended: asyncio.Future[None] = loop.create_future()
        buf = bytearray()
        fatal: list[str] = []

        def readable() -> None:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            buf.extend(chunk)
            while (i := buf.find(b"\n")) >= 0:
                line = bytes(buf[:i])
                del buf[:i + 1]
                self._on_line(line, fatal)
            if not chunk or len(buf) > LINE_MAX:
                loop.remove_reader(fd)
                if not ended.done():
                    ended.set_result(None)

        loop.add_reader(fd, readable)
        try:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write(json.dumps(self.settings()).encode() + b"\n")
                proc.stdin.flush()
            await ended
            code = await _reaped(proc, STOP_WAIT_S)
            why = fatal[0] if fatal else f"the camera process ended (exit code {code})"
            self.camera.update(state="failed", last_error=why)
            raise DriverError(DriverReason.BACKEND, why)
        finally:
            loop.remove_reader(fd)
            with contextlib.suppress(OSError):
                proc.stdin.close()  # its end of input: the camera process stops
            await _reaped(proc, STOP_WAIT_S)
            proc.stdout.close()

    def _on_line(self, line: bytes, fatal: list[str]) -> None:
        try:
            msg = json.loads(line)
            if "camera" in msg:
                self.camera = {**msg["camera"], "pid": self.pid}
            elif "t" in msg:
                codes = [_code(c) for c in msg.get("codes", ())]
                self._on_codes(codes, float(msg["s"]), float(msg["t"]), self.emit)
            elif "error" in msg:
                self.counts["decode_errors"] += 1
            elif "fatal" in msg:
                fatal.append(str(msg["fatal"]))
        except (ValueError, TypeError, KeyError, binascii.Error):
            log.warning("the QR camera process sent a line that is none of its own: %.80r",
                        line)

    def on_frame(self, got: Grabbed, emit: Emit) -> None:
        """A frame decoded in this process (tests, and tools that have frames in hand)."""
        if self.decoder is None:
            from drivers.qr.decoders import make_decoder  # OpenCV: only when used here

            self.decoder = make_decoder(self.cfg.qr.decoder)
        started = time.perf_counter()
        try:
            codes = self.decoder.decode(got.grey)
        except Exception:  # a decoder's bug on one odd frame must not stop the camera
            self.counts["decode_errors"] += 1
            if self.counts["decode_errors"] & (self.counts["decode_errors"] - 1) == 0:
                log.exception("QR decoder failed on a frame (%d so far)",
                              self.counts["decode_errors"])  # 1st, 2nd, 4th...: not a flood
            return
        self._on_codes([(c.payload, c.text, c.kind) for c in codes],
                       time.perf_counter() - started, got.t, emit)

    def _on_codes(self, codes: list[tuple[bytes, str | None, str]], seconds: float,
                  frame_t: float, emit: Emit) -> None:
        ms = seconds * 1000
        self.counts["frames_decoded"] += 1
        self.decode_ms_total += ms
        self.decode_times.observe(seconds)
        now = self.clock()
        for payload, text, kind in codes:
            self.counts["codes"] += 1
            last = self._seen.get(payload)
            self._seen[payload] = now
            if last is not None and now - last <= self.cfg.qr.debounce_s:
                self.counts["debounced"] += 1
                continue
            if len(self._seen) > SEEN_LIMIT:
                self._forget(now)
            # the text the symbol declares or zxing-cpp detects (Latin-1, Shift-JIS, ...);
            # binary content is judged by its bytes
            verdict = classify(payload, self.policy, now, text=text, kind=kind)
            self.counts["scans"] += 1
            self.counts["rejected"] += verdict.cls == "rejected"
            # the verdict's keys are the classifier's (drivers know nothing of QrScan)
            scan = cast(QrScan, verdict.as_json())
            scan["decode_ms"] = round(ms, 2)
            scan["frame_age_ms"] = round((now - frame_t) * 1000, 1)
            emit(QR_SCAN, scan)

    def _forget(self, now: float) -> None:
        window = self.cfg.qr.debounce_s
        self._seen = {p: t for p, t in self._seen.items() if now - t <= window}


def _code(line: list[Any]) -> tuple[bytes, str | None, str]:
    """One code of a camera process's line: payload (base64), text or null, symbology."""
    if not isinstance(line, list) or len(line) < 2:
        raise ValueError("a code is [payload, text, symbology]")
    payload, text = line[0], line[1]
    kind = line[2] if len(line) > 2 and isinstance(line[2], str) else "QRCode"
    return (base64.b64decode(payload, validate=True), text if isinstance(text, str) else None,
            kind)


async def _reaped(proc: subprocess.Popen[bytes], wait_s: float) -> int:
    """The process's exit code once it has exited: waited for on the loop (polled, no
    thread), killed when it takes longer than `wait_s`."""
    deadline = time.monotonic() + wait_s
    while (code := proc.poll()) is None:
        if time.monotonic() > deadline:
            proc.kill()
            deadline = float("inf")
        await asyncio.sleep(0.02)
    return code
