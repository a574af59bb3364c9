"""One emulated tag's session with a reader: the tag's state (`EmulatedTag`, what a reader
writes lands in its `ndef`) and the loop that answers the reader's commands until it lets go.

The per-kind command handlers (nfc_type2.py, nfc_type3.py, nfc_type4.py) use these, and the
emulator (nfc_tags.py) uses the handlers: kept apart so the two do not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from simulators.nfc_type_a import REQA, WUPA, Frame

TagKind = Literal["type2", "type3", "type4a"]
SESSION_POLL_S = 0.05  # how often the emulator looks for remove() while it waits


@dataclass
class EmulatedTag:
    kind: TagKind
    uid: bytes
    ndef: bytes = b""  # the NDEF message; replaced by what a reader writes
    capacity: int = 0  # bytes for an NDEF message; 0 = the kind's usual size
    read_only: bool = False
    locked_by_reader: bool = False  # a reader set the lock bits (type2)
    writes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.capacity:
            self.capacity = {"type2": 142, "type3": 16 * 13, "type4a": 1022}[self.kind]
        want = {"type2": 7, "type3": 8, "type4a": 7}[self.kind]
        if len(self.uid) != want:
            raise ValueError(f"a {self.kind} tag has a {want}-byte UID")



def exchange_loop(clf: Any, first: bytes | None, handle: Any, present: Any) -> None:
    """Answer reader commands until the reader lets go or the tag is removed.

    `first` is the answer to the command that activated the tag; `handle(cmd)` returns the
    answer to a command (None: stay mute, as a tag does on a command it does not know).
    """
    import nfc.clf  # nfcpy loads when a tag is served, not when this module is imported

    rsp: bytes | None = first
    while present():
        try:
            cmd = clf.exchange(rsp, SESSION_POLL_S)
        except nfc.clf.TimeoutError:
            rsp = None  # nothing came: answer nothing, look at present() again
            continue
        except nfc.clf.BrokenLinkError:
            return  # the reader switched its field off
        except nfc.clf.CommunicationError:
            rsp = None
            continue
        if cmd is None:
            return
        if bytes(cmd) in (REQA, WUPA) and clf.target.brty == "106A":
            # the reader is looking for tags again: selection starts over with this frame
            clf.device.pending = Frame(clf.target.brty, bytes(cmd), clf.target._addr)
            return
        rsp = handle(bytearray(cmd))  # nfcpy's Type 3 emulation edits commands in place
