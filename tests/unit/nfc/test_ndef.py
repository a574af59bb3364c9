"""NDEF decoding: golden vectors named by their edge case, every URI prefix, round trips with
ndeflib (an independent encoder), and fuzzing: a dict or NdefError, nothing else."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import ndef as ndeflib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.nfc.ndef import URI_PREFIXES, NdefError, decode_message
from drivers.nfc.ndef_encode import smartposter_message, uri_message

GOLDEN: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parent / "golden" / "ndef.json").read_text())


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden(name: str) -> None:
    case = GOLDEN[name]
    data = bytes.fromhex(case["hex"])
    if "error" in case:
        with pytest.raises(NdefError) as exc:
            decode_message(data)
        assert str(exc.value) == case["error"]
    else:
        assert decode_message(data) == case["expected"]


def test_golden_set_covers_every_record_kind_and_both_outcomes() -> None:
    kinds = {r["type"] for c in GOLDEN.values() for r in c.get("expected", {}).get("records", [])}
    assert kinds == {"uri", "text", "smartposter", "mime", "empty", "unknown"}
    assert sum("error" in c for c in GOLDEN.values()) >= 20


@pytest.mark.parametrize("code", range(len(URI_PREFIXES)))
def test_every_uri_prefix_round_trips_with_ndeflib(code: int) -> None:
    uri = URI_PREFIXES[code] + "shop.example/p?id=7"
    theirs = b"".join(ndeflib.message_encoder([ndeflib.UriRecord(uri)]))
    assert decode_message(theirs) == {"records": [{"type": "uri", "uri": uri}]}
    ours = uri_message(uri)
    assert ours == theirs  # the same (longest) prefix chosen
    assert decode_message(ours)["records"][0]["uri"] == uri


def test_smart_poster_written_for_staff_matches_ndeflib() -> None:
    titles = {"en": "Running shoes", "de": "Laufschuhe", "es": "Zapatillas"}
    ours = smartposter_message("https://www.shop.example/c/run?utm_medium=nfc", titles)
    theirs = b"".join(ndeflib.message_encoder([ndeflib.SmartposterRecord(
        "https://www.shop.example/c/run?utm_medium=nfc", titles)]))
    assert ours == theirs
    assert decode_message(ours) == {"records": [{
        "type": "smartposter", "uri": "https://www.shop.example/c/run?utm_medium=nfc",
        "titles": titles}]}


def test_long_records_and_chunks_from_ndeflib() -> None:
    text = "x" * 1000
    theirs = b"".join(ndeflib.message_encoder([ndeflib.TextRecord(text, "en"),
                                               ndeflib.UriRecord("https://a.example/" + "b" * 400)]))
    out = decode_message(theirs)["records"]
    assert out[0]["text"] == text and out[1]["uri"].endswith("b" * 400)


_records = st.lists(st.one_of(
    st.builds(ndeflib.UriRecord, st.text(max_size=80)),
    st.builds(ndeflib.TextRecord, st.text(max_size=80),
              st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=8)),
    st.builds(lambda d: ndeflib.Record("application/octet-stream", "", d), st.binary(max_size=300)),
), min_size=1, max_size=4)


@settings(max_examples=300, deadline=None)
@given(_records)
def test_anything_ndeflib_writes_we_read(records: list[Any]) -> None:
    data = b"".join(ndeflib.message_encoder(records))
    out = decode_message(data)["records"]
    assert len(out) == len(records)
    for ours, theirs in zip(out, records, strict=True):
        if isinstance(theirs, ndeflib.UriRecord):
            assert ours == {"type": "uri", "uri": theirs.iri}
        elif isinstance(theirs, ndeflib.TextRecord):
            assert ours == {"type": "text", "lang": theirs.language, "text": theirs.text}
        else:
            assert ours["data_hex"] == theirs.data.hex()


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_bytes_give_records_or_ndef_error(data: bytes) -> None:
    try:
        out = decode_message(data)
    except NdefError as exc:
        assert str(exc)
        return
    json.dumps(out)  # always serialisable


@settings(max_examples=2000, deadline=None)
@given(st.sampled_from(sorted(c["hex"] for c in GOLDEN.values())), st.data())
def test_fuzz_mutated_golden_messages(hex_: str, data: st.DataObject) -> None:
    raw = bytearray(bytes.fromhex(hex_))
    if raw:
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    with contextlib.suppress(NdefError):  # anything else fails the test
        decode_message(bytes(raw[:cut]))
