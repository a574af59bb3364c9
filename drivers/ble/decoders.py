"""Pure beacon frame decoders over bleak's advertisement data.

bleak gives manufacturer data keyed by company id (the id itself stripped from the bytes) and
service data keyed by 128-bit UUID string. Every decoder takes bytes and returns a model or
None: a frame that is not exactly right (length, frame type, version, URL code) is None, never
an exception. No I/O, no logging; structs are compiled once.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from drivers.ble.models import (
    AltBeacon,
    Beacon,
    EddystoneEID,
    EddystoneTLM,
    EddystoneUID,
    EddystoneURL,
    IBeacon,
)

APPLE = 0x004C
EDDYSTONE_UUID = "0000feaa-0000-1000-8000-00805f9b34fb"

_IBEACON = struct.Struct(">2s16sHHb")  # 0x02 0x15, uuid, major, minor, tx power
_ALTBEACON = struct.Struct(">2s20sbB")  # 0xBE 0xAC, beacon id, reference rssi, reserved
_UID = struct.Struct(">Bb10s6s")  # frame, tx power, namespace, instance (+ 2 RFU bytes)
_TLM = struct.Struct(">BBHhII")  # frame, version, battery mV, temp 8.8, adv count, 0.1 s
_EID = struct.Struct(">Bb8s")

_URL_SCHEMES = ("http://www.", "https://www.", "http://", "https://")
_URL_CODES = (
    ".com/", ".org/", ".edu/", ".net/", ".info/", ".biz/", ".gov/",
    ".com", ".org", ".edu", ".net", ".info", ".biz", ".gov",
)
# byte -> text for every byte allowed in an encoded URL; absent bytes make the frame invalid
_URL_BYTE: dict[int, str] = {i: code for i, code in enumerate(_URL_CODES)}
_URL_BYTE.update({b: chr(b) for b in range(0x21, 0x7F)})
_TEMP_UNKNOWN = -0x8000  # 0x8000 read as a signed 16-bit value


def _uuid_text(raw: bytes) -> str:
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def decode_ibeacon(data: bytes) -> IBeacon | None:
    """Apple manufacturer data (company id 0x004C stripped)."""
    if len(data) != 23:
        return None
    prefix, uuid, major, minor, tx = _IBEACON.unpack(data)
    if prefix != b"\x02\x15":
        return None
    return IBeacon(_uuid_text(uuid), major, minor, tx)


def decode_altbeacon(company_id: int, data: bytes) -> AltBeacon | None:
    """AltBeacon: 0xBEAC under any company id."""
    if len(data) != 24:
        return None
    code, beacon_id, tx, reserved = _ALTBEACON.unpack(data)
    if code != b"\xbe\xac":
        return None
    return AltBeacon(beacon_id.hex(), tx, reserved, company_id)


def decode_eddystone(data: bytes) -> Beacon | None:
    """Eddystone service data (UUID 0xFEAA): UID, URL, TLM (unencrypted) or EID."""
    if not data:
        return None
    frame = data[0]
    if frame == 0x00:
        if len(data) not in (18, 20):  # the two trailing RFU bytes are often left out
            return None
        _, tx, namespace, instance = _UID.unpack_from(data)
        return EddystoneUID(namespace.hex(), instance.hex(), tx)
    if frame == 0x10:
        return _decode_url(data)
    if frame == 0x20:
        if len(data) != 14 or data[1] != 0x00:  # version 1 is encrypted TLM
            return None
        _, _, battery, temp, count, tenths = _TLM.unpack(data)
        temperature = None if temp == _TEMP_UNKNOWN else temp / 256.0
        return EddystoneTLM(battery, temperature, count, tenths / 10.0)
    if frame == 0x30:
        if len(data) != 10:
            return None
        _, tx, eid = _EID.unpack(data)
        return EddystoneEID(eid.hex(), tx)
    return None


def _decode_url(data: bytes) -> EddystoneURL | None:
    if not 3 <= len(data) <= 20 or data[2] > 3:
        return None
    parts = [_URL_SCHEMES[data[2]]]
    for b in data[3:]:
        text = _URL_BYTE.get(b)
        if text is None:
            return None
        parts.append(text)
    tx = data[1] - 256 if data[1] > 127 else data[1]
    return EddystoneURL("".join(parts), tx)


def decode_advert(
    manufacturer_data: Mapping[int, bytes], service_data: Mapping[str, bytes]
) -> Beacon | None:
    """The beacon frame of one advertisement, or None when it carries none."""
    for company_id, data in manufacturer_data.items():
        if company_id == APPLE:
            found: Beacon | None = decode_ibeacon(data)
            if found is not None:
                return found
        if len(data) == 24:
            found = decode_altbeacon(company_id, data)
            if found is not None:
                return found
    eddystone = service_data.get(EDDYSTONE_UUID)
    if eddystone is not None:
        return decode_eddystone(eddystone)
    return None
