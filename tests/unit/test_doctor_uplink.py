"""doctor's verdict on whether events leave, from the agent's status (agent/doctor/uplink.py)."""

from __future__ import annotations

from typing import Any

from agent.doctor.uplink import STALL_S, uplink_finding

NOW = 1_800_000_000.0


def status(state: str = "connected", depth: int = 5, oldest: float | None = 10.0,
           **uplink: Any) -> dict[str, Any]:
    up = {"state": state, "connected_since": NOW - 3600, "last_ack": None,
          "last_refusal_at": None, "refusals": {}, "last_error": "", "last_refusal": ""}
    up.update(uplink)
    return {"agent": {"pid": 42}, "outbox": {"depth": depth, "oldest_age_s": oldest},
            "uplink": up}


def test_refusals_since_the_last_ack_with_events_waiting_fail() -> None:
    f = uplink_finding(status(last_ack=NOW - 100, last_refusal_at=NOW - 5,
                              last_refusal="broker refused a batch (0x87)"), NOW)
    assert f.level == "fail" and "refuses our events" in f.message and "0x87" in f.message
    assert "ACL" in f.fix
    # a broker that closes the connection after refusing: still refusing, not just offline
    st = status(state="disconnected", last_refusal_at=NOW - 5)
    assert uplink_finding(st, NOW).level == "fail"


def test_a_refusal_followed_by_acks_is_fine() -> None:
    assert uplink_finding(status(last_ack=NOW - 1, last_refusal_at=NOW - 5), NOW).level == "ok"


def test_nothing_acknowledged_for_long_while_events_wait_fails() -> None:
    f = uplink_finding(status(oldest=STALL_S + 60, last_ack=NOW - STALL_S - 60), NOW)
    assert f.level == "fail" and "nothing was acknowledged" in f.message


def test_a_fresh_connection_with_an_old_backlog_is_given_time() -> None:
    st = status(oldest=STALL_S * 10, connected_since=NOW - 10)
    assert uplink_finding(st, NOW).level == "ok"


def test_disconnected_with_a_backlog_warns_and_without_one_is_ok() -> None:
    f = uplink_finding(status(state="disconnected", last_error="cannot reach broker"), NOW)
    assert f.level == "warn" and "5 events waiting" in f.message
    assert "cannot reach broker" in f.message
    assert uplink_finding(status(state="disconnected", depth=0), NOW).level == "ok"
    assert uplink_finding(status(state="disabled"), NOW).level == "ok"
