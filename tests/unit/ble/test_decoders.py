"""Golden frames named after their edge case, round trips through the simulator's encoders,
and fuzzing: nothing but a model or None ever comes out of a decoder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.ble.decoders import (
    EDDYSTONE_UUID,
    decode_advert,
    decode_altbeacon,
    decode_eddystone,
    decode_ibeacon,
)
from drivers.ble.models import (
    AltBeacon,
    EddystoneEID,
    EddystoneTLM,
    EddystoneUID,
    EddystoneURL,
    IBeacon,
)
from simulators.ble_frames import FrameError, encode, encode_url

GOLDEN = json.loads((Path(__file__).parent / "golden" / "frames.json").read_text())
MODELS = (IBeacon, AltBeacon, EddystoneUID, EddystoneURL, EddystoneTLM, EddystoneEID)


@pytest.mark.parametrize("case", GOLDEN, ids=[c["name"] for c in GOLDEN])
def test_golden(case: dict[str, Any]) -> None:
    mfg = {int(k): bytes.fromhex(v) for k, v in case["manufacturer_data"].items()}
    svc = {k: bytes.fromhex(v) for k, v in case["service_data"].items()}
    got = decode_advert(mfg, svc)
    assert (None if got is None else got.as_json()) == case["expected"]


def test_schema_shapes() -> None:
    """The JSON schema promised to the CLI, capture files and events."""
    keys = {
        "ibeacon": {"kind", "uuid", "major", "minor", "tx_power"},
        "eddystone-uid": {"kind", "namespace", "instance", "tx_power"},
        "eddystone-url": {"kind", "url", "tx_power"},
        "eddystone-tlm": {"kind", "battery_mv", "temperature_c", "adv_count", "uptime_s"},
        "eddystone-eid": {"kind", "eid", "tx_power"},
        "altbeacon": {"kind", "beacon_id", "tx_power", "mfg_reserved", "company_id"},
    }
    seen = set()
    for case in GOLDEN:
        if case["expected"] is not None:
            assert set(case["expected"]) == keys[case["expected"]["kind"]]
            seen.add(case["expected"]["kind"])
    assert seen == set(keys), "every frame kind needs golden vectors"


hexes = st.text(alphabet="0123456789abcdef", min_size=0, max_size=40)
ibeacons = st.builds(
    IBeacon,
    st.uuids().map(str), st.integers(0, 65535), st.integers(0, 65535), st.integers(-128, 127),
)
altbeacons = st.builds(
    AltBeacon, st.binary(min_size=20, max_size=20).map(bytes.hex), st.integers(-128, 127),
    st.integers(0, 255), st.integers(0, 65535),
)
uids = st.builds(
    EddystoneUID, st.binary(min_size=10, max_size=10).map(bytes.hex),
    st.binary(min_size=6, max_size=6).map(bytes.hex), st.integers(-128, 127),
)
tlms = st.builds(
    EddystoneTLM, st.integers(0, 65535),
    st.one_of(st.none(), st.integers(-0x7FFF, 0x7FFF).map(lambda t: t / 256)),
    st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1).map(lambda t: t / 10),
)
eids = st.builds(EddystoneEID, st.binary(min_size=8, max_size=8).map(bytes.hex),
                 st.integers(-128, 127))
url_chars = st.text(alphabet=[chr(c) for c in range(0x21, 0x7F)], max_size=14)
urls = st.builds(
    EddystoneURL,
    st.tuples(st.sampled_from(["http://www.", "https://www.", "http://", "https://"]),
              url_chars).map("".join),
    st.integers(-128, 127),
)


@given(st.one_of(ibeacons, altbeacons, uids, tlms, eids))
def test_round_trip(beacon: Any) -> None:
    assert decode_advert(*encode(beacon)) == beacon


@given(urls)
def test_url_round_trip(beacon: EddystoneURL) -> None:
    try:
        frames = encode(beacon)
    except FrameError:
        return  # longer than Eddystone-URL allows: nothing to decode
    assert decode_advert(*frames) == beacon


def test_url_encoder_refuses_what_does_not_fit() -> None:
    with pytest.raises(FrameError, match="allows 17"):
        encode_url("https://" + "x" * 18)
    with pytest.raises(FrameError, match="needs http"):
        encode_url("ftp://x")
    assert len(encode_url("https://" + "x" * 17)) == 18


@given(st.binary(max_size=64))
def test_fuzz_single_decoders(data: bytes) -> None:
    for result in (decode_ibeacon(data), decode_eddystone(data), decode_altbeacon(76, data)):
        assert result is None or isinstance(result, MODELS)


@given(st.binary(max_size=30))
def test_fuzz_near_valid_prefixes(tail: bytes) -> None:
    """Right headers with random bodies: the cases most likely to trip a decoder."""
    for head in (b"\x02\x15", b"\xbe\xac", b"\x00", b"\x10", b"\x20\x00", b"\x20", b"\x30"):
        data = head + tail
        for result in (decode_ibeacon(data), decode_eddystone(data), decode_altbeacon(1, data)):
            assert result is None or isinstance(result, MODELS)
            if result is not None:
                json.dumps(result.as_json(), allow_nan=False)  # and it serialises


@given(st.dictionaries(st.integers(0, 65535), st.binary(max_size=30), max_size=3),
       st.dictionaries(st.sampled_from([EDDYSTONE_UUID, "0000fe9f-0000-1000-8000-00805f9b34fb"]),
                       st.binary(max_size=30), max_size=2))
def test_fuzz_whole_adverts(mfg: dict[int, bytes], svc: dict[str, bytes]) -> None:
    result = decode_advert(mfg, svc)
    assert result is None or isinstance(result, MODELS)
