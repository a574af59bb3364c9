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
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

from agent.config import Config
from agent.qr_policy import qr_policy
from drivers.qr.camera import FrameGrabber, Grabbed
from drivers.qr.classify import classify
from drivers.qr.decoders import QrDecoder, make_decoder

Emit = Callable[[str, Any], object]
SEEN_LIMIT = 1024  # payloads remembered for debouncing


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
                       "rejected": 0}
        self.decode_ms_total = 0.0

    def status(self) -> dict[str, Any]:
        n = self.counts["frames_decoded"]
        return {"camera": self.grabber.status(), **self.counts,
                "decode_ms_avg": round(self.decode_ms_total / n, 2) if n else None}

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
        codes = self.decoder.decode(got.grey)
        ms = (time.perf_counter() - started) * 1000
        self.counts["frames_decoded"] += 1
        self.decode_ms_total += ms
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
            verdict = classify(code.payload, self.policy, now)
            self.counts["scans"] += 1
            self.counts["rejected"] += verdict.cls == "rejected"
            emit("o2o.qr.scan", {**verdict.as_json(), "decode_ms": round(ms, 2),
                                 "frame_age_ms": round((now - got.t) * 1000, 1)})

    def _forget(self, now: float) -> None:
        window = self.cfg.qr.debounce_s
        self._seen = {p: t for p, t in self._seen.items() if now - t <= window}
