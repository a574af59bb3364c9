"""The simulated reader's receive is timed on the monotonic clock: a wall-clock step back
(NTP fixing a stale boot clock) must not make it wait for the length of the step."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from types import SimpleNamespace

import nfc.clf
import pytest

from drivers.nfc.udp_timing import receive


@pytest.fixture
def device() -> Iterator[SimpleNamespace]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield SimpleNamespace(socket=sock, rcvd_data=0)
    sock.close()


def test_a_clock_step_back_does_not_stretch_the_wait(device: SimpleNamespace,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 3600)  # stepped back an hour
    t = time.monotonic()
    with pytest.raises(nfc.clf.TimeoutError):
        receive(device, 0.2, ("106A",))
    assert time.monotonic() - t < 2


def test_frames_of_other_technologies_are_skipped_and_rf_off_breaks_the_link(
        device: SimpleNamespace) -> None:
    addr = device.socket.getsockname()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        out.sendto(b"212F 0a0b", addr)
        out.sendto(b"106A 0102", addr)
        kind, data, _ = receive(device, 2.0, ("106A",))
        assert (kind, bytes(data), device.rcvd_data) == ("106A", b"\x01\x02", 4)
        out.sendto(b"RFOFF", addr)
        with pytest.raises(nfc.clf.BrokenLinkError):
            receive(device, 2.0, ("106A",))
        out.sendto(b"garbage", addr)
        with pytest.raises(nfc.clf.TransmissionError):
            receive(device, 2.0, ("106A",))


def test_a_wait_ends_when_alive_turns_false(device: SimpleNamespace) -> None:
    """The tag emulator's receive: no deadline, but it stops once the tag is taken away."""
    deadline = time.monotonic() + 0.2
    t = time.monotonic()
    with pytest.raises(nfc.clf.TimeoutError):
        receive(device, None, ("106A",), alive=lambda: time.monotonic() < deadline, poll_s=0.02)
    assert time.monotonic() - t < 2


def test_a_reply_that_came_in_time_is_taken_by_a_thread_that_wakes_late(
        device: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader thread kept off a busy CPU past its deadline: the tag's reply that is already
    waiting is the answer, not a timeout (that would read as the tag taken away)."""
    addr = device.socket.getsockname()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        out.sendto(b"212F 0a0b", addr)
        time.sleep(0.05)  # on the socket before the reader looks
        start = time.monotonic()
        calls = iter(range(1000))
        monkeypatch.setattr(time, "monotonic", lambda: start + 0.5 * next(calls))
        kind, data, _ = receive(device, 0.01, ("212F",))
        assert (kind, bytes(data)) == ("212F", b"\x0a\x0b")
        with pytest.raises(nfc.clf.TimeoutError):  # and nothing there is still a timeout
            receive(device, 0.01, ("212F",))
