"""The demo's story: the agent's events in the store's words with the scenario's names, each
kiosk answer judged against the scenario, the loyalty card's outcome expected from the file,
and a timeline that never runs backwards."""

from __future__ import annotations

import io
import re
from collections import Counter
from pathlib import Path
from typing import Any

from simulators.live_view import Timeline
from simulators.scenario.expected import Received, check, expected
from simulators.scenario.model import load
from simulators.story import Story, summary

DEMO = Path(__file__).resolve().parents[3] / "simulators" / "scenarios" / "demo_morning.toml"
# what a store manager should never have to read: sequence numbers, truncated ids, dotted
# codes (pickup.ready, o2o.nfc.tap), the scenario's own keys, beacon ids
RAW = re.compile(
    r"#\d|…|\b[a-z]+\.[a-z]+\b|\b[A-Z]-\d{4}\b|shelf-|card-\d|app:|eddystone|"
    r"[0-9a-f]{12}|not-found"
)


def _story() -> Story:
    sc = load(DEMO)
    return Story(sc, expected(sc))


def _ev(t: str, data: dict[str, Any], seq: int = 1) -> dict[str, Any]:
    return {"type": t, "seq": seq, "data": data}


def test_events_are_told_in_words_with_the_scenarios_names() -> None:
    story = _story()
    lines = [
        story.tell(
            _ev("o2o.ble.presence", {"kind": "app", "action": "enter", "id": "app:2f23:1:11"}),
            "09:05",
        ),
        story.tell(
            _ev("o2o.nfc.tap", {"tag": {"kind": "shelf", "label": "shelf-sneakers"}}), "09:15"
        ),
        story.tell(_ev("o2o.nfc.tap", {"tag": {"kind": "loyalty", "label": "card-17"}}), "10:10"),
        story.tell(
            _ev("o2o.qr.scan", {"class": "rejected", "reason": "scheme-not-allowed"}), "10:40"
        ),
        story.tell(
            _ev(
                "o2o.kiosk.checkin",
                {"kind": "pickup", "outcome": "pickup.ready", "order": "D-1001", "via": "code"},
            ),
            "09:52",
        ),
        story.tell(
            _ev(
                "o2o.ble.beacon.health",
                {
                    "beacon": "eddystone-uid:edd1ebeac04e5defa017:000000000002",
                    "status": "low-battery",
                    "battery_mv": 2499,
                },
            ),
            "11:03",
        ),
    ]
    assert lines == [
        "an app shopper arrives in the store",
        "the reader reads the Autumn blend shelf tag",
        "the reader reads Dana's loyalty card",
        "the camera reads a code and the agent refuses it: its link is not a web page",
        "Anna's order is ready at the counter — as the scenario expects",
        "the shoes beacon reports a low battery (2499 mV)",
    ]
    assert not [line for line in lines if line and RAW.search(line)]
    # what a store manager does not need: zone changes, page views
    assert story.tell(_ev("o2o.ble.presence", {"kind": "app", "action": "zone"}), "09:06") is None
    assert story.tell(_ev("o2o.kiosk.view", {}), "09:07") is None


def test_each_kiosk_answer_is_judged_against_the_scenario() -> None:
    story = _story()
    # the demo's card is registered to Dana: the scenario expects her to be greeted
    assert story.ex.loyalty == ["loyalty.ok"]
    refused = story.tell(
        _ev("o2o.kiosk.checkin", {"kind": "loyalty", "outcome": "not-found", "via": "nfc"}), "10:11"
    )
    assert refused is not None and "NOT as the scenario expects (loyalty.ok)" in refused
    failed = story.tell(
        _ev("o2o.kiosk.checkin", {"kind": "pickup", "outcome": "not-found", "order": "D-1002"}),
        "10:26",
    )
    assert failed == "Ben's order is not found — NOT as the scenario expects (confirmed)"
    lines = summary(
        story.sc,
        story.ex,
        story.tally,
        finished=True,
        wall_s=60,
        problems=[],
        upstream=50,
        broker="mosquitto",
    )
    kiosk = next(line for line in lines if "the kiosk:" in line)
    assert "0 of 2 answers as the scenario expects" in kiosk and "10:26 Ben's order" in kiosk


def test_a_stranger_card_is_expected_not_found_and_the_check_holds_the_kiosk_to_it() -> None:
    sc = load(DEMO)
    stranger = {**sc.tags}
    stranger["card-17"] = type(sc.tags["card-17"])(
        "card-17", "felica", "02fe0000000000aa", role="loyalty"
    )  # nobody's card
    sc.tags = stranger
    ex = expected(sc)
    assert ex.loyalty == ["not-found"]
    greeted = Received(
        [
            {
                "id": "1",
                "type": "o2o.kiosk.checkin",
                "seq": 1,
                "bootid": "B",
                "data": {"kind": "loyalty", "outcome": "loyalty.ok"},
            }
        ],
        [],
    )
    problems = check(sc, ex, greeted, set(), {})
    assert "loyalty check-ins: expected {'not-found': 1}, got {'loyalty.ok': 1}" in problems


def test_the_summary_says_what_the_faults_did_and_why_counts_differ() -> None:
    story = _story()
    story.tally.counts.update({"taps": 1, "calls for staff": 1})
    story.tally.waiting_max = 9
    lines = summary(
        story.sc,
        story.ex,
        story.tally,
        finished=True,
        wall_s=64,
        problems=[],
        upstream=54,
        broker="mosquitto",
    )
    text = "\n".join(lines)
    assert lines[0] == "The day in short (09:00-13:00 store time, 64 s):"
    assert "1 tap, 1 call for staff" in text
    assert "fault 10:00-10:50: the network to the broker is cut — up to 9 events waited" in text
    assert "fault 11:15-11:30: the NFC reader is unplugged — 1 tap meanwhile never read" in text
    assert "upstream: 54 events arrived, each once" in text
    assert "why the count of events differs between runs" in text
    # stopped early: what happened so far, nothing claimed about upstream
    early = summary(
        story.sc,
        story.ex,
        story.tally,
        finished=False,
        wall_s=12,
        problems=None,
        upstream=None,
        broker="mosquitto",
        reached=11 * 3600 - 9 * 3600,
    )
    assert early[0] == "Stopped after 12 s — the day so far:"
    assert "  upstream: not checked (stopped before the end)" in early
    # by 11:00 only the network cut had begun
    assert [line for line in early if "fault" in line] == [
        "  fault 10:00-10:50: the network to the broker is cut — up to 9 events waited in the "
        "outbox and went upstream once the link was back, none lost"
    ]
    assert not any("all as expected" in line for line in early)


def test_the_timeline_never_runs_backwards() -> None:
    clocks = iter(["09:05", "09:04", "09:10", "09:09"])  # a late line stamped before the last
    out = io.StringIO()
    tl = Timeline(lambda: next(clocks), out)
    for text in "abcd":
        tl.line(text)
    stamps = [line.split()[0] for line in out.getvalue().splitlines()]
    assert stamps == ["09:05", "09:05", "09:10", "09:10"]
    assert Counter(line.split()[1] for line in tl.lines) == Counter("abcd")
