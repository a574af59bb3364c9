"""The envelope refuses, at the edge and saying where, whatever would make a committed event
invalid JSON or text that does not encode: render() pastes id and type raw."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.envelope import MAX_DATA_BYTES, MAX_TYPE_LEN, make_pending, render
from agent.errors import AgentError, Reason


@pytest.mark.parametrize("bad", ["o2o.kiosk.view\n", "o2o.kiosk.view\r\n", "o2o.kiosk.v\"w",
                                 "o2o.kiosk.v\\w", "\no2o.kiosk.view", "o2o.kiosk.vi\u0000ew"])
def test_type_with_a_line_break_or_quote_is_refused(bad: str) -> None:
    with pytest.raises(AgentError, match="event type") as err:
        make_pending(bad, {}, 0)
    assert err.value.reason is Reason.INVALID_EVENT


def test_type_length_is_capped_and_the_answer_stays_short() -> None:
    ok = "o2o." + "a" * (MAX_TYPE_LEN - 4)
    assert make_pending(ok, {}, 0).type == ok
    with pytest.raises(AgentError, match=f"at most {MAX_TYPE_LEN}") as err:
        make_pending(ok + "a", {}, 0)
    with pytest.raises(AgentError) as huge:
        make_pending("o2o." + "a" * 1_000_000, {}, 0)
    assert len(str(err.value)) < 300 and len(str(huge.value)) < 300


@pytest.mark.parametrize(("data", "where"), [
    ({"note": "\ud800"}, "'note'"),
    ({"a": {"b": ["ok", "x\udfff"]}}, "'a.b[1]'"),
    ("\ud83d", "(the data itself)"),
    ({"k\udc00": 1}, "its name"),
])
def test_lone_surrogate_is_refused_naming_the_field(data: object, where: str) -> None:
    with pytest.raises(AgentError, match="surrogate") as err:
        make_pending("o2o.kiosk.note", data, 0)
    assert where in str(err.value)
    assert err.value.reason is Reason.INVALID_EVENT


def test_valid_unicode_is_kept_and_its_size_counted_in_bytes() -> None:
    p = make_pending("o2o.kiosk.note", {"name": "Zo\u00eb \U0001f600 \u6771\u4eac"}, 0)
    assert json.loads(p.data_json)["name"] == "Zo\u00eb \U0001f600 \u6771\u4eac"
    # 40,000 characters but 80,000 bytes of UTF-8: over the limit
    with pytest.raises(AgentError, match=str(MAX_DATA_BYTES)):
        make_pending("o2o.kiosk.note", "\u00e9" * 40_000, 0)


def test_deeply_nested_data_is_refused_not_crashed() -> None:
    deep: object = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(AgentError, match="nested too deeply"):
        make_pending("o2o.kiosk.note", deep, 0)


@pytest.mark.parametrize("bad_id", ['A"B', "A\nB", "", "x" * 65, "\u00e9"])
def test_an_id_that_is_not_a_token_is_refused(bad_id: str) -> None:
    with pytest.raises(AgentError, match="event id"):
        make_pending("o2o.kiosk.note", {}, 0, event_id=bad_id)


_text = st.text(st.characters(blacklist_categories=()), max_size=30)
_data = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | _text,
                     lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(_text, inner, max_size=4), max_leaves=15)


@settings(max_examples=300, deadline=None)
@given(etype=st.one_of(_text, st.from_regex(r"[a-z0-9.\-_\n\"]{1,40}", fullmatch=True)),
       data=_data)
def test_whatever_is_accepted_renders_as_json_that_encodes(etype: str, data: object) -> None:
    try:
        p = make_pending(etype, data, 1795000000.0)
    except AgentError:
        return  # refused, saying why: nothing reaches the outbox
    body = render(p, '"o2o-edge://s/d"', "01BOOT", 7)
    body.encode()  # UTF-8 text, as SQLite and the uplink need it
    ev = json.loads(body)
    assert ev["type"] == etype and ev["id"] == p.id and ev["seq"] == 7
    assert json.dumps(ev["data"], sort_keys=True) == json.dumps(data, sort_keys=True)
