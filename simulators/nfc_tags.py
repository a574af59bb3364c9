"""NFC tags emulated over nfcpy's UDP driver, for a real nfcpy reader on "udp:127.0.0.1:PORT".

A `TagEmulator` owns one UDP port: `present(tag)` puts a tag on the reader, `remove()` takes
it away, and the reader sees exactly that through the real nfcpy stack — anticollision,
activation, NDEF discovery, reads, writes and presence checks. Three kinds:

- "type2": an NXP NTAG213 (7-byte UID, 144-byte data area): READ, WRITE, GET_VERSION; the
  static and dynamic lock bits make pages read-only, as on the chip;
- "type3": a FeliCa tag (NFC Forum Type 3, system 12FC), served by nfcpy's own
  Type3TagEmulation with our attribute block and NDEF blocks;
- "type4a": an ISO-DEP Type 4A tag (NDEF application, CC file E103, NDEF file E104) with our
  own ISO-DEP block loop (I-blocks with chaining, R(ACK)/R(NAK), DESELECT).

Whatever the reader writes lands in `EmulatedTag.ndef`, so a test reads it back from here too.
`ndef` can hold any bytes: a malformed message is served as it is.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from drivers.nfc.udp_timing import receive
from simulators.nfc_session import SESSION_POLL_S
from simulators.nfc_session import EmulatedTag as EmulatedTag  # where the tests and runner find it
from simulators.nfc_type2 import serve_type2
from simulators.nfc_type3 import serve_type3
from simulators.nfc_type4 import serve_type4a
from simulators.nfc_type_a import Frame, listen_type_a

log = logging.getLogger(__name__)

LISTEN_S = 5.0  # one listen for activation (ended early by remove())


def ntag213(uid: bytes, ndef: bytes = b"", read_only: bool = False) -> EmulatedTag:
    return EmulatedTag("type2", uid, ndef, 142, read_only)


def felica(idm: bytes, ndef: bytes = b"", blocks: int = 13, read_only: bool = False) -> EmulatedTag:
    return EmulatedTag("type3", idm, ndef, 16 * blocks, read_only)


def type4a(uid: bytes, ndef: bytes = b"", capacity: int = 1022,
           read_only: bool = False) -> EmulatedTag:
    return EmulatedTag("type4a", uid, ndef, capacity, read_only)


def _loopback_device(port: int, present: Callable[[], bool], reply_delay_s: float = 0.0) -> Any:
    """nfcpy's UDP device, kept on 127.0.0.1 and on one socket for the emulator's life.

    nfcpy's listener binds 0.0.0.0 and closes its socket between activations; a reader that
    re-senses right after an unsupported command (as nfcpy does with NXP tags) then sends into
    a closed port and waits a second. One socket, bound once to loopback, answers at once.
    Receiving also stops as soon as the tag is taken away (`present()` turns false), so a
    listen can wait long — long enough that a reader's next command after anticollision is
    never lost at the end of a listening window — and still never answer for a removed tag.
    `reply_delay_s` holds every answer back that long, as on a machine too busy to run the
    emulator at once.
    """
    import nfc.clf
    import nfc.clf.udp

    class LoopbackDevice(nfc.clf.udp.Device):  # type: ignore[misc]
        socket: Any
        addr: tuple[str, int]
        rcvd_data: int
        pending: Frame | None = None  # a REQA that ended the last session, answered next

        def listen_tta(self, target: Any, timeout: float) -> Any:
            first, self.pending = self.pending, None
            return listen_type_a(self, target, timeout, first)

        def mute(self) -> None:
            pass  # keep the socket: datagrams in between are answered, not lost

        def _bind_socket(self, time_to_return: float) -> bool:
            if self.socket.getsockname()[1] == self.addr[1]:
                return True
            try:
                self.socket.bind(self.addr)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return False
                raise
            return True

        def _recv_data(self, timeout: float | None, *brty_list: str) -> Any:
            return receive(self, timeout, brty_list, alive=present, poll_s=SESSION_POLL_S)

        def _send_data(self, brty: str, data: Any, addr: Any) -> None:
            if reply_delay_s:
                time.sleep(reply_delay_s)
            super()._send_data(brty, data, addr)

        def close(self) -> None:
            if self.socket is not None:
                self.socket.close()
                self.socket = None

    dev = LoopbackDevice("127.0.0.1", port)
    dev._vendor_name, dev._device_name, dev._chipset_name = "o2o-edge", "tag emulator", "UDP"
    return dev


def play(emu: TagEmulator, script: list[tuple[float, EmulatedTag | None]],
         stop: threading.Event | None = None) -> None:
    """Put tags on the reader and take them away at the given seconds from now, in order:
    (at_s, tag) presents a tag, (at_s, None) takes it away."""
    stop = stop or threading.Event()
    t0 = time.monotonic()
    for at, tag in script:
        if stop.wait(max(0.0, t0 + at - time.monotonic())):
            return
        if tag is None:
            emu.remove()
        else:
            emu.present(tag)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TagEmulator:
    """One emulated tag position on a simulated reader's UDP port. `reply_delay_s`: each
    answer is sent that late (an emulator starved of CPU)."""

    def __init__(self, port: int, reply_delay_s: float = 0.0) -> None:
        self.port = port
        self.reply_delay_s = reply_delay_s
        self._tag: EmulatedTag | None = None
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._clf: Any = None
        self._drained_for: EmulatedTag | None = None
        self.sessions = 0  # activations by a reader
        self.errors: list[str] = []

    # --- control ----------------------------------------------------------------------

    def start(self) -> TagEmulator:
        import nfc

        self._clf = nfc.ContactlessFrontend()
        self._clf.device = _loopback_device(self.port, self._has_tag, self.reply_delay_s)
        if not self._clf.device._bind_socket(time.time() + 1):
            raise OSError(errno.EADDRINUSE, f"UDP port {self.port} is taken: give each "
                          "emulator (and each test) a port of its own")
        self._thread = threading.Thread(target=self._run, name=f"tag-emulator-{self.port}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._changed:
            self._tag = None
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._clf is not None and self._clf.device is not None:
            self._clf.device.close()
            self._clf.device = None

    def __enter__(self) -> TagEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def present(self, tag: EmulatedTag) -> None:
        with self._changed:
            self._tag = tag
            self._changed.notify_all()

    def remove(self) -> None:
        with self._changed:
            self._tag = None
            self._drained_for = None  # what the reader sends while it is gone is not for it
            self._changed.notify_all()

    @property
    def tag(self) -> EmulatedTag | None:
        return self._tag

    # --- the emulator thread ------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._changed:
                while self._tag is None and not self._stop.is_set():
                    self._changed.wait(0.5)
                tag = self._tag
            if tag is None:
                continue
            try:
                self._serve(tag)
            except Exception as exc:  # a simulator bug must show in the test, not hang it
                log.exception("tag emulator")
                self.errors.append(repr(exc))
                time.sleep(0.05)

    def _has_tag(self) -> bool:
        return self._tag is not None and not self._stop.is_set()

    def _present(self, tag: EmulatedTag) -> bool:
        return self._tag is tag and not self._stop.is_set()

    def _drain(self) -> None:
        """Forget datagrams sent while no tag (or another one) was on the reader."""
        self._clf.device.pending = None
        sock = self._clf.device.socket
        if sock is None:
            return
        sock.setblocking(False)
        try:
            while True:
                sock.recvfrom(1024)
        except OSError:
            pass
        finally:
            sock.setblocking(True)

    def _serve(self, tag: EmulatedTag) -> None:
        import nfc.clf

        if self._drained_for is not tag:
            self._drain()
            self._drained_for = tag

        if tag.kind == "type3":
            target = nfc.clf.LocalTarget("212F")
            target.sensf_res = bytearray(b"\x01" + tag.uid + _T3_PMM + b"\x12\xfc")
        else:
            target = nfc.clf.LocalTarget("106A")
            target.sens_res = bytearray.fromhex("4400")
            target.sdd_res = bytearray(tag.uid)
            target.sel_res = bytearray([0x20 if tag.kind == "type4a" else 0x00])
        activated = self._clf.listen(target, LISTEN_S)
        if activated is None or not self._present(tag):
            return
        if tag.kind == "type4a" and not activated.tt4_cmd:
            return  # not a RATS: a stray frame, not an activation
        self.sessions += 1
        if tag.kind == "type3":
            serve_type3(self._clf, activated, tag, lambda: self._present(tag))
        elif tag.kind == "type4a":
            serve_type4a(self._clf, activated, tag, lambda: self._present(tag))
        else:
            serve_type2(self._clf, activated, tag, lambda: self._present(tag))


_T3_PMM = bytes.fromhex("FFFFFFFFFFFFFFFF")  # no FeliCa IC code: a plain NFC Forum Type 3 Tag
