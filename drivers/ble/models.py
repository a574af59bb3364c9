"""What a beacon frame decodes to. `as_json()` gives the documented JSON schema."""

from __future__ import annotations

from typing import Any, NamedTuple


class IBeacon(NamedTuple):
    uuid: str  # lowercase 8-4-4-4-12
    major: int
    minor: int
    tx_power: int

    def as_json(self) -> dict[str, Any]:
        return {"kind": "ibeacon", "uuid": self.uuid, "major": self.major, "minor": self.minor,
                "tx_power": self.tx_power}


class EddystoneUID(NamedTuple):
    namespace: str  # 20 hex digits
    instance: str  # 12 hex digits
    tx_power: int

    def as_json(self) -> dict[str, Any]:
        return {"kind": "eddystone-uid", "namespace": self.namespace,
                "instance": self.instance, "tx_power": self.tx_power}


class EddystoneURL(NamedTuple):
    url: str
    tx_power: int

    def as_json(self) -> dict[str, Any]:
        return {"kind": "eddystone-url", "url": self.url, "tx_power": self.tx_power}


class EddystoneTLM(NamedTuple):
    battery_mv: int
    temperature_c: float | None  # None: the beacon has no sensor (0x8000)
    adv_count: int
    uptime_s: float

    def as_json(self) -> dict[str, Any]:
        return {"kind": "eddystone-tlm", "battery_mv": self.battery_mv,
                "temperature_c": self.temperature_c, "adv_count": self.adv_count,
                "uptime_s": self.uptime_s}


class EddystoneEID(NamedTuple):
    eid: str  # 16 hex digits
    tx_power: int

    def as_json(self) -> dict[str, Any]:
        return {"kind": "eddystone-eid", "eid": self.eid, "tx_power": self.tx_power}


class AltBeacon(NamedTuple):
    beacon_id: str  # 40 hex digits
    tx_power: int
    mfg_reserved: int
    company_id: int

    def as_json(self) -> dict[str, Any]:
        return {"kind": "altbeacon", "beacon_id": self.beacon_id, "tx_power": self.tx_power,
                "mfg_reserved": self.mfg_reserved, "company_id": self.company_id}


Beacon = IBeacon | EddystoneUID | EddystoneURL | EddystoneTLM | EddystoneEID | AltBeacon
