"""A FeliCa NFC Forum Type 3 Tag served by nfcpy's own Type3TagEmulation.

Memory: block 0 is the attribute information block (version, blocks per read/write, number
of data blocks, write flag, read/write flag, NDEF length, checksum); blocks 1.. hold the
NDEF message. Service 000B reads, 0009 writes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from simulators.nfc_session import EmulatedTag, exchange_loop

NBR, NBW = 4, 1  # blocks per Read / Write without Encryption


def attribute_block(nmaxb: int, length: int, writing: bool, read_only: bool) -> bytes:
    body = bytes([0x10, NBR, NBW]) + nmaxb.to_bytes(2, "big") + bytes(4) \
        + bytes([0x0F if writing else 0x00, 0x00 if read_only else 0x01]) \
        + length.to_bytes(3, "big")
    return body + (sum(body) & 0xFFFF).to_bytes(2, "big")


def serve_type3(clf: Any, activated: Any, tag: EmulatedTag, present: Callable[[], bool]) -> None:
    import nfc.tag

    emu = nfc.tag.emulate(clf, activated)
    if emu is None:
        return
    nmaxb = tag.capacity // 16
    staged = bytearray(tag.ndef.ljust(nmaxb * 16, b"\0")[: nmaxb * 16])
    state = {"length": len(tag.ndef), "writing": False}

    def read(block: int, rb: bool, re: bool) -> bytes | None:
        if block == 0:
            return attribute_block(nmaxb, state["length"], bool(state["writing"]), tag.read_only)
        if block > nmaxb:
            return None
        if rb:  # a fresh read sees what was last written
            staged[:] = tag.ndef.ljust(nmaxb * 16, b"\0")[: nmaxb * 16]
        return bytes(staged[(block - 1) * 16: block * 16])

    def write(block: int, data: bytes, wb: bool, we: bool) -> bool:
        if tag.read_only or block > nmaxb:
            return False
        if block == 0:
            if sum(data[:14]) & 0xFFFF != int.from_bytes(data[14:16], "big"):
                return False
            state["length"] = int.from_bytes(data[11:14], "big")
            state["writing"] = data[9] == 0x0F
            if not state["writing"]:  # the write is complete: the tag now holds it
                tag.ndef = bytes(staged[: state["length"]])
                tag.writes += 1
            return True
        staged[(block - 1) * 16: block * 16] = data
        return True

    emu.add_service(0x0009, read, write)
    emu.add_service(0x000B, read, write)
    exchange_loop(clf, emu.process_command(emu.cmd), emu.process_command, present)
