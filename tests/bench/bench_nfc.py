"""NFC: a tag put on the reader -> its event committed to the outbox, with UDP-emulated tags
and the real nfcpy reader; baseline: a bare nfcpy `connect()` loop reading the same tag's NDEF
in its on-connect callback, measured in the same run, rounds interleaved.

    python3 dev.py bench-nfc [--taps N] [--json FILE]

Each tap: the tag appears at a random moment of the reader's sense cycle, stays 0.3 s, is
taken away; the next one comes after a random 0-1 s. Reported per reader configuration
(one technology, and the default two): p50 / p90 / max of present -> event committed (ours,
with the simulator's short sense wait and with nfcpy's own 1 s), present -> NDEF read in
on-connect (baseline), and our own share after the tag answered (activation + NDEF read +
decode + event + group commit). nfcpy's UDP driver waits up to a second per technology for
an answer, which dominates at its default; a USB reader senses in milliseconds, so the part
after the tag answered is what carries over to hardware.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from agent.config import Config, NfcConfig, QrConfig
from agent.envelope import make_pending
from agent.nfc_source import NfcSource
from agent.outbox import OutboxWriter
from drivers.nfc.ndef_encode import smartposter_message
from drivers.nfc.reader import UDP_SENSE_S, NfcpyReader, TagRead
from simulators.nfc_tags import TagEmulator, free_udp_port, ntag213

POSTER = smartposter_message("https://shop.example/p/42?utm_campaign=autumn",
                             {"en": "Autumn coffee"})


def _tag(i: int) -> Any:
    return ntag213(bytes([4, 0x10, 0x20, 0x30, 0x40, i // 256, i % 256]), POSTER)


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def _summary(xs: list[float]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(xs) * 1000, 1),
            "p90_ms": round(_pct(xs, 0.9) * 1000, 1), "max_ms": round(max(xs) * 1000, 1),
            "n": len(xs)}


class Ours:
    """NfcSource over NfcpyReader, events submitted to a real outbox writer."""

    def __init__(self, port: int, targets: tuple[str, ...], outbox: Path,
                 udp_sense_s: float | None) -> None:
        cfg = Config(nfc=NfcConfig(enabled=True, reader=f"udp:127.0.0.1:{port}",
                                   targets=list(targets), debounce_s=0.0),
                     qr=QrConfig(domains=["shop.example"]))
        self.writer = OutboxWriter(outbox, max_bytes=1024**3, ttl_s=86400.0,
                                   source="o2o-edge://bench/nfc", bootid="BENCH")
        self.writer.start()
        self.committed: list[float] = []
        self.read_s: list[float] = []
        self.after_answer: list[float] = []
        self.reader = NfcpyReader(cfg.nfc.reader, targets=targets, debounce_s=0.0,
                                  udp_sense_s=udp_sense_s)
        self.source = NfcSource(cfg, self.reader, self._emit)
        self._last_read: TagRead | None = None
        orig = self.source.on_tap

        def on_tap(read: TagRead) -> None:
            self._last_read = read
            orig(read)
        self.source.on_tap = on_tap  # type: ignore[method-assign]
        self._thread = threading.Thread(target=lambda: asyncio.run(self.source.run()),
                                        daemon=True)
        self._thread.start()

    def _emit(self, event_type: str, data: Any) -> None:
        read = self._last_read
        fut = self.writer.submit([make_pending(event_type, data, time.time())])

        def done(_: Any) -> None:
            now = time.time()
            self.committed.append(now)
            if read is not None:
                self.read_s.append(read.read_s)
                self.after_answer.append(now - read.sensed_at)
        fut.add_done_callback(done)

    def events(self) -> int:
        return len(self.committed)

    def close(self) -> None:
        self.reader.stop()
        self._thread.join(10)
        self.writer.stop()


class Bare:
    """nfcpy as a caller would use it without the project: connect() with on-connect."""

    def __init__(self, port: int, targets: tuple[str, ...]) -> None:
        import nfc

        self.clf = nfc.ContactlessFrontend(f"udp:127.0.0.1:{port}")
        self.committed: list[float] = []
        self._stop = threading.Event()
        rdwr = {"targets": list(targets), "on-connect": self._on_connect, "interval": 0.1,
                "iterations": 1, "beep-on-connect": False}
        def loop() -> None:
            while not self._stop.is_set():  # connect() returns after each tag has left
                self.clf.connect(rdwr=rdwr, terminate=self._stop.is_set)
        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def _on_connect(self, tag: Any) -> bool:
        ndef = tag.ndef
        if ndef is not None:
            bytes(ndef.octets)
        self.committed.append(time.time())
        return True  # wait for the tag to leave, like ours

    def events(self) -> int:
        return len(self.committed)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.clf.close()


def _taps(emu: TagEmulator, reader: Any, n: int, rng: random.Random, first: int) -> list[float]:
    out = []
    for i in range(n):
        time.sleep(rng.uniform(0.0, 1.0))
        before = reader.events()
        t0 = time.time()
        emu.present(_tag(first + i))
        deadline = time.monotonic() + 10
        while reader.events() == before and time.monotonic() < deadline:
            time.sleep(0.002)
        if reader.events() == before:
            raise RuntimeError("a tap was not read within 10 s")
        out.append(reader.committed[-1] - t0)
        time.sleep(0.3)
        emu.remove()
        time.sleep(0.4)  # the reader notices the tag has gone
    return out


def run(taps: int) -> dict[str, Any]:
    rng = random.Random(7)
    results: dict[str, Any] = {}
    for targets in (("106A",), ("106A", "212F")):
        ours_lat: list[float] = []
        slow_lat: list[float] = []
        bare_lat: list[float] = []
        after: list[float] = []
        read_s: list[float] = []
        rounds = 4
        with tempfile.TemporaryDirectory() as d:
            for r in range(rounds):
                k = taps // rounds
                for sense, lat in ((UDP_SENSE_S, ours_lat), (None, slow_lat)):
                    with TagEmulator(free_udp_port()) as emu:
                        ours = Ours(emu.port, targets, Path(d) / f"outbox{r}{sense}.db", sense)
                        time.sleep(0.3)
                        lat += _taps(emu, ours, k, rng, r * 1000)
                        if sense is not None:
                            after += ours.after_answer
                            read_s += ours.read_s
                        ours.close()
                with TagEmulator(free_udp_port()) as emu:
                    bare = Bare(emu.port, targets)
                    time.sleep(0.3)
                    bare_lat += _taps(emu, bare, k, rng, r * 1000 + 500)
                    bare.close()
                print(f"  {'+'.join(targets)} round {r + 1}/{rounds}", file=sys.stderr)
        name = "+".join(targets)
        results[name] = {
            "ours_present_to_committed": _summary(ours_lat),
            "ours_with_nfcpy_1s_udp_wait": _summary(slow_lat),
            "bare_nfcpy_present_to_on_connect": _summary(bare_lat),
            "ours_tag_answered_to_committed": _summary(after),
            "ours_activation_and_ndef_read": _summary(read_s),
            "ratio_p50_bare_over_ours": round(statistics.median(bare_lat)
                                              / statistics.median(ours_lat), 2),
            "ratio_p50_same_wait_ours_over_bare": round(statistics.median(slow_lat)
                                                        / statistics.median(bare_lat), 2),
        }
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--taps", type=int, default=40, help="taps per reader configuration")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args(argv)
    res = run(args.taps)
    for name, r in res.items():
        print(f"\nreader targets {name}:")
        for key, v in r.items():
            print(f"  {key:36s} {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
