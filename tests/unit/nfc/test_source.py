"""What a tap event says, from a tag read (no reader): registered tags by UID and label,
others by a keyed hash that changes every UTC day, records judged like QR payloads, and
malformed or incomplete reads reported with the tap still counted."""

from __future__ import annotations

import json
from typing import Any

from agent.config import Config, NfcConfig, QrConfig
from agent.nfc_source import NfcSource
from drivers.nfc.ndef_encode import TNF_WELL_KNOWN, message, smartposter_message, text_payload
from drivers.nfc.reader import TagRead

UID = bytes.fromhex("04a1b2c3d4e5f6")


class _NoReader:
    def status(self) -> dict[str, Any]:
        return {}

    async def run(self, on_tap: Any) -> None:
        return None


def _source(clock: list[float], **nfc: Any) -> tuple[NfcSource, list[dict[str, Any]]]:
    out: list[dict[str, Any]] = []
    cfg = Config(nfc=NfcConfig(**nfc), qr=QrConfig(domains=["shop.example"]))
    src = NfcSource(cfg, _NoReader(), lambda t, d: out.append({"type": t, **d}),
                    clock=lambda: clock[0])
    return src, out


def _read(ndef: bytes | None, uid: bytes = UID, error: str = "") -> TagRead:
    return TagRead(uid, "Type2Tag", "NXP NTAG213", ndef, 137, True, error, 0.0, 0.012)


def test_unregistered_uid_is_a_daily_keyed_hash() -> None:
    clock = [1_796_000_000.0]
    src, out = _source(clock)
    src.on_tap(_read(None))
    src.on_tap(_read(None))
    clock[0] += 86400
    src.on_tap(_read(None))
    ids = [e["tag"]["id"] for e in out]
    assert ids[0] == ids[1] != ids[2]  # the same card within a day, unlinkable across days
    assert all(i.startswith("anon:") for i in ids)
    assert UID.hex() not in json.dumps(out) and UID.hex().upper() not in json.dumps(out)
    assert out[0]["ndef"] == "none" and out[0]["type"] == "o2o.nfc.tap"


def test_registered_tags_are_named() -> None:
    src, out = _source([0.0], shelf_tags=["04A1B2C3D4E5F6=aisle 3/coffee"],
                       loyalty_cards=["0102030405060708"])
    src.on_tap(_read(b""))
    src.on_tap(_read(b"", uid=bytes.fromhex("0102030405060708")))
    assert out[0]["tag"] == {"id": UID.hex(), "kind": "shelf", "label": "aisle 3/coffee"}
    assert out[1]["tag"] == {"id": "0102030405060708", "kind": "loyalty"}
    assert out[0]["ndef"] == "empty"


def test_records_are_judged_like_qr_payloads() -> None:
    src, out = _source([0.0])
    bidi = "Pay at \u202eknil\u202c here"
    msg = message([(TNF_WELL_KNOWN, b"T", text_payload(bidi)),
                   (TNF_WELL_KNOWN, b"T", text_payload("Fresh today", "en"))])
    src.on_tap(_read(msg))
    src.on_tap(_read(smartposter_message("https://shop.example/c/x",
                                         {"en": "ok", "de": "b\x1b[31mad"})))
    texts = out[0]["records"]
    assert texts[0] == {"type": "text", "lang": "en", "class": "rejected",
                        "reason": "control-characters", "length": len(bidi.encode()),
                        "sha256": texts[0]["sha256"]}
    assert texts[1] == {"type": "text", "lang": "en", "text": "Fresh today"}
    poster = out[1]["records"][0]
    assert poster["class"] == "campaign" and poster["titles"] == {"en": "ok"}
    assert src.counts["hostile_records"] == 1


def test_malformed_and_incomplete_reads_are_taps_with_a_reason() -> None:
    src, out = _source([0.0])
    src.on_tap(_read(b"\xd1\x01\x30U\x04short"))
    src.on_tap(_read(None, error="read-incomplete: the tag did not answer"))
    assert out[0]["ndef"] == "malformed" and "record 1" in out[0]["reason"]
    assert out[1]["ndef"] == "incomplete" and out[1]["records"] == []
    assert src.counts == {"taps": 2, "malformed_ndef": 1, "incomplete": 1, "hostile_records": 0}
