"""The QR source: camera frames -> decoded codes -> `o2o.qr.scan` events.

Frames come from the capture thread (newest wins); decoding runs in a worker thread so the
event loop never waits on it. The same payload seen again within [qr] debounce_s of its last
sighting is the same scan (a code held in front of the camera for ten seconds is one scan).
Every payload is classified; the event carries the class and what was recognised (order,
link parts, loyalty card), and for a rejected payload only its reason, length and a short
hash — never the payload itself.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Final, cast

from agent.config import Config
from agent.contracts.events import QR_SCAN, QrScan
from agent.contracts.status import DriverStatus, Histogram, QrStatus
from agent.qr_policy import qr_policy
from drivers.qr.camera import FrameGrabber, Grabbed
from drivers.qr.classify import classify
from drivers.qr.decoders import QrDecoder, make_decoder

log = logging.getLogger(__name__)

Emit = Callable[[str, Any], object]
SEEN_LIMIT = 1024  # payloads remembered for debouncing
# decode time buckets (seconds, upper bounds) for o2o_qr_decode_seconds: a plain frame takes
# well under a millisecond here and a few on a Pi; the robust decoder's budget is 60 ms;
# a second means the worker is starved
DECODE_BUCKETS_S: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


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
    def __init__(self, cfg: Config, emit: Emit, grabber: FrameGrabber | None = None,
                 decoder: QrDecoder | None = None, clock: Callable[[], float] = time.time) -> None:
        q = cfg.qr
        self.cfg = cfg
        self.emit = emit
        self.clock = clock
        # a camera that comes back is looked for every few seconds at most: trying to open
        # one is cheap, and until it is open nobody's code can be read
        self.grabber = grabber or FrameGrabber(q.camera, roi=parse_roi(q.roi),
                                               max_width=q.max_width, loop=q.loop,
                                               fps_limit=q.fps_limit, backoff_max_s=5.0)
        self.decoder = decoder or make_decoder(q.decoder)
        self.policy = qr_policy(cfg)
        self._seen: dict[bytes, float] = {}
        self._stop = threading.Event()
        self.counts = {"frames_decoded": 0, "codes": 0, "scans": 0, "debounced": 0,
                       "rejected": 0, "decode_errors": 0}
        self.decode_ms_total = 0.0
        self.decode_times = DecodeTimes()

    def status(self) -> QrStatus:
        c = self.counts
        n = c["frames_decoded"]
        # the driver's part is its own dict (drivers know nothing of the agent's contracts)
        return {"camera": cast(DriverStatus, self.grabber.status()),
                "frames_decoded": n, "codes": c["codes"], "scans": c["scans"],
                "debounced": c["debounced"], "rejected": c["rejected"],
                "decode_errors": c["decode_errors"],
                "decode_ms_avg": round(self.decode_ms_total / n, 2) if n else None,
                "decode_seconds": self.decode_times.snapshot()}

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._stop.clear()
        self.grabber.start()
        worker = asyncio.ensure_future(asyncio.to_thread(
            self._loop, lambda t, d: loop.call_soon_threadsafe(self.emit, t, d)))
        try:
            await asyncio.shield(worker)
        finally:
            self._stop.set()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(worker), 5.0)
            await asyncio.to_thread(self.grabber.stop)

    def _loop(self, emit: Emit) -> None:
        while not self._stop.is_set():
            got = self.grabber.get(timeout=0.5)
            if got is not None:
                self.on_frame(got, emit)

    def on_frame(self, got: Grabbed, emit: Emit) -> None:
        started = time.perf_counter()
        try:
            codes = self.decoder.decode(got.grey)
        except Exception:  # a decoder's bug on one odd frame must not stop the camera
            self.counts["decode_errors"] += 1
            if self.counts["decode_errors"] & (self.counts["decode_errors"] - 1) == 0:
                log.exception("QR decoder failed on a frame (%d so far)",
                              self.counts["decode_errors"])  # 1st, 2nd, 4th...: not a flood
            return
        seconds = time.perf_counter() - started
        ms = seconds * 1000
        self.counts["frames_decoded"] += 1
        self.decode_ms_total += ms
        self.decode_times.observe(seconds)
        now = self.clock()
        for code in codes:
            self.counts["codes"] += 1
            last = self._seen.get(code.payload)
            self._seen[code.payload] = now
            if last is not None and now - last <= self.cfg.qr.debounce_s:
                self.counts["debounced"] += 1
                continue
            if len(self._seen) > SEEN_LIMIT:
                self._forget(now)
            # the text the symbol declares or zxing-cpp detects (Latin-1, Shift-JIS, ...);
            # binary content is judged by its bytes
            verdict = classify(code.payload, self.policy, now, text=code.text)
            self.counts["scans"] += 1
            self.counts["rejected"] += verdict.cls == "rejected"
            # the verdict's keys are the classifier's (drivers know nothing of QrScan)
            scan = cast(QrScan, verdict.as_json())
            scan["decode_ms"] = round(ms, 2)
            scan["frame_age_ms"] = round((now - got.t) * 1000, 1)
            emit(QR_SCAN, scan)

    def _forget(self, now: float) -> None:
        window = self.cfg.qr.debounce_s
        self._seen = {p: t for p, t in self._seen.items() if now - t <= window}
