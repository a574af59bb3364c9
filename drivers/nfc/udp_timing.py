"""Timing fixes for nfcpy's UDP driver (the simulated reader).

- Its receive waits on `time.time()` deadlines: a wall-clock step back (NTP correcting a
  Pi that booted with a stale clock) would make a read wait for as long as the step. Here
  the same receive is timed on the monotonic clock.
- It waits a full second per technology while sensing for a tag that is not there; a real
  reader answers in milliseconds. `sense_wait_s` caps that wait while sensing.
"""

from __future__ import annotations

import select
import time
from binascii import unhexlify
from collections.abc import Callable
from typing import Any


def receive(device: Any, timeout: float | None, kinds: tuple[str, ...],
            alive: Callable[[], bool] | None = None, poll_s: float = 0.05) -> Any:
    """nfcpy's UDP receive, timed on the monotonic clock: (kind, frame, address) of the next
    frame of one of `kinds`. `alive`, when given, is looked at every `poll_s` while waiting;
    once it is false the wait ends as a timeout (the tag emulator's tag was taken away)."""
    import nfc.clf

    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        if alive is not None and not alive():
            raise nfc.clf.TimeoutError("no data received")
        wait = None if deadline is None else deadline - time.monotonic()
        if wait is not None and wait <= 0:
            raise nfc.clf.TimeoutError("no data received")
        if alive is not None:
            wait = poll_s if wait is None else min(wait, poll_s)
        if not select.select([device.socket], [], [], wait)[0]:
            continue
        data, addr = device.socket.recvfrom(1024)
        if data.startswith(b"RFOFF"):
            raise nfc.clf.BrokenLinkError("RFOFF")
        parts = data.split()
        if len(parts) != 2:
            raise nfc.clf.TransmissionError("no data")
        kind, payload = parts[0].decode("ascii"), bytearray(unhexlify(parts[1]))
        device.rcvd_data += len(payload)
        if kind in kinds:
            return kind, payload, addr


def steady_udp(device: Any, sense_wait_s: float | None) -> None:
    """Give an opened nfcpy UDP device the monotonic receive and, if `sense_wait_s` is
    set, the capped sense wait."""
    import nfc.clf.udp

    class SteadyUdp(nfc.clf.udp.Device):  # type: ignore[misc]
        sensing = False

        def _recv_data(self, timeout: float | None, *kinds: str) -> Any:
            if self.sensing and timeout is not None and sense_wait_s is not None:
                timeout = min(timeout, sense_wait_s)
            return receive(self, timeout, kinds)

        def _sense(self, how: Any, target: Any) -> Any:
            self.sensing = True
            try:
                return how(target)
            finally:
                self.sensing = False

        def sense_tta(self, target: Any) -> Any:
            return self._sense(super().sense_tta, target)

        def sense_ttb(self, target: Any) -> Any:
            return self._sense(super().sense_ttb, target)

        def sense_ttf(self, target: Any) -> Any:
            return self._sense(super().sense_ttf, target)

    if type(device) is nfc.clf.udp.Device:
        device.__class__ = SteadyUdp
