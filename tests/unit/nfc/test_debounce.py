"""The reader's debounce on a fake clock, with a busy CPU's timings: a read that takes half a
second and a presence check that takes 0.2-0.3 s to give up on a tag that does not answer. A
card held with a wobble at the edge of the field is one tap; taken away for a second and put
back, it is a second one."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

import drivers.nfc.reader as reader_module
from drivers.nfc.reader import NfcpyReader, TagRead

UID = bytes.fromhex("02fe0000000000aa")


class World:
    """Fake time, and when the card is on the reader: [start, end) spans of that time."""

    def __init__(self, on: list[tuple[float, float]], read_s: float, gone_check_s: float,
                 until: float) -> None:
        self.now = 0.0
        self.on, self.read_s, self.gone_check_s, self.until = on, read_s, gone_check_s, until

    def present(self) -> bool:
        return any(a <= self.now < b for a, b in self.on)

    # the reader's clock and its stop event
    def monotonic(self) -> float:
        return self.now

    def is_set(self) -> bool:
        return self.now >= self.until

    def wait(self, seconds: float) -> bool:
        self.now += seconds
        return self.is_set()

    # the reader device and the tag, as the reader thread sees them
    def sense(self, *_targets: Any, iterations: int = 1) -> object | None:
        if self.present():
            self.now += 0.005
            return object()
        self.now += 0.1  # the simulated reader's sense wait
        return None

    def close(self) -> None:
        pass

    def read_tag(self, _clf: Any, _target: Any) -> tuple[object, TagRead]:
        sensed_at = self.now
        self.now += self.read_s
        return object(), TagRead(uid=UID, tag_type="Type3Tag", product="FeliCa", ndef=b"",
                                 capacity=208, writeable=True, error="", sensed_at=sensed_at,
                                 read_s=self.read_s)

    def still_there(self, _tag: Any) -> bool:
        there = self.present()
        self.now += 0.01 if there else self.gone_check_s
        return there


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch) -> Any:
    def play(world: World, debounce_s: float) -> tuple[list[float], dict[str, Any]]:
        monkeypatch.setattr(reader_module, "time",
                            SimpleNamespace(monotonic=world.monotonic, time=world.monotonic))
        monkeypatch.setattr(reader_module, "read_tag", world.read_tag)
        monkeypatch.setattr(reader_module, "still_there", world.still_there)
        reader = NfcpyReader("udp:127.0.0.1:9", targets=("212F",), debounce_s=debounce_s)
        reader._stop = world  # type: ignore[assignment]
        reader._clf = world
        taps: list[float] = []
        reader._loop(lambda read: taps.append(read.sensed_at))
        return taps, reader.counts

    return play


def test_a_wobble_is_one_tap_however_long_the_read_and_the_check_take(run: Any) -> None:
    # held from 0 s, out of the field for 0.1 s at 2 s, taken away at 4 s, back at 5 s
    world = World(on=[(0.0, 2.0), (2.1, 4.0), (5.0, 6.0)], read_s=0.5, gone_check_s=0.2,
                  until=7.0)
    taps, counts = run(world, debounce_s=0.3)
    assert len(taps) == 2, taps
    assert taps[0] < 0.1 and 5.0 <= taps[1] < 5.2
    assert counts["taps"] == 2 and counts["debounced"] == 1


def test_away_longer_than_the_debounce_is_a_new_tap_even_when_noticed_late(run: Any) -> None:
    # taken away for 0.45 s; the reader needs 0.3 s to give up on it, so it hears of the
    # absence only about 0.15 s before the card is back
    world = World(on=[(0.0, 1.0), (1.45, 3.0)], read_s=0.01, gone_check_s=0.3, until=4.0)
    taps, counts = run(world, debounce_s=0.3)
    assert len(taps) == 2 and counts["debounced"] == 0, (taps, counts)
