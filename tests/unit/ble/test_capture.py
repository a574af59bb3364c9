from __future__ import annotations

import json
import subprocess

import pytest

from drivers.ble.capture import parse_capture_line
from drivers.errors import DriverError, DriverReason
from tests.conftest import CLI, ROOT

GOOD = {
    "t": 1.5, "address": "C3:11:22:33:44:55", "rssi": -61, "tx_power": None,
    "local_name": "EST", "manufacturer_data": {"76": "0215b9407f30f5f8466eaff925556b57fe6d4f6d1a2bc5"},
    "service_data": {"0000FEAA-0000-1000-8000-00805F9B34FB": "20000bb8178000001234000003e8"},
    "service_uuids": ["0000FEAA-0000-1000-8000-00805F9B34FB"],
}


def test_parse_round_trip() -> None:
    adv = parse_capture_line(json.dumps(GOOD))
    assert adv.manufacturer_data == {76: bytes.fromhex(GOOD["manufacturer_data"]["76"])}
    assert list(adv.service_data) == ["0000feaa-0000-1000-8000-00805f9b34fb"]
    again = parse_capture_line(json.dumps(adv.as_json()))
    assert again == adv


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"address": ""}, '"address"'),
        ({"rssi": "strong"}, '"rssi" must be an integer'),
        ({"rssi": -200}, '"rssi" must be an integer from -127'),
        ({"manufacturer_data": {"apple": "00"}}, "decimal company id"),
        ({"manufacturer_data": {"76": "zz"}}, "is not hex"),
        ({"manufacturer_data": {"70000": "00"}}, "decimal company id"),
        ({"service_data": {"feaa": "00"}}, "128-bit UUID"),
        ({"service_data": []}, '"service_data" must be an object'),
        ({"t": "now"}, '"t" must be a number'),
        ({"service_uuids": "feaa"}, '"service_uuids" must be a list'),
    ],
)
def test_bad_lines_say_what_is_wrong(patch: dict[str, object], message: str) -> None:
    with pytest.raises(DriverError) as exc:
        parse_capture_line(json.dumps({**GOOD, **patch}))
    assert exc.value.reason is DriverReason.BAD_CAPTURE
    assert message in str(exc.value)


@pytest.mark.parametrize("line", ["", "{", "[1,2]", "null", "x" * 20000])
def test_not_json_objects(line: str) -> None:
    with pytest.raises(DriverError):
        parse_capture_line(line)


def test_cli_decode_ble_one_line_per_input_line() -> None:
    lines = [
        json.dumps(GOOD),
        "not json at all",
        json.dumps({"address": "AA", "rssi": -70}),
        json.dumps({**GOOD, "manufacturer_data": {}}),
        json.dumps({**GOOD, "rssi": "x"}),
    ]
    res = subprocess.run([*CLI, "decode", "ble"], input="\n".join(lines) + "\n", text=True,
                         capture_output=True, cwd=ROOT, timeout=60)
    assert res.returncode == 0, res.stderr
    out = [json.loads(x) for x in res.stdout.splitlines()]
    assert len(out) == len(lines)
    assert out[0]["kind"] == "ibeacon" and out[0]["major"] == 20333
    assert "error" in out[1] and out[1]["error"].startswith("line 2: not JSON")
    assert out[2] is None
    assert out[3]["kind"] == "eddystone-tlm" and out[3]["temperature_c"] == 23.5
    assert "rssi" in out[4]["error"]
