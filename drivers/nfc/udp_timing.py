"""Timing fixes for nfcpy's UDP driver (the simulated reader).

- Its receive waits on `time.time()` deadlines: a wall-clock step back (NTP correcting a
  Pi that booted with a stale clock) would make a read wait for as long as the step. Here
  the same receive is timed on the monotonic clock.
- It waits a full second per technology while sensing for a tag that is not there; a real
  reader answers in milliseconds. `sense_wait_s` caps that wait while sensing.
- Once a tag is found it waits only as long as a card's chip takes to answer: 3.6 ms for a
  FeliCa poll, the presence check that runs all the while a card is held. An emulated tag
  is a program on the same CPUs, answering whenever the scheduler lets it: on a busy
  machine tens of milliseconds late, which read as the card taken away and put back, and
  when the wait to find it again outlasts the debounce, as a second tap of one card held.
  Within `tag_found()` (the NDEF read, the presence checks) a reply is waited for at least
  `reply_min_s`; a tag taken away is then noticed in about three of these, as an NTAG
  always was. Activation keeps nfcpy's waits, some of which expect silence (its 10 ms
  probe of an NTAG). The receive of a thread that was itself kept late takes a reply that
  arrived in time. A USB reader times replies in its chip, where a busy CPU does not reach.
"""

from __future__ import annotations

import select
import time
from binascii import unhexlify
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

# the least time the simulated reader waits for the reply of an emulated tag it has found
# (see the module's docstring)
REPLY_MIN_S = 0.1


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
            # this thread may have been kept off the CPU past the deadline: a reply that is
            # already here came in time
            if not select.select([device.socket], [], [], 0)[0]:
                raise nfc.clf.TimeoutError("no data received")
            wait = 0
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


@contextmanager
def tag_found(device: Any) -> Iterator[None]:
    """While a tag known to be on the reader is read or checked for, a device given
    `steady_udp` waits at least its `reply_min_s` for each reply; any other device is left
    as it is."""
    if not hasattr(device, "checking"):
        yield
        return
    device.checking = True
    try:
        yield
    finally:
        device.checking = False


def steady_udp(device: Any, sense_wait_s: float | None,
               reply_min_s: float = REPLY_MIN_S) -> None:
    """Give an opened nfcpy UDP device the monotonic receive, the least reply wait
    `reply_min_s` within `tag_found()` and, if `sense_wait_s` is set, the capped sense
    wait."""
    import nfc.clf.udp

    class SteadyUdp(nfc.clf.udp.Device):  # type: ignore[misc]
        sensing = False
        checking = False

        def _recv_data(self, timeout: float | None, *kinds: str) -> Any:
            if self.sensing:
                if timeout is not None and sense_wait_s is not None:
                    timeout = min(timeout, sense_wait_s)
            elif self.checking and timeout is not None:
                timeout = max(timeout, reply_min_s)
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
