"""Beacon frame encoders: the inverse of drivers.ble.decoders, for the simulated store's
beacons (and for round-trip tests of the decoders)."""

from __future__ import annotations

import struct

from drivers.ble.decoders import APPLE, EDDYSTONE_UUID
from drivers.ble.models import (
    AltBeacon,
    Beacon,
    EddystoneTLM,
    EddystoneUID,
    EddystoneURL,
    IBeacon,
)
from simulators.errors import FrameError as FrameError  # raised here; kept importable

_SCHEMES = ("https://www.", "http://www.", "https://", "http://")  # longest first
_SCHEME_CODE = {"http://www.": 0, "https://www.": 1, "http://": 2, "https://": 3}
_CODES = (
    ".com/", ".org/", ".edu/", ".net/", ".info/", ".biz/", ".gov/",
    ".com", ".org", ".edu", ".net", ".info", ".biz", ".gov",
)
# try the longest expansions first so ".com/" wins over ".com"
_BY_LENGTH = sorted(range(len(_CODES)), key=lambda i: -len(_CODES[i]))


def encode_url(url: str) -> bytes:
    for scheme in _SCHEMES:
        if url.startswith(scheme):
            out = bytearray([_SCHEME_CODE[scheme]])
            rest = url[len(scheme):]
            break
    else:
        raise FrameError(f"{url!r}: Eddystone-URL needs http://, https://, http://www. or "
                         "https://www.")
    i = 0
    while i < len(rest):
        for code in _BY_LENGTH:
            if rest.startswith(_CODES[code], i):
                out.append(code)
                i += len(_CODES[code])
                break
        else:
            ch = ord(rest[i])
            if not 0x21 <= ch <= 0x7E:
                raise FrameError(f"{url!r}: character {rest[i]!r} cannot be encoded")
            out.append(ch)
            i += 1
    if len(out) > 18:
        raise FrameError(f"{url!r}: encodes to {len(out) - 1} bytes, Eddystone-URL allows 17")
    return bytes(out)


def encode(beacon: Beacon) -> tuple[dict[int, bytes], dict[str, bytes]]:
    """(manufacturer_data, service_data) as bleak reports them for this beacon."""
    if isinstance(beacon, IBeacon):
        uuid = bytes.fromhex(beacon.uuid.replace("-", ""))
        return {APPLE: b"\x02\x15" + uuid + struct.pack(">HHb", beacon.major, beacon.minor,
                                                        beacon.tx_power)}, {}
    if isinstance(beacon, AltBeacon):
        return {beacon.company_id: b"\xbe\xac" + bytes.fromhex(beacon.beacon_id)
                + struct.pack(">bB", beacon.tx_power, beacon.mfg_reserved)}, {}
    if isinstance(beacon, EddystoneUID):
        data = struct.pack(">Bb", 0x00, beacon.tx_power) + bytes.fromhex(
            beacon.namespace + beacon.instance) + b"\x00\x00"
    elif isinstance(beacon, EddystoneURL):
        data = struct.pack(">Bb", 0x10, beacon.tx_power) + encode_url(beacon.url)
    elif isinstance(beacon, EddystoneTLM):
        temp = -0x8000 if beacon.temperature_c is None else round(beacon.temperature_c * 256)
        data = struct.pack(">BBHhII", 0x20, 0x00, beacon.battery_mv, temp, beacon.adv_count,
                           round(beacon.uptime_s * 10))
    else:
        data = struct.pack(">Bb", 0x30, beacon.tx_power) + bytes.fromhex(beacon.eid)
    return {}, {EDDYSTONE_UUID: data}
