"""An NFC Forum Type 4A Tag: ISO-DEP blocks carrying ISO 7816-4 APDUs.

The reader activated us with RATS; we answer the ATS and then serve I-blocks (with chaining),
R-blocks (ACK, and the NAK nfcpy uses as a presence check) and DESELECT. The APDUs are the
NDEF tag application's: SELECT by name (D2760000850101), SELECT file E103 (capability
container) and E104 (NDEF file: 2-byte length + message), READ BINARY, UPDATE BINARY.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from simulators.nfc_session import EmulatedTag, exchange_loop

NDEF_AID = bytes.fromhex("D2760000850101")
CC_FILE, NDEF_FILE = b"\xe1\x03", b"\xe1\x04"
MLE = MLC = 240  # one APDU fits one ISO-DEP frame both ways
# ATS: TL, T0 (TA, TB, TC follow; FSCI 8 = 256 bytes), TA, TB (FWI 9 ~ 150 ms), TC
ATS = bytes([0x05, 0x78, 0x80, 0x90, 0x02])
OK = b"\x90\x00"
NOT_FOUND, NO_SPACE, DENIED = b"\x6a\x82", b"\x6a\x84", b"\x69\x82"
WRONG_OFFSET, UNSUPPORTED = b"\x6b\x00", b"\x6d\x00"


class Type4Files:
    def __init__(self, tag: EmulatedTag) -> None:
        self.tag = tag
        self.app_selected = False
        self.file: bytes | None = None

    def cc(self) -> bytes:
        size = self.tag.capacity + 2
        tlv = bytes([0x04, 0x06]) + NDEF_FILE + size.to_bytes(2, "big") \
            + bytes([0x00, 0xFF if self.tag.read_only else 0x00])
        return (15).to_bytes(2, "big") + bytes([0x20]) + MLE.to_bytes(2, "big") \
            + MLC.to_bytes(2, "big") + tlv

    def content(self) -> bytes:
        if self.file == CC_FILE:
            return self.cc()
        return len(self.tag.ndef).to_bytes(2, "big") + self.tag.ndef

    def apdu(self, a: bytes) -> bytes:
        if len(a) < 4:
            return UNSUPPORTED
        ins, p1, p2, body = a[1], a[2], a[3], a[4:]
        data = body[1: 1 + body[0]] if len(body) > 1 else b""
        if ins == 0xA4:
            if p1 == 0x04:
                self.app_selected = data == NDEF_AID
                self.file = None
                return OK if self.app_selected else NOT_FOUND
            if p1 == 0x00 and self.app_selected and data in (CC_FILE, NDEF_FILE):
                self.file = data
                return OK
            return NOT_FOUND
        offset = p1 << 8 | p2
        if ins == 0xB0 and self.file is not None:
            le = (body[-1] or 256) if body else 256
            content = self.content()
            if offset > len(content):
                return WRONG_OFFSET
            return content[offset: offset + le] + OK
        if ins == 0xD6 and self.file == NDEF_FILE:
            if self.tag.read_only:
                return DENIED
            if offset + len(data) > self.tag.capacity + 2:
                return NO_SPACE
            cur = bytearray(self.content().ljust(self.tag.capacity + 2, b"\0"))
            cur[offset: offset + len(data)] = data
            n = int.from_bytes(cur[:2], "big")
            self.tag.ndef = bytes(cur[2: 2 + n])
            self.tag.writes += 1
            return OK
        return UNSUPPORTED


def serve_type4a(clf: Any, activated: Any, tag: EmulatedTag, present: Callable[[], bool]) -> None:
    files = Type4Files(tag)
    chained = bytearray()

    def handle(block: bytearray) -> bytes | None:
        pcb = block[0]
        if pcb & 0xE2 == 0x02:  # I-block
            bn = pcb & 0x01
            if pcb & 0x10:  # more to come: acknowledge and keep it
                chained.extend(block[1:])
                return bytes([0xA2 | bn])
            apdu = bytes(chained + block[1:])
            chained.clear()
            return bytes([0x02 | bn]) + files.apdu(apdu)
        if pcb & 0xE6 == 0xA2:  # R-block: a NAK is the reader asking "still there?"
            return bytes([0xA2 | (pcb & 0x01)])
        if pcb & 0xF7 == 0xC2:  # S(DESELECT)
            return bytes([0xC2])
        return None

    exchange_loop(clf, ATS, handle, present)
