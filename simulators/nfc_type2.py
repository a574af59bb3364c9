"""An NXP NTAG213 (NFC Forum Type 2 Tag): 45 pages of 4 bytes.

Pages 0-2 hold the 7-byte UID with its check bytes and the static lock bytes, page 3 the
capability container (E1 10 12 00: 144 bytes of data area), pages 4-39 the data area with
the NDEF message in a TLV (03 len message FE), page 40 the dynamic lock bytes. Lock bits and
the capability container only ever gain bits, as on the chip; a locked page refuses writes
with a NAK. Commands: READ (16 bytes, rolling over at the end), WRITE, GET_VERSION; anything
else (authentication, password) gets no answer, as from an NTAG213 without a password set.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from simulators.nfc_session import EmulatedTag, exchange_loop

PAGES, DATA_FIRST, DATA_LAST, DYN_LOCK = 45, 4, 39, 40
VERSION = bytes.fromhex("0004040201000F03")  # NTAG213
ACK, NAK = b"\x0a", b"\x00"


def ndef_tlv(message: bytes) -> bytes:
    n = len(message)
    head = bytes([0x03, n]) if n < 0xFF else bytes([0x03, 0xFF]) + n.to_bytes(2, "big")
    return head + message + b"\xfe"


def parse_ndef_tlv(area: bytes) -> bytes | None:
    i = 0
    while i < len(area):
        t = area[i]
        if t == 0x00:
            i += 1
            continue
        if t == 0xFE or i + 1 >= len(area):
            return None
        n, i = area[i + 1], i + 2
        if n == 0xFF:
            n, i = int.from_bytes(area[i: i + 2], "big"), i + 2
        if t == 0x03:
            return bytes(area[i: i + n])
        i += n
    return None


def initial_memory(tag: EmulatedTag) -> bytearray:
    u = tag.uid
    mem = bytearray(PAGES * 4)
    mem[0:4] = bytes([u[0], u[1], u[2], 0x88 ^ u[0] ^ u[1] ^ u[2]])
    mem[4:8] = u[3:7]
    mem[8] = u[3] ^ u[4] ^ u[5] ^ u[6]
    mem[9] = 0x48
    mem[12:16] = bytes([0xE1, 0x10, 0x12, 0x0F if tag.read_only else 0x00])
    area = ndef_tlv(tag.ndef)
    if len(area) > (DATA_LAST - DATA_FIRST + 1) * 4:
        raise ValueError("the message does not fit an NTAG213")
    mem[DATA_FIRST * 4: DATA_FIRST * 4 + len(area)] = area
    if tag.read_only:
        mem[10:12] = b"\xff\xff"
        mem[DYN_LOCK * 4: DYN_LOCK * 4 + 3] = b"\xff\x0f\x00"
    return mem


def page_locked(mem: bytearray, page: int) -> bool:
    if page < 2 or page > 44:
        return True
    if 3 <= page <= 7:
        return bool(mem[10] >> page & 1)
    if 8 <= page <= 15:
        return bool(mem[11] >> (page - 8) & 1)
    if 16 <= page <= 31:
        return bool(mem[DYN_LOCK * 4] >> ((page - 16) // 2) & 1)
    if 32 <= page <= 39:
        return bool(mem[DYN_LOCK * 4 + 1] >> ((page - 32) // 2) & 1)
    return False


def serve_type2(clf: Any, activated: Any, tag: EmulatedTag, present: Callable[[], bool]) -> None:
    mem = tag.extra.get("memory")
    if mem is None or parse_ndef_tlv(bytes(mem[16:160])) != tag.ndef:
        mem = tag.extra["memory"] = initial_memory(tag)

    def handle(cmd: bytearray) -> bytes | None:
        if cmd[:1] == b"\x30" and len(cmd) == 2:
            p = cmd[1]
            if p >= PAGES:
                return NAK
            return bytes(mem[(p + i) % PAGES * 4 + j] for i in range(4) for j in range(4))
        if cmd[:1] == b"\xa2" and len(cmd) == 6:
            p, data = cmd[1], cmd[2:6]
            if p >= PAGES or page_locked(mem, p):
                return NAK
            if p in (2, 3, DYN_LOCK):  # lock bytes and CC are one-time programmable
                keep = range(2, 4) if p == 2 else range(3 if p == DYN_LOCK else 4)
                for j in keep:
                    mem[p * 4 + j] |= data[j]
                if p != 3 and any(data[j] for j in keep):
                    tag.locked_by_reader = True
            else:
                mem[p * 4: p * 4 + 4] = data
            found = parse_ndef_tlv(bytes(mem[16:160]))
            if found is not None and found != tag.ndef:
                tag.ndef = found
                tag.writes += 1
            tag.read_only = bool(mem[15] & 0x0F) or page_locked(mem, DATA_FIRST)
            return ACK
        if cmd == b"\x60":
            return VERSION
        return None  # mute, like the chip

    exchange_loop(clf, handle(activated.tt2_cmd), handle, present)
