"""NFC tag reading with nfcpy, in a thread of its own, behind the `TagReader` Protocol.

nfcpy's calls block (a USB transfer, or a UDP wait of about a second per technology on the
simulator), so the sense loop runs in a thread and hands each tap to the event loop.

A tap is one tag put on the reader: it is read once, then watched until it is taken away
(a tag held on the reader is one tap). A tag that comes back within `debounce_s` of leaving
was only wobbling at the edge of the field: still the same tap. The time away is from the
presence check that missed it to the moment it is sensed again, so neither how long the
reader took to be sure it was gone nor how long the read took counts (both grow when the
CPU is busy). A reader that is missing, unplugged or taken by another program is reported in
`status()` with what to do, and opened again with backoff; the rest of the agent goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from drivers.errors import DriverError, DriverReason
from drivers.nfc.udp_timing import steady_udp, tag_found
from drivers.retry import Backoff

log = logging.getLogger(__name__)

DEFAULT_TARGETS = ("106A", "212F")  # ISO 14443-A (NTAG, Ultralight, Type 4A) and FeliCa
PRESENCE_POLL_S = 0.1
# nfcpy's UDP driver (the simulator) waits a whole second per technology for a tag to answer;
# an emulated tag on loopback answers in milliseconds, so the simulated reader waits this long
# instead and senses about as often as a USB reader does. USB readers are not affected.
UDP_SENSE_S = 0.1


@dataclass(frozen=True)
class TagRead:
    uid: bytes
    tag_type: str  # nfcpy's: "Type2Tag", "Type3Tag", "Type4Tag", ...
    product: str  # e.g. "NXP NTAG213"; the type when nothing more is known
    ndef: bytes | None  # the NDEF message; None: no NDEF data area (blank or foreign card)
    capacity: int  # bytes an NDEF message may have on this tag (0 when not NDEF)
    writeable: bool
    error: str  # "" or why the read is incomplete (tag taken away during the read, ...)
    sensed_at: float  # time.time() when the tag answered
    read_s: float  # activation and NDEF read


class TagReader(Protocol):
    def status(self) -> dict[str, Any]: ...

    async def run(self, on_tap: Callable[[TagRead], None]) -> None: ...


def open_problem(path: str, exc: BaseException | None) -> str:
    """What an nfcpy open failure means for staff, and what to do about it."""
    code = getattr(exc, "errno", None)
    if "libusb" in str(exc):
        return ("USB NFC readers need the libusb library: install it with "
                "'apt-get install libusb-1.0-0'")
    if code == errno.EACCES:
        return (f"no permission to use the NFC reader at {path!r}: install o2o-edge's udev "
                "rules (or add this user to the reader's group) and plug it in again")
    if code == errno.EBUSY:
        return (f"the NFC reader at {path!r} is in use: the kernel's pn533 driver or another "
                "program has it (blacklist pn533_usb, or stop the other program)")
    if path.startswith("udp"):
        return f"the simulated reader {path!r} could not be opened ({exc})"
    return (f"no NFC reader at {path!r}: plug one in (check with 'lsusb'), or set [nfc] "
            "reader to its path (usb, usb:VVVV:PPPP, tty:USB0:pn532)")


READER_PATHS: Final = "usb, usb:VVVV:PPPP, usb:BUS:DEV, tty:USB0:pn532 or udp:HOST:PORT"


def bad_path(path: str, exc: BaseException) -> str:
    """What a reader path nfcpy cannot even parse means, and what to set instead."""
    why = str(exc)[:120]
    hint = ""
    if path.startswith("udp:") and path.rsplit(":", 1)[-1].isdigit() and "literal" in why:
        hint = (" (nfcpy reads a UDP port that /etc/services names, such as 1 or 80, as that "
                "name: use a port it does not name)")
    return (f"the NFC reader path {path[:200]!r} is not one nfcpy can use ({why}){hint}: set "
            f"[nfc] reader (or --reader) to {READER_PATHS}")


def open_reader(path: str, udp_sense_s: float | None = UDP_SENSE_S) -> Any:
    """An opened nfc.ContactlessFrontend, or DriverError(NO_READER) saying what to do.
    `udp_sense_s`: see UDP_SENSE_S (None keeps nfcpy's own wait)."""
    import nfc

    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        # nfcpy sets itself to INFO on import, narrates every open and sense and logs each
        # failed open as an ERROR; what matters reaches status() and our own log instead
        logging.getLogger("nfc").setLevel(logging.CRITICAL)
    clf = nfc.ContactlessFrontend()
    try:
        ok = clf.open(path)
        problem: OSError | None = None
    except OSError as exc:
        ok, problem = False, exc
    except (ValueError, TypeError) as exc:
        # nfcpy parsing a path it cannot use: "udp:HOST:1" turns the port into its service
        # name ("tcpmux", from getnameinfo) and fails on int() of it; "udp:HOST:x" or an empty
        # path raise ValueError, a host too long for IDNA UnicodeError, a NUL TypeError
        raise DriverError(DriverReason.NO_READER, bad_path(path, exc)) from None
    if not ok:
        raise DriverError(DriverReason.NO_READER, open_problem(path, problem))
    if path.startswith("udp"):
        steady_udp(clf.device, udp_sense_s)
    return clf


def read_tag(clf: Any, target: Any) -> tuple[Any, TagRead] | None:
    """Activate a sensed target and read its UID and NDEF message; None if it did not
    answer activation (it moved away, or is not a tag)."""
    import nfc.clf
    import nfc.tag

    started = time.monotonic()
    tag = nfc.tag.activate(clf, target)
    if tag is None:
        return None
    ndef, capacity, writeable, error = None, 0, False, ""
    try:
        with tag_found(clf.device):  # the tag is there: its replies are waited for
            found = tag.ndef
        if found is not None:
            ndef, capacity, writeable = bytes(found.octets), found.capacity, found.is_writeable
    except (nfc.tag.TagCommandError, nfc.clf.CommunicationError) as exc:
        error = f"read-incomplete: the tag did not answer the whole read ({exc})"
    return tag, TagRead(
        uid=bytes(tag.identifier), tag_type=tag.type, product=str(tag.product), ndef=ndef,
        capacity=capacity, writeable=writeable, error=error, sensed_at=time.time(),
        read_s=time.monotonic() - started)


def still_there(tag: Any) -> bool:
    import nfc.clf
    import nfc.tag

    try:
        with tag_found(getattr(tag.clf, "device", None)):
            return bool(tag.is_present)
    except (nfc.tag.TagCommandError, nfc.clf.CommunicationError):
        return False


class NfcpyReader:
    def __init__(self, path: str = "usb", targets: tuple[str, ...] = DEFAULT_TARGETS,
                 interval_s: float = 0.1, debounce_s: float = 1.0,
                 backoff_min_s: float = 1.0, backoff_max_s: float = 30.0,
                 udp_sense_s: float | None = UDP_SENSE_S) -> None:
        self.path = path
        self.udp_sense_s = udp_sense_s
        self.targets = targets
        self.interval_s = interval_s
        self.debounce_s = debounce_s
        self._backoff = Backoff(backoff_min_s, backoff_max_s)
        self._stop = threading.Event()
        self._clf: Any = None
        self.state = "starting"
        self.recent_errors: deque[str] = deque(maxlen=5)
        self.counts = {"taps": 0, "debounced": 0, "failed_activations": 0, "incomplete_reads": 0,
                       "opens": 0, "lost": 0}
        self._last_tap = 0.0

    def status(self) -> dict[str, Any]:
        return {
            "reader": self.path, "state": self.state, **self.counts,
            "recent_errors": list(self.recent_errors),
            "last_tap_s_ago": round(time.time() - self._last_tap, 1) if self._last_tap else None,
        }

    def _problem(self, state: str, text: str) -> None:
        if self.state != state or not self.recent_errors or self.recent_errors[-1] != text:
            log.warning("NFC reader: %s", text)
            self.recent_errors.append(text)
        self.state = state

    async def run(self, on_tap: Callable[[TagRead], None]) -> None:
        loop = asyncio.get_running_loop()

        def deliver(read: TagRead) -> None:
            loop.call_soon_threadsafe(on_tap, read)

        self._stop.clear()
        # a thread of its own, not the event loop's executor: a driver call that never
        # returns must not keep the agent's shutdown waiting for it
        worker: asyncio.Future[None] = loop.create_future()

        def settle(exc: BaseException | None) -> None:
            if not worker.done():
                if exc is None:
                    worker.set_result(None)
                else:
                    worker.set_exception(exc)

        def work() -> None:
            outcome: BaseException | None = None
            try:
                self._loop(deliver)
            except BaseException as exc:  # handed to the awaiting task
                outcome = exc
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(settle, outcome)

        threading.Thread(target=work, name="nfc-reader", daemon=True).start()
        try:
            await asyncio.shield(worker)
        finally:
            self._stop.set()
            # a UDP sense waits up to a second per technology; a USB transfer far less
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(worker), 2.0 + len(self.targets))

    def stop(self) -> None:
        self._stop.set()

    # --- the reader thread --------------------------------------------------------------

    def _open(self) -> bool:
        try:
            self._clf = open_reader(self.path, self.udp_sense_s)
        except DriverError as exc:
            self._problem("no-reader", str(exc))
            return False
        self.counts["opens"] += 1
        self.state = "ready"
        return True

    def _close(self) -> None:
        if self._clf is not None:
            with contextlib.suppress(Exception):
                self._clf.close()
            self._clf = None

    def _loop(self, deliver: Callable[[TagRead], None]) -> None:
        import nfc.clf

        remote = [nfc.clf.RemoteTarget(t) for t in self.targets]
        last_uid, last_gone = b"", 0.0
        try:
            while not self._stop.is_set():
                if self._clf is None and not self._open():
                    self._stop.wait(self._backoff.next_delay())
                    continue
                try:
                    target = self._clf.sense(*remote, iterations=1)
                    if target is None:
                        self._stop.wait(self.interval_s)
                        continue
                    sensed = time.monotonic()
                    result = read_tag(self._clf, target)
                    if result is None:
                        self.counts["failed_activations"] += 1
                        continue
                    tag, read = result
                    self._backoff.reset()
                    same = read.uid == last_uid and sensed - last_gone < self.debounce_s
                    if same:
                        self.counts["debounced"] += 1
                    else:
                        self.counts["taps"] += 1
                        self.counts["incomplete_reads"] += bool(read.error)
                        self._last_tap = time.time()
                        deliver(read)
                    self.state = "tag-present"
                    missed = time.monotonic()
                    while not self._stop.is_set():
                        missed = time.monotonic()
                        if not still_there(tag):
                            break
                        self._stop.wait(PRESENCE_POLL_S)
                    last_uid, last_gone = read.uid, missed
                    self.state = "ready"
                except OSError as exc:  # the reader went away (unplugged, USB reset)
                    self.counts["lost"] += 1
                    self._problem("lost", f"the NFC reader at {self.path!r} stopped answering "
                                  f"({exc}); opening it again")
                    self._close()
                except Exception as exc:  # a driver fault: report, reopen, go on
                    self.counts["lost"] += 1
                    self._problem("error", f"NFC reader error: {exc!r}; opening it again")
                    log.debug("NFC reader fault", exc_info=True)
                    self._close()
                    self._stop.wait(self._backoff.next_delay())
        finally:
            self._close()
            self.state = "stopped"
