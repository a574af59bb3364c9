"""What a closed connection says about the message in flight (agent/uplink/closures.py)."""

from __future__ import annotations

from agent.uplink.batching import Batch
from agent.uplink.closures import CLOSES_BEFORE_DROP, QUICK_DROP_S, Close, CloseJudge

ONE = Batch((7,), b'[{"id":"a"}]', 0)
OTHER = Batch((8,), b'[{"id":"b"}]', 0)
MANY = Batch((1, 2, 3), b'[{"id":"a"},{"id":"b"},{"id":"c"}]', 0)
LOST = "connection lost: Unspecified error"
TOO_LARGE = "connection lost: Packet too large"


def test_disconnect_0x95_drops_one_event_at_once_and_shrinks_a_batch_at_once() -> None:
    assert CloseJudge().judge(TOO_LARGE, 60.0, ONE) is Close.DROP_TOO_LARGE
    assert CloseJudge().judge(TOO_LARGE, 60.0, MANY) is Close.SHRINK


def test_one_event_closed_on_three_times_in_a_row_is_dropped() -> None:
    j = CloseJudge()
    verdicts = [j.judge(LOST, 0.1, ONE) for _ in range(CLOSES_BEFORE_DROP)]
    assert verdicts == [Close.PROBE] * (CLOSES_BEFORE_DROP - 1) + [Close.DROP_REFUSED]
    assert j.judge(LOST, 0.1, ONE) is Close.PROBE  # counting starts over after a drop


def test_a_long_lived_connection_or_another_suspect_clears_the_count() -> None:
    j = CloseJudge()
    j.judge(LOST, 0.1, ONE)
    j.judge(LOST, 0.1, ONE)
    assert j.judge(LOST, QUICK_DROP_S + 1, ONE) is Close.NOTHING  # a flapping network
    assert [j.judge(LOST, 0.1, ONE) for _ in range(2)] == [Close.PROBE, Close.PROBE]
    assert j.judge(LOST, 0.1, OTHER) is Close.PROBE  # not the same event: not in a row
    assert j.judge(LOST, 0.1, ONE) is Close.PROBE


def test_a_batch_is_sent_smaller_after_two_closes_in_a_row_unless_one_was_taken() -> None:
    j = CloseJudge()
    assert j.judge(LOST, 0.1, MANY) is Close.NOTHING
    j.acked()
    assert j.judge(LOST, 0.1, MANY) is Close.NOTHING
    assert j.judge(LOST, 0.1, MANY) is Close.SHRINK


def test_nothing_in_flight_or_no_connection_says_nothing() -> None:
    assert CloseJudge().judge(TOO_LARGE, None, ONE) is Close.NOTHING
    assert CloseJudge().judge(LOST, 0.1, None) is Close.NOTHING
