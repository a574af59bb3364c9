"""A Type A card entering a reader's field (ISO/IEC 14443-3): the states a real tag goes
through before it answers its first command, for the UDP tag emulator.

nfcpy's own UDP listener treats any frame it does not recognise as the activating command,
even before anticollision. A tag put back on the reader then takes a command left over from
its last session (a presence check sent after it was taken away) as its activation, answers
a reader that has long moved on, and stays mute to the reader's next REQA for as long as it
is there. A real tag only answers REQA/WUPA until it is selected, and any REQA/WUPA starts
selection again; this listener does the same.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import reduce
from typing import Any

REQA, WUPA, HLTA = b"\x26", b"\x52", b"\x50\x00"
_SEL = (0x93, 0x95, 0x97)  # SEL_REQ / SDD_REQ command byte per cascade level
_CASCADE_TAG = 0x88


def cascade_levels(uid: bytes) -> list[bytes]:
    """The 5-byte SDD_RES of each cascade level: 4 UID bytes (a 7- or 10-byte UID starts
    all but the last level with the cascade tag) and their XOR check byte."""
    if len(uid) not in (4, 7, 10):
        raise ValueError(f"a Type A UID has 4, 7 or 10 bytes, not {len(uid)}")
    parts, rest = [], bytes(uid)
    while len(rest) > 4:
        parts.append(bytes([_CASCADE_TAG]) + rest[:3])
        rest = rest[3:]
    parts.append(rest)
    return [p + bytes([reduce(lambda a, b: a ^ b, p)]) for p in parts]


@dataclass
class Frame:
    brty: str
    data: bytes
    addr: Any


class TypeACard:
    """IDLE -> READY (REQA/WUPA answered with SENS_RES) -> one SDD/SEL pair per cascade
    level -> ACTIVE; the first other frame in ACTIVE is the activating command. An unexpected
    frame in READY sends the card back to IDLE; HLTA puts it in HALT, where only WUPA (or the
    field going off) wakes it."""

    def __init__(self, sens_res: bytes, uid: bytes, sel_res: int) -> None:
        self.sens_res, self.levels, self.sel_res = sens_res, cascade_levels(uid), sel_res
        self.state, self.level = "idle", 0

    def field_off(self) -> None:
        self.state, self.level = "idle", 0

    def step(self, data: bytes) -> tuple[bytes | None, bool]:
        """One frame from the reader: (answer or None for silence, activated?)."""
        if data == WUPA or (data == REQA and self.state != "halt"):
            self.state, self.level = "ready", 0
            return self.sens_res, False
        if self.state == "ready":
            cmd = _SEL[self.level]
            if data == bytes([cmd, 0x20]):
                return self.levels[self.level], False
            if data == bytes([cmd, 0x70]) + self.levels[self.level]:
                last = self.level == len(self.levels) - 1
                if last:
                    self.state = "active"
                else:
                    self.level += 1
                return bytes([self.sel_res & 0xFB | (0 if last else 0x04)]), False
            self.field_off()
            return None, False
        if self.state == "active":
            if data == HLTA:
                self.state = "halt"
                return None, False
            return None, True
        return None, False  # idle or halted: silent


def listen_type_a(device: Any, target: Any, timeout: float, first: Frame | None = None) -> Any:
    """Listen up to `timeout` seconds on an nfcpy UDP device as the Type A `target`
    (sens_res, sdd_res = the UID, sel_res). `first` is a frame already received (a REQA that
    ended the last session). Returns an activated nfcpy LocalTarget or None."""
    import nfc.clf

    card = TypeACard(bytes(target.sens_res), bytes(target.sdd_res), target.sel_res[0])
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if first is not None:
            frame, first = first, None
        else:
            try:
                brty, data, addr = device._recv_data(end - time.monotonic(), target.brty)
            except nfc.clf.TimeoutError:
                return None
            except nfc.clf.BrokenLinkError:  # RFOFF: the reader's field went off
                card.field_off()
                continue
            except nfc.clf.CommunicationError:
                continue
            frame = Frame(brty, bytes(data), addr)
        answer, activated = card.step(frame.data)
        if activated:
            found = nfc.clf.LocalTarget(frame.brty, _addr=frame.addr, sens_res=target.sens_res,
                                        sdd_res=target.sdd_res, sel_res=target.sel_res)
            if frame.data[:1] == b"\xe0":
                found.tt4_cmd = bytearray(frame.data)
            else:
                found.tt2_cmd = bytearray(frame.data)
            return found
        if answer is not None:
            device._send_data(frame.brty, answer, frame.addr)
    return None
