from __future__ import annotations

import json
import re
import time

import pytest

from agent.envelope import default_priority, make_pending, render
from agent.errors import AgentError


def test_render_is_cloudevents_with_extensions() -> None:
    p = make_pending("o2o.kiosk.checkin", {"order": "A-1", "name": "Anna \"A\""}, 1795000000.123)
    ev = json.loads(render(p, '"o2o-edge://store-1/dev-1"', "01BOOT", 42))
    assert ev["specversion"] == "1.0"
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{26}", ev["id"])
    assert ev["source"] == "o2o-edge://store-1/dev-1"
    assert ev["type"] == "o2o.kiosk.checkin"
    assert ev["time"] == "2026-11-18T11:06:40.123Z"
    assert ev["datacontenttype"] == "application/json"
    assert ev["data"] == {"order": "A-1", "name": "Anna \"A\""}
    assert (ev["bootid"], ev["seq"]) == ("01BOOT", 42)


def test_ids_are_unique_valid_ulids_carrying_the_time() -> None:
    from ulid import ULID

    before = time.time()
    ids = [make_pending("o2o.x.y", None, 0).id for _ in range(1000)]
    after = time.time()
    assert len(set(ids)) == 1000
    for i in ids[:50]:
        parsed = ULID.from_str(i)
        assert str(parsed) == i
        assert before - 0.002 <= parsed.timestamp <= after + 0.002


@pytest.mark.parametrize("bad_type", ["", "nodot", "O2O.Upper", "o2o..x", 'o2o.x"y', 5])
def test_bad_type_refused(bad_type: object) -> None:
    with pytest.raises(AgentError, match="event type"):
        make_pending(bad_type, {}, 0)  # type: ignore[arg-type]


def test_bad_data_and_priority_refused() -> None:
    with pytest.raises(AgentError, match="not JSON"):
        make_pending("o2o.x.y", {"v": float("nan")}, 0)
    with pytest.raises(AgentError, match="not JSON"):
        make_pending("o2o.x.y", {"v": object()}, 0)
    with pytest.raises(AgentError, match="priority"):
        make_pending("o2o.x.y", {}, 0, priority=11)
    with pytest.raises(AgentError, match="limit"):
        make_pending("o2o.x.y", "x" * 70000, 0)


def test_priorities_checkin_outranks_telemetry() -> None:
    assert default_priority("o2o.kiosk.checkin") > default_priority("o2o.nfc.tap")
    assert default_priority("o2o.nfc.tap") > default_priority("o2o.ble.beacon.health")
