"""Staff view sessions end: a PIN's or a device token's session is refused once its time is up
(a shift, `session_min`), the cookie of an ended one opens nothing again, and beyond
MAX_SESSIONS the oldest go first."""

from __future__ import annotations

import asyncio
from pathlib import Path

from kiosk.pin import hash_pin
from kiosk.staffview.auth import MAX_SESSIONS, Sessions, hash_token

SHIFT_S = 8 * 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sessions(tmp_path: Path, clock: Clock) -> Sessions:
    return Sessions({"Anna": hash_pin("4821")}, {"handheld-1": hash_token("tok-1")},
                    SHIFT_S, clock, tries_dir=tmp_path)


def test_a_session_ends_with_the_shift_and_stays_ended(tmp_path: Path) -> None:
    clock = Clock()
    s = sessions(tmp_path, clock)
    signed = asyncio.run(s.pin("Anna", "4821"))
    assert signed.session is not None and signed.session.who == "Anna"
    device = s.token("tok-1").session
    assert device is not None and device.who == "device:handheld-1"
    clock.now += SHIFT_S - 1
    assert s.get(signed.session.sid) is signed.session and len(s) == 2
    clock.now += 1
    assert s.get(signed.session.sid) is None and s.get(device.sid) is None
    assert len(s) == 0
    clock.now -= 10  # a clock that steps back does not bring an ended session back
    assert s.get(signed.session.sid) is None


def test_wrong_pins_and_tokens_open_nothing(tmp_path: Path) -> None:
    s = sessions(tmp_path, Clock())
    assert asyncio.run(s.pin("Anna", "0000")).session is None
    assert asyncio.run(s.pin("Nobody", "4821")).session is None
    assert asyncio.run(s.pin("Anna", "48x1")).problem == "wrong name or PIN"
    assert s.token("tok-2").session is None
    assert s.get("") is None and s.get("made-up") is None and len(s) == 0


def test_beyond_the_cap_the_oldest_sessions_go_first(tmp_path: Path) -> None:
    clock = Clock()
    s = sessions(tmp_path, clock)
    opened = []
    for _ in range(MAX_SESSIONS + 3):
        clock.now += 1
        got = s.token("tok-1").session
        assert got is not None
        opened.append(got)
    assert len(s) == MAX_SESSIONS
    assert [x for x in opened if s.get(x.sid) is None] == opened[:3]
