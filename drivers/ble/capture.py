"""Capture files: JSON lines, one advertisement each, in bleak's shape.

    {"t": 12.5, "address": "C3:...", "rssi": -61, "tx_power": null, "local_name": null,
     "manufacturer_data": {"76": "0215..."}, "service_data": {"0000feaa-...": "10e8..."},
     "service_uuids": ["0000feaa-0000-1000-8000-00805f9b34fb"]}

Company ids are decimal strings (JSON keys), bytes are hex. Parsing is strict and says what is
wrong; a bad line never stops a replay.
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

from drivers.errors import DriverError, DriverReason

_UUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
MAX_LINE = 16 * 1024


class Advert(NamedTuple):
    t: float | None
    address: str
    rssi: int
    tx_power: int | None
    local_name: str | None
    manufacturer_data: dict[int, bytes]
    service_data: dict[str, bytes]
    service_uuids: list[str]

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.t is not None:
            out["t"] = self.t
        out.update({
            "address": self.address, "rssi": self.rssi, "tx_power": self.tx_power,
            "local_name": self.local_name,
            "manufacturer_data": {str(k): v.hex() for k, v in self.manufacturer_data.items()},
            "service_data": {k: v.hex() for k, v in self.service_data.items()},
            "service_uuids": list(self.service_uuids),
        })
        return out


def _bad(message: str) -> DriverError:
    return DriverError(DriverReason.BAD_CAPTURE, message)


def _hex(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise _bad(f"{where} must be a hex string")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise _bad(f"{where} is not hex: {value[:40]!r}") from None


def _int(value: Any, where: str, lo: int, hi: int, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _bad(f"{where} must be an integer from {lo} to {hi}")
    return value


def parse_capture_line(line: str) -> Advert:
    """One capture line -> Advert; raises DriverError(BAD_CAPTURE) saying what is wrong."""
    if len(line) > MAX_LINE:
        raise _bad(f"line longer than {MAX_LINE} characters")
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _bad(f"not JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(obj, dict):
        raise _bad("an advertisement must be a JSON object")
    address = obj.get("address")
    if not isinstance(address, str) or not address:
        raise _bad('"address" must be a non-empty string')
    rssi = _int(obj.get("rssi"), '"rssi"', -127, 20)
    assert rssi is not None
    tx_power = _int(obj.get("tx_power"), '"tx_power"', -127, 127, optional=True)
    t = obj.get("t")
    if t is not None and (isinstance(t, bool) or not isinstance(t, int | float)):
        raise _bad('"t" must be a number of seconds')
    name = obj.get("local_name")
    if name is not None and not isinstance(name, str):
        raise _bad('"local_name" must be a string or null')
    mfg_raw = obj.get("manufacturer_data", {})
    if not isinstance(mfg_raw, dict):
        raise _bad('"manufacturer_data" must be an object of company id -> hex')
    mfg: dict[int, bytes] = {}
    for key, value in mfg_raw.items():
        if not (key.isascii() and key.isdigit()) or not 0 <= int(key) <= 0xFFFF:  # "²".isdigit()
            raise _bad(f"manufacturer_data key {key!r} must be a decimal company id (0-65535)")
        mfg[int(key)] = _hex(value, f"manufacturer_data[{key}]")
    svc_raw = obj.get("service_data", {})
    if not isinstance(svc_raw, dict):
        raise _bad('"service_data" must be an object of UUID -> hex')
    svc: dict[str, bytes] = {}
    for key, value in svc_raw.items():
        if not _UUID_RE.fullmatch(key):  # "$" of the pattern also matches before a newline
            raise _bad(f"service_data key {key!r} must be a 128-bit UUID")
        svc[key.lower()] = _hex(value, f"service_data[{key}]")
    uuids = obj.get("service_uuids", [])
    if not isinstance(uuids, list) or not all(isinstance(u, str) for u in uuids):
        raise _bad('"service_uuids" must be a list of strings')
    return Advert(None if t is None else float(t), address, rssi, tx_power, name, mfg, svc,
                  [u.lower() for u in uuids])
